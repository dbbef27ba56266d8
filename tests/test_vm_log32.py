"""Accuracy, special values, float32-ness and vectorization of `symflow.codegen.vm_log32`.

Each function is compiled once per session as a generated kernel would contain it, inside
the elementwise loop a kernel runs, here over float32 arrays (so the accuracy measured is
that of the eight-lane vectorized code), and evaluated at a few thousand float32 points over
its whole domain: a fixed-seed sample of log-uniform magnitudes with random mantissas
(subnormals from 1e-45 up to 3.4e38), both signs, uniform samples where the shape matters,
the neighbourhoods of ±1, plus hand-picked hard cases (thresholds of the method, the worst
inputs found when the bounds in the docstrings were measured at 160,000+ points). Truth is
mpmath at 50 digits; errors are in float32 ULPs of the correctly rounded truth (<= 0.5 when
correctly rounded).
"""

from __future__ import annotations

import ast
import math
import re

import mpmath
import numba
import numpy as np
import pytest
from vm_support import MIN_LANES, PRELUDE, same_value, ulp_error32, vector_lanes, vector_loop

from symflow.codegen import vm_log32
from symflow.codegen.helperbase import NJIT_LINE
from symflow.codegen.mathlib import HELPERS, helper_sources

mp = mpmath.mpf
DPS = 50
F32 = np.float32
TINY = float(np.finfo(F32).smallest_subnormal)  # 2**-149, 1.4e-45
MIN_NORMAL = float(np.finfo(F32).tiny)  # 2**-126
HUGE = float(np.finfo(F32).max)  # 3.4028235e38
INF, NAN = math.inf, math.nan
UNARY = [
    "_sf_log_f32",
    "_sf_log1p_f32",
    "_sf_asinh_f32",
    "_sf_acosh_f32",
    "_sf_atanh_f32",
    "_sf_loghypot_f32",
]
PUBLIC = [*UNARY, "_sf_hypot_f32"]


def _f(x: float) -> float:
    """x rounded to float32 (as a Python float)."""
    return float(F32(x))


def _up(x: float, n: int = 1) -> float:
    y = F32(x)
    for _ in range(n):
        y = np.nextafter(y, F32(INF))
    return float(y)


def _down(x: float, n: int = 1) -> float:
    y = F32(x)
    for _ in range(n):
        y = np.nextafter(y, F32(-INF))
    return float(y)


def _around(x: float) -> list[float]:
    return [_down(x), _f(x), _up(x)]


# ---------------------------------------------------------------------------------------
# Points and truth
# ---------------------------------------------------------------------------------------


def _magnitudes(rng, n: int, lo: float, hi: float) -> np.ndarray:
    """n values 2^U(lo, hi)·(1 + U(0, 1)): log-uniform exponents, random mantissas."""
    return np.exp2(rng.uniform(lo, hi, n)) * (1.0 + rng.uniform(0.0, 1.0, n))


def _signed(rng, x: np.ndarray) -> np.ndarray:
    return x * rng.choice([-1.0, 1.0], x.shape[0])


