"""Structured bijectors: Affine, ScaleMatvecTriL, FillTriangular, Permute.

The truth is mpmath at 50 digits on the plain formulas (M = tril(L) + V diag(d) V^T, a
dense LU solve, a dense determinant, central differences for gradients), never the
kernels' own Woodbury path. Every kernel compiles once per run: the module-level
bijectors below are reused, and the parallel kernels are driven by one big batch each.
"""

from __future__ import annotations

import time

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from symflow.bijectors import linear_kernels
from symflow.bijectors.affine import Affine, ScaleMatvecTriL
from symflow.bijectors.gathers import FillTriangular, Permute
from symflow.codegen.emit import PARALLEL_THRESHOLD
from symflow.errors import CheckFailedError, ConstraintError, NotInvertibleError, ShapeError

DPS = 50


# --------------------------------------------------------------------------- mpmath truth


def _mp_matrix(tril, factor, diag):
    n = tril.shape[0]
    r = 0 if factor is None else factor.shape[1]
    m = mpmath.matrix(n, n)
    for i in range(n):
        for j in range(n):
            acc = mpmath.mpf(tril[i, j]) if j <= i else mpmath.mpf(0)
            for k in range(r):
                acc += mpmath.mpf(factor[i, k]) * mpmath.mpf(diag[k]) * mpmath.mpf(factor[j, k])
            m[i, j] = acc
    return m


def _mp_forward(m, shift, x):
    n = len(shift)
    return [
        sum(m[i, j] * mpmath.mpf(x[j]) for j in range(n)) + mpmath.mpf(shift[i]) for i in range(n)
    ]


def _mp_inverse(m, shift, y):
    rhs = mpmath.matrix([mpmath.mpf(y[i]) - mpmath.mpf(shift[i]) for i in range(len(shift))])
    return list(mpmath.lu_solve(m, rhs))


def _mp_logdet(m):
    return mpmath.log(abs(mpmath.det(m)))


def _random_params(seed, n, r):
    """Well-conditioned parameters: L's diagonal in +-[1, 2], small off-diagonals."""
    rng = np.random.default_rng(seed)
    tril = np.tril(rng.uniform(-0.4, 0.4, (n, n)), -1)
    tril += np.diag(rng.choice([-1.0, 1.0], n) * rng.uniform(1.0, 2.0, n))
    tril += np.triu(rng.normal(size=(n, n)), 1)  # garbage above the diagonal: ignored
    shift = rng.normal(size=n)
    factor = rng.uniform(-0.5, 0.5, (n, r)) if r else None
    diag = rng.uniform(0.2, 1.0, r) if r else None
    return shift, tril, factor, diag


def _affine(seed, n, r):
    shift, tril, factor, diag = _random_params(seed, n, r)
    return Affine(shift, tril, factor, diag), (shift, tril, factor, diag)


def _close(got, want, rtol):
    want = np.asarray([float(w) for w in np.ravel(want)]).reshape(np.shape(got))
    scale = max(1.0, float(np.max(np.abs(want)))) if want.size else 1.0
    np.testing.assert_allclose(got, want, rtol=0, atol=rtol * scale)


CASES = [(seed, n, r) for n in (1, 2, 3, 5) for r in (0, 1, 2) for seed in (0, 1)]


# --------------------------------------------------------------------------- Affine values


@pytest.mark.parametrize("seed, n, r", CASES, ids=[f"s{s}-n{n}-r{r}" for s, n, r in CASES])
def test_affine_against_mpmath(seed, n, r):
    b, (shift, tril, factor, diag) = _affine(seed, n, r)
    x = np.random.default_rng(100 + seed).normal(size=(4, 3, n))
    y = b.forward(x)
    back = b.inverse(y)
    assert y.shape == x.shape and back.shape == x.shape
    np.testing.assert_allclose(back, x, rtol=0, atol=1e-13)
    with mpmath.workdps(DPS):
        m = _mp_matrix(tril, factor, diag)
        logdet = _mp_logdet(m)
        for idx in np.ndindex(4, 3):
            _close(y[idx], _mp_forward(m, shift, x[idx]), 1e-14)
            _close(back[idx], _mp_inverse(m, shift, y[idx]), 1e-13)
    assert abs(b.forward_log_det_jacobian(x[0, 0]) - float(logdet)) < 1e-14 * max(1, abs(logdet))
    np.testing.assert_allclose(b.inverse_log_det_jacobian(y), -float(logdet), rtol=1e-14)


