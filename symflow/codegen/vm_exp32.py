"""Vectorizable float32 exp-family functions for generated kernels: exp, expm1, sinh, cosh, tanh.

The float32 twins of `symflow.codegen.vm_exp`, written the same way: branch-free arithmetic
(bit casts and fused multiply-adds through the float32 intrinsics of
`symflow.codegen.helperbase`) with the special cases computed alongside and picked with
conditional expressions, so that LLVM inlines a function into an elementwise loop over
float32 and vectorizes it with 8 lanes (``<8 x float>`` on AVX2). Every intermediate is a
float32: each constant is written ``np.float32(...)``, because a Python float literal would
make Numba promote the arithmetic to float64 (and halve the lanes). Numba widens integer
arithmetic on the int32 bits to int64; written so that it never needs more than 32 bits,
LLVM narrows it back, and `_sf_from_bits32` keeps the low 32 bits.

The semantics are IEEE ones, as in `vm_exp`: a result too large is ±inf, nan gives nan,
exp(-inf) = 0, tanh(±inf) = ±1, and the odd functions keep the sign of a zero. Float32
overflow: e^x from x = 88.72283935546875 (88.72283172607422 is the largest x with a finite
e^x), sinh and cosh from |x| = 89.4159927368164; e^x rounds to 0 below x = -103.972076.

All of them share one argument reduction: x = k·ln2 + r with k = round(x/ln2) (the
1.5·2^23 shifter, whose low bits are then k) and r = r_hi + r_lo, where r_hi = x - k·ln2_hi
is exact (ln2_hi = ln2 rounded to float32; the fused multiply-add forms the product exactly,
and the difference, a multiple of 2^-25 below 1/2, fits in 24 bits) and r_lo = -k·ln2_lo;
|r| <= ln2/2 + tiny. On that interval e^r - 1 - r = r²·q(r) with q a polynomial: of degree
4 in `_sf_exp_f32` and `_sf_cosh_core_f32` (minimax for the relative error of e^r: 0.05
float32 ULP), of degree 5 in `_sf_expm1_f32` and `_sf_expm1_core_f32` (minimax for the
relative error of e^r - 1: 0.004 ULP), the coefficients rounded to float32. r_hi, the
large part, enters each result through exact two-term sums (Fast2Sum), so that it is
rounded about once. Float64 is never used: the extra precision comes from those sums.

`_sf_cosh_core_f32` (e^a/2 ± e^-a/2, for sinh and cosh) and `_sf_expm1_core_f32` (for tanh)
are small enough for LLVM's inliner to take them into a kernel's loop whole.

"Measured error" in a docstring is the largest error over all 2^32 float32 inputs (in the
function's domain, for the cores), against float64 values of numpy's functions (their
error, below 2^-52, does not show at float32 precision), in float32 ULPs of the correctly
rounded result; 50-digit mpmath values at 200,000 points per function (log-uniform
magnitudes of both signs down to the subnormals, uniform over the range and near the
thresholds) agree. `tests/test_vm_exp32.py` asserts these bounds at a few thousand points.
"""

from __future__ import annotations

import math

import numpy as np

from symflow.codegen.helperbase import (
    Helper,
    _sf_as_bits32,
    _sf_fma32,
    _sf_from_bits32,
    njit_helper,
)

__all__ = ["HELPERS"]


