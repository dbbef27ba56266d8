"""Accuracy, special values and vectorization of `symflow.codegen.vm_exp32`.

Each function is compiled once per session exactly as a generated kernel holds it (its source
and its requirements under the kernel imports), inside the elementwise loop a kernel runs over
float32 arrays, and evaluated there at a few thousand float32 points over its whole range: a
fixed-seed sample (log-uniform magnitudes of both signs from the subnormals up, uniform over
the finite range, uniform near the overflow and underflow thresholds) plus hand-picked hard
cases. Truth is mpmath at 50 digits; the error is in float32 ULPs of the correctly rounded
truth (0.5 for a correctly rounded result). The loop must vectorize over float32 (8 lanes on
AVX2), with no widening to float64 anywhere in it.
"""

from __future__ import annotations

import ast
import math

import mpmath
import numpy as np
import pytest
from vm_support import (
    MIN_LANES,
    compile_helpers,
    same_value,
    ulp_error32,
    vector_lanes,
    vector_loop,
)

from symflow.codegen import vm_exp32
from symflow.codegen.helperbase import NJIT_LINE
from symflow.codegen.mathlib import HELPERS

INF, NAN = math.inf, math.nan
TINY = 1.401298464324817e-45  # smallest float32 subnormal, 2^-149
MIN_NORMAL = 1.1754943508222875e-38  # 2^-126
HUGE = 3.4028234663852886e38  # largest finite float32
BIG = 1.0000000150474662e30  # 1e30 in float32
EXP_MAX = 88.72283172607422  # largest float32 x with a finite float32 e^x
EXP_OVER = 88.72283935546875  # the next float32: e^x rounds to inf
SINH_MAX = 89.41598510742188  # largest float32 x with a finite sinh x and cosh x
SINH_OVER = 89.4159927368164  # the next float32
EXP_MIN = -103.97207641601562  # smallest float32 x with e^x > 0 (it rounds up to TINY)
EXP_UNDER = -103.97208404541016  # the next float32 below: e^x rounds to 0
EXPM1_MIN = -17.32868003845215  # largest float32 x with expm1(x) rounding to -1
CORES = {"_sf_expm1_core_f32", "_sf_cosh_core_f32"}
NAMES = sorted(set(vm_exp32.HELPERS) - CORES)  # the public functions

TRUTH = {
    "_sf_exp_f32": mpmath.exp,
    "_sf_expm1_f32": mpmath.expm1,
    "_sf_sinh_f32": mpmath.sinh,
    "_sf_cosh_f32": mpmath.cosh,
    "_sf_tanh_f32": mpmath.tanh,
    "_sf_expm1_core_f32": mpmath.expm1,
}

#: Largest error allowed, in float32 ULPs: the maximum measured over all 2^32 float32 inputs
#: (quoted in each docstring), rounded up to the next half ULP.
MAX_ULP = {
    "_sf_exp_f32": 1.0,  # 0.78 for a subnormal result (rounded twice), 0.69 otherwise
    "_sf_expm1_f32": 1.0,  # 0.87
    "_sf_sinh_f32": 1.0,  # 0.80
    "_sf_cosh_f32": 1.0,  # 0.77
    "_sf_tanh_f32": 1.0,  # 0.75
    "_sf_expm1_core_f32": 1.0,  # 0.87
}


def _log_uniform(rng, lo_exp: float, hi_exp: float, n: int) -> np.ndarray:
    """n magnitudes 10**U(lo_exp, hi_exp) with random signs."""
    return rng.choice([-1.0, 1.0], n) * 10.0 ** rng.uniform(lo_exp, hi_exp, n)


def _next(v: float, toward: float) -> float:
    return float(np.nextafter(np.float32(v), np.float32(toward)))


def _hard_cases() -> list[float]:
    limits = (EXP_MAX, SINH_MAX, EXP_MIN, EXPM1_MIN, 88.0, 88.37625, 9.0109, 0.625, 1.0)
    near = [_next(v, d) for v in limits for d in (-INF, INF)]
    half_ln2 = [s * m * math.log(2.0) / 2 for s in (-1, 1) for m in (1, 3, 5, 49, 255)]
    small = [TINY, 3 * TINY, MIN_NORMAL, 1e-30, 2.0**-24, 1e-4, 0.5, 1.0, 9.0, 17.0]
    # The worst inputs over all float32 (exp, expm1, sinh, cosh, tanh, expm1_core).
    worst = [-87.71021270751953, -5.890933036804199, 0.3553703725337982, 0.864264726638794]
    worst += [1.0397842, 0.4771113991737366, 0.5414275527000427]
    return small + [-v for v in small] + near + half_ln2 + worst


