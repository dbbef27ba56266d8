"""Declared bijectors: the pipeline driver from a forward map to loaded kernels.

`@sf.bijector` wraps a function into a `DeclaredBijector`. On first use it runs
declare → check invertible → derive → check → stabilize → emit → cache/load, or takes the
whole result from the kernel cache when the declaration's hash is already there. Calling
it with parameter values gives a bound `ElementwiseBijector`.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable

import sympy as sp
from sympy.codegen.cfunctions import expm1, hypot, log1p

from symflow._version import __version__
from symflow.checks import (
    CheckReport,
    CheckResult,
    check_derivation,
    check_invertible,
    check_log_det,
    check_round_trip,
    float64_inverse_error,
)
from symflow.codegen.emit import KernelPlan, emit_module
from symflow.codegen.hashing import spec_hash
from symflow.errors import ConstraintError, DeclarationError
from symflow.runtime.accuracy import accuracy_report
from symflow.runtime.bijector import ElementwiseBijector, validate_parameter
from symflow.runtime.loader import CacheEntry, read_entry, write_entry
from symflow.stabilize import stabilize, stabilize_derivation, stabilize_forward
from symflow.symbolic import functions as _functions
from symflow.symbolic.derive import Derivation, derivative, derive, derive_partials
from symflow.symbolic.dsl import spec_from_expr, spec_from_function
from symflow.symbolic.functions import newton_step
from symflow.symbolic.spec import BijectorSpec, Constraint, Real

__all__ = ["DeclaredBijector", "bijector", "build_plan"]

#: Names a meta file's srepr text may use beyond SymPy's own namespace.
_SYMPY_NS = {
    **{cls.__name__: cls for cls in _functions.FUNCTIONS},
    "log1p": log1p,
    "expm1": expm1,
    "hypot": hypot,
    "newton_step": newton_step,
}


def bijector(fn: Callable | None = None, *, domain: Constraint = Real, name: str | None = None):
    """Declares a scalar bijector from its forward map; usable bare or with arguments.

    Example:
        >>> import sympy as sp, symflow as sf
        >>> @sf.bijector
        ... def shift_exp(x, shift: sf.Real = 0.0):
        ...     return sp.exp(x) + shift
        >>> b = shift_exp(shift=1.0)            # doctest: +SKIP
        >>> float(b.forward(0.0))               # doctest: +SKIP
        2.0
    """

    def wrap(f: Callable) -> DeclaredBijector:
        return DeclaredBijector(f, domain=domain, name=name)

    return wrap(fn) if fn is not None else wrap


class DeclaredBijector:
    """A forward map with derived, verified inverse and log-dets and compiled kernels.

    Nothing is derived or compiled until first needed; everything after that comes from
    the on-disk cache when the declaration has not changed.
    """

    def __init__(
        self,
        fn: Callable | None = None,
        *,
        domain: Constraint = Real,
        name: str | None = None,
        spec: BijectorSpec | None = None,
    ) -> None:
        self._fn = fn
        self._domain = domain
        self._name = name or getattr(fn, "__name__", None) or (spec.name if spec else "bijector")
        self._spec = spec
        self._entry: CacheEntry | None = None
        #: (extension, where, description): see `extend_where`
        self._extensions: tuple = ()
        self.__doc__ = getattr(fn, "__doc__", None) or self.__doc__

    @classmethod
    def from_expr(
        cls,
        expr: sp.Expr,
        x: sp.Symbol,
        *,
        params: dict | None = None,
        defaults: dict | None = None,
        domain: Constraint = Real,
        name: str = "bijector",
    ) -> DeclaredBijector:
        """Declares a bijector from an expression built elsewhere.

        Args:
            expr: the forward map y = f(x).
            x: the input symbol.
            params: parameter symbol (or name) → constraint.
            defaults: parameter name → default value.
            domain: the input's domain.
            name: a valid identifier naming the bijector.
        """
        spec = spec_from_expr(expr, x, params=params, defaults=defaults, domain=domain, name=name)
        return cls(spec=spec, domain=domain, name=name)

    # -- declaration -----------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._name

    @property
    def spec(self) -> BijectorSpec:
        """The declaration as SymPy objects (built on first access)."""
        if self._spec is None:
            self._spec = spec_from_function(self._fn, domain=self._domain, name=self._name)
        return self._spec

    @property
    def forward_expr(self) -> sp.Expr:
        return self.spec.forward_expr

    @property
    def hash(self) -> str:
        return spec_hash(self.spec, __version__)

    # -- pipeline --------------------------------------------------------------------
    def compile(self) -> CacheEntry:
        """Derives, checks, stabilizes, emits and loads the kernels, or loads them from cache."""
        if self._entry is None:
            key = self.hash
            module_name = f"{self.spec.name}_{key[:16]}"
            entry = read_entry(module_name, key)
            if entry is None:
                plan, meta = build_plan(self.spec, key)
                entry = write_entry(emit_module(plan), meta)
            self._entry = entry
        return self._entry

    def _expr(self, section: str, key: str) -> sp.Expr:
        return sp.sympify(self.compile().meta[section][key], locals=_SYMPY_NS)

    @property
    def inverse_expr(self) -> sp.Expr:
        """x = f^-1(y), as derived (before stabilization)."""
        return self._expr("derived", "inverse")

    @property
    def forward_log_det_jacobian_expr(self) -> sp.Expr:
        """log|f'(x)|, as derived."""
        return self._expr("derived", "fldj")

    @property
    def inverse_log_det_jacobian_expr(self) -> sp.Expr:
        """log|(f^-1)'(y)|, as derived."""
        return self._expr("derived", "ildj")

    @property
    def codomain(self) -> tuple[sp.Expr, sp.Expr]:
        """(lo, hi), the image of the domain; may depend on parameters."""
        return self._expr("derived", "codomain_lo"), self._expr("derived", "codomain_hi")

    @property
    def output_symbol(self) -> sp.Symbol:
        return self._expr("derived", "y")

    @property
    def kernel_exprs(self) -> dict[str, sp.Expr]:
        """The stabilized forms the kernels compute: forward, inverse, fldj, ildj."""
        return {k: self._expr("stable", k) for k in ("forward", "inverse", "fldj", "ildj")}

    def inverse_gradient_exprs(self) -> dict[str, sp.Expr | tuple[sp.Expr, ...]]:
        """What a training kernel needs, in the kernels' stable forms.

        Returns:
            'inverse' (x = g(y)) and 'ildj' (in y), and the forward side's partials with
            respect to `(x, *parameters)` of f ('forward_partials') and of log|f'|
            ('fldj_partials'), in x. A kernel evaluates the latter at its own x = g(y) and
            applies the implicit function theorem there: dx/dy = 1/f_x, dx/dθ = -f_θ/f_x.
        """
        spec = self.spec
        stable = self.kernel_exprs
        wrt = (spec.x, *spec.parameter_symbols)
        return {
            "inverse": stable["inverse"],
            "ildj": stable["ildj"],
            "forward_partials": _stable_partials(stable["forward"], wrt),
            "fldj_partials": _stable_partials(stable["fldj"], wrt),
        }

    @property
    def source_path(self) -> str:
        """Path of the generated module."""
        return str(self.compile().path)

    def accuracy_report(self, params: dict | None = None):
        """Every kernel's float64 error against 50-digit truth over a tails grid.

        See `symflow.runtime.accuracy.accuracy_report`; `params` defaults to the declared
        defaults (else each constraint's typical value).
        """
        return accuracy_report(self, params)

    def report(self) -> CheckReport:
        """What was proven symbolically and what was checked numerically, and how."""
        return CheckReport.from_dict(self.compile().meta["report"])

    # -- binding ---------------------------------------------------------------------
    def __call__(self, *args, **kwargs) -> ElementwiseBijector:
        """Binds parameter values (positionally or by name; declared defaults fill the rest).

        Raises:
            ConstraintError: for a missing, unknown or out-of-constraint parameter.
        """
        spec = self.spec
        names = spec.parameter_names
        if len(args) > len(names):
            raise ConstraintError(
                f"{self.name}: takes {len(names)} parameter(s) {list(names)}; got {len(args)} "
                "positional values."
            )
        values = dict(zip(names, args, strict=False))
        for key, value in kwargs.items():
            if key not in names:
                raise ConstraintError(
                    f"{self.name}: unknown parameter {key!r}; parameters are {list(names)}."
                )
            if key in values:
                raise ConstraintError(f"{self.name}: parameter {key!r} given twice.")
            values[key] = value
        bound = {}
        for p in spec.parameters:
            if p.name not in values:
                if p.default is None:
                    raise ConstraintError(
                        f"{self.name}: missing a value for parameter `{p.name}` "
                        f"({p.constraint.name}); it has no default."
                    )
                values[p.name] = p.default
            bound[p.name] = validate_parameter(self.name, p.name, values[p.name], p.constraint)
        for extension, where, _ in self._extensions:
            if where(bound):
                bound_ext = extension(**bound)
                bound_ext.name = self.name
                return bound_ext
        entry = self.compile()
        describe = {
            "domain": (spec.domain.lo_float, spec.domain.hi_float),
            "codomain": (float("-inf"), float("inf")),
        }
        return ElementwiseBijector(self.name, entry.module, bound, describe, declared=self)

    def extend_where(self, extension: DeclaredBijector, where, description: str):
        """Binds `extension` instead of this map for parameter values where `where` holds.

        For a map whose natural domain grows for some parameter values (TFP's `Power`:
        x**p on x > 0, but on the whole line for an odd integer p), declare the larger
        map separately, agreeing with this one on this one's domain and taking the same
        parameters; binding values for which `where(values)` is true (values: the
        validated parameter arrays, by name) returns the extension's bijector under this
        name. Both maps are derived and checked as always; `tests/test_catalog.py` checks
        that they agree.

        Returns:
            self, for use at declaration: `Power = Power.extend_where(SignedPower, ...)`.
        """
        if tuple(extension.spec.parameter_names) != tuple(self.spec.parameter_names):
            raise DeclarationError(
                f"{self.name}.extend_where: the extension {extension.name} takes parameters "
                f"{list(extension.spec.parameter_names)}, this map "
                f"{list(self.spec.parameter_names)}; they must be the same."
            )
        self._extensions = (*self._extensions, (extension, where, description))
        return self

    @property
    def extensions(self) -> tuple:
        """(extension, description) for each map registered by `extend_where`."""
        return tuple((e, d) for e, _, d in self._extensions)

    def __repr__(self) -> str:
        return f"<symflow declared bijector {self.name}: y = {self.forward_expr}>"

    def _repr_latex_(self) -> str:
        """Jupyter's rendering: the forward map, and once compiled the derived maths too.

        Displaying never starts a derivation; `compile()` (or any use) first shows all.
        """
        x, y = self.spec.x, sp.Symbol("y")
        rows = [rf"\text{{{self.name}}}:\ & {sp.latex(y)} = {sp.latex(self.forward_expr)}"]
        if self._entry is not None:
            y = self.output_symbol
            rows += [
                rf"& {sp.latex(x)} = {sp.latex(self.inverse_expr)}",
                rf"& \log\left|\frac{{dy}}{{dx}}\right| = "
                rf"{sp.latex(self.forward_log_det_jacobian_expr)}",
                rf"& \log\left|\frac{{dx}}{{dy}}\right| = "
                rf"{sp.latex(self.inverse_log_det_jacobian_expr)}",
            ]
        return "$\\begin{aligned}" + r" \\ ".join(rows) + r"\end{aligned}$"


