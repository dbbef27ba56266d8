"""Chain plan → one module whose kernels run every member in a single pass over memory.

Input: a `ChainPlan` (each member's stabilized forward, inverse and log-dets, in the order
the chain's forward applies them, and optionally a base log-density). Output: a
`KernelSource`, deterministic like every generated module.

Each scalar core runs the members one after another on a local value, so an element is
loaded once and stored once whatever the chain's length. Two things make the fused loop
as fast as a hand-written one:

- Subexpressions that depend on parameters only (TFP's SinhArcsinh multiplier
  2 / sinh(asinh(2) * tailweight), log(scale), ...) are hoisted into a `*_constants`
  function, evaluated once per call when every parameter is a single value and once per
  element otherwise.
- Each member's interval test is emitted only where its bound is finite; a value outside
  it makes the core return nan, and the batch loop counts such inputs for the runtime to
  explain. A value outside the base distribution's support has log-density -inf.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp
from sympy.functions.elementary.piecewise import ExprCondPair

from symflow.codegen.emit import KernelSource, parallel_threshold
from symflow.codegen.mathlib import helper_sources
from symflow.codegen.printer import Float32UnavailableError, KernelPrinter
from symflow.codegen.templates import FUSED_BATCH, FUSED_HEADER, render

__all__ = [
    "FUSED_KERNELS",
    "BaseDensity",
    "ChainPlan",
    "Stage",
    "emit_chain_module",
    "hoist_parameter_terms",
]


@dataclass(frozen=True)
class Stage:
    """One chain member in the direction the chain's forward applies it.

    Attributes:
        label: what the header calls it ('SinhArcsinh', 'Invert(Exp)').
        x, y: the member's input and output symbols.
        parameters: the member's parameter symbols, in its declaration order.
        forward, inverse, fldj, ildj: stabilized expressions (in x, or in y for the
            inverse side).
        domain, codomain: (lo, hi) of x and of y, SymPy expressions (±oo for open ends).
    """

    label: str
    x: sp.Symbol
    y: sp.Symbol
    parameters: tuple[sp.Symbol, ...]
    forward: sp.Expr
    inverse: sp.Expr
    fldj: sp.Expr
    ildj: sp.Expr
    domain: tuple[sp.Expr, sp.Expr]
    codomain: tuple[sp.Expr, sp.Expr]


@dataclass(frozen=True)
class BaseDensity:
    """A scalar base distribution's log-density, for a fused `log_prob` kernel.

    Attributes:
        label: the distribution's name.
        x: the value symbol.
        parameters: parameter symbols, in the order the kernel takes them.
        log_prob: the log-density inside the support.
        support: (lo, hi) SymPy expressions of the parameters (±oo for none); the density
            is zero outside [lo, hi).
    """

    label: str
    x: sp.Symbol
    parameters: tuple[sp.Symbol, ...]
    log_prob: sp.Expr
    support: tuple[sp.Expr, sp.Expr]


@dataclass(frozen=True)
class ChainPlan:
    """Members in the order the chain's forward applies them (TFP's list reversed)."""

    name: str
    stages: tuple[Stage, ...]
    base: BaseDensity | None
    hash: str
    version: str


#: kernel → (direction, per-member quantities, whether the base density is added)
FUSED_KERNELS: dict[str, tuple[str, tuple[str, ...], bool]] = {
    "forward": ("forward", ("forward",), False),
    "inverse": ("inverse", ("inverse",), False),
    "forward_log_det_jacobian": ("forward", ("forward", "fldj"), False),
    "inverse_log_det_jacobian": ("inverse", ("inverse", "ildj"), False),
    "forward_and_log_det": ("forward", ("forward", "fldj"), False),
    "inverse_and_log_det": ("inverse", ("inverse", "ildj"), False),
    "log_prob": ("inverse", ("inverse", "ildj"), True),
}
#: what each kernel returns, from the (value, log-det) a pass computes
_RETURNS = {
    "forward": ("_z",),
    "inverse": ("_z",),
    "forward_log_det_jacobian": ("_ldj",),
    "inverse_log_det_jacobian": ("_ldj",),
    "forward_and_log_det": ("_z", "_ldj"),
    "inverse_and_log_det": ("_z", "_ldj"),
    "log_prob": ("_ldj",),
}
_DOCS = {
    "forward": "y = f(x) through every member",
    "inverse": "x = f^-1(y) through every member",
    "forward_log_det_jacobian": "log|f'(x)|, summed over the members",
    "inverse_log_det_jacobian": "log|(f^-1)'(y)|, summed over the members",
    "forward_and_log_det": "(f(x), log|f'(x)|) in one pass",
    "inverse_and_log_det": "(f^-1(y), log|(f^-1)'(y)|) in one pass",
    "log_prob": "log p(y) = log p_base(f^-1(y)) + log|(f^-1)'(y)|",
}


def _renamed(plan: ChainPlan):
    """Per stage: symbol → kernel argument symbol (b<k>_<name>); base params → base_<name>."""
    maps = []
    for k, stage in enumerate(plan.stages):
        maps.append({p: sp.Symbol(f"b{k}_{p.name}", real=True) for p in stage.parameters})
    base_map = {}
    if plan.base is not None:
        base_map = {p: sp.Symbol(f"base_{p.name}", real=True) for p in plan.base.parameters}
    return maps, base_map


def hoist_parameter_terms(exprs: list[sp.Expr], params: set, table: dict) -> list[sp.Expr]:
    """`exprs` with every maximal parameter-only subtree replaced by a `_k<i>` symbol."""

    def visit(e):
        if e.is_Atom:
            return e
        if isinstance(e, sp.Expr) and e.free_symbols and e.free_symbols <= params:
            if e not in table:
                table[e] = sp.Symbol(f"_k{len(table)}", real=True)
            return table[e]
        args = [visit(a) for a in e.args]
        if isinstance(e, (sp.UnevaluatedExpr, ExprCondPair)):  # no `evaluate` keyword
            return e.func(*args)
        return e.func(*args, evaluate=False)

    return [visit(e) for e in exprs]


def _bound_tests(var: str, bounds, printer) -> list[str]:
    lo, hi = bounds
    tests = []
    if lo not in (sp.oo, -sp.oo):
        tests.append(f"{var} < {printer.print_expr(lo)}")
    if hi not in (sp.oo, -sp.oo):
        tests.append(f"{var} > {printer.print_expr(hi)}")
    return tests


def _core(plan: ChainPlan, kernel: str, printer, maps, base_map) -> tuple[str, list, dict]:
    """Source of `<kernel>_scalar` (`_scalar_f32` for a float32 printer), its argument names,
    and its hoisted constants."""
    direction, quantities, with_base = FUSED_KERNELS[kernel]
    stages = list(enumerate(plan.stages))
    if direction == "inverse":
        stages.reverse()
    params = {s for m in maps for s in m.values()} | set(base_map.values())
    table: dict = {}
    temps = sp.numbered_symbols("_t")
    n_out = len(_RETURNS[kernel])
    nan = printer.print_expr(sp.nan)
    fail = f"return {nan}" if n_out == 1 else f"return ({', '.join([nan] * n_out)})"
    value = sp.Symbol("_z", real=True)
    body = []
    use_ldj = "ldj" in quantities[-1]
    if use_ldj:
        body.append(f"    _ldj = {printer.print_expr(sp.Float(0.0))}")
    for pos, (k, stage) in enumerate(stages):
        if direction == "forward":
            inp, exprs = stage.x, [stage.forward, stage.fldj][: len(quantities)]
            bounds, label = stage.domain, f"{stage.label}, x in its domain"
        else:
            inp, exprs = stage.y, [stage.inverse, stage.ildj][: len(quantities)]
            bounds, label = stage.codomain, f"{stage.label}, inverted: y in its codomain"
        subs = {**maps[k], inp: value}
        exprs = [e.xreplace(subs) for e in exprs]
        bounds = tuple(b.xreplace(maps[k]) for b in bounds)
        exprs = hoist_parameter_terms(exprs, params, table)
        bounds = tuple(hoist_parameter_terms(list(bounds), params, table))
        last = pos == len(stages) - 1
        if kernel in ("forward_log_det_jacobian", "inverse_log_det_jacobian") and last:
            exprs = exprs[1:]  # the final value is not needed, only its log-det
        body.append(f"    # member {pos + 1} of {len(stages)}: {label}")
        tests = _bound_tests("_z", bounds, printer)
        if tests:
            body.append(f"    if {' or '.join(tests)}:")
            body.append(f"        {fail}")
        replacements, reduced = sp.cse(exprs, symbols=temps, order="canonical", list=True)
        body.extend(f"    {s} = {printer.print_expr(e)}" for s, e in replacements)
        if use_ldj:
            body.append(f"    _ldj += {printer.print_expr(reduced[-1])}")
        if len(reduced) == 2 or not use_ldj:
            body.append(f"    _z = {printer.print_expr(reduced[0])}")
    if with_base:
        base = plan.base
        lp = base.log_prob.xreplace({**base_map, base.x: value})
        support = [b.xreplace(base_map) for b in base.support]
        lp, *support = hoist_parameter_terms([lp, *support], params, table)
        body.append(f"    # base distribution: {base.label}, zero density outside [lo, hi)")
        # x = ±inf comes from a finite end of the range: a limit point, density zero.
        tests = ["_z == math.inf", "_z == -math.inf"]
        if support[0] not in (sp.oo, -sp.oo):
            tests.append(f"_z < {printer.print_expr(support[0])}")
        if support[1] not in (sp.oo, -sp.oo):
            tests.append(f"_z >= {printer.print_expr(support[1])}")
        if tests:
            body.append(f"    if {' or '.join(tests)}:")
            body.append(f"        return {printer.print_expr(-sp.oo)}")
        replacements, reduced = sp.cse([lp], symbols=temps, order="canonical", list=True)
        body.extend(f"    {s} = {printer.print_expr(e)}" for s, e in replacements)
        body.append(f"    _ldj += {printer.print_expr(reduced[0])}")
    outs = _RETURNS[kernel]
    body.append(f"    return {outs[0]}" if n_out == 1 else f"    return ({', '.join(outs)})")
    arg_names = [str(s) for m in maps for s in m.values()] + [str(s) for s in base_map.values()]
    consts = [str(s) for s in table.values()]
    inp_name = "x" if direction == "forward" else "y"
    doc = f"{_DOCS[kernel]}, for one {'float32 ' if printer.float32 else ''}element."
    suffix = "_f32" if printer.float32 else ""
    lines = [
        "",
        # forceinline (LLVM alwaysinline): each batch loop gets one body LLVM can vectorize.
        '@numba.njit(cache=True, error_model="numpy", forceinline=True)',
        f"def {kernel}_scalar{suffix}({', '.join([inp_name, *arg_names, *consts])}):",
        f'    """{doc}"""',
        f"    _z = {inp_name}",
        *body,
        "",
    ]
    return "\n".join(lines), arg_names, table


def _constants(kernel: str, arg_names: list[str], table: dict, printer) -> str:
    if not table:
        return ""
    names = [str(s) for s in table.values()]
    values = [printer.print_expr(e) for e in table]
    body = [f"    {n} = {v}" for n, v in zip(names, values, strict=True)]
    ret = names[0] if len(names) == 1 else f"({', '.join(names)})"
    return "\n".join(
        [
            "",
            '@numba.njit(cache=True, error_model="numpy")',
            f"def {kernel}_constants({', '.join(arg_names)}):",
            f'    """Parameter-only subexpressions of `{kernel}_scalar`, computed once."""',
            *body,
            f"    return {ret}",
            "",
        ]
    )


def _batch(
    kernel: str, arg_names: list[str], table: dict, parallel: bool, *, float32: bool = False
) -> str:
    direction = FUSED_KERNELS[kernel][0]
    inp = "x" if direction == "forward" else "y"
    n_out = len(_RETURNS[kernel])
    consts = [str(s) for s in table.values()]
    loop = "numba.prange" if parallel else "range"
    lines = [f"    _s{j} = 1 if {a}.shape[0] > 1 else 0\n" for j, a in enumerate(arg_names)]
    results = "_r" if n_out == 1 else ", ".join(f"_r{k}" for k in range(n_out))
    suffix = "_f32" if float32 else ""
    # float32 variants take the element as it is and round parameters and constants once.
    # (Under new names: Numba gives a variable one type, so `_k0 = np.float32(_k0)` would
    # keep it float64 and widen the whole computation.)
    wide_consts = [c.replace("_k", "_c") for c in consts] if float32 else consts
    narrowed = (
        [f"{c} = np.float32({w})" for c, w in zip(consts, wide_consts, strict=True)]
        if float32
        else []
    )

    def cast(load: str) -> str:
        return f"np.float32({load})" if float32 else load

    stores = ["out[0, _i] = _r"] if n_out == 1 else [f"out[{k}, _i] = _r{k}" for k in range(n_out)]

    def body(indent: str, qs: list[str], per_element_consts: bool) -> list[str]:
        out = [f"{indent}_v = {inp}[_i]\n" if float32 else f"{indent}_v = np.float64({inp}[_i])\n"]
        if per_element_consts:
            wide = [f"_w{j}" for j in range(len(arg_names))] if float32 else qs
            out.extend(
                f"{indent}{w} = {a}[_i * _s{j}]\n"
                for j, (w, a) in enumerate(zip(wide, arg_names, strict=True))
            )
            if consts:
                lhs = wide_consts[0] if len(consts) == 1 else ", ".join(wide_consts)
                out.append(f"{indent}{lhs} = {kernel}_constants({', '.join(wide)})\n")
                out.extend(f"{indent}{n}\n" for n in narrowed)
            if float32:
                out.extend(f"{indent}{q} = {cast(w)}\n" for q, w in zip(qs, wide, strict=True))
        call = f"{kernel}_scalar{suffix}({', '.join(['_v', *qs, *consts])})"
        out.append(f"{indent}{results} = {call}\n")
        out.extend(f"{indent}{s}\n" for s in stores)
        return out

    if arg_names:
        lines.append(f"    if {' + '.join(f'_s{j}' for j in range(len(arg_names)))} == 0:\n")
        lines.append("        # every parameter is one value: parameter-only terms once\n")
        # Held in locals: a load in the loop could alias `out`, which blocks vectorizing.
        qs = [f"_p{j}" for j in range(len(arg_names))]
        wide = [f"_w{j}" for j in range(len(arg_names))] if float32 else qs
        lines.extend(f"        {w} = {a}[0]\n" for w, a in zip(wide, arg_names, strict=True))
        if consts:
            lhs = wide_consts[0] if len(consts) == 1 else ", ".join(wide_consts)
            lines.append(f"        {lhs} = {kernel}_constants({', '.join(wide)})\n")
            lines.extend(f"        {n}\n" for n in narrowed)
        if float32:
            lines.extend(f"        {q} = {cast(w)}\n" for q, w in zip(qs, wide, strict=True))
        lines.append(f"        for _i in {loop}(_n):\n")
        lines.extend(body("            ", qs, False))
        lines.append("    else:\n")
        lines.append(f"        for _i in {loop}(_n):\n")
        lines.extend(body("            ", [f"_q{j}" for j in range(len(arg_names))], True))
    else:
        lines.append(f"    for _i in {loop}(_n):\n")
        lines.extend(body("        ", [], False))
    # Counted in a pass of its own: an int64 counter in the loop above would make LLVM
    # pick 4 lanes (the width of an int64 vector) for float32 instead of 8, and for
    # float64 it measured 1.5x slower (issue-6 chain forward, see `symflow.runtime.tuning`).
    lines.append("    # inputs outside some member's interval: nan out, non-nan in\n")
    lines.append(f"    for _i in {loop}(_n):\n")
    lines.append(f"        if out[0, _i] != out[0, _i] and {inp}[_i] == {inp}[_i]:\n")
    lines.append("            _bad += 1\n")
    precision = ", computed in float32 for a float32 input" if float32 else ""
    return render(
        FUSED_BATCH,
        name=kernel + suffix + ("_parallel" if parallel else ""),
        parallel_flag=", parallel=True" if parallel else "",
        input=inp,
        params_comma="".join(f"{a}, " for a in arg_names),
        doc=(
            f"{_DOCS[kernel]}, elementwise{precision}"
            f"{' (parallel over elements)' if parallel else ''}."
        ),
        n_out=n_out,
        body="".join(lines),
    )


def emit_chain_module(plan: ChainPlan) -> KernelSource:
    """The text of the fused module for `plan`; same plan, same bytes."""
    printer = KernelPrinter()
    maps, base_map = _renamed(plan)
    parts = []
    kernels = [k for k in FUSED_KERNELS if plan.base is not None or k != "log_prob"]
    arg_names: list[str] = []
    float32_kernels = []
    for kernel in kernels:
        core, arg_names, table = _core(plan, kernel, printer, maps, base_map)
        parts.append(_constants(kernel, arg_names, table, printer))
        parts.append(core)
        parts.extend(_batch(kernel, arg_names, table, p) for p in (False, True))
        printer32 = KernelPrinter(float32=True)
        try:
            core32, _, _ = _core(plan, kernel, printer32, maps, base_map)
        except Float32UnavailableError:
            continue  # float32 inputs of this kernel compute in float64
        float32_kernels.append(kernel)
        printer.helpers |= printer32.helpers
        parts.append(core32)
        parts.extend(_batch(kernel, arg_names, table, p, float32=True) for p in (False, True))
    members = []
    for k, stage in enumerate(plan.stages):
        members.append(f"# member {k + 1}: {stage.label}")
        members.append(f"#   forward:  {stage.forward.xreplace(maps[k])}")
        members.append(f"#   inverse:  {stage.inverse.xreplace(maps[k])}")
    if plan.base is not None:
        members.append(f"# base:     {plan.base.label}, log p = {plan.base.log_prob}")
    header = render(
        FUSED_HEADER,
        version=plan.version,
        name=plan.name,
        members="\n".join(members),
        hash=plan.hash,
        parameters=tuple(arg_names),
        parallel_threshold=parallel_threshold(printer.helpers),
        kernels=tuple(kernels),
        float32_kernels=tuple(float32_kernels),
    )
    helpers = sorted(printer.helpers)
    text = [header]
    if helpers:
        text.append(f"\n# ---- helpers ({len(helpers)} requested)\n\n")
        text.append(helper_sources(helpers).rstrip("\n") + "\n\n")
    text.append(f"\n# ---- fused kernels ({len(kernels)}, each: constants, scalar core, batch)\n")
    text.extend("".join(parts))
    source = "".join(text).rstrip("\n") + "\n"
    return KernelSource(f"{plan.name}_{plan.hash[:16]}", source, plan.hash)
