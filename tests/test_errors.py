"""Errors are part of the contract: (input, exception, message regex), through pytest.raises."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import symflow as sf
from symflow import bijectors as sfb


def _declare_and_compile(fn, **kw):
    sf.bijector(fn, **kw).compile()


def square(x):
    return x**2


def sine(x):
    return sp.sin(x)


def flat_then_up(x):
    return sp.Piecewise((0 * x, x < 0), (x, True))


def uses_numpy(x):
    return np.exp(x)


def stray_symbol(x):
    return x + sp.Symbol("z")


def constant(x):
    return sp.Integer(3) + 0 * x


def unannotated(x, scale):
    return scale * x


DECLARATION_ERRORS = [
    (square, {}, sf.NotInvertibleError, r"not invertible.*Witness: f\(.*\) = f\(.*\)"),
    (sine, {}, sf.NotInvertibleError, r"cos\(x\) changes sign"),
    (flat_then_up, {}, sf.NotInvertibleError, r"not invertible"),
    (uses_numpy, {}, sf.DeclarationError, r"SymPy functions"),
    (stray_symbol, {}, sf.DeclarationError, r"symbols \['z'\].*Declare them as parameters"),
    (constant, {}, sf.DeclarationError, r"does not depend on the input"),
    (unannotated, {}, sf.DeclarationError, r"needs a constraint annotation"),
]


@pytest.mark.parametrize(
    "fn, kw, exc, pattern", DECLARATION_ERRORS, ids=[c[0].__name__ for c in DECLARATION_ERRORS]
)
def test_declaration_errors(fn, kw, exc, pattern):
    with pytest.raises(exc, match=pattern):
        _declare_and_compile(fn, **kw)


def test_square_on_positive_half_line_is_fine():
    b = sf.bijector(square, domain=sf.Positive)(**{})
    assert b.inverse(9.0) == pytest.approx(3.0)


def test_no_closed_form_names_the_equation():
    def no_closed_form(x):
        return x + sp.exp(x) + sp.atan(x)

    with pytest.raises(sf.NoClosedFormInverseError, match=r"could not solve Eq\("):
        _declare_and_compile(no_closed_form)


@pytest.mark.parametrize("name", ["1x", "lambda", "math", "_private", "my-name", "np"])
def test_bad_parameter_names_are_rejected(name):
    x = sp.Symbol("x")
    with pytest.raises(sf.DeclarationError, match=r"identifier|reserved|underscore"):
        sf.DeclaredBijector.from_expr(sp.Symbol(name) * x, x, params={name: sf.Positive})


@pytest.mark.parametrize("name", ["1x", "my-name", "class"])
def test_bad_bijector_names_are_rejected(name):
    x = sp.Symbol("x")
    with pytest.raises(sf.DeclarationError, match=r"identifier"):
        sf.DeclaredBijector.from_expr(2 * x, x, name=name)


RUNTIME_ERRORS = [
    (
        lambda: sfb.SinhArcsinh(skewness=0.0, tailweight=-1.5),
        sf.ConstraintError,
        r"SinhArcsinh: `tailweight` must be in \(0, inf\) \(Positive\); got -1.5\. "
        r"Pass a positive",
    ),
    (lambda: sfb.Scale(0.0), sf.ConstraintError, r"`scale` must be in .* without 0"),
    (lambda: sfb.Shift(), sf.ConstraintError, r"missing a value for parameter `shift`"),
    (lambda: sfb.Shift(1.0, shift=2.0), sf.ConstraintError, r"given twice"),
    (lambda: sfb.Exp(rate=1.0), sf.ConstraintError, r"unknown parameter 'rate'"),
    (
        lambda: sfb.Log().forward(np.array([1.0, -2.0])),
        sf.DomainError,
        r"codomain \[0, inf\]; got -2\.0 at flat index 1",
    ),
    (
        lambda: sfb.Sigmoid().inverse(1.5),
        sf.DomainError,
        r"Sigmoid\.inverse: y must lie in the codomain \[0, 1\]",
    ),
    (
        lambda: sfb.KumaraswamyCDF().forward(np.array([0.5, 1.2])),
        sf.DomainError,
        r"x must lie in the domain \[0, 1\]; got 1\.2",
    ),
    (lambda: sfb.Shift(np.ones(3)).forward(np.ones(4)), sf.ShapeError, r"does not broadcast"),
    (
        lambda: sfb.Exp().forward_log_det_jacobian(np.ones(3), event_ndims=2),
        sf.ShapeError,
        r"event_ndims=2 exceeds the rank",
    ),
    (lambda: sfb.Exp().forward(np.array(["a"])), sf.ShapeError, r"expected real numbers"),
    (lambda: sfb.Invert(sfb.Exp), TypeError, r"expected a bound bijector"),
]


@pytest.mark.parametrize("call, exc, pattern", RUNTIME_ERRORS, ids=range(len(RUNTIME_ERRORS)))
def test_runtime_errors(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


def test_values_at_domain_ends_give_limits_not_errors():
    assert sfb.Sigmoid().inverse(1.0) == np.inf
    assert sfb.Log().forward(0.0) == -np.inf
    assert sfb.NormalCDF().inverse(0.0) == -np.inf