def _interval_text(bounds) -> str:
    lo, hi = (str(b).replace("oo", "inf") for b in bounds)
    return f"({lo}, {hi})"


def _srepr_all(d: Derivation) -> dict[str, str]:
    return {
        "x": sp.srepr(d.spec.x),
        "y": sp.srepr(d.y),
        "inverse": sp.srepr(d.inverse_expr),
        "fldj": sp.srepr(d.fldj_expr),
        "ildj": sp.srepr(d.ildj_expr),
        "codomain_lo": sp.srepr(d.codomain[0]),
        "codomain_hi": sp.srepr(d.codomain[1]),
    }


def build_plan(spec: BijectorSpec, key: str) -> tuple[KernelPlan, dict]:
    """The whole symbolic pipeline for one declaration: checks raise on any failure."""
    invertible = check_invertible(spec)
    derived = derive(spec)
    report = check_derivation(derived, invertible)
    stable_forward = stabilize_forward(spec)
    stable = stabilize_derivation(derived)
    # The rewritten forms are checked again, end to end, against the same mpmath truth.
    stable_spec = dataclasses.replace(spec, forward_expr=stable_forward)
    recheck = stable.replace(spec=stable_spec)
    rechecked = [*check_round_trip(recheck, prove=False), *check_log_det(recheck, prove=False)]
    errors = [re.search(r"error (\S+)", r.detail).group(1) for r in rechecked]
    results = [
        *report.results,
        CheckResult(
            "stabilized forms",
            "checked",
            f"rewritten kernels verified again: round trips {errors[0]} / {errors[1]}, "
            f"log-dets {errors[2]} / {errors[3]}",
        ),
    ]
    inverse, polish_note = _polished_inverse(recheck)
    if polish_note:
        results.append(CheckResult("inverse accuracy", "checked", polish_note))
    report = CheckReport(spec.name, tuple(results))
    wrt_x = (spec.x, *spec.parameter_symbols)
    forward_partials = _stable_partials(stable_forward, wrt_x)
    fldj_partials = _stable_partials(stable.fldj_expr, wrt_x)
    inverse_partials, ildj_partials = _inverse_side_partials(
        spec.x, forward_partials, fldj_partials, inverse
    )
    quantities = {
        "forward": stable_forward,
        "inverse": inverse,
        "fldj": stable.fldj_expr,
        "ildj": stable.ildj_expr,
        "forward_partials": forward_partials,
        "inverse_partials": inverse_partials,
        "fldj_partials": fldj_partials,
        "ildj_partials": ildj_partials,
    }
    plan = KernelPlan(
        name=spec.name,
        x=spec.x,
        y=stable.y,
        parameters=spec.parameter_symbols,
        domain=(spec.domain.lo_float, spec.domain.hi_float),
        codomain=stable.codomain,
        quantities=quantities,
        summary=(
            ("forward", f"{stable.y} = {spec.forward_expr}"),
            ("inverse", f"{spec.x} = {derived.inverse_expr}"),
            ("fldj", str(derived.fldj_expr)),
            ("ildj", str(derived.ildj_expr)),
            ("domain", f"{spec.x} in {spec.domain.describe()}"),
            ("codomain", f"{stable.y} in {_interval_text(derived.codomain)}"),
            ("kernels", "compute the stabilized forms (symflow.stabilize):"),
            ("  forward", str(stable_forward)),
            ("  inverse", str(stable.inverse_expr) + (" + Newton steps" if polish_note else "")),
            ("  fldj", str(stable.fldj_expr)),
            ("  ildj", str(stable.ildj_expr)),
        ),
        hash=key,
        version=__version__,
    )
    meta = {
        "name": spec.name,
        "symflow_version": __version__,
        "derived": _srepr_all(derived),
        "stable": {
            "forward": sp.srepr(stable_forward),
            "inverse": sp.srepr(inverse),
            "fldj": sp.srepr(stable.fldj_expr),
            "ildj": sp.srepr(stable.ildj_expr),
        },
        "report": report.to_dict(),
    }
    return plan, meta


