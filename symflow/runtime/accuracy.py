"""Accuracy of the emitted float64 kernels against mpmath, extreme tails included.

`accuracy_report(declared, params)` runs the four kernels (forward, inverse and both
log-dets) of a declared bijector on a grid across its domain and codomain and compares
each output with the *declared* forward map evaluated in mpmath. `lambdify_baseline_report`
does the same for `sympy.lambdify` of the derived, unrewritten expressions, which is what
symflow's stabilization stage (`symflow.stabilize`) is measured against.

Points:
    x: `domain_grid` (|x| up to 700 on the real line; 1e-300 to 700 from a finite end of a
    half-line; 1e-300 from a finite end at 0) plus the float64 neighbour of each nonzero
    finite end (the closest a float gets to 1, or to -1).
    y: y = fl(f(x)) for every grid x, plus, for each finite end c of the codomain, the
    float64 neighbour of c (1e-300 and 1e-100 when c = 0; subnormals are not added, as
    the domain grid stops at 1e-300 too). A y that rounded onto an end of the codomain
    (sigmoid(40) = 1.0) or out of it (an underflow to 0 when 0 is an end) is not an
    inverse point: the limit is the right answer there. A nonzero subnormal fl(f(x))
    inside the codomain is a point like any other. Duplicate y values are compared once.

Truth (mpmath; function values at `VALUE_DPS` digits so the declared map's own
cancellations, 1 + erf(x) at x = -30, do not reach the 50 compared digits):
    forward  f(x);  fldj  log|f'(x)|, f' = sympy.diff of the declared map;
    inverse  x* with f(x*) = y exactly (Newton from the grid x, bracketed if needed);
    ildj     -log|f'(x*)|.

Error at a point: |out - truth| / max(|truth|, 1e-300) for forward and inverse (relative,
with an absolute floor at 1e-300), |out - truth| / max(1, |truth|) for the log-dets.
Points whose truth is not finite in float64 (|truth| >= 1.797e308) are left out.

Conditioning: a map can itself be ill-conditioned, and then no float64 input gives a
relatively accurate output. The condition number at each point is the relative one,
|input * d(output)/d(input)| / scale, with the same scale as the error measure:
    forward  |x f'(x)| / max(|f(x)|, 1e-300);   inverse  |y / f'(x*)| / max(|x*|, 1e-300);
    fldj     |x f''(x) / f'(x)| / max(1, |fldj|);
    ildj     |y f''(x*) / f'(x*)**2| / max(1, |ildj|),
with f'' = sympy.diff of the declared map (the exact derivative of the log-det truth,
rather than a numerical one). The floor makes 0/0 at a simple zero harmless (sinh at 0
has condition 0: the error there is absolute), and a root of the inverse away from y = 0
(log at y = 1) gets a condition number near 1e300, as it has in relative terms. A point
is ill-conditioned when its condition number is above `ILL_CONDITIONED` (1e3), and its
bound scales with it:

    bound(point) = TOLERANCE * max(1, cond / ILL_CONDITIONED),  TOLERANCE = 1e-12.

A kernel passes when every point meets its bound and no output is non-finite where the
truth is finite in float64. Ill-conditioned points are listed with their errors.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import mpmath
import numpy as np
import sympy as sp

from symflow.errors import ConstraintError
from symflow.symbolic.derive import derivative
from symflow.symbolic.numeric import DPS, domain_grid, mp_function, mp_real

__all__ = [
    "ILL_CONDITIONED",
    "KERNELS",
    "TOLERANCE",
    "VALUE_DPS",
    "AccuracyReport",
    "KernelAccuracy",
    "PointError",
    "accuracy_report",
    "lambdify_baseline_report",
]

#: Relative error allowed at a well-conditioned point (about 4500 float64 roundings).
TOLERANCE = 1e-12
#: Condition number above which a point counts as ill-conditioned and its bound scales.
ILL_CONDITIONED = 1e3
#: Digits for function values, at least: 400 resolve f(x) for every float64 grid point down
#: to 1e-300, where the declared map cancels (exp(x) - 1 at x = -1e-100); `_settled` goes
#: higher where a value has not settled by then.
VALUE_DPS = 400
#: The four kernels, by the names the generated module and TFP use.
KERNELS = ("forward", "inverse", "forward_log_det_jacobian", "inverse_log_det_jacobian")

_FLOOR = 1e-300
#: Newton stops when a step is this small, relative to x or absolutely.
_REL_STEP = mpmath.mpf(10) ** -(DPS + 10)
_ABS_STEP = mpmath.mpf(10) ** -(DPS + 300)
#: Working precisions for the truth, tried in turn until two agree (see `_settled`).
_LADDER = (VALUE_DPS, VALUE_DPS + 100, 2 * VALUE_DPS + 200, 4 * VALUE_DPS + 400)
#: Absolute floors of agreement for (f, f', f''): 0 for f', whose logarithm is compared.
_VALUE_FLOORS = (_ABS_STEP, 0, _ABS_STEP)
_MAX_FLOAT = 1.7976931348623157e308
#: How many ill-conditioned points `str()` shows per kernel (all are in `.rows`).
_SHOWN = 6


@dataclass(frozen=True)
class PointError:
    """One compared point: the input, the output, the truth rounded to float64, and how far."""

    point: float
    output: float
    truth: float
    error: float
    condition: float
    bound: float

    @property
    def ratio(self) -> float:
        """error / bound: above 1 fails (inf for a non-finite output)."""
        if not math.isfinite(self.output):
            return math.inf
        return self.error / self.bound if self.bound > 0 else math.inf

    def describe(self, arg: str) -> str:
        cond = f"{self.condition:.3g}" if math.isfinite(self.condition) else "inf"
        return (
            f"{arg}={self.point:.17g}: got {self.output:.17g}, truth {self.truth:.17g}, "
            f"err {self.error:.2g} (bound {self.bound:.2g}, cond {cond})"
        )


@dataclass(frozen=True)
class KernelAccuracy:
    """The accuracy of one kernel over its grid.

    Attributes:
        kernel: 'forward', 'inverse', 'forward_log_det_jacobian' or
            'inverse_log_det_jacobian'.
        compared: every compared point (those whose truth is finite in float64), in
            increasing order of the input.
    """

    kernel: str
    compared: tuple[PointError, ...]

    @property
    def points(self) -> int:
        return len(self.compared)

    @property
    def max_error(self) -> float:
        """The largest error over well-conditioned points with a finite output."""
        well = [
            p.error
            for p in self.compared
            if p.condition <= ILL_CONDITIONED and math.isfinite(p.output)
        ]
        return max(well, default=0.0)

    @property
    def non_finite(self) -> int:
        """Outputs that are inf or nan where the truth is finite in float64."""
        return sum(not math.isfinite(p.output) for p in self.compared)

    @property
    def worst(self) -> PointError | None:
        """The point with the largest error / bound (a non-finite output first)."""
        return max(self.compared, key=lambda p: (p.ratio, p.error), default=None)

    @property
    def ill_conditioned(self) -> tuple[PointError, ...]:
        """Every point with condition number above `ILL_CONDITIONED`."""
        return tuple(p for p in self.compared if not p.condition <= ILL_CONDITIONED)

    @property
    def failures(self) -> tuple[PointError, ...]:
        """Every point above its bound or with a non-finite output."""
        return tuple(p for p in self.compared if not p.ratio <= 1.0)

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def input_name(self) -> str:
        return "y" if self.kernel.startswith("inverse") else "x"


@dataclass(frozen=True)
class AccuracyReport:
    """Accuracy of one bound bijector's four kernels; `str()` gives a readable table."""

    name: str
    params: dict
    method: str
    rows: tuple[KernelAccuracy, ...]

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.rows)

    def row(self, kernel: str) -> KernelAccuracy:
        """The row of one kernel ('forward', 'inverse', ...)."""
        for r in self.rows:
            if r.kernel == kernel:
                return r
        raise KeyError(f"{self.name}: no kernel {kernel!r}; kernels are {KERNELS}.")

    def __str__(self) -> str:
        bound = f"{TOLERANCE:g} * max(1, cond/{ILL_CONDITIONED:g})"
        head = (
            "kernel",
            "points",
            "max rel err",
            "non-finite",
            "worst point",
            "ill-cond",
            "result",
        )
        table = [head]
        for r in self.rows:
            worst = "-"
            if r.worst is not None:
                w = r.worst
                worst = f"{r.input_name}={w.point:.6g}: {w.error:.2g} / {w.bound:.2g}"
            table.append(
                (
                    r.kernel,
                    str(r.points),
                    f"{r.max_error:.2g}",
                    str(r.non_finite),
                    worst,
                    str(len(r.ill_conditioned)),
                    "pass" if r.passed else "FAIL",
                )
            )
        widths = [max(len(row[k]) for row in table) for k in range(len(head))]
        lines = [
            f"Accuracy of {self.name}{_params_text(self.params)}: {self.method}",
            f"(bound per point: {bound}; max rel err over cond <= {ILL_CONDITIONED:g}; "
            "worst point: error / bound)",
        ]
        lines += [
            "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
            for row in table
        ]
        for r in self.rows:
            listed = [*r.failures, *(p for p in r.ill_conditioned if p not in r.failures)]
            if not listed:
                continue
            lines.append(
                f"{r.kernel}: {len(r.failures)} failing, {len(r.ill_conditioned)} ill-conditioned"
            )
            for p in listed[:_SHOWN]:
                tag = "FAIL" if p in r.failures else "    "
                lines.append(f"  {tag} {p.describe(r.input_name)}")
            if len(listed) > _SHOWN:
                lines.append(f"  ... and {len(listed) - _SHOWN} more")
        lines.append("PASSED" if self.passed else "FAILED")
        return "\n".join(lines)


