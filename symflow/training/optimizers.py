"""Adam and SGD with momentum (Keras / TFP defaults), and the source the training module
pastes in: the optimizer updates and the Affine members' per-step linear algebra.

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


def affine_prepare(q, s_tr, s_fa, s_di, n, r, tril_pos, tinv, minv, scratch):
    """M^-1 of M = L + V diag(d) V^T into `minv`, and log|det M|, from q's entries.

    T = L^-1 by forward substitution; Woodbury: M^-1 = T - W C^-1 D V^T T with W = T V
    and the r x r capacitance C = I + D V^T T V, eliminated with partial pivoting (its
    determinant comes out of the same elimination). log|det M| = sum log|L_ii| +
    log|det C| (matrix determinant lemma). Once per step: the per-row work is then one
    matrix-vector product. Scratch matrices live in the flat vector `scratch` (row-major,
    indexed by hand: no views or reshapes, which cost Numba seconds to compile): L at 0,
    W = T V at n*n, [C | D V^T T] at n*n + n*r.
    """
    for a in range(n):
        for b in range(n):
            tinv[a, b] = 0.0
    logdet = 0.0
    # L's entries (lower triangle, TFP fill order) straight from q; T = L^-1 column by column
    for j in range(n):
        tinv[j, j] = 1.0
    for j in range(n * n):
        scratch[j] = 0.0
    for j in range(tril_pos.shape[0]):
        scratch[tril_pos[j]] = q[s_tr + j]
    for a in range(n):
        logdet += math.log(abs(scratch[a * n + a]))
    for col in range(n):
        for a in range(n):
            acc = 1.0 if a == col else 0.0
            for b in range(a):
                acc -= scratch[a * n + b] * tinv[b, col]
            tinv[a, col] = acc / scratch[a * n + a]
    for a in range(n):
        for b in range(n):
            minv[a, b] = tinv[a, b]
    if r == 0:
        return logdet
    w = n * n  # W = T V, n x r
    for a in range(n):
        for c in range(r):
            acc = 0.0
            for b in range(n):
                acc += tinv[a, b] * q[s_fa + b * r + c]
            scratch[w + a * r + c] = acc
    cap = n * n + n * r  # [C | D V^T T], r x (r + n), eliminated in place
    width = r + n
    for c in range(r):
        for e in range(r):
            acc = 0.0
            for b in range(n):
                acc += q[s_fa + b * r + c] * scratch[w + b * r + e]
            scratch[cap + c * width + e] = q[s_di + c] * acc + (1.0 if c == e else 0.0)
        for j in range(n):
            acc = 0.0
            for b in range(n):
                acc += q[s_fa + b * r + c] * tinv[b, j]
            scratch[cap + c * width + r + j] = q[s_di + c] * acc
    det_c = 1.0
    for c in range(r):
        p = c
        for e in range(c + 1, r):
            if abs(scratch[cap + e * width + c]) > abs(scratch[cap + p * width + c]):
                p = e
        if p != c:
            det_c = -det_c
            for j in range(width):
                t = scratch[cap + c * width + j]
                scratch[cap + c * width + j] = scratch[cap + p * width + j]
                scratch[cap + p * width + j] = t
        pivot = scratch[cap + c * width + c]
        det_c *= pivot
        for e in range(c + 1, r):
            f = scratch[cap + e * width + c] / pivot
            for j in range(c, width):
                scratch[cap + e * width + j] -= f * scratch[cap + c * width + j]
    for c in range(r - 1, -1, -1):  # back substitution: rows c of Z = C^-1 D V^T T
        for j in range(n):
            acc = scratch[cap + c * width + r + j]
            for e in range(c + 1, r):
                acc -= scratch[cap + c * width + e] * scratch[cap + e * width + r + j]
            scratch[cap + c * width + r + j] = acc / scratch[cap + c * width + c]
    for a in range(n):
        for j in range(n):
            acc = 0.0
            for c in range(r):
                acc += scratch[w + a * r + c] * scratch[cap + c * width + r + j]
            minv[a, j] -= acc
    return logdet + math.log(abs(det_c))


def affine_gradient(q, gq, gm, minv, tinv, nb, s_tr, s_fa, s_di, n, r, tril_pos):
    """Adds d(sum of NLL)/d(L, V, d) to gq, from gm = -sum lam u^T (rows) and the log-det.

    Every row adds log|det M|, whose derivative is M^-T; then M = L + V D V^T gives
    dL = lower(G), dV = (G + G^T) V D and dd_c = v_c^T G v_c.
    """
    for a in range(n):
        for b in range(n):
            gm[a, b] += nb * minv[b, a]
    for j in range(tril_pos.shape[0]):
        gq[s_tr + j] += gm[tril_pos[j] // n, tril_pos[j] % n]
    for a in range(n):
        for c in range(r):
            acc = 0.0
            for b in range(n):
                acc += (gm[a, b] + gm[b, a]) * q[s_fa + b * r + c]
            gq[s_fa + a * r + c] += acc * q[s_di + c]
    for c in range(r):
        acc = 0.0
        for a in range(n):
            for b in range(n):
                acc += q[s_fa + a * r + c] * gm[a, b] * q[s_fa + b * r + c]
        gq[s_di + c] += acc


@functools.cache
def optimizer_source(generic_affine: bool = True) -> str:
    """The functions above as source text, each under `@numba.njit` (read on first use:
    only emitting a training module needs it); the generic Affine loops only when some
    member uses them (`generic_affine`)."""
    functions = (adam_update, sgd_update)
    if generic_affine:
        functions += (affine_prepare, affine_gradient)
    return "".join(
        '\n@numba.njit(cache=True, error_model="numpy")\n' + inspect.getsource(fn)
        for fn in functions
    )