SQRT_HALF = 0.7071067811865476
HARD = {
    "_sf_log": [TINY, 2 * TINY, _down(MIN_NORMAL), MIN_NORMAL, HUGE, 1.0, _up(1.0), _down(1.0)]
    + _around(SQRT_HALF)
    + _around(2 * SQRT_HALF)
    + [2.0, 0.5, 1e-30, 1e30, 1.574455, 0.63121855, 1.4131505, 0.7070089],
    "_sf_log1p": [TINY, -TINY, MIN_NORMAL, 2.0**-25, -(2.0**-25), 2.0**-24, -(2.0**-24)]
    + [2.0**-23, -(2.0**-23), 1e-7, -1e-7, 1e-30, -1e-30, _up(-1.0), -0.5, -0.75]
    + _around(SQRT_HALF - 1.0)
    + _around(2 * SQRT_HALF - 1.0)
    + [2.0**24, 2.0**24 + 2.0, _down(2.0**24), 1e30, HUGE, -0.37094504, -0.37248212]
    + [-0.29296708, 0.40607798],
    "_sf_asinh": _around(2.0)
    + _around(4096.0)
    + _around(2.0**-12)
    + [TINY, -TINY, MIN_NORMAL, 1e-10, 1e-19, -1e-20, HUGE, -HUGE, 1.8e19, 2e19]
    + [-0.46351755, -0.4614811, -0.353532, 0.3497689],
    "_sf_acosh": [1.0, _up(1.0), _up(1.0, 2), 1.0 + 2.0**-12, 1.5, 2.0, HUGE, 1.8e19, 2e19]
    + _around(4096.0)
    + [1.1002994, 1.5388954, 1.0293218, 1.0564982, _f(2 * SQRT_HALF) + 1e-3],
    "_sf_atanh": [TINY, -TINY, MIN_NORMAL, 1e-20, -1e-20, 2.0**-12, -(2.0**-13)]
    + _around(0.5)
    + [_down(1.0), -_down(1.0), _down(1.0, 2), -_down(1.0, 3), 1.0 - 2.0**-12]
    + [0.22210225, 0.21855623, -0.11986464, -0.16721797],
    "_sf_loghypot": _around(4096.0)
    + _around(2.0**-12)
    + [TINY, -TINY, MIN_NORMAL, 1e-10, 1e-19, -1e-20, HUGE, -HUGE, 1.8e19, 2e19, 1.0, -0.5],
}
HARD = {f"{k}_f32": [_f(v) for v in vs] for k, vs in HARD.items()}


def points(name: str) -> np.ndarray:
    """The float32 test points of unary function `name` (fixed seed), hard cases first."""
    rng = np.random.default_rng(20250611 + UNARY.index(name))
    if name == "_sf_log_f32":
        parts = [_magnitudes(rng, 1500, -150, 128), rng.uniform(0.5, 2.0, 500)]
        parts.append(1.0 + rng.uniform(-1e-3, 1e-3, 300))
    elif name == "_sf_log1p_f32":
        parts = [_magnitudes(rng, 800, -150, 128), -_magnitudes(rng, 400, -150, -1)]
        parts += [-1.0 + _magnitudes(rng, 300, -24, -2), rng.uniform(-0.35, 0.5, 400)]
        parts.append(_signed(rng, _magnitudes(rng, 400, -30, -10)))
    elif name == "_sf_asinh_f32":
        parts = [_signed(rng, _magnitudes(rng, 1500, -150, 128))]
        parts += [rng.uniform(-4.0, 4.0, 600), _signed(rng, _magnitudes(rng, 400, -14, 14))]
    elif name == "_sf_loghypot_f32":
        parts = [_signed(rng, _magnitudes(rng, 1500, -150, 128))]
        parts += [rng.uniform(-4.0, 4.0, 600), _signed(rng, _magnitudes(rng, 400, -14, 14))]
    elif name == "_sf_acosh_f32":
        parts = [1.0 + _magnitudes(rng, 800, -24, 4), _magnitudes(rng, 800, 0, 128)]
        parts.append(rng.uniform(1.0, 4.0, 600))
    else:
        parts = [_signed(rng, _magnitudes(rng, 1000, -150, -1))]
        parts += [_signed(rng, 1.0 - _magnitudes(rng, 600, -25, -2))]
        parts += [rng.uniform(-1.0, 1.0, 600), _signed(rng, _magnitudes(rng, 300, -14, -1))]
    with np.errstate(over="ignore"):
        x = np.concatenate([np.array(HARD[name]), *parts]).astype(F32)
    lo, hi = {
        "_sf_log_f32": (0.0, HUGE),
        "_sf_log1p_f32": (_up(-1.0), HUGE),
        "_sf_acosh_f32": (1.0, HUGE),
        "_sf_atanh_f32": (_up(-1.0), _down(1.0)),
    }.get(name, (-HUGE, HUGE))
    return x[(x >= lo) & (x <= hi)]


