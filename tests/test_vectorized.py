"""Generated loops vectorize: the point of symflow's own math library (issue 6).

A kernel's loop runs as SIMD code only if LLVM's loop vectorizer accepts it, which it does
only when every function the loop calls was inlined and is branch-free arithmetic. One call
of libm, or one helper too big to inline, leaves the whole loop scalar and 5-10x slower.
These tests compile real generated kernels and look for vector types in their optimized
LLVM IR, so a change to the printer, a helper or a template that breaks vectorization fails
here rather than only in a benchmark.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from symflow import bijectors as sfb

VECTOR = re.compile(r"<\d+ x double>")


def _vectorized(kernel) -> bool:
    return any(VECTOR.search(kernel.inspect_llvm(sig)) for sig in kernel.signatures)


@pytest.fixture(scope="module")
def chain():
    """Issue 6's chain: Exp(SinhArcsinh(0.3, 1.5)(AffineScalar(0.5, 2)(z)))."""
    return sfb.Chain([sfb.Exp(), sfb.SinhArcsinh(0.3, 1.5), sfb.AffineScalar(0.5, 2.0)])


@pytest.mark.parametrize("kernel", ["forward", "forward_and_log_det", "inverse_and_log_det"])
def test_fused_chain_kernels_vectorize(chain, kernel):
    z = np.linspace(-3.0, 3.0, 101)
    x = chain.forward(z) if kernel.startswith("inverse") else z
    getattr(chain, kernel)(x)  # compiles the serial kernel through the public path
    fn = getattr(chain.fused_kernels().module, kernel)
    assert fn.signatures, "the serial kernel was not compiled"
    assert _vectorized(fn), f"fused {kernel} is not vectorized"


@pytest.mark.parametrize(
    "make",
    [sfb.Exp, sfb.Sinh, sfb.Softplus, sfb.Sigmoid, sfb.Tanh, lambda: sfb.SinhArcsinh(0.3, 1.5)],
    ids=["Exp", "Sinh", "Softplus", "Sigmoid", "Tanh", "SinhArcsinh"],
)
def test_single_bijector_kernels_vectorize(make):
    b = make()
    x = np.linspace(0.1, 0.9, 33)
    b.forward_and_log_det(x)
    fn = b.module.forward_and_log_det
    assert fn.signatures and _vectorized(fn)


def test_float32_kernels_vectorize_too(chain):
    # float32 elements are widened to float64, computed, and narrowed on store, in one loop.
    z = np.linspace(-3.0, 3.0, 101, dtype=np.float32)
    y, ldj = chain.forward_and_log_det(z)
    assert y.dtype == np.float32 and ldj.dtype == np.float32
    fn = chain.fused_kernels().module.forward_and_log_det
    sigs = [s for s in fn.signatures if "float32" in str(s[0])]
    assert sigs and VECTOR.search(fn.inspect_llvm(sigs[0]))


def test_vectorized_results_match_the_scalar_path_on_every_lane(chain):
    # Odd lengths and a few non-finite lanes: the vector body, its remainder loop and the
    # selects that handle special values must agree with one element at a time.
    z = np.random.default_rng(3).standard_normal(1001)
    z[[5, 500, 999]] = [0.0, -0.0, 1e-300]
    y, ldj = chain.forward_and_log_det(z)
    one = [chain.forward_and_log_det(z[i : i + 1]) for i in range(0, 1001, 97)]
    for k, (yi, li) in zip(range(0, 1001, 97), one, strict=True):
        assert y[k] == yi[0] and ldj[k] == li[0]
