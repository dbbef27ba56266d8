"""Vectorizable exp-family functions for generated kernels: exp, expm1, sinh, cosh, tanh.

Each function is branch-free arithmetic on float64 (bit casts and fused multiply-adds
through the intrinsics of `symflow.codegen.helperbase`), so that LLVM inlines it into an
elementwise loop and vectorizes the loop, where a call of libm's `exp` keeps it scalar.
Special cases are computed alongside the general formula and picked with conditional
expressions, which become vector selects.

The semantics are those of Python's `math` functions extended the IEEE way: a result too
large is ±inf (no OverflowError), nan gives nan, exp(-inf) = 0, tanh(±inf) = ±1, and the
odd functions keep the sign of a zero.

All of them share one argument reduction: x = k·ln2 + r with k = round(x/ln2) (the
1.5·2^52 shifter, whose low bits are then k) and r = x - k·ln2 in two pieces (Cody–Waite:
k·ln2_hi is exact because ln2_hi has 43 bits, and the fused multiply-add keeps the
remainder exact), |r| <= ln2/2 + tiny. On that interval e^r - 1 - r = r²·q(r) with q a
degree-10 Chebyshev fit of (e^r - 1 - r)/r² (its error after rounding the coefficients to
float64 is 0.003 ULP of e^r). The same coefficients appear in `_sf_exp`, `_sf_expm1` and
`_sf_expm1_core`; the first two split off the r²/2 term exactly and evaluate only
(q(r) - 1/2)/r.

A helper here that calls another (sinh, cosh and tanh call `_sf_exp` or `_sf_expm1_core`)
stays small enough for LLVM's inliner to take it into a kernel's loop whole;
`tests/test_vectorized.py` checks that real generated kernels using them vectorize.

"Measured error" in a docstring is the largest error against 50-digit mpmath values at
200,000 points over the function's whole range (log-uniform magnitudes of both signs, and
uniform points near the overflow and underflow thresholds), in ULPs of the correctly
rounded result; `tests/test_vm_exp.py` asserts these bounds at a few thousand points.
"""

from __future__ import annotations

import math

from symflow.codegen.helperbase import Helper, _sf_as_bits, _sf_fma, _sf_from_bits, njit_helper

__all__ = ["HELPERS"]


def _sf_exp(x):
    """e^x for float64 x, vectorizable.

    Method: x = k·ln2 + r (see the module docstring) with the rounding error of r kept as
    r_lo; e^r = 1 + r + r²/2 + (r³·q3(r) + r_lo·(1 + r)), where 1 + r and then + r²/2 (r²/2
    split exactly into h2 + l2) are formed as exact two-term sums, so that the result is
    rounded about once; then times 2^k, built from bits as two factors
    2^(k>>1)·2^(k-(k>>1)) so that 2^k itself need not be a float64: results near overflow
    (x up to 709.78) and in the subnormal range (x down to -745.13) come out right, the
    latter rounded a second time only by the last product. x is clamped to [-746, 710]
    first, where e^x is already 0 or inf.

    Special values: exp(±0) = 1, exp(-inf) = 0, exp(inf) = inf, exp(nan) = nan; overflow
    (x > 709.782712893384) gives inf, x < -745.1332191019412 gives 0.

    Measured error: 0.52 ULP; 0.74 ULP where the result is subnormal (rounded twice).
    """
    xc = 710.0 if x > 710.0 else x  # nan stays nan, and so does everything computed from it
    xc = -746.0 if xc < -746.0 else xc
    t = _sf_fma(xc, 1.4426950408889634, 6755399441055744.0)  # 1.5·2^52 + round(x/ln2)
    kf = t - 6755399441055744.0
    k = _sf_as_bits(t) - 4843621399236968448  # bits of 1.5·2^52
    r_hi = _sf_fma(-kf, 0.6931471805598903, xc)  # ln2_hi = ln2 on a 2^-43 grid: exact
    r = _sf_fma(-kf, 5.497923018708371e-14, r_hi)  # ln2_lo = ln2 - ln2_hi
    r_lo = _sf_fma(-kf, 5.497923018708371e-14, r_hi - r)  # what rounding r lost
    q = _sf_fma(2.0914707069612355e-09, r, 2.510524515390137e-08)
    q = _sf_fma(q, r, 2.7557273594799413e-07)
    q = _sf_fma(q, r, 2.755725533255441e-06)
    q = _sf_fma(q, r, 2.480158732558584e-05)
    q = _sf_fma(q, r, 0.00019841269874873975)
    q = _sf_fma(q, r, 0.0013888888888883737)
    q = _sf_fma(q, r, 0.00833333333332612)
    q = _sf_fma(q, r, 0.04166666666666667)
    q = _sf_fma(q, r, 0.1666666666666667)
    h = 0.5 * r
    h2 = h * r  # r²/2 = h2 + l2 exactly
    l2 = _sf_fma(h, r, -h2)
    tail = _sf_fma(h2 * r, 2.0 * q, l2 + _sf_fma(r_lo, r, r_lo))  # e^(r + r_lo) - 1 - r - h2
    hi = 1.0 + r
    lo = (1.0 - hi) + r  # 1 + r = hi + lo exactly (Fast2Sum: |r| < 1)
    hi2 = hi + h2
    lo2 = (hi - hi2) + h2  # hi + h2 = hi2 + lo2 exactly (Fast2Sum: h2 < hi/10)
    y_lo = (lo + lo2) + tail  # e^(r + r_lo) = hi2 + y_lo
    k1 = k >> 1
    y = (hi2 + y_lo) * _sf_from_bits((k1 + 1023) << 52) * _sf_from_bits((k - k1 + 1023) << 52)
    return y


