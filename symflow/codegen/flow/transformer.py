"""A declared elementwise bijector as scalar code: the cores every member kind calls.

An elementwise member applies a declared bijector with the same parameters to every
coordinate; a masked autoregressive or coupling layer applies it with parameters that a
network computes per coordinate and row (its *transformer*). Both call the same scalar
functions, emitted here once per declaration from its stabilized expressions:

- `<p>_constants(θ...)`: the parameter-only terms (1/alpha, log(scale), TFP's SinhArcsinh
  multiplier), hoisted so that a member with fixed parameters computes them once per call;
- `<p>_inverse(y, θ..., k...)` → (x, log|dx/dy|);
- `<p>_forward(x, θ..., k...)` → (y, log|dy/dx|);
- `<p>_backward(y, θ..., k...)` → (x, log|dx/dy|, dx/dy, dx/dθ..., d log|dx/dy|/dy,
  d log|dx/dy|/dθ...), the partials by the implicit function theorem at the kernel's own
  x = g(y): dx/dy = 1/f_x, dx/dθ = -f_θ/f_x, and the log-det -log|f_x(x)| differentiated
  through x. Working at x keeps Piecewise conditions simple (x >= 0, not a condition on
  g(y)): each branch folds into a select between cheap values.

The parameters a network produces are unconstrained numbers; `output_constraint_exprs` maps
them into each parameter's constraint (with a floor that keeps them off its boundary).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import sympy as sp

from symflow.codegen.fuse import hoist_parameter_terms
from symflow.codegen.printer import KernelPrinter
from symflow.symbolic.functions import sigmoid, softplus

__all__ = [
    "OUTPUT_FLOOR",
    "Transformer",
    "TransformerCode",
    "TransformerExprs",
    "output_constraint_exprs",
    "output_unconstrain",
]

#: A network output that feeds a constrained parameter keeps this far inside the
#: constraint: a Positive parameter is OUTPUT_FLOOR + softplus(u) (a scale never below
#: 1e-3, as zuko's and nflows' minimum bin widths and slopes), a finite interval (lo, hi)
#: is lo + (hi - lo)(OUTPUT_FLOOR + (1 - 2 OUTPUT_FLOOR) sigmoid(u)). Without a floor a
#: saturated output rounds onto the boundary (softplus(-800) = 0), where a transformer's
#: log-det is infinite.
OUTPUT_FLOOR = 1e-3


@dataclass(frozen=True)
class TransformerExprs:
    """A declared elementwise bijector's stabilized maths, as the runtime hands it over.

    Attributes:
        name: the declaration's name; key: its content hash (covers the maths).
        x, y: input and output symbols; parameters: parameter symbols in declaration order.
        constraints: each parameter's constraint (symflow Constraint objects).
        forward, inverse, fldj, ildj: the kernels' stabilized expressions.
        forward_partials, fldj_partials: d/d(x, θ...) of forward and of fldj, in x.
    """

    name: str
    key: str
    x: sp.Symbol
    y: sp.Symbol
    parameters: tuple[sp.Symbol, ...]
    constraints: tuple
    forward: sp.Expr
    inverse: sp.Expr
    fldj: sp.Expr
    ildj: sp.Expr
    forward_partials: tuple[sp.Expr, ...]
    fldj_partials: tuple[sp.Expr, ...]

    @property
    def parameter_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.parameters)


@dataclass(frozen=True)
class Transformer:
    """What a member needs of a declaration before emitting (nothing symbolic): its name,
    content hash, parameters and their constraints; `load()` gives the maths (SymPy) only
    when a module is emitted, so a cached module loads without touching SymPy."""

    name: str
    key: str
    parameter_names: tuple[str, ...]
    constraints: tuple
    load: Callable[[], TransformerExprs] = field(compare=False, repr=False)


class TransformerCode:
    """Emits (once per module) the scalar cores of one declaration; see the module doc."""

    def __init__(self, transformer: Transformer) -> None:
        self.transformer = transformer
        self.prefix = f"_tf_{transformer.name}_{transformer.key[:8]}"
        self.n_params = len(transformer.parameter_names)
        self._text: str | None = None
        self.n_constants = 0

    def emit(self, printer: KernelPrinter) -> str:
        """The cores' source (computed once; the printer records the helpers it needs)."""
        if self._text is None:
            self._text = self._emit(printer)
        return self._text

    def call(self, kind: str, value: str, params: list[str], constants: list[str]) -> str:
        """Source of a call of core `kind` ('inverse', 'forward', 'backward')."""
        return f"{self.prefix}_{kind}({', '.join([value, *params, *constants])})"

    def constants_call(self, params: list[str]) -> str:
        return f"{self.prefix}_constants({', '.join(params)})"

    def returns(self, kind: str, tag: str) -> list[str]:
        """Local names for the outputs of core `kind`, suffixed by `tag`."""
        if kind in ("inverse", "forward"):
            return [f"_o{tag}", f"_l{tag}"]
        n = self.n_params
        return [
            f"_o{tag}", f"_l{tag}", f"_dxdy{tag}", *[f"_dxdp{tag}_{j}" for j in range(n)],
            f"_dldy{tag}", *[f"_dldp{tag}_{j}" for j in range(n)],
        ]  # fmt: skip

    def _emit(self, printer: KernelPrinter) -> str:
        e = self.transformer.load()
        y_in, x_in = sp.Symbol("_y", real=True), sp.Symbol("_x", real=True)
        to_y, to_x = {e.y: y_in}, {e.x: x_in}
        params = set(e.parameters)
        table: dict = {}
        inverse = hoist_parameter_terms(
            [e.inverse.xreplace(to_y), e.ildj.xreplace(to_y)], params, table
        )
        forward = hoist_parameter_terms(
            [e.forward.xreplace(to_x), e.fldj.xreplace(to_x)], params, table
        )
        fwd = [d.xreplace(to_x) for d in (*e.forward_partials, *e.fldj_partials)]
        n = self.n_params
        fx, fps, lx, lps = fwd[0], fwd[1 : 1 + n], fwd[1 + n], fwd[2 + n :]
        # The implicit function theorem, folded into each Piecewise piece: a branch then
        # selects between cheap values (1 or 1/alpha, hoisted) and never feeds a division.
        fold = sp.piecewise_fold
        dxdy = fold(1 / fx)
        dxdp = [fold(-fp / fx) for fp in fps]
        dldy = fold(-lx / fx)
        dldp = [fold(-(lp + lx * d)) for lp, d in zip(lps, dxdp, strict=True)]
        derivs = hoist_parameter_terms([dxdy, *dxdp, dldy, *dldp], params, table)
        names = list(e.parameter_names)
        consts = [str(t) for t in table.values()]
        self.n_constants = len(consts)
        label = f"{e.name} (declared; key {e.key[:16]})"
        parts = [
            _function(
                f"{self.prefix}_constants",
                names,
                f"{label}: its parameter-only terms.",
                [(t, printer.print_expr(ex)) for ex, t in table.items()],
                consts,
            ),
            _cse_function(
                f"{self.prefix}_inverse", ["_y", *names, *consts],
                f"{label}: x = g(y) and log|dx/dy|.", inverse, ["_x", "_ildj"], printer,
            ),
            _cse_function(
                f"{self.prefix}_forward", ["_x", *names, *consts],
                f"{label}: y = f(x) and log|dy/dx|.", forward, ["_y", "_fldj"], printer,
            ),
        ]  # fmt: skip
        backward = _cse_groups(
            [(inverse, ["_x", "_ildj"]), (derivs, self.returns("backward", "")[2:])], printer
        )
        outs = self.returns("backward", "")
        outs[:2] = ["_x", "_ildj"]
        parts.append(
            _function(
                f"{self.prefix}_backward",
                ["_y", *names, *consts],
                f"{label}: x = g(y), log|dx/dy|, and both differentiated with respect to "
                f"(y, {', '.join(names) or 'no parameters'}).",
                backward,
                outs,
            )
        )
        return "\n".join(parts)


