"""Verification of a declaration and its derivation against an independent truth.

Input: a `BijectorSpec` (invertibility) or a `Derivation` (round trips, log-dets).
Output: a `CheckReport`. Every numeric reference is mpmath at high precision: function
values at `ROUND_TRIP_DPS` digits for round trips, mpmath's numerical derivative at `DPS`
digits for log-dets. The code's own other path is never the reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import mpmath
import sympy as sp

from symflow.errors import CheckFailedError, NotInvertibleError
from symflow.symbolic.derive import Derivation, derivative, time_limit
from symflow.symbolic.numeric import (
    DPS,
    ROUND_TRIP_DPS,
    domain_grid,
    mp_function,
    mp_real,
    parameter_sets,
)
from symflow.symbolic.spec import BijectorSpec

__all__ = [
    "CheckReport",
    "CheckResult",
    "check_derivation",
    "check_invertible",
    "check_log_det",
    "check_round_trip",
    "float64_inverse_error",
]

#: Relative tolerance of a round trip at ROUND_TRIP_DPS digits, and of a log-det against
#: mpmath's derivative at DPS digits (which carries about DPS/2 correct digits or more).
ROUND_TRIP_TOL = mpmath.mpf(10) ** -40
LOG_DET_TOL = mpmath.mpf(10) ** -20
PROOF_SECONDS = 2.0


@dataclass(frozen=True)
class CheckResult:
    """One verified property: `status` is 'proven' (symbolically) or 'checked' (numerically)."""

    name: str
    status: str
    detail: str


@dataclass(frozen=True)
class CheckReport:
    """Everything that was verified about one bijector, and how."""

    name: str
    results: tuple[CheckResult, ...]

    def __str__(self) -> str:
        width = max(len(r.name) for r in self.results) if self.results else 0
        lines = [f"Checks for {self.name}:"]
        for r in self.results:
            lines.append(f"  {r.name:<{width}}  {r.status:<8} {r.detail}")
        return "\n".join(lines)

    @property
    def proven(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.results if r.status == "proven")

    @property
    def checked_only(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.results if r.status == "checked")

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "results": [[r.name, r.status, r.detail] for r in self.results],
        }

    @classmethod
    def from_dict(cls, data: dict) -> CheckReport:
        return cls(data["name"], tuple(CheckResult(*r) for r in data["results"]))


def _pvals(spec: BijectorSpec, pset: dict) -> list[mpmath.mpf]:
    return [mpmath.mpf(pset[p]) for p in spec.parameter_names]


def _describe(pset: dict) -> str:
    return ", ".join(f"{k}={v:g}" for k, v in pset.items()) or "no parameters"


def _proven_sign(expr: sp.Expr) -> int:
    pieces = [e for e, _ in expr.args] if isinstance(expr, sp.Piecewise) else [expr]
    if all(p.is_positive for p in pieces):
        return 1
    if all(p.is_negative for p in pieces):
        return -1
    return 0


def check_invertible(spec: BijectorSpec) -> CheckResult:
    """f must be strictly monotone on the domain: proven from the sign of f', else dense evidence.

    Raises:
        NotInvertibleError: with a witness: where f turns, and two inputs with one output.
    """
    x = spec.x
    fprime = derivative(spec.forward_expr, x)
    sign = _proven_sign(sp.piecewise_fold(fprime))
    f = mp_function([x, *spec.parameter_symbols], spec.forward_expr)
    fp = mp_function([x, *spec.parameter_symbols], fprime)
    grid = domain_grid(spec.domain, dense=401)
    directions = set()
    for pset in parameter_sets(spec):
        pv = _pvals(spec, pset)
        pts = _values(f, pv, grid, ROUND_TRIP_DPS)
        steps = []
        for a, b in zip(pts, pts[1:], strict=False):
            if a[1] == b[1]:
                # A tie may be rounding (1 - (1 - 1e-750)**2 is 0 at 360 digits): look
                # closer; if it stays, f' decides: Phi(-700) and Phi(-100) tie at any
                # precision, but f' > 0 at both, while a flat piece has f' = 0.
                (_, va), (_, vb) = _values(f, pv, [a[0], b[0]], 3 * ROUND_TRIP_DPS)
                if va == vb:
                    slopes = [v for _, v in _values(fp, pv, [a[0], b[0]], DPS)]
                    signs = {(v > 0) - (v < 0) for v in slopes}
                    if len(slopes) == 2 and len(signs) == 1 and 0 not in signs:
                        steps.append(signs.pop())
                        continue
                a, b = (a[0], va), (b[0], vb)
            steps.append((b[1] > a[1]) - (b[1] < a[1]))
        if 0 in steps or (1 in steps and -1 in steps):
            raise NotInvertibleError(_witness(spec, f, pv, pset, pts))
        directions.add(steps[0] if steps else 0)
    if sign:
        detail = f"f' {'> 0' if sign > 0 else '< 0'} on the domain, proven by SymPy"
        return CheckResult("invertible", "proven", detail)
    which = {1: "increasing", -1: "decreasing"}
    shape = " / ".join(sorted(which.get(d, "flat") for d in directions))
    detail = (
        f"f strictly {shape} at {len(grid)} points x {len(parameter_sets(spec))} parameter "
        f"sets ({ROUND_TRIP_DPS} digits); SymPy could not prove the sign of f' = {fprime}"
    )
    return CheckResult("invertible", "checked", detail)


def _values(f, pv, xs, dps):
    out = []
    with mpmath.workdps(dps):
        for x0 in xs:
            try:
                v = mp_real(f(mpmath.mpf(x0), *[mpmath.mpf(p) for p in pv]))
            except (ZeroDivisionError, ValueError, OverflowError):
                v = None
            if v is not None:
                out.append((x0, v))
    return out


def _witness(spec, f, pv, pset, pts) -> str:
    """A readable counterexample: where f turns, and two inputs that share an output.

    The turn nearest the origin is used, and the pair is taken up to 20 grid steps either
    side of it, so the witness reads f(-1) = f(1) rather than f(-1e-300) = f(1e-300).
    """
    turns = []
    for i in range(1, len(pts) - 1):
        da = pts[i][1] - pts[i - 1][1]
        dc = pts[i + 1][1] - pts[i][1]
        if da * dc <= 0:
            turns.append(i)
    fprime = derivative(spec.forward_expr, spec.x)
    text = (
        f"{spec.name}: the forward map y = {spec.forward_expr} is not invertible on its domain "
        f"{spec.domain.describe()} ({_describe(pset)})"
    )
    advice = (
        " Restrict the domain (e.g. @sf.bijector(domain=sf.Positive)) to a region where f is "
        "monotone, or declare a different map."
    )
    if not turns:
        return text + "." + advice
    i = min(turns, key=lambda k: (abs(pts[k][0]), k))
    xb = pts[i][0]
    text += f": f' = {fprime} changes sign (or vanishes) near x = {xb:.6g}."
    ia, ic = max(i - 20, 0), min(i + 20, len(pts) - 1)
    (xa, fa), (xc, fc) = pts[ia], pts[ic]
    fb = pts[i][1]
    if fa == fb or fc == fb:
        pair = (xa, xb, fb) if fa == fb else (xb, xc, fb)
    else:
        # The output nearer f(xb) is reached again on the other side of the turn.
        target, known, lo, hi = (
            (fc, xc, xa, xb) if abs(fc - fb) < abs(fa - fb) else (fa, xa, xb, xc)
        )
        try:
            with mpmath.workdps(DPS):
                other = mpmath.findroot(lambda t: f(t, *pv) - target, (lo, hi), solver="anderson")
            pair = (float(mp_real(other)), known, target)
        except (ValueError, ZeroDivisionError, TypeError):
            pair = None
    if pair:
        text += f" Witness: f({pair[0]:.6g}) = f({pair[1]:.6g}) = {float(pair[2]):.6g}."
    return text + advice


def _max_error(fn_out, fn_ref, points, dps, floor=1e-300, *, skip_none=False):
    """Worst relative error of fn_out against fn_ref over (pset, pvals, point) triples.

    With `skip_none`, a point where fn_out returns None (nothing to compare) is skipped.
    """
    worst, where = mpmath.mpf(0), None
    with mpmath.workdps(dps):
        for pset, pv, p in points:
            try:
                ref = mp_real(fn_ref(p, pv))
            except (ZeroDivisionError, ValueError, OverflowError):
                continue
            if ref is None or not mpmath.isfinite(ref):
                continue
            try:
                raw = fn_out(p, pv)
                if raw is None and skip_none:
                    continue
                out = mp_real(raw, scale=ref)
            except (ZeroDivisionError, ValueError, OverflowError):
                out = None
            err = mpmath.inf if out is None else abs(out - ref) / max(abs(ref), floor, 1)
            if err > worst:
                worst, where = err, (pset, p)
    return worst, where


def _points(spec: BijectorSpec, dps: int, *, images: bool, dense: int = 25):
    """(pset, pvals, point) over the domain grid, or over its images f(x) if `images`."""
    f = mp_function([spec.x, *spec.parameter_symbols], spec.forward_expr)
    out = []
    with mpmath.workdps(dps):
        for pset in parameter_sets(spec):
            pv = _pvals(spec, pset)
            for x0 in domain_grid(spec.domain, dense=dense):
                xm = mpmath.mpf(x0)
                if not images:
                    out.append((pset, pv, xm))
                    continue
                try:
                    yv = mp_real(f(xm, *pv))
                except (ZeroDivisionError, ValueError, OverflowError):
                    continue
                # An image that rounds to an exact integer is a codomain end (1 - 1e-900).
                if yv is not None and mpmath.isfinite(yv) and yv != mpmath.nint(yv):
                    out.append((pset, pv, yv))
    return out


def _symbolic_zero(expr: sp.Expr) -> bool:
    try:
        with time_limit(PROOF_SECONDS):
            return sp.simplify(expr) == 0
    except (TimeoutError, RecursionError, TypeError, ValueError):
        return False


def check_round_trip(d: Derivation, *, prove: bool = True) -> list[CheckResult]:
    """g(f(x)) == x over the domain grid and f(g(y)) == y over its image, at ROUND_TRIP_DPS."""
    spec = d.spec
    args = [spec.x, *spec.parameter_symbols]
    f = mp_function(args, spec.forward_expr)
    g = mp_function([d.y, *spec.parameter_symbols], d.inverse_expr)
    results = []

    def g_of_f(p, pv):
        # f(x) may round onto a codomain end (tanh(-700) = -1 + 2e-608 is -1 at 360
        # digits): retry at triple precision, and skip a point no precision resolves.
        for dps in (ROUND_TRIP_DPS, 3 * ROUND_TRIP_DPS):
            with mpmath.workdps(dps):
                yv = mp_real(f(p, *pv))
                if yv is None or not mpmath.isfinite(yv):
                    return None
                if yv != mpmath.nint(yv):
                    return g(yv, *pv)
        return None

    for label, points, out, sym in (
        (
            "inverse(forward(x)) == x",
            _points(spec, ROUND_TRIP_DPS, images=False),
            g_of_f,
            d.inverse_expr.xreplace({d.y: spec.forward_expr}) - spec.x,
        ),
        (
            "forward(inverse(y)) == y",
            _points(spec, ROUND_TRIP_DPS, images=True),
            lambda p, pv: f(g(p, *pv), *pv),
            spec.forward_expr.xreplace({spec.x: d.inverse_expr}) - d.y,
        ),
    ):
        worst, where = _max_error(out, lambda p, pv: p, points, ROUND_TRIP_DPS, skip_none=True)
        if worst > ROUND_TRIP_TOL:
            pset, p = where
            raise CheckFailedError(
                f"{spec.name}: {label} fails: relative error {mpmath.nstr(worst, 3)} at "
                f"{mpmath.nstr(p, 17)} ({_describe(pset)}), with inverse x = {d.inverse_expr}. "
                "This is a bug in symflow's derivation; please report it with this message."
            )
        detail = f"max rel. error {mpmath.nstr(worst, 2)} at {len(points)} points, tails included"
        if prove and _symbolic_zero(sym):
            results.append(CheckResult(label, "proven", "SymPy simplifies it to 0; " + detail))
        else:
            results.append(CheckResult(label, "checked", detail))
    return results


def _kinks(expr: sp.Expr, var: sp.Symbol) -> list[float]:
    """Where a Piecewise switches pieces: numeric derivatives are meaningless there."""
    found = []
    for pw in expr.atoms(sp.Piecewise):
        for _, cond in pw.args:
            for rel in cond.atoms(sp.core.relational.Relational):
                try:
                    with time_limit(PROOF_SECONDS):
                        roots = sp.solve(rel.lhs - rel.rhs, var)
                except (NotImplementedError, TimeoutError, TypeError, ValueError):
                    continue
                found.extend(roots)
    return found


def _step(p, domain) -> mpmath.mpf:
    """A differentiation step small against |p| and against the distance to a finite end."""
    scale = max(abs(p), mpmath.mpf(10) ** -300)
    for end in (domain.lo, domain.hi):
        if end.is_finite:
            scale = min(scale, abs(p - mpmath.mpf(float(end))))
    return mpmath.mpf(10) ** (-DPS // 2) * scale


def check_log_det(d: Derivation, *, prove: bool = True) -> list[CheckResult]:
    """fldj(x) against log|f'(x)| and ildj(f(x)) against -log|f'(x)|, f' by mpmath.

    Both references differentiate the declared forward map at the grid point x, which is
    known exactly, so neither depends on the derived inverse being right (the inverse has
    its own round-trip check).
    """
    spec = d.spec
    args = [spec.x, *spec.parameter_symbols]
    f = mp_function(args, spec.forward_expr)
    kinks = [k for k in _kinks(spec.forward_expr, spec.x) if not k.free_symbols]
    points = [
        (pset, pv, p)
        for pset, pv, p in _points(spec, DPS, images=False)
        if all(abs(p - mpmath.mpf(float(k))) > 1e-15 for k in kinks)
    ]

    def log_fprime(p, pv):
        # Near a nonzero codomain end, f = 1 - 1e-192 (Weibull far out): differences of f
        # cancel, so the derivative needs the digits of the round trips as well.
        with mpmath.workdps(DPS):
            yv = mp_real(f(p, *pv))
        end = mpmath.nint(yv) if yv is not None and mpmath.isfinite(yv) else 0
        near_end = end != 0 and abs(yv - end) < mpmath.mpf(10) ** (-DPS // 2) * abs(end)
        with mpmath.workdps(ROUND_TRIP_DPS + 2 * DPS if near_end else 2 * DPS):
            deriv = mpmath.diff(lambda t: f(t, *pv), p, h=_step(p, spec.domain))
        if abs(deriv) < mpmath.mpf(10) ** -400:
            # a zero of f' (a*x**3 at 0): the log-det is -inf there, far below any float's
            # derivative; there is nothing finite to compare (`_max_error` skips it)
            return -mpmath.inf
        return mpmath.log(abs(deriv))

    fldj = mp_function(args, d.fldj_expr)
    ildj = mp_function([d.y, *spec.parameter_symbols], d.ildj_expr)

    def ildj_at_image(p, pv):
        with mpmath.workdps(ROUND_TRIP_DPS):
            yv = mp_real(f(p, *pv))
            if yv is None or not mpmath.isfinite(yv) or yv == mpmath.nint(yv):
                return None  # beyond floats, or a codomain end no precision resolves
            return -ildj(yv, *pv)

    results = []
    for label, out, ld_expr, deriv in (
        (
            "forward_log_det_jacobian",
            lambda p, pv: fldj(p, *pv),
            d.fldj_expr,
            derivative(spec.forward_expr, spec.x),
        ),
        (
            "inverse_log_det_jacobian",
            ildj_at_image,
            d.ildj_expr,
            derivative(d.inverse_expr, d.y),
        ),
    ):
        worst, where = _max_error(out, log_fprime, points, DPS, skip_none=True)
        if worst > LOG_DET_TOL:
            pset, p = where
            raise CheckFailedError(
                f"{spec.name}: {label} = {ld_expr} disagrees with mpmath's derivative of the "
                f"forward map: error {mpmath.nstr(worst, 3)} (relative to max(1, |ref|)) at "
                f"x = {mpmath.nstr(p, 17)} ({_describe(pset)}). This is a bug in symflow's "
                "derivation; please report it with this message."
            )
        detail = f"max error {mpmath.nstr(worst, 2)} vs mpmath derivative at {len(points)} points"
        if (
            prove
            and not isinstance(deriv, sp.Piecewise)
            and _symbolic_zero(sp.exp(ld_expr) - sp.Abs(deriv))
        ):
            results.append(CheckResult(label, "proven", "exp(ldj) == |derivative|; " + detail))
        else:
            results.append(CheckResult(label, "checked", detail))
    return results


def float64_inverse_error(d: Derivation, inverse_expr: sp.Expr) -> tuple[float, float, float]:
    """Error of `inverse_expr` evaluated with 53-bit rounding, in units of what the
    inverse's own conditioning allows, over the images of the domain grid: the worst, where
    it is, and the bits lost in total (sum of log2(1 + error)).

    mpmath at 53 bits rounds every operation as float64 does (without its overflow), so
    a formula that cancels (Cardano's near y = 0) shows here before any kernel runs. The
    result is |g53(y) - g(y)| / (2**-53 * max(|g(y)|, 1e-300) * max(1, cond)), with cond =
    |y g'(y) / g(y)| from the declared forward map: 1 means 'as good as float64 allows'.
    """
    spec = d.spec
    args = [d.y, *spec.parameter_symbols]
    g = mp_function(args, inverse_expr)
    fp = mp_function([spec.x, *spec.parameter_symbols], derivative(spec.forward_expr, spec.x))
    worst, where, total = 0.0, float("nan"), 0.0
    for _pset, pv, yv in _points(spec, DPS, images=True, dense=41):
        yf = mpmath.mpf(float(yv))  # the float64 input a kernel would see
        with mpmath.workdps(DPS):
            try:
                truth = mp_real(g(yf, *pv))
                slope = mp_real(fp(truth, *pv)) if truth is not None else None
            except (ZeroDivisionError, ValueError, OverflowError):
                continue
        if truth is None or slope in (None, 0) or not mpmath.isfinite(truth):
            continue
        with mpmath.workprec(53):
            try:
                low = mp_real(g(yf, *pv))
            except (ZeroDivisionError, ValueError, OverflowError):
                low = None
        scale = max(abs(truth), mpmath.mpf(1e-300))
        cond = abs(yf / (scale * slope)) if yf != 0 else 1
        allowed = mpmath.mpf(2) ** -53 * scale * max(1, cond)
        err = mpmath.inf if low is None else abs(low - truth) / allowed
        total += min(float(mpmath.log(1 + err, 2)), 64.0)
        if err > worst:
            worst, where = float(err), float(yf)
    return worst, where, total


def check_derivation(d: Derivation, invertible: CheckResult) -> CheckReport:
    """Every check of a derivation, in pipeline order; raises on the first failure."""
    results = [invertible, CheckResult("inverse", "derived", d.inverse_how)]
    results.extend(check_round_trip(d))
    results.extend(check_log_det(d))
    return CheckReport(d.spec.name, tuple(results))
