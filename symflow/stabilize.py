"""Stabilization: derived expressions rewritten into numerically stable forms, re-checked.

Input: SymPy expressions (a `Derivation`'s inverse and log-dets; a spec's forward map).
Output: the same functions written with log1p, expm1, softplus, ndtri, ... so that the
emitted float64 kernels stay finite and accurate in the tails.

The rewrites are data: `RULES` is a table of `Rule`s, each a small function that rewrites
matching subtrees bottom-up, with the failure it fixes and example inputs the tests loop
over. `stabilize` applies the table in priority order until nothing changes. Every single
rewrite of a subtree is re-checked before it is kept (`check_rewrite`): symbolically where
SymPy decides it in a short time, and always numerically, in mpmath at `DPS` digits, at
points where the original subtree is real. Nothing here knows about particular bijectors.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable
from dataclasses import dataclass

import mpmath
import sympy as sp
from sympy.codegen.cfunctions import expm1, hypot, log1p

from symflow.errors import CheckFailedError
from symflow.symbolic.derive import Derivation, time_limit
from symflow.symbolic.functions import (
    FUNCTIONS,
    as_definitions,
    cbrt_real,
    log1mexp,
    log_ndtr,
    log_sigmoid,
    logcosh,
    loghypot,
    logit,
    logsinh,
    ndtr,
    ndtri,
    sigmoid,
    softplus,
    softplus_inverse,
)
from symflow.symbolic.numeric import DPS, mp_function, mp_real
from symflow.symbolic.spec import BijectorSpec

__all__ = [
    "MAX_PASSES",
    "RULES",
    "RewriteCheck",
    "Rule",
    "check_rewrite",
    "parse_example",
    "stabilize",
    "stabilize_derivation",
    "stabilize_forward",
]

#: Passes over the rule table before `stabilize` gives up on reaching a fixed point. Each
#: rule removes the pattern it matches, so two or three passes are the most ever needed.
MAX_PASSES = 8
#: Seconds SymPy may spend proving one rewrite; most provable ones take well under 0.1 s.
PROOF_SECONDS = 0.5
#: Relative tolerance of the numeric check at DPS digits: a rewrite that is an identity
#: agrees to ~DPS digits, minus what the original form itself loses to cancellation.
_TOL = mpmath.mpf(10) ** -(DPS - 15)


@dataclass(frozen=True)
class Rule:
    """One stabilization rewrite: `apply(expr)` rewrites every matching subtree bottom-up.

    Attributes:
        name: short identifier (test ids, reports).
        priority: rules run in increasing priority within a pass; a rule that must see
            a pattern before another one rewrites part of it gets the smaller number.
        apply: expr -> expr, unchanged where nothing matches.
        fixes: the float64 failure the rewrite removes, with its threshold.
        examples: inputs the rule rewrites, as SymPy text for `parse_example`.
    """

    name: str
    priority: int
    apply: Callable[[sp.Expr], sp.Expr]
    fixes: str
    examples: tuple[str, ...] = ()


@dataclass(frozen=True)
class RewriteCheck:
    """The verdict on one rewrite of a subtree.

    Attributes:
        before, after: the subtree and its rewrite.
        proven: True if SymPy reduced after - before to 0, False if to a nonzero
            constant, None if it could not decide in time.
        points: sample points where `before` is real and `after` agreed at DPS digits.
        ok: whether the rewrite may be kept.
        detail: why not, when it may not.
    """

    before: sp.Expr
    after: sp.Expr
    proven: bool | None
    points: int
    ok: bool
    detail: str = ""


# ---------------------------------------------------------------------------------------
# Verification of single rewrites.

#: Sample values per symbol by sign assumption: inside (0, 1), above 1, tails of both
#: signs, so that a subtree real only on part of the line (logit, acosh) gets points.
_POSITIVE_POOL = ("0.37", "1.6", "0.81", "3.3", "0.06", "11.0", "0.93", "27.0")
_REAL_POOL = ("0.37", "-0.81", "1.6", "-3.3", "0.06", "11.0", "-0.6", "0.93")


def _pool(symbol: sp.Symbol) -> tuple[str, ...]:
    if symbol.is_nonnegative:
        return _POSITIVE_POOL
    if symbol.is_nonpositive:
        return tuple(f"-{v}" for v in _POSITIVE_POOL)
    return _REAL_POOL


def _sample_points(symbols: list[sp.Symbol]) -> list[list[mpmath.mpf]]:
    """Eight points; symbol i takes pool value (k + 3i) mod 8 at point k, so symbols vary
    against each other instead of all sitting at the same pool index."""
    points = []
    for k in range(8):
        points.append([mpmath.mpf(_pool(s)[(k + 3 * i) % 8]) for i, s in enumerate(symbols)])
    return points


_EVAL_ERRORS = (ZeroDivisionError, ValueError, TypeError, OverflowError, ArithmeticError)


def _numeric_agreement(before: sp.Expr, after: sp.Expr) -> tuple[int, str]:
    """(points where both agree, '' or the first disagreement) at DPS digits."""
    symbols = sorted(before.free_symbols | after.free_symbols, key=lambda s: s.name)
    try:
        f_before = mp_function(symbols, before)
        f_after = mp_function(symbols, after)
    except (NameError, SyntaxError, TypeError) as err:  # pragma: no cover - printer gap
        return 0, f"cannot evaluate in mpmath: {err}"
    agreed = 0
    with mpmath.workdps(DPS):
        for point in _sample_points(symbols):
            try:
                vb = mp_real(f_before(*point))
            except (*_EVAL_ERRORS, NameError):
                continue
            if vb is None or not mpmath.isfinite(vb):
                continue  # the original is not real here: nothing to compare
            try:
                va = mp_real(f_after(*point), scale=vb)
            except (*_EVAL_ERRORS, NameError) as err:
                return agreed, f"{after} fails at {point}: {err!r}"
            if va is None or abs(va - vb) > _TOL * max(1, abs(vb)):
                shown = mpmath.nstr(va, 20) if va is not None else "not real"
                where = {s.name: mpmath.nstr(p, 8) for s, p in zip(symbols, point, strict=True)}
                return agreed, (
                    f"{after} = {shown} but {before} = {mpmath.nstr(vb, 20)} at {where}"
                )
            agreed += 1
    return agreed, ""


def _proven_equal(before: sp.Expr, after: sp.Expr, seconds: float) -> bool | None:
    """True/False where SymPy decides after == before within `seconds`, else None."""
    difference = as_definitions(after) - as_definitions(before)
    try:
        with time_limit(seconds):
            reduced = sp.simplify(difference)
    except (TimeoutError, RecursionError, NotImplementedError, TypeError, ValueError):
        return None
    if reduced == 0:
        return True
    if reduced.is_Number and reduced.is_finite:
        return False
    return None  # SymPy not simplifying to 0 is no disproof


@functools.lru_cache(maxsize=4096)
def check_rewrite(
    before: sp.Expr, after: sp.Expr, *, seconds: float = PROOF_SECONDS
) -> RewriteCheck:
    """Checks that rewriting `before` into `after` keeps the function, where it is real.

    Numerically always: at eight sample points (by the symbols' sign assumptions), both
    sides in mpmath at DPS digits, wherever `before` is real. Symbolically when SymPy
    reduces the difference of the plain definitions to zero within `seconds`. A rewrite
    is kept if it agrees at every real point, and either agrees at one point at least or
    is proven; a symbolic disproof (a nonzero constant difference) rejects it.

    Results are cached: the same subtree recurs in an expression's partial derivatives.
    """
    if after.free_symbols - before.free_symbols:
        return RewriteCheck(before, after, None, 0, False, "the rewrite adds symbols")
    points, detail = _numeric_agreement(before, after)
    if detail:
        return RewriteCheck(before, after, None, points, False, detail)
    proven = _proven_equal(before, after, seconds)
    if proven is False:
        return RewriteCheck(before, after, False, points, False, "SymPy disproves it")
    if points == 0 and not proven:
        return RewriteCheck(
            before, after, proven, 0, False, "no sample point where the original is real"
        )
    return RewriteCheck(before, after, proven, points, True)


class _Verifier:
    """Decides, for one `stabilize` call, whether each rewrite is kept."""

    def __init__(self, *, strict: bool) -> None:
        self.strict = strict

    def accept(self, rule: str, before: sp.Expr, after: sp.Expr) -> bool:
        result = check_rewrite(before, after)
        if result.ok:
            return True
        if self.strict:
            raise CheckFailedError(
                f"stabilize: rule {rule!r} rewrote {before} into {after}, which fails its "
                f"check: {result.detail}. This is a bug in the rule; report it with the "
                "expression. Without strict=True the rewrite is skipped and the subtree kept."
            )
        return False


#: The verifier of the `stabilize` call in progress (None: rewrites are not checked).
_VERIFIER: contextvars.ContextVar[_Verifier | None] = contextvars.ContextVar(
    "symflow_stabilize_verifier", default=None
)


def _rewrite_bottom_up(expr: sp.Basic, node_rule: Callable, rule: str) -> sp.Basic:
    """Post-order walk: children first, then `node_rule` on the rebuilt node.

    `node_rule(node)` returns a replacement or None. A replacement is kept only if the
    active verifier (if any) accepts it.
    """
    if expr.is_Atom:
        return expr
    args = tuple(_rewrite_bottom_up(a, node_rule, rule) for a in expr.args)
    node = expr.func(*args) if args != expr.args else expr
    if not isinstance(node, sp.Expr):
        return node
    new = node_rule(node)
    if new is None or new == node:
        return node
    verifier = _VERIFIER.get()
    if verifier is not None and not verifier.accept(rule, node, new):
        return node
    return new


def _bottom_up(node_rule: Callable[[sp.Expr], sp.Expr | None]) -> Callable[[sp.Expr], sp.Expr]:
    """Turns a rule for one node into `apply(expr)` over the whole tree."""

    @functools.wraps(node_rule)
    def apply(expr: sp.Expr) -> sp.Expr:
        return _rewrite_bottom_up(sp.sympify(expr), node_rule, node_rule.__name__.strip("_"))

    return apply


# ---------------------------------------------------------------------------------------
# Pattern helpers. SymPy's canonical forms: y - 1 is Add(-1, y), 1/(1 + exp(-x)) is
# Pow(Add(1, exp(-x)), -1), -y/(y - 1) is Mul(-1, y, Pow(Add(-1, y), -1)).


def _log_arg(node: sp.Expr) -> sp.Expr | None:
    return node.args[0] if isinstance(node, sp.log) else None


def _const_and_scaled(add: sp.Expr, func) -> tuple[sp.Expr, sp.Expr, sp.Expr] | None:
    """(c, d, arg) if `add` is exactly c + d*func(arg) with c, d numbers, else None."""
    if not add.is_Add or len(add.args) != 2:
        return None
    c, rest = add.as_coeff_Add()
    d, f = rest.as_coeff_Mul()
    if c == 0 or not isinstance(f, func):
        return None
    return c, d, f.args[0]


def _one_plus_exp(expr: sp.Expr) -> sp.Expr | None:
    """v if `expr` is 1 + exp(v), else None."""
    match = _const_and_scaled(expr, sp.exp)
    if match is not None and match[0] == 1 and match[1] == 1:
        return match[2]
    return None


def _has_no_constant(expr: sp.Expr) -> bool:
    """True for an expression in its symbols alone, like y or 2*y, not 2*y - 1.

    Forms such as logit(2*y - 1) or erfinv(2*y - 1) are what the rules remove: the -1
    cancels against 2*y and loses every digit of y below 1e-16.
    """
    return bool(expr.free_symbols) and expr.as_coeff_Add()[0] == 0


def _square_root_of(term: sp.Expr) -> sp.Expr | None:
    """r with r**2 == term read off the form (a positive number, v**2, c*v**4, ...)."""
    if term.is_Number:
        return sp.sqrt(term) if term.is_positive else None
    root = []
    for factor in sp.Mul.make_args(term):
        if factor.is_Number and factor.is_positive:
            root.append(sp.sqrt(factor))
        elif factor.is_Pow and factor.exp.is_Integer and factor.exp.is_even:
            root.append(factor.base ** (factor.exp / 2))
        else:
            return None
    return sp.Mul(*root)


def _sum_of_two_squares(expr: sp.Expr) -> tuple[sp.Expr, sp.Expr] | None:
    """(a, b) if `expr` is a**2 + b**2 by its form, constants first, else None."""
    if not expr.is_Add or len(expr.args) != 2:
        return None
    roots = [_square_root_of(t) for t in expr.args]
    if any(r is None for r in roots):
        return None
    roots.sort(key=lambda r: not r.is_Number)
    return roots[0], roots[1]


def _radicand(expr: sp.Expr) -> sp.Expr | None:
    """B if `expr` is sqrt(B) or hypot(p, q) (B = p**2 + q**2), else None."""
    if expr.is_Pow and expr.exp == sp.S.Half:
        return expr.base
    if isinstance(expr, hypot):
        p, q = expr.args
        return p**2 + q**2
    return None


def _ratio(expr: sp.Expr) -> tuple[sp.Expr, sp.Expr]:
    """(numerator, denominator) of `expr`, a sum brought over one denominator first.

    The sigmoid inverse comes out of SymPy as -log(-1 + 1/y): only as (1 - y)/y does it
    show the logit pattern.
    """
    return sp.fraction(sp.together(expr) if expr.is_Add else expr)


def _without(add: sp.Expr, *terms: sp.Expr) -> list[sp.Expr]:
    rest = list(add.args)
    for t in terms:
        rest.remove(t)
    return rest


# ---------------------------------------------------------------------------------------
# The rules, one node-level function each. The docstring's first line is the rewrite;
# the second paragraph the float64 failure it removes.


@_bottom_up
def _ndtr(node):
    """c + c*erf(w) -> 2c*ndtr(sqrt(2)*w), c - c*ndtr(v) -> c*ndtr(-v), erfc -> ndtr.

    (1 + erf(x/sqrt(2)))/2 is 1 + (-1 + 1e-17) = 0 for x < -8.3: the whole lower tail of
    the normal CDF rounds away. Where sqrt(2)*w is not simpler than w, c*erfc(-w) keeps the
    same tail without a new function. erfc(w) becomes 2*ndtr(-sqrt(2)*w) only where the
    argument gets simpler (erfc(-x/sqrt(2))/2 -> ndtr(x)), so nothing is lost to rounding.
    """
    if isinstance(node, sp.erfc):
        v = -sp.sqrt(2) * node.args[0]
        return 2 * ndtr(v) if sp.count_ops(v) < sp.count_ops(node.args[0]) else None
    if not node.is_Add:
        return None
    c = node.as_coeff_Add()[0]
    if c == 0:
        return None
    for term in node.args:
        k, f = term.as_coeff_Mul()
        if isinstance(f, sp.erf) and k in (c, -c):
            w = f.args[0] if k == c else -f.args[0]  # c - c*erf(w) = c + c*erf(-w)
            v = sp.sqrt(2) * w
            simpler = sp.count_ops(v) < sp.count_ops(w)
            new = 2 * c * ndtr(v) if simpler else c * sp.erfc(-w)
            return sp.Add(*_without(node, c, term)) + new
        if isinstance(f, ndtr) and k == -c:
            return sp.Add(*_without(node, c, term)) + c * ndtr(-f.args[0])
    return None


@_bottom_up
def _log_sigmoid(node):
    """log(1/(1 + exp(-u))) -> log_sigmoid(u), log(sigmoid(u)) -> log_sigmoid(u).

    exp(-u) overflows to inf for u < -709.78, so the log is log(0) = -inf where the true
    value is u; log(sigmoid(u)) underflows the same way.
    """
    arg = _log_arg(node)
    if arg is None:
        return None
    if isinstance(arg, sigmoid):
        return log_sigmoid(arg.args[0])
    if arg.is_Pow and arg.exp == -1:
        v = _one_plus_exp(arg.base)
        if v is not None:
            return log_sigmoid(-v)
    return None


@_bottom_up
def _softplus(node):
    """log(1 + exp(u)) -> softplus(u); log(c + d*exp(u)) -> log(c) + softplus(u + log(d/c)).

    exp(u) overflows to inf for u > 709.78 where the true value is about u. Runs before the
    log1p rule, which would otherwise turn it into log1p(exp(u)) with the same overflow.
    """
    arg = _log_arg(node)
    match = _const_and_scaled(arg, sp.exp) if arg is not None else None
    if match is None:
        return None
    c, d, u = match
    if not (c.is_positive and d.is_positive):
        return None
    return sp.log(c) + softplus(u + sp.log(d / c))


@_bottom_up
def _softplus_inverse(node):
    """log(exp(u) - 1) -> softplus_inverse(u); also log(expm1(u)) and log(d*exp(u) - c).

    exp(u) overflows to inf for u > 709.78 (true value about u), and exp(u) - 1 keeps no
    digit of u for u < 1e-16 (log(0) = -inf where the true value is log(u)). Runs before
    the expm1 rule: log(expm1(u)) still overflows.
    """
    arg = _log_arg(node)
    if arg is None:
        return None
    if isinstance(arg, expm1):
        return softplus_inverse(arg.args[0])
    match = _const_and_scaled(arg, sp.exp)
    if match is None:
        return None
    c, d, u = match
    if not (c.is_negative and d.is_positive):
        return None
    return sp.log(-c) + softplus_inverse(u + sp.log(d / -c))


@_bottom_up
def _log1mexp(node):
    """log(1 - exp(-a)) -> log1mexp(a); also log(-expm1(-a)) and log(c - d*exp(-a)).

    1 - exp(-a) rounds to 0 for a < 1.1e-16 (log(0) = -inf, true value log(a)) and loses
    digits for a < 0.69; log1p(-exp(-a)) would lose them for large a instead.
    """
    arg = _log_arg(node)
    if arg is None:
        return None
    k, f = arg.as_coeff_Mul()
    if k == -1 and isinstance(f, expm1):
        return log1mexp(-f.args[0])
    match = _const_and_scaled(arg, sp.exp)
    if match is None:
        return None
    c, d, u = match
    if not (c.is_positive and d.is_negative):
        return None
    return sp.log(c) + log1mexp(-u - sp.log(-d / c))


@_bottom_up
def _logcosh(node):
    """log(cosh(u)) -> logcosh(u); log(cosh(u)**e) -> e*logcosh(u).

    cosh(u) overflows to inf for |u| > 710.48 where the true value is |u| - log(2); this
    is the tanh log-det, -2*log(cosh(x)).
    """
    arg = _log_arg(node)
    if arg is None:
        return None
    if isinstance(arg, sp.cosh):
        return logcosh(arg.args[0])
    if arg.is_Pow and isinstance(arg.base, sp.cosh) and arg.exp.is_real:
        return arg.exp * logcosh(arg.base.args[0])
    return None


@_bottom_up
def _logsinh(node):
    """log(sinh(u)) -> logsinh(u).

    sinh(u) overflows to inf for u > 710.48 where the true value is u - log(2).
    """
    arg = _log_arg(node)
    if isinstance(arg, sp.sinh):
        return logsinh(arg.args[0])
    return None


@_bottom_up
def _asinh(node):
    """log(u + sqrt(u**2 + 1)) -> asinh(u); log(u + sqrt(u**2 + c)) -> asinh(u/sqrt(c)) + log(c)/2.

    For u < -1e8, u + sqrt(u**2 + 1) cancels to 0 (log(0) = -inf, true value about
    -log(-2u)); for |u| > 1.3e154, u**2 overflows. asinh has neither problem. Runs before
    the hypot rule, which would hide the sqrt.
    """
    arg = _log_arg(node)
    if arg is None or not arg.is_Add or len(arg.args) != 2:
        return None
    for root, t in (arg.args, arg.args[::-1]):
        radicand = _radicand(root)
        if radicand is None:
            continue
        c = sp.expand(radicand - t**2)
        if c.is_Number and c.is_positive:
            return sp.asinh(t / sp.sqrt(c)) + sp.log(sp.sqrt(c))
    return None


@_bottom_up
def _acosh(node):
    """log(u + sqrt(u**2 - 1)) -> acosh(u) (u >= 1).

    u**2 overflows to inf for u > 1.3e154 (true value log(2u)); near u = 1 the subtraction
    u**2 - 1 loses the digits acosh keeps.
    """
    arg = _log_arg(node)
    if arg is None or not arg.is_Add or len(arg.args) != 2:
        return None
    for root, t in (arg.args, arg.args[::-1]):
        radicand = _radicand(root)
        if radicand is None:
            continue
        c = sp.expand(radicand - t**2)
        if c.is_Number and c.is_negative:
            return sp.acosh(t / sp.sqrt(-c)) + sp.log(sp.sqrt(-c))
    return None


@_bottom_up
def _logit(node):
    """log(y/(1 - y)) -> logit(y), also log(-y/(y - 1)); log(1/y - 1) -> -logit(y).

    SymPy gives the sigmoid inverse as -log(-1 + 1/y): near y = 1 the rounding of 1/y is
    all that is left of 1/y - 1: at y = 1 - 2**-53 that is twice its true value and the
    inverse is 36.04 instead of 36.74. logit(y) = log(y) - log1p(-y) is exact there, and
    one form for all the quotient spellings. Runs before the atanh and log1p rules, which
    would split the quotient differently.
    """
    arg = _log_arg(node)
    if arg is None or arg.is_Number:
        return None
    n, d = _ratio(arg)
    if d == 1:
        return None
    s = sp.expand(n + d)
    if s not in (1, -1):
        return None
    n, d = sp.expand(s * n), sp.expand(s * d)  # now n + d = 1: log(n/(1 - n))
    if _has_no_constant(n):
        return logit(n)
    if _has_no_constant(d):
        return -logit(d)
    return None


@_bottom_up
def _atanh(node):
    """log((1 + t)/(1 - t)) -> 2*atanh(t) (the tanh inverse log((-y - 1)/(y - 1))/2).

    For t = 1e-17 the quotient rounds to 1 and the log to 0 (true value 2e-17); near t = 1
    it keeps only the digits 1 - t has. Taken only where t has no constant term, so the
    rewrite never creates a cancellation like atanh(2*y - 1).
    """
    arg = _log_arg(node)
    if arg is None or arg.is_Number:
        return None
    n, d = _ratio(arg)
    if d == 1:
        return None
    s = sp.expand(n + d)
    if not s.is_Number or s == 0:
        return None
    t = sp.expand((n - d) / s)
    return 2 * sp.atanh(t) if _has_no_constant(t) else None


@_bottom_up
def _log_reciprocal(node):
    """log(1/D) -> -log(D), log(-1/D) -> -log(-D).

    Not a float64 failure by itself (1/D underflows only for |D| > 1e308), but it exposes
    log(1 - y) to the log1p rule: the Weibull inverse log(-1/(y - 1)) becomes -log1p(-y),
    and the Gumbel inverse log(log(1/y)) becomes log(-log(y)).
    """
    arg = _log_arg(node)
    if arg is None:
        return None
    k, f = arg.as_coeff_Mul()
    if k in (1, -1) and f.is_Pow and f.exp == -1:
        return -sp.log(k * f.base)
    return None


@_bottom_up
def _log_product(node):
    """log(a*b**e) -> log(a) + e*log(b) where SymPy knows a, b > 0 (expand_log, no force).

    The product overflows where its logs do not: the Power log-det
    log(x**(power - 1)*Abs(power)) is log(inf) = inf for x = 1e200, power = 3, where
    the true value is 920.2. Runs after the rules that read quotients (logit, atanh).
    """
    arg = _log_arg(node)
    if arg is None or not (arg.is_Mul or arg.is_Pow):
        return None
    return sp.expand_log(node, deep=False)


@_bottom_up
def _log_ndtr(node):
    """log(ndtr(x)) -> log_ndtr(x); log(c*ndtr(x)) -> log(c) + log_ndtr(x).

    ndtr(x) underflows to 0 for x < -38.5, so the log is -inf where the true value is
    about -x**2/2.
    """
    arg = _log_arg(node)
    if arg is None:
        return None
    c, f = arg.as_coeff_Mul()
    if isinstance(f, ndtr) and c.is_positive:
        return sp.log(c) + log_ndtr(f.args[0])
    return None


@_bottom_up
def _sigmoid(node):
    """1/(1 + exp(-u)) -> sigmoid(u); exp(u)*sigmoid(-u)**k -> sigmoid(u)*sigmoid(-u)**(k-1).

    exp(u)/(1 + exp(u)) is inf/inf = nan for u > 709.78 (true value 1), and the sigmoid
    log-det's derivative exp(-u)/(1 + exp(-u))**2 is nan for u < -709.78.
    """
    if node.is_Pow and node.exp.is_Integer and node.exp < 0:
        v = _one_plus_exp(node.base)
        return sigmoid(-v) ** (-node.exp) if v is not None else None
    if not node.is_Mul:
        return None
    factors = node.args
    for e in factors:
        if not isinstance(e, sp.exp):
            continue
        v = e.args[0]
        for s in factors:
            base, k = s.as_base_exp()
            if isinstance(base, sigmoid) and base.args[0] == -v and k.is_Integer and k > 0:
                others = [f for f in factors if f is not e and f is not s]
                return sp.Mul(*others) * sigmoid(v) * sigmoid(-v) ** (k - 1)
    return None


#: F -> G with F(u) - u = G(u), for the absorb_linear rule.
_MINUS_LINEAR = {
    softplus: lambda u: softplus(-u),  # log(1 + e^u) - u = log(1 + e^-u)
    softplus_inverse: log1mexp,  # log(e^u - 1) - u = log(1 - e^-u)
}


def _contains_terms(whole: dict, part: dict, sign: int) -> bool:
    """True if the term -> coefficient map `whole` holds sign*`part`, term by term."""
    for term, k in part.items():
        have = whole.get(term, 0) * sign
        if not (k > 0 and have >= k or k < 0 and have <= k):
            return False
    return True


@_bottom_up
def _absorb_linear(node):
    """u - softplus(u) -> -softplus(-u); u - softplus_inverse(u) -> -log1mexp(u).

    Written out, u - log(exp(u) + 1) is inf - inf = nan for u > 709.78; with softplus it is
    u - u = 0 for u > 37 where the true value is -exp(-u): every digit cancels. The
    same for the softplus log-det y - log(exp(y) - 1) (true value -log1p(-exp(-y))).
    """
    if not node.is_Add:
        return None
    for term in node.args:
        k, f = term.as_coeff_Mul()
        if f.func not in _MINUS_LINEAR or not k.is_Number or abs(k) < 1:
            continue
        u = f.args[0]
        rest = node - term
        sign = 1 if k < 0 else -1  # k*F(u) + u for k <= -1, k*F(u) - u for k >= 1
        for expand in (lambda e: e, sp.expand_mul):
            if _contains_terms(
                expand(rest).as_coefficients_dict(), expand(u).as_coefficients_dict(), sign
            ):
                rest = expand(rest) - sign * expand(u)
                # k*F + sign*u = (k + sign)*F + sign*(u - F) = (k + sign)*F - sign*G
                return rest + (k + sign) * f - sign * _MINUS_LINEAR[f.func](u)
    return None


def _half_log_sum_of_squares(a: sp.Expr, b: sp.Expr) -> sp.Expr:
    """log(hypot(a, b)) in stable functions: log(c) + loghypot(b/c) where a = c > 0 is a
    number (log(x**2 + 1)/2 -> loghypot(x)), else log(hypot(a, b))."""
    if a.is_Number and a.is_positive:
        return sp.log(a) + loghypot(b / a)
    return sp.log(hypot(a, b))


@_bottom_up
def _log_hypot(node):
    """log(a**2 + b**2) -> 2*log(hypot(a, b)), e.g. log(x**2 + 4) -> 2*log(2) + 2*loghypot(x/2).

    x**2 overflows to inf for |x| > 1.34e154 (true value 2*log|x|), and log1p(x**2) has
    the same overflow. Where a is a positive number c the result is 2*log(c) +
    2*loghypot(b/c) (loghypot(x) = log1p(x**2)/2, overflow-free and relatively accurate
    at 0, where log(hypot(1, x)) rounds to 0 below |x| = 1e-8), which also lets its kernel
    share 1 + x**2 with asinh(x). Runs before the log1p rule.
    """
    arg = _log_arg(node)
    pair = _sum_of_two_squares(arg) if arg is not None else None
    return 2 * _half_log_sum_of_squares(*pair) if pair is not None else None


@_bottom_up
def _log_of_hypot(node):
    """log(hypot(c, x)) -> log(c) + loghypot(x/c) for a positive number c.

    log(sqrt(x**2 + 1)) becomes log(hypot(1, x)) by the hypot rule, which rounds to 0
    below |x| = 1e-8 (true value x**2/2); loghypot does not (see `_log_hypot`).
    """
    arg = _log_arg(node)
    if not isinstance(arg, hypot):
        return None
    a, b = sorted(arg.args, key=lambda r: not r.is_Number)
    return _half_log_sum_of_squares(a, b) if a.is_Number and a.is_positive else None


@_bottom_up
def _log1p(node):
    """log(1 + u) -> log1p(u), with the 1 anywhere in the sum (log(y + 1), log(1 - y)).

    1 + u rounds to 1 for |u| < 1.1e-16, so log(1 + u) = 0 where the true value is u;
    near y = 1, log(1 - y) keeps only the digits of 1 - y, and log1p(-y) all of them.
    """
    arg = _log_arg(node)
    if arg is None or not arg.is_Add:
        return None
    c, rest = arg.as_coeff_Add()
    return log1p(rest) if c == 1 else None


@_bottom_up
def _sech_squared(node):
    """1 - tanh(u)**2 -> cosh(u)**-2 (tanh's derivative).

    Near |tanh(u)| = 1 the difference cancels: at u = 10, 1 - tanh(u)**2 = 8.2e-9 keeps
    only 8 correct digits, and the inverse's gradient 1/f'(x) inherits the loss.
    cosh(u)**-2 is exact to rounding there and underflows to 0 (not nan) for |u| > 710.
    """
    if not node.is_Add or len(node.args) != 2:
        return None
    c, rest = node.as_coeff_Add()
    coeff, power = rest.as_coeff_Mul()
    if c == 0 or coeff != -c or not (power.is_Pow and power.exp == 2):
        return None
    if not isinstance(power.base, sp.tanh):
        return None
    return c * sp.cosh(power.base.args[0]) ** -2


@_bottom_up
def _log1p_difference_of_squares(node):
    """log1p(-u**2) -> log1p(-u) + log1p(u).

    For |u| near 1, u**2 rounds before 1 - u**2 cancels: at u = tanh(-10) =
    -0.99999999588 the tanh inverse log-det -log(1 - y**2) keeps only 8 correct digits.
    The factors 1 - u and 1 + u are exact for |u| in [0.5, 1], so log1p of each keeps all.
    """
    if not isinstance(node, log1p):
        return None
    arg = node.args[0]
    coeff, rest = arg.as_coeff_Mul()
    if coeff != -1 or not (rest.is_Pow and rest.exp == 2):
        return None
    u = rest.base
    return log1p(-u) + log1p(u)


def _split_factor(term: sp.Expr, match: Callable[[sp.Expr], bool]):
    """(factor, rest) with `factor` the first factor of `term` that matches, or None."""
    factors = sp.Mul.make_args(term)
    for f in factors:
        if match(f):
            return f, sp.Mul(*[g for g in factors if g is not f])
    return None


def _is_power_with_stable_log(e: sp.Expr) -> bool:
    """B**e with a non-integer e and a base whose log has a stable form.

    That is B = 1 + (...) (log1p), B = -expm1(v) (log1mexp) or B known positive (log).
    sqrt(a**2 + b**2) is left to the hypot rule.
    """
    if not e.is_Pow or e.exp.is_integer:
        return False
    base = e.base
    if e.exp.is_Rational and e.exp.q == 2 and _sum_of_two_squares(base) is not None:
        return False
    k, f = base.as_coeff_Mul()
    return bool(
        base.is_Add
        and base.as_coeff_Add()[0] == 1
        or k == -1
        and isinstance(f, expm1)
        or base.is_positive
        and not base.is_Number
    )


def _stable_log(base: sp.Expr) -> sp.Expr:
    """log(base) as log1p or log1mexp where the form allows, else log.

    Written out directly, not left to the log1p rule: SymPy folds exp(log(B)/2) back
    into sqrt(B), so expm1(log(B)/2) would collapse to sqrt(B) - 1 at once.
    """
    c, rest = base.as_coeff_Add()
    if base.is_Add and c == 1:
        return log1p(rest)
    k, f = base.as_coeff_Mul()
    if k == -1 and isinstance(f, expm1):
        return log1mexp(-f.args[0])
    return sp.log(base)


@_bottom_up
def _one_minus_pow(node):
    """m*B**e - m -> m*expm1(e*log(B)) for non-integer e (Kumaraswamy: 1 - (1 - y)**(1/b)).

    Near B = 1, B**e rounds to 1 and 1 - B**e keeps no digit: 1 - (1 - y)**b is 0 for
    y < 1.1e-16 where the true value is b*y, and near x = 1, 1 - x**a has a relative
    error of 1e-16/(1 - x**a). Through expm1 and log1p (or log1mexp) every digit stays.
    Taken where log(B) has a stable form: B = 1 + v, B = -expm1(v), or B > 0 (where a
    numeric e makes SymPy fold exp(e*log(B)) back into B**e, B > 0 stays as it is). Runs
    before the log1p rule, which would turn log(1 - (1 - y)**b) into log1p(-(1 - y)**b)
    with the same cancellation inside.
    """
    if not node.is_Add:
        return None
    for term in node.args:
        split = _split_factor(term, _is_power_with_stable_log)
        if split is None:
            continue
        power, m = split
        if -m in node.args:
            new = m * expm1(power.exp * _stable_log(power.base))
            return sp.Add(*_without(node, term, -m)) + new
    return None


@_bottom_up
def _expm1(node):
    """m*exp(u) - m -> m*expm1(u): exp(u) - 1, -1 + exp(u), 1 - exp(-a), c*exp(u) - c.

    exp(u) - 1 rounds to 0 for |u| < 1.1e-16 where the true value is u, and keeps only
    the absolute accuracy of exp(u) for |u| < 1.
    """
    if not node.is_Add:
        return None
    for term in node.args:
        split = _split_factor(term, lambda f: isinstance(f, sp.exp))
        if split is None:
            continue
        e, m = split
        if -m in node.args:
            return sp.Add(*_without(node, term, -m)) + m * expm1(e.args[0])
    return None


@_bottom_up
def _hypot(node):
    """sqrt(a**2 + b**2) -> hypot(a, b), e.g. sqrt(x**2 + 1) -> hypot(1, x); also 1/sqrt.

    x**2 overflows to inf for |x| > 1.34e154 though the root is finite, and underflows
    to 0 for |x| < 1.5e-154 in sqrt(x**2 + y**2).
    """
    if not node.is_Pow or not node.exp.is_Rational or node.exp.q != 2:
        return None
    pair = _sum_of_two_squares(node.base)
    return hypot(*pair) ** node.exp.p if pair is not None else None


@_bottom_up
def _ndtri(node):
    """erfinv(2*y - 1) -> ndtri(y)/sqrt(2), erfinv(1 - 2*y) -> -ndtri(y)/sqrt(2), erfcinv.

    2*y - 1 rounds to -1 for y < 1.1e-16 (erfinv(-1) = -inf, true value about -8.3 at
    y = 1e-17) and keeps only absolute accuracy below: the lower tail of the normal
    quantile is lost. So sqrt(2)*erfinv(2*y - 1) becomes ndtri(y).
    """
    if isinstance(node, sp.erfinv):
        w = node.args[0]
        up, down = sp.expand((w + 1) / 2), sp.expand((1 - w) / 2)
        if _has_no_constant(up):
            return ndtri(up) / sp.sqrt(2)
        if _has_no_constant(down):
            return -ndtri(down) / sp.sqrt(2)
        return None
    if isinstance(node, sp.erfcinv):
        half = node.args[0] / 2
        if sp.count_ops(half) < sp.count_ops(node.args[0]):
            return -ndtri(half) / sp.sqrt(2)
    return None


@_bottom_up
def _cbrt(node):
    """sign(b)*Abs(b)**(p/3) -> cbrt_real(b)**p (p odd): the real odd cube root.

    Not an overflow but a NaN and a rounding fix: pow(|b|, 1/3) is not correctly rounded
    (pow(64, 1/3) = 3.9999999999999996) and the sign/abs pair costs two branches; a
    cube root is exact on perfect cubes and odd by construction.
    """
    if not node.is_Mul:
        return None
    factors = node.args
    for s in factors:
        if not isinstance(s, sp.sign):
            continue
        b = s.args[0]
        for r in factors:
            if (
                r.is_Pow
                and r.base == sp.Abs(b)
                and r.exp.is_Rational
                and r.exp.q == 3
                and r.exp.p % 2 == 1
            ):
                others = [f for f in factors if f is not s and f is not r]
                return sp.Mul(*others) * cbrt_real(b) ** r.exp.p
    return None


@_bottom_up
def _sqrt_cancellation(node):
    """q*(a + sqrt(a**2 + b)) -> q*b/(sqrt(a**2 + b) - a) where a < 0 (hypot roots too).

    For a < -1e8 and b = O(1), a + sqrt(a**2 + b) cancels to 0 (true value about
    -b/(2a)); Cardano's root of x + x**3 = y does this for every y > 1e7. The rewritten
    form is exact for a < 0 and itself cancels for a > 0, so when SymPy cannot tell the
    sign of a the result is a Piecewise on it; for a known positive nothing changes.
    """
    if not node.is_Add or len(node.args) != 2:
        return None
    for t_root, t_other in (node.args, node.args[::-1]):
        q, root = t_root.as_coeff_Mul()
        radicand = _radicand(root)
        if radicand is None or t_other.has(root):
            continue
        a = t_other / q
        if a.is_positive:
            continue
        b = sp.expand(radicand - a**2)
        if b == 0 or b.has(*a.free_symbols) or not b.is_positive:
            continue
        if a.is_negative:
            return q * b / (root - a)
        # Both branches hold the root as one marked unit: this rule matches bare roots
        # only, so neither branch (nor a rearranged form of it) is rewritten again.
        unit = sp.UnevaluatedExpr(root)
        return sp.Piecewise((q * b / (unit - a), a < 0), (t_other + q * unit, True))
    return None


#: Functions that go to -inf or +inf at an end of their domain, as log does.
_LOG_LIKE = (sp.log, log1p, log1mexp, log_ndtr, log_sigmoid, softplus_inverse, logsinh, logit)


@_bottom_up
def _collect_logs(node):
    """a*log(u) + b*log(u) -> (a + b)*log(u), products expanded first (log1p etc. alike).

    Where u rounds to 0 or inf the two terms are inf - inf = nan: the Power inverse
    log-det -log(y) + log(y)/power is nan at y = 0, which x**2.5 gives for x < 1e-123,
    while (1/power - 1)*log(y) is the right limit, inf. Runs last, after every rule that
    makes logs.
    """
    if not node.is_Add:
        return None
    terms = [sp.expand_mul(t, deep=False) for t in node.args]
    expanded = sp.Add(*terms)
    counts: dict[sp.Expr, int] = {}
    for term in sp.Add.make_args(expanded):
        for factor in sp.Mul.make_args(term):
            if isinstance(factor, _LOG_LIKE):
                counts[factor] = counts.get(factor, 0) + 1
    repeated = sorted((f for f, n in counts.items() if n > 1), key=sp.default_sort_key)
    return sp.collect(expanded, repeated) if repeated else None


#: The rule table, in the order `stabilize` applies it within each pass.
RULES: tuple[Rule, ...] = tuple(
    sorted(
        (
            Rule(
                "ndtr",
                8,
                _ndtr,
                "(1 + erf(x/sqrt(2)))/2 rounds to 0 for x < -8.3 (lower tail lost)",
                ("(1 + erf(x/sqrt(2)))/2", "erfc(-x/sqrt(2))/2", "1 - erf(x)"),
            ),
            Rule(
                "log_sigmoid",
                10,
                _log_sigmoid,
                "log(1/(1 + exp(-u))) is -inf for u < -709.78 (exp overflow)",
                ("log(1/(1 + exp(-x)))", "log(sigmoid(x))"),
            ),
            Rule(
                "softplus",
                12,
                _softplus,
                "log(1 + exp(u)) overflows to inf for u > 709.78",
                ("log(1 + exp(x))", "log(exp(-x) + 1)", "log(2 + 3*exp(x))"),
            ),
            Rule(
                "softplus_inverse",
                14,
                _softplus_inverse,
                "log(exp(u) - 1) overflows for u > 709.78, is -inf for u < 1.1e-16",
                ("log(exp(y) - 1)", "log(expm1(y))"),
            ),
            Rule(
                "log1mexp",
                16,
                _log1mexp,
                "log(1 - exp(-a)) is -inf for a < 1.1e-16, loses digits for a < 0.69",
                ("log(1 - exp(-a))", "log(-expm1(-a))"),
            ),
            Rule(
                "logcosh",
                18,
                _logcosh,
                "log(cosh(u)) overflows to inf for |u| > 710.48",
                ("log(cosh(x))", "-2*log(cosh(x))"),
            ),
            Rule(
                "logsinh",
                19,
                _logsinh,
                "log(sinh(u)) overflows to inf for u > 710.48",
                ("log(sinh(a))",),
            ),
            Rule(
                "asinh",
                20,
                _asinh,
                "log(u + sqrt(u**2 + 1)) is -inf for u < -1e8 (cancellation)",
                ("log(x + sqrt(x**2 + 1))", "log(sqrt(x**2 + 4) - x)"),
            ),
            Rule(
                "acosh",
                21,
                _acosh,
                "log(u + sqrt(u**2 - 1)) overflows for u > 1.3e154",
                ("log(a + sqrt(a**2 - 1))",),
            ),
            Rule(
                "logit",
                22,
                _logit,
                "-log(1/y - 1) is 36.04 for 36.74 at y = 1 - 2**-53 (1/y rounds)",
                ("log(-y/(y - 1))", "log((1 - y)/y)", "-log(-1 + 1/y)"),
            ),
            Rule(
                "atanh",
                24,
                _atanh,
                "log((1 + t)/(1 - t)) is 0 for |t| < 1.1e-16 (quotient rounds to 1)",
                ("log((-y - 1)/(y - 1))/2", "log((1 + x)/(1 - x))"),
            ),
            Rule(
                "log_reciprocal",
                26,
                _log_reciprocal,
                "log(-1/(y - 1)) hides log(1 - y) from the log1p rule",
                ("log(1/y)", "log(-1/(y - 1))"),
            ),
            Rule(
                "log_product",
                27,
                _log_product,
                "log(x**(p - 1)*c) is inf once the product overflows (x = 1e200, p = 3)",
                ("log(a**(b - 1)*Abs(x))", "log(y**3*exp(x))"),
            ),
            Rule(
                "log_ndtr",
                28,
                _log_ndtr,
                "log(ndtr(x)) is -inf for x < -38.5 (ndtr underflow)",
                ("log(ndtr(x))", "log(ndtr(x)/2)"),
            ),
            Rule(
                "sigmoid",
                30,
                _sigmoid,
                "exp(u)/(1 + exp(u)) is nan for u > 709.78 (inf/inf)",
                ("1/(1 + exp(-x))", "exp(x)/(1 + exp(x))", "exp(-x)/(1 + exp(-x))**2"),
            ),
            Rule(
                "absorb_linear",
                32,
                _absorb_linear,
                "u - softplus(u) cancels to 0 for u > 37 (nan for u > 709.78 unstabilized)",
                ("x - softplus(x)", "x - 2*softplus(x)", "y - softplus_inverse(y)"),
            ),
            Rule(
                "log_hypot",
                34,
                _log_hypot,
                "log(x**2 + 1) overflows to inf for |x| > 1.34e154",
                ("log(x**2 + 1)", "log(x**2 + 4*v**2)"),
            ),
            Rule(
                "log1p",
                36,
                _log1p,
                "log(1 + u) is 0 for |u| < 1.1e-16; log(1 - y) loses digits near y = 1",
                ("log(1 + x)", "log(y + 1)", "log(1 - y)", "-log(1 - y**2)"),
            ),
            Rule(
                "one_minus_pow",
                35,
                _one_minus_pow,
                "1 - (1 - y)**b is 0 for y < 1.1e-16 (true value b*y)",
                (
                    "1 - (1 - y)**(1/b)",
                    "(1 - (1 - y)**(1/b))**(1/a)",
                    "1 - a**b",
                    "1 - sqrt(1 - y)",
                ),
            ),
            Rule(
                "expm1",
                40,
                _expm1,
                "exp(u) - 1 is 0 for |u| < 1.1e-16 (true value u)",
                ("exp(x) - 1", "a*exp(x) - a", "1 - exp(-a)"),
            ),
            Rule(
                "hypot",
                42,
                _hypot,
                "sqrt(x**2 + 1) overflows to inf for |x| > 1.34e154",
                ("sqrt(x**2 + 1)", "1/sqrt(x**2 + v**2)"),
            ),
            Rule(
                "log_of_hypot",
                43,
                _log_of_hypot,
                "log(hypot(1, x)) rounds to 0 for |x| < 1e-8 (true value x**2/2)",
                ("log(hypot(1, x))", "log(hypot(x, 2))"),
            ),
            Rule(
                "ndtri",
                44,
                _ndtri,
                "sqrt(2)*erfinv(2*y - 1) is -inf for y < 1.1e-16 (lower tail lost)",
                ("sqrt(2)*erfinv(2*y - 1)", "erfinv(1 - 2*y)", "erfcinv(2*y)"),
            ),
            Rule(
                "cbrt",
                46,
                _cbrt,
                "sign(b)*Abs(b)**(1/3) is not correctly rounded; needs two branches",
                ("sign(x)*Abs(x)**(1/3)", "2*sign(x - 1)*Abs(x - 1)**(1/3)"),
            ),
            Rule(
                "sqrt_cancellation",
                48,
                _sqrt_cancellation,
                "a + sqrt(a**2 + b) cancels to 0 for a < -1e8 (a known negative)",
                ("n + sqrt(n**2 + 1)",),
            ),
            Rule(
                "sech_squared",
                37,
                _sech_squared,
                "1 - tanh(u)**2 keeps 8 of 16 digits at u = 10 (tanh's derivative)",
                ("1 - tanh(x)**2", "2 - 2*tanh(x/2)**2"),
            ),
            Rule(
                "log1p_difference_of_squares",
                38,
                _log1p_difference_of_squares,
                "log1p(-y**2) keeps 8 of 16 digits at y = -0.99999999588 (y**2 rounds first)",
                ("log1p(-u**2)", "-log1p(-x**2)"),
            ),
            Rule(
                "collect_logs",
                50,
                _collect_logs,
                "log(y)/p - log(y) is inf - inf = nan where y rounds to 0 or inf",
                ("log(y)/a - log(y)", "a*(log(y) - log(b)) - log(y)", "log1p(-y)/a - log1p(-y)"),
            ),
        ),
        key=lambda rule: rule.priority,
    )
)

#: Names in example texts: x, u, v real; y, a, b positive (y usually in (0, 1)); n negative.
_EXAMPLE_NAMESPACE = {
    **{s: sp.Symbol(s, real=True) for s in ("x", "u", "v")},
    **{s: sp.Symbol(s, positive=True) for s in ("y", "a", "b")},
    "n": sp.Symbol("n", negative=True),
    **{cls.__name__: cls for cls in FUNCTIONS},
    "log1p": log1p,
    "expm1": expm1,
    "hypot": hypot,
}


def parse_example(text: str) -> sp.Expr:
    """A rule's example text as a SymPy expression (symbols as `_EXAMPLE_NAMESPACE` says)."""
    return sp.sympify(text, locals=_EXAMPLE_NAMESPACE)


def stabilize(expr: sp.Expr, *, check: bool = True, strict: bool = False) -> sp.Expr:
    """Rewrites `expr` into a numerically stable form of the same function.

    Applies `RULES` in priority order, pass after pass, until a pass changes nothing (at
    most `MAX_PASSES`). Deterministic: the same input gives the same output. Symbol
    assumptions (positive=True, ...) are what the rules see as the domain.

    Args:
        expr: any SymPy expression; Piecewise and conditions are rewritten inside.
        check: re-check every rewrite of a subtree with `check_rewrite` and keep only
            those that pass. Off only for trusted inputs (e.g. benchmarks).
        strict: raise instead of skipping a rewrite that fails its check (tests).

    Raises:
        CheckFailedError: with `strict=True`, if a rewrite fails its check.

    Example:
        >>> x = sp.Symbol("x", real=True)
        >>> stabilize(x - sp.log(sp.exp(x) + 1))
        -softplus(-x)
    """
    expr = sp.sympify(expr)
    token = _VERIFIER.set(_Verifier(strict=strict) if check else None)
    try:
        for _ in range(MAX_PASSES):
            before = expr
            for rule in RULES:
                expr = rule.apply(expr)
            if expr == before:
                break
    finally:
        _VERIFIER.reset(token)
    return expr


def stabilize_forward(spec: BijectorSpec, *, check: bool = True) -> sp.Expr:
    """The stable form of the declared forward map; the spec itself stays as declared."""
    return stabilize(spec.forward_expr, check=check)


def stabilize_derivation(d: Derivation, *, check: bool = True) -> Derivation:
    """`d` with its inverse and both log-dets in stable form (spec and codomain as they are).

    For Softplus: the inverse log(exp(y) - 1) becomes softplus_inverse(y), the forward
    log-det x - log(exp(x) + 1) becomes -softplus(-x).
    """
    return d.replace(
        inverse_expr=stabilize(d.inverse_expr, check=check),
        fldj_expr=stabilize(d.fldj_expr, check=check),
        ildj_expr=stabilize(d.ildj_expr, check=check),
    )
