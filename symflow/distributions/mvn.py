"""MultivariateNormalDiag: a normal vector with diagonal scale (TFP's parametrisation)."""

from __future__ import annotations

import numpy as np

from symflow.distributions.distribution import Distribution
from symflow.errors import ConstraintError, ShapeError
from symflow.runtime.bijector import validate_parameter
from symflow.symbolic.spec import Real

__all__ = ["MultivariateNormalDiag"]

_HALF_LOG_2PI = 0.9189385332046728  # log(2π)/2


class MultivariateNormalDiag(Distribution):
    """X = loc + scale·Z with Z ~ N(0, I_k) and a diagonal `scale`, as in TFP.

    scale = diag(scale_diag) + scale_identity_multiplier·I when both are given, diag(
    scale_diag) or scale_identity_multiplier·I when one is, and I when neither is. Then
    log p(x) = Σ_i [-z_i²/2 - log|d_i| - log(2π)/2] with z = (x - loc)/d, d the diagonal.

    Args:
        loc: Mean, shape `batch + (k,)`; None means zeros.
        scale_diag: Diagonal of the scale, shape `batch + (k,)`, nonzero.
        scale_identity_multiplier: Scalar multiple of I added to the scale, shape `batch`.

    The event size k comes from `loc` or `scale_diag` (they must agree); the batch shape is
    the broadcast of their leading axes and the multiplier's shape.

    Raises:
        ShapeError: if neither `loc` nor `scale_diag` is given (k is unknown), if either is a
            scalar, if their last axes differ, or if the batch parts do not broadcast.
        ConstraintError: if a parameter is not finite, or a diagonal entry of the scale is 0.

    Example:
        >>> from symflow import distributions as sfd
        >>> d = sfd.MultivariateNormalDiag(loc=[0.0, 1.0], scale_diag=[1.0, 2.0])
        >>> d.batch_shape, d.event_shape
        ((), (2,))
    """

    name = "MultivariateNormalDiag"

    def __init__(self, loc=None, scale_diag=None, scale_identity_multiplier=None) -> None:
        owner = self.name
        given = {}
        if loc is not None:
            given["loc"] = validate_parameter(owner, "loc", loc, Real)
        if scale_diag is not None:
            # Finite here; nonzero is checked on the full diagonal below, since TFP allows a
            # 0 in scale_diag that the identity multiplier lifts.
            given["scale_diag"] = validate_parameter(owner, "scale_diag", scale_diag, Real)
        if not given:
            raise ShapeError(
                f"{owner}: the event size is unknown; got neither `loc` nor `scale_diag`. "
                "Pass loc (e.g. loc=np.zeros(k)) or scale_diag to set it."
            )
        for name, arr in given.items():
            if arr.ndim == 0:
                raise ShapeError(
                    f"{owner}: `{name}` must have at least one axis (the event axis); got a "
                    f"scalar {float(arr)!r}. Pass a vector, e.g. {name}=[{float(arr)!r}] * k."
                )
        sizes = {name: arr.shape[-1] for name, arr in given.items()}
        if len(set(sizes.values())) > 1:
            raise ShapeError(
                f"{owner}: `loc` and `scale_diag` must have the same event size (last axis); "
                f"got {sizes['loc']} and {sizes['scale_diag']}. Make their last axes equal."
            )
        k = next(iter(sizes.values()))
        shapes = {name: arr.shape[:-1] for name, arr in given.items()}
        mult = None
        if scale_identity_multiplier is not None:
            mult = validate_parameter(
                owner, "scale_identity_multiplier", scale_identity_multiplier, Real
            )
            shapes["scale_identity_multiplier"] = mult.shape
        try:
            batch = np.broadcast_shapes(*shapes.values())
        except ValueError as err:
            text = ", ".join(f"{n}: {s}" for n, s in shapes.items())
            raise ShapeError(
                f"{owner}: the batch parts of the parameters do not broadcast ({text}; the "
                "event axis of loc and scale_diag left out). Give them broadcastable leading "
                "axes."
            ) from err

        diag = given.get("scale_diag", np.ones(k))
        if mult is not None:
            diag = mult[..., None] if "scale_diag" not in given else diag + mult[..., None]
            diag = np.broadcast_to(diag, diag.shape[:-1] + (k,))
        if np.any(diag == 0):
            parts = [n for n in ("scale_diag", "scale_identity_multiplier") if n in shapes]
            what = " + ".join(f"`{n}`" for n in parts)
            raise ConstraintError(
                f"{owner}: the scale's diagonal ({what}) must be nonzero (NonZero) for the "
                f"scale to be invertible; got 0 at index "
                f"{tuple(int(i) for i in np.argwhere(diag == 0)[0])}. Change {what}."
            )
        self._loc = given.get("loc", np.zeros(k))
        self._diag = np.asarray(diag, dtype=np.float64)
        super().__init__(batch_shape=batch, event_shape=(k,))

    @property
    def loc(self) -> np.ndarray:
        """The mean, shape `batch + (k,)` (broadcast)."""
        return np.broadcast_to(self._loc, self.batch_shape + self.event_shape).copy()

    @property
    def scale_diag(self) -> np.ndarray:
        """The diagonal of the full scale (multiplier included), shape `batch + (k,)`."""
        return np.broadcast_to(self._diag, self.batch_shape + self.event_shape).copy()

    def _log_prob(self, x):
        with np.errstate(over="ignore"):
            z = (x - self._loc) / self._diag
            quad = np.sum(z * z, axis=-1)
        log_det = np.sum(np.log(np.abs(self._diag)), axis=-1)
        return -0.5 * quad - log_det - self.event_shape[0] * _HALF_LOG_2PI

    def _sample(self, sample_shape, rng):
        eps = rng.standard_normal(sample_shape + self.batch_shape + self.event_shape)
        return self._loc + self._diag * eps

    def _mean(self):
        return self.loc
