"""TransformedDistribution: Y = f(X) with X ~ base, densities by the change of variables."""

from __future__ import annotations

import numpy as np
import sympy as sp

from symflow.bijectors.chain import elementwise_members
from symflow.codegen.flow.base import NormalBaseCode
from symflow.codegen.fuse import BaseDensity
from symflow.distributions.distribution import Distribution
from symflow.distributions.mvn import MultivariateNormalDiag
from symflow.distributions.scalar import Normal
from symflow.errors import ConstraintError, ShapeError, SymflowError
from symflow.runtime.bijector import Bijector
from symflow.runtime.composed import ComposedKernels, FlowMember, composed_kernels
from symflow.runtime.fused import FusedKernels, fused_kernels
from symflow.symbolic.spec import Positive

__all__ = ["TransformedDistribution", "base_member"]


class TransformedDistribution(Distribution):
    """The law of y = bijector.forward(x) for x ~ distribution (TFP's TransformedDistribution).

    log p_Y(y) = log p_X(f^-1(y)) + log|det J_{f^-1}(y)|, with the log-det summed over the
    base's event axes. For a scalar event the bijector's `inverse_and_log_det` gives f^-1(y)
    and the log-det in one kernel pass. Batch and event shapes are the base's; the
    bijector's parameters must broadcast within them.

    Args:
        distribution: The base distribution of x.
        bijector: A bound bijector (e.g. `sfb.AffineScalar(shift=0., scale=2.)`).

    Raises:
        TypeError: if `distribution` is not a Distribution or `bijector` not a Bijector.
        ShapeError: if the bijector needs more event axes than the base has, or its
            parameters would add batch axes the base does not have.

    Example:
        >>> from symflow import bijectors as sfb, distributions as sfd
        >>> d = sfd.TransformedDistribution(sfd.Normal(0.0, 1.0), sfb.Exp())  # log-normal
        >>> d.sample(3, seed=0).shape                                         # doctest: +SKIP
        (3,)
    """

    name = "TransformedDistribution"

    def __init__(self, distribution: Distribution, bijector: Bijector) -> None:
        if not isinstance(distribution, Distribution):
            raise TypeError(
                f"TransformedDistribution: `distribution` must be a symflow Distribution "
                f"(e.g. sfd.Normal(0., 1.)); got {distribution!r}. Pass the base "
                "distribution first, then the bijector."
            )
        if not isinstance(bijector, Bijector):
            raise TypeError(
                f"TransformedDistribution: `bijector` must be a bound symflow Bijector "
                f"(e.g. sfb.Exp()); got {bijector!r}. Call a declared bijector with its "
                "parameter values first."
            )
        ev = distribution.event_shape
        if bijector.forward_min_event_ndims > len(ev):
            raise ShapeError(
                f"TransformedDistribution: {bijector.name} acts on events of rank >= "
                f"{bijector.forward_min_event_ndims}, but the base {distribution.name} has "
                f"event shape {ev}. Use a base with a vector event, e.g. "
                "sfd.MultivariateNormalDiag."
            )
        full = distribution.batch_shape + ev
        for name, shape in _parameter_shapes(bijector):
            try:
                ok = np.broadcast_shapes(full, shape) == full
            except ValueError:
                ok = False
            if not ok:
                raise ShapeError(
                    f"TransformedDistribution: {bijector.name}'s parameter `{name}` has shape "
                    f"{shape}, which does not fit within the base's batch + event shape "
                    f"{full}. Give the base that batch shape (e.g. "
                    f"Normal(loc=np.zeros({shape}))), or a parameter shape that broadcasts "
                    "into it."
                )
        self.distribution = distribution
        self.bijector = bijector
        self._fused: FusedKernels | bool | None = None
        #: a flow with network layers: log_prob and sample run one composed module
        self._composed = bool(getattr(bijector, "_composed", False))
        self.context_size = int(getattr(bijector, "context_size", 0) or 0)
        #: (mean, scale) applied to every context before the networks see it, or None;
        #: `sf.fit` sets it from the training contexts (see `with_context_standardization`)
        self.context_standardization: tuple[np.ndarray, np.ndarray] | None = None
        self._composed_kernels: ComposedKernels | None = None
        if self._composed:
            ok = isinstance(distribution, (Normal, MultivariateNormalDiag)) and (
                distribution.batch_shape == ()
            )
            if not ok:
                raise ShapeError(
                    f"TransformedDistribution: a flow with network layers ({bijector.name}) "
                    "needs a Normal or MultivariateNormalDiag base without batch shape; got "
                    f"{distribution!r}."
                )
        super().__init__(batch_shape=distribution.batch_shape, event_shape=ev)

    def _composed_run(self, kernel: str, value, context):
        if self._composed_kernels is None:
            n = self.event_shape[0] if self.event_shape else 1
            self._composed_kernels = composed_kernels(
                self.bijector._flow_members(n), base_member(self.distribution, n),
                context_size=self.context_size, name=f"{self.name}({self.bijector.name})",
            )  # fmt: skip
        std = self.context_standardization
        if std is not None and context is not None:
            arr = np.asarray(context, dtype=np.float64)
            if arr.shape[-1:] == std[0].shape:  # otherwise the runner names the shape
                context = (arr - std[0]) / std[1]
        return self._composed_kernels.run(kernel, value, context)

    def with_context_standardization(self, mean, scale) -> TransformedDistribution:
        """This flow with contexts standardized, (context - mean) / scale, before its
        networks see them: a fixed (untrained) embedding, as sbi z-scores its conditions.

        Raw simulator outputs may have scales of 1e-3 and 1e3 side by side; a network's
        first layer trains poorly on such inputs. `sf.fit` sets this from the training
        contexts' mean and standard deviation (`standardize_context=True`, its default
        for a conditional flow), and `log_prob` and `sample` apply it to the contexts they
        are given, so callers always pass raw contexts.

        Args:
            mean, scale: shape (context_size,); scale finite and > 0.

        Returns:
            A new TransformedDistribution sharing this one's bijector and kernels.

        Raises:
            ShapeError: a flow without a context, or mean/scale of the wrong shape.
            ConstraintError: a scale that is not finite and positive, a mean not finite.
        """
        c = self.context_size
        if not c:
            raise ShapeError(
                f"{self.name}.with_context_standardization: this flow takes no context."
            )
        m = np.array(mean, dtype=np.float64)
        sd = np.array(scale, dtype=np.float64)
        for name, arr in (("mean", m), ("scale", sd)):
            if arr.shape != (c,):
                raise ShapeError(
                    f"{self.name}.with_context_standardization: `{name}` must have shape "
                    f"({c},) (context_size); got {arr.shape}."
                )
        if not (np.all(np.isfinite(m)) and np.all(np.isfinite(sd)) and np.all(sd > 0)):
            raise ConstraintError(
                f"{self.name}.with_context_standardization: `mean` must be finite and "
                f"`scale` finite and > 0; got mean {m}, scale {sd}."
            )
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone.context_standardization = (m, sd)
        return clone

    def log_prob(self, value, context=None):
        """log p(y) = base.log_prob(f^-1(y)) + inverse_log_det_jacobian(y).

        Args:
            value: events, shape (..., event_size).
            context: for a conditional flow, (context_size,) for every value or one per
                value, (..., context_size).

        Raises:
            ShapeError: a value or context of the wrong shape, a missing or unexpected
                context.
            DomainError: a value outside the flow's support (composed flows).
        """
        y = self._value(value, "log_prob")
        if self._composed:
            return self._out(self._composed_run("log_prob", y, context)[0], y)
        if context is not None:
            raise ShapeError(f"{self.name}.log_prob: this flow takes no context; got one.")
        lp = self._fused_log_prob(y)  # hook: a fused compiled kernel, when one is available
        if lp is None:
            lp = self._log_prob(y)
        return self._out(lp, y)

    def prob(self, value, context=None):
        """p(y) = exp(log_prob(y))."""
        return np.exp(self.log_prob(value, context=context))

    def sample(self, sample_shape=(), seed=None, context=None):
        """Draws of shape `sample_shape + event_shape`: base draws pushed forward.

        Args:
            sample_shape: an int n or a tuple.
            seed: None, an int or a numpy Generator.
            context: for a conditional flow: (context_size,) gives every draw that
                context; `(*sample_shape, context_size)` one context per draw.
        """
        if not self._composed:
            if context is not None:
                raise ShapeError(f"{self.name}.sample: this flow takes no context; got one.")
            return super().sample(sample_shape, seed)
        shape = self._sample_shape(sample_shape)
        x = self.distribution.sample(shape, seed=seed)
        if self.event_shape == ():
            x = x[..., None]
        return self._composed_run("forward_and_log_det", x, context)[0].reshape(
            shape + self.event_shape
        )

    def _fused_log_prob(self, y: np.ndarray) -> np.ndarray | None:
        """log p(y) from one generated kernel, or None where the flow cannot fuse.

        A scalar base with a symbolic density and a bijector made of compiled elementwise
        members (a Chain, Invert, or one declared bijector) fuse: the kernel runs every
        member's inverse and log-det and the base log-density per element, one pass over
        memory. Values outside the bijector's range raise the same DomainError as the
        unfused path (which names the member); outside the base's support the density is
        zero (-inf).
        """
        if self._fused is None:
            self._fused = _fuse(self.distribution, self.bijector) or False
        if self._fused is False:
            return None
        (lp,), bad = self._fused.run("log_prob", np.asarray(y), 1)
        if bad:
            self._log_prob(y)  # raises the member's DomainError with its index and value
            raise SymflowError(
                f"{self.name}.log_prob: the fused kernel returned nan for {bad} value(s) "
                "the unfused path accepts. This is a symflow bug; please report it."
            )
        return lp

    def _log_prob(self, y):
        event_ndims = len(self.event_shape)
        if event_ndims == 0 and hasattr(self.bijector, "inverse_and_log_det"):
            x, ildj = self.bijector.inverse_and_log_det(y)
        else:
            x = self.bijector.inverse(y)
            ildj = self.bijector.inverse_log_det_jacobian(y, event_ndims=event_ndims)
        lp = self.distribution.log_prob(x)
        # At a finite end of f's codomain x = f^-1(y) is ±inf, where the base density is 0
        # and ildj may be +inf: -inf + inf would be nan. Such a y is not in the image of f
        # (the end is only a limit), so its density is 0.
        with np.errstate(invalid="ignore"):
            return np.where(lp == -np.inf, -np.inf, lp + ildj)

    def _cdf(self, y):
        x, increasing = self._inverse_and_direction(y, "cdf")
        # A decreasing f maps {X >= x} onto {Y <= y}: the cdf is the base's survival there.
        return np.where(
            increasing, self.distribution.cdf(x), self.distribution.survival_function(x)
        )

    def _survival_function(self, y):
        x, increasing = self._inverse_and_direction(y, "survival_function")
        return np.where(
            increasing, self.distribution.survival_function(x), self.distribution.cdf(x)
        )

    def _inverse_and_direction(self, y, method: str):
        x = np.asarray(self.bijector.inverse(y))
        try:
            sign = self.bijector._derivative_sign(x)
        except NotImplementedError as err:
            raise NotImplementedError(
                f"TransformedDistribution.{method}: needs the direction of "
                f"{self.bijector.name} (increasing or decreasing), which it does not "
                "provide. Use an elementwise bijector, or evaluate log_prob instead."
            ) from err
        return x, np.asarray(sign) > 0

    def _sample(self, sample_shape, rng):
        return self.bijector.forward(self.distribution.sample(sample_shape, seed=rng))


