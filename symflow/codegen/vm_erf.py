"""Vectorizable erf, erfc, normal CDF and log normal CDF for generated kernels.

The functions follow the rules of pasted helpers (see `symflow.codegen.mathlib`) and are
branch-free besides: every case is computed for every element and the answer picked with
conditional expressions, so that LLVM's loop vectorizer turns a kernel's elementwise loop
over them into vector instructions.

The rational approximations of erf and erfc are those of fdlibm's s_erf.c:

    Copyright (C) 1993 by Sun Microsystems, Inc. All rights reserved.
    Developed at SunPro, a Sun Microsystems, Inc. business.
    Permission to use, copy, modify, and distribute this software is freely granted,
    provided that this notice is preserved.

"Measured error" in a docstring is the largest error found against 50-digit mpmath values
at >= 100,000 points over the whole float64 range, in ULPs of the correctly rounded result.
"""

from __future__ import annotations

import math

from symflow.codegen.helperbase import Helper, _sf_as_bits, _sf_fma, _sf_from_bits, njit_helper
from symflow.codegen.vm_exp import _sf_exp
from symflow.codegen.vm_log import _sf_log, _sf_log1p

__all__ = ["HELPERS"]


def _sf_erf_core(a, al):
    """erf(a + al), erfc(a + al) and fdlibm's rational part R for a >= 0, |al| <= ulp(a).

    Method: fdlibm's s_erf.c, with the four intervals' rational approximations R in
    t = a², a - 1, 1/a², 1/a² (breaks at 0.84375, 1.25, 1/0.35) evaluated once, with
    coefficients picked per element: erf = a + a·R, erf = c + R (c = 0.845062911510467529297)
    and erfc = exp(-a² - 0.5625 + R)/a, the last as exp(-z² - 0.5625)·exp((z - a)(z + a) + R)
    with z = a to 21 bits so that z² is exact. The low part `al` of a double-double argument
    enters the exponent (-2a·al - al/a) above 1.25 and as the first-order term
    ±(2/√π)·exp(-a²)·al below. Results for a >= 28, inf or nan are unspecified.
    """
    i1 = a >= 0.84375
    i2 = a >= 1.25
    i3 = a >= 2.857142857142857
    aa = a * a
    s = 1.0 / max(aa, 1.0)  # 1/a² where it is used (a >= 1.25); no 1/0 under CPython
    t = (s if i2 else a - 1.0) if i1 else aa
    # Numerator coefficients n0..n7 and denominator d1..d8 of the interval (d0 = 1).
    n7 = (0.0 if i3 else -9.81432934416914548592e00) if i2 else 0.0
    n6 = (
        (-4.83519191608651397019e02 if i3 else -8.12874355063065934246e01)
        if i2
        else (-2.16637559486879084300e-03 if i1 else 0.0)
    )
    n5 = (
        (-1.02509513161107724954e03 if i3 else -1.84605092906711035994e02)
        if i2
        else (3.54783043256182359371e-02 if i1 else 0.0)
    )
    n4 = (
        (-6.37566443368389627722e02 if i3 else -1.62396669462573470355e02)
        if i2
        else (-1.10894694282396677476e-01 if i1 else -2.37630166566501626084e-05)
    )
    n3 = (
        (-1.60636384855821916062e02 if i3 else -6.23753324503260060396e01)
        if i2
        else (3.18346619901161753674e-01 if i1 else -5.77027029648944159157e-03)
    )
    n2 = (
        (-1.77579549177547519889e01 if i3 else -1.05586262253232909814e01)
        if i2
        else (-3.72207876035701323847e-01 if i1 else -2.84817495755985104766e-02)
    )
    n1 = (
        (-7.99283237680523006574e-01 if i3 else -6.93858572707181764372e-01)
        if i2
        else (4.14856118683748331666e-01 if i1 else -3.25042107247001499370e-01)
    )
    n0 = (
        (-9.86494292470009928597e-03 if i3 else -9.86494403484714822705e-03)
        if i2
        else (-2.36211856075265944077e-03 if i1 else 1.28379167095512558561e-01)
    )
    d8 = (0.0 if i3 else -6.04244152148580987438e-02) if i2 else 0.0
    d7 = (-2.24409524465858183362e01 if i3 else 6.57024977031928170135e00) if i2 else 0.0
    d6 = (
        (4.74528541206955367215e02 if i3 else 1.08635005541779435134e02)
        if i2
        else (1.19844998467991074170e-02 if i1 else 0.0)
    )
    d5 = (
        (2.55305040643316442583e03 if i3 else 4.29008140027567833386e02)
        if i2
        else (1.36370839120290507362e-02 if i1 else -3.96022827877536812320e-06)
    )
    d4 = (
        (3.19985821950859553908e03 if i3 else 6.45387271733267880336e02)
        if i2
        else (1.26171219808761642112e-01 if i1 else 1.32494738004321644526e-04)
    )
    d3 = (
        (1.53672958608443695994e03 if i3 else 4.34565877475229228821e02)
        if i2
        else (7.18286544141962662868e-02 if i1 else 5.08130628187576562776e-03)
    )
    d2 = (
        (3.25792512996573918826e02 if i3 else 1.37657754143519042600e02)
        if i2
        else (5.40397917702171048937e-01 if i1 else 6.50222499887672944485e-02)
    )
    d1 = (
        (3.03380607434824582924e01 if i3 else 1.96512716674392571292e01)
        if i2
        else (1.06420880400844228286e-01 if i1 else 3.97917223959155352819e-01)
    )
    num = _sf_fma(n7, t, n6)
    num = _sf_fma(num, t, n5)
    num = _sf_fma(num, t, n4)
    num = _sf_fma(num, t, n3)
    num = _sf_fma(num, t, n2)
    num = _sf_fma(num, t, n1)
    num = _sf_fma(num, t, n0)
    den = _sf_fma(d8, t, d7)
    den = _sf_fma(den, t, d6)
    den = _sf_fma(den, t, d5)
    den = _sf_fma(den, t, d4)
    den = _sf_fma(den, t, d3)
    den = _sf_fma(den, t, d2)
    den = _sf_fma(den, t, d1)
    den = _sf_fma(den, t, 1.0)
    inv = 1.0 / den
    r = num * inv
    rl = _sf_fma(-r, den, num) * inv  # R = r + rl to ~2^-100: r's rounding costs nothing
    # exp(-(a + al)²)·exp(R - 0.5625)/(a + al) above 1.25, exp(-a²) below, with one exp:
    # -a² = -z² + (z - a)(z + a) with z = a cut to 21 bits, so that h = -z² - 0.5625 is
    # exact; h + v (v the small terms) is formed as the exact sum uh + ul (Fast2Sum), and
    # exp(uh + ul) = exp(uh)·(1 + ul) to 2^-88.
    z = _sf_from_bits(_sf_as_bits(a) & -4294967296)
    h = -z * z - (0.5625 if i2 else 0.0)
    v = (z - a) * (z + a) + (_sf_fma(-al, _sf_fma(a, s, a + a), rl) + r if i2 else 0.0)
    uh = h + v
    ul = (h - uh) + v
    e = _sf_exp(uh)
    w = _sf_fma(e, ul, e)
    # e·(1 + ul)/a rounded once: q = e/a, its remainder exactly, the rest times 1/a ≈ a·s.
    q = e / max(a, 1.0)
    tail = _sf_fma(_sf_fma(e, ul, _sf_fma(-q, a, e)), a * s, q)
    d = 1.1283791670955126 * w * al
    ef_small = _sf_fma(a, r, a)
    # 1 - a - a·R as (u + ue) - (ph + pl), u + ue = 1 - a and ph + pl = a·R, then Fast2Sum
    # of u - ph (u >= 0.15 > |ph|): only the last addition rounds.
    u = 1.0 - a
    ue = (1.0 - u) - a
    ph = a * r
    pl = _sf_fma(a, r, -ph) + a * rl
    cs = u - ph
    ec_small = cs + ((((u - cs) - ph) + ue) - (pl + d))
    # c + R and (1 - c) - R as exact two-term sums (Fast2Sum, |R| < 0.08), rl and d added last.
    fm = 0.845062911510467529297 + r
    fm = fm + (((0.845062911510467529297 - fm) + r) + (rl + d))
    cm = 0.15493708848953247 - r
    cm = cm + (((0.15493708848953247 - cm) - r) - (rl + d))
    ef = (1.0 - tail if i2 else fm) if i1 else ef_small + d
    ec = (tail if i2 else cm) if i1 else ec_small
    return ef, ec, r


