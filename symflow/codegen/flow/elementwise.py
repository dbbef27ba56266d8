"""An elementwise member: one declared bijector applied to every coordinate of the event."""

from __future__ import annotations

from symflow.codegen.flow.member import Block, Emitter
from symflow.codegen.flow.transformer import Transformer, TransformerCode

__all__ = ["ElementwiseCode"]


class ElementwiseCode:
    """A declared elementwise bijector with scalar parameters, on events of `event_size`.

    Its blocks are its parameters (one entry each, in declaration order, with their
    constraints). The inverse pass calls the transformer's `inverse` core per element; the
    adjoint recomputes each element's `backward` core from the saved input instead of
    keeping its partials (cheaper than the memory traffic).
    """

    def __init__(self, transformer: Transformer, event_size: int, label: str | None = None):
        self.tf = TransformerCode(transformer)
        self.transformer = transformer
        self.event_size = event_size
        self.label = label or transformer.name
        self.blocks = tuple(
            Block(name, 1, c)
            for name, c in zip(transformer.parameter_names, transformer.constraints, strict=True)
        )
        self.row = _ElementwiseRows(self)

    def key(self) -> str:
        return f"elementwise:{self.transformer.key}:n={self.event_size}"

    # -- shared pieces ---------------------------------------------------------------
    def _params(self, e: Emitter) -> list[str]:
        return [e.s(f"p{j}_") for j in range(self.tf.n_params)]

    def _constants(self, e: Emitter) -> list[str]:
        return [e.s(f"k{j}_") for j in range(self.tf.n_constants)]

    def _setup(self, e: Emitter) -> list[str]:
        e.add_helper(self.tf.prefix, self.tf.emit(e.printer))
        lines = [f"# member {e.k}: {self.label}: parameters and their constant terms"]
        params = self._params(e)
        lines += [f"{p} = {e.q(b.name)}" for p, b in zip(params, self.blocks, strict=True)]
        consts = self._constants(e)
        if consts:
            lines.append(f"({', '.join(consts)},) = {self.tf.constants_call(params)}")
        return lines

    # -- batch code --------------------------------------------------------------------
    def scratch(self, e: Emitter, train: bool) -> list[tuple[str, str]]:
        return []

    def prepare(self, e: Emitter) -> list[str]:
        return self._setup(e)

    def _map(self, e, kind: str, src: str, dst: str, with_ldj: bool) -> list[str]:
        call = self.tf.call(kind, f"{src}[_a, _i]", self._params(e), self._constants(e))
        body = [f"_o, _l = {call}", f"{dst}[_a, _i] = _o"]
        if with_ldj:
            body.append("_ldj[_i] += _l")
        return [
            f"# member {e.k}: {self.label}, {kind} per coordinate",
            f"for _a in range({self.event_size}):",
            "    for _i in range(_m):",
            *("        " + line for line in body),
        ]

    def inverse(self, e: Emitter, src: str, dst: str, train: bool) -> list[str]:
        return self._map(e, "inverse", src, dst, True)

    def forward(self, e: Emitter, src: str, dst: str, with_ldj: bool) -> list[str]:
        return self._map(e, "forward", src, dst, with_ldj)

    def adjoint(self, e: Emitter, src: str, dst: str, cot: str, cot_in: str | None) -> list[str]:
        n_p = self.tf.n_params
        outs = self.tf.returns("backward", "")
        call = self.tf.call("backward", f"{src}[_a, _i]", self._params(e), self._constants(e))
        acc = [e.s(f"g{j}_") for j in range(n_p)]
        body = [f"({', '.join(outs)},) = {call}", f"_c = {cot}[_a, _i]"]
        if cot_in is not None:
            body.append(f"{cot_in}[_a, _i] = _c * _dxdy - _dldy")
        body += [f"{g} += _c * _dxdp_{j} - _dldp_{j}" for j, g in enumerate(acc)]
        return [
            f"# member {e.k}: {self.label}: reverse pass (the loss holds -ildj)",
            *(f"{g} = 0.0" for g in acc),
            f"for _a in range({self.event_size}):",
            "    for _i in range(_m):",
            *("        " + line for line in body),
            *(f"{e.g(b.name)} += {g}" for b, g in zip(self.blocks, acc, strict=True)),
        ]

    def finish(self, e: Emitter) -> list[str]:
        return []


class _ElementwiseRows:
    """Row code: each coordinate's backward core in the row's forward part (its partials
    live in registers until the reverse part of the same row uses them)."""

    def __init__(self, member: ElementwiseCode) -> None:
        self.m = member

    def parallel_safe(self, first: bool) -> bool:
        return True

    def scratch(self, e: Emitter, first: bool) -> list[tuple[str, str]]:
        return []

    def prepare(self, e: Emitter, first: bool) -> list[str]:
        acc = [e.s(f"g{j}_") for j in range(self.m.tf.n_params)]
        return self.m._setup(e) + [f"{g} = 0.0" for g in acc]

    def inverse(self, e: Emitter, src: list[str], dst: list[str]) -> list[str]:
        m = self.m
        lines = [f"# member {e.k}: {m.label}, inverse per coordinate"]
        for a, (s, d) in enumerate(zip(src, dst, strict=True)):
            outs = m.tf.returns("backward", f"{e.k}_{a}")
            outs[:2] = [d, "_il"]
            call = m.tf.call("backward", s, m._params(e), m._constants(e))
            lines += [f"({', '.join(outs)},) = {call}", "_lp += _il"]
        return lines

    def adjoint(self, e: Emitter, src, dst, cot: list[str], first: bool) -> list[str]:
        m, k = self.m, e.k
        lines = [f"# member {k}: {m.label}: the loss holds -ildj"]
        for j in range(m.tf.n_params):
            terms = " + ".join(
                f"{c} * _dxdp{k}_{a}_{j} - _dldp{k}_{a}_{j}" for a, c in enumerate(cot)
            )
            lines.append(f"{e.s(f'g{j}_')} += {terms}")
        if not first:
            lines += [f"{c} = {c} * _dxdy{k}_{a} - _dldy{k}_{a}" for a, c in enumerate(cot)]
        return lines

    def finish(self, e: Emitter, first: bool) -> list[str]:
        return [f"{e.g(b.name)} += {e.s(f'g{j}_')}" for j, b in enumerate(self.m.blocks)]
