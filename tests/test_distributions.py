"""Distributions against independent 50-digit mpmath truth, plus TFP's walkthrough numbers.

Only three bijectors are used (NormalCDF, AffineScalar, Scale), so a cold run compiles three
kernel modules.
"""

import math

import mpmath as mp
import numpy as np
import pytest
import sympy as sp

from symflow import bijectors as sfb
from symflow import distributions as sfd
from symflow.errors import ConstraintError, DomainError, ShapeError, SymflowError


@pytest.fixture(autouse=True)
def _fifty_digits():
    # Scoped, so the rest of the suite keeps mpmath's default precision.
    with mp.workdps(50):
        yield


@pytest.fixture(scope="module")
def affine2():
    return sfb.AffineScalar(shift=0.0, scale=2.0)


@pytest.fixture(scope="module")
def negative_scale():
    return sfb.Scale(scale=-2.0)


# Independent truth, 50 digits.


def _normal_logpdf(x, loc, scale):
    x, loc, scale = mp.mpf(x), mp.mpf(loc), mp.mpf(scale)
    return -((x - loc) ** 2) / (2 * scale**2) - mp.log(scale) - mp.log(2 * mp.pi) / 2


def _exp_logpdf(x, rate):
    return mp.log(rate) - mp.mpf(rate) * x if x >= 0 else -mp.inf


def _close(got, want, rtol):
    np.testing.assert_allclose(np.asarray(got, dtype=np.float64), float(want), rtol=rtol)


# TensorFlow Probability walkthrough (printed digits: tolerance of the last digit).


def test_tfp_normal_cdf_walkthrough():
    x = 2.01
    normal_lp = sfd.Normal(0.0, 1.0).log_prob(x)
    b = sfb.NormalCDF()
    via_uniform = sfd.Uniform().log_prob(b.forward(x)) + b.forward_log_det_jacobian(
        x, event_ndims=0
    )
    assert abs(normal_lp - -2.938989) <= 1e-6
    assert abs(via_uniform - -2.938989) <= 1e-6
    _close(via_uniform, _normal_logpdf(x, 0, 1), 1e-14)


def test_tfp_affine_scalar_walkthrough(affine2):
    x = np.array([0.0, 0.5, 1.0])
    normal = sfd.Normal(0.0, 1.0)
    np.testing.assert_allclose(
        normal.log_prob(x), [-0.9189385, -1.0439385, -1.4189385], rtol=0, atol=1e-7
    )
    z = affine2.forward(x)
    by_hand = normal.log_prob(affine2.inverse(z)) + affine2.inverse_log_det_jacobian(
        z, event_ndims=0
    )
    expected = [-1.6120857, -1.7370857, -2.1120858]
    np.testing.assert_allclose(by_hand, expected, rtol=0, atol=1e-7)
    d = sfd.TransformedDistribution(normal, affine2)
    np.testing.assert_allclose(d.log_prob(z), expected, rtol=0, atol=1e-7)
    np.testing.assert_allclose(d.cdf(z), [0.5, 0.6914625, 0.8413447], rtol=0, atol=1e-7)
    np.testing.assert_allclose(d.cdf(z), normal.cdf(x), rtol=1e-15)
    for zi, xi, lp, cdf in zip(z, x, d.log_prob(z), d.cdf(z), strict=True):
        _close(lp, _normal_logpdf(xi, 0, 1) - mp.log(2), 1e-14)
        _close(cdf, mp.ncdf(zi, 0, 2), 1e-14)


def test_decreasing_bijector_cdf_is_one_minus_base_cdf(negative_scale):
    normal = sfd.Normal(0.3, 1.5)
    d = sfd.TransformedDistribution(normal, negative_scale)
    y = np.array([-20.0, -3.0, 0.0, 1.0, 4.0, 25.0])
    x = y / -2.0
    for xi, c, s in zip(x, d.cdf(y), d.survival_function(y), strict=True):
        _close(c, 1 - mp.ncdf(xi, 0.3, 1.5), 1e-13)  # Y <= y  <=>  X >= y / -2
        _close(s, mp.ncdf(xi, 0.3, 1.5), 1e-13)
    np.testing.assert_allclose(d.cdf(y), 1.0 - normal.cdf(x), atol=1e-15)
    # the density does not care about the direction: |d x / d y| = 1/2
    for xi, lp in zip(x, d.log_prob(y), strict=True):
        _close(lp, _normal_logpdf(xi, 0.3, 1.5) - mp.log(2), 1e-13)


