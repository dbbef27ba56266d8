"""log_prob and sample of a five-member elementwise flow: symflow, NumPy, hand-written Numba.

The flow: y = softplus(1 + SinhArcsinh(0.3, 1.5)(0.5 + 2 * sinh(z))), z ~ Normal(0, 1);
in TFP's order `Chain([Softplus(), Shift(1), SinhArcsinh(0.3, 1.5), AffineScalar(0.5, 2),
Sinh()])`. symflow runs it as one fused kernel per call (`log_prob` fuses the base
density too). The hand-written Numba kernels are the reference: the same maths in one
loop, parameter-only terms hoisted, stable formulas a careful person would write. NumPy
does the same maths with whole-array ufuncs. Sampling times include drawing the standard
normals (numpy's Generator, the same for all three) and allocating the result.

Run (single-threaded and all cores):

    python benchmarks/chain_benchmark.py [--n 1000000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import math
import time

import numba
import numpy as np

SKEW, TAIL, SHIFT, SCALE, OFFSET = 0.3, 1.5, 0.5, 2.0, 1.0
LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def symflow_objects():
    from symflow import bijectors as sfb
    from symflow import distributions as sfd

    chain = sfb.Chain(
        [
            sfb.Softplus(),
            sfb.Shift(shift=OFFSET),
            sfb.SinhArcsinh(skewness=SKEW, tailweight=TAIL),
            sfb.AffineScalar(shift=SHIFT, scale=SCALE),
            sfb.Sinh(),
        ]
    )
    return chain, sfd.TransformedDistribution(sfd.Normal(0.0, 1.0), chain)


# -- hand-written Numba: the reference ----------------------------------------------------
@numba.njit(cache=True)
def _softplus(x):
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


@numba.njit(cache=True)
def _softplus_inverse(y):
    # log(expm1(y)) without overflow for large y
    return y + math.log(-math.expm1(-y))


@numba.njit(cache=True)
def _log_cosh(x):
    a = abs(x)
    return a + math.log1p(math.exp(-2.0 * a)) - math.log(2.0)


def _hand_kernels(parallel: bool):
    loop = numba.prange if parallel else range

    @numba.njit(cache=True, parallel=parallel)
    def sample(z, out):
        mult = 2.0 / math.sinh(math.asinh(2.0) * TAIL)
        for i in loop(z.shape[0]):
            u = SHIFT + SCALE * math.sinh(z[i])
            v = math.sinh((math.asinh(u) + SKEW) * TAIL) * mult
            out[i] = _softplus(OFFSET + v)

    @numba.njit(cache=True, parallel=parallel)
    def log_prob(y, out):
        inv_mult = math.sinh(math.asinh(2.0) * TAIL) / 2.0
        log_mult = math.log(2.0) - math.log(math.sinh(math.asinh(2.0) * TAIL))
        log_tail, log_scale = math.log(TAIL), math.log(SCALE)
        for i in loop(y.shape[0]):
            a = y[i]
            # softplus^-1 and its log-derivative: -log sigmoid(v) = softplus(-v) = a - v
            v = _softplus_inverse(a)
            ldj = a - v
            v -= OFFSET
            w = math.asinh(v * inv_mult) / TAIL - SKEW
            u = math.sinh(w)
            # SinhArcsinh: fldj at u = log_mult + log(tail) + log cosh(tail*(asinh u+skew))
            #              - 0.5*log1p(u^2)
            ldj -= log_mult + log_tail + _log_cosh(TAIL * (math.asinh(u) + SKEW))
            ldj += 0.5 * math.log1p(u * u)
            s = (u - SHIFT) / SCALE
            ldj -= log_scale
            z = math.asinh(s)
            ldj -= 0.5 * math.log1p(s * s)  # sinh'(z) = cosh(z) = sqrt(1 + s^2)
            out[i] = -0.5 * z * z - LOG_SQRT_2PI + ldj

    return sample, log_prob


# -- NumPy --------------------------------------------------------------------------------
def numpy_sample(z):
    mult = 2.0 / np.sinh(np.arcsinh(2.0) * TAIL)
    u = SHIFT + SCALE * np.sinh(z)
    v = np.sinh((np.arcsinh(u) + SKEW) * TAIL) * mult
    return np.logaddexp(0.0, OFFSET + v)


def numpy_log_prob(y):
    inv_mult = np.sinh(np.arcsinh(2.0) * TAIL) / 2.0
    log_mult = np.log(2.0) - np.log(np.sinh(np.arcsinh(2.0) * TAIL))
    a = y
    v = a + np.log(-np.expm1(-a))
    ldj = a - v
    v = v - OFFSET
    u = np.sinh(np.arcsinh(v * inv_mult) / TAIL - SKEW)
    t = TAIL * (np.arcsinh(u) + SKEW)
    log_cosh = np.abs(t) + np.log1p(np.exp(-2.0 * np.abs(t))) - np.log(2.0)
    ldj = ldj - (log_mult + np.log(TAIL) + log_cosh) + 0.5 * np.log1p(u * u)
    s = (u - SHIFT) / SCALE
    z = np.arcsinh(s)
    ldj = ldj - np.log(SCALE) - 0.5 * np.log1p(s * s)
    return -0.5 * z * z - LOG_SQRT_2PI + ldj


def _median_time(fn, repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    n = args.n
    chain, dist = symflow_objects()
    z = np.random.default_rng(0).standard_normal(n)
    y = numpy_sample(z)
    out = np.empty(n)
    cores = numba.config.NUMBA_NUM_THREADS
    print(f"five-member chain, n = {n:,}, median of {args.repeat}, ns per element")
    print(f"{'':28}{'symflow':>10}{'hand Numba':>12}{'NumPy':>10}{'sf/hand':>10}{'sf/NumPy':>10}")
    for threads, label in ((1, "1 thread"), (cores, f"{cores} threads")):
        numba.set_num_threads(threads)
        hand_sample, hand_log_prob = _hand_kernels(parallel=threads > 1)
        # correctness first: all three agree on both quantities
        hand_sample(z, out)
        np.testing.assert_allclose(chain.forward(z), out, rtol=1e-12)
        draws = np.empty(1000)
        hand_sample(np.random.default_rng(0).standard_normal(1000), draws)
        np.testing.assert_allclose(dist.sample(1000, seed=0), draws, rtol=1e-12)
        hand_log_prob(y, out)
        np.testing.assert_allclose(dist.log_prob(y), out, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(numpy_log_prob(y), out, rtol=1e-10, atol=1e-12)
        rows = {
            "sample (n draws)": (
                lambda: dist.sample(n, seed=0),
                lambda hand_sample=hand_sample: hand_sample(
                    np.random.default_rng(0).standard_normal(n), np.empty(n)
                ),
                lambda: numpy_sample(np.random.default_rng(0).standard_normal(n)),
            ),
            "log_prob (y)": (
                lambda: dist.log_prob(y),
                lambda hand_log_prob=hand_log_prob: hand_log_prob(y, out),
                lambda: numpy_log_prob(y),
            ),
        }
        for name, (sf_fn, hand_fn, np_fn) in rows.items():
            if threads > 1 and n < chain.fused_kernels().module.PARALLEL_THRESHOLD:
                continue
            t_sf, t_hand, t_np = (_median_time(f, args.repeat) for f in (sf_fn, hand_fn, np_fn))
            per = [t / n * 1e9 for t in (t_sf, t_hand, t_np)]
            print(
                f"{name + ', ' + label:28}{per[0]:10.1f}{per[1]:12.1f}{per[2]:10.1f}"
                f"{t_sf / t_hand:10.2f}{t_sf / t_np:10.2f}"
            )


if __name__ == "__main__":
    main()