def _sf_exp_f32(x):
    """e^x for float32 x, vectorizable, in float32 arithmetic.

    Method: x = k·ln2 + r_hi + r_lo (see the module docstring); e^r = hi + (lo + r²·q(r) +
    r_lo) with 1 + r_hi = hi + lo formed exactly (Fast2Sum), so that the result is rounded
    about once; then times 2^k, built from bits as two factors 2^(k>>1)·2^(k-(k>>1)) so
    that 2^k itself need not be a float32: results near overflow (x up to 88.72) and in the
    subnormal range (x down to -103.97) come out right, the latter rounded a second time
    only by the last product. x is clamped to [-104, 89] first, where e^x is already 0 or
    inf.

    Special values: exp(±0) = 1, exp(-inf) = 0, exp(inf) = inf, exp(nan) = nan; overflow
    (x >= 88.72283935546875) gives inf, x <= -103.97208404541016 gives 0.

    Measured error: 0.69 ULP; 0.78 ULP where the result is subnormal (rounded twice).
    """
    xc = np.float32(89.0) if x > np.float32(89.0) else x  # nan stays nan
    xc = np.float32(-104.0) if xc < np.float32(-104.0) else xc
    t = _sf_fma32(xc, np.float32(1.4426950216293335), np.float32(12582912.0))  # 1.5·2^23 + k
    kf = t - np.float32(12582912.0)
    kb = _sf_as_bits32(t)
    k = kb - 1262485504  # bits of 1.5·2^23
    r_hi = _sf_fma32(-kf, np.float32(0.6931471824645996), xc)  # exact
    r_lo = kf * np.float32(1.9046542121259336e-09)  # -k·ln2_lo, ln2_lo = ln2 - ln2_hi
    r = r_hi + r_lo
    q = _sf_fma32(np.float32(0.0013814539415761828), r, np.float32(0.00836874544620514))
    q = _sf_fma32(q, r, np.float32(0.04166838899254799))
    q = _sf_fma32(q, r, np.float32(0.1666652113199234))
    q = _sf_fma32(q, r, np.float32(0.4999999403953552))
    hi = np.float32(1.0) + r_hi
    lo = (np.float32(1.0) - hi) + r_hi  # 1 + r_hi = hi + lo exactly (Fast2Sum: |r_hi| < 1)
    y = hi + (lo + _sf_fma32(r * r, q, r_lo))
    k1 = (kb >> 1) - 631242752  # floor(k/2), in int32: the bits of 1.5·2^23 are even
    y = y * _sf_from_bits32((k1 + 127) << 23) * _sf_from_bits32((k - k1 + 127) << 23)
    return y


def _sf_expm1_core_f32(z):
    """e^z - 1 for float32 -16.9 <= z <= 88.3, without special cases: the core of tanh.

    Method: z = k·ln2 + r_hi + r_lo as in `_sf_exp_f32`, s = 2^k from bits, and e^z - 1 =
    (s - 1) + s·r_hi + s·(r²·q(r) + r_lo). s - 1 = a + ca exactly (Fast2Sum with s first:
    s >= 1, or a exact for k >= -24), s·r_hi is exact, and a + s·r_hi = hi + lo by Fast2Sum
    (|a| >= |s·r_hi| or a = 0), so the cancellation for z in (-ln2, -ln2/2) costs nothing
    and the sum rounds about once; for k = 0 (|z| < ln2/2) it is z + z²·q(z), relatively
    accurate down to the subnormals. Nan, ±inf and -0 are the caller's business; outside
    the range 2^k is not a float32 or s - 1 not exact.

    Measured error: 0.87 ULP on [-16.9, 88.3].
    """
    t = _sf_fma32(z, np.float32(1.4426950216293335), np.float32(12582912.0))  # 1.5·2^23 + k
    kf = t - np.float32(12582912.0)
    k = _sf_as_bits32(t) - 1262485504  # bits of 1.5·2^23
    r_hi = _sf_fma32(-kf, np.float32(0.6931471824645996), z)  # exact
    r_lo = kf * np.float32(1.9046542121259336e-09)  # -k·ln2_lo
    r = r_hi + r_lo
    q = _sf_fma32(np.float32(0.00019845881615765393), r, np.float32(0.0013940668432042003))
    q = _sf_fma32(q, r, np.float32(0.008333389647305012))
    q = _sf_fma32(q, r, np.float32(0.04166635870933533))
    q = _sf_fma32(q, r, np.float32(0.1666666567325592))
    q = _sf_fma32(q, r, np.float32(0.5))
    s = _sf_from_bits32((k + 127) << 23)
    a = s - np.float32(1.0)
    ca = (s - a) - np.float32(1.0)  # s - 1 = a + ca exactly
    b = s * r_hi
    hi = a + b
    lo = (a - hi) + b  # a + b = hi + lo exactly (Fast2Sum)
    y = hi + _sf_fma32(s, _sf_fma32(r * r, q, r_lo), lo + ca)
    return y


