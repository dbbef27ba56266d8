"""Accuracy, special values and vectorization of `symflow.codegen.vm_log`.

Each function is compiled once per session as a generated kernel would contain it, inside
the elementwise loop a kernel runs (so the accuracy measured is that of the vectorized code),
and evaluated at a few thousand points over its whole float64 domain: a fixed-seed sample of
log-uniform magnitudes with random mantissas, both signs, uniform samples where the shape
matters, plus hand-picked hard cases (thresholds of the method, the worst inputs found when
the bounds in the docstrings were measured at 200,000+ points). Truth is mpmath at 50
digits; errors are in ULPs of the correctly rounded truth (<= 0.5 when correctly rounded).
"""

from __future__ import annotations

import ast
import math
import re

import mpmath
import numpy as np
import pytest
from vm_support import PRELUDE, same_value, ulp_error, vector_loop

from symflow.codegen import vm_log
from symflow.codegen.mathlib import HELPERS, helper_sources

mp = mpmath.mpf
DPS = 50
TINY = 5e-324
MIN_NORMAL = 2.2250738585072014e-308
HUGE = 1.7976931348623157e308
INF, NAN = math.inf, math.nan
UNARY = ["_sf_log", "_sf_log1p", "_sf_asinh", "_sf_acosh", "_sf_atanh", "_sf_loghypot"]
PUBLIC = [*UNARY, "_sf_hypot"]


def _up(x: float, n: int = 1) -> float:
    for _ in range(n):
        x = math.nextafter(x, INF)
    return x


def _down(x: float, n: int = 1) -> float:
    for _ in range(n):
        x = math.nextafter(x, -INF)
    return x


def _around(x: float) -> list[float]:
    return [_down(x), x, _up(x)]


# ---------------------------------------------------------------------------------------
# Points and truth
# ---------------------------------------------------------------------------------------


def _magnitudes(rng, n: int, lo: float, hi: float) -> np.ndarray:
    """n values 2^U(lo, hi)·(1 + U(0, 1)): log-uniform exponents, random mantissas."""
    x = np.exp2(rng.uniform(lo, hi, n)) * (1.0 + rng.uniform(0.0, 1.0, n))
    return x[np.isfinite(x)]


def _signed(rng, x: np.ndarray) -> np.ndarray:
    return x * rng.choice([-1.0, 1.0], x.shape[0])


SQRT_HALF = 0.7071067811865476
HARD = {
    "_sf_log": [TINY, 2 * TINY, _down(MIN_NORMAL), MIN_NORMAL, HUGE, 1.0, _up(1.0), _down(1.0)]
    + _around(SQRT_HALF)
    + _around(2 * SQRT_HALF)
    + [2.0, 0.5, 1e-300, 1e300, 1.4072259806052403, 0.6313154550245027],
    "_sf_log1p": [TINY, -TINY, MIN_NORMAL, 2.0**-54, -(2.0**-54), 2.0**-53, 1.1e-16, -1.1e-16]
    + [7.02166793383681e-16, 2.0**-52, -(2.0**-52), 1e-300, -1e-300, _up(-1.0), -0.5, -0.75]
    + _around(SQRT_HALF - 1.0)
    + _around(2 * SQRT_HALF - 1.0)
    + [2.0**53, 2.0**53 + 2.0, _down(2.0**53), 1e300, HUGE, 0.40872953871319045]
    + [0.404718570288199, 1.7178709377659298],
    "_sf_asinh": _around(2.0)
    + _around(1e150)
    + _around(1e-100)
    + [TINY, -TINY, MIN_NORMAL, 1e-8, 1e-16, HUGE, -HUGE, 1.1074783823121201, 1.15122372027359]
    + [0.46291765410907093, -0.46291765410907093, -9.412155803230543e-08],
    "_sf_acosh": [1.0, _up(1.0), _up(1.0, 2), 1.0 + 2.0**-26, 1.0 + 1e-10, 1.5, 2.0, HUGE]
    + _around(1e150)
    + [1.057028675635895, 1.0601852511102279, 1.5344704332079906, 2 * SQRT_HALF + 1e-3],
    "_sf_atanh": [TINY, -TINY, MIN_NORMAL, 5.931214724919434e-17, -5.931214724919434e-17]
    + _around(1e-100)
    + _around(0.5)
    + [_down(1.0), -_down(1.0), _down(1.0, 2), 1.0 - 1e-10, -0.17132306728669366]
    + [0.17106069159318937, -1.705757449485508e-08],
    "_sf_loghypot": _around(1e150)
    + _around(1e-100)
    + _around(1e-8)
    + [TINY, -TINY, MIN_NORMAL, 1.5e-154, 1e-16, 1.0, -1.0, 0.5, 2.0, 1e154, HUGE, -HUGE],
}


