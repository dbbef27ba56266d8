"""Accuracy and vectorization of the float32 logistic and log-hyperbolic helpers.

Each helper is compiled inside the elementwise loop a kernel runs and evaluated at a few
thousand fixed-seed float32 points across its domain (log-uniform magnitudes down to the
subnormals, uniform points, and the region around each method's switch points), against
mpmath at 60 digits; errors are in float32 ULPs of the correctly rounded truth.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
from vm_support import ulp_error32, vector_loop

from symflow.codegen import vm_logistic32

#: name → (truth, open domain, bound in float32 ULPs: the measured maximum, rounded up to
#: the next half ULP)
CASES = {
    "_sf_softplus_f32": (lambda x: mpmath.log1p(mpmath.exp(x)), (-math.inf, math.inf), 1.5),
    "_sf_log_sigmoid_f32": (lambda x: -mpmath.log1p(mpmath.exp(-x)), (-math.inf, math.inf), 1.5),
    "_sf_sigmoid_f32": (lambda x: 1 / (1 + mpmath.exp(-x)), (-math.inf, math.inf), 2.0),
    "_sf_logit_f32": (lambda p: mpmath.log(p / (1 - p)), (0.0, 1.0), 1.5),
    "_sf_log1mexp_f32": (lambda a: mpmath.log(-mpmath.expm1(-a)), (0.0, math.inf), 1.5),
    "_sf_softplus_inverse_f32": (lambda y: mpmath.log(mpmath.expm1(y)), (0.0, math.inf), 2.0),
    "_sf_logcosh_f32": (lambda x: mpmath.log(mpmath.cosh(x)), (-math.inf, math.inf), 3.0),
    "_sf_logsinh_f32": (lambda x: mpmath.log(mpmath.sinh(x)), (0.0, math.inf), 3.0),
}


def _points(name: str) -> np.ndarray:
    rng = np.random.default_rng(20261124 + sorted(CASES).index(name))
    lo, hi = CASES[name][1]
    mags = 10.0 ** rng.uniform(-45, 2, 1500)
    parts = [mags, rng.uniform(0.0, 5.0, 800), rng.uniform(0.2, 1.7, 600)]
    if hi == 1.0:
        parts.append(1 - 10.0 ** rng.uniform(-7.5, -0.3, 600))
    x = np.concatenate(parts)
    if math.isinf(lo):
        x = np.concatenate([x, -x[::2], [100.0, -100.0, 88.0, -88.0]])
    else:
        x = np.concatenate([x, [90.0, 1e30]])
    x = x.astype(np.float32)
    return x[(x > lo) & (x < hi)]


@pytest.mark.parametrize("name", sorted(CASES), ids=lambda n: n.removeprefix("_sf_"))
def test_accuracy_and_vectorization(name):
    assert name in vm_logistic32.HELPERS
    loop, vectorized = vector_loop(name, "float32")
    assert vectorized
    x = _points(name)
    out = np.empty_like(x)
    loop(x, out)
    assert out.dtype == np.float32
    truth, _, bound = CASES[name]
    with mpmath.workdps(60):
        rows = [
            (ulp_error32(float(y), truth(mpmath.mpf(float(v)))), float(v), float(y))
            for v, y in zip(x, out, strict=True)
        ]
    worst = max(rows)
    assert worst[0] <= bound, f"{name}({worst[1]!r}) = {worst[2]!r}: {worst[0]:.2f} ULP"


@pytest.mark.parametrize(
    ("name", "x", "want"),
    [
        ("_sf_softplus_f32", 100.0, 100.0),
        ("_sf_softplus_f32", -200.0, 0.0),
        ("_sf_sigmoid_f32", -200.0, 0.0),
        ("_sf_sigmoid_f32", 200.0, 1.0),
        ("_sf_logit_f32", 0.0, -math.inf),
        ("_sf_logit_f32", 1.0, math.inf),
        ("_sf_log1mexp_f32", 0.0, -math.inf),
        ("_sf_softplus_inverse_f32", 0.0, -math.inf),
        ("_sf_logcosh_f32", math.inf, math.inf),
        ("_sf_logsinh_f32", 0.0, -math.inf),
        ("_sf_logsinh_f32", math.inf, math.inf),
    ],
)
def test_ends_of_the_domain(name, x, want):
    loop, _ = vector_loop(name, "float32")
    out = np.empty(1, dtype=np.float32)
    with np.errstate(all="ignore"):
        loop(np.array([x], dtype=np.float32), out)
    assert out[0] == want