#: An inverse that loses more than this many float64 roundings beyond its conditioning
#: gets Newton steps on the forward map.
POLISH_THRESHOLD = 64.0


def _polished_inverse(d: Derivation) -> tuple[sp.Expr, str]:
    """The inverse the kernels compute, and a report note when it had to be polished.

    A closed form can be exact and still cancel in floats (Cardano's formula near y = 0
    keeps 6 of 16 digits). Then one Newton step on the declared forward map,
    x1 = x0 - (f(x0) - y) / f'(x0), restores full accuracy: the residual f(x0) - y is
    computed in floats without that cancellation. Kept only if it measures better.
    """
    x0 = d.inverse_expr
    before, at, lost = float64_inverse_error(d, x0)
    if before <= POLISH_THRESHOLD:
        return x0, ""
    x = d.spec.x
    f, fprime = d.spec.forward_expr, stabilize(derivative(d.spec.forward_expr, x))
    # Newton squares the relative error: one step recovers full precision only when the
    # closed form keeps at least half of float64's 53 bits; otherwise take two.
    steps = 1 if math.log2(before) < 26 else 2
    current = x0
    for _ in range(steps):
        # UnevaluatedExpr keeps the previous iterate whole: SymPy would otherwise flatten
        # x0 - q into the very sum whose cancellation the step is meant to undo.
        unit = sp.UnevaluatedExpr(current)
        # The residual and f' are divided as two whole numbers: flattened into one product,
        # Power's step multiplied x0 * (x0**p - y) first and overflowed for y > 1e234.
        residual = sp.UnevaluatedExpr(f.xreplace({x: unit}) - d.y)
        slope = sp.UnevaluatedExpr(fprime.xreplace({x: unit}))
        # newton_step: no step where the residual or f' is 0 (x**3 at 0, inside the
        # domain: the plain step is 0/0 there, where the closed form is exact)
        current = newton_step(unit, residual, slope)
    best_worst, _, best_lost = float64_inverse_error(d, current)
    if best_lost >= lost:
        return x0, f"closed form loses up to {before:.3g} roundings beyond its conditioning"
    return current, (
        f"closed form loses up to {before:.3g} float64 roundings beyond its conditioning "
        f"(at y = {at:.3g}; {lost:.0f} bits over the grid); kernels add {steps} Newton "
        f"step(s) on the forward map: worst {best_worst:.3g}, {best_lost:.0f} bits"
    )