def accuracy_report(declared, params: dict | None = None) -> AccuracyReport:
    """Measures the four compiled float64 kernels of `declared` against mpmath.

    Args:
        declared: a `DeclaredBijector` (compiled on first use, or loaded from the cache).
        params: parameter values by name; missing ones take the declared default, else the
            first representative of the parameter's constraint.

    Returns:
        An `AccuracyReport` with one row per kernel; `.passed` says whether every point is
        within its bound (see the module docstring).

    Raises:
        ConstraintError: for an unknown, out-of-constraint or non-scalar parameter value.

    Example:
        >>> from symflow.bijectors import Softplus
        >>> report = accuracy_report(Softplus, {"hinge_softness": 0.7})  # doctest: +SKIP
        >>> report.passed, report.row("inverse").non_finite              # doctest: +SKIP
        (True, 0)
    """
    params = _resolve_params(declared, params)
    module = declared(**params).module
    args = [np.array([float(params[p])]) for p in module.PARAMETERS]
    table = _truth_table(declared, tuple(sorted(params.items())))

    def run(kernel: str, points: Sequence[float]) -> np.ndarray:
        arr = np.array(points, dtype=np.float64)
        out = np.empty((1, arr.shape[0]), dtype=np.float64)
        # The batch kernel itself, not the bound bijector: that one raises a DomainError
        # when a kernel flags an input, and the point here is to see every output.
        getattr(module, kernel)(arr, *args, out)
        return out[0]

    return _report(declared.name, params, "symflow float64 kernels vs mpmath", table, run)