def _sf_erf(x):
    """erf(x), vectorizable.

    Method: `_sf_erf_core` (fdlibm's rational approximations, picked per element) on |x|,
    then the sign of x: a + a·R(a²) below 0.84375 (one fma, so erf of a subnormal is
    2x/√π rounded once), c + R(a - 1) below 1.25, 1 - erfc(a) above. Special values:
    erf(±0) = ±0, erf(±inf) = ±1 (from |x| >= 6 on), erf(nan) = nan.

    Measured error: 0.83 ULP (100,000 points; worst at x = 1.6855783411126313e-06).
    """
    a = abs(x)
    ef = _sf_erf_core(a, 0.0)[0]
    ef = 1.0 if a >= 6.0 else ef
    y = math.copysign(ef, x)
    return x if x != x else y


def _sf_erfc(x):
    """erfc(x) = 1 - erf(x), vectorizable, relatively accurate in the upper tail.

    Method: `_sf_erf_core` on |x|; erfc(x) for x >= 0, 1 + erf(|x|) for x < 0. Special values:
    erfc(±0) = 1, erfc(x) = 0 for x > 27.22602 (below that it is accurate into the subnormal
    range), erfc(+inf) = 0, erfc(-inf) = 2, erfc(nan) = nan.

    Measured error: 1.79 ULP (130,000 points; worst at x = 1.3218430961242082, in fdlibm's
    [1.25, 2.857) piece: exp's 0.51 ULP, the last rounding and the rational's own error).
    """
    a = abs(x)
    ef, ec, r = _sf_erf_core(a, 0.0)
    y = ec if x >= 0.0 else 1.0 + ef
    y = (0.0 if x > 0.0 else 2.0) if a >= 28.0 else y
    return x if x != x else y