def test_normal_through_normal_cdf_is_uniform_up_to_the_ends():
    d = sfd.TransformedDistribution(sfd.Normal(0.0, 1.0), sfb.NormalCDF())
    y = np.array([1e-300, 1e-6, 0.3, 0.5, 1.0 - 1e-9])
    # log p(y) = log φ(x) - log φ(x) = 0 exactly; float64 keeps |x²/2|·eps of it.
    np.testing.assert_allclose(d.log_prob(y), 0.0, rtol=0, atol=1e-12)
    # Φ(Φ^-1(y)): rounding x = Φ^-1(y) costs up to x²·eps relative (x² ≈ 1400 at 1e-300).
    np.testing.assert_allclose(d.cdf(y), y, rtol=2e-13)
    # The ends 0 and 1 are limits of Φ, not values: density 0 there, not nan.
    assert np.all(d.log_prob(np.array([0.0, 1.0])) == -np.inf)


# Scalar distributions against mpmath.


def test_normal_log_prob_prob_cdf_against_mpmath():
    loc = np.array([[0.0], [1.5], [-3.0]])
    scale = np.array([1.0, 0.2, 7.0, 1e-3])
    d = sfd.Normal(loc, scale)
    assert d.batch_shape == (3, 4)
    x = np.linspace(-4.0, 4.0, 12).reshape(3, 4)
    lp, p, cdf = d.log_prob(x), d.prob(x), d.cdf(x)
    for i, j in np.ndindex(3, 4):
        args = (x[i, j], loc[i, 0], scale[j])
        _close(lp[i, j], _normal_logpdf(*args), 1e-14)
        _close(p[i, j], mp.npdf(*args), 1e-13)
        _close(cdf[i, j], mp.ncdf(*args), 1e-13)


@pytest.mark.parametrize("z", [-37.5, -30.0, -20.0, -8.0, -1.0, 0.0, 0.5, 3.0, 8.0])
def test_normal_cdf_and_survival_are_relatively_accurate_in_the_tails(z):
    d = sfd.Normal(0.0, 1.0)
    _close(d.cdf(z), mp.ncdf(z), 4e-15)
    _close(d.survival_function(z), 1 - mp.ncdf(z), 4e-15)


def test_uniform_against_mpmath_and_its_half_open_support():
    d = sfd.Uniform(low=[-1.0, 2.0], high=[3.0, 2.5])
    x = np.array([[-1.0, 2.0], [0.7, 2.2], [3.0, 2.5], [-1.5, 2.6]])
    lp, cdf = d.log_prob(x), d.cdf(x)
    for (i, j), xi in np.ndenumerate(x):
        lo, hi = d.low[j], d.high[j]
        inside = lo <= xi < hi
        assert lp[i, j] == (float(-mp.log(mp.mpf(hi) - lo)) if inside else -np.inf)
        want = min(max((mp.mpf(xi) - lo) / (mp.mpf(hi) - lo), 0), 1)
        _close(cdf[i, j], want, 1e-15)
    lo, hi = d.support
    np.testing.assert_array_equal(lo, [-1.0, 2.0])
    np.testing.assert_array_equal(hi, [3.0, 2.5])


def test_exponential_against_mpmath():
    rate = np.array([0.5, 3.0])
    d = sfd.Exponential(rate)
    x = np.array([[-1.0, -1e-300], [0.0, 0.0], [1e-12, 1e-9], [0.7, 2.0], [50.0, 200.0]])
    lp, cdf, sf = d.log_prob(x), d.cdf(x), d.survival_function(x)
    for (i, j), xi in np.ndenumerate(x):
        r = mp.mpf(rate[j])
        if xi < 0:
            assert lp[i, j] == -np.inf and cdf[i, j] == 0.0 and sf[i, j] == 1.0
            continue
        _close(lp[i, j], _exp_logpdf(mp.mpf(xi), r), 1e-15)
        _close(cdf[i, j], 1 - mp.exp(-r * xi), 1e-15)  # small x: -expm1 keeps all digits
        _close(sf[i, j], mp.exp(-r * xi), 1e-13)
    assert np.all(d.log_prob(np.inf) == -np.inf)
    assert d.support == (0.0, math.inf)


def test_float32_values_give_float32_results(affine2):
    x32 = np.array([0.1, 0.5, 2.0], dtype=np.float32)
    for d in (
        sfd.Normal(0.0, 2.0),
        sfd.Uniform(0.0, 3.0),
        sfd.Exponential(2.0),
        sfd.TransformedDistribution(sfd.Normal(0.0, 1.0), affine2),
    ):
        for method in (d.log_prob, d.prob, d.cdf):
            assert method(x32).dtype == np.float32, (d, method)
        assert d.log_prob(x32.astype(np.float64)).dtype == np.float64
    mvn = sfd.MultivariateNormalDiag(scale_diag=[1.0, 2.0])
    assert mvn.log_prob(np.zeros((4, 2), dtype=np.float32)).dtype == np.float32


