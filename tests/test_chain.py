"""Chain and Invert: fused kernels against mpmath composition of the declared maps."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

from symflow import bijectors as sfb
from symflow.errors import DomainError, ShapeError
from symflow.symbolic.numeric import mp_function

# The issue-6 chain, with a Softplus and an inverted member added so that every kind of
# member (parameters, hoisted constants, bounded codomain, inverted) is in one module.
MEMBERS = [
    (sfb.Exp, {}),
    (sfb.SinhArcsinh, {"skewness": 0.3, "tailweight": 1.5}),
    (sfb.AffineScalar, {"shift": 0.5, "scale": 2.0}),
]


@pytest.fixture(scope="module")
def chain():
    return sfb.Chain([d(**p) for d, p in MEMBERS])


@pytest.fixture(scope="module")
def sigmoid_chain():
    # forward: Softplus, then Invert(Exp) = log, then Sigmoid: y in (0, 1).
    return sfb.Chain([sfb.Sigmoid(), sfb.Invert(sfb.Exp()), sfb.Softplus(hinge_softness=0.7)])


def _mp_forward(declared_params, x, *, inverted=()):
    """Applies the declared forward maps (last first) in mpmath, at the caller's precision.

    An inverted member is solved for by a root finder on its declared forward map.
    """
    z = mpmath.mpf(x)
    for k, (declared, params) in reversed(list(enumerate(declared_params))):
        spec = declared.spec
        f = mp_function([spec.x, *spec.parameter_symbols], spec.forward_expr)
        pv = [mpmath.mpf(params[n]) for n in spec.parameter_names]
        if k in inverted:
            z = mpmath.findroot(lambda w, t=z, f=f, pv=pv: f(w, *pv) - t, mpmath.log(z))
        else:
            z = f(z, *pv)
    return z


def _mp_log_det(declared_params, x, **kw):
    with mpmath.workdps(60):
        return mpmath.log(abs(mpmath.diff(lambda t: _mp_forward(declared_params, t, **kw), x)))


def test_chain_is_fused_and_matches_mpmath(chain):
    assert chain.is_fused
    xs = np.array([-3.0, -0.7, 0.0, 0.4, 1.9])
    y, fldj = chain.forward_and_log_det(xs)
    for xv, yv, lv in zip(xs, y, fldj, strict=True):
        with mpmath.workdps(50):
            truth = _mp_forward(MEMBERS, xv)
        assert abs(yv - float(truth)) <= 1e-14 * abs(float(truth))
        assert abs(lv - float(_mp_log_det(MEMBERS, xv))) <= 1e-12 * max(1.0, abs(lv))
    x_back, ildj = chain.inverse_and_log_det(y)
    np.testing.assert_allclose(x_back, xs, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(ildj, -fldj, rtol=1e-13, atol=1e-14)
    np.testing.assert_array_equal(chain.forward_log_det_jacobian(xs, event_ndims=0), fldj)
    np.testing.assert_array_equal(chain.inverse_log_det_jacobian(y, event_ndims=0), ildj)
    np.testing.assert_array_equal(chain.forward(xs), y)
    np.testing.assert_array_equal(chain.inverse(y), x_back)


def test_fused_equals_member_by_member(chain):
    x = np.linspace(-4, 4, 101).reshape(1, 101)
    z = x
    for b in reversed(chain.bijectors):
        z = b.forward(z)
    np.testing.assert_allclose(chain.forward(x), z, rtol=1e-14)


def test_inverted_member_and_bounded_codomain(sigmoid_chain):
    members = [(sfb.Sigmoid, {}), (sfb.Exp, {}), (sfb.Softplus, {"hinge_softness": 0.7})]
    for xv in (-5.0, 0.0, 2.5):
        y = sigmoid_chain.forward(xv)
        with mpmath.workdps(50):
            truth = _mp_forward(members, xv, inverted={1})
        assert abs(float(y) - float(truth)) <= 1e-14
    with pytest.raises(DomainError, match=r"member 1 \(Sigmoid\).*codomain"):
        sigmoid_chain.inverse(np.array([0.5, 1.5]))


def test_nested_chains_and_invert_flatten(chain):
    # Invert(Chain([Exp()])) is log: it undoes the chain's last step.
    nested = sfb.Chain([sfb.Invert(sfb.Chain([sfb.Exp()])), chain])
    assert nested.is_fused and len(nested._members) == 4
    x = np.array([0.1, 1.0])
    np.testing.assert_allclose(nested.forward(x), np.log(chain.forward(x)), rtol=1e-14)
    inverse = sfb.Invert(chain)
    y = chain.forward(x)
    np.testing.assert_allclose(inverse.forward(y), x, rtol=1e-14)
    np.testing.assert_allclose(
        inverse.forward_log_det_jacobian(y, event_ndims=0),
        chain.inverse_log_det_jacobian(y, event_ndims=0),
    )


def test_shapes_dtypes_and_parameter_broadcast(chain):
    x = np.zeros((2, 3, 4), dtype=np.float32)
    y, ldj = chain.forward_and_log_det(x)
    assert y.shape == x.shape and y.dtype == np.float32 and ldj.dtype == np.float32
    assert chain.forward_log_det_jacobian(x, event_ndims=2).shape == (2,)
    per_element = sfb.Chain([sfb.Exp(), sfb.Shift(shift=np.array([0.0, 1.0, 2.0]))])
    np.testing.assert_allclose(per_element.forward(np.zeros(3)), np.exp([0.0, 1.0, 2.0]))
    with pytest.raises(ShapeError, match="does not broadcast"):
        per_element.forward(np.zeros(4))
    assert isinstance(chain.forward(0.0), np.floating)


def test_parallel_kernel_agrees_with_serial(chain):
    n = 1 << 17  # above PARALLEL_THRESHOLD
    x = np.random.default_rng(0).normal(size=n)
    y, ldj = chain.forward_and_log_det(x)
    y_small, ldj_small = chain.forward_and_log_det(x[:1000])
    np.testing.assert_array_equal(y[:1000], y_small)
    np.testing.assert_array_equal(ldj[:1000], ldj_small)


def test_derivative_sign_and_identity():
    c = sfb.Chain([sfb.Scale(scale=-2.0), sfb.Exp()])
    assert np.all(c._derivative_sign(np.array([0.0, 1.0])) == -1)
    identity = sfb.Chain([])
    np.testing.assert_array_equal(identity.forward(np.array([1.0, 2.0])), [1.0, 2.0])
    np.testing.assert_array_equal(identity.forward_log_det_jacobian(np.ones(2)), [0.0, 0.0])


def test_chain_rejects_unbound_members():
    with pytest.raises(TypeError, match="bound bijector"):
        sfb.Chain([sfb.Exp])
