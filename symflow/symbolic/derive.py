"""Derivation: the inverse (with branch selection), the codomain, log|det J| and partials.

Input: a `BijectorSpec`. Output: a `Derivation` holding SymPy expressions. Nothing here is
trusted by itself: `symflow.checks` verifies every result at high precision before use.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from dataclasses import dataclass

import mpmath
import sympy as sp

from symflow.errors import NoClosedFormInverseError
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
    "Derivation",
    "derive",
    "derive_codomain",
    "derive_inverse",
    "derive_partials",
    "derivative",
    "almost_everywhere",
    "peel_inverse",
    "log_abs",
    "real_odd_roots",
    "time_limit",
]


@dataclass(frozen=True)
class Derivation:
    """The derived objects of a bijector, all as SymPy expressions.

    Attributes:
        spec: the declaration.
        y: the output symbol the inverse and the inverse log-det are written in.
        inverse_expr: x = g(y).
        fldj_expr: log|f'(x)|, in x.
        ildj_expr: log|g'(y)|, in y.
        codomain: (lo, hi), the image of the domain; may depend on parameters.
        inverse_how: how the inverse was found (for the report).
    """

    spec: BijectorSpec
    y: sp.Symbol
    inverse_expr: sp.Expr
    fldj_expr: sp.Expr
    ildj_expr: sp.Expr
    codomain: tuple[sp.Expr, sp.Expr]
    inverse_how: str

    def replace(self, **changes) -> Derivation:
        fields = {k: getattr(self, k) for k in self.__dataclass_fields__}
        fields.update(changes)
        return Derivation(**fields)


class _TimeoutSignal(Exception):  # noqa: N818 (internal signal, never escapes)
    pass


@contextlib.contextmanager
def time_limit(seconds: float):
    """Bounds a SymPy call that may not terminate (simplify, solve); a no-op off the main thread.

    Raises `_TimeoutSignal` inside the block when time runs out; callers catch it with
    `except TimeoutError`.
    """
    if threading.current_thread() is not threading.main_thread() or not hasattr(
        signal, "setitimer"
    ):
        yield
        return

    def _raise(signum, frame):
        raise _TimeoutSignal()

    old = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    except _TimeoutSignal as err:
        raise TimeoutError(f"SymPy took longer than {seconds} s") from err
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _heaviside(e: sp.Heaviside) -> sp.Expr:
    u = e.args[0]
    at_zero = e.args[1] if len(e.args) > 1 else sp.S.Half
    return sp.Piecewise((0, u < 0), (1, u > 0), (at_zero, True))


def almost_everywhere(expr: sp.Expr) -> sp.Expr:
    """`expr` with its generalized functions replaced by their values almost everywhere.

    A derivative of sign, Abs, Heaviside or a real odd root (sign(b)*|b|**(1/q)) comes out
    of SymPy with DiracDelta terms, which vanish everywhere but at the kink, and no float
    kernel can evaluate. They become 0: symflow's derivatives hold almost everywhere. At a
    kink itself the value is what the remaining terms give there: d|u|/du = sign(u) is 0 at
    u = 0, the mean of the one-sided slopes -1 and 1, and Heaviside(u) becomes its value
    Heaviside(0) (1/2 unless the declaration gave another) at u = 0, 0 below and 1 above,
    as a Piecewise the kernels print. A map that is smooth but for isolated kinks
    (x + |x|/2) thus gets f'(0) = 1, the mean of its one-sided slopes 1/2 and 3/2.
    """
    expr = sp.sympify(expr)
    if expr.has(sp.DiracDelta):
        expr = expr.replace(lambda e: isinstance(e, sp.DiracDelta), lambda e: sp.S.Zero)
    if expr.has(sp.Heaviside):
        expr = expr.replace(lambda e: isinstance(e, sp.Heaviside), _heaviside)
    return expr


def derivative(expr: sp.Expr, var: sp.Symbol) -> sp.Expr:
    """d expr / d var almost everywhere: no DiracDelta or Heaviside (`almost_everywhere`)."""
    return almost_everywhere(sp.diff(expr, var))


def output_symbol(spec: BijectorSpec) -> sp.Symbol:
    """The symbol for y: named `y` unless the declaration already uses that name."""
    taken = {spec.x.name, *spec.parameter_names}
    name = "y"
    k = 1
    while name in taken:
        name = f"y{k}"
        k += 1
    return sp.Symbol(name, real=True)


def real_odd_roots(expr: sp.Expr) -> sp.Expr:
    """Replaces b**(p/q) with q odd by the real root sign(b)*|b|**(p/q).

    SymPy's b**(1/3) is the principal complex root, complex for b < 0 and NaN in floats;
    the real odd root is what an inverse on the real line needs.
    """

    def _is_odd_root(e):
        return e.is_Pow and e.exp.is_Rational and e.exp.q % 2 == 1 and e.exp.q > 1

    def _real(e):
        b = e.base
        if b.is_nonnegative:
            return e
        # (b**(1/q))**p: the sign of b survives an odd p only ((-8)**(2/3) is 4)
        return sp.Abs(b) ** e.exp * (sp.sign(b) if e.exp.p % 2 else 1)

    return expr.replace(_is_odd_root, _real)


def log_abs(expr: sp.Expr) -> sp.Expr:
    """log|expr|, split over products and powers so no log of an exp or of a quotient remains.

    log|a*b| = log|a| + log|b|, log|b**e| = e*log|b| (real e), log|exp(u)| = re(u) = u for
    real u. Splitting keeps every term small: log(exp(-x)/(1+exp(-x))**2) would overflow for
    x << 0, -x - 2*log(1 + exp(-x)) does not.
    """
    expr = sp.sympify(expr)
    if isinstance(expr, sp.Piecewise):
        return sp.Piecewise(*[(log_abs(e), c) for e, c in expr.args])
    if expr.is_Mul:
        return sp.Add(*[log_abs(a) for a in expr.args])
    if expr.is_Pow and expr.exp.is_real:
        if expr.base == sp.E:
            return expr.exp
        return expr.exp * log_abs(expr.base)
    if isinstance(expr, sp.exp) and expr.args[0].is_real:
        return expr.args[0]
    if expr.is_Number:
        return sp.log(abs(expr))
    if expr.is_positive:
        return sp.log(expr)
    if expr.is_negative:
        return sp.log(-expr)
    return sp.log(sp.Abs(expr))


#: Limit for simplifications whose result shapes emitted code. The catalog's slowest takes
#: about 1 s; a limit far above that keeps generated bytes independent of machine speed.
SIMPLIFY_SECONDS = 20.0


def _try_simplify(expr: sp.Expr, seconds: float = SIMPLIFY_SECONDS) -> sp.Expr:
    try:
        with time_limit(seconds):
            simpler = sp.simplify(expr)
    except (TimeoutError, RecursionError):
        return expr
    return simpler if sp.count_ops(simpler) < sp.count_ops(expr) else expr


#: Inverse rules, a table: a unary function → the candidate inverses of u = F(v), as
#: functions of u. Several candidates mean several branches; branch selection keeps the one
#: that inverts the map on its domain.
INVERSE_RULES: dict[type, tuple] = {
    sp.exp: (sp.log,),
    sp.log: (sp.exp,),
    sp.sinh: (sp.asinh,),
    sp.asinh: (sp.sinh,),
    sp.tanh: (sp.atanh,),
    sp.atanh: (sp.tanh,),
    sp.cosh: (sp.acosh, lambda u: -sp.acosh(u)),
    sp.acosh: (sp.cosh,),
    sp.erf: (sp.erfinv,),
    sp.erfc: (sp.erfcinv,),
    sp.atan: (sp.tan,),
}


def peel_inverse(expr: sp.Expr, x: sp.Symbol, target: sp.Expr) -> list[sp.Expr]:
    """Candidates for x solving expr(x) = target, found by undoing the outermost operation.

    Works when x sits in exactly one argument at every level (sinh((asinh(x) + s)*t) does;
    x + x**3 does not, and is left to sympy.solve). Returns [] when it does not apply.
    """
    if expr == x:
        return [target]
    if not expr.has(x):
        return []
    if expr.is_Add or expr.is_Mul:
        dep = [a for a in expr.args if a.has(x)]
        if len(dep) != 1:
            return []
        rest = expr.func(*[a for a in expr.args if not a.has(x)])
        inner = target - rest if expr.is_Add else target / rest
        return peel_inverse(dep[0], x, inner)
    if expr.is_Pow:
        base, exponent = expr.args
        if exponent.has(x) and not base.has(x):
            return peel_inverse(exponent, x, sp.log(target) / sp.log(base))
        if exponent.has(x):
            return []
        if exponent == -1:
            return peel_inverse(base, x, 1 / target)
        root = target ** (1 / exponent)
        if exponent.is_integer and exponent.is_even:
            roots = [root, -root]
        elif exponent.is_integer and exponent.is_odd:
            roots = [real_odd_roots(sp.Pow(target, sp.Rational(1, exponent), evaluate=False))]
        else:
            roots = [root]
        return [c for r in roots for c in peel_inverse(base, x, r)]
    inverses = INVERSE_RULES.get(expr.func)
    if inverses and len(expr.args) == 1:
        return [c for inv in inverses for c in peel_inverse(expr.args[0], x, inv(target))]
    return []


def _solve(lhs: sp.Expr, x: sp.Symbol, y: sp.Symbol):
    """Yields batches of closed-form solutions of lhs(x) = y: peeled, then sympy.solve.

    sympy.solve runs with a plain x, then with x real.

    Each solution comes with its real-odd-root variant. Batches are lazy because a solve
    can take seconds and the first batch usually holds the answer.
    """
    plain = sp.Symbol(x.name)
    seen: list[sp.Expr] = []
    peeled = [c for c in peel_inverse(lhs, x, y) if not c.has(sp.nan, sp.zoo)]
    if peeled:
        seen.extend(peeled)
        yield peeled
    for var, eq in ((plain, lhs.xreplace({x: plain})), (x, lhs)):
        try:
            with time_limit(60):
                sols = sp.solve(sp.Eq(eq, y), var, dict=False)
        except (NotImplementedError, TimeoutError, ValueError, TypeError):
            continue
        batch = []
        for s in sols:
            if isinstance(s, sp.Piecewise):  # solve pads Piecewise inputs with nan pieces
                s = next((e for e, c in s.args if e is not sp.nan), sp.nan)
            if s is sp.nan or s.has(sp.zoo, sp.nan):
                continue
            s = s.xreplace({plain: x})
            for variant in (s, real_odd_roots(s)):
                if variant not in seen:
                    seen.append(variant)
                    batch.append(variant)
        if batch:
            yield batch


def _round_trip_error(spec, f, g, xs, params, y) -> mpmath.mpf | None:
    """Worst relative error of g(f(x)) against x over `xs`; None if g fails anywhere.

    A point whose f(x) cancels to an exact integer (a codomain end such as 1 - 1e-900
    rounding to 1) even at triple precision says nothing about g and is skipped.
    """
    worst = mpmath.mpf(0)
    fx = mp_function([spec.x, *spec.parameter_symbols], f)
    gy = mp_function([y, *spec.parameter_symbols], g)
    for pset in params:
        pvals = [pset[p] for p in spec.parameter_names]
        for x0 in xs:
            for dps in (ROUND_TRIP_DPS, 3 * ROUND_TRIP_DPS):
                err, yv = _one_round_trip(fx, gy, x0, pvals, dps)
                if err is not None and err <= mpmath.mpf(10) ** (-DPS):
                    break
            else:
                if yv is not None and mpmath.isfinite(yv) and yv != mpmath.nint(yv):
                    return None
                continue
            worst = max(worst, err)
    return worst


def _one_round_trip(fx, gy, x0, pvals, dps):
    with mpmath.workdps(dps):
        xm = mpmath.mpf(x0)
        pv = [mpmath.mpf(p) for p in pvals]
        try:
            yv = mp_real(fx(xm, *pv))
        except (ZeroDivisionError, ValueError, TypeError, OverflowError):
            return None, None
        if yv is None:
            return None, None
        if not mpmath.isfinite(yv):
            return mpmath.mpf(0), yv  # beyond any float; nothing to check
        try:
            back = mp_real(gy(yv, *pv), scale=xm)
        except (ZeroDivisionError, ValueError, TypeError, OverflowError):
            back = None
        if back is None:
            return None, yv
        return abs(back - xm) / max(abs(xm), mpmath.mpf(1e-300)), yv


def derive_inverse(spec: BijectorSpec, y: sp.Symbol) -> tuple[sp.Expr, str]:
    """Solves y = f(x) for x, keeping the branch that inverts f on its domain.

    A Piecewise forward map is solved piece by piece and the pieces merged, each one
    guarded by its own condition evaluated at the candidate pre-image. A candidate is kept
    only if it is real and g(f(x)) == x at points across the domain, tails included, for
    several parameter values, checked in mpmath at `DPS` digits.

    Raises:
        NoClosedFormInverseError: if SymPy finds no candidate, or none passes.
    """
    x = spec.x
    f = spec.forward_expr
    pw = (
        sp.piecewise_fold(f.rewrite(sp.Piecewise)) if f.has(sp.Abs, sp.sign, sp.Max, sp.Min) else f
    )
    pw = sp.piecewise_fold(pw)
    grid = domain_grid(spec.domain, dense=15)
    params = parameter_sets(spec)
    if isinstance(pw, sp.Piecewise):
        return _derive_piecewise_inverse(spec, pw, y, grid, params)
    candidates: list[sp.Expr] = []
    passing = []
    n_peeled = len(peel_inverse(f, x, y))
    for batch in _solve(f, x, y):
        for cand in batch:
            k = len(candidates)
            candidates.append(cand)
            if _round_trip_error(spec, f, cand, grid, params, y) is not None:
                passing.append((sp.count_ops(cand), k, cand))
        if passing:
            break
    if not candidates:
        raise NoClosedFormInverseError(
            f"{spec.name}: SymPy could not solve {sp.Eq(f, y)} for {x} in closed form. "
            "Rewrite the forward map (e.g. split it into a Chain of simpler bijectors), or "
            "declare a different parametrization."
        )
    if not passing:
        shown = "; ".join(str(c) for c in candidates[:4])
        raise NoClosedFormInverseError(
            f"{spec.name}: none of SymPy's {len(candidates)} solutions of {sp.Eq(f, y)} "
            f"inverts the map on its domain {spec.domain.describe()} (checked in mpmath at "
            f"{DPS} digits). Candidates: {shown}."
        )
    passing.sort(key=lambda t: (t[0], t[1]))
    _, k, best = passing[0]
    simpler = _try_simplify(best)
    if simpler is not best and _round_trip_error(spec, f, simpler, grid, params, y) is not None:
        best = simpler
    method = "inverse rules (peeling)" if k < n_peeled else "sympy.solve"
    how = (
        f"{method} gave {len(candidates)} candidate(s) (real odd roots included); "
        f"kept #{k + 1}, the {'only' if len(passing) == 1 else 'simplest'} one that is real "
        "and inverts f across the domain"
    )
    return best, how


def _derive_piecewise_inverse(spec, pw, y, grid, params) -> tuple[sp.Expr, str]:
    x = spec.x
    pieces = []
    taken = sp.false
    for expr, cond in pw.args:
        region = sp.And(cond, sp.Not(taken))
        xs = []
        for x0 in grid:
            try:
                inside = bool(region.subs(x, x0))
            except TypeError:
                inside = False
            if inside:
                xs.append(x0)
        taken = sp.Or(taken, cond)
        if not xs:
            continue  # this piece is empty on the domain
        candidates = []
        chosen = None
        for batch in _solve(expr, x, y):
            candidates.extend(batch)
            chosen = next(
                (c for c in batch if _round_trip_error(spec, expr, c, xs, params, y) is not None),
                None,
            )
            if chosen is not None:
                break
        if chosen is None:
            raise NoClosedFormInverseError(
                f"{spec.name}: SymPy could not invert the piece {sp.Eq(expr, y)} (for {cond}) "
                f"in closed form; candidates were {candidates or 'none'}."
            )
        guard = _image_condition(spec, cond, y, params)
        if guard is None:
            guard = cond.xreplace({x: chosen}) if cond is not sp.true else cond
        pieces.append((chosen, guard))
    pieces[-1] = (pieces[-1][0], sp.true)
    inverse = sp.Piecewise(*pieces)
    how = f"solved piece by piece ({len(pieces)} pieces) and merged into one Piecewise"
    return inverse, how


def _image_condition(spec, cond, y, params) -> sp.Expr | None:
    """`cond` on x (x > c, x <= c, ... with c free of x) as the same condition on y = f(x).

    f is monotone, so x > c exactly when y > f(c) (increasing f) or y < f(c) (decreasing).
    A guard written in y never evaluates a piece's inverse outside its own piece, where it
    may be complex (sqrt of a negative) and no comparison is defined. None when `cond` is
    not that simple or f's direction depends on the parameters: the caller then guards by
    the candidate pre-image.
    """
    x = spec.x
    if not isinstance(
        cond, (sp.StrictGreaterThan, sp.GreaterThan, sp.StrictLessThan, sp.LessThan)
    ):
        return None
    if cond.rhs == x and not cond.lhs.has(x):
        cond = cond.reversed
    if cond.lhs != x or cond.rhs.has(x):
        return None
    c = cond.rhs
    f = mp_function([x, *spec.parameter_symbols], spec.forward_expr)
    directions = set()
    with mpmath.workdps(DPS):
        for pset in params:
            pv = [mpmath.mpf(pset[p]) for p in spec.parameter_names]
            cv = (
                mp_real(mp_function(list(spec.parameter_symbols), c)(*pv))
                if c.free_symbols
                else mpmath.mpf(c)
            )
            if cv is None:
                return None
            try:
                lo, hi = mp_real(f(cv - 1, *pv)), mp_real(f(cv + 1, *pv))
            except (ZeroDivisionError, ValueError, TypeError, OverflowError):
                return None
            if lo is None or hi is None or lo == hi:
                return None
            directions.add(hi > lo)
    if len(directions) != 1:
        return None
    at_c = spec.forward_expr.subs(x, c)
    if at_c.has(sp.nan, sp.zoo, sp.oo, -sp.oo, sp.Piecewise):
        return None
    relation = type(cond) if directions.pop() else type(cond.reversed)
    return relation(y, at_c)


def derive_codomain(spec: BijectorSpec) -> tuple[sp.Expr, sp.Expr]:
    """The image of the domain under f: limits of f at the domain's ends, ordered.

    Assumes f monotone (the invertibility check runs first). A limit SymPy cannot take
    becomes an infinite end: inputs to the inverse are then not validated on that side.
    """
    f = spec.forward_expr
    ends = []
    for end, direction in ((spec.domain.lo, "+"), (spec.domain.hi, "-")):
        # Substitution is exact where f is continuous at the end (exp(-oo) = 0,
        # 1 - (1 - 0**a)**b = 0); a limit is needed only where it gives nan or zoo.
        lim = f.subs(spec.x, end)
        if lim.has(sp.nan, sp.zoo, sp.AccumBounds) or lim.free_symbols - set(
            spec.parameter_symbols
        ):
            try:
                with time_limit(10):
                    lim = sp.limit(f, spec.x, end, direction)
            except (TimeoutError, NotImplementedError, ValueError, TypeError):
                lim = None
        if lim is None or lim.has(sp.Limit, sp.AccumBounds, sp.zoo, sp.nan):
            lim = None
        ends.append(lim)
    if ends[0] is None or ends[1] is None:
        return -sp.oo, sp.oo
    lo, hi = sp.Min(*ends), sp.Max(*ends)
    return lo, hi


def derive(spec: BijectorSpec) -> Derivation:
    """Runs every derivation step on `spec`; see the module docstring."""
    y = output_symbol(spec)
    codomain = derive_codomain(spec)
    inverse, how = derive_inverse(spec, y)
    if codomain[0].is_nonnegative:
        # y > 0 on the codomain: lets SymPy drop |y| and split log(y*...) safely.
        y_pos = sp.Symbol(y.name, positive=True)
        inverse = inverse.xreplace({y: y_pos})
        y = y_pos
    samples = _samples(spec, y, inverse)
    fldj = _log_det([derivative(spec.forward_expr, spec.x)], spec.x, samples["x"], spec)
    ildj = _log_det(
        [derivative(inverse, y)],
        y,
        samples["y"],
        spec,
        extra=[-fldj.xreplace({spec.x: inverse})],
    )
    return Derivation(
        spec=spec,
        y=y,
        inverse_expr=inverse,
        fldj_expr=fldj,
        ildj_expr=ildj,
        codomain=codomain,
        inverse_how=how,
    )


def _samples(spec, y, inverse) -> dict[str, list[tuple[dict, mpmath.mpf]]]:
    """(parameters, point) pairs in the domain (x) and their images (y), at DPS digits."""
    fx = mp_function([spec.x, *spec.parameter_symbols], spec.forward_expr)
    out: dict[str, list] = {"x": [], "y": []}
    with mpmath.workdps(DPS):
        for pset in parameter_sets(spec):
            pv = [mpmath.mpf(pset[p]) for p in spec.parameter_names]
            for x0 in domain_grid(spec.domain, dense=9):
                out["x"].append((pset, mpmath.mpf(x0)))
                try:
                    yv = mp_real(fx(mpmath.mpf(x0), *pv))
                except (ZeroDivisionError, ValueError, OverflowError):
                    continue
                if yv is not None and mpmath.isfinite(yv) and yv != mpmath.nint(yv):
                    out["y"].append((pset, yv))
    return out


def _drop_abs(expr: sp.Expr, var: sp.Symbol, samples, spec) -> sp.Expr:
    """Replaces |u| by u or -u where u keeps one sign at every sample point.

    SymPy's assumptions cannot see that 1 - y > 0 on the codomain (0, 1); the samples
    can. The result is re-verified by the checks like everything else.
    """
    args = [var, *spec.parameter_symbols]
    replace = {}
    for node in expr.atoms(sp.Abs):
        u = node.args[0]
        fu = mp_function(args, u)
        signs = set()
        with mpmath.workdps(DPS):
            for pset, v in samples:
                try:
                    val = mp_real(fu(v, *[mpmath.mpf(pset[p]) for p in spec.parameter_names]))
                except (ZeroDivisionError, ValueError, OverflowError):
                    val = None
                signs.add(None if val is None else (val > 0) - (val < 0))
        if signs == {1}:
            replace[node] = u
        elif signs == {-1}:
            replace[node] = -u
    return expr.xreplace(replace) if replace else expr


def _real_powers(expr: sp.Expr, var: sp.Symbol, samples, spec) -> sp.Expr:
    """`real_odd_roots` for the powers b**(p/q), q odd, whose base is negative at a sample.

    A log-det simplified from a real cube root's derivative can come out as
    log|y**(2/3)|: right in mpmath (complex, then |.|), nan in floats for y < 0. A base
    positive at every sample is left alone (Cardano's radicand), so is any other power.
    """
    args = [var, *spec.parameter_symbols]
    replace = {}
    for node in expr.atoms(sp.Pow):
        e = node.exp
        if not (e.is_Rational and e.q % 2 == 1 and e.q > 1) or node.base.is_nonnegative:
            continue
        fb = mp_function(args, node.base)
        with mpmath.workdps(DPS):
            for pset, v in samples:
                try:
                    val = mp_real(fb(v, *[mpmath.mpf(pset[p]) for p in spec.parameter_names]))
                except (ZeroDivisionError, ValueError, OverflowError, TypeError):
                    continue
                if val is not None and val < 0:
                    replace[node] = real_odd_roots(node)
                    break
    return expr.xreplace(replace) if replace else expr


def _log_det(derivatives, var, samples, spec, extra=()) -> sp.Expr:
    """The shortest of several equivalent forms of log|derivative|."""
    forms = []
    for d in derivatives:
        for variant in (d, _try_simplify(d), sp.factor(sp.together(d))):
            forms.append(log_abs(variant))
    forms.extend(extra)
    best = None
    for form in forms:
        form = _drop_abs(sp.expand_log(_real_powers(form, var, samples, spec)), var, samples, spec)
        form = _try_simplify(form) if form.has(sp.Abs, sp.sign) else form
        if best is None or sp.count_ops(form) < sp.count_ops(best):
            best = form
    return best


def derive_partials(expr: sp.Expr, wrt: tuple[sp.Symbol, ...]) -> tuple[sp.Expr, ...]:
    """d expr / d w for each w in `wrt`: the gradient kernels' formulas."""
    return tuple(derivative(expr, w) for w in wrt)