def test_nan_propagates_and_infinities_have_density_zero():
    for d in (sfd.Normal(), sfd.Uniform(), sfd.Exponential()):
        lp = d.log_prob(np.array([np.nan, -np.inf, np.inf]))
        assert np.isnan(lp[0]) and lp[1] == -np.inf and lp[2] == -np.inf, d
        assert np.isnan(d.cdf(np.nan))
        np.testing.assert_array_equal(d.cdf(np.array([-np.inf, np.inf])), [0.0, 1.0])


@pytest.mark.parametrize(
    "dist, x, params",
    [
        (sfd.Normal(loc=[0.5, -2.0], scale=[0.3, 4.0]), [0.1, 3.0], ("loc", "scale")),
        (sfd.Uniform(low=-1.0, high=[2.0, 5.0]), [0.1, 3.0], ("low", "high")),
        (sfd.Exponential(rate=[0.5, 3.0]), [0.1, 3.0], ("rate",)),
    ],
    ids=["Normal", "Uniform", "Exponential"],
)
def test_log_prob_expr_matches_log_prob_at_50_digits(dist, x, params):
    xs = sp.Symbol("x", real=True)
    expr, bound = dist.log_prob_expr(xs)
    assert sorted(s.name for s in bound) == sorted(params)
    assert all(s.is_real for s in bound) and expr.free_symbols <= {xs, *bound}
    got = dist.log_prob(x)
    for j, xj in enumerate(x):
        subs = {s: sp.Float(float(np.broadcast_to(v, (2,))[j]), 50) for s, v in bound.items()}
        subs[xs] = sp.Float(xj, 50)
        want = sp.N(expr.subs(subs), 50)
        _close(got[j], want, 1e-14)


def test_supports():
    assert sfd.Normal().support == (-math.inf, math.inf)
    assert sfd.Uniform(-2.0, 3.0).support == (-2.0, 3.0)


def test_means():
    np.testing.assert_array_equal(sfd.Normal([1.0, 2.0], 3.0).mean(), [1.0, 2.0])
    np.testing.assert_array_equal(sfd.Uniform(0.0, [2.0, 4.0]).mean(), [1.0, 2.0])
    assert sfd.Exponential(0.5).mean() == 2.0
    mvn = sfd.MultivariateNormalDiag(loc=[1.0, 2.0], scale_identity_multiplier=[1.0, 2.0, 3.0])
    assert mvn.mean().shape == (3, 2)


# Sampling.


def test_exponential_sample_moments_within_standard_errors():
    n = 200_000
    s = sfd.Exponential(0.5).sample(n, seed=20240611)
    assert s.shape == (n,) and s.min() >= 0.0
    # Exponential(λ = 1/2): mean 2, variance 4, fourth central moment 9/λ⁴ = 144.
    se_mean = math.sqrt(4.0 / n)
    se_var = math.sqrt((144.0 - 4.0**2) / n)
    assert abs(s.mean() - 2.0) < 5 * se_mean
    assert abs(s.var() - 4.0) < 5 * se_var


def test_sampling_is_deterministic_for_a_seed_and_accepts_a_generator(affine2):
    for d in (
        sfd.Normal(1.0, 2.0),
        sfd.Uniform(),
        sfd.Exponential(),
        sfd.MultivariateNormalDiag(scale_diag=[1.0, 2.0]),
        sfd.TransformedDistribution(sfd.Normal(), affine2),
    ):
        a, b = d.sample(7, seed=3), d.sample(7, seed=3)
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(d.sample(7, seed=np.random.default_rng(3)), a)
        assert not np.array_equal(d.sample(7, seed=4), a)


def test_transformed_sample_is_bijector_forward_of_base_sample(affine2):
    base = sfd.Normal(1.0, 0.5)
    d = sfd.TransformedDistribution(base, affine2)
    np.testing.assert_array_equal(d.sample((2, 3), seed=11), 2.0 * base.sample((2, 3), seed=11))