def test_affine_event_ndims():
    b, _ = _affine(0, 3, 2)
    x = np.random.default_rng(0).normal(size=(4, 3, 3))
    ld = b.forward_log_det_jacobian(x[0, 0])
    assert b.forward_log_det_jacobian(x).shape == (4, 3)
    assert b.forward_log_det_jacobian(x, event_ndims=1).shape == (4, 3)
    np.testing.assert_allclose(b.forward_log_det_jacobian(x, event_ndims=2), np.full(4, 3 * ld))
    np.testing.assert_allclose(b.forward_log_det_jacobian(x, event_ndims=3), 12 * ld)
    np.testing.assert_allclose(
        b.inverse_log_det_jacobian(b.forward(x), event_ndims=2), np.full(4, -3 * ld)
    )
    with pytest.raises(ShapeError, match=r"event_ndims must be an integer >= 1; got 0"):
        b.forward_log_det_jacobian(x, event_ndims=0)
    with pytest.raises(ShapeError, match=r"event_ndims=4 exceeds the rank"):
        b.inverse_log_det_jacobian(x, event_ndims=4)


def test_affine_single_event_and_pairs():
    b, _ = _affine(1, 3, 1)
    x = np.array([0.3, -1.0, 2.0])
    y, fldj = b.forward_and_log_det(x)
    assert y.shape == (3,) and np.ndim(fldj) == 0
    np.testing.assert_array_equal(y, b.forward(x))
    x2, ildj = b.inverse_and_log_det(y)
    np.testing.assert_allclose(x2, x, atol=1e-14)
    assert ildj == -fldj == -b.forward_log_det_jacobian(x)


def test_affine_float32_kept():
    b, _ = _affine(0, 3, 2)
    x = np.random.default_rng(2).normal(size=(5, 3))
    x32 = x.astype(np.float32)
    y32 = b.forward(x32)
    assert y32.dtype == np.float32
    assert b.inverse(y32).dtype == np.float32
    assert b.forward_log_det_jacobian(x32).dtype == np.float32
    assert b.inverse_log_det_jacobian(y32, event_ndims=2).dtype == np.float32
    np.testing.assert_allclose(y32, b.forward(x32.astype(np.float64)), rtol=1e-6)
    np.testing.assert_allclose(b.inverse(y32), x32, atol=1e-5)
    assert b.forward(x.astype(np.int64)).dtype == np.float64


def test_affine_defaults_and_zero_diag_entries():
    x = np.random.default_rng(3).normal(size=(6, 2))
    shift_only = Affine(shift=[1.0, -2.0])
    np.testing.assert_allclose(shift_only.forward(x), x + [1.0, -2.0])
    assert shift_only.forward_log_det_jacobian(x[0]) == 0.0
    # d = 0 in one column: a rank-deficient update. No D^-1 anywhere, so this is fine.
    v = np.array([[1.0, 0.5], [0.2, -1.0]])
    b = Affine(scale_perturb_factor=v, scale_perturb_diag=[0.0, 2.0])
    dense = np.eye(2) + v @ np.diag([0.0, 2.0]) @ v.T
    np.testing.assert_allclose(b.forward(x), x @ dense.T, atol=1e-14)
    np.testing.assert_allclose(b.inverse(b.forward(x)), x, atol=1e-14)
    ones = Affine(scale_perturb_factor=v)  # d defaults to ones
    np.testing.assert_allclose(ones.forward(x), x @ (np.eye(2) + v @ v.T).T, atol=1e-14)


