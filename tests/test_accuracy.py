"""Issue #5: every float64 kernel of every case within 1e-12 of mpmath, extreme tails included.

The measurement is `symflow.runtime.accuracy` (grid, truth, condition numbers and the
bound 1e-12 * max(1, cond/1e3) are defined in its docstring); the cases and their
parameters are `tests/catalog.py`'s. The lambdify baseline shows what the rewrite stage buys.
"""

from __future__ import annotations

import functools
import math

import mpmath
import pytest
from catalog import CASES
from truth import inverse_truth

from symflow.cli import main as cli_main
from symflow.errors import ConstraintError
from symflow.runtime.accuracy import (
    ILL_CONDITIONED,
    KERNELS,
    TOLERANCE,
    AccuracyReport,
    KernelAccuracy,
    PointError,
    accuracy_report,
    lambdify_baseline_report,
)

#: (case, kernel) pairs that miss the bound today, with the measured error and why. Each is
#: a strict xfail, so a fix shows up as an unexpected pass. None at present.
KNOWN_FAILURES: dict[tuple[str, str], str] = {}


@functools.cache
def _report(name: str) -> AccuracyReport:
    case = CASES[name]
    return accuracy_report(case.declared, case.params)


@functools.cache
def _baseline(name: str) -> AccuracyReport:
    case = CASES[name]
    return lambdify_baseline_report(case.declared, case.params)


def _kernel_params():
    for name in CASES:
        for kernel in KERNELS:
            reason = KNOWN_FAILURES.get((name, kernel))
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            yield pytest.param(name, kernel, marks=marks, id=f"{name}-{kernel}")


@pytest.mark.parametrize(("name", "kernel"), list(_kernel_params()))
def test_kernel_within_bound(name, kernel):
    """Finite wherever the truth is finite in float64, and within its bound at every point."""
    row = _report(name).row(kernel)
    assert row.points >= 10, f"{name} {kernel}: only {row.points} points compared"
    arg = row.input_name
    bad = [p.describe(arg) for p in row.failures if not math.isfinite(p.output)]
    assert not bad, f"{name} {kernel}: non-finite outputs at finite truths:\n" + "\n".join(bad)
    bad = [p.describe(arg) for p in row.failures]
    assert not bad, f"{name} {kernel}: above the bound at\n" + "\n".join(bad)


@pytest.mark.parametrize("name", list(CASES))
def test_grid_reaches_the_tails(name):
    """The forward grid goes to |x| = 700 on an infinite side and 1e-300 from an end at 0."""
    domain = CASES[name].declared.spec.domain
    xs = [p.point for p in _report(name).row("forward_log_det_jacobian").compared]
    lo, hi = domain.lo_float, domain.hi_float
    if math.isinf(hi):
        assert max(xs) >= 700.0 + (lo if math.isfinite(lo) else 0.0)
    if math.isinf(lo):
        assert min(xs) <= -700.0 + (hi if math.isfinite(hi) else 0.0)
    for end in (domain.lo_float, domain.hi_float):
        if end == 0:
            assert min(abs(x) for x in xs) <= 1e-300


#: Kernels whose naive lambdify form (the derived expression before `symflow.stabilize`)
#: breaks somewhere symflow's kernel does not: overflow to inf (softplus at x = 700 has
#: exp(1000)), log(0) (softplus_inverse at y = 1e-300), cancellation (exp(x) - 1 at
#: x = -1e-30, erfinv(2y - 1) near y = 0), or digits lost near a codomain end (Sigmoid's
#: -log(1/y - 1) near y = 1: there the map itself is ill-conditioned, so the naive form is
#: still inside the scaled bound, but its error is 1e8 times symflow's).
REWRITE_MATTERS = [
    ("Softplus", "inverse"),
    ("Softplus", "forward_log_det_jacobian"),
    ("Sigmoid", "inverse"),
    ("NormalCDF", "inverse"),
    ("Expm1", "forward"),
]