def lambdify_baseline_report(declared, params: dict | None = None) -> AccuracyReport:
    """The same measurement for `sympy.lambdify(..., modules="numpy")` of the derived,
    unrewritten expressions: `forward_expr`, `inverse_expr` and both log-det expressions.

    This is what a user gets without symflow's rewrite stage. erfinv and LambertW are not
    in numpy: scipy.special provides them when installed, else mpmath at 15 digits (an
    accurate evaluation of the function itself, so the error measured is the expression's).

    Raises:
        ConstraintError: as `accuracy_report` does.
    """
    params = _resolve_params(declared, params)
    table = _truth_table(declared, tuple(sorted(params.items())))
    spec = declared.spec
    pvals = [float(params[p]) for p in spec.parameter_names]
    y = declared.output_symbol
    exprs = {
        "forward": (spec.x, declared.forward_expr),
        "inverse": (y, declared.inverse_expr),
        "forward_log_det_jacobian": (spec.x, declared.forward_log_det_jacobian_expr),
        "inverse_log_det_jacobian": (y, declared.inverse_log_det_jacobian_expr),
    }
    modules, special = _numpy_modules()

    def run(kernel: str, points: Sequence[float]) -> np.ndarray:
        var, expr = exprs[kernel]
        fn = sp.lambdify([var, *spec.parameter_symbols], expr, modules=modules)
        arr = np.array(points, dtype=np.float64)
        with np.errstate(all="ignore"):
            out = np.asarray(fn(arr, *pvals))
        if np.iscomplexobj(out):
            out = np.where(out.imag == 0, out.real, np.nan)
        return np.broadcast_to(out.astype(np.float64), arr.shape)

    method = f"sympy.lambdify(numpy{special}) of the derived expressions vs mpmath"
    return _report(declared.name, params, method, table, run)


