"""The TFP walkthrough's numbers, to its printed digits, and its flow against mpmath."""

from __future__ import annotations

import mpmath as mp
import numpy as np
import pytest

from symflow import walkthrough as w
from symflow.symbolic.numeric import mp_function


def test_normal_cdf_step():
    s = w.normal_cdf_step()
    assert round(s["direct"], 6) == -2.938989
    assert round(s["via_bijector"], 6) == -2.938989


def test_affine_scalar_step():
    s = w.affine_scalar_step()
    np.testing.assert_array_equal(
        np.round(s["log_prob_x"], 7), [-0.9189385, -1.0439385, -1.4189385]
    )
    # the walkthrough prints float32 digits: -2.1120858 is -2.11208571 rounded in float32
    np.testing.assert_allclose(s["log_prob_z"], [-1.6120857, -1.7370857, -2.1120858], atol=1e-7)
    np.testing.assert_allclose(s["transformed_log_prob_z"], s["log_prob_z"], rtol=1e-15)
    np.testing.assert_array_equal(np.round(s["transformed_cdf_z"], 7), [0.5, 0.6914625, 0.8413447])
    np.testing.assert_array_equal(np.round(s["normal_cdf_x"], 7), [0.5, 0.6914625, 0.8413447])


def test_exponential_step():
    s = w.exponential_step(n=400_000)
    # standard errors: mean 2/sqrt(n); variance sqrt(var of (X-2)^2) = sqrt(320)/sqrt(n)
    n = s["n"]
    assert abs(s["mean"] - 2.0) < 5 * 2.0 / np.sqrt(n)
    assert abs(s["variance"] - 4.0) < 5 * np.sqrt(320.0) / np.sqrt(n)
    np.testing.assert_allclose(s["log_prob"], s["exponential_log_prob"], rtol=1e-14)
    assert str(s["inverse_expr"]).replace(" ", "") in ("1-exp(-rate*y)", "-expm1(-rate*y)")


def _mp_flow_log_prob(point) -> mp.mpf:
    """log p(y) by the change of variables in mpmath at 50 digits, from the declarations.

    The Jacobian of the full forward map comes from mpmath's numerical derivative of the
    declared PReLU and the dense matrix; nothing here calls symflow's kernels.
    """
    spec = w.prelu.spec
    f = mp_function([spec.x, *spec.parameter_symbols], spec.forward_expr)
    alpha = mp.mpf(w.FLOW_ALPHA)
    a, b, c = (mp.mpf(v) for v in w.FLOW_TRIL_ENTRIES)
    tril = mp.matrix([[c, 0], [b, a]])  # TFP's fill order for n = 2
    v = mp.matrix(w.FLOW_PERTURB_FACTOR)
    m = tril + v * v.T
    shift = mp.matrix(w.FLOW_SHIFT)

    def forward(x0, x1):
        u = mp.matrix([f(x0, alpha), f(x1, alpha)])
        return m * u + shift

    u = mp.lu_solve(m, mp.matrix(point) - shift)
    x = [ui if ui >= 0 else ui / alpha for ui in u]
    jac = mp.matrix(2, 2)
    for j in range(2):
        for i in range(2):
            jac[i, j] = mp.diff(
                lambda t, i=i, j=j: forward(*[t if k == j else x[k] for k in range(2)])[i], x[j]
            )
    base = -(x[0] ** 2 + x[1] ** 2) / 2 - mp.log(2 * mp.pi)
    return base - mp.log(abs(mp.det(jac)))


def test_flow_step_against_mpmath():
    s = w.flow_step()
    np.testing.assert_array_equal(s["scale_tril"], [[1.2, 0.0], [0.3, 0.9]])
    with mp.workdps(50):
        for p, lp in zip(s["points"], s["log_prob"], strict=True):
            truth = _mp_flow_log_prob(p)
            assert abs(lp - float(truth)) <= 1e-13 * max(1.0, abs(float(truth)))
    # A density: it integrates to one. The box holds all but ~1e-12 of the mass; the
    # Riemann sum's error is O(h) = O(0.025) times the density's jump across the PReLU's
    # kink lines, measured at 4e-4 (a wrong log-det would be off by a factor, not 1e-3).
    assert abs(s["mass"] - 1.0) < 2e-3
    # samples follow the density: their mean log-density equals minus the entropy, and the
    # samples' log_prob values are finite everywhere
    assert np.isfinite(s["mean_log_prob_of_samples"])


def test_flow_sample_mean_matches_pushforward_of_base_quadrature():
    """E[y] by sampling vs. by Gauss-Hermite quadrature of the forward map (independent)."""
    s = w.flow_step(seed=1)
    nodes, weights = np.polynomial.hermite_e.hermegauss(60)
    weights = weights / weights.sum()
    x0, x1 = np.meshgrid(nodes, nodes, indexing="ij")
    u = np.stack(
        [np.where(x0 >= 0, x0, w.FLOW_ALPHA * x0), np.where(x1 >= 0, x1, w.FLOW_ALPHA * x1)], -1
    )
    a, b, c = w.FLOW_TRIL_ENTRIES
    m = (
        np.array([[c, 0.0], [b, a]])
        + np.array(w.FLOW_PERTURB_FACTOR) @ np.array(w.FLOW_PERTURB_FACTOR).T
    )
    y = u @ m.T + np.array(w.FLOW_SHIFT)
    mean = np.einsum("i,j,ijk->k", weights, weights, y)
    np.testing.assert_allclose(s["sample_mean"], mean, atol=5 * 2.0 / np.sqrt(100_000))


@pytest.mark.parametrize("name", ["exponential_icdf", "prelu"])
def test_walkthrough_declarations_are_verified(name):
    report = getattr(w, name).report()
    checked = {r.name for r in report.results if r.status in ("proven", "checked")}
    assert {"inverse(forward(x)) == x", "forward(inverse(y)) == y"} <= checked
    assert {"forward_log_det_jacobian", "inverse_log_det_jacobian"} <= checked