def _sf_expm1(x):
    """e^x - 1 for float64 x, vectorizable, accurate near 0.

    Method: x = k·ln2 + r + r_lo as in `_sf_exp`, e^r - 1 = r + r²/2 + t with t the tail
    of `_sf_exp`, and e^x - 1 = (2^k - 1) + 2^k·r + 2^k·r²/2 + 2^k·t. 2^k - 1 is split
    exactly into a + ca, 2^k·r is exact, and the three leading terms are summed by two
    Fast2Sums (each larger term first), so the cancellation for x in (-ln2, -ln2/2) and
    the -1 for negative k cost nothing; the small terms are added last. For k = 0
    (|x| < ln2/2) that is r + r²·q(r), relatively accurate down to the subnormals (below
    |x| = 1e-18 it returns x itself, which also keeps the sign of a zero). x is clamped to
    [-60, 710] (e^-60 - 1 rounds to -1); for k = 1024 (x > 709.43) the sum is formed with
    2^1023 and doubled.

    Special values: expm1(±0) = ±0, subnormal x gives x, expm1(-inf) = -1, expm1(inf) = inf,
    expm1(nan) = nan; x > 709.782712893384 gives inf.

    Measured error: 0.56 ULP.
    """
    xc = x if x < 710.0 else 710.0  # also maps nan to a finite number; restored below
    xc = xc if xc > -60.0 else -60.0
    t = _sf_fma(xc, 1.4426950408889634, 6755399441055744.0)  # 1.5·2^52 + round(x/ln2)
    kf = t - 6755399441055744.0
    k = _sf_as_bits(t) - 4843621399236968448  # bits of 1.5·2^52
    r_hi = _sf_fma(-kf, 0.6931471805598903, xc)  # ln2_hi = ln2 on a 2^-43 grid: exact
    r = _sf_fma(-kf, 5.497923018708371e-14, r_hi)  # ln2_lo = ln2 - ln2_hi
    r_lo = _sf_fma(-kf, 5.497923018708371e-14, r_hi - r)  # what rounding r lost
    q = _sf_fma(2.0914707069612355e-09, r, 2.510524515390137e-08)
    q = _sf_fma(q, r, 2.7557273594799413e-07)
    q = _sf_fma(q, r, 2.755725533255441e-06)
    q = _sf_fma(q, r, 2.480158732558584e-05)
    q = _sf_fma(q, r, 0.00019841269874873975)
    q = _sf_fma(q, r, 0.0013888888888883737)
    q = _sf_fma(q, r, 0.00833333333332612)
    q = _sf_fma(q, r, 0.04166666666666667)
    q = _sf_fma(q, r, 0.1666666666666667)
    h = 0.5 * r
    h2 = h * r  # r²/2 = h2 + l2 exactly
    l2 = _sf_fma(h, r, -h2)
    tail = _sf_fma(h2 * r, 2.0 * q, l2 + _sf_fma(r_lo, r, r_lo))  # e^(r + r_lo) - 1 - r - h2
    m = k - 1 if k > 1023 else k  # 2^1024 is not a float64
    s = _sf_from_bits((m + 1023) << 52)
    a = s - 1.0  # s - 1 = a + ca exactly: ca = 0 for |m| <= 53, else -1 or s
    ca_up = (s - a) - 1.0  # Fast2Sum with s first (m > 0) ...
    ca_down = (-1.0 - a) + s  # ... or with -1 first; both computed: selects vectorize
    ca = ca_up if m > 0 else ca_down
    b = s * r
    hi = a + b
    lo = (a - hi) + b  # a + b = hi + lo exactly (Fast2Sum)
    c = s * h2
    hi2 = hi + c
    lo2 = (hi - hi2) + c  # hi + c = hi2 + lo2 exactly (Fast2Sum)
    y = hi2 + _sf_fma(s, tail, (lo + lo2) + ca)
    y = y * 2.0 if k > 1023 else y
    return y if abs(x) >= 1e-18 else x  # expm1(x) rounds to x below 2^-54; also ±0 and nan


