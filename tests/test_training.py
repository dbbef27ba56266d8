"""Compiled training: gradients against 50-digit finite differences, and fit end to end."""

from __future__ import annotations

import mpmath as mp
import numba
import numpy as np
import pytest
import sympy as sp
from catalog import CASES
from vm_support import ulp_error

import symflow as sf
from symflow import bijectors as sfb
from symflow import distributions as sfd
from symflow import walkthrough as w
from symflow.errors import ShapeError, SymflowError
from symflow.symbolic.numeric import mp_function
from symflow.training import training_kernels

#: Every parameterized catalog entry, in two chains whose members' domains fit (TFP order:
#: the last member applies first), so that two training modules cover them all.
CHAINS = {
    "real-line": ["KumaraswamyCDF", "GumbelCDF", "SinhArcsinh", "AffineScalar", "Shift",
                  "Scale(neg)", "PReLU", "SignedPower(root)", "SignedPower",
                  "user:scaled_asinh"],
    "half-line": ["WeibullCDF", "Power", "Softplus"],
}  # fmt: skip


def test_every_parameterized_case_is_in_a_chain():
    covered = {name for names in CHAINS.values() for name in names}
    assert covered == {name for name, case in CASES.items() if case.params}


def _mp_constrained(constraint, raw):
    """The constraint maps of `symflow.training.plan.constraint_exprs`, in mpmath, by the
    constraint's bounds: lo + (hi - lo)·sigmoid, lo + softplus, hi - softplus(-raw)."""
    lo = None if constraint.lo == -sp.oo else mp.mpf(constraint.lo_float)
    hi = None if constraint.hi == sp.oo else mp.mpf(constraint.hi_float)
    if lo is not None and hi is not None:
        return lo + (hi - lo) / (1 + mp.exp(-raw))
    if lo is not None:
        return lo + mp.log1p(mp.exp(raw))
    if hi is not None:
        return hi - mp.log1p(mp.exp(-raw))
    return raw


def _mp_chain_nll(cases, theta, ys, starts):
    """Mean -log p(y) for y = chain(x), x ~ N(0, 1), from the declared forward maps only.

    Each member is inverted by a root finder on its declared map (started from the float64
    kernels' value), and |dx/dy| comes from mpmath's derivative of each declared map.
    """
    total = mp.mpf(0)
    for y, row in zip(ys, starts, strict=True):
        z = mp.mpf(y)
        lp = mp.mpf(0)
        slot = 0
        for k, case in enumerate(cases):
            spec = case.declared.spec
            f = mp_function([spec.x, *spec.parameter_symbols], spec.forward_expr)
            values = []
            for p in spec.parameters:
                values.append(_mp_constrained(p.constraint, theta[slot]))
                slot += 1
            x = mp.findroot(lambda t, z=z, f=f, v=values: f(t, *v) - z, mp.mpf(row[k]),
                            tol=mp.mpf(10) ** (-45))  # fmt: skip
            lp -= mp.log(abs(mp.diff(lambda t, f=f, v=values: f(t, *v), x)))
            z = x
        total -= lp - z**2 / 2 - mp.log(2 * mp.pi) / 2
    return total / len(ys)


@pytest.mark.parametrize("chain", list(CHAINS))
def test_training_gradients_of_the_catalog_against_mpmath(chain):
    cases = [CASES[name] for name in CHAINS[chain]]
    bound = [case.bind() for case in cases]
    d = sfd.TransformedDistribution(sfd.Normal(0.0, 1.0), sfb.Chain(bound))
    kernels = training_kernels(d)
    assert len(kernels.plan.names) == sum(len(c.params) for c in cases)
    # small x: the real-line chain is steep (Scale, Affine and SinhArcsinh widen it, then
    # GumbelCDF and KumaraswamyCDF squash it); these keep every value well inside float64
    xs = np.array([-0.1, 0.02, 0.12]) if chain == "real-line" else np.array([-0.5, 0.4, 1.9])
    ys = np.asarray(d.bijector.forward(xs))
    # float64 starting points for the root finder: each member's input, from the kernels
    starts, z = [], ys
    for b in bound:
        z = np.asarray(b.inverse(z))
        starts.append(z)
    starts = np.array(starts).T
    loss, grad = kernels.nll_and_grad(kernels.theta0, ys)
    with mp.workdps(50):
        theta = [mp.mpf(float(t)) for t in kernels.theta0]
        truth = _mp_chain_nll(cases, theta, ys, starts)
        assert abs(loss - float(truth)) <= 1e-12 * max(1.0, abs(float(truth)))
        h = mp.mpf(10) ** -15
        for j, name in enumerate(kernels.plan.names):
            up, down = list(theta), list(theta)
            up[j] += h
            down[j] -= h
            fd = _mp_chain_nll(cases, up, ys, starts) - _mp_chain_nll(cases, down, ys, starts)
            fd /= 2 * h
            assert abs(grad[j] - float(fd)) <= 1e-9 * max(1.0, abs(float(fd))), name


