"""`symflow demo`: declare bijectors, let symflow derive, verify and compile them, use them,
fuse a chain, reproduce the TFP walkthrough and train its flow with compiled kernels.

Each step prints what it did and how long it took, so a first run (cold cache: SymPy
derivations, mpmath checks, Numba compilation) and a second run (warm cache) can be
compared.
"""

from __future__ import annotations

import time

import numpy as np
import sympy as sp

import symflow as sf
from symflow import bijectors as sfb
from symflow import flows, walkthrough

__all__ = ["run_demo"]


@sf.bijector
def sinh_arcsinh(x, skewness: sf.Real, tailweight: sf.Positive):
    """y = sinh((asinh(x) + skewness) * tailweight): the plain sinh-arcsinh map."""
    return sp.sinh((sp.asinh(x) + skewness) * tailweight)


def _step(text: str, t0: float) -> float:
    now = time.perf_counter()
    print(f"  [{now - t0:6.2f} s] {text}")
    return now


def run_demo() -> None:
    """Runs the demo; prints everything it shows."""
    t0 = time.perf_counter()
    print("1. Declare: only the forward map.")
    print(f"   y = {sinh_arcsinh.forward_expr}")
    entry = sinh_arcsinh.compile()
    t = _step("derived, verified and compiled (or loaded from the cache)", t0)
    print(f"   inverse: x = {sinh_arcsinh.inverse_expr}")
    print(f"   fldj:    {sinh_arcsinh.forward_log_det_jacobian_expr}")
    print("   " + str(sinh_arcsinh.report()).replace("\n", "\n   "))
    print(f"   kernels: {entry.path}")

    print("\n2. Bind parameters and run the kernels on numpy arrays.")
    b = sinh_arcsinh(skewness=0.3, tailweight=1.5)
    rng = np.random.default_rng(0)
    z = rng.standard_normal(1_000_000)
    y = b.forward(z)
    t = _step("forward on 10^6 standard-normal samples (first call loads kernels)", t)
    y = b.forward(z)
    t = _step("forward again (compiled, cached)", t)
    back = b.inverse(y)
    t = _step(f"inverse; max |inverse(forward(z)) - z| = {np.max(np.abs(back - z)):.2e}", t)
    log_prob = -0.5 * back**2 - 0.5 * np.log(2 * np.pi) + b.inverse_log_det_jacobian(y, 0)
    t = _step(f"log-density of the pushed samples: mean {log_prob.mean():.4f}", t)
    print(f"   sample mean {y.mean():.4f}, std {y.std():.4f}, skew>0: {np.mean(y**3) > 0}")

    print("\n3. A chain of catalog bijectors (TFP names) runs as one fused kernel.")
    chain = sfb.Chain([sfb.Exp(), b, sfb.AffineScalar(shift=0.5, scale=2.0)])
    y, ldj = chain.forward_and_log_det(z)
    t = _step("Chain([Exp, SinhArcsinh, AffineScalar]) on 10^6 points, log-det too", t)
    y, ldj = chain.forward_and_log_det(z)
    t = _step(f"again: one kernel call; module {chain.fused_kernels().module.__file__}", t)

    print("\n4. The TensorFlow Probability walkthrough, every number through symflow, and its")
    print("   tiny flow trained by compiled maximum likelihood (sf.fit, 30 epochs here;")
    print("   examples/train_tiny_flow.py runs all 100 and draws the picture).")
    walkthrough.main(train_epochs=30)
    t = _step("walkthrough done", t)

    print("\n5. A masked autoregressive flow whose transformer is the sinh_arcsinh declared in")
    print("   step 1 (parameters from MADE networks), trained on two moons for 10 epochs;")
    print("   examples/two_moons.py trains a bigger one and draws the learned density.")
    rng = np.random.default_rng(0)
    angle, upper = rng.uniform(0.0, np.pi, 6000), rng.integers(0, 2, 6000).astype(bool)
    moons = np.stack(
        [np.where(upper, np.cos(angle), 1 - np.cos(angle)) * 2 - 1,
         np.where(upper, np.sin(angle), 0.5 - np.sin(angle)) * 2 - 0.5], axis=1,
    ) + 0.15 * rng.standard_normal((6000, 2))  # fmt: skip
    maf = flows.masked_autoregressive_flow(2, sinh_arcsinh, layers=3, hidden_units=(16, 16))
    before = -maf.log_prob(moons[5000:]).mean()
    fitted = sf.fit(maf, moons[:5000], epochs=10, batch_size=128, optimizer=sf.Adam(3e-3),
                    progress=False)  # fmt: skip
    after = -fitted.distribution.log_prob(moons[5000:]).mean()
    t = _step(f"held-out NLL {before:.3f} -> {after:.3f} (compile {fitted.compile_seconds:.1f} s, "
              f"training {fitted.seconds:.2f} s)", t)  # fmt: skip

    print("\n6. Errors say what is wrong.")
    try:

        @sf.bijector
        def square(x):
            return x**2

        square.compile()
    except sf.NotInvertibleError as err:
        print(f"   NotInvertibleError: {err}")
    try:
        sinh_arcsinh(skewness=0.0, tailweight=-1.5)
    except sf.ConstraintError as err:
        print(f"   ConstraintError: {err}")
    _step("done", t)