def _cse_groups(groups, printer) -> list[tuple[str, str]]:
    temps = sp.numbered_symbols("_t")
    body = []
    for exprs, labels in groups:
        replacements, reduced = sp.cse(exprs, symbols=temps, order="canonical", list=True)
        body += [(str(t), printer.print_expr(ex)) for t, ex in replacements]
        body += [(n, printer.print_expr(ex)) for n, ex in zip(labels, reduced, strict=True)]
    return body


def _cse_function(name, args, doc, exprs, labels, printer) -> str:
    return _function(name, args, doc, _cse_groups([(exprs, labels)], printer), labels)


def _function(name: str, args: list[str], doc: str, body: list[tuple[str, str]], outs) -> str:
    lines = [
        "",
        '@numba.njit(cache=True, error_model="numpy")',
        f"def {name}({', '.join(args)}):",
        f'    """{doc}"""',
        *(f"    {t} = {text}" for t, text in body),
        f"    return ({', '.join(outs)}{',' if outs else ''})",
        "",
    ]
    return "\n".join(lines)


def _bounds(constraint) -> tuple[float | None, float | None]:
    lo = None if constraint.lo == -sp.oo else float(constraint.lo)
    hi = None if constraint.hi == sp.oo else float(constraint.hi)
    if constraint.name == "NonZero":  # produced positive: a sign cannot flip continuously
        return 0.0, None
    return lo, hi


