"""Kernel plan → module source text: scalar cores with CSE, thin batch loops around them.

Input: a `KernelPlan` (stabilized SymPy expressions for every kernel, plus metadata).
Output: a `KernelSource` (module name and deterministic text). Nothing here touches disk.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from symflow.codegen.mathlib import helper_sources
from symflow.codegen.printer import Float32UnavailableError, KernelPrinter
from symflow.codegen.templates import BATCH, HEADER, SCALAR, render

__all__ = ["FLOAT32_KERNELS", "KERNELS", "KernelPlan", "KernelSource", "emit_module"]

#: Elements from which the runtime calls a module's `*_parallel` kernels, measured by
#: `python benchmarks/parallel_threshold.py` (2 cores): kernels of plain arithmetic
#: (AffineScalar's forward, ~0.4 ns per element) gain from threads only from 2^15-2^16
#: elements (serial / parallel time 1.04 at 32768, 1.51 at 65536); kernels that call the
#: math library (the issue-6 chain's inverse_and_log_det, ~50 ns per element) from 1024
#: already (1.41; 1.81 at 4096, 1.96 at 65536).
PARALLEL_THRESHOLD = 1 << 16
#: The threshold of modules whose kernels call symflow's math functions (`_sf_*`).
PARALLEL_THRESHOLD_MATH = 1 << 12


def parallel_threshold(helpers) -> int:
    """The measured threshold for a module whose kernels call `helpers` (a set of names)."""
    return PARALLEL_THRESHOLD_MATH if helpers else PARALLEL_THRESHOLD


#: kernel name → (scalar quantities it returns, whether its input is x or y)
KERNELS: dict[str, tuple[tuple[str, ...], str]] = {
    "forward": (("forward",), "x"),
    "inverse": (("inverse",), "y"),
    "forward_log_det_jacobian": (("fldj",), "x"),
    "inverse_log_det_jacobian": (("ildj",), "y"),
    "forward_and_log_det": (("forward", "fldj"), "x"),
    "inverse_and_log_det": (("inverse", "ildj"), "y"),
    "forward_partials": (("forward_partials",), "x"),
    "inverse_partials": (("inverse_partials",), "y"),
    "forward_log_det_jacobian_partials": (("fldj_partials",), "x"),
    "inverse_log_det_jacobian_partials": (("ildj_partials",), "y"),
}

#: Kernels that get a float32-computing variant `<kernel>_f32` where every function they call
#: has a float32 implementation (the derivative kernels serve training, in float64).
FLOAT32_KERNELS = (
    "forward",
    "inverse",
    "forward_log_det_jacobian",
    "inverse_log_det_jacobian",
    "forward_and_log_det",
    "inverse_and_log_det",
)

_DOCS = {
    "forward": "y = f(x)",
    "inverse": "x = f^-1(y)",
    "fldj": "log|f'(x)|",
    "ildj": "log|(f^-1)'(y)|",
    "forward_partials": "d f / d (x, parameters...)",
    "inverse_partials": "d f^-1 / d (y, parameters...)",
    "fldj_partials": "d log|f'(x)| / d (x, parameters...)",
    "ildj_partials": "d log|(f^-1)'(y)| / d (y, parameters...)",
}


@dataclass(frozen=True)
class KernelPlan:
    """Everything emission needs, already derived, checked and stabilized.

    Attributes:
        name: the bijector's name.
        x, y: input and output symbols.
        parameters: parameter symbols, in declaration order.
        domain: (lo, hi) of x as floats (±inf for an open end).
        codomain: (lo, hi) of y as SymPy expressions of the parameters.
        quantities: 'forward', 'inverse', 'fldj', 'ildj' → expression; '<q>_partials' →
            tuple of derivatives with respect to (input, *parameters).
        summary: header lines, name → text.
        hash: the content hash this module is cached under.
        version: symflow's version.
    """

    name: str
    x: sp.Symbol
    y: sp.Symbol
    parameters: tuple[sp.Symbol, ...]
    domain: tuple[float, float]
    codomain: tuple[sp.Expr, sp.Expr]
    quantities: dict
    summary: tuple[tuple[str, str], ...]
    hash: str
    version: str


@dataclass(frozen=True)
class KernelSource:
    """A generated module: its import name and its exact text."""

    module_name: str
    text: str
    hash: str


def _scalar(name: str, args: list[str], exprs: list[sp.Expr], doc: str, printer) -> str:
    replacements, reduced = sp.cse(
        exprs, symbols=sp.numbered_symbols("_t"), order="canonical", list=True
    )
    body = []
    if replacements:
        body.append(f"    # common subexpressions ({len(replacements)})")
        body.extend(f"    {sym} = {printer.print_expr(e)}" for sym, e in replacements)
    outs = [printer.print_expr(e) for e in reduced]
    body.append(f"    # outputs ({len(outs)})")
    if len(outs) == 1:
        body.append(f"    return {outs[0]}")
    else:
        body.append("    return (")
        body.extend(f"        {o}," for o in outs)
        body.append("    )")
    return render(SCALAR, name=name, args=", ".join(args), doc=doc, body="\n".join(body))


def _bound_text(bound: sp.Expr, printer) -> str | None:
    return None if bound in (sp.oo, -sp.oo) else printer.print_expr(bound)


def _batch(
    plan: KernelPlan, kernel: str, n_out: int, parallel: bool, printer, *, float32: bool = False
) -> str:
    quantities, side = KERNELS[kernel]
    params = [p.name for p in plan.parameters]
    inp = plan.x.name if side == "x" else plan.y.name
    loop = "numba.prange" if parallel else "range"
    if side == "x":
        lo, hi = (None if abs(b) == float("inf") else repr(b) for b in plan.domain)
        region = "domain"
    else:
        lo, hi = (_bound_text(b, printer) for b in plan.codomain)
        region = "codomain"
    core = "_".join(quantities) + "_scalar" + ("_f32" if float32 else "")

    # float32 variants load the element as it is and parameters rounded to float32.
    def cast(load: str) -> str:
        return f"np.float32({load})" if float32 else load

    def body(indent: str, qs: list[str], load: bool, count_only: bool = False) -> list[str]:
        out = [f"{indent}_v = {inp}[_i]\n" if float32 else f"{indent}_v = np.float64({inp}[_i])\n"]
        if load:
            out.extend(
                f"{indent}{q} = {p}[_i * _s{j}]\n"
                if count_only
                else f"{indent}{q} = {cast(f'{p}[_i * _s{j}]')}\n"
                for j, (q, p) in enumerate(zip(qs, params, strict=True))
            )
        bounds = lo, hi
        if side == "y" and (lo is not None or hi is not None):
            out.append(f"{indent}_lo, _hi = codomain_scalar({', '.join(qs)})\n")
            bounds = "_lo" if lo is not None else None, "_hi" if hi is not None else None
        tests = [
            t for t in (bounds[0] and f"_v < {bounds[0]}", bounds[1] and f"_v > {bounds[1]}") if t
        ]
        call = f"{core}({', '.join(['_v', *qs])})"
        stores = (
            ["out[0, _i] = _r"]
            if n_out == 1
            else [f"out[{k}, _i] = _r[{k}]" for k in range(n_out)]
        )
        if count_only:
            return [*out, f"{indent}if {' or '.join(tests)}:\n", f"{indent}    _bad += 1\n"]
        if not tests:
            return [*out, f"{indent}_r = {call}\n", *(f"{indent}{st}\n" for st in stores)]
        return [
            *out,
            f"{indent}if {' or '.join(tests)}:\n",
            *(f"{indent}    out[{k}, _i] = np.nan\n" for k in range(n_out)),
            f"{indent}else:\n",
            f"{indent}    _r = {call}\n",
            *(f"{indent}    {st}\n" for st in stores),
        ]

    lines = [f"    _s{j} = 1 if {p}.shape[0] > 1 else 0\n" for j, p in enumerate(params)]
    if params:
        lines.append(f"    if {' + '.join(f'_s{j}' for j in range(len(params)))} == 0:\n")
        lines.append(
            "        # every parameter is one value, held in locals: a load in the loop\n"
        )
        lines.append("        # could alias `out`, which would keep LLVM from vectorizing it\n")
        lines.extend(f"        _p{j} = {cast(f'{p}[0]')}\n" for j, p in enumerate(params))
        lines.append(f"        for _i in {loop}(_n):\n")
        lines.extend(body("            ", [f"_p{j}" for j in range(len(params))], False))
        lines.append("    else:\n")
        lines.append(f"        for _i in {loop}(_n):\n")
        lines.extend(body("            ", [f"_q{j}" for j in range(len(params))], True))
    else:
        lines.append(f"    for _i in {loop}(_n):\n")
        lines.extend(body("        ", [], False))
    checked = (lo is not None or hi is not None) if side == "y" else (lo or hi)
    if checked:
        # Counted in a pass of its own, with the float64 parameters. An int64 counter in the
        # loop above would make LLVM pick 4 lanes (an int64 vector's width) for float32, not
        # 8, and lengthens the loop's body for float64 (see `symflow.runtime.tuning`).
        lines.append(f"    # inputs outside the {region}\n")
        lines.append(f"    for _i in {loop}(_n):\n")
        lines.extend(body("        ", [f"_q{j}" for j in range(len(params))], True, True))
    docs = " and ".join(_DOCS[q] for q in quantities)
    precision = ", computed in float32 for a float32 input" if float32 else ""
    return render(
        BATCH,
        name=kernel + ("_f32" if float32 else "") + ("_parallel" if parallel else ""),
        parallel_flag=", parallel=True" if parallel else "",
        input=inp,
        params_comma="".join(f"{p}, " for p in params),
        doc=f"{docs}, elementwise{precision}{' (parallel over elements)' if parallel else ''}.",
        n_out=n_out,
        region=region,
        body="".join(lines),
    )


def emit_module(plan: KernelPlan) -> KernelSource:
    """The full text of the generated module for `plan`; same plan, same bytes."""
    printer = KernelPrinter()
    params = [p.name for p in plan.parameters]
    q = plan.quantities
    scalars = []
    widths = {}
    groups = {k: v[0] for k, v in KERNELS.items()}
    seen = set()
    for kernel, quantities in groups.items():
        core = "_".join(quantities) + "_scalar"
        exprs = []
        for name in quantities:
            value = q[name]
            exprs.extend(value if isinstance(value, tuple) else [value])
        widths[kernel] = len(exprs)
        if core in seen:
            continue
        seen.add(core)
        inp = plan.x.name if KERNELS[kernel][1] == "x" else plan.y.name
        doc = " and ".join(_DOCS[n] for n in quantities) + ", for one element."
        scalars.append(_scalar(core, [inp, *params], exprs, doc, printer))
    # float32 variants of the elementwise cores, where every function has a float32 version
    float32_kernels = []
    float32_missing: dict[str, str] = {}
    for kernel in FLOAT32_KERNELS:
        quantities = groups[kernel]
        core = "_".join(quantities) + "_scalar_f32"
        printer32 = KernelPrinter(float32=True)
        exprs = [q[name] for name in quantities]
        inp = plan.x.name if KERNELS[kernel][1] == "x" else plan.y.name
        doc = " and ".join(_DOCS[n] for n in quantities) + ", for one float32 element."
        try:
            text = _scalar(core, [inp, *params], exprs, doc, printer32)
        except Float32UnavailableError as missing:
            float32_missing[kernel] = str(missing.args[0])
            continue
        float32_kernels.append(kernel)
        if core not in seen:
            seen.add(core)
            scalars.append(text)
        printer.helpers |= printer32.helpers
    lo, hi = plan.codomain
    if _bound_text(lo, printer) is not None or _bound_text(hi, printer) is not None:
        scalars.append(
            _scalar(
                "codomain_scalar",
                params,
                [lo if lo != -sp.oo else sp.S(-1) * sp.oo, hi],
                "(lo, hi) of the codomain, the image of the domain.",
                printer,
            )
        )
    batches = []
    for kernel in KERNELS:
        for parallel in (False, True):
            batches.append(_batch(plan, kernel, widths[kernel], parallel, printer))
    for kernel in float32_kernels:
        for parallel in (False, True):
            batches.append(_batch(plan, kernel, widths[kernel], parallel, printer, float32=True))
    summary_rows = list(plan.summary)
    if float32_missing:
        missing = sorted(set(float32_missing.values()))
        summary_rows.append(
            (
                "float32",
                f"{', '.join(float32_missing)} compute in float64 for float32 inputs "
                f"(no float32 {', '.join(missing)})",
            )
        )
    summary = "\n".join(
        f"# {label + ':':<11} {line}" for label, text in summary_rows for line in text.splitlines()
    )
    header = render(
        HEADER,
        version=plan.version,
        name=plan.name,
        summary=summary,
        hash=plan.hash,
        parameters=tuple(params),
        parallel_threshold=parallel_threshold(printer.helpers),
        float32_kernels=tuple(float32_kernels),
    )
    helpers = sorted(printer.helpers)
    parts = [header]
    if helpers:
        parts.append(f"\n# ---- helpers ({len(helpers)} requested)\n\n")
        parts.append(helper_sources(helpers).rstrip("\n") + "\n\n")
    parts.append(f"\n# ---- scalar cores ({len(scalars)})\n")
    parts.extend("\n" + s for s in scalars)
    parts.append(f"\n# ---- batch kernels ({len(batches)})\n")
    parts.extend("\n" + b for b in batches)
    text = "".join(parts).rstrip("\n") + "\n"
    module = f"{plan.name}_{plan.hash[:16]}"
    return KernelSource(module, text, plan.hash)
