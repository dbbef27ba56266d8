"""The member interface of composed flow kernels: what each kind of layer supplies.

A flow is a list of members in inverse-pass order (the member nearest the data first) and a
base distribution. Each member kind (elementwise, Affine, Permute, masked autoregressive,
coupling, ...) implements `Member`: its parameter layout in the flow's parameter vector `q`,
and the code of its inverse pass (data side to base side, with its log-det), its forward
pass (sampling) and its adjoint (the reverse pass of training). `compose.py` puts the
pieces together, in order, into one module; nothing in it knows a member's kind.

Two code shapes exist:

- **batch code** (required): the member works on a block of `_m` rows held feature-major,
  one array row per event coordinate, `src[a, i]` the a-th coordinate of row i (shape
  `(n, B)` with B >= _m), so that every loop over rows is contiguous and vectorizes. Log-dets
  are added into `_ldj[i]`.
- **row code** (optional, `RowCode`): the member works on one row whose coordinates are
  scalar locals, so that a flow made only of such members (the walkthrough's PReLU and
  Affine) trains as one loop over rows with everything in registers.

Parameters: `q` holds every member's parameters in storage form (the values a bound
bijector holds: constrained values of declared parameters, weights and biases of networks),
member by member, each member's blocks in the order it lists them. Training maps its θ
into `q`; evaluation passes `q` as it is. `gq` is the gradient of the summed loss with
respect to `q`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from symflow.codegen.printer import KernelPrinter

__all__ = ["Block", "Emitter", "Member", "RowCode", "indent"]


@dataclass(frozen=True)
class Block:
    """A named run of `size` entries of q; `constraint` is the symflow constraint of every
    entry (None: real, unconstrained), which training uses to map θ into q.

    An entry of a network's weights is one block of many entries (kernel and bias of each
    layer); a declared parameter is a block of one."""

    name: str
    size: int
    constraint: object | None = None
    #: False for a block the bound bijector does not have (held at its neutral value)
    trainable: bool = True


@dataclass
class Emitter:
    """What a member's code generator is given: where its blocks lie, names, helpers.

    Attributes:
        k: the member's index in inverse-pass order (0: nearest the data).
        offsets: first q index of each of the member's blocks, by block name.
        sizes: each block's size.
        printer: prints SymPy expressions (records the math helpers it needs).
        context_size: the size of the flow's context (0 for an unconditional flow); its
            values are in `_ctx[c, i]` (feature-major, like the rows).
        helpers: module-level functions by name (shared between members; same name, same
            text).
    """

    k: int
    offsets: dict[str, int]
    sizes: dict[str, int]
    printer: KernelPrinter
    context_size: int = 0
    helpers: dict[str, str] = field(default_factory=dict)

    def q(self, block: str, j: int = 0) -> str:
        """The q entry `j` of `block`, as source."""
        return f"q[{self.offsets[block] + j}]"

    def q_at(self, block: str, index: str) -> str:
        """The q entry at a run-time index (source text) within `block`."""
        return f"q[{self.offsets[block]} + {index}]"

    def g_at(self, block: str, index: str) -> str:
        """The gradient entry at a run-time index within `block`."""
        return f"gq[{self.offsets[block]} + {index}]"

    def q_slice(self, block: str) -> str:
        """The whole block as a view of q."""
        lo = self.offsets[block]
        return f"q[{lo}:{lo + self.sizes[block]}]"

    def g(self, block: str, j: int = 0) -> str:
        """The gradient entry `j` of `block` (in gq)."""
        return f"gq[{self.offsets[block] + j}]"

    def g_slice(self, block: str) -> str:
        """The block's gradient, a view of gq."""
        lo = self.offsets[block]
        return f"gq[{lo}:{lo + self.sizes[block]}]"

    def s(self, name: str) -> str:
        """The name of this member's scratch array or local `name`."""
        return f"_{name}{self.k}"

    def add_helper(self, name: str, text: str) -> str:
        """Registers a module-level function (same name must mean same text); returns name."""
        old = self.helpers.setdefault(name, text)
        if old != text:
            raise ValueError(f"two different module functions named {name}")
        return name


class Member(Protocol):
    """A flow member's code generator (batch code; see the module docstring)."""

    #: shown in the module header and comments
    label: str
    event_size: int
    blocks: tuple[Block, ...]
    #: row code for the fused one-loop training kernel, or None
    row: RowCode | None

    def key(self) -> str:
        """Everything the emitted text depends on (structure, never parameter values)."""

    def scratch(self, e: Emitter, train: bool) -> list[tuple[str, str]]:
        """(name, shape source) of work arrays, allocated once per call; `_B` is the block's
        row capacity. Names come from `e.s`."""

    def prepare(self, e: Emitter) -> list[str]:
        """Code run once per call before the rows: parameter-only terms into locals."""

    def inverse(self, e: Emitter, src: str, dst: str, train: bool) -> list[str]:
        """dst = f^-1(src) for `_m` rows, adding log|det J_{f^-1}| into `_ldj`. With `train`,
        keep in scratch what `adjoint` needs."""

    def forward(self, e: Emitter, src: str, dst: str, with_ldj: bool) -> list[str]:
        """dst = f(src), adding log|det J_f| into `_ldj` when `with_ldj`."""

    def adjoint(self, e: Emitter, src: str, dst: str, cot: str, cot_in: str | None) -> list[str]:
        """The reverse pass of `inverse(train=True)`: `cot` holds d loss / d dst, where the
        loss of a row holds -log|det J_{f^-1}|; writes d loss / d src into `cot_in` (None:
        not needed, the member is nearest the data) and adds d loss / d q into gq."""

    def finish(self, e: Emitter) -> list[str]:
        """Code run once after the adjoint's rows (sums into gq)."""


class RowCode(Protocol):
    """A member's code for one row with coordinates in scalar locals."""

    def parallel_safe(self, first: bool) -> bool:
        """Whether its per-row accumulators are scalars only (the rows may then run in a
        numba.prange loop, whose reductions are per thread)."""

    def scratch(self, e: Emitter, first: bool) -> list[tuple[str, str]]:
        """Work arrays of the fused loop (`first`: the member nearest the data)."""

    def prepare(self, e: Emitter, first: bool) -> list[str]:
        """Once per step, before the rows; may add to the local `_nll_const` (the part of
        the summed loss that does not depend on the row, per row)."""

    def inverse(self, e: Emitter, src: list[str], dst: list[str]) -> list[str]:
        """One row: dst locals from src locals, adding the log-det to the local `_lp`."""

    def adjoint(self, e: Emitter, src: list[str], dst: list[str], cot: list[str], first: bool):
        """One row's reverse pass: `cot` locals hold d loss / d dst on entry and must hold
        d loss / d src on exit (unless `first`)."""

    def finish(self, e: Emitter, first: bool) -> list[str]:
        """Once per step after the rows: the accumulated sums into gq."""


def indent(lines: list[str], depth: int = 1) -> list[str]:
    """`lines` indented by `depth` levels of four spaces (blank lines kept blank)."""
    pad = "    " * depth
    return [pad + line if line else line for line in lines]
