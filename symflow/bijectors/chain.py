"""Chain([b1, b2, ...]): composition in TFP's order, fused into one kernel when it can be.

`Chain([b1, b2]).forward(x) = b1.forward(b2.forward(x))`: the last member applies first.
When every member is a compiled elementwise bijector (or an `Invert` or `Chain` of them),
the chain runs as one generated module whose kernels apply every member to an element
before moving to the next: one pass over memory, one kernel call per batch. Otherwise the
members run one after another, each a batch call.
"""

from __future__ import annotations

import numpy as np

from symflow.bijectors.invert import Invert
from symflow.errors import DomainError, ShapeError, SymflowError
from symflow.runtime.bijector import (
    Bijector,
    ElementwiseBijector,
    _scalar_out,
    as_float_array,
)
from symflow.runtime.fused import FusedKernels, fused_kernels

__all__ = ["Chain", "elementwise_members"]


def elementwise_members(b: Bijector, inverted: bool = False):
    """(member, runs inverted) pairs in application order, or None if `b` cannot fuse."""
    if isinstance(b, Chain):
        parts = []
        for member in reversed(b.bijectors):
            sub = elementwise_members(member)
            if sub is None:
                return None
            parts.extend(sub)
        if inverted:
            parts = [(m, not inv) for m, inv in reversed(parts)]
        return parts
    if isinstance(b, Invert):
        return elementwise_members(b.bijector, not inverted)
    if isinstance(b, ElementwiseBijector) and b.declared is not None:
        return [(b, inverted)]
    return None