def _mp_tiny_flow_nll(theta, rows):
    """The tiny flow's mean NLL from its definition, in mpmath (no symflow kernels)."""
    shift = mp.matrix([theta[0], theta[1]])
    t0, t1, t2 = theta[2], theta[3], theta[4]
    tril = mp.matrix([[t2, 0], [t1, t0]])  # TFP's FillTriangular order for n = 2
    v = mp.matrix([[theta[5], theta[6]], [theta[7], theta[8]]])
    alpha = mp.log1p(mp.exp(theta[9]))
    m = tril + v * v.T
    logdet = mp.log(abs(mp.det(m)))
    total = mp.mpf(0)
    for row in rows:
        u = mp.lu_solve(m, mp.matrix([mp.mpf(row[0]), mp.mpf(row[1])]) - shift)
        lp = -mp.log(2 * mp.pi) - logdet
        for ui in u:
            x = ui if ui >= 0 else ui / alpha
            lp += -(x**2) / 2 - (0 if ui >= 0 else mp.log(alpha))
        total -= lp
    return total / len(rows)


def _tiny_flow():
    aff = sfb.Affine(
        shift=np.array([0.3, -0.2]),
        scale_tril=sfb.FillTriangular().forward(np.array([1.1, 0.2, 0.9])),
        scale_perturb_factor=np.array([[0.3, -0.1], [0.2, 0.25]]),
    )
    return sfd.TransformedDistribution(
        sfd.MultivariateNormalDiag(loc=np.zeros(2)), sfb.Chain([aff, sfb.PReLU(alpha=0.6)])
    )


def test_fused_gradient_equals_high_precision_difference_of_the_loss():
    kernels = training_kernels(_tiny_flow())
    rows = 1.0 + 2.0 * np.random.default_rng(3).standard_normal((7, 2))
    loss, grad = kernels.nll_and_grad(kernels.theta0, rows)
    np.testing.assert_allclose(loss, -_tiny_flow().log_prob(rows).mean(), rtol=1e-14)
    with mp.workdps(50):
        theta = [mp.mpf(float(t)) for t in kernels.theta0]
        assert abs(loss - float(_mp_tiny_flow_nll(theta, rows))) < 1e-13
        h = mp.mpf(10) ** -20
        for j in range(len(theta)):
            up, down = list(theta), list(theta)
            up[j] += h
            down[j] -= h
            fd = (_mp_tiny_flow_nll(up, rows) - _mp_tiny_flow_nll(down, rows)) / (2 * h)
            assert abs(grad[j] - float(fd)) <= 1e-12 * max(1.0, abs(float(fd))), j


