"""Vectorizable log-family functions for generated kernels: log, log1p, asinh, acosh, atanh,
hypot and loghypot (log √(1 + x²)).

Numba lowers `math.log` and its relatives to scalar libm calls, which keep LLVM's loop
vectorizer away from a kernel's elementwise loop. The helpers here compute the same functions
in plain float64 arithmetic, integer operations on the bits and FMAs, with no branches: every
special case is computed alongside and picked with a conditional expression, so that a loop
calling them is vectorized (``<4 x double>`` on AVX2) once LLVM has inlined them. They follow
Numba's (IEEE's) semantics: log(0) = -inf, log(x < 0) = nan, log1p(-1) = -inf,
atanh(±1) = ±inf, nan outside the domain, nan in → nan out, never an exception; asinh and
atanh are odd with the sign of -0 kept; hypot(±inf, nan) = inf.

All but hypot share `_sf_log_core`, fdlibm's logarithm (x = 2^k·(1 + f) with 1 + f in
[√½, √2), log(1 + f) = 2·atanh(s), s = f/(2 + f), an odd polynomial in s, k·ln 2 in two
parts) extended to an argument given as a double-double u + d: that lets log1p, asinh, acosh,
atanh and loghypot hand it 1 + x, x + √(x² ± 1), 1 + 2x/(1 - x) or 1 + x² with the rounding
error of the sum kept, so that they are as accurate as log itself (< 1 ULP).

"Measured error" in a docstring is the largest error against 50-digit mpmath values at more
than 200,000 points (log-uniform magnitudes over the whole float64 domain, both signs,
uniform samples where the shape matters, and the neighbourhoods of 0, ±1 and thresholds), in
ULPs of the correctly rounded result (0.5 for correct rounding). `tests/test_vm_log.py`
asserts these bounds at a few thousand points per function. The CPython twins of the
intrinsics make every helper callable from CPython with the same results.
"""

from __future__ import annotations

import math

from symflow.codegen.helperbase import Helper, _sf_as_bits, _sf_fma, _sf_from_bits, njit_helper

__all__ = ["HELPERS"]


def _sf_log_core(u, dk0, d):
    """log(u + d) + dk0·ln 2 for a positive finite u and |d| <= ulp(u); no special values.

    The shared kernel of this module (fdlibm's e_log.c / s_log1p.c). u = 2^k·m with m in
    [√½, √2) from the bits (a subnormal u is scaled by 2^54 first), f = m - 1 exactly, and
    log(1 + f) = 2·atanh(s) = f - f²/2 + s·(f²/2 + R(s²)) with s = f/(2 + f) and fdlibm's
    degree-14 polynomial R (|error| < 2^-58.45). k·ln 2 is added in two parts, the high one
    with 32 significant bits so that k·ln2_hi is exact. The low part d of the argument
    enters as d/u, except for k = 0, where f + d is formed as hi + lo first, since there
    d/u need not be small against log(u) (1 + x with tiny x; 1 + 2a/(1 - a)). dk0 is an
    integer added to k (asinh and acosh of huge x compute log(2x) as ln 2 + log(x)).
    Called with d = 0, measured error 0.79 ULP; every caller below picks its own special
    values (u = 0, negative, inf or nan give some finite value or nan here).
    """
    sub = u < 2.2250738585072014e-308
    us = u * 18014398509481984.0 if sub else u  # subnormals times 2**54
    ix = _sf_as_bits(us) + 0x0009_5F62_0000_0000  # 0x3ff00000 - 0x3fe6a09e in the high word
    ex = ix >> 52
    # k as a float without an int -> float conversion: 2**52 + (biased exponent) - ...
    dk = _sf_from_bits(ex | 0x4330_0000_0000_0000) - 4503599627371519.0
    dk = dk + (dk0 - 54.0 if sub else dk0)
    m = _sf_from_bits((ix & 0x000F_FFFF_FFFF_FFFF) + 0x3FE6_A09E_0000_0000)
    f = m - 1.0
    k0 = ex == 0x3FF
    dd = d if k0 else 0.0
    fh = f + dd
    fl = (f - fh) + dd
    corr = (fl if k0 else d) / (us if us != 0.0 else 1.0)
    fp = fh if abs(fh) > 1e-100 else 0.0  # fh² would be subnormal (slow) and negligible
    hfsq = 0.5 * fp * fp
    s = fp / (2.0 + fp)
    z = s * s
    w = z * z
    t1 = w * _sf_fma(
        w, _sf_fma(w, 1.531383769920937332e-01, 2.222219843214978396e-01), 3.999999999940941908e-01
    )
    t2 = z * _sf_fma(
        w,
        _sf_fma(
            w,
            _sf_fma(w, 1.479819860511658591e-01, 1.818357216161805012e-01),
            2.857142874366239149e-01,
        ),
        6.666666666666735130e-01,
    )
    r = t2 + t1
    return dk * 6.93147180369123816490e-01 - (
        (hfsq - (s * (hfsq + r) + _sf_fma(dk, 1.90821492927058770002e-10, corr))) - fh
    )


