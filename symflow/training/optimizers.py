"""Adam and SGD with momentum (Keras / TFP defaults), and the source the training module
pastes in: the optimizer updates.

The update rules are plain functions written for Numba; `optimizer_source()` is their text
with `@numba.njit` added, so a generated training module imports only numpy and numba and
runs the whole loop, updates included, without returning to Python.
"""

from __future__ import annotations

import functools
import inspect
import math
from dataclasses import dataclass

import numpy as np

__all__ = ["SGD", "Adam", "Optimizer", "optimizer_source"]


class Optimizer:
    """Base: `kind` selects the update in the compiled loop; `hyper()` its constants."""

    kind = -1

    def hyper(self) -> np.ndarray:  # pragma: no cover - every optimizer overrides it
        raise NotImplementedError


@dataclass(frozen=True)
class Adam(Optimizer):
    """Adam (Kingma & Ba) with Keras/TFP's defaults and form of epsilon.

    m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g²;
    θ -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + epsilon).
    """

    learning_rate: float = 1e-3
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-7
    kind = 0

    def __post_init__(self) -> None:
        _positive("Adam", "learning_rate", self.learning_rate)
        for name in ("beta_1", "beta_2"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"Adam: `{name}` must be in [0, 1); got {value!r}.")
        _positive("Adam", "epsilon", self.epsilon)

    def hyper(self) -> np.ndarray:
        return np.array([self.learning_rate, self.beta_1, self.beta_2, self.epsilon])


@dataclass(frozen=True)
class SGD(Optimizer):
    """Gradient descent with (Keras-style) momentum: v = momentum v - lr g; θ += v."""

    learning_rate: float = 1e-2
    momentum: float = 0.0
    kind = 1

    def __post_init__(self) -> None:
        _positive("SGD", "learning_rate", self.learning_rate)
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"SGD: `momentum` must be in [0, 1); got {self.momentum!r}.")

    def hyper(self) -> np.ndarray:
        return np.array([self.learning_rate, self.momentum, 0.0, 0.0])


def _positive(owner: str, name: str, value) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ValueError(f"{owner}: `{name}` must be a positive number; got {value!r}.")


# ---- functions pasted into generated training modules (Numba, no Python objects) -------


def adam_update(theta, grad, state, hyper):
    """One Adam step in place; state[0] = m, state[1] = v, state[2, 0] = step count."""
    lr, b1, b2, eps = hyper[0], hyper[1], hyper[2], hyper[3]
    state[2, 0] += 1.0
    t = state[2, 0]
    lr_t = lr * math.sqrt(1.0 - b2**t) / (1.0 - b1**t)
    for j in range(theta.shape[0]):
        g = grad[j]
        state[0, j] = b1 * state[0, j] + (1.0 - b1) * g
        state[1, j] = b2 * state[1, j] + (1.0 - b2) * g * g
        theta[j] -= lr_t * state[0, j] / (math.sqrt(state[1, j]) + eps)


def sgd_update(theta, grad, state, hyper):
    """One SGD-with-momentum step in place; state[0] = velocity."""
    lr, momentum = hyper[0], hyper[1]
    for j in range(theta.shape[0]):
        state[0, j] = momentum * state[0, j] - lr * grad[j]
        theta[j] += state[0, j]


@functools.cache
def optimizer_source() -> str:
    """The functions above as source text, each under `@numba.njit` (read on first use:
    only emitting a training module needs it)."""
    functions = (adam_update, sgd_update)
    return "".join(
        '\n@numba.njit(cache=True, error_model="numpy")\n' + inspect.getsource(fn)
        for fn in functions
    )