def _mp_affine_nll(theta, rows, n, r, positions):
    """Mean NLL of Affine(shift, L, V, d) over MultivariateNormalDiag(0, 1) in mpmath, θ laid
    out as the training kernel lays it (shift, L's entries in TFP's fill order, V row-major,
    d); M = L + V diag(d) V^T solved and its determinant taken by mpmath's LU."""
    shift = mp.matrix(theta[:n])
    lmat = mp.zeros(n, n)
    for j, pos in enumerate(positions):
        lmat[int(pos) // n, int(pos) % n] = theta[n + j]
    start = n + n * (n + 1) // 2
    v = mp.matrix(n, r)
    for b in range(n):
        for c in range(r):
            v[b, c] = theta[start + b * r + c]
    d = mp.diag(theta[start + n * r : start + n * r + r]) if r else mp.zeros(0, 0)
    m = lmat + (v * d * v.T if r else mp.zeros(n, n))
    logdet = mp.log(abs(mp.det(m)))
    total = mp.mpf(0)
    for row in rows:
        u = mp.lu_solve(m, mp.matrix([mp.mpf(float(t)) for t in row]) - shift)
        total += sum(ui**2 for ui in u) / 2 + n * mp.log(2 * mp.pi) / 2 + logdet
    return total / len(rows)


@pytest.mark.parametrize(
    ("n", "r"),
    [(3, 0), (3, 1), (3, 3), (5, 2)],
    ids=["unrolled n=3 r=0", "unrolled n=3 r=1", "generic loops r=3", "generic loops n=5"],
)
def test_affine_gradient_equals_high_precision_difference(n, r):
    # n <= 4 and r <= 2 compile straight-line M^-1 code, the others the generic loops.
    from symflow.bijectors.gathers import fill_indices

    rng = np.random.default_rng(n * 10 + r)
    tril = np.tril(0.3 * rng.standard_normal((n, n))) + np.diag(1.0 + rng.uniform(0, 1, n))
    perturbation = (
        {
            "scale_perturb_factor": 0.3 * rng.standard_normal((n, r)),
            "scale_perturb_diag": 0.5 + rng.uniform(0, 1, r),
        }
        if r
        else {}
    )
    aff = sfb.Affine(shift=0.2 * rng.standard_normal(n), scale_tril=tril, **perturbation)
    d = sfd.TransformedDistribution(sfd.MultivariateNormalDiag(loc=np.zeros(n)), aff)
    kernels = training_kernels(d)
    rows = rng.standard_normal((5, n))
    loss, grad = kernels.nll_and_grad(kernels.theta0, rows)
    positions = fill_indices(n, False)[1]
    with mp.workdps(50):
        theta = [mp.mpf(float(t)) for t in kernels.theta0]
        assert abs(loss - float(_mp_affine_nll(theta, rows, n, r, positions))) < 1e-12
        h = mp.mpf(10) ** -20
        for j in range(len(theta)):
            up, down = list(theta), list(theta)
            up[j] += h
            down[j] -= h
            fd = (_mp_affine_nll(up, rows, n, r, positions)
                  - _mp_affine_nll(down, rows, n, r, positions)) / (2 * h)  # fmt: skip
            assert abs(grad[j] - float(fd)) <= 1e-11 * max(1.0, abs(float(fd))), j


def _mp_prelu_over_trained_normal_nll(theta, ys):
    """Mean NLL of PReLU(alpha) over Normal(loc, scale), θ = (alpha, loc, scale) with alpha
    and scale through softplus, in mpmath."""
    alpha, loc, scale = mp.log1p(mp.exp(theta[0])), theta[1], mp.log1p(mp.exp(theta[2]))
    total = mp.mpf(0)
    for y in ys:
        y = mp.mpf(float(y))
        x, ildj = (y, 0) if y >= 0 else (y / alpha, -mp.log(alpha))
        z = (x - loc) / scale
        total += z**2 / 2 + mp.log(scale) + mp.log(2 * mp.pi) / 2 - ildj
    return total / len(ys)


def test_trained_base_gradient_equals_high_precision_difference():
    d = sfd.TransformedDistribution(sfd.Normal(0.3, 1.5), sfb.PReLU(alpha=0.6))
    kernels = training_kernels(d, train_base=True)
    assert kernels.plan.names == ["0.PReLU.alpha", "base.loc", "base.scale"]
    ys = np.array([-2.5, -0.3, 0.0, 0.7, 3.1])
    loss, grad = kernels.nll_and_grad(kernels.theta0, ys)
    np.testing.assert_allclose(loss, -d.log_prob(ys).mean(), rtol=1e-14)
    with mp.workdps(50):
        theta = [mp.mpf(float(t)) for t in kernels.theta0]
        assert abs(loss - float(_mp_prelu_over_trained_normal_nll(theta, ys))) < 1e-13
        h = mp.mpf(10) ** -20
        for j in range(len(theta)):
            up, down = list(theta), list(theta)
            up[j] += h
            down[j] -= h
            fd = (_mp_prelu_over_trained_normal_nll(up, ys)
                  - _mp_prelu_over_trained_normal_nll(down, ys)) / (2 * h)  # fmt: skip
            assert abs(grad[j] - float(fd)) <= 1e-12 * max(1.0, abs(float(fd))), j


def test_fit_trains_the_base_to_the_maximum_likelihood_estimate(tmp_path):
    # Shift frozen: the base alone fits the data; full-batch Adam reaches the MLE, the
    # sample mean and (biased) standard deviation of each coordinate.
    data = np.array([3.0, -1.0]) + np.array([2.0, 0.5]) * np.random.default_rng(8).standard_normal(
        (400, 2)
    )
    d = sfd.TransformedDistribution(
        sfd.MultivariateNormalDiag(loc=np.zeros(2), scale_diag=np.ones(2)),
        sfb.Affine(shift=np.zeros(2), scale_tril=np.eye(2)),
    )
    result = sf.fit(d, data, epochs=600, batch_size=400, optimizer=sf.Adam(5e-2),
                    frozen=("0",), train_base=True, progress=False)  # fmt: skip
    assert list(result.parameters) == ["base.loc", "base.scale_diag"]
    base = result.distribution.distribution
    np.testing.assert_allclose(base.loc, data.mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(np.abs(base.scale_diag), data.std(axis=0), atol=1e-6)
    path = tmp_path / "base.json"
    result.save(path)
    loaded = sf.load_parameters(d, path, frozen=("0",))
    np.testing.assert_allclose(loaded.log_prob(data[:5]), result.distribution.log_prob(data[:5]))


def test_no_nan_gradient_from_the_branch_not_taken():
    # PReLU's untaken branch divides by alpha; Softplus's overflows far out: neither leaks.
    d = sfd.TransformedDistribution(
        sfd.Normal(0.0, 1.0), sfb.Chain([sfb.Softplus(hinge_softness=0.5), sfb.PReLU(alpha=0.3)])
    )
    kernels = training_kernels(d)
    ys = np.array([1e-300, 1e-5, 3.0, 800.0])
    loss, grad = kernels.nll_and_grad(kernels.theta0, ys)
    assert np.isfinite(loss) and np.all(np.isfinite(grad))


@pytest.fixture(scope="module")
def tiny_fit():
    data, held_out = w.tiny_flow_data(seed=0)
    result = sf.fit(
        w.tiny_flow(), data, epochs=100, batch_size=100, optimizer=sf.Adam(1e-2), seed=0,
        progress=False,
    )  # fmt: skip
    return result, data, held_out


def test_fit_reaches_the_true_nll_on_held_out_data(tiny_fit):
    result, _, held_out = tiny_fit
    true_nll = w.true_nll(held_out)
    nll = -result.distribution.log_prob(held_out).mean()
    assert abs(nll - true_nll) < 0.05, (nll, true_nll)
    assert len(result.history) == 100 and result.history[-1] < result.history[0]


def test_fit_is_deterministic_for_a_seed(tiny_fit):
    result, data, _ = tiny_fit
    again = sf.fit(w.tiny_flow(), data, epochs=100, batch_size=100,
                   optimizer=sf.Adam(1e-2), seed=0, progress=False)  # fmt: skip
    np.testing.assert_array_equal(again.theta, result.theta)
    other = sf.fit(w.tiny_flow(), data, epochs=3, optimizer=sf.Adam(1e-2), seed=1, progress=False)
    assert not np.array_equal(other.theta, again.theta)


def test_save_and_load_parameters(tiny_fit, tmp_path):
    result, _, held_out = tiny_fit
    path = tmp_path / "trained.json"
    result.save(path)
    loaded = sf.load_parameters(w.tiny_flow(), path)
    np.testing.assert_allclose(
        loaded.log_prob(held_out), result.distribution.log_prob(held_out), rtol=1e-15
    )
    other = sfd.TransformedDistribution(sfd.Normal(0.0, 1.0), sfb.AffineScalar(0.0, 1.0))
    with pytest.raises(SymflowError, match="holds parameters"):
        sf.load_parameters(other, path)


def test_frozen_parameters_stay_and_sgd_trains():
    data, _ = w.tiny_flow_data(seed=2)
    result = sf.fit(w.tiny_flow(), data, epochs=5, optimizer=sf.SGD(1e-2, momentum=0.9),
                    frozen=("1.prelu",), progress=False)  # fmt: skip
    assert "1.prelu.alpha" not in result.parameters
    prelu = result.distribution.bijector.bijectors[1]
    assert float(prelu.parameters["alpha"]) == w.TINY_ALPHA
    assert result.history[-1] < result.history[0]


def test_validation_and_early_stopping():
    data, _ = w.tiny_flow_data(seed=4)
    result = sf.fit(w.tiny_flow(), data, epochs=60, optimizer=sf.Adam(5e-2),
                    validation_fraction=0.2, patience=3, progress=False)  # fmt: skip
    assert len(result.validation_history) == len(result.history) <= 60
    assert result.validation_history[result.best_epoch] == min(result.validation_history)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (
            lambda d: sf.fit(d, np.zeros((10, 3)), progress=False),
            ShapeError,
            r"shape \(n_samples, 2\)",
        ),  # noqa: E501
        (lambda d: sf.fit(d, np.full((10, 2), np.nan), progress=False), ShapeError, "finite"),
        (lambda d: sf.fit(d, np.zeros((10, 2)), epochs=0, progress=False), ValueError, "epochs"),
        (
            lambda d: sf.fit(d, np.zeros((10, 2)), patience=2, progress=False),
            ValueError,
            "validation",
        ),  # noqa: E501
        (
            lambda d: sf.fit(d, np.zeros((10, 2)), frozen=("0", "1"), progress=False),
            SymflowError,
            "frozen",
        ),  # noqa: E501
        (
            lambda d: sf.fit(d, np.zeros((10, 2)), optimizer="adam", progress=False),
            TypeError,
            "optimizer",
        ),  # noqa: E501
        (lambda d: sf.Adam(learning_rate=-1.0), ValueError, "learning_rate"),
        (
            lambda d: sf.fit(d, np.zeros((10, 2)), frozen=("1.PReLU",), progress=False),
            SymflowError,
            r"match no parameter.*1\.prelu\.alpha",
        ),  # noqa: E501
        (
            lambda d: sf.fit(sfd.Normal(0.0, 1.0), np.zeros(3)),
            SymflowError,
            "TransformedDistribution",
        ),  # noqa: E501
    ],
    ids=[
        "shape",
        "nan",
        "epochs",
        "patience",
        "all-frozen",
        "optimizer",
        "lr",
        "unknown-frozen",
        "not-a-flow",
    ],
)
def test_fit_errors(call, error, match):
    with pytest.raises(error, match=match):
        call(w.tiny_flow())