def _sf_log(x):
    """Natural logarithm, with log(0) = -inf, log(x < 0) = nan and log(inf) = inf.

    Method: `_sf_log_core` with d = 0 (fdlibm's log; a subnormal x scaled by 2^54 first).
    Measured error: 0.79 ULP (at x = 1.4072259806052403; 400,000 points).
    """
    r = _sf_log_core(x, 0.0, 0.0)
    r = x if not (x < math.inf) else r
    r = -math.inf if x == 0.0 else r
    return math.nan if x < 0.0 else r


def _sf_log1p(x):
    """log(1 + x), relatively accurate for tiny x; log1p(-1) = -inf, log1p(x < -1) = nan.

    Method: `_sf_log_core` on u + d = 1 + x with u = fl(1 + x) and d = x - (u - 1), its
    rounding error (exact while u < 2^53; beyond, d is a negligible ~ulp(u)). Where
    u is in [√½, √2) the kernel's f + d is x itself (fdlibm's log1p); log1p(x) = x for
    |x| < 2^-54, subnormals and ±0 included. Measured error: 0.79 ULP (at
    x = 1.7178709377659298; 440,000 points).
    """
    u = 1.0 + x
    r = _sf_log_core(u, 0.0, x - (u - 1.0))
    r = x if not (x < math.inf) else r
    r = x if x == 0.0 else r  # keeps the sign of -0
    r = -math.inf if x == -1.0 else r
    return math.nan if x < -1.0 else r


def _sf_asinh(x):
    """Inverse hyperbolic sine; odd (asinh(-0) = -0), asinh(±inf) = ±inf.

    Method: asinh(a) = log(v) for a = |x|, v = a + √(1 + a²) carried as hi + lo: 1 + a² by
    an FMA and its rounding error, the square root corrected by one Newton step in the low
    part, the sum by Fast2Sum (√(1 + a²) > a), then `_sf_log_core`. Above 1e150, where a²
    overflows, asinh(a) = ln 2 + log(a) (the next term, 1/(4a²), is far below an ULP);
    below 1e-100, asinh(a) = a (this also keeps subnormal intermediates, which are slow,
    out). Measured error: 0.76 ULP (at x = 1.171360053864067; 400,000 points).
    """
    a = abs(x)
    big = a > 1e150  # a² overflows: asinh(a) = log(2a) + 1/(4a²) + ...
    tiny = a < 1e-100  # a² would be subnormal (slow): asinh(a) = a - a³/6 = log(1 + a)
    b = a if (a <= 1e150) & (a >= 1e-100) else 0.0
    # asinh(b) = log(v), v = b + sqrt(1 + b²) as hi + lo
    w = _sf_fma(b, b, 1.0)
    wl = _sf_fma(b, b, 1.0 - w)
    sq = math.sqrt(w)
    sl = (_sf_fma(-sq, sq, w) + wl) / (2.0 * sq)
    v = sq + b
    vl = ((sq - v) + b) + sl
    r = _sf_log_core(a if big else v, 1.0 if big else 0.0, a if tiny else (0.0 if big else vl))
    r = a if not (a < math.inf) else r
    return math.copysign(r, x)


def _sf_acosh(x):
    """Inverse hyperbolic cosine for x >= 1; acosh(1) = 0, acosh(inf) = inf, x < 1 → nan.

    Method: acosh(x) = log(v), v = x + √(x² - 1) carried as hi + lo: x² - 1 exactly as
    hi + lo (an FMA for x²'s rounding error, Fast2Sum for the - 1), the square root corrected
    by one Newton step in the low part, the sum by Fast2Sum, then `_sf_log_core`; near
    x = 1 the kernel takes v - 1 ≈ √(2(x - 1)) from hi + lo, so no accuracy is lost there.
    Above 1e150, acosh(x) = ln 2 + log(x). Measured error: 0.78 ULP (at
    x = 1.057028675635895; 400,000 points).
    """
    big = x > 1e150  # x² overflows: acosh(x) = log(2x) - 1/(4x²) - ...
    b = x if (x > 1.0) & (x <= 1e150) else 1.0
    # acosh(b) = log(v), v = b + sqrt(b² - 1) as hi + lo
    h = b * b
    w = h - 1.0
    wl = ((h - w) - 1.0) + _sf_fma(b, b, -h)
    sq = math.sqrt(w)
    sl = (_sf_fma(-sq, sq, w) + wl) / (2.0 * sq if sq > 0.0 else 1.0)
    v = b + sq
    vl = ((b - v) + sq) + sl
    r = _sf_log_core(x if big else v, 1.0 if big else 0.0, 0.0 if big else vl)
    r = x if not (x < math.inf) else r
    return math.nan if x < 1.0 else r