def test_affine_ignores_upper_triangle():
    tril = np.array([[2.0, 0.0], [1.0, 3.0]])
    junk = tril + np.array([[0.0, 7.0], [0.0, 0.0]])
    x = np.array([[1.0, 2.0]])
    np.testing.assert_array_equal(Affine(scale_tril=junk).forward(x), [[2.0, 7.0]])
    np.testing.assert_array_equal(ScaleMatvecTriL(junk).forward(x), [[2.0, 7.0]])
    assert "scale_tril" in ScaleMatvecTriL(junk).parameters
    np.testing.assert_array_equal(ScaleMatvecTriL(junk).parameters["scale_tril"], tril)


def test_scale_matvec_tril():
    _, tril, _, _ = _random_params(4, 4, 0)
    b = ScaleMatvecTriL(tril)
    x = np.random.default_rng(4).normal(size=(7, 4))
    np.testing.assert_allclose(b.forward(x), x @ np.tril(tril).T, atol=1e-14)
    np.testing.assert_allclose(b.inverse(b.forward(x)), x, atol=1e-14)
    want = float(np.sum(np.log(np.abs(np.diag(tril)))))
    np.testing.assert_allclose(b.forward_log_det_jacobian(x), np.full(7, want), rtol=1e-15)


def test_parallel_kernels_match_serial():
    b, (shift, tril, factor, diag) = _affine(2, 2, 2)
    rows = PARALLEL_THRESHOLD // 2 + 7
    rng = np.random.default_rng(5)
    x = rng.normal(size=(rows, 2))
    y = b.forward(x)  # takes the parallel path
    w, lu, piv, _, _ = linear_kernels.affine_prepare(np.tril(tril), factor, diag)
    serial = np.empty_like(x)
    linear_kernels.affine_forward(x, np.tril(tril), factor, diag, shift, serial)
    np.testing.assert_array_equal(y, serial)
    back = b.inverse(y)
    linear_kernels.affine_inverse(y, np.tril(tril), factor, diag, shift, w, lu, piv, serial)
    np.testing.assert_array_equal(back, serial)
    cx, cl = rng.normal(size=(rows, 2)), rng.normal(size=rows)
    big = b.inverse_vjp(y, cx, cl)
    small = [b.inverse_vjp(y[s], cx[s], cl[s]) for s in (slice(0, 1000), slice(1000, None))]
    for key in ("shift", "scale_tril", "scale_perturb_factor", "scale_perturb_diag"):
        np.testing.assert_allclose(big[key], small[0][key] + small[1][key], rtol=1e-10)
    np.testing.assert_allclose(big["y"], np.concatenate([s["y"] for s in small]), rtol=1e-15)


# --------------------------------------------------------------------------- bind-time check


def test_report_and_bind_time():
    b, _ = _affine(0, 2, 2)
    report = b.report()
    names = [r.name for r in report.results]
    assert names == ["invertible", "log_det", "forward", "inverse", "round trip"]
    assert all(r.status == "checked" for r in report.results)
    assert "rel. error" in str(report) and "cond(M)" in str(report)
    shift, tril, factor, diag = _random_params(0, 2, 2)
    start = time.perf_counter()
    for _ in range(10):
        Affine(shift, tril, factor, diag)
    per_bind = (time.perf_counter() - start) / 10
    assert per_bind < 0.05, f"binding an n=2, r=2 Affine took {per_bind * 1e3:.1f} ms"
    big = Affine(scale_tril=np.eye(17))
    assert [r.status for r in big.report().results] == ["checked"] + ["skipped"] * 4


def test_wrong_kernel_log_det_fails_the_check(monkeypatch):
    real = linear_kernels.affine_prepare

    def off_by_a_little(tril, factor, diag):
        w, lu, piv, logdet, ratio = real(tril, factor, diag)
        return w, lu, piv, logdet + 1e-6, ratio

    monkeypatch.setattr(linear_kernels, "affine_prepare", off_by_a_little)
    with pytest.raises(CheckFailedError, match=r"log_det kernel disagrees with mpmath.*error"):
        Affine(scale_tril=[[2.0, 0.0], [1.0, 1.0]])


