"""Every property × every catalog case (and the user-declared examples), ids = case names.

Truth is the declared forward map in mpmath at 50 digits (tests/truth.py), never the
code's own other path.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
from catalog import CASES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from truth import DPS, VALUE_DPS, grid, inverse_truth

from symflow.runtime.float32 import FLOAT32_MAX_ULP

IDS = list(CASES)
#: Relative accuracy asked of every kernel on well-conditioned points: ~5000 float64 ULP.
#: (Issue #5 tightens this over the full tails grid.)
TOL = 1e-12


@pytest.fixture(params=IDS, ids=IDS)
def case(request):
    return CASES[request.param]


def _cond(x0, y, d):
    """Relative condition number of y = f(x) at x0: |x f'(x) / f(x)|."""
    return abs(float(x0 * d / y)) if y != 0 else math.inf


def test_parameters_satisfy_declared_constraints(case):
    for p in case.declared.spec.parameters:
        value = case.params.get(p.name, p.default)
        assert value is not None and p.constraint.contains(value), (p.name, value)


def test_forward_matches_mpmath(case):
    b = case.bind()
    rows = grid(case)
    xs = np.array([r[0] for r in rows])
    out = b.forward(xs)
    for (x0, y, yf, d), o in zip(rows, out, strict=False):
        if math.isinf(yf):
            assert np.isinf(o) or o > 1e307, (x0, o)
            continue
        assert np.isfinite(o), f"forward({x0!r}) = {o}, truth {mpmath.nstr(y, 17)}"
        err = abs(o - float(y)) / max(abs(float(y)), 1e-300)
        tol = TOL * max(1.0, _cond(x0, y, d))
        assert err <= tol or abs(o - float(y)) < 1e-300, (x0, o, float(y), err)


def test_inverse_matches_mpmath(case):
    """inverse(fl(f(x0))) against the exact root of f(x) = fl(f(x0))."""
    b = case.bind()
    rows = [r for r in grid(case) if math.isfinite(r[2])]
    ys = np.array([r[2] for r in rows])
    out = b.inverse(ys)
    checked = 0
    for (x0, _y, yf, d), o in zip(rows, out, strict=False):
        lo, hi = (float(v) for v in _codomain(b, case))
        if yf <= lo or yf >= hi:  # rounded onto an end: the limit is the right answer
            continue
        truth = inverse_truth(case, yf, x0)
        cond = abs(float(yf / (truth * d))) if truth != 0 else math.inf
        err = abs(o - float(truth)) / max(abs(float(truth)), 1e-300)
        assert np.isfinite(o), (yf, o)
        assert err <= TOL * max(1.0, cond) or abs(o - float(truth)) < 1e-300, (x0, yf, o, err)
        checked += 1
    assert checked >= 10


def _codomain(b, case):
    module = b.module
    if hasattr(module, "codomain_scalar"):
        return module.codomain_scalar(
            *[float(case.bind().parameters[p]) for p in module.PARAMETERS]
        )
    return (-math.inf, math.inf)


def test_fldj_matches_mpmath_derivative(case):
    """forward_log_det_jacobian(x) against log|f'(x)| with f' by mpmath differentiation."""
    b = case.bind()
    rows = grid(case)
    xs = np.array([r[0] for r in rows])
    out = b.forward_log_det_jacobian(xs, event_ndims=0)
    for (x0, _, _, d), o in zip(rows, out, strict=False):
        ref = float(mpmath.log(abs(d)))
        assert np.isfinite(o), (x0, o)
        assert abs(o - ref) <= 1e-11 * max(1.0, abs(ref)), (x0, o, ref)


def test_ildj_is_minus_fldj_at_image(case):
    """ildj(f(x)) == -fldj(x), both against mpmath: ildj at y=fl(f(x0)) vs -log|f'(x(y))|."""
    b = case.bind()
    rows = [r for r in grid(case) if math.isfinite(r[2])]
    lo, hi = _codomain(b, case)
    rows = [r for r in rows if lo < r[2] < hi]
    ys = np.array([r[2] for r in rows])
    out = b.inverse_log_det_jacobian(ys, event_ndims=0)
    f, fp = _fp(case)
    for (x0, _, yf, _), o in zip(rows, out, strict=False):
        x = inverse_truth(case, yf, x0)
        with mpmath.workdps(VALUE_DPS):
            try:
                slope = abs(fp(x))
            except ZeroDivisionError:  # f' as p*x**p/x at a critical point
                slope = mpmath.mpf(0) if x == 0 else mpmath.nan
            ref = -float(mpmath.log(slope)) if 0 < slope < mpmath.inf else math.nan
        if math.isinf(o) and (slope < 1e-300 or slope > 1e300):
            # at an interior critical point (SignedPower(3) at y = 0, where the reference
            # root is ~1e-202, not 0): f' = 0 or inf, the log-det is infinite there
            assert o == (math.inf if slope < 1 else -math.inf), (yf, o, slope)
            continue
        assert np.isfinite(o), (yf, o)
        assert abs(o - ref) <= 1e-11 * max(1.0, abs(ref)), (x0, yf, o, ref)