def _sf_ndtr_v(x):
    """Standard normal CDF Φ(x) = erfc(-x/√2)/2, vectorizable.

    Method: -x/√2 as a double-double y + yl (the fma gives the rounding error of the product,
    the second term that of fl(1/√2)), then `_sf_erf_core`, which takes the low part: erfc
    amplifies a relative error of its argument by 2y², ~3000 near the underflow, so a rounded
    argument would lose 11 bits in the lower tail. Special values: Φ(-inf) = 0, Φ(inf) = 1,
    Φ(nan) = nan; Φ(x) = 0 for x < -38.48541.

    Measured error: 1.94 ULP (130,000 points; worst at x = -1.7402895438773045, where erfc's
    [0.84375, 1.25) piece loses ~1.5 ULP in its Horner evaluation; 1.51 ULP elsewhere).
    """
    p = x * 0.7071067811865476
    lo = _sf_fma(x, 0.7071067811865476, -p) + x * -4.833646656726457e-17
    a = abs(p)  # |y|, y = -x/√2 = -p - lo
    al = lo if x >= 0.0 else -lo
    ef, ec, r = _sf_erf_core(a, al)
    y = 0.5 * (ec if x <= 0.0 else 1.0 + ef)
    y = (0.0 if x < 0.0 else 1.0) if a >= 28.0 else y
    return x if x != x else y


def _sf_log_ndtr_v(x):
    """log Φ(x) for all x, vectorizable, without underflow or overflow.

    Method: with a + al = |x|/√2 as in `_sf_ndtr_v`, `_sf_erf_core` gives q = Φ(-|x|) and
    fdlibm's R(1/a²). For x >= 0, log1p(-q); for -1.25·√2 < x < 0, log(q); below, where
    erfc(a) = exp(-a² - 0.5625 + R)/a, the logarithm of that formula,
    -x²/2 - log(-x) + (R - 0.5625 - log(2)/2), with x²/2 as the exact sum of (x/2)·x and
    its fma remainder, so that it overflows only where the result does (x < -1.896e154).
    The log of q and that of -x share one call. Special values: log Φ(-inf) = -inf,
    log Φ(inf) = 0, log Φ(nan) = nan; -0.0 for x > 38.49 (where -Φ(-x) underflows).

    Measured error: 2.40 ULP (130,000 points; worst at x = 1.9244566843318363: log1p(-q)
    passes on q's error, up to 1.9 ULP for 1.2 < x < 2.5); 1.0 ULP for x < 0.
    """
    ax = abs(x)
    p = ax * 0.7071067811865476
    al = _sf_fma(ax, 0.7071067811865476, -p) + ax * -4.833646656726457e-17
    ef, ec, r = _sf_erf_core(p, al)
    q = 0.0 if p >= 28.0 else 0.5 * ec  # Φ(-|x|)
    tail = p >= 1.25 if x < 0.0 else False  # x < -1.25·√2: where the core used R(1/a²)
    hx = 0.5 * x
    hi = hx * x
    lo = _sf_fma(hx, x, -hi)
    big = _sf_log(-x if tail else q)
    y = -hi + (((r - 0.9090735902799727) - lo) - big) if tail else big
    y = -math.inf if hi > 1.7976931348623157e308 else y  # x²/2 overflows: x < -1.896e154
    y = _sf_log1p(-q) if x > 0.0 else y
    y = 0.0 if x == math.inf else y
    return x if x != x else y


HELPERS: dict[str, Helper] = {
    h.name: h
    for h in (
        # All inlined by Numba: each holds an exp, an 8/8 rational and three divisions, far
        # more than LLVM's inliner takes (cost ~600 against its threshold of 250), and a
        # loop that keeps a call is not vectorized.
        njit_helper(_sf_erf_core, _sf_exp, _sf_as_bits, _sf_from_bits, _sf_fma, inline=True),
        njit_helper(_sf_erf, _sf_erf_core, inline=True),
        njit_helper(_sf_erfc, _sf_erf_core, inline=True),
        njit_helper(_sf_ndtr_v, _sf_erf_core, _sf_fma, inline=True),
        njit_helper(_sf_log_ndtr_v, _sf_erf_core, _sf_fma, _sf_log, _sf_log1p, inline=True),
    )
}
"""The helpers of this module, keyed by name."""