def _strip_groups(expr: sp.Expr) -> sp.Expr:
    return expr.replace(lambda e: isinstance(e, sp.UnevaluatedExpr), lambda e: e.args[0])


def _stable_partials(expr: sp.Expr, wrt) -> tuple[sp.Expr, ...]:
    return tuple(stabilize(d) for d in derive_partials(_strip_groups(expr), wrt))


def _inverse_side_partials(x, forward_partials, fldj_partials, inverse):
    """Partials of x = g(y) and of ildj(y) = -fldj(g(y)) by the implicit function theorem.

    dx/dy = 1/f_x(x), dx/dθ = -f_θ(x)/f_x(x) at x = g(y), and ildj's partials by the chain
    rule through fldj's. Both are written at the kernel's own x = g(y), so they need no
    derivative of a closed-form inverse (whose cancellations they would inherit) and stay
    consistent with the values the kernels return.
    """
    at = {x: sp.UnevaluatedExpr(inverse)}
    f_partials = [d.xreplace(at) for d in forward_partials]
    l_partials = [d.xreplace(at) for d in fldj_partials]
    dx = [1 / f_partials[0], *[-fp / f_partials[0] for fp in f_partials[1:]]]
    dldj = [-l_partials[0] * dx[0]]
    dldj += [-(lp + l_partials[0] * dxp) for lp, dxp in zip(l_partials[1:], dx[1:], strict=True)]
    return tuple(dx), tuple(dldj)