def _sf_expm1_core(z):
    """e^z - 1 for -37 <= z <= 709.08, without special cases: the core of sinh and tanh.

    Method: as `_sf_expm1`, less its refinements: r = r_hi + r_lo with r_hi = z - k·ln2_hi
    exact and r_lo = -k·ln2_lo; (2^k - 1) + 2^k·r_hi by Fast2Sum, then 2^k·(r²·q(r) + r_lo)
    added with the low part of that sum: about two thirds of `_sf_expm1`'s work. Nan, ±inf
    and -0 are the caller's business; outside the range 2^k is not a float64.

    Measured error: 1.04 ULP on [-37, 709.08] (at z = 37.17, where 2^k - 1 = 2^54 - 1 is
    rounded), 0.9 elsewhere.
    """
    t = _sf_fma(z, 1.4426950408889634, 6755399441055744.0)  # 1.5·2^52 + round(z/ln2)
    kf = t - 6755399441055744.0
    k = _sf_as_bits(t) - 4843621399236968448  # bits of 1.5·2^52
    r_hi = _sf_fma(-kf, 0.6931471805598903, z)  # exact, as in `_sf_exp`
    r_lo = kf * -5.497923018708371e-14
    r = r_hi + r_lo  # for the polynomial; the linear term below uses r_hi + r_lo unrounded
    q = _sf_fma(2.0914707069612355e-09, r, 2.510524515390137e-08)
    q = _sf_fma(q, r, 2.7557273594799413e-07)
    q = _sf_fma(q, r, 2.755725533255441e-06)
    q = _sf_fma(q, r, 2.480158732558584e-05)
    q = _sf_fma(q, r, 0.00019841269874873975)
    q = _sf_fma(q, r, 0.0013888888888883737)
    q = _sf_fma(q, r, 0.00833333333332612)
    q = _sf_fma(q, r, 0.04166666666666667)
    q = _sf_fma(q, r, 0.1666666666666667)
    q = _sf_fma(q, r, 0.5)
    s = _sf_from_bits((k + 1023) << 52)
    a = s - 1.0  # exact for |k| <= 53, and no harm beyond
    b = s * r_hi
    hi = a + b
    lo = (a - hi) + b  # a + b = hi + lo exactly (Fast2Sum: |a| >= |b| or a = 0)
    return hi + _sf_fma(s, _sf_fma(r * r, q, r_lo), lo)


def _sf_sinh(x):
    """sinh x for float64 x, vectorizable.

    Method: with a = |x|, below a = 1 the odd polynomial a + a³·P(a²) (P a degree-6
    Chebyshev fit of (sinh a - a)/a³ in a², error 0.08 ULP), exact to the last bit for
    subnormal x; from 1 to 40, with E = e^a - 1 (`_sf_expm1_core`), sinh a =
    (E + E/(E + 1))/2, which cancels nothing. From a = 40 on, e^-a no longer counts:
    sinh a = e^a/2 = 2·e^(a - c)·e^(c - 2ln2), where c is 2ln2 rounded up to a multiple of
    2^-43, so that a - c is exact and e^(a - c) stays finite (2^k too) until sinh a itself
    overflows (at a = 710.4758600739439); e^(c - 2ln2) = 1 + d is applied by one fused
    multiply-add. The sign goes back on with copysign.

    Special values: sinh(±0) = ±0, sinh(±inf) = ±inf, sinh(nan) = nan, subnormal x gives x.

    Measured error: 1.31 ULP.
    """
    a = abs(x)
    u = a * a
    p = _sf_fma(7.746178593018827e-13, u, 1.6057679623801638e-10)
    p = _sf_fma(p, u, 2.5052117695907823e-08)
    p = _sf_fma(p, u, 2.7557319191381816e-06)
    p = _sf_fma(p, u, 0.00019841269841324198)
    p = _sf_fma(p, u, 0.008333333333333299)
    p = _sf_fma(p, u, 0.16666666666666666)
    poly = _sf_fma(a * u, p, a)  # a + a³·P(a²), for a < 1
    ac = 710.48 if a > 710.48 else a  # sinh overflows from 710.4758600739439; nan stays nan
    z = ac if ac < 40.0 else ac - 1.3862943611198943  # c = 2ln2 + 3.7e-15 on a 2^-43 grid
    e = _sf_expm1_core(z)
    mid = 0.5 * (e + e / (e + 1.0))
    big = 2.0 * _sf_fma(e, 3.728377347448607e-15, e)  # 2·e^z·(1 + d), d = c - 2ln2
    y = mid if a < 40.0 else big
    y = poly if a < 1.0 else y
    return math.copysign(y, x)


