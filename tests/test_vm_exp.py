"""Accuracy, special values and vectorization of `symflow.codegen.vm_exp`.

Each function is compiled once per session exactly as a generated kernel holds it (its source
and its requirements under the kernel imports), inside the elementwise loop a kernel runs,
and evaluated there at a few thousand points over its whole float64 range: a fixed-seed
sample (log-uniform magnitudes of both signs, uniform over the finite range, uniform near the
overflow and underflow thresholds) plus hand-picked hard cases. Truth is mpmath at 50 digits;
the error is in ULPs of the correctly rounded truth (0.5 for a correctly rounded result).
"""

from __future__ import annotations

import ast
import math

import mpmath
import numpy as np
import pytest
from vm_support import compile_helpers, same_value, ulp_error, vector_loop

from symflow.codegen import vm_exp
from symflow.codegen.helperbase import NJIT_LINE
from symflow.codegen.mathlib import HELPERS

INF, NAN = math.inf, math.nan
TINY = 5e-324  # smallest subnormal
MIN_NORMAL = 2.2250738585072014e-308
HUGE = 1.7976931348623157e308
EXP_MAX = 709.782712893384  # largest x with a finite e^x
SINH_MAX = 710.4758600739439  # largest x with a finite sinh x and cosh x
EXP_MIN = -745.1332191019411  # smallest x with e^x > 0 (it rounds up to TINY)
NAMES = sorted(set(vm_exp.HELPERS) - {"_sf_expm1_core"})  # the public functions

TRUTH = {
    "_sf_exp": mpmath.exp,
    "_sf_expm1": mpmath.expm1,
    "_sf_sinh": mpmath.sinh,
    "_sf_cosh": mpmath.cosh,
    "_sf_tanh": mpmath.tanh,
    "_sf_expm1_core": mpmath.expm1,
}

#: Largest error allowed, in ULPs: the maximum measured at 200,000 points per function
#: (quoted in each docstring), rounded up to the next half ULP.
MAX_ULP = {
    "_sf_exp": 1.0,  # 0.74 for a subnormal result (rounded twice), 0.52 otherwise
    "_sf_expm1": 1.0,  # 0.56
    "_sf_sinh": 1.5,  # 1.31
    "_sf_cosh": 1.5,  # 1.00
    "_sf_tanh": 1.5,  # 1.36
    "_sf_expm1_core": 1.5,  # 1.04 (k = 54, where 2^k - 1 is rounded), 0.9 elsewhere
}


def _log_uniform(rng, lo_exp: float, hi_exp: float, n: int) -> np.ndarray:
    """n magnitudes 10**U(lo_exp, hi_exp) with random signs."""
    return rng.choice([-1.0, 1.0], n) * 10.0 ** rng.uniform(lo_exp, hi_exp, n)


def _hard_cases() -> list[float]:
    near = [math.nextafter(v, d) for v in (EXP_MAX, SINH_MAX, EXP_MIN) for d in (-INF, INF)]
    half_ln2 = [s * m * math.log(2.0) / 2 for s in (-1, 1) for m in (1, 3, 5, 2045)]
    small = [TINY, MIN_NORMAL, 1e-300, 1e-17, 2.0**-54, 1e-9, 0.5, 1.0, 19.06, 37.5]
    # The worst inputs found at 200,000 points (exp, expm1, sinh, cosh, tanh, expm1_core).
    worst = [-708.5684963009669, -510.4800921196121, 0.36424775290934, 1.3944260575727654]
    worst += [1.3121448498416726, 0.11161244229005396, 37.168309727151]
    return small + [-v for v in small] + near + half_ln2 + worst


#: Sampling range per function: the finite part of its domain worth covering uniformly.
RANGE = {
    "_sf_exp": (-746.0, 710.0),
    "_sf_expm1": (-50.0, 710.0),
    "_sf_sinh": (-711.0, 711.0),
    "_sf_cosh": (-711.0, 711.0),
    "_sf_tanh": (-25.0, 25.0),
    "_sf_expm1_core": (-37.0, 709.08),
}


def points(name: str) -> np.ndarray:
    """Hard cases, then a fixed-seed sample over the whole range of `name`."""
    rng = np.random.default_rng(20250601 + sorted(MAX_ULP).index(name))
    lo, hi = RANGE[name]
    parts = [
        np.array(_hard_cases()),
        _log_uniform(rng, -320.0, math.log10(max(-lo, hi)), 1000),
        rng.uniform(lo, hi, 800),
        rng.uniform(-3.0, 3.0, 400),
        rng.uniform(hi - 1.0, hi, 150),
        rng.uniform(lo, lo + 1.0, 150),
    ]
    x = np.concatenate(parts)
    return x[(lo <= x) & (x <= hi)] if name == "_sf_expm1_core" else x


def test_every_function_is_covered():
    assert set(vm_exp.HELPERS) <= set(HELPERS)
    assert set(TRUTH) == set(MAX_ULP) == set(RANGE) == set(vm_exp.HELPERS)
    assert set(SPECIAL) == set(NAMES)


@pytest.mark.parametrize("name", sorted(MAX_ULP), ids=lambda n: n.removeprefix("_sf_"))
def test_accuracy(name):
    x = points(name)
    out = np.empty_like(x)
    vector_loop(name)[0](x, out)  # as a kernel runs it
    with mpmath.workdps(50):
        rows = [
            (ulp_error(float(y), TRUTH[name](mpmath.mpf(float(v)))), v, y)
            for v, y in zip(x, out, strict=True)
        ]
    worst = max(rows, key=lambda r: r[0])
    assert worst[0] <= MAX_ULP[name], f"{name}({worst[1]!r}) = {worst[2]!r}: {worst[0]:.2f} ULP"


