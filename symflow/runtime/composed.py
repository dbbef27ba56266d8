"""Composed flows: a chain with network layers (and its base) as one generated module.

A flow made of masked autoregressive or coupling layers, permutations, Affine and
elementwise members runs every member on a block of rows before the next block, in one
compiled call per batch (`symflow.codegen.flow`). `composed_kernels(members, base)` keys
the module by the members' structure (never by parameter values, which it takes as one
vector q at run time), so a cached module loads without touching SymPy.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numba
import numpy as np

from symflow._version import __version__
from symflow.codegen.emit import KernelSource
from symflow.codegen.flow.compose import FlowCode, assemble, evaluation_functions
from symflow.codegen.flow.elementwise import ElementwiseCode
from symflow.codegen.flow.transformer import Transformer, TransformerExprs
from symflow.codegen.hashing import compiler_fingerprint
from symflow.codegen.printer import KernelPrinter
from symflow.errors import DomainError, ShapeError
from symflow.runtime.loader import read_entry, write_entry

__all__ = [
    "PARALLEL_ROWS",
    "ComposedKernels",
    "FlowMember",
    "composed_kernels",
    "flow_code_key",
    "transformer_of",
]

#: Batches of at least this many rows run their blocks on all of Numba's threads (as
#: Python threads calling the nogil kernel on contiguous chunks).
PARALLEL_ROWS = 2048

_FLOW_SOURCES = Path(__file__).resolve().parent.parent / "codegen" / "flow"


@dataclass
class FlowMember:
    """A member of a composed flow: its code generator and its parameter values (q's
    entries for its blocks, in block order)."""

    code: object
    values: np.ndarray
    name: str


def transformer_of(declared) -> Transformer:
    """A declared bijector as a composed flow's transformer (elementwise members, and the
    elementwise half of autoregressive and coupling layers). Cheap: its maths is read from
    the kernel cache only when a module using it is emitted."""
    spec = declared.spec

    def load() -> TransformerExprs:
        stable = declared.kernel_exprs
        grads = declared.inverse_gradient_exprs()
        return TransformerExprs(
            name=declared.name,
            key=declared.hash,
            x=spec.x,
            y=declared.output_symbol,
            parameters=tuple(spec.parameter_symbols),
            constraints=tuple(p.constraint for p in spec.parameters),
            forward=stable["forward"],
            inverse=stable["inverse"],
            fldj=stable["fldj"],
            ildj=stable["ildj"],
            forward_partials=grads["forward_partials"],
            fldj_partials=grads["fldj_partials"],
        )

    return Transformer(
        name=declared.name,
        key=declared.hash,
        parameter_names=tuple(spec.parameter_names),
        constraints=tuple(p.constraint for p in spec.parameters),
        load=load,
    )


def elementwise_member(bijector, event_size: int) -> FlowMember:
    """An elementwise bound bijector with scalar parameters as a flow member.

    Raises:
        ShapeError: for a parameter that is not a single value.
    """
    values = []
    for name in bijector.module.PARAMETERS:
        value = bijector.parameters[name]
        if value.size != 1:
            raise ShapeError(
                f"{bijector.name}: parameter `{name}` has shape {value.shape}; inside a "
                "composed flow (with network layers) elementwise members take one value per "
                "parameter. Give it a scalar."
            )
        values.append(float(value.reshape(())))
    code = ElementwiseCode(transformer_of(bijector.declared), event_size, bijector.name)
    return FlowMember(code, np.array(values, dtype=np.float64), bijector.name)


def _sources_hash() -> str:
    digest = hashlib.sha256()
    for path in sorted(_FLOW_SOURCES.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def flow_code_key(flow: FlowCode, kind: str) -> str:
    """The hash of a composed module: its kind, the flow's structure, symflow's version, the
    compiler's fingerprint and the composer's own source."""
    text = "\n".join(
        [
            f"kind={kind}",
            f"version={__version__}",
            f"compiler={compiler_fingerprint()}",
            f"composer={_sources_hash()}",
            f"flow={flow.key()}",
        ]
    )
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class ComposedKernels:
    """A loaded composed module and the flow's parameter vector q."""

    module: ModuleType
    q: np.ndarray
    event_size: int
    context_size: int
    name: str
    has_base: bool

    def _rows(self, arr, what: str) -> tuple[np.ndarray, tuple[int, ...]]:
        a = np.asarray(arr)
        n = self.event_size
        if a.ndim == 0 or a.shape[-1] != n:
            raise ShapeError(
                f"{self.name}.{what}: expected values of shape (..., {n}) (events of size {n} "
                f"on the last axis); got shape {a.shape}."
            )
        batch = a.shape[:-1]
        return np.ascontiguousarray(a.reshape(-1, n), dtype=np.float64), batch

    def _context(self, context, rows: int, batch, what: str) -> np.ndarray:
        c = self.context_size
        if c == 0:
            if context is not None:
                raise ShapeError(
                    f"{self.name}.{what}: this flow takes no context (it was built with "
                    "context_size=None); got one. Drop the `context` argument, or build a "
                    "conditional flow."
                )
            return np.empty((rows, 0))
        if context is None:
            raise ShapeError(
                f"{self.name}.{what}: this conditional flow needs `context` of shape "
                f"({c},) or (..., {c}) matching the batch {batch}; got none."
            )
        ctx = np.asarray(context, dtype=np.float64)
        if ctx.ndim == 0 or ctx.shape[-1] != c:
            raise ShapeError(
                f"{self.name}.{what}: `context` must have shape ({c},) or (..., {c}); got shape "
                f"{ctx.shape}."
            )
        try:
            ctx = np.broadcast_to(ctx, batch + (c,))
        except ValueError as err:
            raise ShapeError(
                f"{self.name}.{what}: `context` of shape {ctx.shape} does not match the "
                f"values' batch shape {batch}; give one context per value, shape "
                f"{batch + (c,)}, or a single one of shape ({c},)."
            ) from err
        if not np.all(np.isfinite(ctx)):
            raise DomainError(
                f"{self.name}.{what}: `context` must be finite; it holds nan or inf."
            )
        return np.ascontiguousarray(ctx.reshape(-1, c))

    def run(self, kernel: str, values, context=None):
        """(outputs, ldj) of `kernel` ('inverse_and_log_det', 'forward_and_log_det') or the
        log-density ('log_prob'), shaped like the values' batch.

        Raises:
            DomainError: where a result is nan (a value outside a member's domain).
        """
        rows, batch = self._rows(values, kernel)
        ctx = self._context(context, rows.shape[0], batch, kernel)
        fn = getattr(self.module, kernel)
        if kernel == "log_prob":
            out = np.empty(rows.shape[0])
            outs, result, flag = (out,), (out.reshape(batch),), out
        else:
            out, ldj = np.empty_like(rows), np.empty(rows.shape[0])
            outs, flag = (out, ldj), ldj
            result = (out.reshape(batch + (self.event_size,)), ldj.reshape(batch))
        bad = _run_chunks(fn, self.q, rows, ctx, outs, self.module.BLOCK_ROWS)
        if bad:
            i = int(np.flatnonzero(np.isnan(flag))[0])
            hint = (
                "The forward map left a member's domain or overflowed from these base "
                "values (sampling runs it): a transformer whose parameters compound over "
                "layers (large tail weights, scales) can exceed float64 far in the tails; "
                "bound its constraints (e.g. sf.Interval) or use fewer layers."
                if kernel == "forward_and_log_det"
                else "A value left a member's domain: check the input (the data must lie "
                "in the flow's support)."
            )
            raise DomainError(
                f"{self.name}.{kernel}: the result is nan for {bad} of {rows.shape[0]} rows, "
                f"first row {i} ({rows[i].tolist()}). {hint}"
            )
        return result