def test_sample_shapes():
    batch = sfd.Normal(loc=np.zeros((2, 3)), scale=np.ones(3))
    assert batch.batch_shape == (2, 3) and batch.event_shape == ()
    assert batch.sample().shape == (2, 3)
    assert batch.sample(5).shape == (5, 2, 3)
    assert batch.sample((4, 1)).shape == (4, 1, 2, 3)
    assert sfd.Exponential([1.0, 2.0]).sample(0).shape == (0, 2)
    assert sfd.Uniform().sample().shape == ()
    mvn = sfd.MultivariateNormalDiag(loc=np.zeros((3, 4)), scale_diag=np.ones(4))
    assert (mvn.batch_shape, mvn.event_shape) == ((3,), (4,))
    assert mvn.sample(5).shape == (5, 3, 4)
    assert mvn.sample().shape == (3, 4)


def test_uniform_samples_stay_in_half_open_interval():
    s = sfd.Uniform(low=[0.0, 1e300], high=[1e-300, 1.0000000000000002e300]).sample(1000, seed=0)
    assert np.all(s >= [0.0, 1e300]) and np.all(s < [1e-300, 1.0000000000000002e300])


# MultivariateNormalDiag.


@pytest.mark.parametrize(
    "kwargs, diag",
    [
        ({"loc": [1.0, -2.0, 0.5], "scale_diag": [0.5, 2.0, 3.0]}, [0.5, 2.0, 3.0]),
        ({"loc": [1.0, -2.0, 0.5], "scale_identity_multiplier": 1.5}, [1.5, 1.5, 1.5]),
        (
            {
                "loc": [1.0, -2.0, 0.5],
                "scale_diag": [0.5, 0.0, 3.0],
                "scale_identity_multiplier": 2,
            },
            [2.5, 2.0, 5.0],
        ),
        ({"loc": [1.0, -2.0, 0.5]}, [1.0, 1.0, 1.0]),
        ({"scale_diag": [-0.5, 2.0, 3.0]}, [0.5, 2.0, 3.0]),
    ],
    ids=["scale_diag", "multiplier", "diag+multiplier", "identity", "negative-diag-no-loc"],
)
def test_mvn_diag_log_prob_against_mpmath(kwargs, diag):
    d = sfd.MultivariateNormalDiag(**kwargs)
    loc = kwargs.get("loc", [0.0, 0.0, 0.0])
    x = np.array([[0.3, -1.0, 2.0], [10.0, 0.0, -7.0]])
    got = d.log_prob(x)
    assert got.shape == (2,)
    for row, lp in zip(x, got, strict=True):
        want = mp.fsum(
            _normal_logpdf(xi, li, si) for xi, li, si in zip(row, loc, diag, strict=True)
        )
        _close(lp, want, 1e-14)
    prob = d.prob(x[0])
    want = mp.fprod(mp.npdf(xi, li, si) for xi, li, si in zip(x[0], loc, diag, strict=True))
    _close(prob, want, 1e-13)


def test_mvn_diag_batch_log_prob_against_mpmath():
    loc = np.array([[0.0, 1.0], [2.0, -1.0], [0.5, 0.5]])
    mult = np.array([[1.0], [3.0]])  # batch (2, 1) with loc's (3,) -> (2, 3)
    d = sfd.MultivariateNormalDiag(loc=loc, scale_diag=[0.5, 1.0], scale_identity_multiplier=mult)
    assert (d.batch_shape, d.event_shape) == ((2, 3), (2,))
    x = np.array([0.25, -0.75])
    got = d.log_prob(x)
    assert got.shape == (2, 3)
    for i, j in np.ndindex(2, 3):
        scale = [0.5 + mult[i, 0], 1.0 + mult[i, 0]]
        want = mp.fsum(_normal_logpdf(x[k], loc[j, k], scale[k]) for k in range(2))
        _close(got[i, j], want, 1e-14)


def test_transformed_vector_event_uses_summed_log_det(affine2):
    base = sfd.MultivariateNormalDiag(loc=[0.0, 1.0], scale_diag=[1.0, 3.0])
    d = sfd.TransformedDistribution(base, affine2)
    assert d.event_shape == (2,)
    y = np.array([[0.4, -2.0], [1.0, 6.0]])
    for row, lp in zip(y, d.log_prob(y), strict=True):
        want = _normal_logpdf(row[0] / 2, 0, 1) + _normal_logpdf(row[1] / 2, 1, 3) - 2 * mp.log(2)
        _close(lp, want, 1e-14)
    with pytest.raises(ShapeError, match=r"TransformedDistribution\.cdf: .*scalar events"):
        d.cdf(y)


# Errors: (call, exception, message).


class _NotABijector:
    def __repr__(self):
        return "<not a bijector>"