def test_ill_conditioned_but_correct_passes_the_check():
    # cond(M) ~ 1e18: the float64 inverse is off by ~1e-4 relative here, which is what
    # the conditioning allows, not a bug, so the check must not raise.
    b = Affine(scale_tril=[[1.0, 0.0], [1e6, 1e-6]])
    assert b.report().results[-1].status == "checked"


# --------------------------------------------------------------------------- gradients


def _objective(params, cx, cl, n, r):
    """sum_b <cx_b, M^-1 (y_b - shift)> - cl_b log|det M| in mpmath, from flat params."""
    y, shift, tril, factor, diag = params
    m = _mp_matrix(tril, factor if r else None, diag)
    total = -sum(cl) * _mp_logdet(m)
    for b in range(y.shape[0]):
        x = _mp_inverse(m, shift, y[b])
        total += sum(mpmath.mpf(cx[b, i]) * x[i] for i in range(n))
    return total


def _fd_gradients(params, cx, cl, n, r):
    h = mpmath.mpf("1e-20")
    grads = []
    for k, arr in enumerate(params):
        g = np.zeros(arr.shape)
        for idx in np.ndindex(arr.shape):
            if k == 2 and idx[1] > idx[0]:
                continue  # the upper triangle of scale_tril is not a parameter
            obj = np.array([mpmath.mpf(v) for v in arr.ravel()], dtype=object)
            obj = obj.reshape(arr.shape)
            up, down = obj.copy(), obj.copy()
            up[idx] += h
            down[idx] -= h
            plus = [*params[:k], up, *params[k + 1 :]]
            minus = [*params[:k], down, *params[k + 1 :]]
            g[idx] = float(
                (_objective(plus, cx, cl, n, r) - _objective(minus, cx, cl, n, r)) / (2 * h)
            )
        grads.append(g)
    return grads


GRAD_CASES = [(seed, n, r) for n in (1, 2, 3, 5) for r in (1, 2) for seed in (0, 1)]


@pytest.mark.parametrize(
    "seed, n, r", GRAD_CASES, ids=[f"s{s}-n{n}-r{r}" for s, n, r in GRAD_CASES]
)
def test_inverse_vjp_against_mpmath_differences(seed, n, r):
    b, (shift, tril, factor, diag) = _affine(seed, n, r)
    rng = np.random.default_rng(200 + seed)
    y = rng.normal(size=(3, n))
    cx, cl = rng.normal(size=(3, n)), rng.normal(size=3)
    got = b.inverse_vjp(y, cx, cl)
    with mpmath.workdps(DPS):
        want = _fd_gradients([y, shift, np.tril(tril), factor, diag], cx, cl, n, r)
    keys = ["y", "shift", "scale_tril", "scale_perturb_factor", "scale_perturb_diag"]
    for key, w in zip(keys, want, strict=True):
        assert got[key].shape == w.shape, key
        np.testing.assert_allclose(got[key], w, rtol=0, atol=1e-10 * max(1, np.abs(w).max()))


def test_inverse_vjp_shapes_and_scale_matvec_tril():
    _, tril, _, _ = _random_params(3, 3, 0)
    b = ScaleMatvecTriL(tril)
    y = np.random.default_rng(6).normal(size=(2, 4, 3)).astype(np.float32)
    got = b.inverse_vjp(y, np.ones_like(y), 1.0)
    assert set(got) == {"y", "scale_tril"}
    assert got["y"].shape == y.shape and got["y"].dtype == np.float32
    # d/dL of sum(L^-1 y) - 8 log|det L| for a diagonal check against numpy: the
    # log-det part alone is -8 / L_ii on the diagonal.
    only_ldj = b.inverse_vjp(y, np.zeros_like(y), 1.0)["scale_tril"]
    np.testing.assert_allclose(np.diag(only_ldj), -8 / np.diag(tril), rtol=1e-14)
    assert np.all(np.triu(only_ldj, 1) == 0)


# --------------------------------------------------------------------------- hypothesis