def _run_chunks(fn, q, rows, ctx, outs, block: int) -> int:
    """fn (a nogil kernel returning its nan count) over all rows: in one call, or from
    PARALLEL_ROWS rows on as many threads as Numba's thread count, each on a contiguous
    chunk of whole blocks. The kernel is the serial one either way, so a flow compiles one
    evaluation function per direction, and results do not depend on the thread count."""
    n = rows.shape[0]
    threads = min(numba.get_num_threads(), -(-n // block))
    if n < PARALLEL_ROWS or threads < 2:
        return int(fn(q, rows, ctx, *outs))
    n_blocks = -(-n // block)
    per = -(-n_blocks // threads) * block
    bounds = [(lo, min(n, lo + per)) for lo in range(0, n, per)]

    def part(lo_hi):
        lo, hi = lo_hi
        return int(fn(q, rows[lo:hi], ctx[lo:hi], *(o[lo:hi] for o in outs)))

    rest = [_pool().submit(part, b) for b in bounds[1:]]
    first = part(bounds[0])
    return first + sum(f.result() for f in rest)


@functools.cache
def _pool():
    """The process-wide pool of evaluation threads (created on first use; a pool starts
    its threads lazily, up to Numba's largest thread count)."""
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(
        max_workers=numba.config.NUMBA_NUM_THREADS, thread_name_prefix="symflow-eval"
    )


def composed_kernels(
    members: list[FlowMember], base: FlowMember | None, *, context_size: int, name: str
) -> ComposedKernels:
    """The evaluation module of a flow (members in inverse-pass order, optional base),
    built or loaded from the cache, with the flow's parameter vector."""
    n = members[0].code.event_size if members else base.code.event_size
    flow = FlowCode([m.code for m in members], base.code if base else None, n, context_size)
    key = flow_code_key(flow, "evaluation")
    module_name = f"Flow_{key[:16]}"
    entry = read_entry(module_name, key)
    if entry is None:
        entry = write_entry(_emit(flow, key, name), {"name": name, "symflow_version": __version__})
    parts = [m.values for m in members] + ([base.values] if base else [])
    q = np.concatenate(parts) if parts else np.empty(0)
    return ComposedKernels(entry.module, q, n, context_size, name, base is not None)


def _emit(flow: FlowCode, key: str, name: str) -> KernelSource:
    printer = KernelPrinter(branch_free=True)
    text = evaluation_functions(flow, printer)
    members = "\n".join(f"#   {k}: {m.label}" for k, m in enumerate(flow.members))
    header = (
        f"# Generated by symflow {__version__}: a composed flow's evaluation kernels. Do not\n"
        f"# edit. Flow {name}; members in inverse-pass order (data side first), events of "
        f"size {flow.event_size}, context of size {flow.context_size}:\n{members}\n"
        f"# base: {flow.base.label if flow.base else 'none'}\n"
        f"# hash:       sha256:{key}\n"
        '"""A composed flow: log_prob, inverse_and_log_det, forward_and_log_det."""\n\n'
    )
    module = assemble(header, [("evaluation", text)], flow, [f"HASH = {key!r}"])
    return KernelSource(f"Flow_{key[:16]}", module, key)