def points(name: str) -> np.ndarray:
    """The test points of unary function `name` (fixed seed), hard cases first."""
    rng = np.random.default_rng(20240611 + UNARY.index(name))
    if name == "_sf_log":
        parts = [_magnitudes(rng, 1500, -1075, 1023), rng.uniform(0.5, 2.0, 500)]
        parts.append(1.0 + rng.uniform(-1e-3, 1e-3, 300))
    elif name == "_sf_log1p":
        parts = [_magnitudes(rng, 800, -1075, 1023), -_magnitudes(rng, 400, -1075, -1)]
        parts += [-1.0 + _magnitudes(rng, 300, -53, -2), rng.uniform(-0.35, 0.5, 400)]
        parts.append(_signed(rng, _magnitudes(rng, 400, -60, -20)))
    elif name == "_sf_asinh":
        parts = [_signed(rng, _magnitudes(rng, 1500, -1075, 1023))]
        parts += [rng.uniform(-4.0, 4.0, 600), _signed(rng, _magnitudes(rng, 400, -30, 30))]
    elif name == "_sf_loghypot":
        parts = [_signed(rng, _magnitudes(rng, 1500, -1075, 1023))]
        parts += [rng.uniform(-4.0, 4.0, 600), _signed(rng, _magnitudes(rng, 400, -30, 30))]
    elif name == "_sf_acosh":
        parts = [1.0 + _magnitudes(rng, 800, -53, 4), _magnitudes(rng, 800, 0, 1023)]
        parts.append(rng.uniform(1.0, 4.0, 600))
    else:
        parts = [_signed(rng, _magnitudes(rng, 1000, -1075, -1))]
        parts += [_signed(rng, 1.0 - _magnitudes(rng, 600, -54, -2))]
        parts += [rng.uniform(-1.0, 1.0, 600), _signed(rng, _magnitudes(rng, 300, -30, -1))]
    x = np.concatenate([np.array(HARD[name]), *parts])
    lo, hi = {"_sf_log": (0.0, HUGE), "_sf_log1p": (_up(-1.0), HUGE)}.get(name, (-HUGE, HUGE))
    lo, hi = {"_sf_acosh": (1.0, HUGE), "_sf_atanh": (_up(-1.0), _down(1.0))}.get(name, (lo, hi))
    return x[(x >= lo) & (x <= hi)]


def hypot_points() -> tuple[np.ndarray, np.ndarray]:
    """(x, y) pairs: independent magnitudes, pairs a few binades apart, hard cases."""
    rng = np.random.default_rng(20240617)
    x = _signed(rng, _magnitudes(rng, 1500, -1075, 1023))
    y = _signed(rng, _magnitudes(rng, x.shape[0], -1075, 1023))
    x2 = _signed(rng, _magnitudes(rng, 1500, -1075, 1023))
    with np.errstate(over="ignore"):
        y2 = _signed(rng, x2 * np.exp2(rng.uniform(-64.0, 64.0, x2.shape[0])))
    hard = [(3.0, 4.0), (HUGE, HUGE / 2), (TINY, TINY), (TINY, 3 * TINY), (MIN_NORMAL, TINY)]
    hard += [(2.0**400, 2.0**400), (_up(2.0**400), 1.0), (2.0**-400, _down(2.0**-400))]
    hard += [(1.0, 2.0**-60), (1.0, _up(2.0**-60)), (1.0, 2.0**-27), (1e300, 1e-300)]
    hard += [(8.203860936292643e-309, 5.26131247e-316), (1.0, 1.0), (HUGE, 1.0)]
    hx, hy = np.array(hard).T
    x, y = np.concatenate([hx, x, x2]), np.concatenate([hy, y, y2])
    keep = np.isfinite(y)
    return x[keep], y[keep]