# -- measurement ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Sample:
    point: float
    truth: mpmath.mpf
    condition: float


def _report(name, params, method, table, run: Callable) -> AccuracyReport:
    rows = []
    for kernel in KERNELS:
        samples = table[kernel]
        outputs = run(kernel, [s.point for s in samples]) if samples else []
        rows.append(_measure(kernel, samples, outputs, log_det=kernel.endswith("jacobian")))
    return AccuracyReport(name, dict(params), method, tuple(rows))


def _measure(kernel, samples, outputs, *, log_det: bool) -> KernelAccuracy:
    compared: list[PointError] = []
    for s, out in zip(samples, outputs, strict=True):
        truth = float(s.truth)
        if not math.isfinite(truth):
            continue  # the truth overflows float64: inf is as right as any finite value
        out = float(out)
        bound = TOLERANCE * max(1.0, s.condition / ILL_CONDITIONED)
        if math.isfinite(out):
            with mpmath.workdps(DPS):
                scale = max(mpmath.mpf(1), abs(s.truth)) if log_det else max(abs(s.truth), _FLOOR)
                error = float(abs(mpmath.mpf(out) - s.truth) / scale)
        else:
            error = math.inf
        compared.append(PointError(s.point, out, truth, error, s.condition, bound))
    return KernelAccuracy(kernel, tuple(compared))


def _resolve_params(declared, params: dict | None) -> dict:
    """Parameter values by name (defaults filled in), validated as binding validates them."""
    given = dict(params or {})
    resolved = {}
    for p in declared.spec.parameters:
        if p.name in given:
            resolved[p.name] = given.pop(p.name)
        elif p.default is not None:
            resolved[p.name] = p.default
        else:
            resolved[p.name] = p.constraint.representatives()[0]
    # Unknown names go through to binding, which raises a ConstraintError naming them.
    resolved.update(given)
    declared(**resolved)
    for name, value in resolved.items():
        if np.ndim(value) != 0:
            raise ConstraintError(
                f"{declared.name}: the accuracy report takes one value per parameter; got "
                f"`{name}` of shape {np.shape(value)}. Pass a scalar, and call it once per "
                "parameter set."
            )
    return {name: float(value) for name, value in resolved.items()}


def _params_text(params: dict) -> str:
    if not params:
        return ""
    return "(" + ", ".join(f"{k}={float(v):g}" for k, v in params.items()) + ")"


def _numpy_modules() -> tuple[list, str]:
    """lambdify modules for numpy, with the special functions numpy lacks, and a note."""
    try:
        from scipy import special
    except ImportError:
        # math.erf and math.erfc are float64 libm functions, as scipy's are; erfinv and
        # LambertW have no libm counterpart, so mpmath evaluates them at float64 precision.
        extra = {
            "erf": np.vectorize(math.erf, otypes=[np.float64]),
            "erfc": np.vectorize(math.erfc, otypes=[np.float64]),
            "erfinv": _mp15(mpmath.erfinv),
            "LambertW": _mp15(mpmath.lambertw),
        }
        return [extra, "numpy"], "; erfinv, LambertW by mpmath at 15 digits"
    extra = {
        "erf": special.erf,
        "erfc": special.erfc,
        "erfinv": special.erfinv,
        "LambertW": lambda v: special.lambertw(v).real,
    }
    return [extra, "numpy"], "; erf, erfinv, LambertW from scipy.special"


def _mp15(fn: Callable) -> Callable:
    def scalar(v: float) -> float:
        with mpmath.workdps(15):
            try:
                return float(mpmath.re(fn(v)))
            except (ValueError, ZeroDivisionError, OverflowError):
                return math.nan

    return np.vectorize(scalar, otypes=[np.float64])


# -- truth ------------------------------------------------------------------------------


