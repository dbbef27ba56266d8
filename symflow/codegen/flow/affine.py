"""An Affine member: u = M^-1 (y - shift) with M = L + V diag(d) V^T, on vector events.

The flow's inverse pass needs M^-1 once per call: `affine_prepare` builds it from
triangular solves (T = L^-1 by forward substitution) and the Woodbury identity, and gives
log|det M| by the matrix determinant lemma; each row is then one matrix-vector product. The
adjoint turns d loss / d M into the gradients of L's entries (TFP's FillTriangular order),
V and d (`affine_gradient`). For event sizes up to 4 and rank up to 2 the row code writes
the same algebra out as straight-line code on locals.

Blocks (TFP's parameter names): shift (n), scale_tril (n(n+1)/2 entries of L),
scale_perturb_factor (V, n*r, row-major), scale_perturb_diag (d, r); a block the bound
bijector was not given (ScaleMatvecTriL's shift, an unperturbed Affine's factor) is held
fixed at its neutral value.
"""

from __future__ import annotations

import functools
import inspect
import math

import numpy as np

from symflow.codegen.flow.member import Block, Emitter

__all__ = ["MAX_UNROLLED_AFFINE_N", "AffineCode"]

#: Affine members up to this event size (and perturbation rank 2) get their per-step
#: M^-1 written out as straight-line code in row code instead of the generic loops.
MAX_UNROLLED_AFFINE_N = 4


# ---- functions pasted into generated modules (Numba, no Python objects) ----------------


def affine_prepare(q, s_tr, s_fa, s_di, n, r, tril_pos, tinv, minv, scratch):
    """M^-1 of M = L + V diag(d) V^T into `minv`, and log|det M|, from q's entries.

    T = L^-1 by forward substitution; Woodbury: M^-1 = T - W C^-1 D V^T T with W = T V
    and the r x r capacitance C = I + D V^T T V, eliminated with partial pivoting (its
    determinant comes out of the same elimination). log|det M| = sum log|L_ii| +
    log|det C| (matrix determinant lemma). Once per step: the per-row work is then one
    matrix-vector product. Scratch matrices live in the flat vector `scratch` (row-major,
    indexed by hand: no views or reshapes, which cost Numba seconds to compile): L at 0,
    W = T V at n*n, [C | D V^T T] at n*n + n*r.
    """
    for a in range(n):
        for b in range(n):
            tinv[a, b] = 0.0
    logdet = 0.0
    # L's entries (lower triangle, TFP fill order) straight from q; T = L^-1 column by column
    for j in range(n):
        tinv[j, j] = 1.0
    for j in range(n * n):
        scratch[j] = 0.0
    for j in range(tril_pos.shape[0]):
        scratch[tril_pos[j]] = q[s_tr + j]
    for a in range(n):
        logdet += math.log(abs(scratch[a * n + a]))
    for col in range(n):
        for a in range(n):
            acc = 1.0 if a == col else 0.0
            for b in range(a):
                acc -= scratch[a * n + b] * tinv[b, col]
            tinv[a, col] = acc / scratch[a * n + a]
    for a in range(n):
        for b in range(n):
            minv[a, b] = tinv[a, b]
    if r == 0:
        return logdet
    w = n * n  # W = T V, n x r
    for a in range(n):
        for c in range(r):
            acc = 0.0
            for b in range(n):
                acc += tinv[a, b] * q[s_fa + b * r + c]
            scratch[w + a * r + c] = acc
    cap = n * n + n * r  # [C | D V^T T], r x (r + n), eliminated in place
    width = r + n
    for c in range(r):
        for e in range(r):
            acc = 0.0
            for b in range(n):
                acc += q[s_fa + b * r + c] * scratch[w + b * r + e]
            scratch[cap + c * width + e] = q[s_di + c] * acc + (1.0 if c == e else 0.0)
        for j in range(n):
            acc = 0.0
            for b in range(n):
                acc += q[s_fa + b * r + c] * tinv[b, j]
            scratch[cap + c * width + r + j] = q[s_di + c] * acc
    det_c = 1.0
    for c in range(r):
        p = c
        for e in range(c + 1, r):
            if abs(scratch[cap + e * width + c]) > abs(scratch[cap + p * width + c]):
                p = e
        if p != c:
            det_c = -det_c
            for j in range(width):
                t = scratch[cap + c * width + j]
                scratch[cap + c * width + j] = scratch[cap + p * width + j]
                scratch[cap + p * width + j] = t
        pivot = scratch[cap + c * width + c]
        det_c *= pivot
        for e in range(c + 1, r):
            f = scratch[cap + e * width + c] / pivot
            for j in range(c, width):
                scratch[cap + e * width + j] -= f * scratch[cap + c * width + j]
    for c in range(r - 1, -1, -1):  # back substitution: rows c of Z = C^-1 D V^T T
        for j in range(n):
            acc = scratch[cap + c * width + r + j]
            for e in range(c + 1, r):
                acc -= scratch[cap + c * width + e] * scratch[cap + e * width + r + j]
            scratch[cap + c * width + r + j] = acc / scratch[cap + c * width + c]
    for a in range(n):
        for j in range(n):
            acc = 0.0
            for c in range(r):
                acc += scratch[w + a * r + c] * scratch[cap + c * width + r + j]
            minv[a, j] -= acc
    return logdet + math.log(abs(det_c))