def hypot_points() -> tuple[np.ndarray, np.ndarray]:
    """float32 (x, y) pairs: independent magnitudes, pairs a few binades apart, hard cases."""
    rng = np.random.default_rng(20250617)
    x = _signed(rng, _magnitudes(rng, 1200, -150, 128))
    y = _signed(rng, _magnitudes(rng, x.shape[0], -150, 128))
    x2 = _signed(rng, _magnitudes(rng, 1200, -150, 128))
    y2 = _signed(rng, x2 * np.exp2(rng.uniform(-20.0, 20.0, x2.shape[0])))
    x3, y3 = rng.uniform(-10.0, 10.0, (2, 600))
    hard = [(3.0, 4.0), (HUGE, HUGE / 2), (TINY, TINY), (TINY, 3 * TINY), (MIN_NORMAL, TINY)]
    hard += [(2.0**63, 2.0**63), (_up(2.0**63), 1.0), (2.0**-50, _down(2.0**-50))]
    hard += [(1.0, 2.0**-13), (1.0, _up(2.0**-13)), (1.0, _down(2.0**-13)), (1e30, 1e-30)]
    hard += [(7.76828e-39, 1.610849e-39), (8.473262e-39, 8.79e-42), (1.0, 1.0), (HUGE, 1.0)]
    hx, hy = np.array(hard).T
    with np.errstate(over="ignore"):
        x = np.concatenate([hx, x, x2, x3]).astype(F32)
        y = np.concatenate([hy, y, y2, y3]).astype(F32)
    keep = np.isfinite(x) & np.isfinite(y)
    return x[keep], y[keep]


TRUTH = {
    "_sf_log_f32": mpmath.log,
    "_sf_log1p_f32": mpmath.log1p,
    "_sf_asinh_f32": mpmath.asinh,
    "_sf_acosh_f32": mpmath.acosh,
    "_sf_atanh_f32": mpmath.atanh,
    "_sf_loghypot_f32": lambda x: mpmath.log1p(x * x) / 2,
}

#: The measured worst errors (docstrings), rounded up to the next half ULP.
MAX_ULP = {
    "_sf_log_f32": 1.0,  # 0.78
    "_sf_log1p_f32": 1.0,  # 0.79
    "_sf_asinh_f32": 1.0,  # 0.78
    "_sf_acosh_f32": 1.0,  # 0.78
    "_sf_atanh_f32": 1.0,  # 0.78
    "_sf_loghypot_f32": 1.0,  # 0.98
    "_sf_hypot_f32": 1.0,  # 0.75
}


# ---------------------------------------------------------------------------------------
# Compiled loops
# ---------------------------------------------------------------------------------------

_HYPOT_LOOP = """

@numba.njit(cache=True, error_model="numpy")
def _loop2(x, y, out):
    for i in range(x.shape[0]):
        out[i] = _sf_hypot_f32(x[i], y[i])
"""


@pytest.fixture(scope="session")
def hypot_loop(tmp_path_factory):
    """`_loop2(x, y, out)` applying `_sf_hypot_f32` elementwise over float32 arrays."""
    text = PRELUDE + helper_sources(["_sf_hypot_f32"]) + _HYPOT_LOOP
    path = tmp_path_factory.mktemp("vm_log32") / "hypot_loop.py"
    path.write_text(text)  # Numba's cache=True needs a real source file
    namespace: dict = {}
    exec(compile(text, str(path), "exec"), namespace)
    loop = namespace["_loop2"]
    x = np.ones(8, dtype=F32)
    loop(x, x, np.empty_like(x))
    return loop


def _loop(name: str):
    return vector_loop(name, dtype="float32")[0]


def _scalar(name: str):
    """The helper as compiled in the loop's module; call it with float32 arguments only."""
    return _loop(name).py_func.__globals__[name]


def _apply(name: str, x: np.ndarray) -> np.ndarray:
    out = np.empty_like(x)
    _loop(name)(x, out)
    return out


# ---------------------------------------------------------------------------------------
# Accuracy
# ---------------------------------------------------------------------------------------


def _worst(rows) -> str:
    err, args, got, truth = max(rows, key=lambda r: r[0])
    return f"({', '.join(map(repr, args))}) = {got!r}, truth {mpmath.nstr(truth, 12)}: {err:.3f}"


