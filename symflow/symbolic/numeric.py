"""High-precision (mpmath) evaluation of SymPy expressions, and the sample grids checks use.

This is the independent truth every check compares against: expressions are evaluated in
mpmath at `DPS` significant digits, derivatives by mpmath's numerical differentiation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import mpmath
import sympy as sp

from symflow.symbolic.spec import BijectorSpec, Constraint

__all__ = [
    "DPS",
    "ROUND_TRIP_DPS",
    "domain_grid",
    "mp_function",
    "mp_real",
    "parameter_sets",
]

DPS = 50
#: Round trips run at enough digits to resolve f(x) for every float64 x: sigmoid(700) is
#: 1 - 1e-304, and 0.5 + 2.5e-301 is sigmoid(1e-300). At 50 digits both would be rounded
#: to a codomain end or to 0.5 and the inverse could not be told right from wrong.
ROUND_TRIP_DPS = 360

#: Offsets from an infinite end or from a finite end of the domain: tails as far as float64
#: carries them (1e-300 from a finite end, 700 out on a half-line).
_TAIL_OFFSETS = (1e-300, 1e-100, 1e-30, 1e-12, 1e-6, 1e-3, 0.05, 0.3)
_FAR = (3.0, 10.0, 30.0, 100.0, 300.0, 700.0)

_MPMATH_EXTRA: dict[str, Callable] = {}


def register_mpmath(name: str, impl: Callable) -> None:
    """Makes a custom SymPy function (by class name) evaluable by `mp_function`."""
    _MPMATH_EXTRA[name] = impl


class _Group(sp.Function):
    """An evaluated-as-a-unit subexpression: what `sp.UnevaluatedExpr` marks.

    lambdify prints UnevaluatedExpr without parentheses, so (a - b)**3 would come out as
    a - b**3; a call keeps both the meaning and the order of rounding.
    """


def mp_function(args: Sequence[sp.Symbol], expr: sp.Expr) -> Callable:
    """`expr` as a Python function of `args` evaluated in mpmath (call inside `mpmath.workdps`).

    At low precision (`mpmath.workprec(53)`) it rounds like float64, in the same order as
    the kernels: groups marked with `sp.UnevaluatedExpr` are evaluated as units.
    """
    if expr.has(sp.UnevaluatedExpr):
        expr = expr.replace(
            lambda e: isinstance(e, sp.UnevaluatedExpr), lambda e: _Group(e.args[0])
        )
    return sp.lambdify(
        list(args), expr, modules=[{"_Group": lambda v: v, **_MPMATH_EXTRA}, "mpmath"]
    )


def mp_real(value, scale=1) -> mpmath.mpf | None:
    """The real value of an mpmath result, or None if it is complex or not a number."""
    try:
        v = mpmath.mpmathify(value)
    except (TypeError, ValueError):
        return None
    if isinstance(v, mpmath.mpc):
        if abs(v.imag) > mpmath.mpf(10) ** (-(DPS - 10)) * max(1, abs(v.real), abs(scale)):
            return None
        v = v.real
    if mpmath.isnan(v):
        return None
    return v


def domain_grid(domain: Constraint, *, dense: int = 41) -> list[float]:
    """Float64 points across `domain`, tails included; sorted, without duplicates."""
    lo, hi = domain.lo_float, domain.hi_float
    pts: set[float] = set()
    if math.isinf(lo) and math.isinf(hi):
        pts.update(-10 + 20 * i / (dense - 1) for i in range(dense))
        for d in _TAIL_OFFSETS + _FAR:
            pts.update((d, -d))
    elif math.isinf(hi):
        pts.update(lo + d for d in _TAIL_OFFSETS + _FAR)
        pts.update(lo + 10 * (i + 1) / dense for i in range(dense))
    elif math.isinf(lo):
        pts.update(hi - d for d in _TAIL_OFFSETS + _FAR)
        pts.update(hi - 10 * (i + 1) / dense for i in range(dense))
    else:
        width = hi - lo
        pts.update(lo + width * (i + 1) / (dense + 1) for i in range(dense))
        pts.update(lo + width * d for d in _TAIL_OFFSETS if d < 0.5)
        # float64 cannot come closer to a finite upper end than one ULP of it.
        pts.update(hi - width * d for d in (1e-15, 1e-12, 1e-9, 1e-6, 1e-3, 0.05, 0.3))
    if domain.excludes_zero:
        pts.discard(0.0)
    return sorted(p for p in pts if lo < p < hi)


def parameter_sets(spec: BijectorSpec) -> list[dict[str, float]]:
    """A few parameter assignments spread over each parameter's constraint.

    The first set uses declared defaults where there are any; the others rotate through
    each constraint's representatives so that parameters vary against each other.
    """
    if not spec.parameters:
        return [{}]
    sets = []
    first = {
        p.name: p.default if p.default is not None else p.constraint.representatives()[0]
        for p in spec.parameters
    }
    sets.append(first)
    for k in range(4):
        sets.append(
            {
                p.name: p.constraint.representatives()[(k + j) % 4]
                for j, p in enumerate(spec.parameters)
            }
        )
    unique = []
    for s in sets:
        if s not in unique:
            unique.append(s)
    return unique