@st.composite
def _pd_affines(draw):
    """Parameters whose M has a positive definite symmetric part: never singular."""
    n = draw(st.integers(1, 4))
    r = draw(st.integers(0, 2))
    unit = st.floats(-1.0, 1.0)
    tril = np.tril(np.array(draw(st.lists(unit, min_size=n * n, max_size=n * n))).reshape(n, n))
    tril = 0.3 * np.tril(tril, -1) + np.diag(1.0 + np.abs(np.diag(tril)))
    factor = np.array(draw(st.lists(unit, min_size=n * r, max_size=n * r))).reshape(n, r)
    diag = np.array(draw(st.lists(st.floats(0.0, 2.0), min_size=r, max_size=r)))
    shift = np.array(draw(st.lists(unit, min_size=n, max_size=n)))
    return shift, tril, factor, diag


@settings(max_examples=20, deadline=None)
@given(_pd_affines())
def test_affine_round_trip_property(params):
    shift, tril, factor, diag = params
    b = Affine(shift, tril, factor if factor.size else None, diag if diag.size else None)
    x = np.linspace(-2.0, 2.0, 3 * tril.shape[0]).reshape(3, -1)
    np.testing.assert_allclose(b.inverse(b.forward(x)), x, atol=1e-12)
    with mpmath.workdps(DPS):
        want = float(_mp_logdet(_mp_matrix(tril, factor, diag)))
    assert abs(b.forward_log_det_jacobian(x[0]) - want) < 1e-13


# --------------------------------------------------------------------------- FillTriangular


def test_fill_triangular_tfp_examples():
    lower, upper = FillTriangular(), FillTriangular(upper=True)
    six = np.arange(1.0, 7.0)
    np.testing.assert_array_equal(lower.forward(six), [[4, 0, 0], [6, 5, 0], [3, 2, 1]])
    np.testing.assert_array_equal(upper.forward(six), [[1, 2, 3], [0, 5, 6], [0, 0, 4]])
    # TFP's algorithm on [1, 2, 3]: [x[2:], reversed(x)] = [3, 3, 2, 1] -> [[3, 3], [2, 1]],
    # lower triangle [[3, 0], [2, 1]] (not [[2, 0], [3, 1]]).
    np.testing.assert_array_equal(lower.forward([1.0, 2.0, 3.0]), [[3, 0], [2, 1]])
    np.testing.assert_array_equal(upper.forward([1.0, 2.0, 3.0]), [[1, 2], [0, 3]])
    np.testing.assert_array_equal(lower.inverse([[4, 0, 0], [6, 5, 0], [3, 2, 1]]), six)
    np.testing.assert_array_equal(upper.inverse([[1, 2, 3], [0, 5, 6], [0, 0, 4]]), six)
    np.testing.assert_array_equal(lower.forward([7.0]), [[7.0]])


def _tfp_fill_triangular(x, upper):
    """TFP's reference recipe, restated: concatenate, reshape, keep one triangle."""
    m = x.shape[-1]
    n = int(np.sqrt(0.25 + 2.0 * m) - 0.5)
    tail = x[..., n:]
    laid = np.concatenate([x, tail[..., ::-1]] if upper else [tail, x[..., ::-1]], axis=-1)
    laid = laid.reshape(x.shape[:-1] + (n, n))
    return np.triu(laid) if upper else np.tril(laid)


