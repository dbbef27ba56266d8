"""Vectorizable float32 log-family functions for generated kernels: log, log1p, asinh, acosh,
atanh, hypot, loghypot.

The float32 twins of `symflow.codegen.vm_log`: branch-free arithmetic, bit casts and fused
multiply-adds (`_sf_as_bits32`, `_sf_from_bits32`, `_sf_fma32`), with every special case
computed alongside and picked with a conditional expression, so that a float32 loop calling
them is vectorized with eight lanes (``<8 x float>`` on AVX2) once LLVM has inlined them.
Every intermediate is a float32: a Python float literal is a float64 to Numba and would
widen the arithmetic (and halve the lanes), so each constant is written ``np.float32(...)``,
which LLVM folds; integer operations on the bits are typed int64 by Numba but only their low
32 bits are used, which LLVM sees and narrows back to ``<8 x i32>``. Nothing is computed in
float64. The semantics are Numba's (IEEE's), as in `vm_log`: log(0) = -inf, log(x < 0) =
nan, log1p(-1) = -inf, atanh(±1) = ±inf, nan outside the domain, nan in → nan out, asinh and
atanh odd with the sign of -0 kept, hypot(±inf, nan) = inf.

The logarithm: x = 2^k·(1 + f) with 1 + f in [√½, √2) from the bits (a subnormal x is scaled
by 2^24 first), f exact, and log(1 + f) = f - f²/2 + f³·P(f) with P a degree-7 polynomial
fitted to (log(1 + f) - f + f²/2)/f³ on [√½ - 1, √2 - 1] for the least relative error of
log(1 + f) (2^-27 with the coefficients rounded to float32), evaluated by Estrin's scheme
(no division, short dependency chains). f²/2 - f³·P(f) is formed by one FMA, so that f²/2
is not rounded on its own, and k·ln 2 is added in two parts, ln2_hi with 15 significant
bits so that k·ln2_hi is exact for every float32 exponent. `_sf_log_core_f32` is the same
kernel for an argument given as a float-float u + d, which lets log1p, asinh, acosh and
atanh hand it 1 + x, x + √(x² ± 1) or 1 + 2x/(1 - x) with the rounding error of the sum
kept, so that they are as accurate as log itself (< 0.8 ULP).

"Measured error" in a docstring is the largest error in float32 ULPs of the correctly
rounded result (0.5 for correct rounding): against 50-digit mpmath values at about 160,000
points, and against numpy's float64 functions (whose error is some 2^-29 float32 ULP) at
1,200,000 to 1,600,000 points, the worst of which was then checked with mpmath; the points
are log-uniform magnitudes over the whole float32 range (subnormals included) of both
signs, uniform samples where the shape matters, and the neighbourhoods of 0, ±1 and of the
method's thresholds. `tests/test_vm_log32.py` asserts these bounds at a few thousand points
per function.
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


def _sf_log_core_f32(u, dk0, d):
    """log(u + d) + dk0·ln 2 for a positive normal float32 u and |d| <= ulp(u); no special
    values.

    The shared kernel of log1p, asinh, acosh and atanh (whose u is never subnormal, so the
    scaling `_sf_log_f32` does is left out). u = 2^k·(1 + f) with 1 + f in [√½, √2): the
    bits of u plus 0x3f800000 - bits(√½) carry k in the exponent field (read as a float
    without an int → float conversion: the bits 0x4b000000 | (k + 127) are 2^23 + k + 127),
    and 1 + f gets the mantissa back on bits(√½). The low part d of the argument enters as
    d/u, except for k = 0, where f + d is formed as hi + lo first, since there d/u need not
    be small against log(u) (1 + x with tiny x); the polynomial is that of `_sf_log_f32`.
    dk0 is added to k (asinh and acosh of a huge x compute log(2x) as ln 2 + log(x)).
    Called with d = 0 its error is that of `_sf_log_f32`; a zero, negative, inf or nan u
    gives some finite value or nan, and every caller picks its own special values.
    """
    ix = _sf_as_bits32(u) + 0x004AFB0D  # 0x3f800000 - 0x3f3504f3 (the bits of √½)
    e = _sf_from_bits32(((ix >> 23) & 0xFF) | 0x4B000000)  # & 0xFF: keeps LLVM on i32
    k0 = e == np.float32(8388735.0)  # 2**23 + 127: k = 0
    dk = e - (np.float32(8388735.0) - dk0)
    f = _sf_from_bits32((ix & 0x007FFFFF) + 0x3F3504F3) - np.float32(1.0)
    dd = d if k0 else np.float32(0.0)
    fh = f + dd
    fl = (f - fh) + dd
    corr = (fl if k0 else d) / u
    f2 = fh * fh
    f4 = f2 * f2
    p01 = _sf_fma32(fh, np.float32(-0.250008225440979), np.float32(0.3333333134651184))
    p23 = _sf_fma32(fh, np.float32(-0.1662333458662033), np.float32(0.20001228153705597))
    p45 = _sf_fma32(fh, np.float32(-0.13160377740859985), np.float32(0.14201723039150238))
    p67 = _sf_fma32(fh, np.float32(-0.07634418457746506), np.float32(0.12761935591697693))
    p = _sf_fma32(_sf_fma32(p67, f2, p45), f4, _sf_fma32(p23, f2, p01))
    tail = _sf_fma32(f2 * fh, p, _sf_fma32(dk, np.float32(1.428606765330187e-06), corr))
    return dk * np.float32(0.693145751953125) - (_sf_fma32(np.float32(0.5) * fh, fh, -tail) - fh)


def _sf_log_f32(x):
    """Natural logarithm of a float32, with log(0) = -inf, log(x < 0) = nan, log(inf) = inf.

    Method: x = 2^k·(1 + f) with 1 + f in [√½, √2) from the bits (a subnormal x times 2^24
    first, k - 24 then), log(1 + f) = f - (f²/2 - f³·P(f)) with P of degree 7 (Estrin's
    scheme) and the bracket by one FMA, plus k·ln2_hi (exact) and k·ln2_lo. No division.
    Measured error: 0.78 ULP (at x = 1.574455; 160,000 points against mpmath, 1,200,000
    against float64).
    """
    sub = x < np.float32(1.1754943508222875e-38)  # 2**-126
    xs = x * np.float32(16777216.0) if sub else x  # 2**24
    ix = _sf_as_bits32(xs) + 0x004AFB0D  # 0x3f800000 - 0x3f3504f3 (the bits of √½)
    # k as a float without an int -> float conversion: the bits 2**23 + biased exponent
    dk = _sf_from_bits32(((ix >> 23) & 0xFF) | 0x4B000000) - (
        np.float32(8388759.0) if sub else np.float32(8388735.0)  # 2**23 + 127 (+ 24)
    )
    f = _sf_from_bits32((ix & 0x007FFFFF) + 0x3F3504F3) - np.float32(1.0)
    f2 = f * f
    f4 = f2 * f2
    p01 = _sf_fma32(f, np.float32(-0.250008225440979), np.float32(0.3333333134651184))
    p23 = _sf_fma32(f, np.float32(-0.1662333458662033), np.float32(0.20001228153705597))
    p45 = _sf_fma32(f, np.float32(-0.13160377740859985), np.float32(0.14201723039150238))
    p67 = _sf_fma32(f, np.float32(-0.07634418457746506), np.float32(0.12761935591697693))
    p = _sf_fma32(_sf_fma32(p67, f2, p45), f4, _sf_fma32(p23, f2, p01))
    tail = _sf_fma32(f2 * f, p, dk * np.float32(1.428606765330187e-06))  # k·ln2_lo
    r = dk * np.float32(0.693145751953125) - (_sf_fma32(np.float32(0.5) * f, f, -tail) - f)
    r = x if not (x < np.float32(math.inf)) else r
    r = np.float32(-math.inf) if x == np.float32(0.0) else r
    return np.float32(math.nan) if x < np.float32(0.0) else r


def _sf_log1p_f32(x):
    """log(1 + x) of a float32, relatively accurate for tiny x; log1p(-1) = -inf,
    log1p(x < -1) = nan.

    Method: `_sf_log_core_f32` on u + d = 1 + x with u = fl(1 + x) and d = x - (u - 1), its
    rounding error (exact while u < 2^24; beyond, d is a negligible ~ulp(u)). Where u is in
    [√½, √2) the kernel's f + d is x itself; log1p(x) = x for |x| < 2^-25, subnormals and
    ±0 included. Measured error: 0.79 ULP (at x = -0.37094504; 160,000 points against
    mpmath, 1,400,000 against float64).
    """
    u = np.float32(1.0) + x
    r = _sf_log_core_f32(u, np.float32(0.0), x - (u - np.float32(1.0)))
    r = x if not (x < np.float32(math.inf)) else r
    r = x if x == np.float32(0.0) else r  # keeps the sign of -0
    r = np.float32(-math.inf) if x == np.float32(-1.0) else r
    return np.float32(math.nan) if x < np.float32(-1.0) else r


def _sf_asinh_f32(x):
    """Inverse hyperbolic sine of a float32; odd (asinh(-0) = -0), asinh(±inf) = ±inf.

    Method: asinh(a) = log(v) for a = |x|, v = a + √(1 + a²) carried as hi + lo: 1 + a² by
    an FMA and its rounding error by another, the square root corrected by one Newton step
    in the low part, the sum by Fast2Sum (√(1 + a²) > a), then `_sf_log_core_f32`. Above
    4096, asinh(a) = ln 2 + log(a) (the next term, 1/(4a²), is below 0.02 ULP; a² would
    overflow from 1.8e19 on). Tiny a needs no case of its own: v = 1 + a and the kernel's
    k = 0 path give a back (a² is subnormal below 1e-19, slow on some CPUs, harmless).
    Measured error: 0.78 ULP (at x = -0.46351755; 160,000 points against mpmath,
    1,200,000 against float64).
    """
    a = abs(x)
    big = a > np.float32(4096.0)  # asinh(a) = log(2a) + 1/(4a²) - ...
    w = _sf_fma32(a, a, np.float32(1.0))
    wl = _sf_fma32(a, a, np.float32(1.0) - w)  # 1 - w is exact while w < 2**24
    sq = math.sqrt(w)
    sl = (_sf_fma32(-sq, sq, w) + wl) / (sq + sq)
    v = sq + a
    vl = ((sq - v) + a) + sl
    r = _sf_log_core_f32(
        a if big else v,
        np.float32(1.0) if big else np.float32(0.0),
        np.float32(0.0) if big else vl,
    )
    r = a if not (a < np.float32(math.inf)) else r
    return math.copysign(r, x)


def _sf_loghypot_f32(x):
    """log √(1 + x²) = log1p(x²)/2 for a float32 x; even, loghypot(±inf) = inf.

    Method: 1 + a² (a = |x|) as hi + lo by two FMAs, then half of `_sf_log_core_f32` on it,
    the same first steps as `_sf_asinh_f32`. Above 4096, log(a) (the next term, 1/(2a²), is
    below 0.01 ULP; a² would overflow from 1.8e19 on). Tiny a needs no case of its own: the
    kernel's k = 0 path gives a²/2 back.
    Measured error: 0.98 ULP (at x = 0.00024402888, where 1 + a² rounds to 1 and a² itself
    is rounded first; 3,000,000 points against float64).
    """
    a = abs(x)
    big = a > np.float32(4096.0)
    w = _sf_fma32(a, a, np.float32(1.0))
    wl = _sf_fma32(a, a, np.float32(1.0) - w)
    r = _sf_log_core_f32(a if big else w, np.float32(0.0), np.float32(0.0) if big else wl)
    r = r if big else np.float32(0.5) * r
    return a if not (a < np.float32(math.inf)) else r


def _sf_acosh_f32(x):
    """Inverse hyperbolic cosine of a float32 x >= 1; acosh(1) = 0, acosh(inf) = inf,
    x < 1 → nan.

    Method: acosh(x) = log(v), v = x + √(x² - 1) carried as hi + lo: x² - 1 = (h - 1) + hl
    with h = fl(x²), hl its rounding error by an FMA and h - 1 exact (Sterbenz below 2,
    h < 2^24 above), the square root corrected by one Newton step in the low part, the sum
    by Fast2Sum, then `_sf_log_core_f32`; near x = 1 the kernel takes v - 1 ≈ √(2(x - 1))
    from hi + lo, so no accuracy is lost there. Above 4096, acosh(x) = ln 2 + log(x).
    Measured error: 0.78 ULP (at x = 1.1002994; 160,000 points against mpmath, 1,200,000
    against float64).
    """
    big = x > np.float32(4096.0)  # acosh(x) = log(2x) - 1/(4x²) - ...
    h = x * x
    w = h - np.float32(1.0)
    sq = math.sqrt(w)
    sl = (_sf_fma32(-sq, sq, w) + _sf_fma32(x, x, -h)) / max(sq + sq, np.float32(1e-30))
    v = x + sq
    vl = ((x - v) + sq) + sl
    r = _sf_log_core_f32(
        x if big else v,
        np.float32(1.0) if big else np.float32(0.0),
        np.float32(0.0) if big else vl,
    )
    r = x if not (x < np.float32(math.inf)) else r
    return np.float32(math.nan) if x < np.float32(1.0) else r


def _sf_atanh_f32(x):
    """Inverse hyperbolic tangent of a float32; odd (atanh(-0) = -0), atanh(±1) = ±inf,
    |x| > 1 → nan.

    Method: atanh(a) = log1p(q)/2 for a = |x|, q = 2a/(1 - a), with 1 - a exactly as
    hi + lo (Fast2Sum), q by one reciprocal and its low part from the FMA residual
    2a - q·(1 - a), then `_sf_log_core_f32` on (1 + q) + the rounding errors. Tiny a needs
    no case of its own (q = 2a and the kernel's k = 0 path give a back). Measured error:
    0.78 ULP (at x = 0.22210225; 160,000 points against mpmath, 1,600,000 against float64).
    """
    a = abs(x)
    b = np.float32(1.0) - a
    bl = (np.float32(1.0) - b) - a
    rb = np.float32(1.0) / b
    a2 = a + a
    q = a2 * rb
    ql = (_sf_fma32(-q, b, a2) - q * bl) * rb
    u = np.float32(1.0) + q
    r = np.float32(0.5) * _sf_log_core_f32(u, np.float32(0.0), (q - (u - np.float32(1.0))) + ql)
    r = np.float32(math.inf) if a == np.float32(1.0) else r
    r = np.float32(math.nan) if not (a <= np.float32(1.0)) else r
    return math.copysign(r, x)


def _sf_hypot_f32(x, y):
    """√(x² + y²) of float32s without intermediate over- or underflow; hypot(±inf, nan) = inf.

    Method: the larger magnitude B and the smaller S are scaled by 2^-100 (B > 2^63) or
    2^100 (B < 2^-50), exactly, so that B² is a normal float32. b² + s² is formed as hi + lo
    (FMAs give each square's rounding error, Fast2Sum the sum's), its square root r is
    corrected by one Newton step, r + (hi - r² + lo)/(2r), and scaled back. S < 2^-13·B
    counts as 0 (it changes nothing, and S² would be subnormal, which is slow on some CPUs).
    Measured error: 0.75 ULP (at x = 7.76828e-39, y = 1.610849e-39; 120,000 pairs against
    mpmath, 1,200,000 against float64); the excess over 0.5 comes from subnormal results,
    rounded twice (r, then r·2^-100).
    """
    a = abs(x)
    b = abs(y)
    big = a if a > b else b  # not max/min: with a nan, one of the two must be the nan
    small = b if a > b else a
    sc = (
        np.float32(7.888609052210118e-31)  # 2**-100
        if big > np.float32(9.223372036854776e18)  # 2**63
        else (
            np.float32(1.2676506002282294e30)  # 2**100
            if big < np.float32(8.881784197001252e-16)  # 2**-50
            else np.float32(1.0)
        )
    )
    inv = _sf_from_bits32(0x7F000000 - _sf_as_bits32(sc))  # 1/sc
    bs = big * sc
    ss = small * sc
    ss = np.float32(0.0) if ss < bs * np.float32(0.0001220703125) else ss  # 2**-13
    h = bs * bs
    hl = _sf_fma32(bs, bs, -h)
    s2 = ss * ss
    sl = _sf_fma32(ss, ss, -s2)
    t = h + s2
    tl = ((h - t) + s2) + (hl + sl)
    r = math.sqrt(t)
    r = r + (_sf_fma32(-r, r, t) + tl) / max(r + r, np.float32(1e-30))
    r = r * inv
    inf = np.float32(math.inf)
    return inf if (a == inf) | (b == inf) else r


# Registry

_helper = njit_helper

HELPERS: dict[str, Helper] = {
    h.name: h
    for h in (
        _helper(_sf_log_core_f32, _sf_as_bits32, _sf_fma32, _sf_from_bits32),
        _helper(_sf_log_f32, _sf_as_bits32, _sf_fma32, _sf_from_bits32),
        _helper(_sf_log1p_f32, _sf_log_core_f32),
        _helper(_sf_asinh_f32, _sf_fma32, _sf_log_core_f32),
        _helper(_sf_acosh_f32, _sf_fma32, _sf_log_core_f32),
        _helper(_sf_atanh_f32, _sf_fma32, _sf_log_core_f32),
        _helper(_sf_hypot_f32, _sf_as_bits32, _sf_fma32, _sf_from_bits32),
        _helper(_sf_loghypot_f32, _sf_fma32, _sf_log_core_f32),
    )
}
"""The functions of this module by name: the seven public ones and their shared kernel."""
