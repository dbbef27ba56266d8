"""The composer: a flow's members and base → the functions of one generated module.

Nothing here knows a member's kind; each supplies its pieces through `member.Member`
(batch code) and, optionally, `member.RowCode`. Two sets of functions are emitted:

- **evaluation** (`evaluation_functions`): `log_prob`, `inverse_and_log_det` and
  `forward_and_log_det` over a batch of rows, each one compiled call: rows are processed in
  blocks of `BLOCK_ROWS`, feature-major, every member in turn on the whole block. They
  release the GIL: the runtime runs large batches as chunks of whole blocks on several
  threads (`runtime.composed`), so no parallel twin is compiled.
- **gradient** (`gradient_functions`): `loss_and_gq(q, data, context, rows, gq, w)`, the
  summed negative log-likelihood of `data[rows]` and its gradient with respect to q,
  added into gq; `train_work(B)` allocates its work arrays `w` for up to B rows. When every
  member has row code and events have at most `MAX_ROW_EVENT` coordinates, the whole pass
  (inverse, base, reverse) is one loop over rows with coordinates in locals (the
  walkthrough's PReLU + Affine flow trains at about a microsecond a step that way);
  otherwise each member runs on the whole batch in turn (networks), keeping what its
  reverse pass needs.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

from symflow.codegen.flow.member import Emitter, indent
from symflow.codegen.mathlib import helper_sources
from symflow.codegen.printer import KernelPrinter

__all__ = [
    "BLOCK_ROWS",
    "FASTMATH",
    "MAX_ROW_EVENT",
    "FlowCode",
    "assemble",
    "evaluation_functions",
    "gradient_functions",
]

#: Rows per block in the evaluation functions: a block's activations stay in cache.
BLOCK_ROWS = 256
#: Events up to this size may use the fused row loop (coordinates unrolled into locals).
MAX_ROW_EVENT = 16
#: fastmath flags of every composed function: sums over rows may be reordered ("reassoc",
#: so loops over rows vectorize) and multiply-adds fused ("contract"); no finite-math or
#: no-NaN assumption, so a non-finite value still comes out non-finite.
FASTMATH = '{"reassoc", "contract"}'


@dataclass
class FlowCode:
    """A flow's structure for the composer: members in inverse-pass order, and the base."""

    members: list
    base: object
    event_size: int
    context_size: int = 0
    emitters: list[Emitter] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        for m in self.members:
            if m.event_size != self.event_size:
                raise ValueError(
                    f"{m.label} acts on {m.event_size} coordinates, not {self.event_size}"
                )

    @property
    def parts(self) -> list:
        """The members and, if any, the base: everything that has blocks in q."""
        return [*self.members, *([self.base] if self.base is not None else [])]

    def layout(self) -> list[tuple[int, object, int]]:
        """(member index, block, first q index) of every block; the base's index is
        len(members)."""
        out, start = [], 0
        for k, m in enumerate(self.parts):
            for b in m.blocks:
                out.append((k, b, start))
                start += b.size
        return out

    @property
    def n_q(self) -> int:
        return sum(b.size for m in self.parts for b in m.blocks)

    def key(self) -> str:
        parts = [f"n={self.event_size}", f"c={self.context_size}"]
        parts += [m.key() for m in self.parts]
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()

    def make_emitters(self, printer: KernelPrinter) -> list[Emitter]:
        helpers: dict[str, str] = {}
        emitters = []
        layout = self.layout()
        for k in range(len(self.parts)):
            mine = [(b, start) for kk, b, start in layout if kk == k]
            emitters.append(
                Emitter(
                    k,
                    {b.name: s for b, s in mine},
                    {b.name: b.size for b, _ in mine},
                    printer,
                    self.context_size,
                    helpers,
                )
            )
        self.emitters = emitters
        return emitters

    def unit_emitter(self, k: int) -> Emitter:
        """The emitter of a shared member's functions: named after the first member with
        the same key (`u<j>`), offsets relative to the member's first q entry (the
        functions are called with the member's slice of q)."""
        m, e = self.members[k], self.emitters[k]
        keys = list(dict.fromkeys(mm.key() for mm in self.members if _shared(mm)))
        lo = min(e.offsets.values(), default=0)
        return Emitter(
            f"u{keys.index(m.key())}",
            {name: off - lo for name, off in e.offsets.items()},
            dict(e.sizes),
            e.printer,
            e.context_size,
            e.helpers,
        )

    def q_range(self, k: int) -> tuple[int, int]:
        e = self.emitters[k]
        lo = min(e.offsets.values(), default=0)
        return lo, lo + sum(e.sizes.values())

    def row_mode(self) -> bool:
        return self.event_size <= MAX_ROW_EVENT and all(m.row is not None for m in self.members)