TRUTH = {
    "_sf_log": mpmath.log,
    "_sf_log1p": mpmath.log1p,
    "_sf_asinh": mpmath.asinh,
    "_sf_acosh": mpmath.acosh,
    "_sf_atanh": mpmath.atanh,
    "_sf_loghypot": lambda x: mpmath.log1p(x * x) / 2,
}

#: The measured worst errors (docstrings), rounded up to the next half ULP.
MAX_ULP = {
    "_sf_log": 1.0,  # 0.79
    "_sf_log1p": 1.0,  # 0.79
    "_sf_asinh": 1.0,  # 0.76
    "_sf_acosh": 1.0,  # 0.78
    "_sf_atanh": 1.0,  # 0.79
    "_sf_loghypot": 1.0,  # 0.98
    "_sf_hypot": 1.0,  # 0.67
}


# ---------------------------------------------------------------------------------------
# Compiled loops
# ---------------------------------------------------------------------------------------

_HYPOT_LOOP = """

@numba.njit(cache=True, error_model="numpy")
def _loop2(x, y, out):
    for i in range(x.shape[0]):
        out[i] = _sf_hypot(x[i], y[i])
"""


@pytest.fixture(scope="session")
def hypot_loop(tmp_path_factory):
    """`_loop2(x, y, out)` applying `_sf_hypot` elementwise (vm_support's loops are unary)."""
    text = PRELUDE + helper_sources(["_sf_hypot"]) + _HYPOT_LOOP
    path = tmp_path_factory.mktemp("vm_log") / "hypot_loop.py"
    path.write_text(text)  # Numba's cache=True needs a real source file
    namespace: dict = {}
    exec(compile(text, str(path), "exec"), namespace)
    loop = namespace["_loop2"]
    x = np.ones(8)
    loop(x, x, np.empty_like(x))
    return loop


def _scalar(name: str):
    """The helper as compiled in `vector_loop(name)`'s module (saves compiling it again)."""
    return vector_loop(name)[0].py_func.__globals__[name]


def _apply(name: str, x: np.ndarray) -> np.ndarray:
    loop, _ = vector_loop(name)
    out = np.empty_like(x)
    loop(x, out)
    return out


# ---------------------------------------------------------------------------------------
# Accuracy
# ---------------------------------------------------------------------------------------


def _worst(rows) -> str:
    err, args, got, truth = max(rows, key=lambda r: r[0])
    return f"({', '.join(map(repr, args))}) = {got!r}, truth {mpmath.nstr(truth, 20)}: {err:.3f}"


@pytest.mark.parametrize("name", UNARY, ids=lambda n: n.removeprefix("_sf_"))
def test_accuracy(name):
    x = points(name)
    got = _apply(name, x)
    rows = []
    with mpmath.workdps(DPS):
        for xi, gi in zip(x.tolist(), got.tolist(), strict=True):
            truth = TRUTH[name](mp(xi))
            rows.append((ulp_error(gi, truth), (xi,), gi, truth))
    assert len(rows) >= 2000
    assert max(r[0] for r in rows) <= MAX_ULP[name], f"{name}{_worst(rows)} ULP"


def test_accuracy_hypot(hypot_loop):
    x, y = hypot_points()
    got = np.empty_like(x)
    hypot_loop(x, y, got)
    rows = []
    with mpmath.workdps(DPS):
        for xi, yi, gi in zip(x.tolist(), y.tolist(), got.tolist(), strict=True):
            truth = mpmath.sqrt(mp(xi) ** 2 + mp(yi) ** 2)
            rows.append((ulp_error(gi, truth), (xi, yi), gi, truth))
    assert len(rows) >= 2000
    assert max(r[0] for r in rows) <= MAX_ULP["_sf_hypot"], f"_sf_hypot{_worst(rows)} ULP"


