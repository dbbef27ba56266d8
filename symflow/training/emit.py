"""Training plan → one generated module: fused mean NLL + gradient, and the whole training loop.

The module's `nll_and_grad` runs, for each row of a batch, the inverse pass through every
member (elementwise members from their symbolic inverse, log-det and implicit-function
partials; Affine members by a matrix-vector product with M^-1, which is built once per step
from triangular solves and the Woodbury identity), the base log-density, and the reverse
pass, accumulating the gradient of the mean negative log-likelihood with respect to every
parameter. Nothing is allocated per row. `train` runs every epoch and step (the loss and gradient
on the step's rows, read in place; the optimizer update) inside Numba: no Python per step.

Layout of the full parameter vector `q` (constrained values): per member in inverse-pass
order, an elementwise member's parameters in declaration order; an Affine member's shift
(n), lower triangle (n(n+1)/2 in TFP's FillTriangular order), factor (n*r, row-major) and
diag (r). θ holds the trainable entries, unconstrained; `fixed` holds the rest.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import sympy as sp

from symflow._version import __version__
from symflow.codegen.emit import KernelSource
from symflow.codegen.fuse import hoist_parameter_terms
from symflow.codegen.hashing import compiler_fingerprint
from symflow.codegen.mathlib import helper_sources
from symflow.codegen.printer import KernelPrinter
from symflow.errors import SymflowError
from symflow.symbolic.spec import Positive
from symflow.training.optimizers import optimizer_source
from symflow.training.plan import (
    AffineMember,
    ElementwiseMember,
    TrainingPlan,
    constraint_exprs,
    constraint_inverse_expr,
)

__all__ = ["MAX_UNROLLED_N", "emit_training_module", "layout", "training_key"]

#: Event sizes up to this are unrolled into per-coordinate locals (registers).
MAX_UNROLLED_N = 16

#: Affine members up to this event size (and perturbation rank 2) get their per-step
#: M^-1 written out as straight-line code instead of the generic `affine_prepare` loops.
MAX_UNROLLED_AFFINE_N = 4


def layout(plan: TrainingPlan):
    """[(kind, member index, name, q index, θ index or None, constraint)] for every entry;
    a trained base's loc and scale come last (kinds 'base_loc', 'base_scale', member index
    len(plan.members))."""
    entries = []
    for k, m in enumerate(plan.members):
        if isinstance(m, ElementwiseMember):
            for name in m.bijector.declared.spec.parameter_names:
                entries.append(("p", k, name, len(entries), m.slots[name], m.constraints[name]))
        else:
            n, r = m.n, m.r
            sizes = (("shift", n), ("tril", n * (n + 1) // 2), ("factor", n * r), ("diag", r))
            for block, size in sizes:
                start = m.slots[block]
                for j in range(size):
                    t = None if start is None else start + j
                    entries.append((block, k, f"{block}[{j}]", len(entries), t, None))
    if plan.base_train is not None:
        k = len(plan.members)
        for block, constraint in (("loc", None), ("scale", Positive)):
            start = plan.base_train.slots[block]
            for j in range(plan.event_size):
                t = None if start is None else start + j
                entries.append((f"base_{block}", k, f"{block}[{j}]", len(entries), t, constraint))
    return entries


def training_key(plan: TrainingPlan) -> str:
    """Hash of everything the module's text depends on (structure, not values)."""
    parts = [f"version={__version__}", f"compiler={compiler_fingerprint()}"]
    # the training generator's own source: an edit here never reuses a stale module
    for path in sorted(Path(__file__).parent.glob("*.py")):
        parts.append(f"{path.name}={hashlib.sha256(path.read_bytes()).hexdigest()}")
    parts.append(f"base={plan.base.name}:n={plan.event_size}")
    for m in plan.members:
        if isinstance(m, ElementwiseMember):
            parts.append(f"elementwise={m.bijector.declared.hash}")
        else:
            parts.append(f"affine=n{m.n}:r{m.r}")
    for kind, k, name, qi, ti, c in layout(plan):
        parts.append(f"{kind}:{k}:{name}:{qi}:{ti}:{c.name if c is not None else ''}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _elementwise_core(k: int, m: ElementwiseMember, printer) -> tuple[str, int]:
    """Source of `m<k>_constants` and `m<k>_backward`, and the number of constants.

    The core computes x = g(y) and ildj(y), then the forward side's partials at that x,
    and combines them by the implicit function theorem (dx/dy = 1/f_x, dx/dθ = -f_θ/f_x,
    and ildj = -fldj(x) differentiated through x). Working at the kernel's own x keeps
    Piecewise conditions simple (x >= 0, not a condition on g(y)), so each branch is a
    select. Parameter-only terms (1/alpha, log(alpha), ...) go to `m<k>_constants`, once
    per step.
    """
    declared = m.bijector.declared
    spec = declared.spec
    exprs = declared.inverse_gradient_exprs()
    y_in, x_out = sp.Symbol("_y", real=True), sp.Symbol("_x", real=True)
    to_y = {declared.output_symbol: y_in}
    to_x = {spec.x: x_out}
    params = set(spec.parameter_symbols)
    table: dict = {}
    inv = hoist_parameter_terms(
        [exprs["inverse"].xreplace(to_y), exprs["ildj"].xreplace(to_y)], params, table
    )
    fwd = [e.xreplace(to_x) for e in (*exprs["forward_partials"], *exprs["fldj_partials"])]
    n_p = len(spec.parameter_names)
    # The implicit function theorem, symbolically and folded into each Piecewise piece:
    # a branch then selects between cheap values (1 or 1/alpha, hoisted), never feeds a
    # division, and LLVM can keep it a branch-free select.
    fx, fps, lx, lps = fwd[0], fwd[1 : 1 + n_p], fwd[1 + n_p], fwd[2 + n_p :]
    fold = sp.piecewise_fold
    dxdy = fold(1 / fx)
    dxdp = [fold(-fp / fx) for fp in fps]
    dldy = fold(-lx / fx)
    dldp = [fold(-(lp + lx * d)) for lp, d in zip(lps, dxdp, strict=True)]
    derivs = hoist_parameter_terms([dxdy, *dxdp, dldy, *dldp], params, table)
    temps = sp.numbered_symbols("_t")
    body = []
    names = ["_dxdy", *[f"_dxdp{j}" for j in range(n_p)], "_dldy"]
    names += [f"_dldp{j}" for j in range(n_p)]
    for group, labels in ((inv, ["_x", "_ildj"]), (derivs, names)):
        replacements, reduced = sp.cse(group, symbols=temps, order="canonical", list=True)
        body.extend(f"    {t} = {printer.print_expr(e)}" for t, e in replacements)
        body.extend(
            f"    {n} = {printer.print_expr(e)}" for n, e in zip(labels, reduced, strict=True)
        )
    outs = ["_x", "_ildj", "_dxdy", *[f"_dxdp{j}" for j in range(n_p)], "_dldy"]
    outs += [f"_dldp{j}" for j in range(n_p)]
    body.append(f"    return ({', '.join(outs)},)")
    consts = [str(t) for t in table.values()]
    args = ", ".join(["_y", *spec.parameter_names, *consts])
    text = [""]
    if table:
        text += [
            '@numba.njit(cache=True, error_model="numpy")',
            f"def m{k}_constants({', '.join(spec.parameter_names)}):",
            f'    """{m.bijector.name}: its parameter-only terms, once per step."""',
            *(f"    {t} = {printer.print_expr(e)}" for e, t in table.items()),
            f"    return ({', '.join(consts)},)",
            "",
            "",
        ]
    text += [
        '@numba.njit(cache=True, error_model="numpy")',
        f"def m{k}_backward({args}):",
        f'    """{m.bijector.name}: x = g(y), ildj(y), and both differentiated with respect to',
        f'    (y, {", ".join(spec.parameter_names) or "no parameters"})."""',
        *body,
        "",
    ]
    return "\n".join(text), len(table)


def _constrain(plan: TrainingPlan, printer) -> str:
    lines = [
        "",
        '@numba.njit(cache=True, error_model="numpy")',
        "def constrain(theta, fixed, q, dq):",
        '    """q: every parameter\'s value (θ mapped through its constraint, or fixed);',
        '    dq: d q / d θ for the trainable ones."""',
        "    for _j in range(q.shape[0]):",
        "        q[_j] = fixed[_j]",
        "        dq[_j] = 0.0",
    ]
    raw = sp.Symbol("_raw", real=True)
    for _, k, name, qi, ti, c in layout(plan):
        if ti is None:
            continue
        if c is None or c.lo == -sp.oo and c.hi == sp.oo:  # Real, NonZero
            lines.append(f"    q[{qi}] = theta[{ti}]  # {k}.{name}")
            lines.append(f"    dq[{qi}] = 1.0")
            continue
        value, deriv = constraint_exprs(c, raw)
        lines.append(f"    _raw = theta[{ti}]  # {k}.{name}, {c.name}")
        lines.append(f"    q[{qi}] = {printer.print_expr(value)}")
        lines.append(f"    dq[{qi}] = {printer.print_expr(deriv)}")
    return "\n".join(lines) + "\n"


def _unrolled(m) -> bool:
    """Whether an Affine member's per-step algebra is written out (`_affine_*_unrolled`)."""
    return m.n <= MAX_UNROLLED_AFFINE_N and m.r <= 2


def _affine_prepare_unrolled(k, m, n, r, s_tr, s_fa, s_di, indent) -> list[str]:
    """`affine_prepare` written out for one Affine member with n <= 4 and r <= 2.

    The same maths in straight-line code on locals: T = L^-1 by forward substitution (its
    zeros left out), W = T V, the capacitance K = I + D V^T W and P = D V^T T, then
    Z = K^-1 P by the closed-form inverse of a 1 x 1 or 2 x 2 matrix (adjugate over
    determinant, which is also det K for the matrix determinant lemma) and
    M^-1 = T - W Z. Locals `_m{k}_{a}{b}` hold M^-1 for the rows; `minv[k]` gets a copy
    for `affine_gradient`. Compiling this takes a fraction of the generic loops' time
    (2-3 s), and a step skips their loop overhead.
    """
    i = indent
    lines = [
        f"{i}# member {k}: {m.bijector.name}: M^-1 once per step (unrolled: n = {n}, r = {r})"
    ]
    for j, pos in enumerate(m.tril_positions):
        a, b = divmod(int(pos), n)
        lines.append(f"{i}_L{k}_{a}{b} = q[{s_tr + j}]")
    filled = {divmod(int(pos), n) for pos in m.tril_positions}
    lval = {ab: (f"_L{k}_{ab[0]}{ab[1]}" if ab in filled else None) for ab in np.ndindex(n, n)}
    lines.append(
        f"{i}_nll_const += " + " + ".join(f"math.log(abs(_L{k}_{a}{a}))" for a in range(n))
    )
    t = {(a, a): f"_T{k}_{a}{a}" for a in range(n)}  # T = L^-1, lower triangular
    lines += [f"{i}_T{k}_{a}{a} = 1.0 / _L{k}_{a}{a}" for a in range(n)]
    for col in range(n):
        for a in range(col + 1, n):
            terms = [f"{lval[(a, b)]} * {t[(b, col)]}" for b in range(col, a) if lval[(a, b)]]
            if terms:
                t[(a, col)] = f"_T{k}_{a}{col}"
                lines.append(f"{i}{t[(a, col)]} = -({' + '.join(terms)}) * _T{k}_{a}{a}")
    if r == 0:
        for a in range(n):
            for b in range(n):
                lines.append(f"{i}_m{k}_{a}{b} = {t.get((a, b), '0.0')}")
                lines.append(f"{i}minv[{k}, {a}, {b}] = _m{k}_{a}{b}")
        return lines
    v = {(b, c): f"q[{s_fa + b * r + c}]" for b in range(n) for c in range(r)}
    for a in range(n):
        for c in range(r):
            terms = " + ".join(f"{t[(a, b)]} * {v[(b, c)]}" for b in range(n) if (a, b) in t)
            lines.append(f"{i}_W{k}_{a}{c} = {terms}")
    for c in range(r):
        for e in range(r):
            acc = " + ".join(f"{v[(b, c)]} * _W{k}_{b}{e}" for b in range(n))
            one = " + 1.0" if c == e else ""
            lines.append(f"{i}_K{k}_{c}{e} = q[{s_di + c}] * ({acc}){one}")
        for j in range(n):
            acc = " + ".join(f"{v[(b, c)]} * {t[(b, j)]}" for b in range(n) if (b, j) in t)
            lines.append(f"{i}_P{k}_{c}{j} = q[{s_di + c}] * ({acc})")
    if r == 1:
        lines.append(f"{i}_det{k} = _K{k}_00")
        for j in range(n):
            lines.append(f"{i}_Z{k}_0{j} = _P{k}_0{j} / _det{k}")
    else:
        lines.append(f"{i}_det{k} = _K{k}_00 * _K{k}_11 - _K{k}_01 * _K{k}_10")
        for j in range(n):
            lines.append(
                f"{i}_Z{k}_0{j} = (_K{k}_11 * _P{k}_0{j} - _K{k}_01 * _P{k}_1{j}) / _det{k}"
            )
            lines.append(
                f"{i}_Z{k}_1{j} = (_K{k}_00 * _P{k}_1{j} - _K{k}_10 * _P{k}_0{j}) / _det{k}"
            )
    lines.append(f"{i}_nll_const += math.log(abs(_det{k}))")
    for a in range(n):
        for b in range(n):
            wz = " + ".join(f"_W{k}_{a}{c} * _Z{k}_{c}{b}" for c in range(r))
            lead = f"{t[(a, b)]} - " if (a, b) in t else "-"
            lines.append(f"{i}_m{k}_{a}{b} = {lead}({wz})")
            lines.append(f"{i}minv[{k}, {a}, {b}] = _m{k}_{a}{b}")
    return lines


def _affine_gradient_unrolled(k, m, n, r, s_tr, s_fa, s_di, indent) -> list[str]:
    """`affine_gradient` written out for the members `_affine_prepare_unrolled` serves.

    G = gm[k] + nb M^-T (every row's log|det M|), then dL = lower(G) at L's entries,
    dV = (G + G^T) V D and dd_c = v_c^T G v_c, on locals.
    """
    i = indent
    lines = [f"{i}# member {k}: d/d(L, V, d) from G = d/dM (unrolled)"]
    g = {(a, b): f"_G{k}_{a}{b}" for a in range(n) for b in range(n)}
    lines += [f"{i}{g[(a, b)]} = gm[{k}, {a}, {b}] + _nb * _m{k}_{b}{a}" for a, b in g]
    for j, pos in enumerate(m.tril_positions):
        lines.append(f"{i}gq[{s_tr + j}] += {g[divmod(int(pos), n)]}")
    v = {(b, c): f"q[{s_fa + b * r + c}]" for b in range(n) for c in range(r)}
    for a in range(n):
        for c in range(r):
            acc = " + ".join(f"({g[(a, b)]} + {g[(b, a)]}) * {v[(b, c)]}" for b in range(n))
            lines.append(f"{i}gq[{s_fa + a * r + c}] += ({acc}) * q[{s_di + c}]")
    for c in range(r):
        acc = " + ".join(
            f"{v[(a, c)]} * {g[(a, b)]} * {v[(b, c)]}" for a in range(n) for b in range(n)
        )
        lines.append(f"{i}gq[{s_di + c}] += {acc}")
    return lines


def _unconstrain(plan: TrainingPlan, printer) -> str:
    lines = [
        "",
        '@numba.njit(cache=True, error_model="numpy")',
        "def unconstrain(start, theta):",
        '    """θ from the trainable parameters\' constrained start values (the inverses of',
        '    the constraint bijectors); the index of the first non-finite entry, or -1."""',
    ]
    y = sp.Symbol("_y", real=True)
    for _, k, name, _, ti, c in layout(plan):
        if ti is None:
            continue
        if c is None or c.lo == -sp.oo and c.hi == sp.oo:  # Real, NonZero
            lines.append(f"    theta[{ti}] = start[{ti}]  # {k}.{name}")
            continue
        lines.append(f"    _y = start[{ti}]  # {k}.{name}, {c.name}")
        lines.append(f"    theta[{ti}] = {printer.print_expr(constraint_inverse_expr(c, y))}")
    lines += [
        "    for _j in range(theta.shape[0]):",
        "        if not np.isfinite(theta[_j]):",
        "            return _j",
        "    return -1",
    ]
    return "\n".join(lines) + "\n"


def emit_training_module(plan: TrainingPlan, key: str) -> KernelSource:
    """The module text for `plan`; same structure, same bytes.

    Event coordinates are unrolled (n <= MAX_UNROLLED_N), so a row's values live in
    registers, as in a hand-written kernel. An Affine member on the data side needs no
    per-row solve for its gradient: the rows only accumulate sum(c u^T) and sum(c), and
    M^-T is applied once per batch.
    """
    printer = KernelPrinter(branch_free=True)  # rows are not vectorized: no jumps
    n = plan.event_size
    if n > MAX_UNROLLED_N:
        raise SymflowError(
            f"fit: events of size {n} are above the training kernel's unrolled limit "
            f"({MAX_UNROLLED_N}); larger events are not supported yet."
        )
    nm = len(plan.members)
    entries = layout(plan)
    starts: dict = {}
    for kind, k, _, qi, _, _ in entries:
        starts.setdefault((k, kind), qi)
    cores, n_consts = [], {}
    for k, m in enumerate(plan.members):
        if isinstance(m, ElementwiseMember):
            text, n_consts[k] = _elementwise_core(k, m, printer)
            cores.append(text)
    base = plan.base
    if base.name == "Normal":
        loc, scale = [float(base.loc)], [float(base.scale)]
    else:
        loc = [float(v) for v in base.loc.reshape(-1)]
        scale = [float(abs(v)) for v in base.scale_diag.reshape(-1)]
    pro, row, rev, post = [], [], [], []
    I1, I2 = "    ", "        "  # noqa: N806 (indent levels)
    for k, m in enumerate(plan.members):
        if isinstance(m, AffineMember):
            r = m.r
            s_sh, s_tr = starts[(k, "shift")], starts[(k, "tril")]
            s_fa, s_di = starts.get((k, "factor"), 0), starts.get((k, "diag"), 0)
            if _unrolled(m):
                pro += _affine_prepare_unrolled(k, m, n, r, s_tr, s_fa, s_di, I1)
            else:
                pro.append(f"{I1}# member {k}: {m.bijector.name}: M^-1 by solves, once per step")
                pro.append(
                    f"{I1}_nll_const += affine_prepare(q, {s_tr}, {s_fa}, {s_di}, {n}, {r}, "
                    f"TRIL_POS{k}, mats[{k}], minv[{k}], scratch[{k}])"
                )
                pro += [
                    f"{I1}_m{k}_{a}{b} = minv[{k}, {a}, {b}]" for a in range(n) for b in range(n)
                ]
            pro += [f"{I1}_s{k}_{a} = q[{s_sh + a}]" for a in range(n)]
            row.append(f"{I2}# member {k}: {m.bijector.name}: u = M^-1 (y - shift)")
            for a in range(n):
                terms = " + ".join(f"_m{k}_{a}{b} * (_v{k}_{b} - _s{k}_{b})" for b in range(n))
                row.append(f"{I2}_v{k + 1}_{a} = {terms}")
            if k == 0:
                pro += [f"{I1}_S{k}_{a}{b} = 0.0" for a in range(n) for b in range(n)]
                pro += [f"{I1}_C{k}_{a} = 0.0" for a in range(n)]
                rev.append(f"{I2}# member {k}: {m.bijector.name}: sums for d/dshift and d/dM")
                rev += [f"{I2}_C{k}_{a} += _c{a}" for a in range(n)]
                rev += [
                    f"{I2}_S{k}_{a}{b} += _c{a} * _v{k + 1}_{b}"
                    for a in range(n)
                    for b in range(n)
                ]
                post.append(f"{I1}# member {k}: d/dshift = -M^-T sum(c); d/dM = -M^-T sum(c u^T)")
                for a in range(n):
                    lam = " + ".join(f"_m{k}_{b}{a} * _C{k}_{b}" for b in range(n))
                    post.append(f"{I1}gq[{s_sh + a}] = -({lam})")
                    for b in range(n):
                        t = " + ".join(f"_m{k}_{c}{a} * _S{k}_{c}{b}" for c in range(n))
                        post.append(f"{I1}gm[{k}, {a}, {b}] = -({t})")
            else:
                pro += [f"{I1}_gs{k}_{a} = 0.0" for a in range(n)]
                rev.append(f"{I2}# member {k}: {m.bijector.name}: lam = M^-T c")
                for a in range(n):
                    lam = " + ".join(f"_m{k}_{b}{a} * _c{b}" for b in range(n))
                    rev.append(f"{I2}_l{a} = {lam}")
                for a in range(n):
                    rev.append(f"{I2}_gs{k}_{a} -= _l{a}")
                    rev += [f"{I2}gm[{k}, {a}, {b}] -= _l{a} * _v{k + 1}_{b}" for b in range(n)]
                rev += [f"{I2}_c{a} = _l{a}" for a in range(n)]
                post += [f"{I1}gq[{s_sh + a}] = _gs{k}_{a}" for a in range(n)]
            if _unrolled(m):
                post += _affine_gradient_unrolled(k, m, n, r, s_tr, s_fa, s_di, I1)
            else:
                post.append(
                    f"{I1}affine_gradient(q, gq, gm[{k}], minv[{k}], mats[{k}], _nb, {s_tr}, "
                    f"{s_fa}, {s_di}, {n}, {r}, TRIL_POS{k})"
                )
        else:
            names = m.bijector.declared.spec.parameter_names
            qidx = [starts[(k, "p")] + j for j in range(len(names))]
            pro += [f"{I1}_p{k}_{j} = q[{qi}]" for j, qi in enumerate(qidx)]
            pvals = [f"_p{k}_{j}" for j in range(len(names))]
            consts = [f"_k{k}_{c}" for c in range(n_consts[k])]
            if consts:
                pro.append(f"{I1}({', '.join(consts)},) = m{k}_constants({', '.join(pvals)})")
            pro += [f"{I1}_g{qi} = 0.0" for qi in qidx]
            row.append(f"{I2}# member {k}: {m.bijector.name}, inverse per coordinate")
            args = ", ".join(pvals + consts)
            for a in range(n):
                outs = [f"_v{k + 1}_{a}", "_il", f"_dxdy{k}_{a}"]
                outs += [f"_dxdp{k}_{a}_{j}" for j in range(len(names))]
                outs += [f"_dldy{k}_{a}"] + [f"_dldp{k}_{a}_{j}" for j in range(len(names))]
                row.append(
                    f"{I2}({', '.join(outs)},) = m{k}_backward(_v{k}_{a}{', ' if args else ''}"
                    f"{args})"
                )
                row.append(f"{I2}_lp += _il")
            rev.append(f"{I2}# member {k}: {m.bijector.name}: the loss holds -ildj")
            for j, qi in enumerate(qidx):
                t = " + ".join(f"_c{a} * _dxdp{k}_{a}_{j} - _dldp{k}_{a}_{j}" for a in range(n))
                rev.append(f"{I2}_g{qi} += {t}")
            rev += [f"{I2}_c{a} = _c{a} * _dxdy{k}_{a} - _dldy{k}_{a}" for a in range(n)]
            post += [f"{I1}gq[{qi}] = _g{qi}" for qi in qidx]
    if plan.base_train is not None:
        s_bl, s_bs = starts[(nm, "base_loc")], starts[(nm, "base_scale")]
        pro.append(f"{I1}# base {base.name}: loc and scale trained")
        for a in range(n):
            pro += [
                f"{I1}_bl{a} = q[{s_bl + a}]",
                f"{I1}_bi{a} = 1.0 / q[{s_bs + a}]",
                f"{I1}_nll_const += math.log(q[{s_bs + a}])",
                f"{I1}_bc{a} = 0.0",
                f"{I1}_bz{a} = 0.0",
            ]
        post.append(f"{I1}# base: d/dloc = -sum(c), d/dscale = (rows - sum(z^2)) / scale")
        for a in range(n):
            post.append(f"{I1}gq[{s_bl + a}] = -_bc{a}")
            post.append(f"{I1}gq[{s_bs + a}] = (_nb - _bz{a}) * _bi{a}")
    body = [
        f"{I1}constrain(theta, fixed, q, dq)",
        f"{I1}gq[:] = 0.0",
        f"{I1}gm[:] = 0.0",
        f"{I1}_nll_const = BASE_LOG_NORM  # sum log scale + n/2 log(2 pi)",
        *pro,
        f"{I1}_nb = rows.shape[0]",
        f"{I1}_loss = 0.0",
        f"{I1}for _i in range(_nb):",
        f"{I2}_r = rows[_i]",
        *(f"{I2}_v0_{a} = data[_r, {a}]" for a in range(n)),
        f"{I2}_lp = 0.0",
        *row,
        f"{I2}# base: {base.name}; c = d(-log p)/dx",
    ]
    for a in range(n):
        if plan.base_train is None:
            body.append(f"{I2}_z{a} = (_v{nm}_{a} - {loc[a]!r}) * {1.0 / scale[a]!r}")
            body.append(f"{I2}_lp -= 0.5 * _z{a} * _z{a}")
            body.append(f"{I2}_c{a} = _z{a} * {1.0 / scale[a]!r}")
        else:
            body.append(f"{I2}_z{a} = (_v{nm}_{a} - _bl{a}) * _bi{a}")
            body.append(f"{I2}_lp -= 0.5 * _z{a} * _z{a}")
            body.append(f"{I2}_c{a} = _z{a} * _bi{a}")
            body.append(f"{I2}_bc{a} += _c{a}")
            body.append(f"{I2}_bz{a} += _z{a} * _z{a}")
    body.append(f"{I2}_loss -= _lp")
    for block in reversed(_split(rev)):
        body.extend(block)
    body.append(f"{I1}_loss = _loss / _nb + _nll_const")
    body.extend(post)
    body += [
        f"{I1}for _j in range(THETA_Q.shape[0]):",
        f"{I2}grad[_j] = gq[THETA_Q[_j]] * dq[THETA_Q[_j]] / _nb",
        f"{I1}return _loss",
    ]
    theta_q = tuple(
        e[3] for e in sorted((e for e in entries if e[4] is not None), key=lambda e: e[4])
    )
    log_norm = n * 0.5 * math.log(2 * math.pi)
    if plan.base_train is None:  # a trained scale's log is added from q, once per step
        log_norm += sum(math.log(v) for v in scale)
    consts = [
        f"N = {n}",
        f"N_Q = {len(entries)}",
        f"N_MEMBERS = {nm}",
        "#: sum log scale + n/2 log(2 pi): the base's normalizing constant, part of the NLL",
        f"BASE_LOG_NORM = {log_norm!r}",
        "#: the q index of each θ entry",
        f"THETA_Q = np.array({theta_q!r}, dtype=np.int64)",
    ]
    consts += [
        f"TRIL_POS{k} = np.array({tuple(int(p) for p in m.tril_positions)!r}, dtype=np.int64)"
        for k, m in enumerate(plan.members)
        if isinstance(m, AffineMember)
    ]
    # fastmath: only "reassoc" (the per-row sums may be reordered, so LLVM vectorizes the
    # row loop, four rows a vector with AVX2) and "contract" (fused multiply-adds). No
    # finite-math or no-NaN assumption: a non-finite loss still comes out non-finite and
    # `fit` reports it.
    # The tiny flow's step: 5.0 us as a scalar loop over gathered rows, 1.5 with "reassoc",
    # 1.0 with both (the module variants run in one process, 100 epochs of 10 steps).
    nll = "\n".join(
        [
            "",
            '@numba.njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})',
            "def nll_and_grad_into(",
            "    theta, fixed, data, rows, grad, q, dq, gq, mats, minv, gm, scratch",
            "):",
            '    """Mean NLL of the events data[rows] and its gradient w.r.t. θ, into `grad`.',
            "",
            "    The rows are read where they lie (no copy of the batch); q ... scratch are",
            "    work arrays from `work_arrays()`. Sums over rows may be reordered (fastmath",
            '    "reassoc"): vectorized, several rows at a time (four with AVX2)."""',
            *body,
            "",
        ]
    )
    # A second copy runs the rows on all cores (numba.prange): every per-row accumulator is
    # a scalar sum, which parfors reduces per thread. Only a flow whose rows write arrays
    # (an Affine that is not the data-side member) has none.
    parallel_ok = not any(isinstance(m, AffineMember) for k, m in enumerate(plan.members) if k > 0)
    loop = _LOOP
    if parallel_ok:
        nll += (
            nll.replace("def nll_and_grad_into(", "def nll_and_grad_into_parallel(")
            .replace('"contract"})', '"contract"}, parallel=True)', 1)
            .replace("    for _i in range(_nb):", "    for _i in numba.prange(_nb):")
            .replace("_loss -= _lp", "_loss += -_lp")
            .replace("into `grad`.", "into `grad`; rows on all cores.")
        )
        loop += (
            _LOOP[_LOOP.index("\n\n@numba.njit(cache=True)\ndef train(") :]
            .replace("def train(", "def train_parallel(")
            .replace("nll_and_grad_into(theta", "nll_and_grad_into_parallel(theta")
            .replace(
                "Every epoch and step in one call", "`train` with each batch's rows on all cores"
            )
        )
    constrain_src = _constrain(plan, printer) + _unconstrain(plan, printer)
    helpers = sorted(printer.helpers)
    members_doc = "\n".join(f"#   {k}: {m.bijector.name}" for k, m in enumerate(plan.members))
    names_doc = "\n".join(
        f"#   theta[{e[4]}] -> q[{e[3]}]  {name}"
        for name, e in zip(
            plan.names, sorted((e for e in entries if e[4] is not None), key=lambda e: e[4]),
            strict=True,
        )
    )  # fmt: skip
    header = (
        f"# Generated by symflow {__version__}: fused training kernels. Do not edit.\n"
        f"# Flow, members in inverse-pass order (data side first), base {base.name} "
        f"(n = {n}):\n{members_doc}\n"
        f"# Trainable parameters (unconstrained θ):\n{names_doc}\n"
        f"# hash:       sha256:{key}\n"
        '"""Fused training kernels: mean NLL + gradient, and the compiled training loop."""\n\n'
        "import math\n\nimport numba\nimport numba.extending\nimport numpy as np\n\n"
        f"HASH = {key!r}\n" + "\n".join(consts) + "\n"
    )
    parts = [header]
    if helpers:
        parts.append(f"\n# ---- helpers ({len(helpers)} requested)\n\n")
        parts.append(helper_sources(helpers).rstrip("\n") + "\n\n")
    parts.append("\n# ---- optimizers and the Affine members' per-step linear algebra\n")
    generic = any(isinstance(m, AffineMember) and not _unrolled(m) for m in plan.members)
    parts.append(optimizer_source(generic))
    parts.append("\n# ---- parameters and elementwise members\n")
    parts.append(constrain_src)
    parts.extend(cores)
    parts.append("\n# ---- the fused loss and gradient, and the loop\n")
    parts.append(nll)
    r_max = max([m.r for m in plan.members if isinstance(m, AffineMember)] + [0])
    scratch = n * n + n * r_max + r_max * (r_max + n)
    parts.append(loop.format(n_aff=max(nm, 1), scratch=max(scratch, 1)))
    text = "".join(parts).rstrip("\n") + "\n"
    return KernelSource(f"Training_{key[:16]}", text, key)


def _split(lines: list[str]) -> list[list[str]]:
    """Groups reverse-pass lines by member (each group starts at its comment line)."""
    blocks: list[list[str]] = []
    for line in lines:
        if line.lstrip().startswith("# member"):
            blocks.append([])
        blocks[-1].append(line)
    return blocks


_LOOP = '''
@numba.njit(cache=True)
def work_arrays():
    """The scratch arrays `nll_and_grad_into` needs, allocated once."""
    return (
        np.empty(N_Q), np.empty(N_Q), np.empty(N_Q),
        np.zeros(({n_aff}, N, N)), np.zeros(({n_aff}, N, N)), np.zeros(({n_aff}, N, N)),
        np.zeros(({n_aff}, {scratch})),
    )


@numba.njit(cache=True)
def nll_and_grad(theta, fixed, batch, grad):
    """Mean NLL of `batch` and its gradient w.r.t. θ (allocating its work arrays)."""
    rows = np.arange(batch.shape[0])
    return nll_and_grad_into(theta, fixed, batch, rows, grad, *work_arrays())


@numba.njit(cache=True)
def train(theta, fixed, data, order, batch_size, kind, hyper, state, losses):
    """Every epoch and step in one call: the step's loss and gradient, optimizer update.

    order: (epochs, n_data) row permutations; kind: 0 Adam, 1 SGD with momentum; hyper:
    the optimizer's constants; state: (3, len(θ)) moments and, at [2, 0], the step
    count; losses[e]: the mean training NLL of epoch e.
    """
    w = work_arrays()
    grad = np.empty(theta.shape[0])
    n_data = data.shape[0]
    for _e in range(order.shape[0]):
        _total = 0.0
        for _s in range(0, n_data, batch_size):
            _m = min(batch_size, n_data - _s)
            _l = nll_and_grad_into(theta, fixed, data, order[_e, _s : _s + _m], grad, *w)
            if kind == 0:
                adam_update(theta, grad, state, hyper)
            else:
                sgd_update(theta, grad, state, hyper)
            _total += _l * _m
        losses[_e] = _total / n_data
'''
