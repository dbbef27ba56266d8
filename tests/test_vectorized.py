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
from vm_support import FOREIGN_CPUS, MIN_LANES, foreign_ir, loop_source, uncached, vector_lanes

from symflow import bijectors as sfb
from symflow.runtime import tuning

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


def _check_float32_variant(ir: str, float64_ir: str) -> None:
    # float32 throughout, and twice the float64 kernel's lanes (the point of the variant):
    # 8 vs 4 with AVX2, 16 vs 8 on Zen 4/5; 4 lanes would mean an int64 vector set the width
    assert not VECTOR.search(ir) and "fpext" not in ir
    assert vector_lanes(ir, "float") >= max(MIN_LANES, 2 * vector_lanes(float64_ir, "double"))


@pytest.mark.parametrize("kernel", ["forward_and_log_det_f32", "inverse_and_log_det_f32"])
def test_fused_float32_variants_vectorize_in_float32(chain, kernel):
    fused = chain.fused_kernels()
    assert kernel.removesuffix("_f32") in fused.module.FLOAT32_KERNELS
    z = np.linspace(0.5, 3.0, 64, dtype=np.float32)
    fn = _compiled_afresh(fused.module, kernel, z, fused.arrays, 2)
    wide = _compiled_afresh(
        fused.module, kernel.removesuffix("_f32"), z.astype(float), fused.arrays, 2
    )
    _check_float32_variant(
        fn.inspect_llvm(fn.signatures[0]), wide.inspect_llvm(wide.signatures[0])
    )


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
    """Vector loads of doubles (any width) in the first vectorized loop body of `ir`."""
    body = ir[ir.index("vector.body") :]
    body = body[: body.index("br i1")]
    return len(re.findall(r"load <\d+ x double>", body))


def test_kernels_interleave_and_user_code_is_left_alone(chain, monkeypatch):
    # symflow compiles its fused kernels with LLVM's loop interleaving forced to 4 (four
    # vectors of x in flight, symflow.runtime.tuning) and puts LLVM's default back after: a
    # user's loop compiled next is interleaved by LLVM's own choice, whatever the CPU makes
    # of it, the same choice as for the same loop compiled before symflow's.
    z = np.linspace(-3.0, 3.0, 101)
    chain.forward(z)
    fused = chain.fused_kernels()
    exp, sinh, asinh = (getattr(fused.module, f) for f in ("_sf_exp", "_sf_sinh", "_sf_asinh"))

    def users_loop():
        @numba.njit
        def loop(x, out):
            for i in range(x.shape[0]):
                out[i] = exp(sinh(asinh(x[i])))

        loop(z, np.empty_like(z))
        return _vector_loads_per_iteration(loop.inspect_llvm(loop.signatures[0]))

    before = users_loop()
    settings, set_option = [], tuning._set
    monkeypatch.setattr(tuning, "_set", lambda n: (settings.append(n), set_option(n)))
    fn = _compiled_afresh(fused.module, "forward", z, fused.arrays, 1)
    # set once for the kernel (the helpers compile within it), restored once, nothing held
    assert settings == [tuning.INTERLEAVE, 0] and tuning._depth == 0
    assert _vector_loads_per_iteration(fn.inspect_llvm(fn.signatures[0])) == tuning.INTERLEAVE
    assert users_loop() == before
    assert settings == [tuning.INTERLEAVE, 0]


_F32_LOOP = "(float32[::1], float32[::1])"


@pytest.mark.parametrize("cpu", FOREIGN_CPUS)
def test_vectorized_on_avx512_targets(chain, cpu):
    # What the tests above assert also holds in IR compiled for AVX-512 CPUs (compiled in a
    # fresh process for that CPU, not run): Zen 4 vectorizes float32 with 16 lanes and
    # float64 with 8, where the tests used to expect AVX2's 8 and 4.
    fused = chain.fused_kernels()
    chain_args = ", ".join(["float64[::1]"] * (1 + len(fused.arrays)))
    f32_args = ", ".join(["float32[::1]"] + ["float64[::1]"] * len(fused.arrays))
    items = [
        {"key": n, "path": loop_source(n, "float32"), "function": "_loop"}
        | {"signature": _F32_LOOP, "tuned": False}
        for n in ("_sf_exp_f32", "_sf_log_f32")
    ] + [
        {"key": "sinh_f32", "path": sfb.Sinh().module.__file__, "function": "forward_f32"}
        | {"signature": "(float32[::1], float32[:, ::1])", "tuned": False},
        {"key": "forward", "path": fused.module.__file__, "function": "forward"}
        | {"signature": f"({chain_args}, float64[:, ::1])", "tuned": True},
        {"key": "forward_and_log_det", "path": fused.module.__file__}
        | {"function": "forward_and_log_det", "signature": f"({chain_args}, float64[:, ::1])"}
        | {"tuned": True},
        {"key": "forward_and_log_det_f32", "path": fused.module.__file__}
        | {"function": "forward_and_log_det_f32", "signature": f"({f32_args}, float32[:, ::1])"}
        | {"tuned": True},
    ]
    ir = foreign_ir(cpu, items)
    for key in ("_sf_exp_f32", "_sf_log_f32", "sinh_f32"):
        assert vector_lanes(ir[key], "float") >= MIN_LANES and "double" not in ir[key], key
    assert vector_lanes(ir["forward"], "double") >= 4
    assert _vector_loads_per_iteration(ir["forward"]) == tuning.INTERLEAVE
    _check_float32_variant(ir["forward_and_log_det_f32"], ir["forward_and_log_det"])
