"""Sources of the special functions that generated kernels paste in, and the registry of all.

A generated kernel module imports only `math`, `numba` (with `numba.extending`) and `numpy
as np`. When an expression calls a function Numba does not provide, or one that symflow
implements in vectorizable form (`symflow.codegen.printer.VECTOR_FUNCTIONS`), the code
generator pastes the source of a helper from `HELPERS` into the module (`helper_sources`
gives the text, dependencies first). Each helper is an ordinary module-level function, so
it is linted, formatted, readable and callable from CPython like the rest of the package;
`Helper.source` is its text behind a `@numba.njit(cache=True, error_model="numpy"...)` line
(see `symflow.codegen.helperbase`). The functions obey the rules of pasted code: only
`math`, `np`, literals and other helpers, every constant inline, no module-level state.

`HELPERS` holds the scalar special functions of this module (`SCALAR_HELPERS`), the
intrinsics of `helperbase`, and the vectorizable elementary functions of `vm_exp`, `vm_log`
and `vm_erf`. The log-hyperbolic and logistic helpers below are branch-free compositions of
those (every piece computed, one selected per element), so a loop that calls them still
vectorizes; the inverse-CDF, Lambert W and cube-root helpers keep their branches and libm
calls, and a loop that calls them stays scalar.

"Measured error" in a docstring is the largest error found against 50-digit mpmath values
at 20,000-45,000 points spread over the function's range (random magnitudes and hand-picked
extremes), in ULPs of the correctly rounded result; a correctly rounded function scores
0.5. `tests/test_mathlib.py` asserts these bounds at a few hundred points per helper.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from symflow.codegen import vm_erf, vm_exp, vm_exp32, vm_log, vm_log32, vm_logistic32
from symflow.codegen.helperbase import (
    INTRINSICS,
    Helper,
    _sf_as_bits,
    _sf_fma,
    _sf_from_bits,
    njit_helper,
)
from symflow.codegen.vm_exp import _sf_exp, _sf_expm1, _sf_expm1_core
from symflow.codegen.vm_log import _sf_atanh, _sf_log, _sf_log1p

__all__ = ["HELPERS", "SCALAR_HELPERS", "Helper", "helper_sources"]


# Normal distribution and error-function inverses


def _sf_mul_err(a, b):
    """Rounding error of a product: a·b = fl(a·b) + _sf_mul_err(a, b) exactly.

    Method: Dekker's exact product with Veltkamp's splitting into 26-bit halves (no FMA).
    Exact while no partial product under- or overflows: |a|, |b| < 1e150, |a·b| > 1e-290.
    Lets the helpers carry the low part of x/√2, e·x, x² and the like.
    """
    c = 134217729.0 * a  # 2**27 + 1
    ah = c - (c - a)
    al = a - ah
    c = 134217729.0 * b
    bh = c - (c - b)
    bl = b - bh
    p = a * b
    return (((ah * bh - p) + ah * bl) + al * bh) + al * bl


def _sf_ndtr(x):
    """Standard normal CDF Φ(x) = erfc(-x/√2)/2.

    Method: erfc of -x/√2 formed in double-double, its low part applied as the first-order
    term erfc'(y)·lo: erfc amplifies a relative error of its argument by 2y², so a rounded
    argument would cost ~700 ULP near the underflow at x = -38.5; this way the lower tail
    is relatively accurate all the way. Measured error: 3.0 ULP, all but 0.5 of it libm's
    erfc (glibc 2.36 erfc is up to 2.7 ULP off).
    """
    if not abs(x) <= 40.0:  # Φ is 0 or 1 in float64 beyond ±40 (also ±inf); nan passes
        return x if x != x else (0.0 if x < 0.0 else 1.0)
    y = -x * 0.7071067811865476
    # -x/√2 = y + lo to ~2**-104 (fl(1/√2) exceeds 1/√2 by 4.8e-17)
    lo = -_sf_mul_err(x, 0.7071067811865476) - x * -4.833646656726457e-17
    # erfc(y + lo) = erfc(y) - (2/√π) exp(-y²) lo + O(lo²)
    return 0.5 * (math.erfc(y) - 1.1283791670955126 * math.exp(-y * y) * lo)


def _sf_log_ndtr(x):
    """log Φ(x) for all x, without underflow or overflow.

    Method: log1p(-Φ(-x)) for x >= 0, log Φ(x) for -30 < x < 0 (Φ is relatively accurate
    there), and below -30 the asymptotic series log Φ(x) = -x²/2 - log(-x) - log(2π)/2 +
    log(1 - 1/x² + 3/x⁴ - ...), eight terms, with x²/2 as (x/2)·x so that it overflows
    only where the result does (x < -1.9e154). Measured error: 3.4 ULP near x = 1.7, from
    libm's erfc as for `_sf_ndtr`; 1.0 ULP for x < 0.
    """
    if x != x:
        return x
    if x >= 0.0:
        return math.log1p(-_sf_ndtr(-x))
    if x > -30.0:
        return math.log(_sf_ndtr(x))
    s = 1.0 / (x * x)
    t = 1.0  # Σ_{k>=1} (-1)^(k+1) (2k-1)!! s^k = s(1 - 3s(1 - 5s(...))); the next term,
    for k in range(15, 1, -2):  # 17!! s^9, is below 1e-19 for x <= -30
        t = 1.0 - k * s * t
    tail = s * t
    return -((0.5 * x) * x + (math.log(-x) + 0.9189385332046728 - math.log1p(-tail)))


def _sf_ndtri_guess(d, q):
    """Acklam's rational approximation of the normal quantile, a starting point.

    Takes d = p - 1/2 and q = min(p, 1 - p) > 0, both from the caller, so that neither loses
    digits (p near 1/2, p near 0 or 1). Measured relative error: 1.2e-9 for q >= 1e-300,
    1.8e-9 below.
    """
    if q < 0.02425:
        r = math.sqrt(-2.0 * math.log(q))
        num = (-7.784894002430293e-03 * r - 3.223964580411365e-01) * r - 2.400758277161838
        num = ((num * r - 2.549732539343734) * r + 4.374664141464968) * r + 2.938163982698783
        den = (7.784695709041462e-03 * r + 3.224671290700398e-01) * r + 2.445134137142996
        den = (den * r + 3.754408661907416) * r + 1.0
        return num / den if d < 0.0 else -num / den
    r = d * d
    num = (-3.969683028665376e01 * r + 2.209460984245205e02) * r - 2.759285104469687e02
    num = ((num * r + 1.383577518672690e02) * r - 3.066479806614716e01) * r + 2.506628277459239
    den = (-5.447609879822406e01 * r + 1.615858368580409e02) * r - 1.556989798598866e02
    den = ((den * r + 6.680131188771972e01) * r - 1.328068155288572e01) * r + 1.0
    return num * d / den


def _sf_ndtri(p):
    """Normal quantile Φ⁻¹(p) on [0, 1]; 0 → -inf, 1 → inf, nan outside.

    Method: Acklam's approximation, then one Halley step on a residual that is exact for the
    input: erf(z/√2)/2 - (p - 1/2) for 1/4 <= p <= 3/4 (p - 1/2 exact, z/√2 in
    double-double), Φ(z) - q in the tails (q = min(p, 1 - p) exact), and Newton steps on
    log Φ(z) - log q below q = 1e-300, where Φ and the density are subnormal.
    Measured error: 1.7 ULP (libm's erf; 1.0 ULP in the tails).
    """
    if not 0.0 < p < 1.0:
        if p == 0.0:
            return -math.inf
        return math.inf if p == 1.0 else math.nan
    d = p - 0.5  # exact when |d| <= 1/4 (Sterbenz)
    if abs(d) <= 0.25:
        z = _sf_ndtri_guess(d, 0.5 - abs(d))
        y = z * 0.7071067811865476  # z/√2 = y + lo
        lo = _sf_mul_err(z, 0.7071067811865476) + z * -4.833646656726457e-17
        # erf(z/√2)/2 - d, the difference taken first (exact) and lo applied to first order
        r = (0.5 * math.erf(y) - d) + 0.5641895835477563 * math.exp(-y * y) * lo
        u = r * 2.5066282746310007 * math.exp(0.5 * z * z)  # r / density
        return z - u / (1.0 + 0.5 * z * u)
    q = p if d < 0.0 else 1.0 - p  # exact
    z = -abs(_sf_ndtri_guess(d, q))  # lower-tail quantile of q
    if q >= 1e-300:
        u = (_sf_ndtr(z) - q) * 2.5066282746310007 * math.exp(0.5 * z * z)
        z -= u / (1.0 + 0.5 * z * u)
    else:
        for _ in range(2):
            lg = _sf_log_ndtr(z)
            # Newton on log Φ(z) = log q; d/dz log Φ = density/Φ = exp(-z²/2 - log√(2π) - lg)
            z -= (lg - math.log(q)) * math.exp(lg + 0.5 * z * z + 0.9189385332046728)
    return z if d < 0.0 else -z


def _sf_erfinv(x):
    """Inverse error function on [-1, 1]; ±1 → ±inf, nan outside.

    Method: Acklam's normal quantile approximation rescaled, then one Halley step on
    erf(y) - x for |x| <= 1/2, or on erfc(y) - (1 - |x|) with 1 - |x| exact above, so that
    1 - 1e-16 is as accurate as 0.3. Measured error: 1.7 ULP (libm's erf).
    """
    a = abs(x)
    if not a < 1.0:
        return math.copysign(math.inf, x) if a == 1.0 else math.nan
    if a <= 0.5:
        y = _sf_ndtri_guess(0.5 * x, 0.5 - 0.5 * a) * 0.7071067811865476
        u = (math.erf(y) - x) * 0.886226925452758 * math.exp(y * y)  # residual / erf'
        return y - u / (1.0 + y * u)
    t = 1.0 - a  # exact
    y = -_sf_ndtri_guess(0.5 * t - 0.5, 0.5 * t) * 0.7071067811865476
    u = (t - math.erfc(y)) * 0.886226925452758 * math.exp(y * y)  # residual / erfc'
    return math.copysign(y - u / (1.0 + y * u), x)


def _sf_erfcinv(q):
    """Inverse complementary error function on [0, 2]; 0 → inf, 2 → -inf, nan outside.

    Method: erfinv(1 - q) for 1/2 <= q <= 3/2 (1 - q exact); else, with t = q or 2 - q
    (exact), Acklam's approximation and one Halley step on erfc(y) - t, or for t < 1e-300
    (erfc subnormal) an asymptotic start and Newton steps on log erfc(y) - log t with
    log erfc from its asymptotic series. Measured error: 1.7 ULP (1.0 ULP for q < 1/2).
    """
    if not 0.0 < q < 2.0:
        if q == 0.0:
            return math.inf
        return -math.inf if q == 2.0 else math.nan
    if 0.5 <= q <= 1.5:
        return _sf_erfinv(1.0 - q)
    t = q if q < 1.0 else 2.0 - q
    if t >= 1e-300:
        y = -_sf_ndtri_guess(0.5 * t - 0.5, 0.5 * t) * 0.7071067811865476
        u = (t - math.erfc(y)) * 0.886226925452758 * math.exp(y * y)
        y -= u / (1.0 + y * u)
    else:
        # erfc(y) is subnormal here: Newton on log erfc(y) = log t with the asymptotic series
        # log erfc(y) = -y² - log(y√π) + log(1 - s + 3s² - 15s³ + ...), s = 1/(2y²) < 8e-4.
        lt = -math.log(t)
        y = math.sqrt(lt - 0.5 * math.log(3.141592653589793 * lt))  # erfc y ≈ e^-y²/(y√π)
        for _ in range(3):
            s = 0.5 / (y * y)
            c = 1.0
            for k in range(15, 1, -2):
                c = 1.0 - k * s * c
            tail = s * c
            r = (lt - y * y) - (math.log(y) + 0.5723649429247001 - math.log1p(-tail))
            # d/dy log erfc(y) = -(2/√π) e^-y²/erfc(y) = -2y/(1 - tail)
            y += r * (1.0 - tail) / (2.0 * y)
    return y if q < 1.0 else -y


# Lambert W


def _sf_lambertw(x):
    """Principal branch W0 of the Lambert W function for x >= -1/e; nan below, inf → inf.

    Method by region. x < -1/4 (near the branch point): W = v - 1 where
    g(v) = 1 + (v - 1)e^v = t := e·x + 1; t is formed in double-double (x + fl(1/e) is
    exact), v starts from the branch-point series in p = √(2t) and takes Newton steps with g
    summed as a series (no cancellation). |x| <= 1e-3: Taylor series. x < 3: Halley on
    w·e^w = x from Winitzki's estimate, the product exact. Above: Newton on w = log(x/w),
    which cannot overflow. Measured error: 1.6 ULP.
    """
    if not x < math.inf:  # inf and nan
        return x
    if x < -0.25:
        # t = e·x + 1 = e·(x + 1/e) in double-double: x + fl(1/e) is exact (Sterbenz) and
        # its product with fl(e) exact by Dekker's method; the constants' errors are added.
        a = x + 0.36787944117144233
        p = a * 2.718281828459045
        r = _sf_mul_err(a, 2.718281828459045)
        r += a * 1.4456468917292502e-16 + -1.2428753672788363e-17 * 2.718281828459045
        t = p + r
        t_lo = (p - t) + r
        if not t > 0.0:  # x < -1/e, including fl(-1/e), which lies just below -1/e
            return math.nan
        p = math.sqrt(2.0 * t)
        v = -43.0 / 540.0 + p * (769.0 / 17280.0 + p * (-221.0 / 8505.0))
        v = p * (1.0 + p * (-1.0 / 3.0 + p * (11.0 / 72.0 + p * v)))  # W + 1 to O(p⁷)
        for i in range(8):
            s = 1.0  # g(v) = Σ (n-1) v^n / n! = (v²/2)(1 + (2/3) v (1 + (3/8) v (...)))
            for n in range(19, 1, -1):
                s = 1.0 + v * s * n / ((n - 1) * (n + 1))
            dv = ((0.5 * v * v * s - t) - t_lo) / (v * math.exp(v))  # g'(v) = v e^v
            if abs(dv) <= 1e-15 * v or i == 7:
                break
            v -= dv
        # Last step folded into W itself: for v >= 1/2, v - 1 is exact and W has the finer grid.
        return (v - 1.0) - dv if v >= 0.5 else (v - dv) - 1.0
    if abs(x) <= 1e-3:  # Taylor series Σ (-n)^(n-1) x^n/n!; the x⁸ term is < 1e-22 |x|
        c = ((16807.0 / 720.0 * x - 10.8) * x + 125.0 / 24.0) * x - 8.0 / 3.0
        return x * (1.0 + x * (-1.0 + x * (1.5 + x * c)))
    if x < 3.0:
        w = math.log1p(x)
        w *= 1.0 - math.log1p(w) / (2.0 + w)  # Winitzki's estimate, within 4% here
        for _ in range(8):
            ew = math.exp(w)
            p = w * ew  # w·e^w = p + p_lo exactly, so only exp's rounding remains
            p_lo = _sf_mul_err(w, ew)
            f = (p - x) + p_lo
            dw = f / (ew * (w + 1.0) - 0.5 * (w + 2.0) * f / (w + 1.0))  # Halley
            w -= dw
            if abs(dw) <= 1e-15 * abs(w):
                break
        return w
    # Newton on w - log(x/w) = 0: x/w is rounded relatively, so the residual is accurate to
    # about half an ULP of w (w + log w - log x would carry log x's rounding, ~1 ULP).
    lx = math.log(x)
    w = lx - math.log(lx) + math.log(lx) / lx
    for _ in range(8):
        dw = (w - math.log(x / w)) * w / (1.0 + w)
        w -= dw
        if abs(dw) <= 1e-15 * w:
            break
    return w


# Logistic family and log-hyperbolic functions


def _sf_softplus(x):
    """softplus(x) = log(1 + e^x) for all x, without overflow.

    Method: max(x, 0) + log1p(e^-|x|), branch-free so that a kernel's loop vectorizes.
    Measured error: 1.4 ULP.
    """
    return max(x, 0.0) + _sf_log1p(_sf_exp(-abs(x)))


def _sf_log_sigmoid(x):
    """log σ(x) = -softplus(-x). Measured error: 1.4 ULP."""
    return -_sf_softplus(-x)


def _sf_sigmoid(x):
    """Logistic function σ(x) = 1/(1 + e^-x) for all x.

    Method: with e = exp(-|x|) <= 1 (no overflow), 1/(1 + e) for x >= 0 and e/(1 + e)
    below, the rounding error of 1 + e (fast two-sum) fed back to first order; very negative
    x give e^x down to the subnormals. Measured error: 1.9 ULP (exp's rounding when σ and e
    fall in different binades).
    """
    e = _sf_exp(-abs(x))
    s = 1.0 + e
    s_lo = (1.0 - s) + e  # 1 + e = s + s_lo exactly
    q = (1.0 if x >= 0.0 else e) / s
    return q - q * (s_lo / s)


def _sf_logit(p):
    """logit(p) = log(p/(1 - p)) on [0, 1]; 0 → -inf, 1 → inf, nan outside.

    Method: 2·atanh(2p - 1) for 1/4 <= p <= 3/4 (2p - 1 exact, so the zero at 1/2 keeps
    relative accuracy), log(p) - log1p(-p) below, log1p(-q) - log(q) with q = 1 - p exact
    above; all three are computed and one is selected (no branches: the loop vectorizes).
    Measured error: 1.6 ULP.
    """
    q = 1.0 - p
    centre = 2.0 * _sf_atanh(2.0 * p - 1.0)
    low = _sf_log(p) - _sf_log1p(-p)
    high = _sf_log1p(-q) - _sf_log(q)
    return centre if 0.25 <= p <= 0.75 else (low if p < 0.25 else high)


def _sf_log1mexp(a):
    """log(1 - e^-a) for a >= 0; 0 → -inf, inf → 0, nan below 0.

    Method (Mächler 2012): log(-expm1(-a)) for a <= ln 2, log1p(-exp(-a)) above, each
    where its inner function does not cancel; both computed, one selected (vectorizes).
    Measured error: 1.5 ULP.
    """
    small = _sf_log(-_sf_expm1(-a))
    large = _sf_log1p(-_sf_exp(-a))
    return small if a <= 0.6931471805599453 else large


def _sf_softplus_inverse(y):
    """Inverse of softplus, log(e^y - 1), for y >= 0; 0 → -inf, nan below.

    Method: below 0.45, log(y) + log1p(expm1(y)/y - 1) with that ratio as a series (log(y)
    is nearly correctly rounded); on [0.45, 1.386], log1p(2·expm1(y - ln 2)) with y - ln 2
    exact in double-double, so the zero at ln 2 keeps relative accuracy; above,
    y + log1p(-e^-y), which cannot overflow. All three are computed and one is selected, so
    that a kernel's loop vectorizes. Measured error: 1.9 ULP.
    """
    s = 1.0  # expm1(y)/y - 1 = (y/2)(1 + y/3 (1 + y/4 (...)))
    for n in range(16, 2, -1):
        s = 1.0 + y * s * (1.0 / n)
    small = _sf_log(y) + _sf_log1p(0.5 * y * s)
    d = (y - 0.6931471805599453) - 2.3190468138462996e-17
    middle = _sf_log1p(2.0 * _sf_expm1(d))
    large = y + _sf_log1p(-_sf_exp(-y))
    return small if y < 0.45 else (middle if y <= 1.386 else large)


def _sf_logcosh(x):
    """log(cosh(x)) for all x, relatively accurate at the zero x = 0.

    Method: with a = |x|, log1p(w) where w = cosh a - 1 for a <= 1.3, w = a²·P(a²) with P
    the Taylor polynomial of (cosh a - 1)/a² to degree 10 in a² (truncation error below
    3e-19 relative) and a² carried as hi + lo, so that w is within about an ULP; above 1.3,
    a - ln 2 + log1p(e^-2a), the difference exact (two-sum), which cannot overflow. There
    e^-2a = (1 - E/(1 + E))² with E = e^a - 1 formed exactly as `_sf_sinh` forms it
    (`_sf_expm1_core` of the same reduced argument, then the same division), so that a
    kernel needing sinh and log cosh of one value (SinhArcsinh's forward and log-det)
    computes E and the one division once: LLVM merges the identical steps. 1 - E/(1 + E) is
    exact (the quotient is at least 1/2 there). From a = 40 on, E is e^(a - 1.386) - 1 as
    sinh takes it; log1p's argument is then below 1e-33 and its value far below an ULP of
    the result either way. Both regions share one log1p (its argument selected per
    element), so the function stays cheap in a vectorized loop.
    Measured error: 2.1 ULP (at x = 0.2496: w's rounding, then log1p's; 210,000 points).
    """
    a = abs(x)
    u = a * a
    ul = _sf_fma(a, a, -u)  # a² = u + ul exactly
    p = _sf_fma(8.896791392450574e-22, u, 4.110317623312165e-19)  # 1/(2n)!, n = 11 ... 1
    p = _sf_fma(p, u, 1.5619206968586225e-16)
    p = _sf_fma(p, u, 4.779477332387385e-14)
    p = _sf_fma(p, u, 1.1470745597729725e-11)
    p = _sf_fma(p, u, 2.08767569878681e-09)
    p = _sf_fma(p, u, 2.755731922398589e-07)
    p = _sf_fma(p, u, 2.48015873015873e-05)
    p = _sf_fma(p, u, 0.001388888888888889)
    p = _sf_fma(p, u, 0.041666666666666664)
    p = _sf_fma(p, u, 0.5)
    w = _sf_fma(u, p, ul * p)  # cosh a - 1, for a <= 1.3
    ac = 710.48 if a > 710.48 else a  # as `_sf_sinh` reduces it; nan stays nan
    z = ac if ac < 40.0 else ac - 1.3862943611198943
    e = _sf_expm1_core(z)
    rc = 1.0 - e / (e + 1.0)  # 1/(1 + E); the quotient as in `_sf_sinh`
    small = a <= 1.3
    lg = _sf_log1p(w if small else rc * rc)
    h = a - 0.6931471805599453
    h_lo = (a - h) - 0.6931471805599453  # exact rounding error of h (a > ln 2)
    large = h + ((lg - 2.3190468138462996e-17) + h_lo)
    return lg if small else (a if a == math.inf else large)


def _sf_logsinh(x):
    """log(sinh(x)) for x > 0; 0 → -inf, nan below.

    Method: below 0.36, log(x) + log1p(sinh(x)/x - 1) with that ratio as a series. On
    [0.36, 1.5], around the zero x0 = asinh(1), log(1 + t) with t = sinh(x0 + d) - 1 =
    √2 sinh d + cosh d - 1 summed in double-double from d = x - x0 (two-sum) and evaluated
    as log(u) + u_lo/u, so the zero keeps relative accuracy. Above, x - ln 2 +
    log1p(-e^-2x) with the difference exact. The pieces are all computed and one is
    selected, so that a kernel's loop vectorizes. Measured error: 1.4 ULP.
    """
    s = x * x
    sa = 1.0  # sinh(x)/x - 1 = x²/6 (1 + x²/20 (1 + x²/42 (...)))
    for k in range(5, 0, -1):
        sa = 1.0 + s * sa * (1.0 / ((2 * k + 2) * (2 * k + 3)))
    small = _sf_log(x) + _sf_log1p(s / 6.0 * sa)
    d = x - 0.881373587019543  # d + d_lo = x - asinh(1), by two-sum
    b = d - x
    d_lo = ((x - (d - b)) + (-0.881373587019543 - b)) + 2.250545892825866e-17
    p = 1.4142135623730951 * d  # fl(√2)·d = p + p_lo and d² = s + s_lo exactly
    p_lo = _sf_mul_err(d, 1.4142135623730951)
    s = d * d
    s_lo = _sf_mul_err(d, d)
    sa = 1.0  # sinh d - d = d³/6 (1 + d²/20 (1 + ...))
    ca = 1.0  # cosh d - 1 - d²/2 = d⁴/24 (1 + d²/30 (1 + ...))
    for k in range(8, 0, -1):
        sa = 1.0 + s * sa * (1.0 / ((2 * k + 2) * (2 * k + 3)))
        ca = 1.0 + s * ca * (1.0 / ((2 * k + 3) * (2 * k + 4)))
    # t = √2 sinh d + cosh d - 1 = m + m_lo: the leading terms √2·d + d²/2 by
    # fast two-sums (each addend smaller than the sum), the rest only rounded.
    q = 1.4142135623730951 * d * s / 6.0 * sa + s * s / 24.0 * ca
    m0 = p + 0.5 * s
    m = m0 + q
    m_lo = (((p - m0) + 0.5 * s) + ((m0 - m) + q)) + (p_lo + 0.5 * s_lo)
    m_lo += -9.667293313452913e-17 * d + d_lo * (1.4142135623730951 + d)
    u = 1.0 + m  # log1p(m + m_lo) = log(u + u_lo), u_lo by two-sum
    b = u - 1.0
    u_lo = ((1.0 - (u - b)) + (m - b)) + m_lo
    middle = _sf_log(u) + u_lo / u
    h = x - 0.6931471805599453
    h_lo = (x - h) - 0.6931471805599453
    large = h + ((_sf_log1p(-_sf_exp(-2.0 * x)) - 2.3190468138462996e-17) + h_lo)
    large = x if x == math.inf else large
    return small if x < 0.36 else (middle if x <= 1.5 else large)


def _sf_cbrt(x):
    """Real cube root, odd; ±0, ±inf and nan pass through.

    Method: libm's cbrt (np.cbrt; glibc 2.36's is up to 2.2 ULP off), then one Newton step
    y -= (y³ - |x|)/(3y²) with the residual exact (Dekker products), |x| scaled by 2**±999
    outside [1e-290, 1e290] so that no product under- or overflows. Measured error: 0.5 ULP.
    """
    if x == 0.0 or not abs(x) < math.inf:
        return x
    a = abs(x)
    scale = 1.0
    if a < 1e-290:
        a *= 5.357543035931337e300  # 2**999
        scale = 5.714936956411375e-101  # 2**-333
    elif a > 1e290:
        a *= 1.8665272370064378e-301  # 2**-999
        scale = 1.7498005798264095e100  # 2**333
    y = np.cbrt(a)
    h = y * y
    lo = _sf_mul_err(y, y)  # y² = h + lo
    p = y * h
    e = _sf_mul_err(y, h)  # y·h = p + e
    r = ((p - a) + e) + y * lo  # y³ - a; p - a is exact (Sterbenz)
    return math.copysign((y - r / (3.0 * h)) * scale, x)


def _sf_select(c, a, b):
    """`a if c else b` for a boolean c and float64 a, b, without a jump: a bit mask picks.

    For loops LLVM does not vectorize (a training kernel's rows, whose sums are reductions
    it may not reorder) a conditional expression can stay a conditional jump. Where the
    condition is a coin flip (PReLU's sign near the optimum) the mispredicted jumps cost
    more than the row's arithmetic: the tiny flow's training step took 4.30 µs with jumps,
    4.04 µs with this (medians, the two modules run alternately in one process). Both sides
    are computed, as in a vectorized loop; the untaken side's inf or nan is masked away,
    never combined arithmetically.
    """
    m = -int(c)  # all ones or all zeros
    return _sf_from_bits((_sf_as_bits(float(a)) & m) | (_sf_as_bits(float(b)) & ~m))


def _sf_newton_step(x0, r, s):
    """x0 - r / s, or x0 where r or s is 0 (`symflow.symbolic.functions.newton_step`)."""
    if r == 0.0 or s == 0.0:
        return x0
    return x0 - r / s


def _sf_newton_step_f32(x0, r, s):
    """`_sf_newton_step` for float32 arguments (the same operations, in float32)."""
    if r == 0 or s == 0:
        return x0
    return x0 - r / s


# Registry


_helper = njit_helper

SCALAR_HELPERS: dict[str, Helper] = {
    h.name: h
    for h in (
        _helper(_sf_mul_err),
        _helper(_sf_ndtr, _sf_mul_err),
        _helper(_sf_log_ndtr, _sf_ndtr),
        _helper(_sf_ndtri_guess),
        _helper(_sf_ndtri, _sf_ndtri_guess, _sf_mul_err, _sf_ndtr, _sf_log_ndtr),
        _helper(_sf_erfinv, _sf_ndtri_guess),
        _helper(_sf_erfcinv, _sf_erfinv, _sf_ndtri_guess),
        _helper(_sf_lambertw, _sf_mul_err),
        _helper(_sf_softplus, _sf_exp, _sf_log1p, inline=True),
        _helper(_sf_log_sigmoid, _sf_softplus, inline=True),
        _helper(_sf_sigmoid, _sf_exp, inline=True),
        _helper(_sf_logit, _sf_atanh, _sf_log, _sf_log1p, inline=True),
        _helper(_sf_log1mexp, _sf_exp, _sf_expm1, _sf_log, _sf_log1p, inline=True),
        _helper(_sf_softplus_inverse, _sf_exp, _sf_expm1, _sf_log, _sf_log1p, inline=True),
        _helper(_sf_logcosh, _sf_expm1_core, _sf_fma, _sf_log1p, inline=True),
        _helper(_sf_logsinh, _sf_exp, _sf_log, _sf_log1p, _sf_mul_err, inline=True),
        _helper(_sf_cbrt, _sf_mul_err),
        _helper(_sf_select, _sf_as_bits, _sf_from_bits),
        _helper(_sf_newton_step),
        _helper(_sf_newton_step_f32),
    )
}
"""The scalar special functions of this module, keyed by name."""

HELPERS: dict[str, Helper] = {
    **SCALAR_HELPERS,
    **INTRINSICS,
    **vm_exp.HELPERS,
    **vm_log.HELPERS,
    **vm_erf.HELPERS,
    **vm_exp32.HELPERS,
    **vm_log32.HELPERS,
    **vm_logistic32.HELPERS,
}
"""Every helper, keyed by name: the scalar ones above, the intrinsics and the vectorizable
elementary functions of `vm_exp`, `vm_log` and `vm_erf`."""


def helper_sources(names: Iterable[str]) -> str:
    """Source text of the named helpers and everything they require, each once.

    Args:
        names: Helper names, e.g. the set a `KernelPrinter` collected.

    Returns:
        The sources, dependencies before dependents and otherwise in name order, separated by
        two blank lines and ending in a newline; "" for no names. The same names always give
        the same text.

    Raises:
        KeyError: A name (or a requirement) is not in `HELPERS`.
    """
    needed: set[str] = set()
    stack = list(names)
    while stack:
        name = stack.pop()
        if name not in needed:
            if name not in HELPERS:
                raise KeyError(f"unknown mathlib helper {name!r}")
            needed.add(name)
            stack.extend(HELPERS[name].requires)
    ordered: list[str] = []
    done: set[str] = set()
    while len(ordered) < len(needed):
        # Smallest name whose requirements are all placed: a deterministic topological order.
        name = min(n for n in needed - done if done.issuperset(HELPERS[n].requires))
        ordered.append(name)
        done.add(name)
    return "\n\n".join(HELPERS[n].source for n in ordered)