ERRORS = [
    (lambda: sfd.Normal(0.0, 0.0), ConstraintError, r"Normal: `scale` must be in \(0, inf\)"),
    (lambda: sfd.Normal(0.0, [1.0, -2.0]), ConstraintError, r"`scale`.*got -2\.0"),
    (lambda: sfd.Normal(np.nan), ConstraintError, r"Normal: `loc`"),
    (lambda: sfd.Exponential(-1.0), ConstraintError, r"Exponential: `rate`.*Positive"),
    (lambda: sfd.Uniform(1.0, 0.0), ConstraintError, r"`low` must be < `high`.*low=1\.0"),
    (lambda: sfd.Uniform([0.0, 2.0], 1.0), ConstraintError, r"at batch index \(1,\)"),
    (lambda: sfd.Normal([0.0, 1.0], [1.0, 1.0, 1.0]), ShapeError, r"Normal: parameter shapes"),
    (lambda: sfd.Normal([0.0, 1.0]).log_prob([1.0, 2.0, 3.0]), ShapeError, r"batch shape \(2,\)"),
    (lambda: sfd.Normal().sample(-1), ShapeError, r"`sample_shape`.*got -1"),
    (lambda: sfd.Normal().sample(2.5), ShapeError, r"`sample_shape`"),
    (lambda: sfd.Normal().sample(2, seed="x"), TypeError, r"`seed` must be"),
    (lambda: sfd.Normal().log_prob("a"), ShapeError, r"Normal\.log_prob: expected real"),
    (
        lambda: sfd.MultivariateNormalDiag(scale_diag=[1.0, 2.0]).log_prob([1.0, 2.0, 3.0]),
        ShapeError,
        r"MultivariateNormalDiag\.log_prob: .*event shape \(2,\); got shape \(3,\)",
    ),
    (
        lambda: sfd.MultivariateNormalDiag(loc=[0.0, 0.0], scale_diag=[1.0, 1.0, 1.0]),
        ShapeError,
        r"same event size.*got 2 and 3",
    ),
    (
        lambda: sfd.MultivariateNormalDiag(scale_identity_multiplier=2.0),
        ShapeError,
        r"event size is unknown",
    ),
    (lambda: sfd.MultivariateNormalDiag(loc=1.0), ShapeError, r"`loc` must have at least one"),
    (
        lambda: sfd.MultivariateNormalDiag(scale_diag=[1.0, -1.0], scale_identity_multiplier=1.0),
        ConstraintError,
        r"must be nonzero.*index \(1,\)",
    ),
    (lambda: sfd.MultivariateNormalDiag([0.0]).cdf([0.0]), ShapeError, r"scalar events only"),
    (
        lambda: sfd.TransformedDistribution(sfd.Normal(), _NotABijector()),
        TypeError,
        r"`bijector` must be a bound symflow Bijector.*<not a bijector>",
    ),
    (
        lambda: sfd.TransformedDistribution(sfb.Exp, sfd.Normal()),
        TypeError,
        r"`distribution` must be a symflow Distribution",
    ),
    (
        lambda: sfd.TransformedDistribution(sfd.Normal(), sfb.AffineScalar(scale=[1.0, 2.0])),
        ShapeError,
        r"parameter `scale` has shape \(2,\).*\(\)",
    ),
]


@pytest.mark.parametrize("call, exc, match", ERRORS)
def test_errors(call, exc, match):
    with pytest.raises(exc, match=match) as info:
        call()
    if exc is not TypeError:
        assert isinstance(info.value, SymflowError)


def test_transformed_mean_is_not_cheap(affine2):
    with pytest.raises(NotImplementedError, match="sample"):
        sfd.TransformedDistribution(sfd.Normal(), affine2).mean()


def test_fused_log_prob_runs_one_kernel_and_agrees_with_the_member_path(affine2):
    d = sfd.TransformedDistribution(sfd.Normal(0.5, 2.0), sfb.Chain([sfb.Exp(), affine2]))
    y = np.array([0.01, 0.5, 3.0, 40.0])
    fused = d.log_prob(y)
    assert d._fused is not False and d._fused.module.KERNELS[-1] == "log_prob"
    unfused = d._log_prob(y)
    np.testing.assert_allclose(fused, unfused, rtol=1e-14)
    with pytest.raises(DomainError, match=r"member 1 \(Exp\)"):
        d.log_prob(np.array([1.0, -1.0]))
    # a base with support [0, inf): zero density (not an error) below it
    e = sfd.TransformedDistribution(sfd.Exponential(1.0), sfb.Shift(shift=1.0))
    assert e.log_prob(0.5) == -np.inf and np.isfinite(e.log_prob(1.5))