@pytest.mark.parametrize("name", UNARY, ids=lambda n: n.removeprefix("_sf_"))
def test_accuracy(name):
    x = points(name)
    assert x.dtype == F32
    got = _apply(name, x)
    rows = []
    with mpmath.workdps(DPS):
        for xi, gi in zip(x.tolist(), got.tolist(), strict=True):
            truth = TRUTH[name](mp(xi))
            rows.append((ulp_error32(gi, truth), (xi,), gi, truth))
    assert len(rows) >= 2000
    assert max(r[0] for r in rows) <= MAX_ULP[name], f"{name}{_worst(rows)} ULP"


def test_accuracy_hypot(hypot_loop):
    x, y = hypot_points()
    got = np.empty_like(x)
    hypot_loop(x, y, got)
    rows = []
    with mpmath.workdps(DPS), np.errstate(over="ignore"):  # ulp_error32 at 3.4e38
        for xi, yi, gi in zip(x.tolist(), y.tolist(), got.tolist(), strict=True):
            truth = mpmath.sqrt(mp(xi) ** 2 + mp(yi) ** 2)
            rows.append((ulp_error32(gi, truth), (xi, yi), gi, truth))
    assert len(rows) >= 2000
    assert max(r[0] for r in rows) <= MAX_ULP["_sf_hypot_f32"], f"_sf_hypot_f32{_worst(rows)} ULP"


# ---------------------------------------------------------------------------------------
# Special values: domain ends, infinities, nan, signed zeros, subnormals, thresholds
# ---------------------------------------------------------------------------------------

BELOW_ONE = _down(1.0)
LN2 = _f(math.log(2.0))
SPECIAL = {
    "_sf_log_f32": [(0.0, -INF), (-0.0, -INF), (-TINY, NAN), (-1.0, NAN), (-INF, NAN)]
    + [
        (INF, INF),
        (NAN, NAN),
        (1.0, 0.0),
        (2.0, LN2),
        (0.5, -LN2),
        (TINY, _f(-103.27892990343185)),
    ]
    + [(HUGE, _f(88.72283905206835)), (MIN_NORMAL, _f(-87.33654475055310))],
    "_sf_log1p_f32": [(0.0, 0.0), (-0.0, -0.0), (TINY, TINY), (-TINY, -TINY), (-1.0, -INF)]
    + [(_down(-1.0), NAN), (-INF, NAN), (INF, INF), (NAN, NAN), (1e-20, _f(1e-20)), (1.0, LN2)]
    + [(-(2.0**-26), -(2.0**-26)), (MIN_NORMAL, MIN_NORMAL), (HUGE, _f(88.72283905206835))],
    "_sf_asinh_f32": [(0.0, 0.0), (-0.0, -0.0), (TINY, TINY), (-TINY, -TINY), (INF, INF)]
    + [(-INF, -INF), (NAN, NAN), (1e-20, _f(1e-20)), (-1e-20, _f(-1e-20)), (2.0**-13, 2.0**-13)]
    + [(HUGE, _f(89.41598623262830)), (-HUGE, _f(-89.41598623262830))],
    "_sf_acosh_f32": [(1.0, 0.0), (BELOW_ONE, NAN), (0.0, NAN), (-1.0, NAN), (-INF, NAN)]
    + [(INF, INF), (NAN, NAN), (HUGE, _f(89.41598623262830)), (_up(1.0), _f(4.8828125e-4))],
    "_sf_atanh_f32": [(0.0, 0.0), (-0.0, -0.0), (TINY, TINY), (-TINY, -TINY), (1.0, INF)]
    + [(-1.0, -INF), (_up(1.0), NAN), (-_up(1.0), NAN), (2.0, NAN), (INF, NAN), (-INF, NAN)]
    + [(NAN, NAN), (1e-20, _f(1e-20)), (2.0**-13, 2.0**-13), (BELOW_ONE, _f(8.664339742098155))],
    "_sf_loghypot_f32": [(0.0, 0.0), (-0.0, 0.0), (TINY, 0.0), (INF, INF), (-INF, INF)]
    + [(NAN, NAN), (2.0**-13, 2.0**-27), (-(2.0**-13), 2.0**-27), (1.0, _f(math.log(2.0) / 2))]
    + [(HUGE, _f(88.72283905206835)), (-HUGE, _f(88.72283905206835))],
}
SPECIAL_HYPOT = [
    ((INF, NAN), INF),
    ((NAN, INF), INF),
    ((-INF, NAN), INF),
    ((NAN, -INF), INF),
    ((INF, 1.0), INF),
    ((-INF, -INF), INF),
    ((NAN, 1.0), NAN),
    ((1.0, NAN), NAN),
    ((NAN, 0.0), NAN),
    ((NAN, NAN), NAN),
    ((0.0, 0.0), 0.0),
    ((-0.0, -0.0), 0.0),
    ((3.0, -4.0), 5.0),
    ((0.0, -7.5), 7.5),
    ((HUGE, HUGE), INF),
    ((HUGE, 1.0), HUGE),
    ((TINY, 0.0), TINY),
    ((TINY, TINY), TINY),
    ((3 * TINY, 4 * TINY), 5 * TINY),
    ((1e30, 1e-30), _f(1e30)),
    ((3e37, 4e37), _f(5e37)),
    ((3 * 2.0**80, 4 * 2.0**80), 5 * 2.0**80),
    ((3 * 2.0**-80, 4 * 2.0**-80), 5 * 2.0**-80),
    ((3 * 2.0**-140, 4 * 2.0**-140), 5 * 2.0**-140),
]