_ROWS = re.compile(r"^\((\d+), _B\)$")


def _work(name: str, arrays: list[tuple[str, str]], doc: str) -> tuple[str, list[str]]:
    """A work function returning one (rows, _B) array that holds every array of shape
    (k, _B) or (_B,), then the other arrays; and the lines that unpack it into the named
    views (one allocation, and a 2-tuple for Numba to type instead of dozens of arrays)."""
    others, unpack, start = [], [], 0
    for a, shape in arrays:
        match = _ROWS.match(shape)
        if shape == "(_B,)":
            unpack.append(f"{a} = _wb[{start}]")
            start += 1
        elif match:
            k = int(match.group(1))
            unpack.append(f"{a} = _wb[{start}:{start + k}]")
            start += k
        else:
            others.append((a, shape))
    body = [f"        np.empty(({start}, _B)),", *(f"        np.empty({sh})," for _, sh in others)]
    text = "\n".join(
        [
            "",
            "@numba.njit(cache=True)",
            f"def {name}(_B):",
            f'    """{doc}"""',
            "    return (",
            *body,
            "    )",
            "",
        ]
    )
    names = ["_wb", *(a for a, _ in others)]
    return text, [f"({', '.join(names)},) = w", *unpack]


def _njit(parallel: bool = False) -> str:
    extra = ", parallel=True" if parallel else ""
    return f'@numba.njit(cache=True, error_model="numpy", fastmath={FASTMATH}{extra})'


def _gather(buffer: str, source: str, width, index: str) -> list[str]:
    return [
        f"for _a in range({width}):",
        "    for _i in range(_m):",
        f"        {buffer}[_a, _i] = {source}[{index}, _a]",
    ]


def _shared(member) -> bool:
    """Whether a member's code goes into functions of its own, compiled once for every
    member with the same key (networks: five identical layers compile as one)."""
    return bool(getattr(member, "shared", False))


def _pass(flow: FlowCode, k: int, kind: str, train: bool, buffers: dict[str, str | None]):
    """Member k's code of pass `kind` ('inverse', 'forward', 'adjoint'): inline, or a call of
    its shared function (emitted once per key and variant into the module's functions)."""
    m, e = flow.members[k], flow.emitters[k]

    def body(em: Emitter, b: dict, own: bool) -> list[str]:
        # own: the function holds the member's whole pass, its prepare / finish included
        # (inline code has them run once per call by the composer instead).
        before = m.prepare(em) if own and kind != "adjoint" else []
        if kind == "inverse":
            return [*before, *m.inverse(em, b["src"], b["dst"], train)]
        if kind == "forward":
            return [*before, *m.forward(em, b["src"], b["dst"], True)]
        after = m.finish(em) if own else []
        return [*m.adjoint(em, b["src"], b["dst"], b["cot"], b["cot_in"]), *after]

    if not _shared(m):
        return body(e, buffers, False)
    ue = flow.unit_emitter(k)
    names = [b for b, v in buffers.items() if v is not None]
    inner = {b: (b if v is not None else None) for b, v in buffers.items()}
    scratch = [a for a, _ in m.scratch(ue, train)]
    args = ["q", "gq", *names, "_ldj", "_ctx", "_m", *scratch]
    variant = f"{kind}{'_train' if train and kind == 'inverse' else ''}"
    variant += "_first" if kind == "adjoint" and buffers.get("cot_in") is None else ""
    fname = f"_{ue.k}_{variant}"
    text = "\n".join(
        [
            "",
            _njit(),
            f"def {fname}({', '.join(args)}):",
            f'    """{m.label}: the {variant.replace("_", " ")} pass (every member with this '
            'structure calls it with its own slice of q and work arrays)."""',
            *indent(body(ue, inner, True)),
            "",
        ]
    )
    e.add_helper(fname, text)
    lo, hi = flow.q_range(k)
    # Evaluation keeps nothing of a pass: every member of a unit uses the unit's scratch
    # (one set of work arrays for five identical layers stays in L2); training keeps each
    # member's activations for its adjoint.
    caller_scratch = [a for a, _ in m.scratch(e if train else ue, train)]
    gq = f"gq[{lo}:{hi}]" if kind == "adjoint" else f"q[{lo}:{hi}]"
    call = [f"q[{lo}:{hi}]", gq, *(buffers[b] for b in names), "_ldj", "_ctx", "_m"]
    return [f"{fname}({', '.join([*call, *caller_scratch])})"]


