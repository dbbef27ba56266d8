"""Accuracy, special values and vectorizability of `symflow.codegen.vm_erf`.

Each function is compiled once per session inside the elementwise loop a kernel runs
(`vm_support.vector_loop`) and evaluated there at a few thousand points: a fixed-seed
sample, log-uniform over the magnitudes and uniform where the shape matters, both signs,
plus hand-picked hard cases (interval breaks, underflow thresholds, huge arguments). Truth
is mpmath at 50 digits; errors are in ULPs of the correctly rounded truth.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable

import mpmath
import numpy as np
import pytest
from vm_support import ulp_error, vector_loop

from symflow.codegen import vm_erf
from symflow.codegen.helperbase import INLINE_NJIT_LINE
from symflow.codegen.mathlib import HELPERS

PUBLIC = ("_sf_erf", "_sf_erfc", "_sf_ndtr_v", "_sf_log_ndtr_v")
TINY = 5e-324
MIN_NORMAL = 2.2250738585072014e-308
HUGE = 1.7976931348623157e308
INF, NAN = math.inf, math.nan


def _t_log_ndtr(x):
    if x > 100:  # -Φ(-x) underflows to -0.0 long before (mpmath's erfc overflows)
        return -mpmath.npdf(x) / x
    return mpmath.log1p(-mpmath.ncdf(-x)) if x >= 0 else mpmath.log(mpmath.ncdf(x))


TRUTH: dict[str, Callable] = {
    "_sf_erf": mpmath.erf,
    "_sf_erfc": mpmath.erfc,
    "_sf_ndtr_v": mpmath.ncdf,
    "_sf_log_ndtr_v": _t_log_ndtr,
}

#: Largest error allowed, in ULPs: the maximum measured at >= 100,000 points per function
#: (quoted in each docstring), rounded up to the next half ULP.
MAX_ULP = {"_sf_erf": 1.0, "_sf_erfc": 2.0, "_sf_ndtr_v": 2.0, "_sf_log_ndtr_v": 2.5}


def _near(x, k=2):
    """x and its k float neighbours on each side."""
    out, up, down = [x], x, x
    for _ in range(k):
        up, down = math.nextafter(up, INF), math.nextafter(down, -INF)
        out += [up, down]
    return out


def _signed(rng, values):
    return list(np.asarray(values) * rng.choice([-1.0, 1.0], len(values)))


def _logu(rng, lo_exp, hi_exp, n):
    return list(10.0 ** rng.uniform(lo_exp, hi_exp, n))


BREAKS = [0.25, 0.84375, 1.25, 2.857142857142857, 6.0]  # fdlibm's intervals in |x|


def _erf_points(rng):
    pts = [TINY, MIN_NORMAL, 1e-300, 2.0**-28, 1e-8, 5.9, 5.93, 6.5]
    pts += [p for b in BREAKS for p in _near(b)]
    pts += _signed(rng, _logu(rng, -323, 1, 800)) + list(rng.uniform(-6.5, 6.5, 1200))
    return _signed(rng, pts)


def _erfc_points(rng):
    pts = [26.5, 26.55, 26.6, 27.0, 27.2, 27.22, 27.226, 27.3, 28.0, -5.9, -6.0, -10.0]
    pts += [p for b in BREAKS for s in (1, -1) for p in _near(s * b)]
    pts += _signed(rng, _logu(rng, -323, 0.5, 500)) + list(rng.uniform(-6.0, 27.3, 1200))
    return pts + list(rng.uniform(0.0, 3.0, 400))


def _ndtr_points(rng):
    pts = [-37.5, -38.0, -38.4, -38.46, -38.47, -38.5, -39.9, -40.0, 8.3, 9.0]
    pts += [p for b in BREAKS for s in (1, -1) for p in _near(s * b * math.sqrt(2.0))]
    pts += list(rng.uniform(-38.5, 9.0, 1200)) + list(rng.normal(0.0, 3.0, 400))
    return pts + _signed(rng, _logu(rng, -300, 0.5, 400))


def _log_ndtr_points(rng):
    pts = [-20.0, 37.0, 38.0, 38.6, 40.0, -1e5, -1e150, -1.8e154, -1.89e154, 1e300, HUGE]
    pts += [p for b in BREAKS for s in (1, -1) for p in _near(s * b * math.sqrt(2.0))]
    pts += list(rng.uniform(-60.0, 10.0, 1200)) + list(rng.normal(0.0, 2.0, 400))
    pts += [-m for m in _logu(rng, 0, 154.2, 250)] + _logu(rng, -300, 2, 150)
    return pts


POINTS: dict[str, Callable] = {
    "_sf_erf": _erf_points,
    "_sf_erfc": _erfc_points,
    "_sf_ndtr_v": _ndtr_points,
    "_sf_log_ndtr_v": _log_ndtr_points,
}


def points(name: str) -> np.ndarray:
    rng = np.random.default_rng(20260521 + PUBLIC.index(name))
    return np.array([float(x) for x in POINTS[name](rng)])


def _apply(name: str, x: np.ndarray) -> np.ndarray:
    loop = vector_loop(name)[0]  # compiled once per session (vm_support caches)
    out = np.empty_like(x)
    loop(x, out)
    return out


@pytest.mark.parametrize("name", PUBLIC, ids=lambda n: n.removeprefix("_sf_"))
def test_accuracy(name):
    x = points(name)
    assert len(x) >= 2000
    got = _apply(name, x)
    with mpmath.workdps(50):
        rows = [
            (ulp_error(float(g), TRUTH[name](mpmath.mpf(float(v)))), v, g)
            for v, g in zip(x, got, strict=True)
        ]
    worst = max(rows, key=lambda r: r[0])
    assert worst[0] <= MAX_ULP[name], f"{name}({worst[1]!r}) = {worst[2]!r}: {worst[0]:.2f} ULP"


# Special values: signed zeros, subnormals, thresholds, infinities, nan

SPECIAL = {
    "_sf_erf": [
        (0.0, 0.0),
        (-0.0, -0.0),
        (TINY, TINY),
        (-TINY, -TINY),
        (1e-310, 1.1283791670955e-310),
    ]
    + [(6.0, 1.0), (-6.0, -1.0), (30.0, 1.0), (HUGE, 1.0), (-HUGE, -1.0), (INF, 1.0), (-INF, -1.0)]
    + [(NAN, NAN)],
    "_sf_erfc": [(0.0, 1.0), (-0.0, 1.0), (TINY, 1.0), (-TINY, 1.0), (27.3, 0.0), (28.0, 0.0)]
    + [(1e300, 0.0), (INF, 0.0), (-6.0, 2.0), (-30.0, 2.0), (-HUGE, 2.0), (-INF, 2.0), (NAN, NAN)],
    "_sf_ndtr_v": [(0.0, 0.5), (-0.0, 0.5), (TINY, 0.5), (-38.5, 0.0), (-40.0, 0.0), (-1e300, 0.0)]
    + [(-INF, 0.0), (9.0, 1.0), (40.0, 1.0), (HUGE, 1.0), (INF, 1.0), (NAN, NAN)],
    "_sf_log_ndtr_v": [(0.0, -math.log(2.0)), (-0.0, -math.log(2.0)), (-1.9e154, -INF)]
    + [(-1e300, -INF), (-HUGE, -INF), (-INF, -INF), (40.0, -0.0), (1e300, -0.0), (HUGE, -0.0)]
    + [(INF, 0.0), (NAN, NAN)],
}


def _same(got: float, want: float) -> bool:
    if math.isnan(want):
        return math.isnan(got)
    if want == 0.0:
        return got == 0.0 and math.copysign(1.0, got) == math.copysign(1.0, want)
    return got == want or abs(got - want) <= 1e-13 * abs(want)  # 1e-310 row: rounded want


@pytest.mark.parametrize("name", PUBLIC, ids=lambda n: n.removeprefix("_sf_"))
def test_special_values(name):
    x = np.array([row[0] for row in SPECIAL[name]])
    got = _apply(name, x)
    wrong = [
        (v, g, w) for (v, w), g in zip(SPECIAL[name], got, strict=True) if not _same(float(g), w)
    ]
    assert not wrong, f"{name}: (input, got, wanted) {wrong}"


def test_erfc_is_accurate_into_the_subnormals():
    """Below erfc's underflow at 27.22602 the results are subnormal, still to ~1 ULP."""
    x = np.linspace(26.55, 27.22, 200)
    got = _apply("_sf_erfc", x)
    assert 0.0 < got[-1] < 1e-322 and got[0] > MIN_NORMAL / 4
    with mpmath.workdps(50):
        assert (
            max(
                ulp_error(float(g), mpmath.erfc(mpmath.mpf(float(v))))
                for v, g in zip(x, got, strict=True)
            )
            <= 1.0
        )


