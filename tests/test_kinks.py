"""Maps with kinks (Abs, sign, Heaviside, real odd roots) compile; derivatives hold a.e.

SymPy differentiates sign, Abs and Heaviside into DiracDelta terms, which once reached the
printer as a NameError in generated code (issue 19, item 3). They vanish almost everywhere;
at a kink the derivative is the mean of the one-sided slopes for Abs and sign (sign(0) = 0)
and uses Heaviside(0) = 1/2 for Heaviside (`symflow.symbolic.derive.almost_everywhere`).
Every value is compared with mpmath at 50 digits, written here independently.
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
import sympy as sp

import symflow as sf
from symflow.errors import DeclarationError

mp = mpmath.mpf


@sf.bijector
def scaled_cube(x, a: sf.Positive):
    return a * x**3


@sf.bijector
def abs_kink(x):
    return x + sp.Abs(x) / 2


@sf.bijector
def heaviside_kink(x, a: sf.Positive):
    return x * (1 + a * sp.Heaviside(x))


@sf.bijector
def signed_square(x):
    return x + sp.sign(x) * x**2


def _cbrt(v):
    return mpmath.sign(v) * abs(v) ** (mp(1) / 3)


#: name -> (declared, params, forward in mpmath, inverse in mpmath, the kink)
CASES = {
    "scaled_cube": (scaled_cube, {"a": 2.0}, lambda x: 2 * x**3, lambda y: _cbrt(y / 2), 0.0),
    "abs_kink": (
        abs_kink,
        {},
        lambda x: x + abs(x) / 2,
        lambda y: 2 * y / 3 if y >= 0 else 2 * y,
        0.0,
    ),
    "heaviside_kink": (
        heaviside_kink,
        {"a": 1.5},
        lambda x: x * (1 + mp(1.5) * (x > 0)),
        lambda y: y / mp(2.5) if y > 0 else y,
        0.0,
    ),
    "signed_square": (
        signed_square,
        {},
        lambda x: x + mpmath.sign(x) * x**2,
        lambda y: mpmath.sign(y) * (mpmath.sqrt(1 + 4 * abs(y)) - 1) / 2,
        0.0,
    ),
}

POINTS = np.array([-40.0, -3.0, -1.0, -1e-3, -1e-9, 1e-9, 1e-3, 0.5, 2.0, 30.0])


@pytest.mark.parametrize("name", sorted(CASES))
def test_kinked_map_compiles_and_matches_mpmath(name):
    declared, params, f, g, _ = CASES[name]
    b = declared(**params)
    y = b.forward(POINTS)
    x = b.inverse(y)
    ldj = b.forward_log_det_jacobian(POINTS, event_ndims=0)
    ildj = b.inverse_log_det_jacobian(y, event_ndims=0)
    with mpmath.workdps(50):
        for k, x0 in enumerate(POINTS):
            xm = mp(float(x0))
            ym = f(xm)
            assert float(y[k]) == pytest.approx(float(ym), rel=4e-16, abs=0)
            back = g(mp(float(y[k])))
            assert float(x[k]) == pytest.approx(float(back), rel=1e-15, abs=0)
            slope = mpmath.diff(f, xm)
            assert float(ldj[k]) == pytest.approx(float(mpmath.log(abs(slope))), abs=1e-14)
            at_y = mpmath.diff(g, mp(float(y[k])))
            assert float(ildj[k]) == pytest.approx(float(mpmath.log(abs(at_y))), abs=1e-13)


@pytest.mark.parametrize("name", sorted(CASES))
def test_value_at_the_kink_is_documented(name):
    declared, params, f, _, kink = CASES[name]
    b = declared(**params)
    ldj = float(b.forward_log_det_jacobian(np.array([kink]), event_ndims=0)[0])
    with mpmath.workdps(50):
        k = mp(kink)
        left, right = mpmath.diff(f, k, direction=-1), mpmath.diff(f, k, direction=1)
    if abs(left) + abs(right) < mp(10) ** -40:  # zero, up to the step's error
        assert ldj == -np.inf  # a zero of f' (x**3): the log-det's limit there
    else:
        # Abs and sign: the mean of the one-sided slopes; Heaviside: Heaviside(0) = 1/2,
        # which for x * (1 + a*H(x)) is the same mean
        assert ldj == pytest.approx(float(mpmath.log((left + right) / 2)), abs=1e-15)
    assert float(b.inverse(b.forward(np.array([kink])))[0]) == kink


def test_training_partials_hold_almost_everywhere():
    # what fit's kernels differentiate: the partials of f and of log|f'| in (x, a)
    exprs = signed_square.inverse_gradient_exprs()
    assert not any(sp.sympify(e).has(sp.DiracDelta) for e in exprs["fldj_partials"])
    cube = scaled_cube.inverse_gradient_exprs()
    x, a = scaled_cube.spec.x, scaled_cube.spec.parameter_symbols[0]

    def fldj(xv, av):
        return mpmath.log(abs(3 * av * xv**2))

    with mpmath.workdps(50):
        for x0 in (-2.0, 0.3, 5.0):
            xm, am = mp(x0), mp(2)
            want = [
                mpmath.diff(lambda t, am=am: fldj(t, am), xm),
                mpmath.diff(lambda t, xm=xm: fldj(xm, t), am),
            ]
            got = [float(e.subs({x: x0, a: 2.0})) for e in cube["fldj_partials"]]
            assert got == pytest.approx([float(w) for w in want], rel=1e-14)


@pytest.mark.parametrize(
    "body, match",
    [
        (lambda x: x + sp.DiracDelta(x), "DiracDelta"),
        (lambda x: x + sp.Derivative(sp.Function("h")(x), x), "Derivative"),
    ],
    ids=["DiracDelta", "Derivative"],
)
def test_generalized_functions_are_refused_at_declaration(body, match):
    declared = sf.bijector(lambda x: body(x), name="bad_map")
    with pytest.raises(DeclarationError, match=rf"bad_map: .*{match}"):
        _ = declared.spec
