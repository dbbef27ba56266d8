"""Float32 versions of the logistic and log-hyperbolic helpers of `symflow.codegen.mathlib`.

Each is the float64 helper's method in float32 arithmetic on the float32 functions of
`vm_exp32` and `vm_log32`: every constant is a ``np.float32(...)`` (Numba types a bare
literal as float64, which would widen the whole computation), the regions are all computed
and one is selected per element, and the helper is force-inlined so that a kernel's loop
keeps vectorizing with 8 lanes. Float32 needs fewer correction terms than float64: where
the float64 version carries a double-word remainder, these keep only what moves the result
by more than a float32 rounding.

"Measured error" is the largest error against 50-digit mpmath values over float32 points
spanning each function's domain (`tests/test_vm_logistic32.py`), in float32 ULPs.
"""

from __future__ import annotations

import math

import numpy as np

from symflow.codegen.helperbase import Helper, njit_helper
from symflow.codegen.vm_exp32 import _sf_exp_f32, _sf_expm1_f32, _sf_sinh_f32
from symflow.codegen.vm_log32 import _sf_atanh_f32, _sf_log1p_f32, _sf_log_f32

__all__ = ["HELPERS"]


def _sf_softplus_f32(x):
    """softplus(x) = log(1 + e^x) for float32 x: max(x, 0) + log1p(e^-|x|), no overflow.

    Measured error: 1.37 ULP.
    """
    return max(x, np.float32(0.0)) + _sf_log1p_f32(_sf_exp_f32(-abs(x)))


def _sf_log_sigmoid_f32(x):
    """log σ(x) = -softplus(-x) for float32 x.

    Measured error: 1.32 ULP.
    """
    return -_sf_softplus_f32(-x)


def _sf_sigmoid_f32(x):
    """σ(x) = 1/(1 + e^-x) for float32 x: e = e^-|x|, then 1/(1 + e) or e/(1 + e).

    The rounding error of 1 + e (a fast two-sum) is fed back to first order, as in float64.

    Measured error: 1.71 ULP.
    """
    one = np.float32(1.0)
    e = _sf_exp_f32(-abs(x))
    s = one + e
    s_lo = (one - s) + e  # 1 + e = s + s_lo exactly
    q = (one if x >= np.float32(0.0) else e) / s
    return q - q * (s_lo / s)


def _sf_logit_f32(p):
    """logit(p) = log(p/(1 - p)) for float32 p in [0, 1]; 0 → -inf, 1 → inf, nan outside.

    2·atanh(2p - 1) on [1/4, 3/4] (2p - 1 exact), log(p) - log1p(-p) below, and
    log1p(-q) - log(q) with q = 1 - p exact above; one is selected.

    Measured error: 1.48 ULP.
    """
    two = np.float32(2.0)
    q = np.float32(1.0) - p
    centre = two * _sf_atanh_f32(two * p - np.float32(1.0))
    low = _sf_log_f32(p) - _sf_log1p_f32(-p)
    high = _sf_log1p_f32(-q) - _sf_log_f32(q)
    return centre if np.float32(0.25) <= p <= np.float32(0.75) else (low if p < 0.25 else high)


def _sf_log1mexp_f32(a):
    """log(1 - e^-a) for float32 a >= 0 (Mächler 2012): log(-expm1(-a)) up to ln 2, then
    log1p(-e^-a); 0 → -inf, inf → 0, nan below 0.

    Measured error: 1.40 ULP.
    """
    small = _sf_log_f32(-_sf_expm1_f32(-a))
    large = _sf_log1p_f32(-_sf_exp_f32(-a))
    return small if a <= np.float32(0.6931471805599453) else large


def _sf_softplus_inverse_f32(y):
    """log(e^y - 1) for float32 y >= 0; 0 → -inf, nan below.

    Below 0.45, log(y) + log1p(expm1(y)/y - 1) with the ratio as a series; on [0.45, 1.386],
    log1p(2·expm1(y - ln 2)) with y - ln 2 exact in two pieces (the zero at ln 2 keeps
    relative accuracy); above, y + log1p(-e^-y), which cannot overflow.

    Measured error: 1.78 ULP.
    """
    s = np.float32(1.0)  # expm1(y)/y - 1 = (y/2)(1 + y/3 (1 + y/4 (...)))
    for n in range(10, 2, -1):
        s = np.float32(1.0) + y * s * np.float32(1.0 / n)
    small = _sf_log_f32(y) + _sf_log1p_f32(np.float32(0.5) * y * s)
    # ln 2 = 0.693147182464599609375 + (-1.904654299957768e-09); y - the first is exact.
    d = (y - np.float32(0.693147182464599609375)) - np.float32(-1.904654299957768e-09)
    middle = _sf_log1p_f32(np.float32(2.0) * _sf_expm1_f32(d))
    large = y + _sf_log1p_f32(-_sf_exp_f32(-y))
    return small if y < np.float32(0.45) else (middle if y <= np.float32(1.386) else large)


