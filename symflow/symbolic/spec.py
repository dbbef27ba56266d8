"""The declared bijector: input symbol, parameters with constraints, domain, forward map.

`BijectorSpec` is the hand-off from the DSL to derivation. It holds SymPy objects only;
nothing here derives or checks anything.
"""

from __future__ import annotations

import keyword
import math
from dataclasses import dataclass

import numpy as np
import sympy as sp

from symflow.errors import DeclarationError

__all__ = [
    "BijectorSpec",
    "Constraint",
    "Interval",
    "NonZero",
    "Parameter",
    "Positive",
    "Real",
    "RESERVED_NAMES",
    "UnitInterval",
    "check_identifier",
]


@dataclass(frozen=True)
class Constraint:
    """A set of real numbers: the open interval (lo, hi), optionally without zero.

    Used both for parameter constraints and for the domain of a bijector's input.
    Parameter values must lie strictly inside; inputs may also sit on a finite endpoint
    (where the kernels return the limit, e.g. `Exp().inverse(0.0) == -inf`).
    """

    name: str
    lo: sp.Expr
    hi: sp.Expr
    excludes_zero: bool = False

    @property
    def lo_float(self) -> float:
        return float(self.lo)

    @property
    def hi_float(self) -> float:
        return float(self.hi)

    @property
    def is_real_line(self) -> bool:
        return self.lo == -sp.oo and self.hi == sp.oo and not self.excludes_zero

    def symbol(self, name: str) -> sp.Symbol:
        """A SymPy symbol carrying the assumptions this constraint implies."""
        if self.lo.is_nonnegative:
            return sp.Symbol(name, positive=True)
        if self.hi.is_nonpositive:
            return sp.Symbol(name, negative=True)
        if self.excludes_zero:
            return sp.Symbol(name, real=True, nonzero=True)
        return sp.Symbol(name, real=True)

    def contains(self, values: np.ndarray, *, closed: bool = False) -> np.ndarray:
        """Elementwise membership; NaN is never a member."""
        v = np.asarray(values, dtype=np.float64)
        lo, hi = self.lo_float, self.hi_float
        inside = (v >= lo) & (v <= hi) if closed else (v > lo) & (v < hi)
        if self.excludes_zero and not closed:
            inside &= v != 0
        return inside

    def representatives(self) -> tuple[float, ...]:
        """Typical interior values, used to check derivations at several parameter values.

        The first entry is the 'plain' value (1 for scales, 0 for locations); the rest
        spread across the set, both sides of 1 for positive sets.
        """
        lo, hi = self.lo_float, self.hi_float
        if math.isinf(lo) and math.isinf(hi):
            vals = (0.0, 0.7, -1.3, 2.5) if not self.excludes_zero else (1.0, -0.7, 2.5, -1.9)
        elif math.isinf(hi):
            vals = tuple(lo + d for d in (1.0, 0.35, 2.5, 0.8))
        elif math.isinf(lo):
            vals = tuple(hi - d for d in (1.0, 0.35, 2.5, 0.8))
        else:
            vals = tuple(lo + (hi - lo) * t for t in (0.5, 0.2, 0.85, 0.35))
        return vals

    def describe(self) -> str:
        lo = "-inf" if self.lo == -sp.oo else str(self.lo)
        hi = "inf" if self.hi == sp.oo else str(self.hi)
        text = f"({lo}, {hi})"
        return text + " without 0" if self.excludes_zero else text

    def canonical(self) -> str:
        return f"{self.name}:{sp.srepr(self.lo)}:{sp.srepr(self.hi)}:{int(self.excludes_zero)}"


def Interval(lo: float | sp.Expr, hi: float | sp.Expr) -> Constraint:  # noqa: N802 (TFP-style name)
    """The open interval (lo, hi); use `-sp.oo` / `sp.oo` (or ±math.inf) for a half-line.

    Raises:
        DeclarationError: if lo >= hi or a bound is not a real number.
    """
    bounds = []
    for b in (lo, hi):
        e = sp.oo if b == math.inf else -sp.oo if b == -math.inf else sp.sympify(b)
        if not (e.is_real or e in (sp.oo, -sp.oo)) or e.free_symbols:
            raise DeclarationError(f"Interval: bounds must be real numbers; got {b!r}.")
        bounds.append(sp.nsimplify(e) if e.is_Float else e)
    if not bool(bounds[0] < bounds[1]):
        raise DeclarationError(f"Interval: expected lo < hi; got lo={lo!r}, hi={hi!r}.")
    return Constraint(f"Interval({bounds[0]}, {bounds[1]})", bounds[0], bounds[1])


Real = Constraint("Real", -sp.oo, sp.oo)
Positive = Constraint("Positive", sp.Integer(0), sp.oo)
UnitInterval = Constraint("UnitInterval", sp.Integer(0), sp.Integer(1))
NonZero = Constraint("NonZero", -sp.oo, sp.oo, excludes_zero=True)


#: Names generated modules use for themselves: a parameter called `math` would shadow them.
RESERVED_NAMES = frozenset(
    {"math", "np", "numba", "abs", "min", "max", "float", "int", "range", "out", "e", "pi"}
)


def check_identifier(name: str, what: str) -> str:
    """Rejects names that cannot be used verbatim in generated Python code.

    Raises:
        DeclarationError: for a non-identifier, a keyword, a reserved or underscored name.
    """
    if name in RESERVED_NAMES:
        raise DeclarationError(
            f"{what}: {name!r} is reserved by symflow's generated code (reserved: "
            f"{', '.join(sorted(RESERVED_NAMES))}). Choose another name."
        )
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise DeclarationError(
            f"{what}: {name!r} is not a valid Python identifier, so it cannot name a "
            "variable in generated code. Use letters, digits and underscores, not starting "
            "with a digit, and not a Python keyword."
        )
    if name.startswith("_"):
        raise DeclarationError(
            f"{what}: {name!r} starts with an underscore; such names are reserved for "
            "symflow's generated temporaries. Rename it."
        )
    return name


@dataclass(frozen=True)
class Parameter:
    """A named, constrained parameter of a bijector, with an optional default value."""

    name: str
    constraint: Constraint
    symbol: sp.Symbol
    default: float | None = None


@dataclass(frozen=True)
class BijectorSpec:
    """What the user declared: y = forward_expr(x; parameters) for x in `domain`."""

    name: str
    x: sp.Symbol
    parameters: tuple[Parameter, ...]
    domain: Constraint
    forward_expr: sp.Expr

    @property
    def parameter_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.parameters)

    @property
    def parameter_symbols(self) -> tuple[sp.Symbol, ...]:
        return tuple(p.symbol for p in self.parameters)

    def canonical(self) -> str:
        """A text that changes whenever anything that affects the derivation changes."""
        params = ";".join(
            f"{p.name}|{p.constraint.canonical()}|{p.default!r}" for p in self.parameters
        )
        return (
            f"name={self.name}\nx={self.x.name}\ndomain={self.domain.canonical()}\n"
            f"params={params}\nforward={sp.srepr(self.forward_expr)}\n"
        )