@pytest.mark.parametrize(("name", "kernel"), REWRITE_MATTERS, ids=lambda v: v)
def test_lambdify_baseline_breaks_where_symflow_does_not(name, kernel):
    ours, naive = _report(name).row(kernel), _baseline(name).row(kernel)
    assert [p.point for p in ours.compared] == [p.point for p in naive.compared]
    broken = [
        (mine, theirs)
        for mine, theirs in zip(ours.compared, naive.compared, strict=True)
        if mine.error <= TOLERANCE
        and (not math.isfinite(theirs.output) or theirs.error > 1e3 * TOLERANCE)
    ]
    assert broken, f"{name} {kernel}: lambdify is as good as symflow at every point"


def test_baseline_misses_the_bound_where_rewrites_apply():
    """Several naive forms fail outright; symflow's kernels pass for all of them."""
    failing = [(n, k) for n, k in REWRITE_MATTERS if not _baseline(n).row(k).passed]
    assert len(failing) >= 3, failing
    assert all(_report(n).row(k).passed for n, k in failing)


@pytest.mark.parametrize("name", ["Sigmoid", "user:cubic", "KumaraswamyCDF"])
def test_inverse_truth_agrees_with_tests_truth(name):
    """The report's inverse truth is the root tests/truth.py finds by its own Newton."""
    case = CASES[name]
    domain = case.declared.spec.domain
    for p in _report(name).row("inverse").compared:
        if not domain.contains(p.truth):
            continue  # x* rounds onto the end (1 - 8e-24 -> 1.0): no start for that Newton
        ref = inverse_truth(case, p.point, p.truth)
        with mpmath.workdps(50):
            assert abs(ref - p.truth) <= 1e-15 * max(abs(p.truth), 1e-300), (p.point, ref)


def test_report_defaults_text_and_validation():
    """Defaults fill missing parameters; str() is a table; bad parameters raise."""
    softplus = CASES["Softplus"].declared
    report = accuracy_report(softplus)
    assert report.params == {"hinge_softness": 1.0}
    assert [r.kernel for r in report.rows] == list(KERNELS)
    text = str(report)
    assert "max rel err" in text and "worst point" in text and "pass" in text
    assert text.splitlines()[-1] == "PASSED"
    # Scale has no default: the constraint's first representative (1.0 for NonZero).
    assert accuracy_report(CASES["Scale(neg)"].declared).params == {"scale": 1.0}
    with pytest.raises(ConstraintError, match="hinge_softness"):
        accuracy_report(softplus, {"hinge_softness": -1.0})
    with pytest.raises(ConstraintError, match="one value per parameter"):
        accuracy_report(softplus, {"hinge_softness": [0.5, 2.0]})


def test_ill_conditioned_points_are_listed_with_scaled_bounds():
    row = _report("Tanh").row("inverse")  # atanh near |y| = 1
    assert row.ill_conditioned
    for p in row.ill_conditioned:
        assert p.condition > ILL_CONDITIONED
        assert p.bound == pytest.approx(TOLERANCE * p.condition / ILL_CONDITIONED)
    assert "ill-conditioned" in str(_report("Tanh"))


def test_cli_check(capsys, repo_root):
    assert cli_main(["check", str(repo_root / "examples" / "user_bijectors.py:cubic")]) == 0
    out = capsys.readouterr().out
    assert "Accuracy of cubic" in out and "1 of 1 passed" in out


def test_cli_check_fails_on_a_failing_report(capsys, repo_root, monkeypatch):
    """Exit code 1 when a kernel misses its bound (a made-up report: the real ones pass)."""
    import symflow.runtime.accuracy as accuracy

    bad = PointError(1.0, math.nan, 2.0, math.inf, 1.0, TOLERANCE)
    fake = AccuracyReport("cubic", {}, "made up", (KernelAccuracy("forward", (bad,)),))
    monkeypatch.setattr(accuracy, "accuracy_report", lambda declared: fake)
    assert cli_main(["check", str(repo_root / "examples" / "user_bijectors.py:cubic")]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "failing: cubic" in out
