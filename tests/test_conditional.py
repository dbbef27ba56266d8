"""Conditional flows p(x | context), against independent truth (issue 18).

The context reaches every output, the first coordinate's included (nflows' conditional
MADE once left it out); gradients with respect to every weight of a tiny conditional MAF
and RealNVP match 50-digit central differences of an mpmath implementation of the same
negative log-likelihood (tests/test_flows.py's, with the context entering the networks
first); missing, extra and mis-shaped contexts raise ShapeError naming the shape; the
standardization `fit` learns is applied to raw contexts. The flows are tiny (2
coordinates, a context of 2, hidden (4,)) and shared by module fixtures.
"""

from __future__ import annotations

import mpmath as mp
import numpy as np
import pytest
from test_flows import _member_values, _mp_nll

import symflow as sf
from symflow import bijectors as sfb
from symflow import distributions as sfd
from symflow import flows
from symflow.errors import ConstraintError, DomainError, ShapeError
from symflow.training.fit import training_kernels

C = 2  # context size
# one worker runs this module: its fixtures' kernels compile once, not on both workers
pytestmark = pytest.mark.xdist_group("conditional")


def _randomized(d: sfd.TransformedDistribution, seed: int, scale: float):
    """The flow with every network weight and bias at random (the builders start at the
    identity, where the context has no effect yet)."""
    rng = np.random.default_rng(seed)
    members = [
        b.with_values(scale * rng.standard_normal(b.network.values().size))
        if hasattr(b, "network")
        else b
        for b in d.bijector.bijectors
    ]
    return sfd.TransformedDistribution(d.distribution, sfb.Chain(members))


@pytest.fixture(scope="module")
def cmaf():
    d = flows.masked_autoregressive_flow(2, layers=2, hidden_units=(4,), context_size=C)
    return _randomized(d, 21, 0.8)


@pytest.fixture(scope="module")
def cnvp():
    d = flows.coupling_flow(2, layers=2, hidden_units=(4,), context_size=C)
    return _randomized(d, 22, 0.8)


def _layers(flow):
    return [b for b in flow.bijector.bijectors if hasattr(b, "network")]


@pytest.mark.parametrize("which", ["cmaf", "cnvp"])
def test_the_context_reaches_every_output(which, request):
    flow = request.getfixturevalue(which)
    rng = np.random.default_rng(23)
    y = rng.standard_normal((8, 2))
    c = rng.standard_normal((8, C))
    for k in range(C):
        bumped = c.copy()
        bumped[:, k] += 0.5
        # the whole flow: every coordinate of the inverse, and the density, move with each
        # context coordinate (on some row: a ReLU unit may be off at one)
        x0 = flow.bijector.inverse(y, context=c)
        x1 = flow.bijector.inverse(y, context=bumped)
        assert (x0 != x1).any(axis=0).all(), (k, x0 - x1)
        assert (flow.log_prob(y, context=c) != flow.log_prob(y, context=bumped)).any()
        # each layer: every output its transformer computes, the first coordinate's too
        for layer in _layers(flow):
            moved = (layer.inverse(y, context=c) != layer.inverse(y, context=bumped)).any(axis=0)
            transformed = (
                [0, 1] if isinstance(layer, sfb.MaskedAutoregressiveFlow) else [1]
            )  # a coupling layer's first part passes through
            assert moved[transformed].all(), (k, type(layer).__name__, moved)
            assert not moved[[i for i in range(2) if i not in transformed]].any()


def test_every_network_output_of_a_conditional_made_sees_the_context():
    """The network itself (numpy evaluation): each context input reaches each output,
    including coordinate 0's, which sees nothing else; the masks keep output i blind to
    inputs i and later."""
    net = sfb.AutoregressiveNetwork(2, 3, hidden_units=(6,), context_size=C, seed=0)
    net = net.with_values(np.random.default_rng(24).standard_normal(net.values().size))
    x = np.random.default_rng(25).standard_normal((16, 3))
    c = np.random.default_rng(26).standard_normal((16, C))
    base = net(x, context=c)
    for k in range(C):
        bumped = c.copy()
        bumped[:, k] += 0.5
        assert (net(x, context=bumped) != base).any(axis=0).all(), k
    for j in range(3):
        bumped = x.copy()
        bumped[:, j] += 0.5
        moved = (net(bumped, context=c) != base).any(axis=(0, 2))
        assert not moved[: j + 1].any() and moved[j + 1 :].all(), (j, moved)


