"""The built-in elementwise bijectors, each declared with the DSL in a line or two.

Class and parameter names are TFP's; each entry computes what TFP's class of the same name
computes. Calling an entry with parameter values binds it, as constructing a TFP bijector
does: `Shift(1.0).forward(x)`.
"""

from __future__ import annotations

import numpy as np
import sympy as sp

from symflow.runtime.declared import bijector
from symflow.symbolic.spec import NonZero, Positive, Real, UnitInterval

__all__ = [
    "CATALOG",
    "AffineScalar",
    "Exp",
    "Expm1",
    "GumbelCDF",
    "KumaraswamyCDF",
    "NormalCDF",
    "PReLU",
    "Power",
    "Scale",
    "Shift",
    "Sigmoid",
    "SignedPower",
    "Sinh",
    "SinhArcsinh",
    "Softplus",
    "Softsign",
    "Tanh",
    "WeibullCDF",
]


@bijector
def Exp(x):  # noqa: N802 (TFP's class names)
    """y = exp(x)."""
    return sp.exp(x)


@bijector
def Sigmoid(x):  # noqa: N802
    """y = 1 / (1 + exp(-x))."""
    return 1 / (1 + sp.exp(-x))


@bijector
def Tanh(x):  # noqa: N802
    """y = tanh(x)."""
    return sp.tanh(x)


@bijector
def Softplus(x, hinge_softness: Positive = 1.0):  # noqa: N802
    """y = c * log(1 + exp(x / c)), c = hinge_softness."""
    return hinge_softness * sp.log(1 + sp.exp(x / hinge_softness))


@bijector
def NormalCDF(x):  # noqa: N802
    """y = Phi(x), the standard normal CDF."""
    return (1 + sp.erf(x / sp.sqrt(2))) / 2


@bijector
def Shift(x, shift: Real):  # noqa: N802
    """y = x + shift."""
    return x + shift


@bijector
def Scale(x, scale: NonZero):  # noqa: N802
    """y = scale * x (a negative scale reverses the order)."""
    return scale * x


@bijector
def AffineScalar(x, shift: Real = 0.0, scale: NonZero = 1.0):  # noqa: N802
    """y = shift + scale * x."""
    return shift + scale * x


@bijector
def SinhArcsinh(x, skewness: Real = 0.0, tailweight: Positive = 1.0):  # noqa: N802
    """y = sinh((asinh(x) + skewness) * tailweight) * 2 / sinh(asinh(2) * tailweight).

    The multiplier is TFP's: it makes the map the identity near |x| = 2 in scale, for
    every tailweight.
    """
    multiplier = 2 / sp.sinh(sp.asinh(2) * tailweight)
    return sp.sinh((sp.asinh(x) + skewness) * tailweight) * multiplier


@bijector(domain=UnitInterval)
def KumaraswamyCDF(x, concentration1: Positive = 1.0, concentration0: Positive = 1.0):  # noqa: N802
    """y = 1 - (1 - x**concentration1)**concentration0 on (0, 1)."""
    return 1 - (1 - x**concentration1) ** concentration0


@bijector
def GumbelCDF(x, loc: Real = 0.0, scale: Positive = 1.0):  # noqa: N802
    """y = exp(-exp(-(x - loc) / scale))."""
    return sp.exp(-sp.exp(-(x - loc) / scale))


@bijector(domain=Positive)
def WeibullCDF(x, scale: Positive = 1.0, concentration: Positive = 1.0):  # noqa: N802
    """y = 1 - exp(-(x / scale)**concentration) on x > 0."""
    return 1 - sp.exp(-((x / scale) ** concentration))


@bijector
def SignedPower(x, power: Positive):  # noqa: N802
    """y = sign(x) |x|**power on the whole real line: `Power` for an odd integer power."""
    return sp.Piecewise((x**power, x >= 0), (-((-x) ** power), True))


def _odd_positive_integer(values) -> bool:
    p = np.asarray(values["power"])
    # from 3: Power(1) is the identity, whose log-det (p - 1) log|x| is 0 * -inf at 0
    return bool(np.all((p >= 3) & (p == np.round(p)) & (np.mod(p, 2) == 1)))


@bijector(domain=Positive)
def Power(x, power: NonZero):  # noqa: N802
    """y = x**power on x > 0 (a negative power reverses the order); for an odd integer
    power from 3, as TFP, on the whole real line (bound as `SignedPower`)."""
    return x**power


Power = Power.extend_where(
    SignedPower, _odd_positive_integer, "an odd integer power from 3: the whole real line"
)


@bijector
def PReLU(x, alpha: Positive):  # noqa: N802
    """y = x for x >= 0, alpha * x otherwise."""
    return sp.Piecewise((x, x >= 0), (alpha * x, True))


@bijector
def Softsign(x):  # noqa: N802
    """y = x / (1 + |x|)."""
    return x / (1 + sp.Abs(x))


@bijector
def Sinh(x):  # noqa: N802
    """y = sinh(x)."""
    return sp.sinh(x)


@bijector
def Expm1(x):  # noqa: N802
    """y = exp(x) - 1."""
    return sp.exp(x) - 1


#: Every declared catalog entry, by name.
CATALOG = {
    b.name: b
    for b in (
        Exp,
        Sigmoid,
        Tanh,
        Softplus,
        NormalCDF,
        Shift,
        Scale,
        AffineScalar,
        SinhArcsinh,
        KumaraswamyCDF,
        GumbelCDF,
        WeibullCDF,
        Power,
        SignedPower,
        PReLU,
        Softsign,
        Sinh,
        Expm1,
    )
}