@pytest.mark.parametrize("name", NAMES, ids=lambda n: n.removeprefix("_sf_"))
def test_loop_is_vectorized(name):
    """LLVM inlined the function into the loop and vectorized it (the point of the module)."""
    assert vector_loop(name)[1] is True


# ---------------------------------------------------------------------------------------
# Special values: signed zeros, subnormals, thresholds, infinities, nan
# ---------------------------------------------------------------------------------------

SPECIAL = {
    "_sf_exp": [(0.0, 1.0), (-0.0, 1.0), (TINY, 1.0), (-TINY, 1.0), (1.0, math.e)]
    + [(EXP_MAX, 1.7976931348622732e308), (math.nextafter(EXP_MAX, INF), INF), (1e300, INF)]
    + [(EXP_MIN, TINY), (math.nextafter(EXP_MIN, -INF), 0.0), (-1e300, 0.0)]
    + [(-708.4, 2.217119081664265e-308), (INF, INF), (-INF, 0.0), (NAN, NAN)],
    "_sf_expm1": [(0.0, 0.0), (-0.0, -0.0), (TINY, TINY), (-TINY, -TINY), (1e-310, 1e-310)]
    + [(MIN_NORMAL, MIN_NORMAL), (-1e-17, -1e-17), (1e-300, 1e-300), (1.0, 1.7182818284590453)]
    + [(EXP_MAX, 1.7976931348622732e308), (math.nextafter(EXP_MAX, INF), INF), (1e300, INF)]
    + [(-40.0, -1.0), (-1e300, -1.0), (INF, INF), (-INF, -1.0), (NAN, NAN)],
    "_sf_sinh": [(0.0, 0.0), (-0.0, -0.0), (TINY, TINY), (-TINY, -TINY), (1e-300, 1e-300)]
    + [(-1e-17, -1e-17), (SINH_MAX, 1.7976931348621744e308)]
    + [(-SINH_MAX, -1.7976931348621744e308), (math.nextafter(SINH_MAX, INF), INF)]
    + [(-1e300, -INF), (HUGE, INF), (INF, INF), (-INF, -INF), (NAN, NAN)],
    "_sf_cosh": [(0.0, 1.0), (-0.0, 1.0), (TINY, 1.0), (-1e-9, 1.0), (1e-300, 1.0)]
    + [(SINH_MAX, 1.7976931348621744e308), (-SINH_MAX, 1.7976931348621744e308)]
    + [(math.nextafter(SINH_MAX, INF), INF), (-1e300, INF), (HUGE, INF)]
    + [(INF, INF), (-INF, INF), (NAN, NAN)],
    "_sf_tanh": [(0.0, 0.0), (-0.0, -0.0), (TINY, TINY), (-TINY, -TINY), (1e-300, 1e-300)]
    + [(-1e-17, -1e-17), (19.1, 1.0), (-19.1, -1.0), (25.0, 1.0), (1e300, 1.0)]
    + [(-HUGE, -1.0), (INF, 1.0), (-INF, -1.0), (NAN, NAN)],
}


@pytest.mark.parametrize("name", NAMES, ids=lambda n: n.removeprefix("_sf_"))
def test_special_values(name):
    func = compile_helpers([name])[name]
    x = np.array([v for v, _ in SPECIAL[name]])
    out = np.empty_like(x)
    vector_loop(name)[0](x, out)
    wrong = [(v, func(v), want) for v, want in SPECIAL[name] if not same_value(func(v), want)]
    wrong += [
        (v, float(y), want)
        for (v, want), y in zip(SPECIAL[name], out, strict=True)
        if not same_value(y, want)
    ]
    assert not wrong, f"{name}: (input, got, wanted) {wrong}"


@pytest.mark.parametrize("name", sorted(MAX_ULP), ids=lambda n: n.removeprefix("_sf_"))
def test_cpython_twin_agrees_with_compiled(name):
    """The plain-Python function (intrinsics replaced by their twins) gives the same bits."""
    func = compile_helpers([name])[name]
    twin = getattr(vm_exp, name)
    for v in points(name)[::40].tolist() + [v for v, _ in SPECIAL.get(name, [])]:
        assert same_value(twin(v), func(v)), (v, twin(v), func(v))


# ---------------------------------------------------------------------------------------
# Sources: self-contained and branch-free
# ---------------------------------------------------------------------------------------

#: Names a helper body may use besides its locals and the helpers it requires.
ALLOWED_GLOBALS = {"numba", "math", "np", "abs", "min", "max"}
#: `math` functions that lower to LLVM intrinsics or compares, which vectorize.
VECTOR_MATH = {"sqrt", "copysign", "floor", "ceil", "trunc", "isnan", "isinf"}


@pytest.mark.parametrize("name", sorted(vm_exp.HELPERS), ids=lambda n: n.removeprefix("_sf_"))
def test_source_is_one_self_contained_branch_free_function(name):
    helper = HELPERS[name]
    assert helper.name == name
    assert helper.source.startswith(f"{NJIT_LINE}def {name}(")
    (func,) = ast.parse(helper.source).body
    assert isinstance(func, ast.FunctionDef) and func.name == name
    assert ast.get_docstring(func)
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
    # Straight-line code: one return at the end, no statement that branches or loops.
    body = func.body[1:]
    assert isinstance(body[-1], ast.Return)
    assert all(isinstance(s, (ast.Assign, ast.AugAssign)) for s in body[:-1])
    assert not any(isinstance(n, (ast.BoolOp, ast.Lambda)) for n in ast.walk(func))
    math_calls = {
        n.attr
        for stmt in func.body
        for n in ast.walk(stmt)
        if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "math"
    }
    assert math_calls <= VECTOR_MATH, math_calls