#: Sampling range per function: the finite part of its domain worth covering uniformly.
RANGE = {
    "_sf_exp_f32": (-104.0, 89.0),
    "_sf_expm1_f32": (-20.0, 89.0),
    "_sf_sinh_f32": (-90.0, 90.0),
    "_sf_cosh_f32": (-90.0, 90.0),
    "_sf_tanh_f32": (-12.0, 12.0),
    "_sf_expm1_core_f32": (-16.9, 88.3),
}


def points(name: str) -> np.ndarray:
    """Hard cases, then a fixed-seed sample over the whole range of `name`, as float32."""
    rng = np.random.default_rng(20250607 + sorted(MAX_ULP).index(name))
    lo, hi = RANGE[name]
    parts = [
        np.array(_hard_cases()),
        _log_uniform(rng, -45.0, math.log10(max(-lo, hi)), 1000),
        rng.uniform(lo, hi, 800),
        rng.uniform(-3.0, 3.0, 400),
        rng.uniform(hi - 1.0, hi, 150),
        rng.uniform(lo, lo + 1.0, 150),
    ]
    x = np.concatenate(parts).astype(np.float32)
    return x[(lo <= x) & (x <= hi)] if name == "_sf_expm1_core_f32" else x


def test_every_function_is_covered():
    assert set(vm_exp32.HELPERS) <= set(HELPERS)
    assert (
        set(TRUTH) == set(MAX_ULP) == set(RANGE) == set(vm_exp32.HELPERS) - {"_sf_cosh_core_f32"}
    )
    assert set(SPECIAL) == set(NAMES)


@pytest.mark.parametrize("name", sorted(MAX_ULP), ids=lambda n: n.removeprefix("_sf_"))
def test_accuracy(name):
    x = points(name)
    out = np.empty_like(x)
    vector_loop(name, "float32")[0](x, out)  # as a kernel runs it
    with mpmath.workdps(50):
        rows = [
            (ulp_error32(float(y), TRUTH[name](mpmath.mpf(float(v)))), float(v), float(y))
            for v, y in zip(x, out, strict=True)
        ]
    worst = max(rows, key=lambda r: r[0])
    assert worst[0] <= MAX_ULP[name], f"{name}({worst[1]!r}) = {worst[2]!r}: {worst[0]:.2f} ULP"


@pytest.mark.parametrize("name", sorted(MAX_ULP), ids=lambda n: n.removeprefix("_sf_"))
def test_loop_is_vectorized_in_float32(name):
    """LLVM inlined the function into the loop and vectorized it over float32 lanes, and
    nothing in it is widened to float64 (a float64 literal would do that)."""
    loop, vectorized = vector_loop(name, "float32")
    assert vectorized is True
    ir = loop.inspect_llvm(loop.signatures[0])
    # at least 4 float32 lanes: 8 with AVX2, 16 on Zen 4/5 (test_vectorized checks both)
    assert vector_lanes(ir, "float") >= MIN_LANES
    assert "fpext" not in ir
    assert "double" not in ir


@pytest.mark.parametrize("name", NAMES, ids=lambda n: n.removeprefix("_sf_"))
def test_returns_float32(name):
    func = compile_helpers([name])[name]
    func(np.float32(1.0))
    (sig,) = [s for s in func.nopython_signatures if str(s.args[0]) == "float32"]
    assert str(sig.return_type) == "float32"


# ---------------------------------------------------------------------------------------
# Special values: signed zeros, subnormals, thresholds, infinities, nan
# ---------------------------------------------------------------------------------------

