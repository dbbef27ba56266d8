"""The base of a flow: a normal distribution with diagonal scale (Normal for scalar events).

Its blocks are `loc` (n) and `scale` (n, Positive); they sit after every member's blocks in
q. log p(x) = sum_a [-z_a^2/2 - log scale_a] - n log(2 pi)/2 with z = (x - loc)/scale.
"""

from __future__ import annotations

import math

from symflow.codegen.flow.member import Block, Emitter

__all__ = ["NormalBaseCode"]

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


class NormalBaseCode:
    """Code of the diagonal normal base (training may train loc and scale, `trainable`)."""

    label = "normal base"

    def __init__(
        self, event_size: int, positive, *, trainable: bool, name: str, scale_name: str = "scale"
    ) -> None:
        self.event_size = n = event_size
        self.name = name
        self.scale = scale_name
        self.blocks = (
            Block("loc", n, None, trainable=trainable),
            Block(scale_name, n, positive, trainable=trainable),
        )
        self.row = _BaseRows(self)

    def key(self) -> str:
        return f"base:normal:n={self.event_size}"

    def scratch(self, e: Emitter, train: bool) -> list[tuple[str, str]]:
        return []

    def _loop_head(self, e: Emitter) -> list[str]:
        return [
            f"for _a in range({self.event_size}):",
            f"    _loc = {e.q_at('loc', '_a')}",
            f"    _inv = 1.0 / {e.q_at(self.scale, '_a')}",
        ]

    def log_prob(self, e: Emitter, src: str) -> list[str]:
        """Adds each row's log p into `_ldj` (which then holds the row's log-density)."""
        return [
            f"# base: {self.name}",
            *self._loop_head(e),
            f"    _lc = math.log({e.q_at(self.scale, '_a')}) + {_HALF_LOG_2PI!r}",
            "    for _i in range(_m):",
            f"        _z = ({src}[_a, _i] - _loc) * _inv",
            "        _ldj[_i] -= 0.5 * _z * _z + _lc",
        ]

    def adjoint(self, e: Emitter, src: str, cot: str) -> list[str]:
        """cot = d(-log p)/dx, and d(-sum log p)/d(loc, scale) into gq."""
        return [
            f"# base: {self.name}: c = d(-log p)/dx; d/dloc = -sum(c), "
            "d/dscale = sum(1 - z^2)/scale",
            *self._loop_head(e),
            "    _gl = 0.0",
            "    _gs = 0.0",
            "    for _i in range(_m):",
            f"        _z = ({src}[_a, _i] - _loc) * _inv",
            f"        {cot}[_a, _i] = _z * _inv",
            "        _gl -= _z * _inv",
            "        _gs += (1.0 - _z * _z) * _inv",
            f"    {e.g_at('loc', '_a')} += _gl",
            f"    {e.g_at(self.scale, '_a')} += _gs",
        ]


class _BaseRows:
    def __init__(self, m: NormalBaseCode) -> None:
        self.m = m

    def prepare(self, e: Emitter) -> list[str]:
        n = self.m.event_size
        lines = [f"# base {self.m.name}: loc and scale"]
        for a in range(n):
            lines += [
                f"_bl{a} = {e.q('loc', a)}",
                f"_bi{a} = 1.0 / {e.q(self.m.scale, a)}",
                f"_nll_const += math.log({e.q(self.m.scale, a)})",
                f"_bc{a} = 0.0",
                f"_bz{a} = 0.0",
            ]
        lines.append(f"_nll_const += {n * _HALF_LOG_2PI!r}  # n/2 log(2 pi)")
        return lines

    def row(self, e: Emitter, src: list[str], cot: list[str]) -> list[str]:
        lines = [f"# base: {self.m.name}; c = d(-log p)/dx"]
        for a, (s, c) in enumerate(zip(src, cot, strict=True)):
            lines += [
                f"_z{a} = ({s} - _bl{a}) * _bi{a}",
                f"_lp -= 0.5 * _z{a} * _z{a}",
                f"{c} = _z{a} * _bi{a}",
                f"_bc{a} += {c}",
                f"_bz{a} += _z{a} * _z{a}",
            ]
        return lines

    def finish(self, e: Emitter) -> list[str]:
        lines = ["# base: d/dloc = -sum(c), d/dscale = (rows - sum(z^2)) / scale"]
        for a in range(self.m.event_size):
            lines.append(f"{e.g('loc', a)} += -_bc{a}")
            lines.append(f"{e.g(self.m.scale, a)} += (_nb - _bz{a}) * _bi{a}")
        return lines
