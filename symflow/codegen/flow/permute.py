"""A Permute member: y[i] = x[permutation[i]], a relabelling of coordinates (log-det 0)."""

from __future__ import annotations

from symflow.codegen.flow.member import Emitter

__all__ = ["PermuteCode"]


class PermuteCode:
    """Code of a Permute member. Row code costs nothing: it only renames the locals."""

    blocks = ()

    def __init__(self, permutation, label: str = "Permute") -> None:
        self.permutation = tuple(int(p) for p in permutation)
        self.inverse_permutation = tuple(
            sorted(range(len(self.permutation)), key=self.permutation.__getitem__)
        )
        self.event_size = len(self.permutation)
        self.label = label
        self.row = _PermuteRows(self)

    def key(self) -> str:
        return f"permute:{self.permutation}"

    def scratch(self, e: Emitter, train: bool) -> list[tuple[str, str]]:
        return []

    def prepare(self, e: Emitter) -> list[str]:
        return []

    def _order(self, e: Emitter, which: str) -> str:
        """A module constant holding the permutation (or its inverse): one loop over the
        coordinates whatever the event size (a loop per coordinate made Numba's control
        flow analysis recurse past Python's limit at 64 dimensions and 5 layers)."""
        order = self.inverse_permutation if which == "INV" else self.permutation
        name = f"PERM{e.k}_{which}"
        e.add_helper(name, f"{name} = np.array({list(order)!r}, dtype=np.int64)\n")
        return name

    def _gather(self, e, src: str, dst: str, which: str, what: str) -> list[str]:
        order = self._order(e, which)
        return [
            f"# member {e.k}: {self.label}: {what}",
            f"for _a in range({self.event_size}):",
            f"    _p = {order}[_a]",
            "    for _i in range(_m):",
            f"        {dst}[_a, _i] = {src}[_p, _i]",
        ]

    def inverse(self, e: Emitter, src: str, dst: str, train: bool) -> list[str]:
        # x = y[inverse_permutation]
        return self._gather(e, src, dst, "INV", "x = y[inverse permutation]")

    def forward(self, e: Emitter, src: str, dst: str, with_ldj: bool) -> list[str]:
        return self._gather(e, src, dst, "FWD", "y = x[permutation]")

    def adjoint(self, e: Emitter, src: str, dst: str, cot: str, cot_in: str | None) -> list[str]:
        if cot_in is None:
            return []
        # dst[j] = src[inv[j]]: the cotangent goes back to where each coordinate came from
        order = self._order(e, "INV")
        return [
            f"# member {e.k}: {self.label}: reverse pass",
            f"for _a in range({self.event_size}):",
            f"    _p = {order}[_a]",
            "    for _i in range(_m):",
            f"        {cot_in}[_p, _i] = {cot}[_a, _i]",
        ]

    def finish(self, e: Emitter) -> list[str]:
        return []


class _PermuteRows:
    def __init__(self, m: PermuteCode) -> None:
        self.m = m

    def parallel_safe(self, first: bool) -> bool:
        return True

    def scratch(self, e: Emitter, first: bool) -> list[tuple[str, str]]:
        return []

    def prepare(self, e: Emitter, first: bool) -> list[str]:
        return []

    def inverse(self, e: Emitter, src: list[str], dst: list[str]) -> list[str]:
        return [f"{dst[j]} = {src[p]}" for j, p in enumerate(self.m.inverse_permutation)]

    def adjoint(self, e: Emitter, src, dst, cot: list[str], first: bool) -> list[str]:
        if first:
            return []
        # cot holds d/d dst; d/d src[p] = cot[j] for dst[j] = src[p]: a renaming in place
        tmp = [f"_pc{j}" for j in range(len(cot))]
        lines = [f"{t} = {c}" for t, c in zip(tmp, cot, strict=True)]
        lines += [f"{cot[p]} = {tmp[j]}" for j, p in enumerate(self.m.inverse_permutation)]
        return lines

    def finish(self, e: Emitter, first: bool) -> list[str]:
        return []