# ---------------------------------------------------------------------------- evaluation


def evaluation_functions(flow: FlowCode, printer: KernelPrinter) -> str:
    """The evaluation functions' source (see the module docstring)."""
    es = flow.make_emitters(printer)
    n, c = flow.event_size, flow.context_size
    members, base = flow.members, flow.base
    arrays = [("_va", f"({n}, _B)"), ("_vb", f"({n}, _B)"), ("_ldj", "(_B,)")]
    arrays.append(("_ctx", f"({c}, _B)"))
    for k, (m, e) in enumerate(zip(members, es, strict=False)):
        arrays += m.scratch(flow.unit_emitter(k) if _shared(m) else e, False)
    arrays = list(dict.fromkeys(arrays))  # a unit's scratch once
    work_text, unpack = _work("eval_work", arrays, "Work arrays of the evaluation functions.")
    prepare = [
        line for m, e in zip(members, es, strict=False) if not _shared(m) for line in m.prepare(e)
    ]

    def head(src_name: str) -> list[str]:
        return [
            "_m = hi - lo",
            *unpack,
            *_gather("_va", src_name, n, "lo + _i"),
            *_gather("_ctx", "context", c, "lo + _i"),
            "for _i in range(_m):",
            "    _ldj[_i] = 0.0",
            *prepare,
        ]

    def chain(direction: str) -> tuple[list[str], str]:
        lines, cur, other = [], "_va", "_vb"
        order = list(range(len(members)))
        if direction == "forward":
            order.reverse()
        for k in order:
            lines += _pass(flow, k, direction, False, {"src": cur, "dst": other})
            cur, other = other, cur
        return lines, cur

    inv, inv_out = chain("inverse")
    fwd, fwd_out = chain("forward")

    def scatter(buffer: str) -> list[str]:
        return [
            f"for _a in range({n}):",
            "    for _i in range(_m):",
            f"        out[lo + _i, _a] = {buffer}[_a, _i]",
            "for _i in range(_m):",
            "    ldj_out[lo + _i] = _ldj[_i]",
        ]

    blocks = {}
    if base is not None:
        blocks["log_prob"] = (
            "log p of rows lo..hi of data into out[lo:hi].",
            "data",
            [
                *inv,
                *base.log_prob(es[-1], inv_out),
                "for _i in range(_m):",
                "    out[lo + _i] = _ldj[_i]",
            ],
            "out",
        )
    blocks |= {
        "inverse_and_log_det": (
            "x = f^-1(y) and log|det J_{f^-1}(y)| of rows lo..hi.",
            "data",
            [*inv, *scatter(inv_out)],
            "out, ldj_out",
        ),
        "forward_and_log_det": (
            "y = f(x) and log|det J_f(x)| of rows lo..hi.",
            "data",
            [*fwd, *scatter(fwd_out)],
            "out, ldj_out",
        ),
    }
    parts = [work_text]
    for name, (doc, src, body, outs) in blocks.items():
        parts.append(
            "\n".join(
                [
                    "",
                    _njit(),
                    f"def _{name}_rows(q, data, context, lo, hi, {outs}, w):",
                    f'    """{doc}"""',
                    *indent(head(src)),
                    *indent(body),
                    "",
                ]
            )
        )
        count = "ldj_out" if "ldj_out" in outs else "out"
        # nogil: the runtime runs large batches as row chunks on several Python threads
        # (a parfor twin would compile the whole callee tree twice more, ~5-10 s).
        parts.append(
            "\n".join(
                [
                    "",
                    "@numba.njit(cache=True, nogil=True)",
                    f"def {name}(q, data, context, {outs}):",
                    f'    """{doc.replace("rows lo..hi", "every row")} Blocks of BLOCK_ROWS '
                    "rows; returns the number of nan results (call it on row chunks from "
                    'several threads: it releases the GIL)."""',
                    "    _n = data.shape[0]",
                    "    _nblocks = (_n + BLOCK_ROWS - 1) // BLOCK_ROWS",
                    "    w = eval_work(BLOCK_ROWS)",
                    "    for _b in range(_nblocks):",
                    "        _lo = _b * BLOCK_ROWS",
                    f"        _{name}_rows(q, data, context, _lo, min(_n, _lo + BLOCK_ROWS), "
                    f"{outs}, w)",
                    "    _bad = 0",
                    "    for _i in range(_n):",
                    f"        if np.isnan({count}[_i]):",
                    "            _bad += 1",
                    "    return _bad",
                    "",
                ]
            )
        )
    return "\n".join(parts)