def test_cpython_twin_agrees_with_compiled():
    """The module functions run under CPython (the intrinsics' twins) with the same results."""
    for name in PUBLIC:
        x = points(name)[::300]
        got = _apply(name, x)
        func = getattr(vm_erf, name)
        for v, g in zip(x, got, strict=True):
            assert _same(func(float(v)), float(g)), (name, v)


# Vectorization


@pytest.mark.parametrize("name", PUBLIC, ids=lambda n: n.removeprefix("_sf_"))
def test_vectorized(name):
    assert vector_loop(name)[1] is True


# Sources

ALLOWED_GLOBALS = {"numba", "math", "np", "abs", "min", "max"}


@pytest.mark.parametrize("name", sorted(vm_erf.HELPERS), ids=lambda n: n.removeprefix("_sf_"))
def test_source_is_one_self_contained_branch_free_function(name):
    helper = HELPERS[name]
    assert helper is vm_erf.HELPERS[name] and helper.name == name
    assert helper.source.startswith(f"{INLINE_NJIT_LINE}def {name}(")
    (func,) = ast.parse(helper.source).body
    assert isinstance(func, ast.FunctionDef) and ast.get_docstring(func)
    local = {a.arg for a in func.args.args} | {
        n.id for n in ast.walk(func) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
    }
    used = {
        n.id for n in ast.walk(func) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)
    }
    free = used - local
    assert free <= ALLOWED_GLOBALS | set(helper.requires), free
    assert {n for n in free if n.startswith("_sf_")} == set(helper.requires)
    assert set(helper.requires) <= set(HELPERS)
    # Branch-free: no statements that branch or loop, one return at the end.
    body = func.body[1:]  # after the docstring
    assert not [n for n in ast.walk(func) if isinstance(n, ast.If | ast.For | ast.While | ast.Try)]
    assert [isinstance(s, ast.Return) for s in body] == [False] * (len(body) - 1) + [True]
    # Only math functions that lower to vectorizable LLVM intrinsics or compares.
    for node in (n for stmt in func.body for n in ast.walk(stmt)):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            assert node.value.id == "math", node.value.id
            assert node.attr in {
                "sqrt",
                "copysign",
                "floor",
                "ceil",
                "trunc",
                "isnan",
                "isinf",
            } | {"inf", "nan"}, node.attr
