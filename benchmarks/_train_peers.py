"""The training benchmark's peers: PyTorch eager, a jitted JAX step, and a `lax.scan` loop.

Each trains the flow of `train_benchmark.py` (PReLU then Affine with a rank-2
perturbation, base N(0, I_2)) from θ0 with Adam, on batches given as rows of an index
array (`batches[k]` holds the data rows of step k), and returns a `TrainResult`. The maths
is written once per framework, in float64, with the framework's own solve and log|det|;
the gradient comes from its autodiff. torch and jax are imported on first use, so the
benchmark runs without them; `PeerUnavailableError` says which one is missing.
"""

from __future__ import annotations

import math
import os
import sys
import time
from functools import cache
from typing import NamedTuple

import numpy as np

__all__ = [
    "PeerUnavailableError",
    "TrainResult",
    "jax_scan_train",
    "jax_step_train",
    "jax_value_and_grad",
    "torch_train",
    "torch_value_and_grad",
]

LOG_2PI = math.log(2.0 * math.pi)
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-7


class TrainResult(NamedTuple):
    """theta: final θ (10,); nll: mean NLL on the full data at theta, computed by the
    implementation itself; seconds: wall time of the training steps alone; compile_seconds:
    compilation or warm-up, measured apart; steps: optimizer steps taken; note: shown
    beside the row."""

    theta: np.ndarray
    nll: float
    seconds: float
    compile_seconds: float
    steps: int
    note: str = ""


class PeerUnavailableError(RuntimeError):
    """A peer's framework is not installed."""


# -- PyTorch eager ------------------------------------------------------------------------
def _torch(threads: int):
    try:
        import torch
    except ImportError as err:
        raise PeerUnavailableError("torch is not installed") from err
    torch.set_num_threads(threads)
    return torch


def _torch_nll(torch, theta, y):
    alpha = torch.nn.functional.softplus(theta[0])
    shift = theta[1:3]
    t0, t1, t2 = theta[3], theta[4], theta[5]
    zero = torch.zeros((), dtype=theta.dtype)
    tril = torch.stack([torch.stack([t2, zero]), torch.stack([t1, t0])])
    factor = theta[6:10].reshape(2, 2)
    scale = tril + factor @ factor.T
    u = torch.linalg.solve(scale, (y - shift).T).T
    negative = u < 0
    x = torch.where(negative, u / alpha, u)
    log_det = torch.linalg.slogdet(scale)[1]
    n_negative = negative.sum(dim=1).to(theta.dtype)
    per_sample = 0.5 * (x * x).sum(dim=1) + LOG_2PI + log_det + n_negative * torch.log(alpha)
    return per_sample.mean()


def torch_train(data, theta0, batches, learning_rate: float, *, threads: int) -> TrainResult:
    """PyTorch eager on the CPU in float64: autograd and `torch.optim.Adam(eps=1e-7)`.

    Raises:
        PeerUnavailableError: torch is not installed.
    """
    torch = _torch(threads)
    y_all = torch.from_numpy(np.ascontiguousarray(data, dtype=np.float64))
    index = torch.from_numpy(np.ascontiguousarray(batches, dtype=np.int64))

    def run(steps: int):
        theta = torch.tensor(theta0, dtype=torch.float64, requires_grad=True)
        opt = torch.optim.Adam([theta], lr=learning_rate, betas=ADAM_BETAS, eps=ADAM_EPS)
        start = time.perf_counter()
        for k in range(steps):
            opt.zero_grad(set_to_none=True)
            loss = _torch_nll(torch, theta, y_all[index[k]])
            loss.backward()
            opt.step()
        return theta, time.perf_counter() - start

    _, warm = run(min(5, len(batches)))  # first calls set up autograd and the optimizer
    theta, seconds = run(len(batches))
    with torch.no_grad():
        nll = float(_torch_nll(torch, theta, y_all))
    return TrainResult(theta.detach().numpy().copy(), nll, seconds, warm, len(batches))


def torch_value_and_grad(theta, data, *, threads: int = 1) -> tuple[float, np.ndarray]:
    """Mean NLL of `data` at θ and its gradient by PyTorch autograd (for the checks)."""
    torch = _torch(threads)
    t = torch.tensor(theta, dtype=torch.float64, requires_grad=True)
    loss = _torch_nll(torch, t, torch.from_numpy(np.asarray(data, dtype=np.float64)))
    loss.backward()
    return float(loss.detach()), t.grad.numpy().copy()


# -- JAX ----------------------------------------------------------------------------------
def _jax(threads: int):
    """Imports jax for the CPU in float64; thread flags only count before the first import."""
    if "jax" not in sys.modules:
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
        if threads == 1:
            flags = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
            os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + flags).strip()
    try:
        import jax
        import optax
    except ImportError as err:
        raise PeerUnavailableError(f"{err.name or 'jax'} is not installed") from err
    jax.config.update("jax_enable_x64", True)
    return jax, optax