# ---------------------------------------------------------------------------- gradient


def gradient_functions(flow: FlowCode, printer: KernelPrinter) -> tuple[str, bool]:
    """`train_work`, `loss_and_gq` and, where possible, `loss_and_gq_parallel`; and whether
    the parallel one exists."""
    if flow.row_mode():
        return _row_gradient(flow, printer)
    return _batch_gradient(flow, printer)


def _batch_gradient(flow: FlowCode, printer: KernelPrinter) -> tuple[str, bool]:
    es = flow.make_emitters(printer)
    n, c = flow.event_size, flow.context_size
    members, base = flow.members, flow.base
    kk = len(members)
    bufs = [f"_v{k}" for k in range(kk + 1)]
    arrays = [(b, f"({n}, _B)") for b in bufs]
    arrays += [
        ("_ldj", "(_B,)"),
        ("_ctx", f"({c}, _B)"),
        ("_ca", f"({n}, _B)"),
        ("_cb", f"({n}, _B)"),
    ]
    for m, e in zip(members, es, strict=False):
        arrays += m.scratch(e, True)
    work_text, unpack = _work(
        "train_work", arrays, "Work arrays of `loss_and_gq` for batches of up to _B rows."
    )
    body = [
        *unpack,
        "_m = rows.shape[0]",
        *_gather("_v0", "data", n, "rows[_i]"),
        *_gather("_ctx", "context", c, "rows[_i]"),
        "for _i in range(_m):",
        "    _ldj[_i] = 0.0",
    ]
    for m, e in zip(members, es, strict=False):
        if not _shared(m):
            body += m.prepare(e)
    for k in range(kk):
        body += _pass(flow, k, "inverse", True, {"src": bufs[k], "dst": bufs[k + 1]})
    body += base.log_prob(es[-1], bufs[kk])
    body += ["_loss = 0.0", "for _i in range(_m):", "    _loss -= _ldj[_i]"]
    body += base.adjoint(es[-1], bufs[kk], "_ca")
    cur, other = "_ca", "_cb"
    for k in range(kk - 1, -1, -1):
        buffers = {"src": bufs[k], "dst": bufs[k + 1], "cot": cur}
        buffers["cot_in"] = other if k > 0 else None
        body += _pass(flow, k, "adjoint", True, buffers)
        cur, other = other, cur
    for m, e in zip(members, es, strict=False):
        if not _shared(m):
            body += m.finish(e)
    body.append("return _loss")
    text = "\n".join(
        [
            work_text,
            "",
            _njit(),
            "def loss_and_gq(q, data, context, rows, gq, w):",
            '    """Sum of -log p over data[rows] (and context[rows]); adds its gradient with',
            '    respect to q into gq. Every member on the whole batch in turn."""',
            *indent(body),
            "",
            "",
            "@numba.njit(cache=True, parallel=True)",
            "def loss_and_gq_parallel(q, data, context, rows, gq, gqs):",
            '    """`loss_and_gq` with the rows split over the threads: one partial gradient',
            '    per thread (gqs: (threads, len(q))), summed into gq."""',
            "    _t = gqs.shape[0]",
            "    _nb = rows.shape[0]",
            "    _losses = np.zeros(_t)",
            "    for _p in numba.prange(_t):",
            "        _lo = _p * _nb // _t",
            "        _hi = (_p + 1) * _nb // _t",
            "        for _j in range(gqs.shape[1]):",
            "            gqs[_p, _j] = 0.0",
            "        if _hi > _lo:",
            "            _losses[_p] = loss_and_gq(q, data, context, rows[_lo:_hi], gqs[_p], "
            "train_work(_hi - _lo))",
            "    for _p in range(_t):",
            "        for _j in range(gqs.shape[1]):",
            "            gq[_j] += gqs[_p, _j]",
            "    return _losses.sum()",
            "",
        ]
    )
    return text, True


