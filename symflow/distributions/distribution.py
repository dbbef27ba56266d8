"""The `Distribution` base: TFP's API (log_prob, prob, cdf, sample) over numpy arrays.

A subclass sets its batch and event shapes and implements `_log_prob` (and, where it has
them, `_cdf`, `_survival_function`, `_sample`, `_mean`) on arrays the base has already
converted and shape-checked. Everything that follows from those (`prob` from `log_prob`,
input conversion, the dtype of the result, seeding, `sample_shape` handling) is written once,
here.
"""

from __future__ import annotations

import numpy as np

from symflow.errors import ShapeError
from symflow.runtime.bijector import _scalar_out, as_float_array

__all__ = ["Distribution"]


class Distribution:
    """Base of every distribution: densities and samples with TFP's names and shapes.

    A value passed to `log_prob`, `prob`, `cdf` has shape `S + event_shape`, where `S`
    broadcasts against `batch_shape`; the result has shape `broadcast(S, batch_shape)`.
    float32 values give float32 results (computed in float64, then rounded); everything
    else gives float64. `sample(sample_shape)` returns float64 of shape
    `sample_shape + batch_shape + event_shape`.
    """

    name = "Distribution"

    def __init__(self, batch_shape: tuple[int, ...], event_shape: tuple[int, ...]) -> None:
        self._batch_shape = tuple(int(n) for n in batch_shape)
        self._event_shape = tuple(int(n) for n in event_shape)

    @property
    def batch_shape(self) -> tuple[int, ...]:
        """Shape of the batch of independent, differently parametrised distributions."""
        return self._batch_shape

    @property
    def event_shape(self) -> tuple[int, ...]:
        """Shape of one draw from one member of the batch; () for scalar distributions."""
        return self._event_shape

    # Public API: conversion and shape checks once, then the subclass's array method.

    def log_prob(self, value):
        """log p(value), one number per batch member and per leading index of `value`.

        Outside the support the result is -inf (a density of 0 is a value, not an error).

        Raises:
            ShapeError: if `value` does not end in `event_shape` or does not broadcast
                against `batch_shape`.
        """
        arr = self._value(value, "log_prob")
        return self._out(self._log_prob(arr), arr)

    def prob(self, value):
        """p(value) = exp(log_prob(value))."""
        return np.exp(self.log_prob(value))

    def cdf(self, value):
        """P(X <= value), for scalar events.

        Raises:
            ShapeError: for a distribution with a non-scalar event shape.
        """
        arr = self._scalar_event_value(value, "cdf")
        return self._out(self._cdf(arr), arr)

    def survival_function(self, value):
        """P(X > value) = 1 - cdf(value), computed without cancellation where possible."""
        arr = self._scalar_event_value(value, "survival_function")
        return self._out(self._survival_function(arr), arr)

    def sample(self, sample_shape=(), seed=None) -> np.ndarray:
        """Draws of shape `sample_shape + batch_shape + event_shape`.

        Args:
            sample_shape: An int n (as TFP's `sample(n)`) or a tuple of non-negative ints.
            seed: None (fresh entropy), an int, or a `numpy.random.Generator` to draw from.

        Raises:
            ShapeError: if `sample_shape` is not a non-negative int or a tuple of them.
            TypeError: if `seed` cannot seed `numpy.random.default_rng`.
        """
        shape = self._sample_shape(sample_shape)
        try:
            rng = np.random.default_rng(seed)
        except (TypeError, ValueError) as err:
            raise TypeError(
                f"{self.name}.sample: `seed` must be None, a non-negative int or a "
                f"numpy.random.Generator; got {seed!r}. Pass e.g. seed=0."
            ) from err
        return self._sample(shape, rng)

    def mean(self):
        """E[X], of shape `batch_shape + event_shape`."""
        return _scalar_out(np.asarray(self._mean()))

    # Subclass hooks.

    def _log_prob(self, value: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{self.name} does not implement log_prob.")

    def _cdf(self, value: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{self.name} does not implement cdf.")

    def _survival_function(self, value: np.ndarray) -> np.ndarray:
        return 1.0 - self._cdf(value)

    def _sample(self, sample_shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError(f"{self.name} does not implement sample.")

    def _mean(self) -> np.ndarray:
        raise NotImplementedError(
            f"{self.name}: the mean has no cheap closed form here. Estimate it from "
            "sample(n).mean(axis=0)."
        )

    # Helpers shared by subclasses.

    def _value(self, value, method: str) -> np.ndarray:
        """`value` as a float array whose shape ends in the event shape and fits the batch."""
        what = f"{self.name}.{method}"
        arr = as_float_array(value, what)
        ev = self._event_shape
        lead = arr.shape[: arr.ndim - len(ev)]
        if arr.ndim < len(ev) or arr.shape[arr.ndim - len(ev) :] != ev:
            raise ShapeError(
                f"{what}: the value must have shape (..., {', '.join(map(str, ev))}) to end in "
                f"the event shape {ev}; got shape {arr.shape}. Put the event on the last "
                f"{len(ev)} axis/axes."
            )
        try:
            np.broadcast_shapes(lead, self._batch_shape)
        except ValueError as err:
            raise ShapeError(
                f"{what}: the value's batch part {lead} (shape {arr.shape} less the event "
                f"shape {ev}) does not broadcast against the batch shape {self._batch_shape}. "
                "Reshape the value, e.g. add axes of size 1."
            ) from err
        return arr

    def _scalar_event_value(self, value, method: str) -> np.ndarray:
        if self._event_shape != ():
            raise ShapeError(
                f"{self.name}.{method}: defined for scalar events only; this distribution has "
                f"event shape {self._event_shape}. Evaluate it on a scalar marginal instead."
            )
        return self._value(value, method)

    def _sample_shape(self, sample_shape) -> tuple[int, ...]:
        shape = (sample_shape,) if isinstance(sample_shape, (int, np.integer)) else sample_shape
        ok = isinstance(shape, (tuple, list)) and all(
            isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n >= 0 for n in shape
        )
        if not ok or isinstance(sample_shape, bool):
            raise ShapeError(
                f"{self.name}.sample: `sample_shape` must be a non-negative int or a tuple of "
                f"them; got {sample_shape!r}. Pass e.g. sample(1000) or sample((10, 100))."
            )
        return tuple(int(n) for n in shape)

    @staticmethod
    def _out(result, like: np.ndarray):
        """The result in the value's dtype (float32 stays float32), 0-d arrays as scalars."""
        return _scalar_out(np.asarray(result).astype(like.dtype, copy=False))

    def __repr__(self) -> str:
        return (
            f"<symflow distribution {self.name} batch_shape={self._batch_shape} "
            f"event_shape={self._event_shape}>"
        )