SPECIAL = {
    "_sf_exp_f32": [(0.0, 1.0), (-0.0, 1.0), (TINY, 1.0), (-TINY, 1.0), (1.0, 2.7182817459106445)]
    + [(EXP_MAX, 3.402798519021476e38), (EXP_OVER, INF), (BIG, INF), (HUGE, INF)]
    + [(EXP_MIN, TINY), (EXP_UNDER, 0.0), (-87.5, 9.982351397596697e-39)]
    + [(-100.0, 3.783505853677006e-44), (-BIG, 0.0), (-HUGE, 0.0)]
    + [(INF, INF), (-INF, 0.0), (NAN, NAN)],
    "_sf_expm1_f32": [(0.0, 0.0), (-0.0, -0.0), (TINY, TINY), (-TINY, -TINY)]
    + [(9.99994610111476e-41, 9.99994610111476e-41), (MIN_NORMAL, MIN_NORMAL)]
    + [(-1.000000013351432e-10, -1.000000013351432e-10), (1.0, 1.718281865119934)]
    + [(-1.0, -0.6321205496788025), (EXP_MAX, 3.402798519021476e38), (EXP_OVER, INF)]
    + [(BIG, INF), (EXPM1_MIN, -1.0), (_next(EXPM1_MIN, INF), -0.9999999403953552)]
    + [(-20.0, -1.0), (-BIG, -1.0), (INF, INF), (-INF, -1.0), (NAN, NAN)],
    "_sf_sinh_f32": [(0.0, 0.0), (-0.0, -0.0), (TINY, TINY), (-TINY, -TINY)]
    + [(1.0000000031710769e-30, 1.0000000031710769e-30), (1.0, 1.175201177597046)]
    + [(-1.0, -1.175201177597046), (SINH_MAX, 3.402819612727464e38)]
    + [(-SINH_MAX, -3.402819612727464e38), (SINH_OVER, INF), (-BIG, -INF), (HUGE, INF)]
    + [(INF, INF), (-INF, -INF), (NAN, NAN)],
    "_sf_cosh_f32": [(0.0, 1.0), (-0.0, 1.0), (TINY, 1.0), (-9.999999747378752e-06, 1.0)]
    + [(1.0, 1.5430806875228882), (SINH_MAX, 3.402819612727464e38)]
    + [(-SINH_MAX, 3.402819612727464e38), (SINH_OVER, INF), (-BIG, INF), (HUGE, INF)]
    + [(INF, INF), (-INF, INF), (NAN, NAN)],
    "_sf_tanh_f32": [(0.0, 0.0), (-0.0, -0.0), (TINY, TINY), (-TINY, -TINY)]
    + [(1.0000000031710769e-30, 1.0000000031710769e-30), (1.0, 0.7615941762924194)]
    + [(9.0, 0.9999999403953552), (9.020000457763672, 1.0), (-9.020000457763672, -1.0)]
    + [(20.0, 1.0), (BIG, 1.0), (-HUGE, -1.0), (INF, 1.0), (-INF, -1.0), (NAN, NAN)],
}


@pytest.mark.parametrize("name", NAMES, ids=lambda n: n.removeprefix("_sf_"))
def test_special_values(name):
    func = compile_helpers([name])[name]
    x = np.array([v for v, _ in SPECIAL[name]], dtype=np.float32)
    assert all(same_value(float(v32), v) for v32, (v, _) in zip(x, SPECIAL[name], strict=True))
    out = np.empty_like(x)
    vector_loop(name, "float32")[0](x, out)
    wrong = [
        (float(v), float(func(v)), want)
        for v, (_, want) in zip(x, SPECIAL[name], strict=True)
        if not same_value(float(func(v)), want)
    ]
    wrong += [
        (float(v), float(y), want)
        for v, y, (_, want) in zip(x, out, SPECIAL[name], strict=True)
        if not same_value(float(y), want)
    ]
    assert not wrong, f"{name}: (input, got, wanted) {wrong}"


# ---------------------------------------------------------------------------------------
# Sources: self-contained and branch-free
# ---------------------------------------------------------------------------------------

#: Names a helper body may use besides its locals and the helpers it requires.
ALLOWED_GLOBALS = {"numba", "math", "np", "abs", "min", "max"}
#: `math` functions that lower to LLVM intrinsics or compares, which vectorize.
VECTOR_MATH = {"sqrt", "copysign", "floor", "ceil", "trunc", "isnan", "isinf"}


@pytest.mark.parametrize("name", sorted(vm_exp32.HELPERS), ids=lambda n: n.removeprefix("_sf_"))
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
    # Float32 throughout: every float literal is wrapped in np.float32(...), since a bare
    # one is a float64 in Numba and would promote the arithmetic it touches.
    wrapped = {
        id(m)
        for n in ast.walk(func)
        if isinstance(n, ast.Call)
        and isinstance(n.func, ast.Attribute)
        and n.func.attr == "float32"
        for m in ast.walk(n.args[0])
    }
    bare = [
        ast.unparse(n)
        for n in ast.walk(func)
        if isinstance(n, ast.Constant) and isinstance(n.value, float) and id(n) not in wrapped
    ]
    assert not bare, bare