@pytest.mark.parametrize("which", ["cmaf", "cnvp"])
def test_gradient_of_every_weight_matches_50_digit_finite_differences(which, request):
    flow = request.getfixturevalue(which)
    kernels = training_kernels(flow)
    rng = np.random.default_rng(27)
    ys, cs = rng.standard_normal((6, 2)) * 1.5, rng.standard_normal((6, C))
    theta0 = kernels.theta0
    loss, grad = kernels.nll_and_grad(theta0, ys, cs)
    assert np.count_nonzero(grad) > 0.6 * grad.size  # random weights: most ReLUs live
    with mp.workdps(50):
        theta = [mp.mpf(float(t)) for t in theta0]
        exact = _mp_nll(flow, _member_values(kernels, theta), ys, cs)
        assert abs(loss - float(exact)) < 1e-13 * max(1.0, abs(float(exact)))
        # the loss is the conditional density's: another context, another loss
        other = _mp_nll(flow, _member_values(kernels, theta), ys, cs + 1.0)
        assert abs(other - exact) > 1e-3
        h = mp.mpf(10) ** -20
        for j in range(len(theta)):
            up, down = list(theta), list(theta)
            up[j] += h
            down[j] -= h
            fd = (
                _mp_nll(flow, _member_values(kernels, up), ys, cs)
                - _mp_nll(flow, _member_values(kernels, down), ys, cs)
            ) / (2 * h)
            assert abs(grad[j] - float(fd)) <= 1e-12 * max(1.0, abs(float(fd))), (
                kernels.plan.names[j]
            )


def test_log_prob_matches_mpmath_per_row_context(cmaf):
    kernels = training_kernels(cmaf)
    rng = np.random.default_rng(28)
    ys, cs = rng.standard_normal((4, 2)), rng.standard_normal((4, C)) * 2
    lp = cmaf.log_prob(ys, context=cs)
    with mp.workdps(30):
        theta = [mp.mpf(float(t)) for t in kernels.theta0]
        values = _member_values(kernels, theta)
        for r in range(4):
            exact = -_mp_nll(cmaf, values, ys[r : r + 1], cs[r : r + 1])
            assert abs(lp[r] - float(exact)) < 1e-13 * max(1.0, abs(float(exact)))
    # one context for every value: the same as that context repeated
    np.testing.assert_array_equal(
        cmaf.log_prob(ys, context=cs[0]), cmaf.log_prob(ys, context=np.tile(cs[0], (4, 1)))
    )


def test_sampling_takes_one_context_or_one_per_draw(cmaf):
    c = np.array([0.3, -1.2])
    one = cmaf.sample(500, seed=5, context=c)
    assert one.shape == (500, 2) and np.isfinite(one).all()
    np.testing.assert_array_equal(one, cmaf.sample(500, seed=5, context=np.tile(c, (500, 1))))
    # draws are the flow's forward map of the base draws under that context
    z = sfd.MultivariateNormalDiag(np.zeros(2), np.ones(2)).sample(500, seed=5)
    np.testing.assert_allclose(one, cmaf.bijector.forward(z, context=c), rtol=0, atol=0)
    per_row = np.random.default_rng(29).standard_normal((500, C))
    many = cmaf.sample(500, seed=5, context=per_row)
    assert many.shape == (500, 2) and not np.array_equal(many, one)
    np.testing.assert_allclose(cmaf.bijector.inverse(many, context=per_row), z, atol=1e-12)
    assert cmaf.sample((4, 3), seed=1, context=c).shape == (4, 3, 2)


def test_missing_extra_and_mis_shaped_contexts_raise_shape_errors_naming_the_shape(cmaf):
    y = np.zeros((4, 2))
    with pytest.raises(ShapeError, match=r"context.*\(2,\)"):
        cmaf.log_prob(y)
    with pytest.raises(ShapeError, match=r"\(2,\) or \(\.\.\., 2\); got shape \(4, 3\)"):
        cmaf.log_prob(y, context=np.zeros((4, 3)))
    with pytest.raises(ShapeError, match=r"does not match the values' batch shape \(4,\)"):
        cmaf.log_prob(y, context=np.zeros((5, 2)))
    with pytest.raises(DomainError, match="finite"):
        cmaf.log_prob(y, context=np.array([np.nan, 0.0]))
    with pytest.raises(ShapeError, match=r"context.*\(2,\)"):
        cmaf.sample(3, seed=0)
    with pytest.raises(ShapeError, match=r"got shape \(3,\)"):
        cmaf.sample(3, seed=0, context=np.zeros(3))
    with pytest.raises(ShapeError, match=r"\(n_samples, 2\)"):
        sf.fit(cmaf, y, epochs=1, progress=False)
    with pytest.raises(ShapeError, match=r"\(4, 2\)"):
        sf.fit(cmaf, y, context=np.zeros((3, 2)), epochs=1, progress=False)
    with pytest.raises(ShapeError, match="pair"):
        sf.fit(cmaf, y, context=np.zeros((4, 2)), validation_data=y, epochs=1, progress=False)
    plain = flows.masked_autoregressive_flow(2, layers=1, hidden_units=(4,))
    with pytest.raises(ShapeError, match="takes no context"):
        plain.log_prob(y, context=np.zeros((4, 2)))
    with pytest.raises(ShapeError, match="takes no context"):
        plain.sample(2, seed=0, context=np.zeros(2))
    with pytest.raises(ShapeError, match="takes no context"):
        sf.fit(plain, y, context=np.zeros((4, 2)), epochs=1, progress=False)
    with pytest.raises(ShapeError, match="same context"):
        sfb.Chain(
            [
                flows.masked_autoregressive_flow(2, layers=1, context_size=2).bijector,
                flows.masked_autoregressive_flow(2, layers=1, context_size=3).bijector,
            ]
        )