def test_large_batches_run_in_parallel_and_agree_with_serial():
    kernels = training_kernels(w.tiny_flow())
    parallel_rows = kernels.module.PARALLEL_ROWS
    data, _ = w.tiny_flow_data(seed=5, n=2 * parallel_rows)
    theta = kernels.theta0
    serial, parallel = np.empty_like(theta), np.empty_like(theta)
    mod = kernels.module
    rows = np.arange(data.shape[0])
    context = np.empty((data.shape[0], 0))
    qs = [np.empty_like(kernels.fixed) for _ in range(3)]
    loss_s = mod.nll_and_grad_into(
        theta, kernels.fixed, data, context, rows, serial, *qs, mod.train_work(rows.size)
    )
    gqs = np.empty((numba.get_num_threads(), kernels.fixed.size))
    loss_p = mod.nll_and_grad_into_parallel(
        theta, kernels.fixed, data, context, rows, parallel, *qs, gqs
    )
    np.testing.assert_allclose(loss_p, loss_s, rtol=1e-13)
    np.testing.assert_allclose(parallel, serial, rtol=1e-11, atol=1e-14)
    result = sf.fit(w.tiny_flow(), data, epochs=2, batch_size=parallel_rows, progress=False)
    assert result.history[-1] < result.history[0]