def _row_gradient(flow: FlowCode, printer: KernelPrinter) -> tuple[str, bool]:
    es = flow.make_emitters(printer)
    n = flow.event_size
    members, base = flow.members, flow.base
    kk = len(members)
    arrays = [("_unused", "(1,)")]
    for k, (m, e) in enumerate(zip(members, es, strict=False)):
        arrays += m.row.scratch(e, k == 0)
    work_text, unpack = _work(
        "train_work", arrays, "Work arrays of `loss_and_gq` (row code: a few small matrices)."
    )
    v = [[f"_v{k}_{a}" for a in range(n)] for k in range(kk + 1)]
    cot = [f"_c{a}" for a in range(n)]
    pro = [*unpack, "_nll_const = 0.0"]
    for k, (m, e) in enumerate(zip(members, es, strict=False)):
        pro += m.row.prepare(e, k == 0)
    pro += base.row.prepare(es[-1])
    row = ["_r = rows[_i]", *(f"{v[0][a]} = data[_r, {a}]" for a in range(n)), "_lp = 0.0"]
    for k, (m, e) in enumerate(zip(members, es, strict=False)):
        row += m.row.inverse(e, v[k], v[k + 1])
    row += base.row.row(es[-1], v[kk], cot)
    row.append("_loss -= _lp")
    for k in range(kk - 1, -1, -1):
        row += members[k].row.adjoint(es[k], v[k], v[k + 1], cot, k == 0)
    post = []
    for k, (m, e) in enumerate(zip(members, es, strict=False)):
        post += m.row.finish(e, k == 0)
    post += base.row.finish(es[-1])
    body = [
        *pro,
        "_nb = rows.shape[0]",
        "_loss = 0.0",
        "for _i in range(_nb):",
        *indent(row),
        *post,
        "return _loss + _nb * _nll_const",
    ]
    serial = "\n".join(
        [
            "",
            _njit(),
            "def loss_and_gq(q, data, context, rows, gq, w):",
            '    """Sum of -log p over data[rows]; adds its gradient with respect to q into',
            "    gq. One loop over rows, coordinates in locals; the rows are read where they lie",
            '    (no copy of the batch), several rows a vector where LLVM vectorizes."""',
            *indent(body),
            "",
        ]
    )
    parallel_ok = all(m.row.parallel_safe(k == 0) for k, m in enumerate(members))
    text = work_text + serial
    if parallel_ok:
        # Every per-row accumulator is a scalar sum, which parfors reduces per thread.
        text += (
            serial.replace("def loss_and_gq(", "def loss_and_gq_rows_parallel(")
            .replace(f"fastmath={FASTMATH})", f"fastmath={FASTMATH}, parallel=True)", 1)
            .replace("    for _i in range(_nb):", "    for _i in numba.prange(_nb):")
            .replace("_loss -= _lp", "_loss += -_lp")
            .replace("into\n    gq. One loop", "into\n    gq, rows on all cores. One loop")
        )
        text += "\n".join(
            [
                "",
                "@numba.njit(cache=True)",
                "def loss_and_gq_parallel(q, data, context, rows, gq, gqs):",
                '    """`loss_and_gq` with the rows on all cores (gqs is not used)."""',
                "    return loss_and_gq_rows_parallel(q, data, context, rows, gq, train_work(1))",
                "",
            ]
        )
    return text, parallel_ok


# ---------------------------------------------------------------------------- module


def assemble(header: str, sections: list[tuple[str, str]], flow: FlowCode, constants: list[str]):
    """The module text: header, imports, constants, math helpers, members' module-level
    functions, then the named sections in order."""
    printer_helpers = sorted(flow.emitters[0].printer.helpers) if flow.emitters else []
    helpers = flow.emitters[0].helpers if flow.emitters else {}
    parts = [
        header,
        "import math\n\nimport numba\nimport numba.extending\nimport numpy as np\n\n",
        "\n".join(
            [
                f"N = {flow.event_size}",
                f"CONTEXT_SIZE = {flow.context_size}",
                f"N_Q = {flow.n_q}",
                f"BLOCK_ROWS = {BLOCK_ROWS}",
                *constants,
            ]
        )
        + "\n",
    ]
    if printer_helpers:
        parts.append(f"\n# ---- math helpers ({len(printer_helpers)} requested)\n\n")
        parts.append(helper_sources(printer_helpers).rstrip("\n") + "\n\n")
    consts = [t for name, t in sorted(helpers.items()) if not t.lstrip().startswith(("@", "def"))]
    funcs = [t for name, t in sorted(helpers.items()) if t.lstrip().startswith(("@", "def"))]
    if consts:
        parts.append("\n# ---- members' constants\n\n" + "".join(consts))
    if funcs:
        parts.append("\n# ---- members' functions\n" + "\n".join(funcs))
    for title, text in sections:
        parts.append(f"\n# ---- {title}\n{text}")
    return "".join(parts).rstrip("\n") + "\n"