def affine_gradient(q, gq, gm, minv, tinv, nb, s_tr, s_fa, s_di, n, r, tril_pos):
    """Adds d(sum of NLL)/d(L, V, d) to gq, from gm = -sum lam u^T (rows) and the log-det.

    Every row adds log|det M|, whose derivative is M^-T; then M = L + V D V^T gives
    dL = lower(G), dV = (G + G^T) V D and dd_c = v_c^T G v_c.
    """
    for a in range(n):
        for b in range(n):
            gm[a, b] += nb * minv[b, a]
    for j in range(tril_pos.shape[0]):
        gq[s_tr + j] += gm[tril_pos[j] // n, tril_pos[j] % n]
    for a in range(n):
        for c in range(r):
            acc = 0.0
            for b in range(n):
                acc += (gm[a, b] + gm[b, a]) * q[s_fa + b * r + c]
            gq[s_fa + a * r + c] += acc * q[s_di + c]
    for c in range(r):
        acc = 0.0
        for a in range(n):
            for b in range(n):
                acc += q[s_fa + a * r + c] * gm[a, b] * q[s_fa + b * r + c]
        gq[s_di + c] += acc


@functools.cache
def _helper_source() -> str:
    return "".join(
        '\n@numba.njit(cache=True, error_model="numpy")\n' + inspect.getsource(fn)
        for fn in (affine_prepare, affine_gradient)
    )


class AffineCode:
    """Code of an Affine (or ScaleMatvecTriL) member; see the module docstring.

    Args:
        n, r: event size and perturbation rank.
        tril_positions: flat position in the n x n matrix of each tril entry.
        given: which blocks the bound bijector has (the others are fixed, neutral).
        label: the bijector's name.
    """

    def __init__(self, n: int, r: int, tril_positions, given: set[str], label: str) -> None:
        self.event_size = self.n = n
        self.r = r
        self.tril_positions = tuple(int(p) for p in tril_positions)
        self.label = label
        self.blocks = tuple(
            Block(name, size, None, trainable=name in given)
            for name, size in (("shift", n), ("scale_tril", n * (n + 1) // 2),
                               ("scale_perturb_factor", n * r), ("scale_perturb_diag", r))
        )  # fmt: skip
        unrolled = n <= MAX_UNROLLED_AFFINE_N and r <= 2
        self.row = _AffineRows(self, unrolled) if n <= 16 else None

    def key(self) -> str:
        return f"affine:n={self.n}:r={self.r}"

    def _constants(self, e: Emitter) -> None:
        e.add_helper("affine_prepare", _helper_source())
        name = f"TRIL_POS{e.k}"
        e.add_helper(name, f"{name} = np.array({self.tril_positions!r}, dtype=np.int64)\n")

    def _offsets(self, e: Emitter) -> str:
        o = e.offsets
        starts = (o["scale_tril"], o["scale_perturb_factor"], o["scale_perturb_diag"])
        return f"{starts[0]}, {starts[1]}, {starts[2]}, {self.n}, {self.r}, TRIL_POS{e.k}"

    # -- batch code --------------------------------------------------------------------
    def scratch(self, e: Emitter, train: bool) -> list[tuple[str, str]]:
        n, r = self.n, self.r
        arrays = [
            (e.s("tinv"), f"({n}, {n})"),
            (e.s("minv"), f"({n}, {n})"),
            (e.s("mm"), f"({n}, {n})"),
            (e.s("scr"), f"({max(n * n + n * r + r * (r + n), 1)},)"),
        ]
        if train:
            arrays += [(e.s("gm"), f"({n}, {n})"), (e.s("lam"), f"({n}, _B)")]
        return arrays

    def prepare(self, e: Emitter) -> list[str]:
        self._constants(e)
        n, r, k = self.n, self.r, e.k
        o = e.offsets
        return [
            f"# member {k}: {self.label}: M^-1 and log|det M| once per call; M itself",
            f"{e.s('logdet')} = affine_prepare(q, {self._offsets(e)}, {e.s('tinv')}, "
            f"{e.s('minv')}, {e.s('scr')})",
            f"for _a in range({n}):",
            f"    for _b in range({n}):",
            f"        {e.s('mm')}[_a, _b] = 0.0",
            f"for _j in range({len(self.tril_positions)}):",
            f"    {e.s('mm')}[TRIL_POS{k}[_j] // {n}, TRIL_POS{k}[_j] % {n}] = "
            f"q[{o['scale_tril']} + _j]",
            f"for _a in range({n}):",
            f"    for _b in range({n}):",
            f"        for _c in range({r}):",
            f"            {e.s('mm')}[_a, _b] += q[{o['scale_perturb_factor']} + _a * {r} + _c] * "
            f"q[{o['scale_perturb_diag']} + _c] * q[{o['scale_perturb_factor']} + _b * {r} + _c]",
        ]

    def _product(self, e, matrix: str, src: str, dst: str, shift: str) -> list[str]:
        n, o = self.n, e.offsets["shift"]
        sub = f" - q[{o} + _b]" if shift == "before" else ""
        lines = [
            f"for _a in range({n}):",
            "    for _i in range(_m):",
            f"        {dst}[_a, _i] = {f'q[{o} + _a]' if shift == 'after' else '0.0'}",
            f"    for _b in range({n}):",
            f"        _w = {matrix}[_a, _b]",
            "        for _i in range(_m):",
            f"            {dst}[_a, _i] += _w * ({src}[_b, _i]{sub})",
        ]
        return lines

    def inverse(self, e: Emitter, src: str, dst: str, train: bool) -> list[str]:
        return [
            f"# member {e.k}: {self.label}: u = M^-1 (y - shift)",
            *self._product(e, e.s("minv"), src, dst, "before"),
            "for _i in range(_m):",
            f"    _ldj[_i] -= {e.s('logdet')}",
        ]

    def forward(self, e: Emitter, src: str, dst: str, with_ldj: bool) -> list[str]:
        lines = [f"# member {e.k}: {self.label}: y = M x + shift"]
        lines += self._product(e, e.s("mm"), src, dst, "after")
        if with_ldj:
            lines += ["for _i in range(_m):", f"    _ldj[_i] += {e.s('logdet')}"]
        return lines

    def adjoint(self, e: Emitter, src: str, dst: str, cot: str, cot_in: str | None) -> list[str]:
        n, o = self.n, e.offsets
        lam = cot_in if cot_in is not None else e.s("lam")
        gm, minv = e.s("gm"), e.s("minv")
        return [
            f"# member {e.k}: {self.label}: lam = M^-T c; d/dshift = -sum lam; "
            "d/dM = -sum lam u^T + rows M^-T",
            f"for _b in range({n}):",
            "    for _i in range(_m):",
            f"        {lam}[_b, _i] = 0.0",
            f"    for _a in range({n}):",
            f"        _w = {minv}[_a, _b]",
            "        for _i in range(_m):",
            f"            {lam}[_b, _i] += _w * {cot}[_a, _i]",
            f"for _a in range({n}):",
            "    _acc = 0.0",
            "    for _i in range(_m):",
            f"        _acc += {lam}[_a, _i]",
            f"    gq[{o['shift']} + _a] -= _acc",
            f"    for _b in range({n}):",
            "        _acc = 0.0",
            "        for _i in range(_m):",
            f"            _acc += {lam}[_a, _i] * {dst}[_b, _i]",
            f"        {gm}[_a, _b] = -_acc",
            f"affine_gradient(q, gq, {gm}, {minv}, {e.s('tinv')}, _m, {self._offsets(e)})",
        ]

    def finish(self, e: Emitter) -> list[str]:
        return []


class _AffineRows:
    """Row code: u = M^-1 (y - shift) on locals; on the data side the rows only sum
    c and c u^T (M^-T is applied once per step), elsewhere each row adds to d/dM."""

    def __init__(self, m: AffineCode, unrolled: bool) -> None:
        self.m = m
        self.unrolled = unrolled

    def parallel_safe(self, first: bool) -> bool:
        # elsewhere than on the data side each row adds to the d/dM array
        return first

    def scratch(self, e: Emitter, first: bool) -> list[tuple[str, str]]:
        n, r = self.m.n, self.m.r
        arrays = [(e.s("minv"), f"({n}, {n})"), (e.s("gm"), f"({n}, {n})")]
        if not self.unrolled:
            arrays += [
                (e.s("tinv"), f"({n}, {n})"),
                (e.s("scr"), f"({max(n * n + n * r + r * (r + n), 1)},)"),
            ]
        return arrays

    def prepare(self, e: Emitter, first: bool) -> list[str]:
        m, k, n = self.m, e.k, self.m.n
        o = e.offsets
        if self.unrolled:
            lines = _prepare_unrolled(e, m)
        else:
            m._constants(e)
            lines = [
                f"# member {k}: {m.label}: M^-1 by solves, once per step",
                f"_nll_const += affine_prepare(q, {m._offsets(e)}, {e.s('tinv')}, "
                f"{e.s('minv')}, {e.s('scr')})",
            ]
            lines += [
                f"_m{k}_{a}{b} = {e.s('minv')}[{a}, {b}]" for a in range(n) for b in range(n)
            ]
        lines += [f"_s{k}_{a} = q[{o['shift'] + a}]" for a in range(n)]
        lines += [f"{e.s('gm')}[{a}, {b}] = 0.0" for a in range(n) for b in range(n)]
        if first:
            lines += [f"_S{k}_{a}{b} = 0.0" for a in range(n) for b in range(n)]
            lines += [f"_C{k}_{a} = 0.0" for a in range(n)]
        else:
            lines += [f"_gs{k}_{a} = 0.0" for a in range(n)]
        return lines

    def inverse(self, e: Emitter, src: list[str], dst: list[str]) -> list[str]:
        k, n = e.k, self.m.n
        lines = [f"# member {k}: {self.m.label}: u = M^-1 (y - shift)"]
        for a in range(n):
            terms = " + ".join(f"_m{k}_{a}{b} * ({src[b]} - _s{k}_{b})" for b in range(n))
            lines.append(f"{dst[a]} = {terms}")
        return lines

    def adjoint(self, e: Emitter, src, dst, cot: list[str], first: bool) -> list[str]:
        k, n = e.k, self.m.n
        if first:
            lines = [f"# member {k}: {self.m.label}: sums for d/dshift and d/dM"]
            lines += [f"_C{k}_{a} += {cot[a]}" for a in range(n)]
            lines += [f"_S{k}_{a}{b} += {cot[a]} * {dst[b]}" for a in range(n) for b in range(n)]
            return lines
        lines = [f"# member {k}: {self.m.label}: lam = M^-T c"]
        for a in range(n):
            lines.append(f"_l{a} = " + " + ".join(f"_m{k}_{b}{a} * {cot[b]}" for b in range(n)))
        for a in range(n):
            lines.append(f"_gs{k}_{a} -= _l{a}")
            lines += [f"{e.s('gm')}[{a}, {b}] -= _l{a} * {dst[b]}" for b in range(n)]
        lines += [f"{cot[a]} = _l{a}" for a in range(n)]
        return lines

    def finish(self, e: Emitter, first: bool) -> list[str]:
        m, k, n = self.m, e.k, self.m.n
        o = e.offsets
        gm = e.s("gm")
        if first:
            lines = [f"# member {k}: d/dshift = -M^-T sum(c); d/dM = -M^-T sum(c u^T)"]
            for a in range(n):
                lam = " + ".join(f"_m{k}_{b}{a} * _C{k}_{b}" for b in range(n))
                lines.append(f"gq[{o['shift'] + a}] += -({lam})")
                for b in range(n):
                    t = " + ".join(f"_m{k}_{c}{a} * _S{k}_{c}{b}" for c in range(n))
                    lines.append(f"{gm}[{a}, {b}] = -({t})")
        else:
            lines = [f"gq[{o['shift'] + a}] += _gs{k}_{a}" for a in range(n)]
        if self.unrolled:
            lines += _gradient_unrolled(e, m)
        else:
            lines.append(
                f"affine_gradient(q, gq, {gm}, {e.s('minv')}, {e.s('tinv')}, _nb, {m._offsets(e)})"
            )
        return lines


def _prepare_unrolled(e: Emitter, m: AffineCode) -> list[str]:
    """`affine_prepare` written out for one Affine member with n <= 4 and r <= 2.

    The same maths in straight-line code on locals: T = L^-1 by forward substitution (its
    zeros left out), W = T V, the capacitance K = I + D V^T W and P = D V^T T, then
    Z = K^-1 P by the closed-form inverse of a 1 x 1 or 2 x 2 matrix (adjugate over
    determinant, which is also det K for the matrix determinant lemma) and
    M^-1 = T - W Z. Locals `_m{k}_{a}{b}` hold M^-1 for the rows, and the member's `minv`
    array a copy. Compiling this takes a fraction of the generic loops' time (2-3 s), and a
    step skips their loop overhead.
    """
    k, n, r = e.k, m.n, m.r
    s_tr, s_fa, s_di = (
        e.offsets[b] for b in ("scale_tril", "scale_perturb_factor", "scale_perturb_diag")
    )
    minv = e.s("minv")
    lines = [f"# member {k}: {m.label}: M^-1 once per step (unrolled: n = {n}, r = {r})"]
    for j, pos in enumerate(m.tril_positions):
        a, b = divmod(int(pos), n)
        lines.append(f"_L{k}_{a}{b} = q[{s_tr + j}]")
    filled = {divmod(int(pos), n) for pos in m.tril_positions}
    lval = {ab: (f"_L{k}_{ab[0]}{ab[1]}" if ab in filled else None) for ab in np.ndindex(n, n)}
    lines.append("_nll_const += " + " + ".join(f"math.log(abs(_L{k}_{a}{a}))" for a in range(n)))
    t = {(a, a): f"_T{k}_{a}{a}" for a in range(n)}  # T = L^-1, lower triangular
    lines += [f"_T{k}_{a}{a} = 1.0 / _L{k}_{a}{a}" for a in range(n)]
    for col in range(n):
        for a in range(col + 1, n):
            terms = [f"{lval[(a, b)]} * {t[(b, col)]}" for b in range(col, a) if lval[(a, b)]]
            if terms:
                t[(a, col)] = f"_T{k}_{a}{col}"
                lines.append(f"{t[(a, col)]} = -({' + '.join(terms)}) * _T{k}_{a}{a}")
    if r == 0:
        for a in range(n):
            for b in range(n):
                lines.append(f"_m{k}_{a}{b} = {t.get((a, b), '0.0')}")
                lines.append(f"{minv}[{a}, {b}] = _m{k}_{a}{b}")
        return lines
    v = {(b, c): f"q[{s_fa + b * r + c}]" for b in range(n) for c in range(r)}
    for a in range(n):
        for c in range(r):
            terms = " + ".join(f"{t[(a, b)]} * {v[(b, c)]}" for b in range(n) if (a, b) in t)
            lines.append(f"_W{k}_{a}{c} = {terms}")
    for c in range(r):
        for d in range(r):
            acc = " + ".join(f"{v[(b, c)]} * _W{k}_{b}{d}" for b in range(n))
            one = " + 1.0" if c == d else ""
            lines.append(f"_K{k}_{c}{d} = q[{s_di + c}] * ({acc}){one}")
        for j in range(n):
            acc = " + ".join(f"{v[(b, c)]} * {t[(b, j)]}" for b in range(n) if (b, j) in t)
            lines.append(f"_P{k}_{c}{j} = q[{s_di + c}] * ({acc})")
    if r == 1:
        lines.append(f"_det{k} = _K{k}_00")
        lines += [f"_Z{k}_0{j} = _P{k}_0{j} / _det{k}" for j in range(n)]
    else:
        lines.append(f"_det{k} = _K{k}_00 * _K{k}_11 - _K{k}_01 * _K{k}_10")
        for j in range(n):
            lines.append(f"_Z{k}_0{j} = (_K{k}_11 * _P{k}_0{j} - _K{k}_01 * _P{k}_1{j}) / _det{k}")
            lines.append(f"_Z{k}_1{j} = (_K{k}_00 * _P{k}_1{j} - _K{k}_10 * _P{k}_0{j}) / _det{k}")
    lines.append(f"_nll_const += math.log(abs(_det{k}))")
    for a in range(n):
        for b in range(n):
            wz = " + ".join(f"_W{k}_{a}{c} * _Z{k}_{c}{b}" for c in range(r))
            lead = f"{t[(a, b)]} - " if (a, b) in t else "-"
            lines.append(f"_m{k}_{a}{b} = {lead}({wz})")
            lines.append(f"{minv}[{a}, {b}] = _m{k}_{a}{b}")
    return lines


def _gradient_unrolled(e: Emitter, m: AffineCode) -> list[str]:
    """`affine_gradient` written out for the members `_prepare_unrolled` serves.

    G = gm + nb M^-T (every row's log|det M|), then dL = lower(G) at L's entries,
    dV = (G + G^T) V D and dd_c = v_c^T G v_c, on locals.
    """
    k, n, r = e.k, m.n, m.r
    s_tr, s_fa, s_di = (
        e.offsets[b] for b in ("scale_tril", "scale_perturb_factor", "scale_perturb_diag")
    )
    gm = e.s("gm")
    lines = [f"# member {k}: d/d(L, V, d) from G = d/dM (unrolled)"]
    g = {(a, b): f"_G{k}_{a}{b}" for a in range(n) for b in range(n)}
    lines += [f"{g[(a, b)]} = {gm}[{a}, {b}] + _nb * _m{k}_{b}{a}" for a, b in g]
    for j, pos in enumerate(m.tril_positions):
        lines.append(f"gq[{s_tr + j}] += {g[divmod(int(pos), n)]}")
    v = {(b, c): f"q[{s_fa + b * r + c}]" for b in range(n) for c in range(r)}
    for a in range(n):
        for c in range(r):
            acc = " + ".join(f"({g[(a, b)]} + {g[(b, a)]}) * {v[(b, c)]}" for b in range(n))
            lines.append(f"gq[{s_fa + a * r + c}] += ({acc}) * q[{s_di + c}]")
    for c in range(r):
        acc = " + ".join(
            f"{v[(a, c)]} * {g[(a, b)]} * {v[(b, c)]}" for a in range(n) for b in range(n)
        )
        lines.append(f"gq[{s_di + c}] += {acc}")
    return lines