class Chain(Bijector):
    """y = b1(b2(...bn(x))): applies `bijectors` last to first, as TFP's Chain.

    An empty list is the identity. Members must not change the event rank.

    Example:
        >>> from symflow import bijectors as sfb
        >>> chain = sfb.Chain([sfb.Exp(), sfb.AffineScalar(shift=1.0, scale=2.0)])
        >>> float(chain.forward(0.0))  # exp(1 + 2*0)
        2.718281828459045
    """

    def __init__(self, bijectors=(), name: str | None = None) -> None:
        bijectors = tuple(bijectors)
        for k, b in enumerate(bijectors):
            if not isinstance(b, Bijector):
                raise TypeError(
                    f"Chain: member {k} must be a bound bijector (e.g. sfb.Exp()); got {b!r}. "
                    "Call a declared bijector with its parameters first."
                )
            inner = getattr(b, "inverse_min_event_ndims", b.forward_min_event_ndims)
            if inner != b.forward_min_event_ndims:
                raise ShapeError(
                    f"Chain: member {k} ({b.name}) changes the event rank "
                    f"({b.forward_min_event_ndims} -> {inner}); Chain supports members that "
                    "keep it. Apply it outside the chain."
                )
        self.bijectors = bijectors
        self.name = name or f"Chain([{', '.join(b.name for b in bijectors)}])"
        self.forward_min_event_ndims = max(
            (b.forward_min_event_ndims for b in bijectors), default=0
        )
        members = elementwise_members(self)
        self._members = members if members else None
        self._fused: FusedKernels | None = None
        #: a chain with network layers runs as one composed module
        self._composed = any(getattr(b, "_composed", False) for b in bijectors)
        sizes = {b.context_size for b in bijectors if getattr(b, "context_size", 0)}
        if len(sizes) > 1:
            raise ShapeError(
                f"Chain: members take contexts of different sizes {sorted(sizes)}; every "
                "conditional member of a flow takes the same context."
            )
        self.context_size = sizes.pop() if sizes else 0
        self._composed_kernels = None

    @property
    def is_fused(self) -> bool:
        """Whether the chain runs as one generated kernel module."""
        return self._members is not None

    def fused_kernels(self) -> FusedKernels:
        """The fused module (built or loaded on first use). Raises if the chain cannot fuse."""
        if self._members is None:
            raise SymflowError(
                f"{self.name}: only chains of compiled elementwise bijectors fuse; this one "
                "runs member by member."
            )
        if self._fused is None:
            self._fused = fused_kernels(self._members, self.name)
        return self._fused

    def _flow_members(self, event_size: int) -> list:
        # inverse-pass order: b1's inverse meets the data first (forward applies bn first)
        return [m for b in self.bijectors for m in b._flow_members(event_size)]

    def _composed_run(self, kernel: str, arr, context):
        from symflow.runtime.composed import composed_kernels

        if self._composed_kernels is None:
            n = np.shape(arr)[-1]
            self._composed_kernels = composed_kernels(
                self._flow_members(n), None, context_size=self.context_size, name=self.name
            )
        return self._composed_kernels.run(kernel, arr, context)

    # -- the sequential path: any members ---------------------------------------------
    def _sequential(self, arr, direction: str, with_ldj: bool):
        order = reversed(self.bijectors) if direction == "forward" else self.bijectors
        ldj = 0.0
        for k, b in enumerate(order):
            index = len(self.bijectors) - k if direction == "forward" else k + 1
            try:
                if with_ldj:
                    arr, part = (
                        b.forward_and_log_det(arr)
                        if direction == "forward"
                        else b.inverse_and_log_det(arr)
                    )
                    ldj = ldj + self._to_min_event(part, b, arr)
                else:
                    arr = b.forward(arr) if direction == "forward" else b.inverse(arr)
            except DomainError as err:
                raise DomainError(f"{self.name}, member {index} ({b.name}): {err}") from err
            arr = np.asarray(arr)
        return arr, ldj

    def _to_min_event(self, part, b: Bijector, arr) -> np.ndarray:
        extra = self.forward_min_event_ndims - b.forward_min_event_ndims
        part = np.asarray(part)
        if extra:
            part = part.sum(axis=tuple(range(part.ndim - extra, part.ndim)))
        return part

    # -- dispatch ---------------------------------------------------------------------
    def _pass(self, arr, direction: str, kernel: str, n_out: int, with_ldj: bool, context=None):
        if self._composed:
            name = "forward_and_log_det" if direction == "forward" else "inverse_and_log_det"
            value, ldj = self._composed_run(name, arr, context)
            return (ldj,) if kernel.endswith("log_det_jacobian") else (value, ldj)
        if context is not None:
            raise ShapeError(f"{self.name}: takes no context; got one.")
        if self._members is None or not self.bijectors:
            value, ldj = self._sequential(arr, direction, with_ldj)
            if with_ldj and np.ndim(ldj) == 0:
                ldj = np.full(
                    np.shape(value)[: np.ndim(value) - self.forward_min_event_ndims], ldj
                )
            return value, ldj
        outs, bad = self.fused_kernels().run(kernel, arr, n_out)
        if bad:
            # The fused loop only counts; the member-by-member path names the culprit.
            self._sequential(arr, direction, with_ldj)
            raise SymflowError(
                f"{self.name}.{kernel}: the fused kernel returned nan for {bad} finite "
                "input(s) that every member accepts. This is a symflow bug; please report it."
            )
        return outs

    def _forward(self, x):
        return self._pass(x, "forward", "forward", 1, False)[0]

    def _inverse(self, y):
        return self._pass(y, "inverse", "inverse", 1, False)[0]

    def _forward_log_det_jacobian(self, x):
        if self._members is None:
            return self._pass(x, "forward", "", 1, True)[1]
        return self._pass(x, "forward", "forward_log_det_jacobian", 1, True)[0]

    def _inverse_log_det_jacobian(self, y):
        if self._members is None:
            return self._pass(y, "inverse", "", 1, True)[1]
        return self._pass(y, "inverse", "inverse_log_det_jacobian", 1, True)[0]

    # -- public methods: a chain with network layers takes the flow's context -----------
    def forward(self, x, context=None):
        """y = f(x); `context` (context_size,) or (..., context_size) for a conditional flow."""
        x = as_float_array(x, f"{self.name}.forward")
        return _scalar_out(np.asarray(self._pass(x, "forward", "forward", 1, False, context)[0]))

    def inverse(self, y, context=None):
        """x = f^-1(y); `context` as in `forward`."""
        y = as_float_array(y, f"{self.name}.inverse")
        return _scalar_out(np.asarray(self._pass(y, "inverse", "inverse", 1, False, context)[0]))

    def forward_log_det_jacobian(self, x, event_ndims: int | None = None, context=None):
        """log|det J_f(x)|, summed over the last `event_ndims` axes; `context` as in
        `forward`."""
        if context is None:
            return super().forward_log_det_jacobian(x, event_ndims)
        x = as_float_array(x, f"{self.name}.forward_log_det_jacobian")
        ldj = self._pass(x, "forward", "forward_log_det_jacobian", 1, True, context)[0]
        return _scalar_out(self._reduce(np.asarray(ldj), event_ndims, x))

    def inverse_log_det_jacobian(self, y, event_ndims: int | None = None, context=None):
        """log|det J_{f^-1}(y)|, summed over the last `event_ndims` axes; `context` as in
        `forward`."""
        if context is None:
            return super().inverse_log_det_jacobian(y, event_ndims)
        y = as_float_array(y, f"{self.name}.inverse_log_det_jacobian")
        ldj = self._pass(y, "inverse", "inverse_log_det_jacobian", 1, True, context)[0]
        return _scalar_out(self._reduce(np.asarray(ldj), event_ndims, y))

    def forward_and_log_det(self, x, context=None):
        """(f(x), log|det J_f(x)|) in one pass (one kernel call when fused or composed)."""
        x = as_float_array(x, f"{self.name}.forward_and_log_det")
        y, ldj = self._pass(x, "forward", "forward_and_log_det", 2, True, context)
        return _scalar_out(np.asarray(y)), _scalar_out(np.asarray(ldj))

    def inverse_and_log_det(self, y, context=None):
        """(f^-1(y), log|det J_{f^-1}(y)|) in one pass (one kernel call when fused or
        composed)."""
        y = as_float_array(y, f"{self.name}.inverse_and_log_det")
        x, ldj = self._pass(y, "inverse", "inverse_and_log_det", 2, True, context)
        return _scalar_out(np.asarray(x)), _scalar_out(np.asarray(ldj))

    def _derivative_sign(self, x):
        sign = np.ones(np.shape(x))
        for b in reversed(self.bijectors):
            sign = sign * b._derivative_sign(x)
            x = b._forward(x)
        return sign