def test_a_context_standardization_is_validated_and_applied_to_raw_contexts(cmaf):
    with pytest.raises(ShapeError, match=r"\(2,\)"):
        cmaf.with_context_standardization(np.zeros(3), np.ones(3))
    with pytest.raises(ConstraintError, match="scale"):
        cmaf.with_context_standardization(np.zeros(2), np.array([1.0, 0.0]))
    with pytest.raises(ShapeError, match="no context"):
        flows.masked_autoregressive_flow(2, layers=1).with_context_standardization([0], [1])
    mean, scale = np.array([100.0, -3.0]), np.array([50.0, 0.01])
    std = cmaf.with_context_standardization(mean, scale)
    assert cmaf.context_standardization is None  # a clone: the original is unchanged
    rng = np.random.default_rng(30)
    y, raw = rng.standard_normal((6, 2)), mean + scale * rng.standard_normal((6, 2))
    np.testing.assert_array_equal(
        std.log_prob(y, context=raw), cmaf.log_prob(y, context=(raw - mean) / scale)
    )
    np.testing.assert_array_equal(
        std.sample(7, seed=3, context=raw[0]),
        cmaf.sample(7, seed=3, context=(raw[0] - mean) / scale),
    )


def test_fit_learns_a_conditional_density_from_raw_contexts(tmp_path):
    """x | c ~ N(A c', diag(0.3, 0.6)) with c' = (c - m) / s and raw contexts of scales
    1e3 and 1e-3: fit standardizes them (the returned flow keeps it), and the held-out
    conditional NLL comes within 0.15 nats of the truth (the unconditional fit of the same
    data cannot: its marginal is wider); saving and loading keeps the standardization."""
    m, s = np.array([1000.0, 0.0]), np.array([1000.0, 1e-3])
    a = np.array([[1.0, 0.5], [-0.7, 1.0]])
    sd = np.array([0.3, 0.6])

    def simulate(n, seed):
        rng = np.random.default_rng(seed)
        c = m + s * rng.standard_normal((n, C))
        x = ((c - m) / s) @ a.T + sd * rng.standard_normal((n, 2))
        lp = -0.5 * (((x - ((c - m) / s) @ a.T) / sd) ** 2).sum(1)
        return x, c, lp - np.log(sd).sum() - np.log(2 * np.pi)

    x, c, _ = simulate(4000, 31)
    xv, cv, lpv = simulate(2000, 32)
    start = flows.masked_autoregressive_flow(2, layers=2, hidden_units=(4,), context_size=C)
    fitted = sf.fit(
        start, x, context=c, validation_data=(xv, cv), epochs=40, batch_size=128,
        optimizer=sf.Adam(1e-2), seed=0, progress=False,
    )  # fmt: skip
    d = fitted.distribution
    np.testing.assert_allclose(d.context_standardization[0], c.mean(0))
    np.testing.assert_allclose(d.context_standardization[1], c.std(0))
    gap = -d.log_prob(xv, context=cv).mean() + lpv.mean()
    assert gap < 0.15, gap
    # the last validation loss is the held-out NLL of the returned flow, so validation
    # contexts were standardized with the training contexts' mean and scale
    assert abs(fitted.validation_history[-1] + d.log_prob(xv, context=cv).mean()) < 1e-9
    marginal = -sfd.MultivariateNormalDiag(x.mean(0), x.std(0)).log_prob(xv).mean()
    assert marginal + lpv.mean() > 1.0
    # saved and loaded, the flow keeps its standardization: the same densities
    fitted.save(tmp_path / "cmaf.json")
    loaded = sf.load_parameters(start, tmp_path / "cmaf.json")
    np.testing.assert_allclose(loaded.context_standardization[1], c.std(0))
    np.testing.assert_array_equal(
        loaded.log_prob(xv[:50], context=cv[:50]), d.log_prob(xv[:50], context=cv[:50])
    )