# ---------------------------------------------------------------------------------------
# Special values: domain ends, infinities, nan, signed zeros
# ---------------------------------------------------------------------------------------

BELOW_ONE = _down(1.0)
LN2 = math.log(2.0)
SPECIAL = {
    "_sf_log": [(0.0, -INF), (-0.0, -INF), (-TINY, NAN), (-1.0, NAN), (-INF, NAN), (INF, INF)]
    + [(NAN, NAN), (1.0, 0.0), (2.0, LN2), (TINY, -744.4400719213812), (HUGE, 709.782712893384)]
    + [(MIN_NORMAL, -708.3964185322641)],
    "_sf_log1p": [(0.0, 0.0), (-0.0, -0.0), (TINY, TINY), (-TINY, -TINY), (-1.0, -INF)]
    + [(_down(-1.0), NAN), (-INF, NAN), (INF, INF), (NAN, NAN), (1e-20, 1e-20), (1.0, LN2)]
    + [(-(2.0**-55), -(2.0**-55)), (HUGE, 709.782712893384)],
    "_sf_asinh": [(0.0, 0.0), (-0.0, -0.0), (TINY, TINY), (-TINY, -TINY), (INF, INF)]
    + [(-INF, -INF), (NAN, NAN), (1e-20, 1e-20), (-1e-20, -1e-20), (HUGE, 710.475860073944)]
    + [(-HUGE, -710.475860073944)],
    "_sf_acosh": [(1.0, 0.0), (BELOW_ONE, NAN), (0.0, NAN), (-1.0, NAN), (-INF, NAN)]
    + [(INF, INF), (NAN, NAN), (HUGE, 710.475860073944), (_up(1.0), 2.1073424255447014e-08)],
    "_sf_atanh": [(0.0, 0.0), (-0.0, -0.0), (TINY, TINY), (-TINY, -TINY), (1.0, INF)]
    + [(-1.0, -INF), (_up(1.0), NAN), (-_up(1.0), NAN), (2.0, NAN), (INF, NAN), (-INF, NAN)]
    + [(NAN, NAN), (1e-20, 1e-20), (BELOW_ONE, 18.714973875118524)],
    "_sf_loghypot": [(0.0, 0.0), (-0.0, 0.0), (TINY, 0.0), (1e-20, 5e-41), (-1e-20, 5e-41)]
    + [(INF, INF), (-INF, INF), (NAN, NAN), (HUGE, 709.782712893384)]
    + [(-HUGE, 709.782712893384), (1.0, LN2 / 2)],
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
    ((1e300, 1e-300), 1e300),
    ((3e200, 4e200), 4.9999999999999995e200),
    ((3 * 2.0**600, 4 * 2.0**600), 5 * 2.0**600),
    ((3 * 2.0**-600, 4 * 2.0**-600), 5 * 2.0**-600),
    ((3e-200, 4e-200), 5e-200),
]


@pytest.mark.parametrize("name", UNARY, ids=lambda n: n.removeprefix("_sf_"))
def test_special_values(name):
    func = _scalar(name)
    xs = np.array([x for x, _ in SPECIAL[name]])
    looped = _apply(name, xs)
    wrong = [
        (x, func(x), got, want)
        for (x, want), got in zip(SPECIAL[name], looped.tolist(), strict=True)
        if not (same_value(func(x), want) and same_value(got, want))
    ]
    assert not wrong, f"{name}: (input, scalar, in the loop, wanted) {wrong}"


