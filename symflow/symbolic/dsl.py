"""Turns a user's declaration (a Python function or a ready expression) into a BijectorSpec."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping

import sympy as sp

from symflow.errors import DeclarationError
from symflow.symbolic.derive import almost_everywhere
from symflow.symbolic.spec import BijectorSpec, Constraint, Parameter, Real, check_identifier

__all__ = ["spec_from_expr", "spec_from_function"]


def spec_from_function(
    fn: Callable[..., sp.Expr], *, domain: Constraint = Real, name: str | None = None
) -> BijectorSpec:
    """Builds the spec of `fn(x, p1: Constraint, p2: Constraint = default, ...)`.

    The first argument is the input; every other argument is a parameter annotated with a
    constraint (`sf.Real`, `sf.Positive`, `sf.UnitInterval`, `sf.Interval(lo, hi)`), with
    an optional default value.

    Raises:
        DeclarationError: for a missing or wrong annotation, a bad name, or a body that
            does not return a SymPy expression of the input.
    """
    name = name or getattr(fn, "__name__", "bijector")
    try:
        signature = inspect.signature(fn, eval_str=True)
    except (NameError, TypeError, ValueError) as err:
        raise DeclarationError(f"{name}: cannot read the signature of {fn!r}: {err}") from err
    args = list(signature.parameters.values())
    if not args:
        raise DeclarationError(
            f"{name}: a bijector function takes the input as its first argument, e.g. "
            "`def f(x, scale: sf.Positive): ...`; this one takes no arguments."
        )
    x_name = check_identifier(args[0].name, f"{name}: input name")
    params = []
    for arg in args[1:]:
        if arg.kind not in (arg.POSITIONAL_OR_KEYWORD, arg.KEYWORD_ONLY):
            raise DeclarationError(f"{name}: argument {arg.name!r} must be a named argument.")
        constraint = arg.annotation
        if not isinstance(constraint, Constraint):
            raise DeclarationError(
                f"{name}: parameter `{arg.name}` needs a constraint annotation such as "
                f"`{arg.name}: sf.Real` or `{arg.name}: sf.Positive`; got "
                f"{'none' if constraint is inspect.Parameter.empty else repr(constraint)}."
            )
        default = None if arg.default is inspect.Parameter.empty else arg.default
        params.append((arg.name, constraint, default))
    x = domain.symbol(x_name)
    parameters = _make_parameters(name, params)
    try:
        expr = fn(x, *(p.symbol for p in parameters))
    except Exception as err:  # the user's body failed on symbols: say so, keep the cause
        raise DeclarationError(
            f"{name}: calling the function with SymPy symbols failed ({type(err).__name__}: "
            f"{err}). Write the body with SymPy functions (sp.exp, sp.log, sp.Piecewise, ...), "
            "not numpy or math."
        ) from err
    return _finish(name, x, parameters, domain, expr)


def spec_from_expr(
    expr: sp.Expr,
    x: sp.Symbol,
    *,
    params: Mapping[sp.Symbol | str, Constraint] | None = None,
    defaults: Mapping[str, float] | None = None,
    domain: Constraint = Real,
    name: str = "bijector",
) -> BijectorSpec:
    """Builds the spec of an expression made elsewhere; `params` maps symbols to constraints.

    Symbols are re-created with the assumptions their constraints imply, so the caller's
    symbols may carry none.
    """
    check_identifier(name, "bijector name")
    if not isinstance(x, sp.Symbol):
        raise DeclarationError(f"{name}: `x` must be a SymPy Symbol; got {x!r}.")
    defaults = dict(defaults or {})
    entries = []
    for key, constraint in (params or {}).items():
        pname = key.name if isinstance(key, sp.Symbol) else key
        if not isinstance(constraint, Constraint):
            raise DeclarationError(
                f"{name}: the constraint of parameter {pname!r} must be sf.Real, sf.Positive, "
                f"sf.UnitInterval or sf.Interval(lo, hi); got {constraint!r}."
            )
        entries.append((pname, constraint, defaults.pop(pname, None)))
    if defaults:
        raise DeclarationError(
            f"{name}: defaults given for unknown parameters {sorted(defaults)}."
        )
    check_identifier(x.name, f"{name}: input name")
    parameters = _make_parameters(name, entries)
    new_x = domain.symbol(x.name)
    replace = {sp.Symbol(x.name, **x.assumptions0): new_x, x: new_x}
    for p in parameters:
        for s in sp.sympify(expr).free_symbols:
            if s.name == p.name:
                replace[s] = p.symbol
    return _finish(name, new_x, parameters, domain, sp.sympify(expr).xreplace(replace))


def _make_parameters(name: str, entries) -> tuple[Parameter, ...]:
    seen = set()
    parameters = []
    for pname, constraint, default in entries:
        check_identifier(pname, f"{name}: parameter name")
        if pname in seen:
            raise DeclarationError(f"{name}: parameter {pname!r} is declared twice.")
        seen.add(pname)
        if default is not None:
            default = float(default)
            if not constraint.contains(default):
                raise DeclarationError(
                    f"{name}: the default of `{pname}` is {default!r}, outside its constraint "
                    f"{constraint.name} {constraint.describe()}."
                )
        parameters.append(Parameter(pname, constraint, constraint.symbol(pname), default))
    return tuple(parameters)


def _finish(name, x, parameters, domain, expr) -> BijectorSpec:
    check_identifier(name, "bijector name")
    try:
        expr = sp.sympify(expr)
    except (sp.SympifyError, TypeError) as err:
        raise DeclarationError(f"{name}: the forward map is not a SymPy expression.") from err
    if not isinstance(expr, sp.Expr):
        raise DeclarationError(
            f"{name}: the forward map must be a SymPy expression; got {expr!r}."
        )
    generalized = sorted(
        {type(e).__name__ for e in expr.atoms(sp.DiracDelta, sp.Derivative, sp.Integral, sp.Subs)}
    )
    if generalized:
        raise DeclarationError(
            f"{name}: the forward map {expr} contains {', '.join(generalized)}, which no "
            "float kernel can evaluate (DiracDelta is a generalized function, not a map of "
            "reals; Derivative, Integral and Subs are unevaluated). Write the map with "
            "elementary functions, Abs, sign, Heaviside or Piecewise, or call .doit() first."
        )
    # Heaviside(u) as the Piecewise the kernels print (its value at 0 kept): see
    # symflow.symbolic.derive.almost_everywhere
    expr = almost_everywhere(expr)
    allowed = {x, *(p.symbol for p in parameters)}
    stray = sorted(s.name for s in expr.free_symbols - allowed)
    if stray:
        raise DeclarationError(
            f"{name}: the forward map uses symbols {stray} that are neither the input "
            f"`{x.name}` nor a declared parameter. Declare them as parameters."
        )
    if x not in expr.free_symbols:
        raise DeclarationError(
            f"{name}: the forward map {expr} does not depend on the input `{x.name}`, so it "
            "cannot be invertible."
        )
    names = {x.name, *(p.name for p in parameters)}
    if len(names) != 1 + len(parameters):
        raise DeclarationError(f"{name}: the input and a parameter share the name {x.name!r}.")
    return BijectorSpec(name, x, tuple(parameters), domain, expr)