def _fp(case):
    from truth import _fns, _pv

    f, fp = _fns(case.declared)
    pv = _pv(case.declared, case.params)
    return (lambda x: f(x, *pv)), (lambda x: fp(x, *pv))


def _interior(case):
    """Grid rows whose image fl(f(x)) is a float strictly inside the codomain and did not
    underflow: there every kernel has a finite answer to give."""
    lo, hi = _codomain(case.bind(), case)
    return [
        r
        for r in grid(case)
        if math.isfinite(r[2]) and lo < r[2] < hi and (r[2] != 0 or r[1] == 0)
    ]


def _moderate(case, n=12):
    rows = [r for r in _interior(case) if abs(r[0]) <= 20]
    step = max(1, len(rows) // n)
    return np.array([r[0] for r in rows[::step]])


def test_shapes_and_event_ndims(case):
    b = case.bind()
    x = np.resize(_moderate(case), (2, 3, 4))
    y = b.forward(x)
    assert y.shape == x.shape and y.dtype == np.float64
    assert b.inverse(y).shape == x.shape
    ldj = b.forward_log_det_jacobian(x, event_ndims=0)
    assert ldj.shape == x.shape
    np.testing.assert_allclose(b.forward_log_det_jacobian(x, event_ndims=1), ldj.sum(-1))
    np.testing.assert_allclose(b.forward_log_det_jacobian(x, event_ndims=2), ldj.sum((-1, -2)))
    ildj = b.inverse_log_det_jacobian(y, event_ndims=0)
    assert ildj.shape == x.shape
    np.testing.assert_allclose(b.inverse_log_det_jacobian(y, event_ndims=1), ildj.sum(-1))
    # A Python scalar in gives a numpy scalar out.
    s = b.forward(float(x.flat[0]))
    assert np.ndim(s) == 0 and s == y.flat[0]


def test_float32_kept_and_close(case):
    b = case.bind()
    x = _moderate(case)
    x32 = x.astype(np.float32)
    y32 = b.forward(x32)
    assert y32.dtype == np.float32
    x64 = x32.astype(np.float64)
    y64 = b.forward(x64)
    if b.float32_choices(("forward",))[0].float32:
        # computed in float32: within FLOAT32_MAX_ULP float32 ULPs times the condition
        # number |x f'(x) / f(x)| (the error the input's own rounding already carries)
        cond = np.abs(x64 * b.partials("forward", x64)["input"]) / np.maximum(np.abs(y64), 1e-38)
        allowed = (
            FLOAT32_MAX_ULP * np.maximum(1.0, cond) * np.spacing(np.abs(y64).astype(np.float32))
        )
        with np.errstate(invalid="ignore"):  # inf - inf where both are infinite
            ok = (y32 == y64.astype(np.float32)) | (np.abs(y32 - y64) <= allowed)
        assert ok.all(), (x32[~ok], y32[~ok], y64[~ok])
    else:  # computed in float64 and rounded once
        np.testing.assert_allclose(y32, y64.astype(np.float32), rtol=2e-7, atol=1e-38)
    l32 = b.forward_log_det_jacobian(x32, event_ndims=0)
    assert l32.dtype == np.float32


WITH_PARAMETERS = [name for name, c in CASES.items() if c.declared.spec.parameters]


@pytest.mark.parametrize("name", WITH_PARAMETERS)
def test_parameter_broadcasting(name):
    """A parameter array shaped like the input equals binding each element's scalar."""
    case = CASES[name]
    spec = case.declared.spec
    x = _moderate(case, n=6)
    p0 = spec.parameters[0]
    base = case.params.get(p0.name, p0.default)
    values = np.array([base * (1 + 0.1 * k) if base else 0.1 * k for k in range(x.size)])
    values = np.where(p0.constraint.contains(values), values, base)
    b = case.bind(**{p0.name: values})
    y = b.forward(x)
    for k in range(x.size):
        yk = case.bind(**{p0.name: values[k]}).forward(x[k])
        assert y[k] == yk
    # and a parameter with a batch shape broadcasts the input
    yb = case.bind(**{p0.name: values.reshape(-1, 1)}).forward(x[:3])
    assert yb.shape == (x.size, 3)


def test_partials_match_mpmath(case):
    """Every partial derivative (input and parameters) of forward and fldj vs mpmath."""
    spec = case.declared.spec
    b = case.bind()
    x = _moderate(case, n=5)
    from symflow.symbolic.numeric import mp_function

    args = [spec.x, *spec.parameter_symbols]
    import sympy as sp

    f = mp_function(args, spec.forward_expr)
    logd = mp_function(args, sp.log(sp.Abs(sp.diff(spec.forward_expr, spec.x))))
    names = ["input", *spec.parameter_names]
    for quantity, fn in (("forward", f), ("forward_log_det_jacobian", logd)):
        parts = b.partials(quantity, x)
        for j, name in enumerate(names):
            for i, x0 in enumerate(x):
                vals = [mpmath.mpf(x0)] + [
                    mpmath.mpf(float(case.params.get(p.name, p.default))) for p in spec.parameters
                ]
                with mpmath.workdps(VALUE_DPS):

                    def g(t, j=j, vals=vals, fn=fn):
                        v = list(vals)
                        v[j] = t
                        return fn(*v)

                    ref = float(mpmath.diff(g, vals[j]))
                got = parts[name][i]
                assert abs(got - ref) <= 1e-9 * max(1.0, abs(ref)), (quantity, name, x0, got, ref)


def _newton_root(f, fp, yv, pv, x0):
    """x with f(x; pv) = yv, at the working precision, by Newton from x0."""
    x = mpmath.mpf(x0)
    tiny = mpmath.mpf(10) ** (-(mpmath.mp.dps + 300))
    for _ in range(60):
        step = (f(x, *pv) - yv) / fp(x, *pv)
        x -= step
        if abs(step) <= abs(x) * mpmath.mpf(10) ** (-(mpmath.mp.dps - 5)) + tiny:
            break
    return x


def test_inverse_side_partials_match_mpmath(case):
    """Partials of inverse and ildj vs mpmath differentiation of the *declared* map's root.

    The truth is x*(y, params) found by Newton on the declared forward map and
    -log|f'(x*)|, differentiated numerically by mpmath: independent of the kernels'
    implicit-function formulas.
    """
    from truth import _fns

    spec = case.declared.spec
    b = case.bind()
    # Points where the root is well conditioned, so Newton on the declared map converges
    # from the grid point; the tails are covered by the value tests and tests/test_accuracy.
    # Also 1e-6 away from finite codomain ends, where x = g(y) sits so close to a domain end
    # that float64 x cannot carry what y knows (Kumaraswamy at y = 1 - 6e-9).
    ends = [e for e in _codomain(b, case) if math.isfinite(e)]
    rows = [
        r
        for r in _interior(case)
        if abs(r[0]) <= 20
        and 1e-6 < abs(r[3]) < 1e6
        and all(abs(r[2] - e) > 1e-6 * max(1.0, abs(e)) for e in ends)
    ]
    rows = rows[:: max(1, len(rows) // 5)]
    ys = np.array([r[2] for r in rows])
    f, fp = _fns(case.declared)
    names = ["input", *spec.parameter_names]
    pvals = [float(case.params.get(p.name, p.default)) for p in spec.parameters]
    inv_parts = b.partials("inverse", ys)
    ildj_parts = b.partials("inverse_log_det_jacobian", ys)
    for i, (x0, _, yf, _) in enumerate(rows):
        for j, name in enumerate(names):
            with mpmath.workdps(60):
                vals = [mpmath.mpf(yf)] + [mpmath.mpf(v) for v in pvals]

                def x_star(t, j=j, vals=vals, x0=x0):
                    v = list(vals)
                    v[j] = t
                    return _newton_root(f, fp, v[0], v[1:], x0)

                def ildj_true(t, j=j, vals=vals, x0=x0):
                    v = list(vals)
                    v[j] = t
                    x = _newton_root(f, fp, v[0], v[1:], x0)
                    return -mpmath.log(abs(fp(x, *v[1:])))

                ref_x = float(mpmath.diff(x_star, vals[j]))
                ref_l = float(mpmath.diff(ildj_true, vals[j]))
            for label, got, ref in (
                ("inverse", inv_parts[name][i], ref_x),
                ("ildj", ildj_parts[name][i], ref_l),
            ):
                assert abs(got - ref) <= 1e-9 * max(1.0, abs(ref)), (label, name, yf, got, ref)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_round_trip_property(case, data):
    """Hypothesis: x from the declared domain, parameters from the declared constraints."""
    spec = case.declared.spec
    lo, hi = spec.domain.lo_float, spec.domain.hi_float
    x = data.draw(
        st.floats(
            min_value=max(lo, -8.0),
            max_value=min(hi, 8.0),
            exclude_min=True,
            exclude_max=True,
            allow_nan=False,
        ).filter(lambda v: not spec.domain.excludes_zero or v != 0)
    )
    params = {}
    for p in spec.parameters:
        c = p.constraint
        plo, phi = max(c.lo_float, -3.0), min(c.hi_float, 3.0)
        v = data.draw(
            st.floats(min_value=plo, max_value=phi, exclude_min=True, exclude_max=True).filter(
                lambda v, c=c: c.contains(v) and abs(v) > 0.05
            )
        )
        params[p.name] = v
    b = case.declared(**params)
    y = b.forward(x)
    lo, hi = (
        b.module.codomain_scalar(*params.values())
        if hasattr(b.module, "codomain_scalar")
        else (-np.inf, np.inf)
    )
    if not (lo < y < hi):
        return  # y overflowed or rounded onto an end of the codomain: the limit is right
    back = b.inverse(y)
    f, fp = _fns_at(case, params)
    with mpmath.workdps(DPS):
        try:
            slope = abs(float(fp(mpmath.mpf(x))))
        except ZeroDivisionError:  # f' as p*x**p/x at a critical point x = 0
            slope = 0.0 if x == 0 else math.nan
    # |g(fl(f(x))) - x| is bounded by the rounding of y times |g'(y)|, plus kernel error.
    tol = 1e-12 * max(1.0, abs(x)) + 4e-16 * max(abs(y), 1e-300) / max(slope, 1e-300)
    assert abs(back - x) <= tol + 1e-12 * abs(x), (x, y, back, params)


def _fns_at(case, params):
    from truth import _fns

    f, fp = _fns(case.declared)
    pv = [mpmath.mpf(float(params[p])) for p in case.declared.spec.parameter_names]
    return (lambda x: f(x, *pv)), (lambda x: fp(x, *pv))


# ---- maps that extend to a larger domain for some parameter values ---------------------


def test_an_extension_agrees_with_its_map_where_both_are_defined():
    """Every `extend_where` of the catalog: on the map's own domain, at parameter values
    the predicate accepts, both declared forward maps agree at 30 digits."""
    from symflow.bijectors import CATALOG
    from symflow.symbolic.numeric import domain_grid, mp_function

    checked = 0
    for decl in CATALOG.values():
        for ext, _ in decl.extensions:
            spec, espec = decl.spec, ext.spec
            where = next(w for e, w, _ in decl._extensions if e is ext)
            f = mp_function([spec.x, *spec.parameter_symbols], spec.forward_expr)
            g = mp_function([espec.x, *espec.parameter_symbols], espec.forward_expr)
            for value in (3.0, 5.0, 7.0, 9.0):
                assert where({"power": np.array(value)}) is True
                for x in domain_grid(spec.domain, dense=9):
                    if not math.isfinite(x):
                        continue
                    with mpmath.workdps(30):
                        a, b = f(mpmath.mpf(x), value), g(mpmath.mpf(x), value)
                        assert abs(a - b) <= mpmath.mpf(10) ** -25 * max(1, abs(a)), (x, value)
                checked += 1
    assert checked >= 4  # Power's extension, at four odd powers


def test_power_with_an_odd_integer_is_defined_on_the_whole_line():
    """TFP's Power(3) maps all of R (issue 19, item 2): negative inputs against mpmath;
    other powers stay on x > 0."""
    from symflow import bijectors as sfb
    from symflow.errors import DomainError

    for power in (3.0, 5.0):
        b = sfb.Power(power)
        assert b.name == "Power"
        x = np.array([-3.0, -1.5, -1e-8, -1e-200, 0.0, 0.5, 2.0])
        y = b.forward(x)
        fldj = b.forward_log_det_jacobian(x, event_ndims=0)
        with mpmath.workdps(40):
            for xi, yi, li in zip(x, y, fldj, strict=True):
                t = mpmath.mpf(xi)
                exact = mpmath.sign(t) * abs(t) ** power
                assert abs(yi - float(exact)) <= 1e-15 * abs(float(exact)) + 1e-300
                if xi != 0:
                    d = mpmath.log(power * abs(t) ** (power - 1))
                    assert abs(li - float(d)) <= 1e-14 * max(1, abs(float(d)))
        keep = y != 0  # (-1e-200)**3 underflows to -0.0; its inverse is 0
        np.testing.assert_allclose(b.inverse(y[keep]), x[keep], rtol=2e-15, atol=0)
    with pytest.raises(DomainError, match="domain"):
        sfb.Power(2.0).forward(-1.0)
    with pytest.raises(DomainError, match="domain"):
        sfb.Power(-3.0).forward(-1.0)