def test_special_values_hypot(hypot_loop):
    func = hypot_loop.py_func.__globals__["_sf_hypot"]
    x, y = (np.array(c) for c in zip(*(args for args, _ in SPECIAL_HYPOT), strict=True))
    looped = np.empty_like(x)
    hypot_loop(x, y, looped)
    wrong = [
        (args, func(*args), got, want)
        for (args, want), got in zip(SPECIAL_HYPOT, looped.tolist(), strict=True)
        if not (same_value(func(*args), want) and same_value(got, want))
    ]
    assert not wrong, f"_sf_hypot: (inputs, scalar, in the loop, wanted) {wrong}"


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
# Vectorization, CPython twins, sources
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", UNARY, ids=lambda n: n.removeprefix("_sf_"))
def test_loop_is_vectorized(name):
    loop, vectorized = vector_loop(name)
    assert vectorized
    # Inlined: the loop calls no helper (a call would keep the loop scalar anyway).
    assert not re.search(r"call [^\n]*@\S*_sf_", loop.inspect_llvm(loop.signatures[0]))


def test_hypot_loop_is_vectorized(hypot_loop):
    ir = hypot_loop.inspect_llvm(hypot_loop.signatures[0])
    assert re.search(r"<\d+ x double>", ir)
    assert not re.search(r"call [^\n]*@\S*_sf_", ir)


def _twin_points(name: str) -> list[float]:
    x = points(name)
    specials = [x for x, _ in SPECIAL[name]]
    return specials + HARD[name] + x[:: max(1, x.shape[0] // 60)].tolist()


@pytest.mark.parametrize("name", UNARY, ids=lambda n: n.removeprefix("_sf_"))
def test_cpython_twin_matches_compiled(name):
    """The module-level function, run by CPython with the intrinsics' twins, gives the
    compiled results bit for bit (and raises nothing, at special values included)."""
    compiled = _scalar(name)
    python = getattr(vm_log, name)
    wrong = [
        (x, python(x), compiled(x))
        for x in _twin_points(name)
        if not same_value(python(x), compiled(x))
    ]
    assert not wrong, wrong


def test_cpython_twin_matches_compiled_hypot(hypot_loop):
    compiled = hypot_loop.py_func.__globals__["_sf_hypot"]
    x, y = hypot_points()
    pairs = [args for args, _ in SPECIAL_HYPOT] + list(zip(x[::40], y[::40], strict=True))
    wrong = [
        (a, b, vm_log._sf_hypot(a, b), compiled(a, b))
        for a, b in pairs
        if not same_value(vm_log._sf_hypot(a, b), compiled(a, b))
    ]
    assert not wrong, wrong


def test_every_public_function_is_covered():
    assert set(vm_log.HELPERS) == {*PUBLIC, "_sf_log_core"}
    assert set(TRUTH) == set(SPECIAL) == set(HARD) == set(UNARY)
    assert set(MAX_ULP) == set(PUBLIC)


#: Names a helper body may use besides its own locals and the helpers it requires.
ALLOWED_GLOBALS = {"numba", "math", "np", "abs", "min", "max"}
#: The only `math` functions allowed: they lower to LLVM intrinsics or compares.
VECTOR_MATH = {"sqrt", "copysign", "floor", "ceil", "trunc", "isnan", "isinf", "inf", "nan"}


@pytest.mark.parametrize("name", sorted(vm_log.HELPERS), ids=lambda n: n.removeprefix("_sf_"))
def test_source_is_one_self_contained_branch_free_function(name):
    helper = vm_log.HELPERS[name]
    assert HELPERS[name] is helper
    assert helper.source.startswith(f'@numba.njit(cache=True, error_model="numpy")\ndef {name}(')
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
    body = [n for stmt in func.body for n in ast.walk(stmt)]
    for node in body:
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            assert node.value.id == "math" and node.attr in VECTOR_MATH, ast.unparse(node)
    # Straight-line code: no if, loop or early return (one return, the last statement).
    banned = (ast.If, ast.For, ast.While, ast.Try, ast.With, ast.Lambda, ast.comprehension)
    assert not [n for n in body if isinstance(n, banned)]
    assert [n for n in body if isinstance(n, ast.Return)] == [func.body[-1]]