class _Map:
    """The declared map and its first two derivatives in mpmath, at fixed parameters."""

    def __init__(self, declared, params: dict) -> None:
        spec = declared.spec
        args = [spec.x, *spec.parameter_symbols]
        d1 = derivative(spec.forward_expr, spec.x)
        # Away from a kink (Abs, Piecewise) the delta terms of f'' vanish; the kink itself
        # is never a grid point's neighbourhood that matters for a condition estimate.
        d2 = derivative(d1, spec.x)
        self._f, self._d1 = mp_function(args, spec.forward_expr), mp_function(args, d1)
        self._d2 = None if d2.has(sp.Derivative) else mp_function(args, d2)
        self._pv = [mpmath.mpf(float(params[p])) for p in spec.parameter_names]
        self.lo = spec.domain.lo_float
        self.hi = spec.domain.hi_float

    def _call(self, fn, x):
        try:
            return mp_real(fn(x, *self._pv))
        except (ZeroDivisionError, ValueError, OverflowError, TypeError):
            return None

    def f(self, x):
        return self._call(self._f, x)

    def d1(self, x):
        return self._call(self._d1, x)

    def d2(self, x):
        if self._d2 is not None:
            return self._call(self._d2, x)
        # f'' did not come out in closed form: differentiate f' numerically instead.
        try:
            return mp_real(mpmath.diff(lambda t: self._d1(t, *self._pv), x))
        except (ZeroDivisionError, ValueError, OverflowError, TypeError):
            return None

    def inside(self, x) -> bool:
        return self.lo < x < self.hi


@functools.lru_cache(maxsize=64)
def _truth_table(declared, key: tuple) -> dict[str, tuple[_Sample, ...]]:
    """Samples (point, truth, condition) per kernel, for one bijector and parameter set."""
    params = dict(key)
    fmap = _Map(declared, params)
    lo, hi = _codomain(declared, params)
    table: dict[str, list[_Sample]] = {k: [] for k in KERNELS}
    images: list[tuple[mpmath.mpf, mpmath.mpf]] = []  # (x, f(x)) for bracketing roots
    inverse_points: dict[float, float | None] = {}
    for x0 in _domain_points(declared.spec.domain):
        xm = mpmath.mpf(x0)
        values = _settled(lambda _, xm=xm: (fmap.f(xm), fmap.d1(xm), fmap.d2(xm)), _VALUE_FLOORS)
        if values is None or values[0] is None or not values[1]:
            continue
        y, d, dd = values
        with mpmath.workdps(VALUE_DPS):
            images.append((xm, y))
            table["forward"].append(_Sample(x0, y, _float(abs(xm * d) / max(abs(y), _FLOOR))))
            ldj = mpmath.log(abs(d))
            cond = math.inf if dd is None else _float(abs(xm * dd / d) / max(1, abs(ldj)))
            table["forward_log_det_jacobian"].append(_Sample(x0, ldj, cond))
            yf = float(y) if abs(y) < _MAX_FLOAT else math.inf
        if lo < yf < hi:
            inverse_points.setdefault(yf, x0)
    for yf in _codomain_end_points(lo, hi):
        inverse_points.setdefault(yf, None)
    for yf, x0 in sorted(inverse_points.items()):
        ym = mpmath.mpf(yf)
        root = _settled(
            lambda prev, ym=ym, x0=x0: (_root(fmap, ym, x0, images, prev),), (_ABS_STEP,)
        )
        if root is None or root[0] is None:
            continue
        x = root[0]
        values = _settled(lambda _, x=x: (fmap.d1(x), fmap.d2(x)), _VALUE_FLOORS[1:])
        if values is None or not values[0]:
            continue
        d, dd = values
        with mpmath.workdps(VALUE_DPS):
            table["inverse"].append(_Sample(yf, x, _float(abs(ym / d) / max(abs(x), _FLOOR))))
            ildj = -mpmath.log(abs(d))
            cond = math.inf if dd is None else _float(abs(ym * dd / d**2) / max(1, abs(ildj)))
            table["inverse_log_det_jacobian"].append(_Sample(yf, ildj, cond))
    return {k: tuple(v) for k, v in table.items()}


def _settled(compute: Callable, floors: tuple) -> tuple | None:
    """compute(previous) at rising working precision until two successive results agree.

    A declared map can cancel past VALUE_DPS digits: f' = 1 - tanh(x)**2 is 0 at 400 digits
    for x = 700 (it is 4e-608). Each component must agree to DPS + 5 digits relative, or
    within its floor in absolute terms; a component with floor 0 (a derivative, whose log is
    compared) never settles at 0 below the last precision. The last precision's result
    stands as it is.
    """
    prev = None
    for k, dps in enumerate(_LADDER):
        with mpmath.workdps(dps):
            cur = compute(prev)
            if k == len(_LADDER) - 1 or (
                prev is not None
                and all(_close(u, v, fl) for u, v, fl in zip(prev, cur, floors, strict=True))
            ):
                return cur
        prev = cur
    return None


def _close(u, v, floor) -> bool:
    if u is None or v is None:
        return u is None and v is None
    return abs(u - v) <= max(abs(v) * _REL_STEP, floor) and (floor > 0 or v != 0)


