"""Derivation: branch selection, Piecewise merging, real odd roots, codomains, log-dets.

Derived expressions are checked numerically against mpmath at many points, not compared
to hand-written answers only.
"""

from __future__ import annotations

import mpmath
import pytest
import sympy as sp

import symflow as sf
from symflow.symbolic.derive import derive, log_abs, peel_inverse, real_odd_roots
from symflow.symbolic.dsl import spec_from_function
from symflow.symbolic.numeric import mp_function


def _check_inverse(spec, inverse, y, xs):
    f = mp_function([spec.x], spec.forward_expr)
    g = mp_function([y], inverse)
    with mpmath.workdps(40):
        for x0 in xs:
            back = g(f(mpmath.mpf(x0)))
            assert abs(complex(back) - x0) < 1e-25 * max(1, abs(x0)), (x0, back)


def test_tanh_keeps_the_real_branch():
    spec = spec_from_function(lambda x: sp.tanh(x), name="tanh")
    d = derive(spec)
    assert d.inverse_expr.free_symbols == {d.y}
    _check_inverse(spec, d.inverse_expr, d.y, [-30, -2, -1e-9, 0.5, 3, 19])
    assert d.codomain == (-1, 1)


def test_cubic_uses_a_real_root():
    def cubic(x):
        return x + x**3

    spec = spec_from_function(cubic)
    d = derive(spec)
    assert not d.inverse_expr.has(sp.I)
    _check_inverse(spec, d.inverse_expr, d.y, [-1e3, -7.5, -1, -1e-6, 0, 0.25, 2, 50])


def test_piecewise_pieces_are_merged():
    def prelu(x, alpha: sf.Positive):
        return sp.Piecewise((x, x >= 0), (alpha * x, True))

    d = derive(spec_from_function(prelu))
    assert isinstance(d.inverse_expr, sp.Piecewise)
    alpha = d.spec.parameters[0].symbol
    g = sp.lambdify([d.y, alpha], d.inverse_expr)
    assert g(3.0, 0.5) == 3.0 and g(-3.0, 0.5) == -6.0


def test_abs_is_split_into_pieces():
    def softsign(x):
        return x / (1 + sp.Abs(x))

    spec = spec_from_function(softsign)
    d = derive(spec)
    _check_inverse(spec, d.inverse_expr, d.y, [-1e6, -3, -1e-12, 1e-12, 0.7, 1e8])


def test_real_odd_roots_replace_principal_roots():
    y = sp.Symbol("y", real=True)
    e = real_odd_roots(y ** sp.Rational(1, 3))
    assert float(e.subs(y, -8)) == pytest.approx(-2.0)
    assert real_odd_roots(sp.sqrt(y)) == sp.sqrt(y)  # even roots untouched


def test_peeling_inverts_nested_maps():
    x, y, s = sp.symbols("x y s", real=True)
    t = sp.Symbol("t", positive=True)
    cands = peel_inverse(sp.sinh((sp.asinh(x) + s) * t), x, y)
    assert cands == [sp.sinh(sp.asinh(y) / t - s)]
    assert peel_inverse(x + x**3, x, y) == []  # x in two terms: left to sympy.solve


def test_log_abs_splits_products():
    x = sp.Symbol("x", real=True)
    expr = sp.exp(-x) / (1 + sp.exp(-x)) ** 2
    ld = log_abs(expr)
    assert not ld.has(sp.Abs)
    for x0 in (-800.0, -3.0, 0.0, 2.0, 800.0):
        with mpmath.workdps(30):
            ref = -x0 - 2 * mpmath.log1p(mpmath.exp(-x0))
        assert float(ld.subs(x, x0).evalf(30)) == pytest.approx(float(ref), rel=1e-12)


def test_codomain_of_bounded_and_half_line_maps():
    def xexp(x):
        return x * sp.exp(x)

    d = derive(spec_from_function(xexp, domain=sf.Interval(-1, sp.oo)))
    assert d.codomain == (-sp.exp(-1), sp.oo)
    assert d.inverse_expr.has(sp.LambertW)


def test_fldj_has_no_abs_when_sign_is_known():
    def kuma(x, concentration1: sf.Positive, concentration0: sf.Positive):
        return 1 - (1 - x**concentration1) ** concentration0

    d = derive(spec_from_function(kuma, domain=sf.UnitInterval))
    assert not d.fldj_expr.has(sp.Abs)
