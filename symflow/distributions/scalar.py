"""Scalar distributions: Normal, Uniform, Exponential (TFP names and parameters).

Parameters may be arrays; the batch shape is the broadcast of their shapes. Each class also
states its log-density symbolically (`log_prob_expr`) and its support, so that a fused
kernel generator can compile log p(f^-1(y)) + log|det J| for a whole flow in one pass.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from symflow.codegen.mathlib import _sf_ndtr
from symflow.distributions.distribution import Distribution
from symflow.errors import ConstraintError, ShapeError
from symflow.runtime.bijector import _scalar_out, validate_parameter
from symflow.symbolic.spec import Positive, Real

if TYPE_CHECKING:
    import sympy as sp

__all__ = ["Exponential", "Normal", "Uniform"]

_HALF_LOG_2PI = 0.9189385332046728  # log(2π)/2

#: mathlib's Φ (erfc in double-double, accurate in the lower tail to z = -38), per element.
_ndtr_ufunc = np.frompyfunc(_sf_ndtr, 1, 1)


def _ndtr(z: np.ndarray) -> np.ndarray:
    """Standard normal CDF Φ(z), elementwise, with `mathlib._sf_ndtr`'s tail accuracy."""
    with np.errstate(invalid="ignore"):  # ±inf: inf - inf inside, the result is still 0 or 1
        return np.asarray(_ndtr_ufunc(np.asarray(z, dtype=np.float64)), dtype=np.float64)


class _ScalarDistribution(Distribution):
    """Shared parameter handling: validated float64 arrays, batch shape from broadcasting."""

    def __init__(self, **params) -> None:
        arrays = {
            name: validate_parameter(self.name, name, value, constraint)
            for name, (value, constraint) in params.items()
        }
        try:
            batch = np.broadcast_shapes(*(a.shape for a in arrays.values()))
        except ValueError as err:
            given = ", ".join(f"{n}: {a.shape}" for n, a in arrays.items())
            raise ShapeError(
                f"{self.name}: parameter shapes do not broadcast ({given}). Give each "
                "parameter a scalar or shapes that broadcast to the batch shape you want."
            ) from err
        self._params = arrays
        super().__init__(batch_shape=batch, event_shape=())

    @property
    def parameters(self) -> dict[str, np.ndarray]:
        """The parameter values (float64 arrays, each in its own shape), by name."""
        return dict(self._params)

    def _symbols(self) -> dict[str, sp.Symbol]:
        import sympy as sp  # only the fused-kernel generator needs SymPy

        return {name: sp.Symbol(name, real=True) for name in self._params}

    def support_expr(self) -> tuple[sp.Expr, sp.Expr]:
        """(lo, hi) of the support as SymPy expressions in `log_prob_expr`'s symbols."""
        import sympy as sp

        return tuple(
            sp.Float(float(b)) if np.isfinite(b) else (sp.oo if b > 0 else -sp.oo)
            for b in self.support
        )

    def _broadcast_mean(self, value: np.ndarray) -> np.ndarray:
        return np.broadcast_to(value, self.batch_shape).copy()


class Normal(_ScalarDistribution):
    """The normal distribution N(loc, scale²): log p(x) = -z²/2 - log(scale) - log(2π)/2.

    Args:
        loc: Mean, any real array.
        scale: Standard deviation, > 0.

    Raises:
        ConstraintError: if `scale` <= 0 or a parameter is not finite.

    Example:
        >>> from symflow import distributions as sfd
        >>> round(float(sfd.Normal(0.0, 1.0).log_prob(2.01)), 6)
        -2.938989
    """

    name = "Normal"

    def __init__(self, loc=0.0, scale=1.0) -> None:
        super().__init__(loc=(loc, Real), scale=(scale, Positive))

    @property
    def loc(self) -> np.ndarray:
        return self._params["loc"]

    @property
    def scale(self) -> np.ndarray:
        return self._params["scale"]

    @property
    def support(self) -> tuple[float, float]:
        """(lo, hi) = (-inf, inf)."""
        return (-math.inf, math.inf)

    def log_prob_expr(self, x: sp.Symbol) -> tuple[sp.Expr, dict[sp.Symbol, np.ndarray]]:
        """The log-density in `x` and the symbols `loc`, `scale`, with their bound values."""
        import sympy as sp

        s = self._symbols()
        expr = (
            -((x - s["loc"]) ** 2) / (2 * s["scale"] ** 2)
            - sp.log(s["scale"])
            - sp.log(2 * sp.pi) / 2
        )
        return expr, {s[n]: self._params[n] for n in s}

    def _z(self, x: np.ndarray) -> np.ndarray:
        return (x - self.loc) / self.scale

    def _log_prob(self, x):
        with np.errstate(over="ignore"):  # |z| > 1e154: z² is inf, the log-density -inf
            z = self._z(x)
            return -0.5 * z * z - np.log(self.scale) - _HALF_LOG_2PI

    def _cdf(self, x):
        return _ndtr(self._z(x))

    def _survival_function(self, x):
        return _ndtr(-self._z(x))

    def _sample(self, sample_shape, rng):
        eps = rng.standard_normal(sample_shape + self.batch_shape)
        return self.loc + self.scale * eps

    def _mean(self):
        return self._broadcast_mean(self.loc)