@pytest.mark.parametrize("upper", [False, True])
def test_fill_triangular_round_trip_and_shapes(upper):
    b = FillTriangular(upper=upper)
    for n in range(1, 7):
        m = n * (n + 1) // 2
        x = np.random.default_rng(n).normal(size=(4, 3, m)).astype(np.float32)
        y = b.forward(x)
        assert y.shape == (4, 3, n, n) and y.dtype == np.float32
        np.testing.assert_array_equal(y, _tfp_fill_triangular(x, upper))
        keep = np.triu(np.ones((n, n), bool)) if upper else np.tril(np.ones((n, n), bool))
        assert np.all(y[..., ~keep] == 0)
        # every entry of x lands exactly once in the kept triangle
        np.testing.assert_array_equal(np.sort(y[..., keep], axis=-1), np.sort(x, axis=-1))
        np.testing.assert_array_equal(b.inverse(y), x)
        # the inverse reads the kept triangle only
        np.testing.assert_array_equal(b.inverse(y + ~keep), x)
    x = np.zeros((4, 3, 6))
    assert b.forward_log_det_jacobian(x).shape == (4, 3)
    assert b.forward_log_det_jacobian(x, event_ndims=2).shape == (4,)
    y = b.forward(x)
    assert b.inverse_log_det_jacobian(y).shape == (4, 3)
    assert b.inverse_log_det_jacobian(y, event_ndims=3).shape == (4,)
    assert b.forward_and_log_det(x)[1].shape == (4, 3)
    assert b.inverse_and_log_det(y)[1].shape == (4, 3)
    assert b.forward_min_event_ndims == 1 and b.inverse_min_event_ndims == 2
    with pytest.raises(ShapeError, match=r"event_ndims must be an integer >= 2; got 1"):
        b.inverse_log_det_jacobian(y, event_ndims=1)


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 8), st.booleans(), st.integers(0, 3))
def test_fill_triangular_property(n, upper, batch):
    x = np.arange(1.0, n * (n + 1) // 2 + 1) * np.ones((batch, 1))
    b = FillTriangular(upper=upper)
    np.testing.assert_array_equal(b.inverse(b.forward(x)), x)


# --------------------------------------------------------------------------- Permute


def test_permute():
    b = Permute([2, 0, 1])
    x = np.arange(24.0).reshape(2, 4, 3).astype(np.float32)
    y = b.forward(x)
    np.testing.assert_array_equal(y[..., 0], x[..., 2])
    np.testing.assert_array_equal(y[..., 1], x[..., 0])
    assert y.dtype == np.float32
    np.testing.assert_array_equal(b.inverse(y), x)
    assert b.forward_log_det_jacobian(x).shape == (2, 4)
    assert b.inverse_log_det_jacobian(y, event_ndims=2).shape == (2,)
    rows = Permute([1, 0, 3, 2], axis=-2)
    assert rows.forward_min_event_ndims == 2
    z = rows.forward(x)
    np.testing.assert_array_equal(z[:, 0], x[:, 1])
    np.testing.assert_array_equal(z[:, 3], x[:, 2])
    np.testing.assert_array_equal(rows.inverse(z), x)
    assert rows.forward_log_det_jacobian(z).shape == (2,)


@settings(max_examples=20, deadline=None)
@given(st.permutations(list(range(6))))
def test_permute_property(perm):
    b = Permute(perm)
    x = np.random.default_rng(0).normal(size=(3, 6))
    np.testing.assert_array_equal(b.forward(x), x[:, perm])
    np.testing.assert_array_equal(b.inverse(b.forward(x)), x)


# --------------------------------------------------------------------------- errors

EYE2, EYE3 = np.eye(2), np.eye(3)
ERRORS = [
    ("event sizes disagree", lambda: Affine([0.0, 0.0], EYE3), ShapeError,
     r"`scale_tril` has shape \(3, 3\) but `shift` has shape \(2,\).*agree on the event size"),
    ("tril not square", lambda: Affine(scale_tril=np.ones((2, 3))), ShapeError,
     r"`scale_tril` must be a square n x n matrix; got shape \(2, 3\)"),
    ("batched tril", lambda: Affine(scale_tril=np.ones((4, 2, 2))), ShapeError,
     r"Affine: `scale_tril` must be an n x n matrix.*got shape \(4, 2, 2\).*Batched"),
    ("batched shift", lambda: Affine(shift=[[1.0, 2.0]]), ShapeError,
     r"`shift` must be a vector of length n.*\(1, 2\).*Batched parameters"),
    ("diag length", lambda: Affine(scale_perturb_factor=np.ones((2, 1)),
                                   scale_perturb_diag=[1.0, 2.0]), ShapeError,
     r"`scale_perturb_diag` must have length r = 1.*got shape \(2,\)"),
    ("diag alone", lambda: Affine(shift=[0.0], scale_perturb_diag=[1.0]), ShapeError,
     r"`scale_perturb_diag` was given without `scale_perturb_factor`"),
    ("no size", lambda: Affine(), ShapeError, r"cannot tell the event size n"),
    ("zero diagonal", lambda: Affine(scale_tril=[[1.0, 0.0], [3.0, 0.0]]), NotInvertibleError,
     r"`scale_tril` has a zero on its diagonal at index 1; the map is not invertible"),
    ("singular update", lambda: Affine(scale_perturb_factor=[[1.0], [0.0]],
                                       scale_perturb_diag=[-1.0]), NotInvertibleError,
     r"capacitance matrix .* is singular.*not invertible"),
    ("nan shift", lambda: Affine(shift=[0.0, np.nan]), ConstraintError,
     r"Affine: `shift` must be finite; got nan at index 1"),
    ("inf tril", lambda: Affine(scale_tril=[[1.0, 0.0], [np.inf, 1.0]]), ConstraintError,
     r"`scale_tril` must be finite; got inf at index \(1, 0\)"),
    ("text", lambda: Affine(shift="abc"), ConstraintError, r"`shift` must be a vector"),
    ("wrong event", lambda: Affine(shift=[0.0, 1.0]).forward(np.ones((4, 3))), ShapeError,
     r"Affine.forward: expected an input of shape \(\.\.\., 2\).*got shape \(4, 3\)"),
    ("wrong event ldj", lambda: Affine(shift=[0.0]).inverse_log_det_jacobian(np.ones(2)),
     ShapeError, r"Affine.inverse_log_det_jacobian: expected an input of shape \(\.\.\., 1\)"),
    ("scalar input", lambda: Affine(shift=[0.0]).inverse(1.0), ShapeError,
     r"got shape \(\)"),
    ("cotangent shape", lambda: Affine(shift=[0.0, 1.0]).inverse_vjp(
        np.ones((3, 2)), np.ones((4, 2)), 0.0), ShapeError,
     r"inverse_vjp: cotangent_x must broadcast to y's shape \(3, 2\)"),
    ("matvec not square", lambda: ScaleMatvecTriL(np.ones((2, 3))), ShapeError,
     r"ScaleMatvecTriL: `scale_tril` must be a square"),
    ("matvec zero diag", lambda: ScaleMatvecTriL([[0.0, 0.0], [1.0, 1.0]]), NotInvertibleError,
     r"ScaleMatvecTriL: `scale_tril` has a zero on its diagonal at index 0"),
    ("fill not triangular", lambda: FillTriangular().forward(np.ones(4)), ShapeError,
     r"FillTriangular.forward: the last axis must hold n\(n\+1\)/2 entries.*\(4,\)"),
    ("fill not square", lambda: FillTriangular().inverse(np.ones((2, 3))), ShapeError,
     r"FillTriangular.inverse: expected square matrices.*\(2, 3\)"),
    ("permute duplicate", lambda: Permute([0, 0, 2]), ConstraintError,
     r"Permute: `permutation` must contain each of 0..2 exactly once.*missing \[1\], "
     r"duplicated \[0\]"),
    ("permute range", lambda: Permute([0, 3]), ConstraintError,
     r"missing \[1\], out of range \[3\]"),
    ("permute floats", lambda: Permute([0.5, 1.0]), ConstraintError,
     r"`permutation` must be a non-empty 1-D array of integers"),
    ("permute axis", lambda: Permute([1, 0], axis=0), ShapeError,
     r"`axis` must be a negative integer"),
    ("permute size", lambda: Permute([1, 0]).forward(np.ones(3)), ShapeError,
     r"Permute.forward: expected size 2 along axis -1.*\(3,\)"),
]  # fmt: skip


@pytest.mark.parametrize("make, exc, pattern", [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_errors(make, exc, pattern):
    with pytest.raises(exc, match=pattern):
        make()