@sf.bijector
def scaled_by_four(
    x, a: sf.Positive, u: sf.UnitInterval, i: sf.Interval(-1, 2), h: sf.Interval(-sp.oo, 3)
):
    return x * (a + u + i + 2) + h


@pytest.fixture(scope="module")
def three_constraints():
    """Training kernels of a flow whose parameters have every constrained kind: a lower
    half-line, the unit interval, a finite interval and an upper half-line."""
    bij = scaled_by_four(a=1.0, u=0.5, i=0.5, h=-1.0)
    return training_kernels(sfd.TransformedDistribution(sfd.Normal(0.0, 1.0), bij))


@pytest.mark.parametrize(
    "start",
    [(0.5, 0.25, 0.0, -1.0), (1e-300, 1 - 2.0**-40, 1.7, 2.5), (700.0, 1e-300, -0.9, -600.0)],
    ids=["middle", "tails-1", "tails-2"],
)
def test_start_values_are_the_constraint_inverse(three_constraints, start):
    # Softplus^-1 for Positive, logit for UnitInterval, logit((v - lo)/(hi - lo)) for
    # Interval(-1, 2), -Softplus^-1(3 - v) for Interval(-oo, 3), compiled into the module,
    # against 50-digit mpmath; and back through `constrain` to the start values.
    theta = np.empty(4)
    assert three_constraints.module.unconstrain(np.array(start), theta) == -1
    a, u, i, h = (mp.mpf(v) for v in start)
    with mp.workdps(50):
        t = (i + 1) / 3
        truths = [mp.log(mp.expm1(a)), mp.log(u / (1 - u)), mp.log(t / (1 - t))]
        truths.append(-mp.log(mp.expm1(3 - h)))
        for got, truth in zip(theta, truths, strict=True):
            assert ulp_error(float(got), truth) <= 2.0, (start, got, truth)
        constraints = [p.constraint for p in scaled_by_four.spec.parameters]
        for raw, c, value in zip(theta, constraints, start, strict=True):
            # lo + (hi - lo)·σ and hi - softplus round on the bounds' scale
            bounds = [abs(b) for b in (c.lo_float, c.hi_float) if np.isfinite(b)]
            scale = max([abs(value), *bounds])
            raw = mp.mpf(float(raw))
            back = _mp_constrained(c, raw)
            slope = abs(mp.diff(lambda r, c=c: _mp_constrained(c, r), raw))
            tol = 4 * np.spacing(scale) + slope * np.spacing(abs(float(raw)))  # θ's rounding
            assert abs(mp.mpf(value) - back) <= tol, (c.name, value, back)


