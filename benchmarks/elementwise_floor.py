"""How much of the elementwise kernels' time is accuracy? The chain with the cheapest math.

Issue 6 asks for fused kernels 5x faster than JAX and PyTorch. This experiment asks
whether any choice of math functions could get there on this machine. It writes issue 6's
chain (the same one as `elementwise_benchmark.py`) as hand-written Numba loops over the
cheapest plausible vectorizable functions, and times them against symflow's
kernels, single-threaded, in one process:

- exp: k = round(x/ln2), a two-term reduction, the degree-11 Taylor polynomial (Horner,
  fused multiply-adds), times 2^k from bits. No correction terms, no subnormal results,
  no overflow to inf: about 1 ULP for |x| < 708;
- log: fdlibm's method (s = f/(2+f), a degree-7 polynomial in s^2) with no care for
  subnormals, zero, inf or NaN: about 1 ULP;
- sinh(x) = (e^x - e^-x)/2, asinh(x) = log(|x| + sqrt(x^2 + 1)) and log cosh x =
  log((e^x + e^-x)/2): the textbook formulas, which lose all relative accuracy near 0
  (the script prints by how much).

The chain's functions in symflow are within 0.5-2.1 ULP everywhere (±0, subnormals, huge arguments,
inf, NaN). If the cheap versions barely run faster, then accuracy is not what the kernels
pay for. The cost is the arithmetic of four transcendental functions per element on 4-wide
AVX2.

With `--jax`, it also times JAX (`jax.jit`, one thread, the functions of
`elementwise_benchmark.py`). It prints the time 5x faster than JAX would need next to both
kernels.

Run:

    python benchmarks/elementwise_floor.py [--n 1000000] [--repeat 15] [--jax]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

# one XLA thread, set before JAX can be imported
os.environ.setdefault(
    "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
)

import numba  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from elementwise_benchmark import (  # noqa: E402
    MULT,
    SCALE,
    SHIFT,
    SKEW,
    TAIL,
    jax_functions,
    symflow_chain,
)

CHAIN = symflow_chain()
# The bit casts and the fused multiply-add are symflow's intrinsics, taken from the chain's
# generated module so that both sides use the same primitives.
_MODULE = CHAIN.fused_kernels().module
_as_bits, _from_bits, _fma = _MODULE._sf_as_bits, _MODULE._sf_from_bits, _MODULE._sf_fma
LN2_HI, LN2_LO = 0.6931471803691238, 1.9082149292705877e-10  # fdlibm's split of log 2
LOG_CONST = math.log(SCALE) + math.log(TAIL) + math.log(MULT)


@numba.njit(error_model="numpy", forceinline=True)
def cheap_exp(x):
    """e^x, about 1 ULP for |x| < 708; no subnormal results, no overflow."""
    x = min(max(x, -708.0), 709.0)
    t = _fma(x, 1.4426950408889634, 6755399441055744.0)  # 1.5·2^52 + round(x/ln2)
    kf = t - 6755399441055744.0
    k = _as_bits(t) - 4843621399236968448
    r = _fma(-kf, 0.6931471805599453, x)
    r = _fma(-kf, 2.3190468138462996e-17, r)
    p = _fma(2.505210838544172e-08, r, 2.755731922398589e-07)
    p = _fma(p, r, 2.7557319223985893e-06)
    p = _fma(p, r, 2.48015873015873e-05)
    p = _fma(p, r, 0.0001984126984126984)
    p = _fma(p, r, 0.001388888888888889)
    p = _fma(p, r, 0.008333333333333333)
    p = _fma(p, r, 0.041666666666666664)
    p = _fma(p, r, 0.16666666666666666)
    p = _fma(p, r, 0.5)
    p = _fma(p, r, 1.0)
    p = _fma(p, r, 1.0)
    return p * _from_bits((k + 1023) << 52)


@numba.njit(error_model="numpy", forceinline=True)
def cheap_log(x):
    """log x for normal positive x, about 1 ULP (fdlibm's method, no special cases)."""
    ix = _as_bits(x)
    k = (ix - 4604544271217802189) >> 52  # 4604544271217802189: the bits of sqrt(1/2)
    f = _from_bits(ix - (k << 52)) - 1.0  # x = 2^k (1 + f), sqrt(1/2) <= 1 + f < sqrt(2)
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    t1 = w * (0.3999999999940942 + w * (0.22222198432149784 + w * 0.15313837699209373))
    t2 = z * (
        0.6666666666666735
        + w * (0.2857142874366239 + w * (0.1818357216161805 + w * 0.14798198605116586))
    )
    hfsq = 0.5 * f * f
    kf = float(k)
    return s * (hfsq + t2 + t1) + kf * LN2_LO - hfsq + f + kf * LN2_HI


@numba.njit(error_model="numpy", forceinline=True)
def cheap_asinh(x):
    a = abs(x)
    return math.copysign(cheap_log(a + math.sqrt(_fma(a, a, 1.0))), x)


@numba.njit(error_model="numpy", forceinline=True)
def cheap_sinh(x):
    e = cheap_exp(x)
    return 0.5 * (e - 1.0 / e)


@numba.njit(error_model="numpy", forceinline=True)
def cheap_logcosh(x):
    e = cheap_exp(x)
    return cheap_log(0.5 * (e + 1.0 / e))


@numba.njit(error_model="numpy")
def cheap_forward(z, out):
    for i in range(z.shape[0]):
        out[0, i] = cheap_exp(MULT * cheap_sinh(TAIL * (cheap_asinh(SHIFT + SCALE * z[i]) + SKEW)))


@numba.njit(error_model="numpy")
def cheap_forward_ldj(z, out):
    for i in range(z.shape[0]):
        u = SHIFT + SCALE * z[i]
        t = TAIL * (cheap_asinh(u) + SKEW)
        v = MULT * cheap_sinh(t)
        out[0, i] = cheap_exp(v)
        out[1, i] = LOG_CONST + cheap_logcosh(t) - 0.5 * cheap_log(_fma(u, u, 1.0)) + v


@numba.njit(error_model="numpy")
def cheap_inverse_ldj(y, out):
    for i in range(y.shape[0]):
        v = cheap_log(y[i])  # y > 0 here; symflow's kernel also checks y < 0 and nan
        t = cheap_asinh(v / MULT)
        u = cheap_sinh(t / TAIL - SKEW)
        out[0, i] = (u - SHIFT) / SCALE
        out[1, i] = -(LOG_CONST + cheap_logcosh(t) - 0.5 * cheap_log(_fma(u, u, 1.0)) + v)


def _best_ns(fn, args, n: int, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - t)
    return min(times) / n * 1e9


def _near_zero_error() -> list[str]:
    """What the textbook formulas lose near 0, where symflow's functions do not."""
    import mpmath

    mpmath.mp.dps = 40
    lines = []
    for x in (1e-3, 1e-8, 1e-12):
        for name, cheap, exact in (
            ("sinh", cheap_sinh, mpmath.sinh),
            ("asinh", cheap_asinh, mpmath.asinh),
            ("log cosh", cheap_logcosh, lambda v: mpmath.log(mpmath.cosh(v))),
        ):
            truth = exact(mpmath.mpf(x))
            rel = abs((mpmath.mpf(cheap(x)) - truth) / truth)
            lines.append(f"  cheap {name:<8} at {x:g}: relative error {float(rel):.1e}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--jax", action="store_true", help="time JAX (one thread) as well")
    args = parser.parse_args()
    numba.set_num_threads(1)
    n = args.n
    z = np.random.default_rng(0).standard_normal(n)
    y = CHAIN.forward(z)
    fk = CHAIN.fused_kernels()
    params = [np.atleast_1d(np.asarray(a, dtype=np.float64)).ravel() for a in fk.arrays]
    one, two = np.empty((1, n)), np.empty((2, n))
    ops = {
        "forward": (fk.module.forward, (z, *params, one), cheap_forward, (z, one)),
        "forward + log-det": (
            fk.module.forward_and_log_det,
            (z, *params, two),
            cheap_forward_ldj,
            (z, two),
        ),
        "inverse + log-det": (
            fk.module.inverse_and_log_det,
            (y, *params, two),
            cheap_inverse_ldj,
            (y, two),
        ),
    }
    # the cheap kernels compute the same maths: compare at these (moderate) points
    exact = {
        "forward": (CHAIN.forward(z),),
        "forward + log-det": CHAIN.forward_and_log_det(z),
        "inverse + log-det": CHAIN.inverse_and_log_det(y),
    }
    jax = {}
    if args.jax:
        jax = jax_functions()
        if jax is None:
            parser.error("--jax: JAX is not installed")
    print(f"n = {n}, one thread, ns per element (min of {args.repeat})")
    header = f"{'op':<18} {'symflow':>8} {'cheapest':>9} {'symflow/cheapest':>17}"
    if jax:
        header += f" {'JAX':>7} {'JAX/5':>6}"
    print(header)
    for op, (fn, fargs, cheap, cargs) in ops.items():
        fn(*fargs), cheap(*cargs)  # compiled before timing
        out = cargs[1]
        for k, want in enumerate(exact[op]):
            err = np.max(np.abs(out[k] - want) / np.maximum(np.abs(want), 1.0))
            if not err < 1e-9:
                raise AssertionError(f"{op}: the cheap kernel's output {k} is off by {err:.1e}")
        a = b = math.inf
        for _ in range(3):  # interleaved, so that both meet the same machine
            a = min(a, _best_ns(fn, fargs, n, args.repeat))
            b = min(b, _best_ns(cheap, cargs, n, args.repeat))
        row = f"{op:<18} {a:8.2f} {b:9.2f} {a / b:17.2f}"
        if jax:
            j = jax[op]
            j(fargs[0])
            jt = _best_ns(j, (fargs[0],), n, max(3, args.repeat // 3))
            row += f" {jt:7.1f} {jt / 5:6.1f}"
        print(row)
    print("what the cheap formulas lose near 0 (symflow's functions: < 2.1 ULP, ~1e-16):")
    print("\n".join(_near_zero_error()))


if __name__ == "__main__":
    main()