def _sf_expm1_f32(x):
    """e^x - 1 for float32 x, vectorizable, accurate near 0.

    Method: as `_sf_expm1_core_f32` (which it repeats), on x clamped to [-16.9, 89], with
    k = 128 (x > 88.376) handled by forming the sum with 2^127 and doubling it. From
    x = -17.32868 down (e^x < 2^-25, half an ULP of 1) the result is -1; between that and
    -16.9 the clamp still gives the right -1 + 2^-24. Below |x| = 2^-24 it is x + x²/2
    rounded: x, subnormals included.

    Special values: expm1(±0) = ±0, subnormal x gives x, expm1(-inf) = -1, expm1(inf) = inf,
    expm1(nan) = nan; x >= 88.72283935546875 gives inf.

    Measured error: 0.87 ULP.
    """
    xc = x if x < np.float32(89.0) else np.float32(89.0)  # also maps nan to 89; restored below
    xc = xc if xc > np.float32(-16.9) else np.float32(-16.9)
    t = _sf_fma32(xc, np.float32(1.4426950216293335), np.float32(12582912.0))  # 1.5·2^23 + k
    kf = t - np.float32(12582912.0)
    k = _sf_as_bits32(t) - 1262485504  # bits of 1.5·2^23
    r_hi = _sf_fma32(-kf, np.float32(0.6931471824645996), xc)  # exact
    r_lo = kf * np.float32(1.9046542121259336e-09)  # -k·ln2_lo
    r = r_hi + r_lo
    q = _sf_fma32(np.float32(0.00019845881615765393), r, np.float32(0.0013940668432042003))
    q = _sf_fma32(q, r, np.float32(0.008333389647305012))
    q = _sf_fma32(q, r, np.float32(0.04166635870933533))
    q = _sf_fma32(q, r, np.float32(0.1666666567325592))
    q = _sf_fma32(q, r, np.float32(0.5))
    m = k - 1 if k > 127 else k  # 2^128 is not a float32
    s = _sf_from_bits32((m + 127) << 23)
    a = s - np.float32(1.0)
    ca = (s - a) - np.float32(1.0)  # s - 1 = a + ca exactly
    b = s * r_hi
    hi = a + b
    lo = (a - hi) + b  # a + b = hi + lo exactly (Fast2Sum)
    y = hi + _sf_fma32(s, _sf_fma32(r * r, q, r_lo), lo + ca)
    y = y * np.float32(2.0) if k > 127 else y
    y = np.float32(-1.0) if x <= np.float32(-17.32868003845215) else y  # e^x < 2^-25
    return y if abs(x) > np.float32(0.0) else x  # ±0 and nan


