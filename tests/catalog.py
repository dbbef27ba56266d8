"""CASES: readable name → Case(declared bijector, parameter values).

Parameters are chosen inside each declared constraint (a test checks that); points come
from the bijector's declared domain (`symflow.symbolic.numeric.domain_grid`), never from
a side table here.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from symflow import bijectors as sfb
from symflow.runtime.declared import DeclaredBijector

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
import user_bijectors as user  # noqa: E402


@dataclass(frozen=True)
class Case:
    declared: DeclaredBijector
    params: dict = field(default_factory=dict)

    def bind(self, **override):
        return self.declared(**{**self.params, **override})


CASES = {
    "Exp": Case(sfb.Exp),
    "Sigmoid": Case(sfb.Sigmoid),
    "Tanh": Case(sfb.Tanh),
    "Softplus": Case(sfb.Softplus, {"hinge_softness": 0.7}),
    "NormalCDF": Case(sfb.NormalCDF),
    "Shift": Case(sfb.Shift, {"shift": -1.25}),
    "Scale(neg)": Case(sfb.Scale, {"scale": -2.5}),
    "AffineScalar": Case(sfb.AffineScalar, {"shift": 0.5, "scale": 2.0}),
    "SinhArcsinh": Case(sfb.SinhArcsinh, {"skewness": 0.3, "tailweight": 1.5}),
    "KumaraswamyCDF": Case(sfb.KumaraswamyCDF, {"concentration1": 2.0, "concentration0": 0.7}),
    "GumbelCDF": Case(sfb.GumbelCDF, {"loc": 0.4, "scale": 1.7}),
    "WeibullCDF": Case(sfb.WeibullCDF, {"scale": 1.3, "concentration": 2.2}),
    "Power": Case(sfb.Power, {"power": 2.5}),
    "SignedPower": Case(sfb.SignedPower, {"power": 3.0}),
    "SignedPower(root)": Case(sfb.SignedPower, {"power": 0.4}),
    "PReLU": Case(sfb.PReLU, {"alpha": 0.2}),
    "Softsign": Case(sfb.Softsign),
    "Sinh": Case(sfb.Sinh),
    "Expm1": Case(sfb.Expm1),
    "user:cubic": Case(user.cubic),
    "user:logit": Case(user.logit),
    "user:x_exp_x": Case(user.x_exp_x),
    "user:scaled_asinh": Case(user.scaled_asinh, {"a": 2.0, "b": 0.5}),
}
