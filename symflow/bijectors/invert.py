"""Invert(b): the bijector whose forward is b's inverse, and Log = Invert(Exp())."""

from __future__ import annotations

from symflow.bijectors.catalog import Exp
from symflow.runtime.bijector import Bijector

__all__ = ["Invert", "Log"]


class Invert(Bijector):
    """Swaps forward and inverse of `bijector` (TFP's Invert)."""

    def __init__(self, bijector: Bijector) -> None:
        if not isinstance(bijector, Bijector):
            raise TypeError(
                f"Invert: expected a bound bijector (e.g. sfb.Exp()); got {bijector!r}. "
                "Call a declared bijector with its parameters first."
            )
        self.bijector = bijector
        self.name = f"Invert({bijector.name})"
        # Inverting swaps which side has which minimal event rank (FillTriangular: 1 and 2).
        self.forward_min_event_ndims = bijector.inverse_min_event_ndims
        self._inverse_min_event_ndims = bijector.forward_min_event_ndims

    def _forward(self, x):
        return self.bijector._inverse(x)

    def _inverse(self, y):
        return self.bijector._forward(y)

    def _forward_log_det_jacobian(self, x):
        return self.bijector._inverse_log_det_jacobian(x)

    def _inverse_log_det_jacobian(self, y):
        return self.bijector._forward_log_det_jacobian(y)

    def forward_and_log_det(self, x):
        """(f^-1(x), log|(f^-1)'(x)|) of the wrapped bijector, in one pass when it has one."""
        return self.bijector.inverse_and_log_det(x)

    def inverse_and_log_det(self, y):
        return self.bijector.forward_and_log_det(y)

    def _derivative_sign(self, x):
        # (f^-1)'(x) = 1 / f'(f^-1(x)): the same sign as f' at the inverse point.
        return self.bijector._derivative_sign(self.bijector._inverse(x))


def Log() -> Invert:  # noqa: N802 (TFP-style constructor name)
    """y = log(x) on x > 0, as Invert(Exp())."""
    return Invert(Exp())