def _sf_cosh_core_f32(a, c):
    """(e^a + c·e^-a)/2 for float32 a >= 0 and c = ±1: the core of cosh (c = 1) and sinh.

    Method: a = k·ln2 + r_hi + r_lo and e^r = hi + lo as in `_sf_exp_f32`, then e^r = m +
    m_err exactly (Fast2Sum), and e^a/2 = h + h_err with h = m·2^(k-1), h_err =
    m_err·2^(k-1) (2^(k-1) as two factors from bits, so that h stays finite until the result
    overflows, at a = 89.41599, and the products are exact). With w = c/(4h) rounded,
    c·e^-a/2 = c/(4(h + h_err)) = w - 4c·w²·h_err to far below an ULP, and the result is
    h + (h_err·(1 - 4c·w²) + w): rounded about once, and where cosh a is near 1 (4w² near
    1) the error of h cancels. a is clamped to 90 above (k <= 130); nan stays nan; when h
    overflows, w = 0 and the result is inf.

    Measured error: 0.77 ULP for c = 1 (cosh), 0.73 for c = -1 from a = 1 on (sinh).
    """
    ac = np.float32(90.0) if a > np.float32(90.0) else a  # nan stays nan
    t = _sf_fma32(ac, np.float32(1.4426950216293335), np.float32(12582912.0))  # 1.5·2^23 + k
    kf = t - np.float32(12582912.0)
    kb = _sf_as_bits32(t)
    k = kb - 1262485505  # bits of 1.5·2^23, plus 1: k - 1
    r_hi = _sf_fma32(-kf, np.float32(0.6931471824645996), ac)  # exact
    r_lo = kf * np.float32(1.9046542121259336e-09)  # -k·ln2_lo
    r = r_hi + r_lo
    q = _sf_fma32(np.float32(0.0013814539415761828), r, np.float32(0.00836874544620514))
    q = _sf_fma32(q, r, np.float32(0.04166838899254799))
    q = _sf_fma32(q, r, np.float32(0.1666652113199234))
    q = _sf_fma32(q, r, np.float32(0.4999999403953552))
    hi = np.float32(1.0) + r_hi
    lo = (np.float32(1.0) - hi) + r_hi  # 1 + r_hi = hi + lo exactly (Fast2Sum: |r_hi| < 1)
    k1 = (kb >> 1) - 631242752  # floor(k/2), in int32: the bits of 1.5·2^23 are even
    s1 = _sf_from_bits32((k1 + 127) << 23)
    s2 = _sf_from_bits32((k - k1 + 127) << 23)
    lo = lo + _sf_fma32(r * r, q, r_lo)  # e^r = hi + lo
    m = hi + lo
    m_err = (hi - m) + lo  # e^r = m + m_err exactly (Fast2Sum: |lo| < |hi|)
    h = m * s1 * s2  # e^a/2 = h + h_err, h rounded once; no inf - inf when it overflows
    h_err = m_err * s1 * s2
    w = (np.float32(0.25) * c) / h  # c·e^-a/2 = w·(1 - h_err/h) = w - 4c·w²·h_err
    y = h + _sf_fma32(h_err, _sf_fma32(np.float32(-4.0) * c, w * w, np.float32(1.0)), w)
    return y


def _sf_sinh_f32(x):
    """sinh x for float32 x, vectorizable.

    Method: with a = |x|, below a = 1 the odd polynomial a + a³·P(a²) (P a degree-3 minimax
    fit of (sinh a - a)/a³ in a², error 0.001 ULP), exact to the last bit for subnormal x;
    from 1 on, (e^a - e^-a)/2 by `_sf_cosh_core_f32`, which rounds once and cancels little
    there (e^-a/e^a <= 0.14); it is finite until sinh a itself overflows (at a =
    89.41599). The sign goes back on with copysign.

    Special values: sinh(±0) = ±0, sinh(±inf) = ±inf, sinh(nan) = nan, subnormal x gives x.

    Measured error: 0.80 ULP (at a = 0.86, in the polynomial); 0.73 from a = 1 on.
    """
    a = abs(x)
    u = a * a
    p = _sf_fma32(np.float32(2.8169515644549392e-06), u, np.float32(0.0001983615948120132))
    p = _sf_fma32(p, u, np.float32(0.008333349600434303))
    p = _sf_fma32(p, u, np.float32(0.1666666716337204))
    poly = _sf_fma32(a * u, p, a)  # a + a³·P(a²), for a < A
    y = _sf_cosh_core_f32(a, np.float32(-1.0))
    y = poly if a < np.float32(1.0) else y
    return math.copysign(y, x)


