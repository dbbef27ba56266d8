"""Layers whose transformer's parameters come from a network: masked autoregressive
(MAF) and coupling (RealNVP) layers.

Both apply a declared elementwise bijector (the transformer) to some coordinates, with
parameters that a network computes per row from other coordinates (and the context):

- masked autoregressive: every coordinate j is transformed with parameters from a MADE
  network of the coordinates before j. The density direction (data to base) is one network
  pass over the data; the sampling direction produces coordinates in order, computing each
  hidden unit once (one pass in all; `NetworkCode.forward_degree`).
- coupling: coordinates [0, d) pass through unchanged and condition a dense network that
  gives the parameters of coordinates [d, n); both directions are one pass.

The network's outputs are unconstrained; each parameter is mapped into its constraint
(`output_constraint_exprs`: Positive through a floored softplus, and so on). The output of
parameter p for transformed coordinate j is output j * P + p.
"""

from __future__ import annotations

import sympy as sp

from symflow.codegen.flow.member import Emitter
from symflow.codegen.flow.network import NetworkCode, NetworkLayout
from symflow.codegen.flow.transformer import (
    Transformer,
    TransformerCode,
    output_constraint_exprs,
)

__all__ = ["ConditionedCode"]


class ConditionedCode:
    """A masked autoregressive (`autoregressive=True`) or coupling layer's code.

    Args:
        transformer: the declared transformer's maths.
        layout: the network's layout (`made_layout` or `dense_layout`), whose inputs are the
            context (first) and then the conditioning coordinates.
        event_size: n.
        num_masked: coupling only: coordinates [0, num_masked) condition, the rest are
            transformed. Ignored (0) for autoregressive layers.
        context_size: the size of the context the network takes first (0 for none).
        label: shown in comments.
    """

    row = None  # a network has no per-row code with scalar locals
    shared = True  # its passes are functions, compiled once for all layers of one structure

    def __init__(
        self,
        transformer: Transformer,
        layout: NetworkLayout,
        *,
        event_size: int,
        autoregressive: bool,
        num_masked: int = 0,
        context_size: int = 0,
        label: str,
    ) -> None:
        self.tf = TransformerCode(transformer)
        self.transformer = transformer
        self.net = NetworkCode(layout)
        self.event_size = event_size
        self.autoregressive = autoregressive
        self.num_masked = 0 if autoregressive else num_masked
        self.context_size = context_size
        self.label = label
        self.blocks = self.net.blocks
        n_cond = event_size if autoregressive else num_masked
        if layout.n_inputs != context_size + n_cond:
            raise ValueError("network inputs do not match context + conditioning size")
        if self.net.n_outputs != self.tf.n_params * self.n_transformed:
            raise ValueError("network outputs do not match the transformer's parameters")

    @property
    def n_transformed(self) -> int:
        return self.event_size - self.num_masked

    def key(self) -> str:
        kind = "maf" if self.autoregressive else f"coupling:{self.num_masked}"
        return (
            f"{kind}:n={self.event_size}:c={self.context_size}:{self.transformer.key}:"
            f"{self.net.layout.key()}"
        )

    # -- pieces ------------------------------------------------------------------------
    def _needs_input_copy(self) -> bool:
        # Without a context the network's inputs are the first rows of src itself.
        return self.context_size > 0

    def scratch(self, e: Emitter, train: bool) -> list[tuple[str, str]]:
        arrays = self.net.scratch(e, train)
        n_in = self.net.layout.n_inputs
        if self._needs_input_copy() or (self.autoregressive and not train):
            arrays.append((e.s("in"), f"({n_in}, _B)"))
        if train:
            arrays.append((e.s("din"), f"({n_in}, _B)"))
        return arrays

    def prepare(self, e: Emitter) -> list[str]:
        e.add_helper(self.tf.prefix, self.tf.emit(e.printer))
        return []

    def _input(self, e: Emitter, src: str) -> tuple[str, list[str]]:
        """(name of the network's input array, code filling it)."""
        if not self._needs_input_copy():
            return src, []
        c, inp = self.context_size, e.s("in")
        n_cond = self.net.layout.n_inputs - c
        return inp, [
            f"for _a in range({c}):",
            "    for _i in range(_m):",
            f"        {inp}[_a, _i] = _ctx[_a, _i]",
            f"for _a in range({n_cond}):",
            "    for _i in range(_m):",
            f"        {inp}[{c} + _a, _i] = {src}[_a, _i]",
        ]

    def _parameters(self, e: Emitter, row: str, derivatives: bool) -> list[str]:
        """Lines computing `_th<p>` (and `_dth<p>`) from the network's output row block."""
        raw = sp.Symbol("_u", real=True)
        lines = []
        for p, constraint in enumerate(self.transformer.constraints):
            value, deriv = output_constraint_exprs(constraint, raw)
            lines.append(f"_u = {e.s('out')}[{row} * {self.tf.n_params} + {p}, _i]")
            lines.append(f"_th{p} = {e.printer.print_expr(value)}")
            if derivatives:
                lines.append(f"_dth{p} = {e.printer.print_expr(deriv)}")
        return lines

    def _core_call(self, kind: str, value: str) -> list[str]:
        params = [f"_th{p}" for p in range(self.tf.n_params)]
        consts = [f"_kc{j}" for j in range(self.tf.n_constants)]
        lines = []
        if consts:
            lines.append(f"({', '.join(consts)},) = {self.tf.constants_call(params)}")
        outs = self.tf.returns(kind, "")
        lines.append(f"({', '.join(outs)},) = {self.tf.call(kind, value, params, consts)}")
        return lines

    def _passthrough(self, src: str, dst: str) -> list[str]:
        if not self.num_masked:
            return []
        return [
            f"for _a in range({self.num_masked}):",
            "    for _i in range(_m):",
            f"        {dst}[_a, _i] = {src}[_a, _i]",
        ]

    # -- batch code --------------------------------------------------------------------
    def _transform(self, e, kind: str, src: str, dst: str, with_ldj: bool) -> list[str]:
        d = self.num_masked
        body = [
            *self._parameters(e, "_j", False),
            *self._core_call(kind, f"{src}[{d} + _j, _i]"),
            f"{dst}[{d} + _j, _i] = _o",
        ]
        if with_ldj:
            body.append("_ldj[_i] += _l")
        return [
            f"for _j in range({self.n_transformed}):",
            "    for _i in range(_m):",
            *("        " + line for line in body),
        ]

    def inverse(self, e: Emitter, src: str, dst: str, train: bool) -> list[str]:
        self.tf.emit(e.printer)
        inp, fill = self._input(e, src)
        return [
            f"# member {e.k}: {self.label}: parameters from the network, one pass",
            *fill,
            *self.net.forward(e, inp, train),
            f"# member {e.k}: the transformer's inverse",
            *self._transform(e, "inverse", src, dst, True),
            *self._passthrough(src, dst),
        ]

    def forward(self, e: Emitter, src: str, dst: str, with_ldj: bool) -> list[str]:
        self.tf.emit(e.printer)
        if not self.autoregressive:
            inp, fill = self._input(e, src)
            return [
                f"# member {e.k}: {self.label}: forward, one pass",
                *self._passthrough(src, dst),
                *fill,
                *self.net.forward(e, inp, False),
                *self._transform(e, "forward", src, dst, with_ldj),
            ]
        # Sampling direction: coordinates in order; each hidden unit computed once, as soon
        # as the coordinates below its degree exist.
        c, n_p = self.context_size, self.tf.n_params
        inp = e.s("in")
        lines = [
            f"# member {e.k}: {self.label}: forward, coordinate by coordinate; every hidden "
            "unit is computed once",
            f"for _a in range({c}):",
            "    for _i in range(_m):",
            f"        {inp}[_a, _i] = _ctx[_a, _i]",
            f"for _d in range({self.event_size}):",
        ]
        body = self.net.forward_degree(e, inp, "_d", f"_d * {n_p}", f"(_d + 1) * {n_p}")
        row = [
            *self._parameters(e, "_d", False),
            *self._core_call("forward", f"{src}[_d, _i]"),
            f"{dst}[_d, _i] = _o",
            f"{inp}[{c} + _d, _i] = _o",
        ]
        if with_ldj:
            row.append("_ldj[_i] += _l")
        body += ["for _i in range(_m):", *("    " + line for line in row)]
        return lines + ["    " + line for line in body]

    def adjoint(self, e: Emitter, src: str, dst: str, cot: str, cot_in: str | None) -> list[str]:
        d, n_p, out = self.num_masked, self.tf.n_params, e.s("out")
        body = [
            *self._parameters(e, "_j", True),
            *self._core_call("backward", f"{src}[{d} + _j, _i]"),
        ]
        body.append(f"_c = {cot}[{d} + _j, _i]")
        if cot_in is not None:
            body.append(f"{cot_in}[{d} + _j, _i] = _c * _dxdy - _dldy")
        body += [
            f"{out}[_j * {n_p} + {p}, _i] = (_c * _dxdp_{p} - _dldp_{p}) * _dth{p}"
            for p in range(n_p)
        ]
        inp = e.s("in") if self._needs_input_copy() else src
        lines = [
            f"# member {e.k}: {self.label}: reverse pass through the transformer (the loss "
            "holds -ildj); d/d outputs overwrite the outputs",
            f"for _j in range({self.n_transformed}):",
            "    for _i in range(_m):",
            *("        " + line for line in body),
        ]
        if cot_in is not None and d:
            lines += [
                f"for _a in range({d}):",
                "    for _i in range(_m):",
                f"        {cot_in}[_a, _i] = {cot}[_a, _i]",
            ]
        din = e.s("din") if cot_in is not None else None
        lines += self.net.backward(e, inp, din)
        if cot_in is not None:
            n_cond = self.net.layout.n_inputs - self.context_size
            lines += [
                f"for _a in range({n_cond}):",
                "    for _i in range(_m):",
                f"        {cot_in}[_a, _i] += {din}[{self.context_size} + _a, _i]",
            ]
        return lines

    def finish(self, e: Emitter) -> list[str]:
        return []