def _sf_atanh(x):
    """Inverse hyperbolic tangent; odd (atanh(-0) = -0), atanh(±1) = ±inf, |x| > 1 → nan.

    Method: atanh(a) = log1p(q)/2 for a = |x|, q = 2a/(1 - a), with 1 - a exactly as hi + lo
    (Fast2Sum) and q's low part from the FMA residual 2a - q·(1 - a), then `_sf_log_core` on
    (1 + q) + the rounding errors. Below 1e-100, atanh(a) = a. Measured error:
    0.79 ULP (at x = 0.17106069159318937; 440,000 points).
    """
    a = abs(x)
    # c = a, except where the result is picked below: a = 1, a > 1, nan, and a <= 1e-100
    # (atanh(a) = a + a³/3 rounds to a; c = a would make slow subnormal intermediates).
    c = a if (a < 1.0) & (a > 1e-100) else 0.5
    # atanh(c) = log1p(q)/2, q = 2c/(1 - c); 1 - c = b + bl exactly, q as hi + lo
    b = 1.0 - c
    bl = (1.0 - b) - c
    q = 2.0 * c / b
    ql = (_sf_fma(-q, b, 2.0 * c) - q * bl) / b
    u = 1.0 + q
    r = 0.5 * _sf_log_core(u, 0.0, (q - (u - 1.0)) + ql)
    r = a if a <= 1e-100 else r
    r = math.inf if a == 1.0 else r
    r = math.nan if not (a <= 1.0) else r
    return math.copysign(r, x)


def _sf_loghypot(x):
    """log √(1 + x²) = log1p(x²)/2 for float64 x; even, loghypot(±inf) = inf.

    Method: 1 + a² (a = |x|) as hi + lo by two FMAs, then half of `_sf_log_core` on it:
    the same first steps as `_sf_asinh`, so a kernel computing both of one argument
    (SinhArcsinh's log-det) forms 1 + a² once. Relatively accurate at the zero: below
    a = 1e-100 it returns a²/2 (the next term is a⁴/4); above 1e150, where a² overflows,
    log(a) (the next term, 1/(2a²), is far below an ULP). Replaces log(hypot(1, x)), which
    rounds to 0 below |x| = 1e-8 and costs a square root and a division more.
    Measured error: 0.98 ULP (at x = 1.0477492275187905e-08, where 1 + a² rounds to 1 and a²
    itself is rounded before the logarithm; 210,000 points).
    """
    a = abs(x)
    big = a > 1e150
    b = a if (a <= 1e150) & (a >= 1e-100) else 0.0  # as in `_sf_asinh`
    w = _sf_fma(b, b, 1.0)
    wl = _sf_fma(b, b, 1.0 - w)
    r = _sf_log_core(a if big else w, 0.0, 0.0 if big else wl)
    r = r if big else 0.5 * r
    r = 0.5 * a * a if a < 1e-100 else r
    return a if not (a < math.inf) else r  # inf stays inf, nan nan


def _sf_hypot(x, y):
    """√(x² + y²) without intermediate over- or underflow; hypot(±inf, nan) = inf.

    Method: the larger magnitude B and the smaller S are scaled by 2^-600 (B > 2^400) or
    2^700 (B < 2^-400), exactly. b² + s² is formed as hi + lo (FMAs give each square's rounding
    error, Fast2Sum the sum's), its square root r is corrected by one Newton step,
    r + (hi - r² + lo)/(2r), and scaled back. S < 2^-60·B counts as 0 (it changes nothing, and
    S² would be subnormal, which is slow). Measured error: 0.67 ULP (at
    x = 1.881173700621502e-308, y = 2.681064016e-315; 300,000 pairs); the excess over
    0.5 comes from subnormal results, rounded twice (r, then r·2^-700).
    """
    a = abs(x)
    b = abs(y)
    big = a if a > b else b
    small = b if a > b else a
    down = big > 2.5822498780869086e120  # 2**400
    up = big < 3.872591914849318e-121  # 2**-400
    sc = 2.409919865102884e-181 if down else (5.260135901548374e210 if up else 1.0)
    inv = 4.149515568880993e180 if down else (1.90109156629516e-211 if up else 1.0)
    bs = big * sc
    ss = small * sc
    ss = 0.0 if ss < bs * 8.673617379884035e-19 else ss  # 2**-60
    h = bs * bs
    hl = _sf_fma(bs, bs, -h)
    s2 = ss * ss
    sl = _sf_fma(ss, ss, -s2)
    t = h + s2
    tl = ((h - t) + s2) + (hl + sl)
    r = math.sqrt(t)
    r = r + (_sf_fma(-r, r, t) + tl) * 0.5 / (r if r > 0.0 else 1.0)
    r = r * inv
    return math.inf if (a == math.inf) | (b == math.inf) else r


# Registry

_helper = njit_helper

HELPERS: dict[str, Helper] = {
    h.name: h
    for h in (
        _helper(_sf_log_core, _sf_as_bits, _sf_fma, _sf_from_bits),
        _helper(_sf_log, _sf_log_core),
        _helper(_sf_log1p, _sf_log_core),
        _helper(_sf_asinh, _sf_fma, _sf_log_core),
        _helper(_sf_acosh, _sf_fma, _sf_log_core),
        _helper(_sf_atanh, _sf_fma, _sf_log_core),
        _helper(_sf_hypot, _sf_fma),
        _helper(_sf_loghypot, _sf_fma, _sf_log_core),
    )
}
"""The functions of this module by name: the seven public ones and their shared kernel."""