def _float(v) -> float:
    v = float(v)
    return v if not math.isnan(v) else math.inf


def _domain_points(domain) -> list[float]:
    pts = set(domain_grid(domain, dense=41))
    # domain_grid comes within 1e-300 of an end at 0; at a nonzero end (1, or -1) the
    # closest float64 is its neighbour, which domain_grid does not always reach.
    for end, inward in ((domain.lo_float, math.inf), (domain.hi_float, -math.inf)):
        if math.isfinite(end) and end != 0:
            pts.add(math.nextafter(end, inward))
    return sorted(p for p in pts if domain.contains(p))


def _codomain(declared, params: dict) -> tuple[float, float]:
    module = declared.compile().module
    if not hasattr(module, "codomain_scalar"):
        return -math.inf, math.inf
    lo, hi = module.codomain_scalar(*(float(params[p]) for p in module.PARAMETERS))
    return float(lo), float(hi)


def _codomain_end_points(lo: float, hi: float) -> list[float]:
    """The float64 values closest to each finite end of the codomain, inside it."""
    pts = []
    for end, sign in ((lo, 1.0), (hi, -1.0)):
        if not math.isfinite(end):
            continue
        if end == 0:
            pts += [sign * 1e-300, sign * 1e-100]
        else:
            pts.append(math.nextafter(end, sign * math.inf))
    return [p for p in pts if lo < p < hi]


def _root(fmap: _Map, y, x0: float | None, images, previous=None) -> mpmath.mpf | None:
    """x with f(x) = y: Newton from a previous root or from x0, else inside a bracket."""
    if previous is not None:
        x = _newton(fmap, y, previous[0])
        if x is not None:
            return x
    if x0 is not None:
        x = _newton(fmap, y, mpmath.mpf(x0))
        if x is not None:
            return x
    bracket = _bracket(fmap, y, images)
    return None if bracket is None else _bracketed_newton(fmap, y, *bracket)


def _converged(step, x) -> bool:
    # 60 digits relative, or far below the 1e-300 absolute floor of the error measure
    # (a root at 0 is approached quadratically but never reached).
    return abs(step) <= abs(x) * _REL_STEP or abs(step) < _ABS_STEP


def _newton(fmap: _Map, y, x):
    for _ in range(100):
        fx, dx = fmap.f(x), fmap.d1(x)
        if fx is None or not dx:
            return None
        step = (fx - y) / dx
        x -= step
        if not fmap.inside(x):
            return None
        if _converged(step, x):
            return x
    return None


def _bracket(fmap: _Map, y, images):
    """Neighbouring points (a, b) with f(a) - y and f(b) - y of opposite signs, if any.

    The grid images come first; past them, points closer to a finite end of the domain
    than float64 can go (x* = 1 - 1e-23 for a y next to 1). Points beyond |x| = 700 are
    not tried: exp(-exp(x)) there costs mpmath thousands of digits of argument reduction.
    """
    found = _bracket_in(y, images)
    if found is not None:
        return found
    pts = list(images)
    for end, inward in ((fmap.lo, 1), (fmap.hi, -1)):
        if math.isfinite(end):
            for k in range(20, VALUE_DPS, 40):
                c = mpmath.mpf(end) + inward * mpmath.mpf(10) ** -k
                v = fmap.f(c)
                if v is not None:
                    pts.append((c, v))
    return _bracket_in(y, sorted(pts, key=lambda p: p[0]))


def _bracket_in(y, pts):
    for (a, fa), (b, fb) in zip(pts, pts[1:], strict=False):
        if (fa - y) * (fb - y) <= 0:
            return a, b, fa - y
    return None


def _bracketed_newton(fmap: _Map, y, a, b, ga):
    """Newton kept inside [a, b]; a bisection step whenever Newton would leave it."""
    x = (a + b) / 2
    for _ in range(2000):
        fx, dx = fmap.f(x), fmap.d1(x)
        if fx is None:
            return None
        g = fx - y
        if g == 0:
            return x
        if (g < 0) == (ga < 0):
            a, ga = x, g
        else:
            b = x
        step = g / dx if dx else None
        nxt = x - step if step is not None else None
        if nxt is None or not (min(a, b) < nxt < max(a, b)):
            nxt = (a + b) / 2
            step = nxt - x
        x = nxt
        if _converged(step, x) or a == b:
            return x
    return None