def _sf_cosh_f32(x):
    """cosh x for float32 x, vectorizable.

    Method: (e^a + e^-a)/2 with a = |x| by `_sf_cosh_core_f32`, which rounds once; the
    rounding error of e^a/2 is carried into the e^-a/2 term, so the errors of the two cancel
    to first order where cosh a is near 1. It is finite until cosh a itself overflows (at
    a = 89.41599).

    Special values: cosh(±0) = 1, cosh(±inf) = inf, cosh(nan) = nan.

    Measured error: 0.77 ULP.
    """
    y = _sf_cosh_core_f32(abs(x), np.float32(1.0))
    return y


def _sf_tanh_f32(x):
    """tanh x for float32 x, vectorizable.

    Method: with a = |x|, below a = 0.625 the odd polynomial a + a³·P(a²) (P a degree-5
    minimax fit of (tanh a - a)/a³ in a², error 0.003 ULP), exact to the last bit for
    subnormal x. From 0.625 on, with E = e^(2a) - 1 (`_sf_expm1_core_f32`), tanh a =
    1 - 2/(E + 2): the quotient w = 2/d, d = E + 2 rounded, is corrected by the exact
    remainder 2 - w·d and the exact rounding error of d, and 1 - w = t1 + t1_lo exactly
    (Fast2Sum), so that the result rounds about once and only the error of E shows
    (damped by w·E/(E + 2) <= 1/4). 2a is clamped to 20 above a = 10, where tanh a rounds
    to 1, so inf/inf cannot arise. The sign goes back on with copysign.

    Special values: tanh(±0) = ±0, tanh(±inf) = ±1, tanh(nan) = nan, subnormal x gives x.

    Measured error: 0.75 ULP.
    """
    a = abs(x)
    u = a * a
    p = _sf_fma32(np.float32(0.002142955781891942), u, np.float32(-0.00817739125341177))
    p = _sf_fma32(p, u, np.float32(0.021700700744986534))
    p = _sf_fma32(p, u, np.float32(-0.05394676327705383))
    p = _sf_fma32(p, u, np.float32(0.1333320587873459))
    p = _sf_fma32(p, u, np.float32(-0.3333333134651184))
    poly = _sf_fma32(a * u, p, a)  # a + a³·P(a²), for a < 0.625
    z = np.float32(2.0) * a if a < np.float32(10.0) else np.float32(20.0)  # 1 from a = 9.01
    e = _sf_expm1_core_f32(z)
    d = e + np.float32(2.0)
    d_lo = (e - d) + np.float32(2.0)  # e + 2 = d + d_lo exactly (Fast2Sum: e >= 2.49 if used)
    w = np.float32(2.0) / d
    res = _sf_fma32(-w, d, np.float32(2.0))  # 2 - w·d, exact
    res = _sf_fma32(-w, d_lo, res)  # 2/(e + 2) = w + res·w/2 to far below an ULP
    t1 = np.float32(1.0) - w
    t1_lo = (np.float32(1.0) - t1) - w  # 1 - w = t1 + t1_lo exactly (Fast2Sum)
    big = t1 + _sf_fma32(-res, np.float32(0.5) * w, t1_lo)
    y = big if a >= np.float32(0.625) else poly  # nan takes the polynomial: nan
    return math.copysign(y, x)


HELPERS: dict[str, Helper] = {
    h.name: h
    for h in (
        njit_helper(_sf_exp_f32, _sf_as_bits32, _sf_fma32, _sf_from_bits32),
        njit_helper(_sf_expm1_core_f32, _sf_as_bits32, _sf_fma32, _sf_from_bits32),
        njit_helper(_sf_expm1_f32, _sf_as_bits32, _sf_fma32, _sf_from_bits32),
        njit_helper(_sf_cosh_core_f32, _sf_as_bits32, _sf_fma32, _sf_from_bits32),
        njit_helper(_sf_sinh_f32, _sf_cosh_core_f32, _sf_fma32),
        njit_helper(_sf_cosh_f32, _sf_cosh_core_f32),
        njit_helper(_sf_tanh_f32, _sf_expm1_core_f32, _sf_fma32),
    )
}
"""The vectorizable float32 exp-family helpers, keyed by name."""