def _jax_nll(jnp, jax, theta, y, closed_form=False):
    alpha = jax.nn.softplus(theta[0])
    shift = theta[1:3]
    t0, t1, t2 = theta[3], theta[4], theta[5]
    tril = jnp.array([[1.0, 0.0], [0.0, 0.0]]) * t2 + jnp.array([[0.0, 0.0], [1.0, 0.0]]) * t1
    tril = tril + jnp.array([[0.0, 0.0], [0.0, 1.0]]) * t0
    factor = theta[6:10].reshape(2, 2)
    scale = tril + factor @ factor.T
    z = y - shift
    if closed_form:
        # the 2 x 2 solve by Cramer's rule, as the hand kernel does: XLA's CPU solve and
        # slogdet are LAPACK calls whose fixed cost dominates a step at this size
        (m00, m01), (m10, m11) = scale[0], scale[1]
        det = m00 * m11 - m01 * m10
        u0 = (m11 * z[:, 0] - m01 * z[:, 1]) / det
        u1 = (m00 * z[:, 1] - m10 * z[:, 0]) / det
        u = jnp.stack([u0, u1], axis=1)
        log_det = jnp.log(jnp.abs(det))
    else:
        u = jnp.linalg.solve(scale, z.T).T
        log_det = jnp.linalg.slogdet(scale)[1]
    negative = u < 0
    x = jnp.where(negative, u / alpha, u)
    n_negative = negative.sum(axis=1)
    per_sample = 0.5 * (x * x).sum(axis=1) + LOG_2PI + log_det + n_negative * jnp.log(alpha)
    return per_sample.mean()


@cache
def _jax_functions(threads: int, learning_rate: float, closed_form: bool = False):
    """(optimizer, jitted step, jitted scan loop, jitted full-data NLL); built once."""
    jax, optax = _jax(threads)
    jnp = jax.numpy
    optimizer = optax.adam(learning_rate, b1=ADAM_BETAS[0], b2=ADAM_BETAS[1], eps=ADAM_EPS)

    def step(theta, opt_state, rows, data):
        loss, grad = jax.value_and_grad(_jax_nll, argnums=2)(
            jnp, jax, theta, data[rows], closed_form
        )
        updates, opt_state = optimizer.update(grad, opt_state, theta)
        return optax.apply_updates(theta, updates), opt_state, loss

    def loop(theta, opt_state, batches, data):
        def body(carry, rows):
            theta, opt_state, _ = step(*carry, rows, data)
            return (theta, opt_state), None

        (theta, opt_state), _ = jax.lax.scan(body, (theta, opt_state), batches)
        return theta, opt_state

    def nll(theta, data):
        return _jax_nll(jnp, jax, theta, data, closed_form)

    return optimizer, jax.jit(step), jax.jit(loop), jax.jit(nll)


def jax_step_train(data, theta0, batches, learning_rate: float, *, threads: int) -> TrainResult:
    """A `jax.jit`-compiled step (loss, gradient, optax Adam) called from a Python loop.

    compile_seconds is the first call (trace, compile and one step); later calls of this
    function reuse the compiled step.

    Raises:
        PeerUnavailableError: jax or optax is not installed.
    """
    jax, _ = _jax(threads)
    jnp = jax.numpy
    optimizer, step, _, nll = _jax_functions(threads, float(learning_rate))
    y_all = jnp.asarray(data, dtype=jnp.float64)
    batches = np.ascontiguousarray(batches, dtype=np.int64)
    theta = jnp.asarray(theta0, dtype=jnp.float64)
    opt_state = optimizer.init(theta)
    start = time.perf_counter()
    jax.block_until_ready(step(theta, opt_state, batches[0], y_all))
    warm = time.perf_counter() - start
    start = time.perf_counter()
    for k in range(len(batches)):
        theta, opt_state, _ = step(theta, opt_state, batches[k], y_all)
    theta = jax.block_until_ready(theta)
    seconds = time.perf_counter() - start
    return TrainResult(np.asarray(theta), float(nll(theta, y_all)), seconds, warm, len(batches))


def jax_scan_train(
    data, theta0, batches, learning_rate: float, *, threads: int, closed_form: bool = False
) -> TrainResult:
    """The whole training loop compiled: `lax.scan` over the precomputed batch indices.

    With `closed_form`, the 2 x 2 solve and log|det| are written out (Cramer's rule)
    instead of `jnp.linalg.solve` and `slogdet`: the same maths, JAX's best case here.

    compile_seconds is the ahead-of-time `lower(...).compile()`; seconds is one call of the
    compiled loop (arguments already on the device).

    Raises:
        PeerUnavailableError: jax or optax is not installed.
    """
    jax, _ = _jax(threads)
    jnp = jax.numpy
    optimizer, _, loop, nll = _jax_functions(threads, float(learning_rate), closed_form)
    y_all = jnp.asarray(data, dtype=jnp.float64)
    index = jnp.asarray(np.ascontiguousarray(batches, dtype=np.int64))
    theta = jnp.asarray(theta0, dtype=jnp.float64)
    opt_state = optimizer.init(theta)
    start = time.perf_counter()
    compiled = loop.lower(theta, opt_state, index, y_all).compile()
    warm = time.perf_counter() - start
    start = time.perf_counter()
    theta, _ = jax.block_until_ready(compiled(theta, opt_state, index, y_all))
    seconds = time.perf_counter() - start
    return TrainResult(np.asarray(theta), float(nll(theta, y_all)), seconds, warm, len(batches))


def jax_value_and_grad(theta, data, *, threads: int = 1) -> tuple[float, np.ndarray]:
    """Mean NLL of `data` at θ and its gradient by `jax.value_and_grad` (for the checks)."""
    jax, _ = _jax(threads)
    jnp = jax.numpy
    loss, grad = jax.value_and_grad(_jax_nll, argnums=2)(
        jnp, jax, jnp.asarray(theta, dtype=jnp.float64), jnp.asarray(data, dtype=jnp.float64)
    )
    return float(loss), np.asarray(grad)