def _sf_logcosh_f32(x):
    """log(cosh(x)) for float32 x, relatively accurate at the zero x = 0.

    With a = |x| and E = expm1(a): log1p(E²/(2(1 + E))) up to 1.3, and a - ln 2 +
    log1p(1/(1 + E)²) above, a - ln 2 exact in two pieces; one expm1 and one log1p serve
    both regions.

    Measured error: 2.96 ULP.
    """
    a = abs(x)
    e = _sf_expm1_f32(a)
    small = a <= np.float32(1.3)
    u = np.float32(1.0) + e
    w = (e * e) / (u + u)
    lg = _sf_log1p_f32(w if small else np.float32(1.0) / (u * u))
    h = a - np.float32(0.693147182464599609375)
    h_lo = (a - h) - np.float32(0.693147182464599609375)  # exact rounding error of h
    large = h + ((lg + np.float32(1.904654299957768e-09)) + h_lo)
    return lg if small else (a if a == math.inf else large)


def _sf_logsinh_f32(x):
    """log(sinh(x)) for float32 x > 0; 0 → -inf, nan below.

    Below 0.6, log(x) + log1p(sinh(x)/x - 1) with the ratio as a series. On [0.6, 1.5],
    around the zero x0 = asinh(1): with d = x - x0 (x0 in two float32 pieces, the first
    difference exact), sinh(x) - 1 = √2·sinh(d) + 2·sinh²(d/2) keeps relative accuracy
    and log1p of it is taken. Above, x - ln 2 + log1p(-e^-2x) with the difference exact.

    Measured error: 2.78 ULP.
    """
    s = x * x
    sa = np.float32(1.0)  # sinh(x)/x - 1 = x²/6 (1 + x²/20 (1 + x²/42 (...)))
    for k in range(5, 0, -1):
        sa = np.float32(1.0) + s * sa * np.float32(1.0 / ((2 * k + 2) * (2 * k + 3)))
    small = _sf_log_f32(x) + _sf_log1p_f32(s * np.float32(1.0 / 6.0) * sa)
    # asinh(1) = 0.8813735842704773 + 2.7490657303107342e-09; x minus the first is exact.
    d = (x - np.float32(0.8813735842704773)) - np.float32(2.7490657303107342e-09)
    h = _sf_sinh_f32(np.float32(0.5) * d)
    t = np.float32(1.4142135623730951) * _sf_sinh_f32(d) + np.float32(2.0) * h * h
    middle = _sf_log1p_f32(t)
    g = x - np.float32(0.693147182464599609375)
    g_lo = (x - g) - np.float32(0.693147182464599609375)
    large = g + (
        (_sf_log1p_f32(-_sf_exp_f32(np.float32(-2.0) * x)))
        + np.float32(1.904654299957768e-09)
        + g_lo
    )
    large = x if x == math.inf else large
    return small if x < np.float32(0.6) else (middle if x <= np.float32(1.5) else large)


HELPERS: dict[str, Helper] = {
    h.name: h
    for h in (
        njit_helper(_sf_softplus_f32, _sf_exp_f32, _sf_log1p_f32, inline=True),
        njit_helper(_sf_log_sigmoid_f32, _sf_softplus_f32, inline=True),
        njit_helper(_sf_sigmoid_f32, _sf_exp_f32, inline=True),
        njit_helper(_sf_logit_f32, _sf_atanh_f32, _sf_log_f32, _sf_log1p_f32, inline=True),
        njit_helper(
            _sf_log1mexp_f32, _sf_exp_f32, _sf_expm1_f32, _sf_log_f32, _sf_log1p_f32, inline=True
        ),
        njit_helper(
            _sf_softplus_inverse_f32,
            _sf_exp_f32,
            _sf_expm1_f32,
            _sf_log_f32,
            _sf_log1p_f32,
            inline=True,
        ),
        njit_helper(_sf_logcosh_f32, _sf_expm1_f32, _sf_log1p_f32, inline=True),
        njit_helper(
            _sf_logsinh_f32, _sf_exp_f32, _sf_log_f32, _sf_log1p_f32, _sf_sinh_f32, inline=True
        ),
    )
}
"""The float32 logistic and log-hyperbolic helpers, keyed by name."""
