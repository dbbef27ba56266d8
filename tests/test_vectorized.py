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

import numba
import numpy as np
import pytest
from vm_support import uncached

from symflow import bijectors as sfb

VECTOR = re.compile(r"<\d+ x double>")


def _vectorized(kernel) -> bool:
    return any(VECTOR.search(kernel.inspect_llvm(sig)) for sig in kernel.signatures)


def _compiled_afresh(module, kernel: str, x: np.ndarray, params, n_out: int):
    """`kernel` of `module` compiled from its text (not the cache) and run once on `x`.

    Fused chain modules compile with their loops interleaved, as the runtime does.
    """
    fn = uncached(module, tuned=module.__name__.rpartition(".")[2].startswith("Chain_"))[kernel]
    flat = [np.asarray(p, dtype=np.float64).reshape(-1) for p in params]
    fn(x, *flat, np.empty((n_out, x.shape[0]), dtype=x.dtype))
    return fn


@pytest.fixture(scope="module")
def chain():
    """Issue 6's chain: Exp(SinhArcsinh(0.3, 1.5)(AffineScalar(0.5, 2)(z)))."""
    return sfb.Chain([sfb.Exp(), sfb.SinhArcsinh(0.3, 1.5), sfb.AffineScalar(0.5, 2.0)])


@pytest.mark.parametrize("kernel", ["forward", "forward_and_log_det", "inverse_and_log_det"])
def test_fused_chain_kernels_vectorize(chain, kernel):
    z = np.linspace(-3.0, 3.0, 101)
    x = chain.forward(z) if kernel.startswith("inverse") else z
    getattr(chain, kernel)(x)  # generates the module through the public path
    fused = chain.fused_kernels()
    n_out = 2 if kernel.endswith("log_det") else 1
    fn = _compiled_afresh(fused.module, kernel, x, fused.arrays, n_out)
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
    params = [p.reshape(-1) for p in b._param_list]
    fn = _compiled_afresh(b.module, "forward_and_log_det", x, params, 2)
    assert _vectorized(fn)


def test_float32_kernels_vectorize_too(chain):
    # The float64 kernels take float32 elements too (where float32 compute was refused):
    # widened to float64, computed, and narrowed on store, in one vectorized loop.
    z = np.linspace(-3.0, 3.0, 101, dtype=np.float32)
    y, ldj = chain.forward_and_log_det(z)
    assert y.dtype == np.float32 and ldj.dtype == np.float32
    fused = chain.fused_kernels()
    fn = _compiled_afresh(fused.module, "forward_and_log_det", z, fused.arrays, 2)
    assert VECTOR.search(fn.inspect_llvm(fn.signatures[0]))


@pytest.mark.parametrize("kernel", ["forward_and_log_det_f32", "inverse_and_log_det_f32"])
def test_fused_float32_variants_vectorize_with_eight_lanes(chain, kernel):
    fused = chain.fused_kernels()
    assert kernel.removesuffix("_f32") in fused.module.FLOAT32_KERNELS
    z = np.linspace(0.5, 3.0, 64, dtype=np.float32)
    fn = _compiled_afresh(fused.module, kernel, z, fused.arrays, 2)
    ir = fn.inspect_llvm(fn.signatures[0])
    assert re.search(r"<8 x float>", ir) and not VECTOR.search(ir)


def test_vectorized_results_match_the_scalar_path_on_every_lane(chain):
    # Odd lengths and a few non-finite lanes: the vector body, its remainder loop and the
    # selects that handle special values must agree with one element at a time.
    z = np.random.default_rng(3).standard_normal(1001)
    z[[5, 500, 999]] = [0.0, -0.0, 1e-300]
    y, ldj = chain.forward_and_log_det(z)
    one = [chain.forward_and_log_det(z[i : i + 1]) for i in range(0, 1001, 97)]
    for k, (yi, li) in zip(range(0, 1001, 97), one, strict=True):
        assert y[k] == yi[0] and ldj[k] == li[0]


def _vector_loads_per_iteration(ir: str) -> int:
    """Loads of a `<4 x double>` in the first vectorized loop body of `ir`."""
    body = ir[ir.index("vector.body") :]
    body = body[: body.index("br i1")]
    return len(re.findall(r"load <4 x double>", body))


def test_kernels_interleave_and_user_code_is_left_alone(chain):
    # symflow compiles its fused kernels with LLVM's loop interleaving forced to 4 (four
    # vectors in flight, symflow.runtime.tuning) and puts LLVM's default back afterwards: a
    # user's loop of the same maths compiled next is interleaved by LLVM's own choice (1).
    z = np.linspace(-3.0, 3.0, 101)
    chain.forward(z)
    fused = chain.fused_kernels()
    fn = _compiled_afresh(fused.module, "forward", z, fused.arrays, 1)
    assert _vector_loads_per_iteration(fn.inspect_llvm(fn.signatures[0])) == 4

    exp, sinh, asinh = (getattr(fused.module, f) for f in ("_sf_exp", "_sf_sinh", "_sf_asinh"))

    @numba.njit
    def users_loop(x, out):
        for i in range(x.shape[0]):
            out[i] = exp(sinh(asinh(x[i])))

    users_loop(z, np.empty_like(z))
    assert _vector_loads_per_iteration(users_loop.inspect_llvm(users_loop.signatures[0])) == 1