def _fuse(base: Distribution, bijector: Bijector) -> FusedKernels | None:
    members = elementwise_members(bijector)
    if not members or base.event_shape != () or not hasattr(base, "log_prob_expr"):
        return None
    x = sp.Symbol("x", real=True)
    expr, values = base.log_prob_expr(x)
    density = BaseDensity(
        label=base.name,
        x=x,
        parameters=tuple(values),
        log_prob=expr,
        support=tuple(base.support_expr()),
    )
    return fused_kernels(
        members, f"{base.name} through {bijector.name}", density, tuple(values.values())
    )


def _parameter_shapes(bijector) -> list[tuple[str, tuple[int, ...]]]:
    """(name, shape) of each elementwise parameter of `bijector` and the bijectors it wraps.

    Only elementwise bijectors (forward_min_event_ndims == 0) count: their parameters
    broadcast against the value, so a shape that does not fit the base would change the
    batch shape. Structured bijectors (Affine and the like) shape theirs by the event.
    """
    found = []
    params = getattr(bijector, "parameters", None)
    if isinstance(params, dict) and bijector.forward_min_event_ndims == 0:
        found += [(name, np.shape(value)) for name, value in params.items()]
    inner = getattr(bijector, "bijector", None)
    inners = [inner] if inner is not None else list(getattr(bijector, "bijectors", ()) or ())
    for b in inners:
        found += _parameter_shapes(b)
    return found


def base_member(base, n: int, *, trainable: bool = False) -> FlowMember:
    """The base distribution (Normal for scalar events, MultivariateNormalDiag without batch
    shape) as a composed flow's base: loc and |scale| in q."""
    if isinstance(base, MultivariateNormalDiag):
        loc = np.asarray(base.loc, dtype=np.float64).reshape(-1)
        scale = np.abs(np.asarray(base.scale_diag, dtype=np.float64).reshape(-1))
        scale_name = "scale_diag"
    else:
        loc = np.array([float(base.loc)])
        scale = np.array([abs(float(base.scale))])
        scale_name = "scale"
    code = NormalBaseCode(n, Positive, trainable=trainable, name=base.name, scale_name=scale_name)
    return FlowMember(code, np.concatenate([loc, scale]), "base")