class Uniform(_ScalarDistribution):
    """The uniform distribution on [low, high): log p(x) = -log(high - low) there.

    Args:
        low: Lower end (included), any real array.
        high: Upper end (excluded), > low elementwise.

    Raises:
        ConstraintError: if `low` >= `high` anywhere, or a parameter is not finite.
    """

    name = "Uniform"

    def __init__(self, low=0.0, high=1.0) -> None:
        super().__init__(low=(low, Real), high=(high, Real))
        bad = ~(self.low < self.high)
        if np.any(bad):
            i = tuple(int(k) for k in np.argwhere(bad)[0]) if bad.ndim else ()
            lo, hi = (float(np.broadcast_to(p, bad.shape)[i]) for p in (self.low, self.high))
            where = f" at batch index {i}" if bad.ndim else ""
            raise ConstraintError(
                f"Uniform: `low` must be < `high`; got low={lo!r}, high={hi!r}{where}. "
                "Swap them, or widen the interval."
            )

    @property
    def low(self) -> np.ndarray:
        return self._params["low"]

    @property
    def high(self) -> np.ndarray:
        return self._params["high"]

    @property
    def support(self):
        """(low, high): floats for scalar parameters, else arrays of the batch shape.

        The density is positive on the half-open [low, high), as in TFP.
        """
        lo, hi = np.broadcast_arrays(self.low, self.high)
        return _scalar_out(lo.copy()), _scalar_out(hi.copy())

    def support_expr(self):
        s = self._symbols()
        return s["low"], s["high"]

    def log_prob_expr(self, x: sp.Symbol) -> tuple[sp.Expr, dict[sp.Symbol, np.ndarray]]:
        """-log(high - low) (constant in `x` on the support), with the bound `low`, `high`."""
        import sympy as sp

        s = self._symbols()
        return -sp.log(s["high"] - s["low"]), {s[n]: self._params[n] for n in s}

    def _log_prob(self, x):
        inside = (x >= self.low) & (x < self.high)
        lp = np.where(inside, -np.log(self.high - self.low), -np.inf)
        return np.where(np.isnan(x), np.nan, lp)

    def _cdf(self, x):
        return np.clip((x - self.low) / (self.high - self.low), 0.0, 1.0)

    def _survival_function(self, x):
        return np.clip((self.high - x) / (self.high - self.low), 0.0, 1.0)

    def _sample(self, sample_shape, rng):
        u = rng.random(sample_shape + self.batch_shape)
        s = self.low + (self.high - self.low) * u
        # low + width·u may round up to high; keep draws inside [low, high).
        return np.where(s < self.high, s, np.nextafter(self.high, -np.inf))

    def _mean(self):
        return self._broadcast_mean(0.5 * (self.low + self.high))


class Exponential(_ScalarDistribution):
    """The exponential distribution on [0, inf): log p(x) = log(rate) - rate·x there.

    Args:
        rate: Inverse scale, > 0.

    Raises:
        ConstraintError: if `rate` <= 0 or is not finite.
    """

    name = "Exponential"

    def __init__(self, rate=1.0) -> None:
        super().__init__(rate=(rate, Positive))

    @property
    def rate(self) -> np.ndarray:
        return self._params["rate"]

    @property
    def support(self) -> tuple[float, float]:
        """(lo, hi) = (0, inf); the density is positive on [0, inf)."""
        return (0.0, math.inf)

    def log_prob_expr(self, x: sp.Symbol) -> tuple[sp.Expr, dict[sp.Symbol, np.ndarray]]:
        """log(rate) - rate·x, with the bound `rate`."""
        import sympy as sp

        s = self._symbols()
        return sp.log(s["rate"]) - s["rate"] * x, {s["rate"]: self.rate}

    def _log_prob(self, x):
        lp = np.log(self.rate) - self.rate * x
        return np.where(x >= 0.0, lp, np.where(np.isnan(x), np.nan, -np.inf))

    def _cdf(self, x):
        # -expm1(-λx) keeps full relative accuracy for small λx, where 1 - exp(-λx) cancels.
        # np.maximum maps x < 0 (and -inf) to 0, so the cdf is 0 there; NaN passes through.
        return -np.expm1(-self.rate * np.maximum(x, 0.0))

    def _survival_function(self, x):
        return np.exp(-self.rate * np.maximum(x, 0.0))

    def _sample(self, sample_shape, rng):
        return rng.standard_exponential(sample_shape + self.batch_shape) / self.rate

    def _mean(self):
        return self._broadcast_mean(1.0 / self.rate)