def _sf_cosh(x):
    """cosh x for float64 x, vectorizable.

    Method: with a = |x| and e = e^a (`_sf_exp`), cosh a = e/2 + 1/(2e) below a = 20 (the
    rounding errors of e and 1/e cancel to first order where cosh a is near 1); from 20 on,
    e^a/2 = 2·e^(a - c)·e^(c - 2ln2) as in `_sf_sinh` (c = 2ln2 rounded up to a multiple of
    2^-43, so a - c is exact and nothing overflows before the last doubling), the factor
    e^(c - 2ln2) = 1 + d applied by one fused multiply-add.

    Special values: cosh(±0) = 1, cosh(±inf) = inf, cosh(nan) = nan.

    Measured error: 1.00 ULP.
    """
    a = abs(x)
    z = a if a < 20.0 else a - 1.3862943611198943  # c = 2ln2 + 3.7e-15 on a 2^-43 grid
    e = _sf_exp(z)
    small = 0.5 * e + 0.5 / e
    big = 2.0 * _sf_fma(e, 3.728377347448607e-15, e)  # 2·e^z·(1 + d), d = c - 2ln2
    return small if a < 20.0 else big


def _sf_tanh(x):
    """tanh x for float64 x, vectorizable.

    Method: with a = |x| and E = e^(2a) - 1 (`_sf_expm1_core`), w = 2/(E + 2) (the one
    division) and tanh a = 1 - w from a = 0.55 on (tanh a > 1/2 there, so the rounding of
    w barely shows); below, tanh a = E/(E + 2) = E·w/2 refined by one Newton step with the
    exact rounding error of E + 2, which keeps it relatively accurate down to the
    subnormals. 2a is clamped to 40 above a = 20, where tanh a rounds to 1, so inf/inf
    cannot arise. The sign goes back on with copysign.

    Special values: tanh(±0) = ±0, tanh(±inf) = ±1, tanh(nan) = nan, subnormal x gives x.

    Measured error: 1.36 ULP.
    """
    a = abs(x)
    z = 2.0 * a if a < 20.0 else 40.0  # tanh rounds to 1 from a = 19.06; no inf/inf
    e = _sf_expm1_core(z)
    d = e + 2.0
    d_lo = (2.0 - d) + e  # e + 2 = d + d_lo exactly (Fast2Sum: e <= 2.004 where it counts)
    w = 2.0 / d
    y0 = 0.5 * e * w  # e/d, up to about an ULP off
    res = _sf_fma(-y0, d, e) - y0 * d_lo  # e - y0·(e + 2), the first term exact
    small = _sf_fma(res, 0.5 * w, y0)  # one Newton correction of the quotient
    big = 1.0 - w
    y = math.copysign(small if a < 0.55 else big, x)
    return y if x == x else x


HELPERS: dict[str, Helper] = {
    h.name: h
    for h in (
        njit_helper(_sf_exp, _sf_as_bits, _sf_fma, _sf_from_bits),
        njit_helper(_sf_expm1, _sf_as_bits, _sf_fma, _sf_from_bits),
        njit_helper(_sf_expm1_core, _sf_as_bits, _sf_fma, _sf_from_bits),
        njit_helper(_sf_sinh, _sf_expm1_core, _sf_fma),
        njit_helper(_sf_cosh, _sf_exp, _sf_fma),
        njit_helper(_sf_tanh, _sf_expm1_core, _sf_fma),
    )
}
"""The vectorizable exp-family helpers, keyed by name."""