def test_special_values_table_is_exact():
    """The finite values wanted above are the correctly rounded float32 results."""
    for name, rows in SPECIAL.items():
        for x, want in rows:
            if math.isfinite(want) and want != 0.0:
                with mpmath.workdps(DPS):
                    assert ulp_error32(want, TRUTH[name](mp(x))) <= 0.5, (name, x, want)


@pytest.mark.parametrize("name", UNARY, ids=lambda n: n.removeprefix("_sf_"))
def test_special_values(name):
    func = _scalar(name)
    xs = np.array([x for x, _ in SPECIAL[name]], dtype=F32)
    looped = _apply(name, xs)
    wrong = [
        (x, func(F32(x)), got, want)
        for (x, want), got in zip(SPECIAL[name], looped.tolist(), strict=True)
        if not (same_value(func(F32(x)), want) and same_value(got, want))
    ]
    assert not wrong, f"{name}: (input, scalar, in the loop, wanted) {wrong}"


def test_special_values_hypot(hypot_loop):
    func = hypot_loop.py_func.__globals__["_sf_hypot_f32"]
    x, y = (np.array(c, dtype=F32) for c in zip(*(a for a, _ in SPECIAL_HYPOT), strict=True))
    looped = np.empty_like(x)
    hypot_loop(x, y, looped)
    wrong = [
        (args, func(F32(args[0]), F32(args[1])), got, want)
        for (args, want), got in zip(SPECIAL_HYPOT, looped.tolist(), strict=True)
        if not (same_value(func(F32(args[0]), F32(args[1])), want) and same_value(got, want))
    ]
    assert not wrong, f"_sf_hypot_f32: (inputs, scalar, in the loop, wanted) {wrong}"


def test_hypot_is_symmetric_and_even(hypot_loop):
    x, y = hypot_points()
    outs = []
    for a, b in [(x, y), (y, x), (-x, y), (x, -y)]:
        out = np.empty_like(a)
        hypot_loop(a, b, out)
        outs.append(out)
    for out in outs[1:]:
        np.testing.assert_array_equal(out, outs[0])


# ---------------------------------------------------------------------------------------
# float32 throughout, vectorization, sources
# ---------------------------------------------------------------------------------------


def _check_float32_vector_ir(ir: str) -> None:
    # at least 4 float32 lanes: 8 with AVX2, 16 on Zen 4/5 (test_vectorized checks both)
    assert vector_lanes(ir, "float") >= MIN_LANES, "not vectorized in float32"
    assert "fpext" not in ir, "float32 widened to float64"
    assert not re.search(r"<\d+ x double>", ir)
    assert not re.search(r"call [^\n]*@\S*_sf_", ir), "a helper was not inlined"