def output_constraint_exprs(constraint, raw: sp.Symbol) -> tuple[sp.Expr, sp.Expr]:
    """(value, d value / d raw) of a parameter computed from an unconstrained output.

    Real: raw. Lower bound lo only: lo + OUTPUT_FLOOR + softplus(raw). Upper bound only:
    hi - OUTPUT_FLOOR - softplus(-raw). Both (lo, hi): lo + (hi - lo)(OUTPUT_FLOOR +
    (1 - 2 OUTPUT_FLOOR) sigmoid(raw)). A NonZero parameter is produced positive (a network
    cannot move it across 0 continuously), as a Positive one.
    """
    lo, hi = _bounds(constraint)
    f = sp.Float(OUTPUT_FLOOR)
    if lo is not None and hi is not None:
        width = sp.Float(hi - lo) * (1 - 2 * f)
        return sp.Float(lo) + sp.Float(hi - lo) * f + width * sigmoid(raw), width * sigmoid(
            raw
        ) * sigmoid(-raw)
    if lo is not None:
        return sp.Float(lo) + f + softplus(raw), sigmoid(raw)
    if hi is not None:
        return sp.Float(hi) - f - softplus(-raw), sigmoid(-raw)
    return raw, sp.S.One


def output_unconstrain(constraint, value: float) -> float:
    """The raw output that `output_constraint_exprs` maps to `value` (float64).

    Raises:
        ValueError: if `value` lies outside what the map reaches (within OUTPUT_FLOOR of a
            bound).
    """
    lo, hi = _bounds(constraint)
    if lo is not None and hi is not None:
        s = ((value - lo) / (hi - lo) - OUTPUT_FLOOR) / (1 - 2 * OUTPUT_FLOOR)
        if not 0.0 < s < 1.0:
            raise ValueError(value)
        return math.log(s) - math.log1p(-s)
    if lo is not None or hi is not None:
        v = value - lo - OUTPUT_FLOOR if lo is not None else hi - OUTPUT_FLOOR - value
        if not v > 0.0:
            raise ValueError(value)
        raw = v + math.log(-math.expm1(-v))  # softplus^-1(v), stable for small and large v
        return raw if lo is not None else -raw
    return float(value)
