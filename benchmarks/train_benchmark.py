"""Training a small flow by maximum likelihood: symflow, hand Numba, PyTorch, JAX.

The flow, sampling direction: x ~ N(0, I_2); u = PReLU(x) (u_i = x_i if x_i >= 0, else
alpha * x_i); y = M u + shift with M = L + V V^T, L = [[t2, 0], [t1, t0]] (TFP's
FillTriangular order for t = (t0, t1, t2)) and V a 2 x 2 factor (perturbation diagonal
fixed at ones). In TFP's terms: `Chain([Affine(shift, scale_tril=L,
scale_perturb_factor=V), PReLU(alpha)])` over `MultivariateNormalDiag(loc=[0, 0])`.

θ (10 entries, unconstrained): [alpha_raw, shift (2), t (3), V row-major (4)], alpha =
softplus(alpha_raw). Start: alpha = 0.5, shift = 0, L = I, V = 0.1 I. Data: 1000 draws
of N((1, 1), 4 I), so the best fit is alpha = 1, M = 2 I (up to sign and rotation),
shift = (1, 1), and every implementation should end near the true distribution's NLL.

Training: mean NLL over batches of 100, Adam (lr 1e-2, betas 0.9 / 0.999, eps 1e-7, bias
corrected, eps added to sqrt(v_hat)), 100 epochs of 10 steps, a shuffle per epoch. The
hand kernel shuffles inside its compiled loop (a seeded xorshift Fisher-Yates); PyTorch
and JAX get the same batch order as an index array, so their final θ agree with the
reference to rounding. symflow's `fit` shuffles its own way. A trailing partial batch is
dropped.

Implementations: the hand-written Numba kernel (the reference: the whole training in one
`njit` call, the loss and an analytic gradient fused in one pass over each batch; also
built with symflow's fastmath flags, "reassoc" and "contract", which let LLVM vectorize
its rows), PyTorch eager (float64, autograd, `torch.optim.Adam`), JAX with a jitted step called
from Python and with the whole loop in `lax.scan` (float64, optax Adam), and symflow's
`fit`. PyTorch and JAX are optional. Times exclude compilation, which is shown apart.

Run:

    python benchmarks/train_benchmark.py [--epochs 100] [--threads N] [--repeat 7]
        [--skip torch,jax,symflow] [--check]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
import traceback
from pathlib import Path

import numba
import numpy as np

_HERE = Path(__file__).resolve().parent
for _path in (_HERE, _HERE.parent):  # _train_peers beside this file; symflow from this checkout
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from _train_peers import (  # noqa: E402
    PeerUnavailableError,
    TrainResult,
    jax_scan_train,
    jax_step_train,
    jax_value_and_grad,
    torch_train,
    torch_value_and_grad,
)

N_SAMPLES = 1000
N_THETA = 10
THETA_NAMES = ["alpha_raw", "shift0", "shift1", "t0", "t1", "t2", "V00", "V01", "V10", "V11"]
LOG_2PI = math.log(2.0 * math.pi)
ADAM_B1, ADAM_B2, ADAM_EPS = 0.9, 0.999, 1e-7


def make_data(seed: int = 0) -> np.ndarray:
    """1000 draws of N((1, 1), diag(4, 4)), shape (1000, 2)."""
    rng = np.random.default_rng(seed)
    return 1.0 + 2.0 * rng.standard_normal((N_SAMPLES, 2))


def initial_theta() -> np.ndarray:
    """θ0: alpha = 0.5, shift = 0, t = (1, 0, 1) (L = I), V = 0.1 I."""
    theta = np.zeros(N_THETA)
    theta[0] = math.log(math.expm1(0.5))
    theta[3:6] = (1.0, 0.0, 1.0)
    theta[6:10] = (0.1, 0.0, 0.0, 0.1)
    return theta


def unpack(theta) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """(alpha, shift (2,), L (2, 2), V (2, 2)) from θ."""
    theta = np.asarray(theta, dtype=np.float64)
    alpha = float(np.logaddexp(0.0, theta[0]))
    t0, t1, t2 = theta[3:6]
    return alpha, theta[1:3].copy(), np.array([[t2, 0.0], [t1, t0]]), theta[6:10].reshape(2, 2)


def numpy_nll(theta, data) -> float:
    """Mean NLL of `data` under the flow at θ, in NumPy (a dense solve; the checks' truth)."""
    alpha, shift, tril, factor = unpack(theta)
    scale = tril + factor @ factor.T
    u = np.linalg.solve(scale, (data - shift).T).T
    negative = u < 0
    x = np.where(negative, u / alpha, u)
    log_det = np.linalg.slogdet(scale)[1]
    per = 0.5 * (x * x).sum(1) + LOG_2PI + log_det + negative.sum(1) * math.log(alpha)
    return float(per.mean())


def true_nll(data) -> float:
    """Mean of -log N(y; (1, 1), 4 I) over the data: the generating distribution's NLL."""
    z = (data - 1.0) / 2.0
    return float((0.5 * (z * z).sum(1) + LOG_2PI + 2.0 * math.log(2.0)).mean())


# -- hand-written Numba: the reference ----------------------------------------------------
@numba.njit(cache=True)
def _softplus(x):
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


@numba.njit(cache=True)
def _sigmoid(x):
    # softplus' = sigmoid, written so exp never overflows
    if x >= 0.0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


@numba.njit(cache=True)
def _batch_nll_grad(theta, data, rows, start, stop, grad):
    """Mean NLL over data[rows[start:stop]]; writes d(mean NLL)/dθ into grad.

    Per sample: z = y - shift, u = M^-1 z (Cramer's rule), x_i = u_i or u_i / alpha, and
    c = dNLL/du = x_i for u_i >= 0, x_i / alpha below (c_i = u_i / alpha^2). Only sums
    over the batch are kept: Σ c, Σ c u^T, the count of negative u_i and Σ x_i^2 over
    them; everything else happens once per batch. With W = M^-T: dNLL/dshift = -W c̄,
    dNLL/dM = W - W (c u^T)‾ (the solve, then log|det M|), dL is dM's lower triangle in
    fill order, dV = (G + G^T) V, and d alpha_raw = dalpha * sigmoid(alpha_raw).
    """
    alpha = _softplus(theta[0])
    inv_alpha = 1.0 / alpha
    s0, s1 = theta[1], theta[2]
    t0, t1, t2 = theta[3], theta[4], theta[5]
    v00, v01, v10, v11 = theta[6], theta[7], theta[8], theta[9]
    vvt01 = v00 * v10 + v01 * v11  # V V^T is symmetric
    m00 = t2 + v00 * v00 + v01 * v01
    m01 = vvt01
    m10 = t1 + vvt01
    m11 = t0 + v10 * v10 + v11 * v11
    det = m00 * m11 - m01 * m10
    inv_det = 1.0 / det
    sq = 0.0  # Σ x^2
    n_neg = 0.0  # count of u_i < 0
    sq_neg = 0.0  # Σ x^2 over u_i < 0
    c0s = c1s = 0.0
    cu00 = cu01 = cu10 = cu11 = 0.0
    for k in range(start, stop):
        i = rows[k]
        z0 = data[i, 0] - s0
        z1 = data[i, 1] - s1
        u0 = (m11 * z0 - m01 * z1) * inv_det
        u1 = (m00 * z1 - m10 * z0) * inv_det
        # PReLU's branch without jumps: near the optimum the sign of u is a coin flip, and
        # mispredicted branches cost more than the rest of the loop body. f = [u < 0]
        # becomes a compare-and-mask, and a = 1 or 1/alpha exactly (one term is zero).
        f0 = 1.0 if u0 < 0.0 else 0.0
        f1 = 1.0 if u1 < 0.0 else 0.0
        a0 = (1.0 - f0) + inv_alpha * f0
        a1 = (1.0 - f1) + inv_alpha * f1
        x0 = u0 * a0
        x1 = u1 * a1
        c0 = x0 * a0
        c1 = x1 * a1
        q0 = x0 * x0
        q1 = x1 * x1
        sq += q0 + q1
        n_neg += f0 + f1
        sq_neg += q0 * f0 + q1 * f1
        c0s += c0
        c1s += c1
        cu00 += c0 * u0
        cu01 += c0 * u1
        cu10 += c1 * u0
        cu11 += c1 * u1
    inv_b = 1.0 / (stop - start)
    log_alpha = math.log(alpha)
    nll = 0.5 * sq * inv_b + LOG_2PI + math.log(abs(det)) + n_neg * inv_b * log_alpha
    # d/dalpha of  Σ_{u<0} (x^2/2 + log alpha),  x = u / alpha
    grad[0] = (n_neg - sq_neg) * inv_alpha * inv_b * _sigmoid(theta[0])
    # W = M^-T
    w00 = m11 * inv_det
    w01 = -m10 * inv_det
    w10 = -m01 * inv_det
    w11 = m00 * inv_det
    c0s *= inv_b
    c1s *= inv_b
    grad[1] = -(w00 * c0s + w01 * c1s)
    grad[2] = -(w10 * c0s + w11 * c1s)
    cu00 *= inv_b
    cu01 *= inv_b
    cu10 *= inv_b
    cu11 *= inv_b
    g00 = w00 - (w00 * cu00 + w01 * cu10)
    g01 = w01 - (w00 * cu01 + w01 * cu11)
    g10 = w10 - (w10 * cu00 + w11 * cu10)
    g11 = w11 - (w10 * cu01 + w11 * cu11)
    grad[3] = g11  # L = [[t2, 0], [t1, t0]]
    grad[4] = g10
    grad[5] = g00
    s00 = 2.0 * g00
    s01 = g01 + g10
    s11 = 2.0 * g11
    grad[6] = s00 * v00 + s01 * v10
    grad[7] = s00 * v01 + s01 * v11
    grad[8] = s01 * v00 + s11 * v10
    grad[9] = s01 * v01 + s11 * v11
    return nll


#: The same kernel compiled with the fastmath flags symflow's training kernel uses: sums may
#: be reordered ("reassoc", so LLVM vectorizes the rows) and multiply-adds fused
#: ("contract"). A stronger reference than the scalar loop, shown beside it. Not cached:
#: Numba's cache is keyed by the function, not its flags, so it would load the other build.
_batch_nll_grad_fast = numba.njit(fastmath={"reassoc", "contract"})(_batch_nll_grad.py_func)


@numba.njit(cache=True)
def _seed_state(seed):
    # splitmix64 of the seed: a nonzero, well-mixed xorshift state
    z = np.uint64(seed) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return z if z != np.uint64(0) else np.uint64(1)


@numba.njit(cache=True)
def _shuffle(rows, state):
    """Fisher-Yates shuffle of `rows` in place; returns the new RNG state.

    xorshift64* with Lemire's multiply-shift for the bounded draw (bias below n / 2^32).
    Numba's `np.random.shuffle` takes 13-35 ns an element here (a call into the global
    Mersenne Twister per draw), which at 100 rows a step is more than the step itself.
    """
    s = state
    for i in range(rows.shape[0] - 1, 0, -1):
        s ^= s >> np.uint64(12)
        s ^= s << np.uint64(25)
        s ^= s >> np.uint64(27)
        r = (s * np.uint64(0x2545F4914F6CDD1D)) >> np.uint64(32)
        j = np.int64((r * np.uint64(i + 1)) >> np.uint64(32))
        rows[i], rows[j] = rows[j], rows[i]
    return s


@numba.njit(cache=True)
def _hand_train(data, theta0, epochs, batch_size, learning_rate, seed, fast):
    """The whole training: shuffles, fused loss + gradient, Adam; returns the final θ.
    fast: the fastmath build of the loss and gradient."""
    n = data.shape[0]
    rows = np.arange(n)
    theta = theta0.copy()
    m = np.zeros_like(theta)
    v = np.zeros_like(theta)
    grad = np.empty_like(theta)
    b1t = 1.0
    b2t = 1.0
    state = _seed_state(seed)
    for _ in range(epochs):
        state = _shuffle(rows, state)
        for start in range(0, n - batch_size + 1, batch_size):
            if fast:
                _batch_nll_grad_fast(theta, data, rows, start, start + batch_size, grad)
            else:
                _batch_nll_grad(theta, data, rows, start, start + batch_size, grad)
            b1t *= ADAM_B1
            b2t *= ADAM_B2
            lr_m = learning_rate / (1.0 - b1t)
            inv_bc2 = 1.0 / (1.0 - b2t)
            for j in range(theta.shape[0]):
                g = grad[j]
                m[j] = ADAM_B1 * m[j] + (1.0 - ADAM_B1) * g
                v[j] = ADAM_B2 * v[j] + (1.0 - ADAM_B2) * g * g
                theta[j] -= lr_m * m[j] / (math.sqrt(v[j] * inv_bc2) + ADAM_EPS)
    return theta


@numba.njit(cache=True)
def _batch_order(n, epochs, batch_size, seed):
    """The rows of every step, (epochs * (n // batch_size), batch_size): `_hand_train`'s
    order, drawn by the same seeded shuffles."""
    rows = np.arange(n)
    per_epoch = n // batch_size
    out = np.empty((epochs * per_epoch, batch_size), dtype=np.int64)
    state = _seed_state(seed)
    for e in range(epochs):
        state = _shuffle(rows, state)
        for s in range(per_epoch):
            out[e * per_epoch + s, :] = rows[s * batch_size : (s + 1) * batch_size]
    return out


def hand_value_and_grad(theta, data) -> tuple[float, np.ndarray]:
    """Mean NLL of `data` at θ and its gradient from the hand kernel."""
    grad = np.empty(N_THETA)
    data = np.ascontiguousarray(data, dtype=np.float64)
    rows = np.arange(data.shape[0])
    nll = _batch_nll_grad(np.asarray(theta, dtype=np.float64), data, rows, 0, len(rows), grad)
    return float(nll), grad


def hand_train(data, theta0, epochs, batch_size, learning_rate, seed, fast=False) -> TrainResult:
    """The reference. compile_seconds is the first call (one epoch): Numba's compilation,
    or its load from the on-disk cache when `cache=True` already has it."""
    data = np.ascontiguousarray(data, dtype=np.float64)
    theta0 = np.asarray(theta0, dtype=np.float64)
    start = time.perf_counter()
    _hand_train(data, theta0, 1, batch_size, learning_rate, seed, fast)
    warm = time.perf_counter() - start
    start = time.perf_counter()
    theta = _hand_train(data, theta0, epochs, batch_size, learning_rate, seed, fast)
    seconds = time.perf_counter() - start
    steps = epochs * (data.shape[0] // batch_size)
    return TrainResult(theta, hand_value_and_grad(theta, data)[0], seconds, warm, steps)


# -- symflow ------------------------------------------------------------------------------
def symflow_train(data, theta0, epochs, batch_size, learning_rate, seed) -> TrainResult | None:
    """symflow's `fit` on the same flow; None (with a message) while it is not available.

    seconds is `FitResult.seconds` (the compiled training calls, as the hand kernel is
    timed), compile_seconds the `FitResult.compile_seconds` of a first one-epoch `fit`
    (planning, emission, Numba compilation or its cache load); the whole `fit()` call's
    wall time goes in `note`. θ is read back from the trained bijectors in this script's
    order.
    """
    try:
        import symflow as sf
        from symflow import bijectors as sfb
        from symflow import distributions as sfd

        fit, adam = sf.fit, sf.Adam
    except (ImportError, AttributeError):
        print("symflow training not available yet")
        return None
    alpha, shift, tril, factor = unpack(theta0)

    def run(n_epochs):
        affine = sfb.Affine(shift=shift, scale_tril=tril, scale_perturb_factor=factor)
        dist = sfd.TransformedDistribution(
            sfd.MultivariateNormalDiag(loc=np.zeros(2)),
            sfb.Chain([affine, sfb.PReLU(alpha=alpha)]),
        )
        start = time.perf_counter()
        result = fit(
            dist,
            data,
            epochs=n_epochs,
            batch_size=batch_size,
            optimizer=adam(learning_rate=learning_rate),
            seed=seed,
            progress=False,
        )
        wall = time.perf_counter() - start
        return result, wall, getattr(result, "seconds", wall)

    try:
        first, warm, _ = run(1)
        warm = getattr(first, "compile_seconds", warm)
        result, wall, seconds = run(epochs)
        affine, prelu = result.distribution.bijector.bijectors
        theta = np.empty(N_THETA)
        theta[0] = math.log(math.expm1(float(prelu.parameters["alpha"])))
        theta[1:3] = affine.parameters["shift"]
        tril = affine.parameters["scale_tril"]
        theta[3:6] = (tril[1, 1], tril[1, 0], tril[0, 0])
        theta[6:10] = np.asarray(affine.parameters["scale_perturb_factor"]).reshape(-1)
    except (ImportError, AttributeError, TypeError) as err:
        print(f"symflow training not available yet ({type(err).__name__}: {err})")
        return None
    steps = epochs * (len(data) // batch_size)
    nll = -float(np.mean(result.distribution.log_prob(data)))
    return TrainResult(theta, nll, seconds, warm, steps, f"whole fit() {wall * 1e3:.1f} ms")


# -- checks -------------------------------------------------------------------------------
def check_gradients(data, *, skip=(), threads: int = 1, verbose: bool = True) -> float:
    """Checks the hand kernel's loss and gradient; returns the worst relative error.

    The loss against NumPy's dense solve; the gradient against a central finite difference
    of that NumPy loss (float64, step 1e-6 relative), and against PyTorch's and JAX's
    autodiff where installed; at θ0 and at three random θ with PReLU's both branches hit.

    Raises:
        RuntimeError: an error above the tolerance (a bug in the hand derivation).
    """
    rng = np.random.default_rng(1)
    batch = data[:100]
    points = [initial_theta()] + [
        initial_theta() + 0.4 * rng.standard_normal(N_THETA) for _ in range(3)
    ]
    worst_fd = worst_ad = 0.0
    peers = set()
    for theta in points:
        loss, grad = hand_value_and_grad(theta, batch)
        if abs(loss - numpy_nll(theta, batch)) > 1e-12 * max(1.0, abs(loss)):
            raise RuntimeError(f"hand loss {loss} != NumPy loss {numpy_nll(theta, batch)}")
        fd = np.empty(N_THETA)
        for j in range(N_THETA):
            h = 1e-6 * max(1.0, abs(theta[j]))
            up, down = theta.copy(), theta.copy()
            up[j] += h
            down[j] -= h
            fd[j] = (numpy_nll(up, batch) - numpy_nll(down, batch)) / (2 * h)
        scale = max(1.0, float(np.abs(fd).max()))
        worst_fd = max(worst_fd, float(np.abs(grad - fd).max()) / scale)
        for name, value_and_grad in (("torch", torch_value_and_grad), ("jax", jax_value_and_grad)):
            if name in skip:
                continue
            try:
                ad_loss, ad_grad = value_and_grad(theta, batch, threads=threads)
            except PeerUnavailableError:
                continue
            err = max(abs(ad_loss - loss), float(np.abs(ad_grad - grad).max()) / scale)
            peers.add(name)
            worst_ad = max(worst_ad, err)
    if verbose:
        versus = (
            f"vs {'/'.join(sorted(peers))} autodiff {worst_ad:.1e}"
            if peers
            else "no autodiff comparison (torch and jax not installed)"
        )
        print(
            f"hand gradient check: max rel. error vs central differences {worst_fd:.1e} "
            f"(4 points, 10 entries); {versus}"
        )
    if worst_fd > 1e-7 or worst_ad > 1e-11:
        raise RuntimeError(
            f"hand gradient disagrees: {worst_fd:.2e} vs finite differences, {worst_ad:.2e} "
            "vs autodiff"
        )
    return max(worst_fd, worst_ad)


def check_model_against_symflow(data) -> None:
    """The NumPy loss at θ0 equals -mean log_prob of symflow's own distribution."""
    try:
        from symflow import bijectors as sfb
        from symflow import distributions as sfd
    except ImportError as err:
        print(f"model check skipped: {err}")
        return
    alpha, shift, tril, factor = unpack(initial_theta())
    affine = sfb.Affine(shift=shift, scale_tril=tril, scale_perturb_factor=factor)
    dist = sfd.TransformedDistribution(
        sfd.MultivariateNormalDiag(loc=np.zeros(2)), sfb.Chain([affine, sfb.PReLU(alpha=alpha)])
    )
    ours, theirs = numpy_nll(initial_theta(), data), -float(np.mean(dist.log_prob(data)))
    if abs(ours - theirs) > 1e-10 * abs(ours):
        raise RuntimeError(f"the model's NLL {ours} != symflow's -log_prob {theirs}")
    print(f"model check: NLL at θ0 = {ours:.12f}, symflow's log_prob agrees")


# -- the table ----------------------------------------------------------------------------
def _measure(train, repeat: int) -> tuple[TrainResult, float]:
    """Runs `train()` `repeat` times: (first result, median seconds); compile from the
    first call, θ and NLL from the last."""
    results = [train()]
    if results[0] is None:
        return None, float("nan")
    results += [train() for _ in range(repeat - 1)]
    seconds = float(np.median([r.seconds for r in results]))
    return results[-1]._replace(compile_seconds=results[0].compile_seconds), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--learning-rate", type=float, default=1e-2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--torch-repeat", type=int, default=1, help="PyTorch eager is slow")
    parser.add_argument("--skip", default="", help="comma-separated: torch,jax,symflow")
    parser.add_argument("--check", action="store_true", help="run the checks only")
    args = parser.parse_args()
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))

    data = make_data(args.seed)
    theta0 = initial_theta()
    check_gradients(data, skip=skip, threads=args.threads)
    if args.check:
        if "symflow" not in skip:
            check_model_against_symflow(data)
        return

    batches = _batch_order(len(data), args.epochs, args.batch_size, args.seed)
    common = (data, theta0, args.epochs, args.batch_size, args.learning_rate, args.seed)
    peer = (data, theta0, batches, args.learning_rate)
    runs = {
        "hand Numba (reference)": (lambda: hand_train(*common), args.repeat, None),
        "hand Numba, fastmath": (lambda: hand_train(*common, fast=True), args.repeat, None),
        "symflow fit": (lambda: symflow_train(*common), args.repeat, "symflow"),
        "PyTorch eager": (
            lambda: torch_train(*peer, threads=args.threads),
            args.torch_repeat,
            "torch",
        ),
        "JAX jit step, Python loop": (
            lambda: jax_step_train(*peer, threads=args.threads),
            args.repeat,
            "jax",
        ),
        "JAX lax.scan loop": (
            lambda: jax_scan_train(*peer, threads=args.threads),
            args.repeat,
            "jax",
        ),
        "JAX lax.scan, 2x2 by hand": (
            lambda: jax_scan_train(*peer, threads=args.threads, closed_form=True),
            args.repeat,
            "jax",
        ),
    }
    measured: dict[str, tuple[TrainResult | None, float, str]] = {}
    for name, (train, repeat, key) in runs.items():
        if key in skip:
            measured[name] = (None, float("nan"), "skipped")
            continue
        try:
            result, seconds = _measure(train, repeat)
        except PeerUnavailableError as err:
            measured[name] = (None, float("nan"), f"not installed ({err})")
            continue
        except Exception as err:  # symflow's training is young: report it, keep the rest
            if key != "symflow":
                raise
            traceback.print_exc()
            measured[name] = (None, float("nan"), f"failed ({type(err).__name__}: {err})")
            continue
        measured[name] = (result, seconds, "" if result else "not available yet")

    steps = len(batches)
    hand = measured["hand Numba (reference)"]
    sym = measured["symflow fit"]
    print(
        f"\ntraining {steps} steps ({args.epochs} epochs x {len(data) // args.batch_size}, "
        f"batch {args.batch_size}), Adam lr {args.learning_rate}, float64, "
        f"{args.threads} thread(s); median of {args.repeat} ({args.torch_repeat} for PyTorch)"
    )
    print(f"true distribution's NLL on the data: {true_nll(data):.6f}")
    print(f"initial NLL:                          {numpy_nll(theta0, data):.6f}\n")
    header = (
        f"{'':28}{'compile s':>10}{'wall s':>9}{'µs/step':>9}{'final NLL':>11}"
        f"{'max|Δθ|':>10}{'x hand':>9}{'x symflow':>10}"
    )
    print(header)
    print("-" * len(header))
    for name, (result, seconds, note) in measured.items():
        if result is None:
            print(f"{name:28}{note}")
            continue
        per_step = seconds / result.steps
        nll_check = numpy_nll(result.theta, data)
        note = f"  {result.note}" if result.note else ""
        if abs(nll_check - result.nll) > 1e-9 * abs(nll_check):
            note += f"  (own NLL {result.nll:.9f} != NumPy {nll_check:.9f})"
        delta = float(np.abs(result.theta - hand[0].theta).max()) if hand[0] else float("nan")
        x_hand = seconds / result.steps / (hand[1] / hand[0].steps) if hand[0] else math.nan
        x_sym = seconds / result.steps / (sym[1] / sym[0].steps) if sym[0] else math.nan
        row = (
            f"{name:28}{result.compile_seconds:10.3f}{seconds:9.4f}"
            f"{per_step * 1e6:9.2f}{result.nll:11.6f}{delta:10.1e}{x_hand:9.1f}{x_sym:10.2f}"
        )
        print(row.replace("nan", "  -") + note)
    print(
        "\nwall s: the training steps (median), symflow's as FitResult.seconds (its kernel "
        "calls);\nµs/step equals ms per 1000 steps. compile s: Numba: the first call (compile "
        "or cache load,\none epoch); symflow: FitResult.compile_seconds of a one-epoch fit; "
        "JAX step: trace +\ncompile + one step; lax.scan: lower + compile; PyTorch: five "
        "warm-up steps; hand\nNumba, fastmath: compiled with the reference's first call.\n"
        "max|Δθ|: final θ against the hand kernel's (same batch order; "
        "symflow shuffles its own\nway, so it differs by the minibatch noise)."
    )
    for name, (result, seconds, _) in measured.items():
        if name.startswith("hand") and result and sym[0]:
            ratio = (sym[1] / sym[0].steps) / (seconds / result.steps)
            print(f"symflow / {name}: {ratio:.2f}")


if __name__ == "__main__":
    main()