@pytest.mark.parametrize("name", UNARY, ids=lambda n: n.removeprefix("_sf_"))
def test_loop_is_vectorized_in_float32(name):
    loop, vectorized = vector_loop(name, dtype="float32")
    assert vectorized
    _check_float32_vector_ir(loop.inspect_llvm(loop.signatures[0]))


def test_hypot_loop_is_vectorized_in_float32(hypot_loop):
    _check_float32_vector_ir(hypot_loop.inspect_llvm(hypot_loop.signatures[0]))


@pytest.mark.parametrize("name", PUBLIC, ids=lambda n: n.removeprefix("_sf_"))
def test_returns_float32(name, hypot_loop):
    if name == "_sf_hypot_f32":
        func = hypot_loop.py_func.__globals__[name]
        args = (numba.float32, numba.float32)
        func(F32(3.0), F32(4.0))
    else:
        func = _scalar(name)
        args = (numba.float32,)
        func(F32(0.5))
    assert func.overloads[args].signature.return_type == numba.float32


def test_every_public_function_is_covered():
    assert set(vm_log32.HELPERS) == {*PUBLIC, "_sf_log_core_f32"}
    assert set(TRUTH) == set(SPECIAL) == set(HARD) == set(UNARY)
    assert set(MAX_ULP) == set(PUBLIC)


#: Names a helper body may use besides its own locals and the helpers it requires.
ALLOWED_GLOBALS = {"numba", "math", "np", "abs", "min", "max"}
#: The only `math` names allowed: they lower to LLVM intrinsics, compares or constants.
VECTOR_MATH = {"sqrt", "copysign", "floor", "ceil", "trunc", "isnan", "isinf", "inf", "nan"}


def _is_float32_constant(node: ast.AST) -> bool:
    """``np.float32(<number>)``, ``np.float32(math.inf)`` and the like: folded by LLVM."""
    return (
        isinstance(node, ast.Call)
        and ast.unparse(node.func) == "np.float32"
        and len(node.args) == 1
        and not node.keywords
        and _is_constant(node.args[0])
    )


def _is_constant(node: ast.AST) -> bool:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        node = node.operand
    return isinstance(node, ast.Constant) or ast.unparse(node) in {"math.inf", "math.nan"}


@pytest.mark.parametrize("name", sorted(vm_log32.HELPERS), ids=lambda n: n.removeprefix("_sf_"))
def test_source_is_one_self_contained_branch_free_function(name):
    helper = vm_log32.HELPERS[name]
    assert HELPERS[name] is helper
    assert helper.source.startswith(f"{NJIT_LINE}def {name}(")
    assert helper.source.endswith("\n")
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
    body = [n for stmt in func.body[1:] for n in ast.walk(stmt)]
    # float32 only: every attribute is math.<vector op> or np.float32, every np.float32 call
    # wraps a constant, and no float literal stands outside one (it would be a float64).
    wrapped = {id(c.args[0]) for c in body if _is_float32_constant(c)}
    wrapped |= {id(n) for c in body if _is_float32_constant(c) for n in ast.walk(c.args[0])}
    for node in body:
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            allowed = VECTOR_MATH if node.value.id == "math" else {"float32"}
            assert node.value.id in {"math", "np"} and node.attr in allowed, ast.unparse(node)
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "np.float32":
            assert _is_float32_constant(node), ast.unparse(node)
        if isinstance(node, ast.Constant) and isinstance(node.value, float):
            assert id(node) in wrapped, f"float64 literal {node.value!r}"
        if isinstance(node, ast.Attribute) and ast.unparse(node) in {"math.inf", "math.nan"}:
            assert id(node) in wrapped, f"float64 constant {ast.unparse(node)}"
    # Straight-line code: assignments, one return at the end, no if, loop, and/or.
    assert isinstance(func.body[-1], ast.Return)
    assert all(isinstance(s, (ast.Assign, ast.AugAssign)) for s in func.body[1:-1])
    banned = (ast.If, ast.For, ast.While, ast.Try, ast.With, ast.Lambda, ast.BoolOp)
    assert not [n for n in body if isinstance(n, banned)]
    assert not [n for n in body if isinstance(n, ast.comprehension)]
