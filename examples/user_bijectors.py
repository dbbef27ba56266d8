"""Bijectors that are not in the catalog, declared by their forward map only.

symflow derives each inverse and log-det, verifies them against mpmath, and compiles
kernels. Run: `python examples/user_bijectors.py`.
"""

import numpy as np
import sympy as sp

import symflow as sf


@sf.bijector
def cubic(x):
    """y = x + x**3: the inverse is the real root of a cubic (Cardano)."""
    return x + x**3


@sf.bijector(domain=sf.UnitInterval)
def logit(x):
    """y = log(x / (1 - x)) on (0, 1)."""
    return sp.log(x / (1 - x))


@sf.bijector(domain=sf.Interval(-1, sp.oo))
def x_exp_x(x):
    """y = x * exp(x) on x > -1: the inverse is Lambert's W."""
    return x * sp.exp(x)


@sf.bijector
def scaled_asinh(x, a: sf.Positive = 1.0, b: sf.Positive = 1.0):
    """y = a * asinh(x / b)."""
    return a * sp.asinh(x / b)


if __name__ == "__main__":
    for declared in (cubic, logit, x_exp_x, scaled_asinh):
        print(f"{declared.name}: y = {declared.forward_expr}")
        print(f"  inverse: {declared.inverse_expr}")
        print(f"  fldj:    {declared.forward_log_det_jacobian_expr}")
        print(declared.report())
        print()
    b = scaled_asinh(a=2.0, b=0.5)
    x = np.linspace(-3, 3, 7)
    y, ldj = b.forward(x), b.forward_log_det_jacobian(x, event_ndims=0)
    print("scaled_asinh(a=2, b=0.5) at", x)
    print("  forward:", y)
    print("  inverse(forward(x)) - x:", b.inverse(y) - x)
    print("  fldj:", ldj)