def test_gradient_through_every_constraint_kind(three_constraints):
    # constrain's values and derivatives for half-lines and intervals, end to end.
    constraints = [p.constraint for p in scaled_by_four.spec.parameters]

    def nll(theta, ys):
        a, u, i, h = (_mp_constrained(c, t) for c, t in zip(constraints, theta, strict=True))
        s = a + u + i + 2
        return (
            sum(((mp.mpf(float(y)) - h) / s) ** 2 / 2 + mp.log(s) for y in ys) / len(ys)
            + mp.log(2 * mp.pi) / 2
        )

    ys = np.array([-2.0, -0.4, 0.3, 1.9])
    theta0 = three_constraints.theta0
    loss, grad = three_constraints.nll_and_grad(theta0, ys)
    with mp.workdps(50):
        theta = [mp.mpf(float(t)) for t in theta0]
        assert abs(loss - float(nll(theta, ys))) < 1e-14
        h = mp.mpf(10) ** -20
        for j in range(len(theta)):
            up, down = list(theta), list(theta)
            up[j] += h
            down[j] -= h
            fd = (nll(up, ys) - nll(down, ys)) / (2 * h)
            assert abs(grad[j] - float(fd)) <= 1e-13 * max(1.0, abs(float(fd))), j


def test_a_start_value_on_the_constraint_boundary_is_refused(three_constraints):
    import dataclasses

    from symflow.training.fit import _theta0

    plan = three_constraints.plan
    q0 = plan.q0.copy()
    q0[plan.theta_q] = [1.0, 1.0, 0.5, 0.0]
    plan = dataclasses.replace(plan, q0=q0)
    with pytest.raises(SymflowError, match=r"four\.u = 1\.0 maps to inf .*strictly inside"):
        _theta0(plan, three_constraints.module)
