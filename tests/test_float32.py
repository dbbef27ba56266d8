"""float32 inputs: float32 kernels are chosen by measurement, and either choice is accurate.

The runtime computes a float32 input in float32 only where `symflow.runtime.float32`
measured the float32 variant within FLOAT32_MAX_ULP·max(1, cond) float32 ULPs of the
float64 kernel. These tests check the outcome against an independent truth: the declared
forward map in mpmath (and its Newton root for the inverse), whichever precision was
chosen, on float32 points spanning the domain.
"""

from __future__ import annotations

import math
import re

import mpmath
import numpy as np
import pytest
import sympy as sp
from catalog import CASES
from vm_support import MIN_LANES, ulp_error32, uncached, vector_lanes

import symflow as sf
from symflow.codegen.printer import Float32UnavailableError, KernelPrinter
from symflow.runtime.float32 import FLOAT32_MAX_ULP, float32_choice, float32_grid
from symflow.symbolic.numeric import mp_function, mp_real

#: Catalog maps whose float32 results are checked (a spread of functions; each costs a few
#: float32 kernel compilations).
CHECKED = ["Exp", "Sigmoid", "Softplus", "SinhArcsinh", "AffineScalar", "Tanh", "Sinh"]
DPS = 200  # float32 points reach 1e-45; f(x) may cancel there (exp(x) - 1)


def test_printer_writes_float32_constants_and_integer_powers():
    x = sp.Symbol("x", real=True)
    p = KernelPrinter(float32=True)
    text = p.print_expr(2 * x**2 + sp.Rational(1, 3) - 1 / x + sp.pi)
    assert "np.float32(2.0)*x**2" in text and "np.float32(1.0)/x" in text
    assert "np.float32(0.3333333333333333)" in text and "np.float32(math.pi)" in text
    assert not re.search(r"(?<![\w.(])\d+\.\d+(?!\))", text.replace("np.float32(", "("))
    assert KernelPrinter().print_expr(2 * x + 1) == "2*x + 1"


def test_printer_refuses_a_function_without_float32_version():
    x = sp.Symbol("x", real=True)
    with pytest.raises(Float32UnavailableError, match="_sf_erfinv"):
        KernelPrinter(float32=True).print_expr(sp.erfinv(x))


def test_module_lists_float32_kernels_and_explains_the_rest():
    text = open(sf.bijectors.NormalCDF.source_path).read()
    assert "FLOAT32_KERNELS = " in text
    assert re.search(r"# float32: .*compute in float64 for float32 inputs \(no float32 ", text)
    sinh = sf.bijectors.Sinh().module
    assert set(sinh.FLOAT32_KERNELS) >= {"forward", "inverse", "forward_and_log_det"}


def test_float32_kernel_vectorizes_in_float32():
    module = uncached(sf.bijectors.Sinh().module)
    x = np.linspace(-3, 3, 16, dtype=np.float32)
    out = np.empty((1, 16), dtype=np.float32)
    fn = module["forward_f32"]
    fn(x, out)
    ir = fn.inspect_llvm(fn.signatures[0])
    assert vector_lanes(ir, "float") >= MIN_LANES  # 8 with AVX2, 16 on Zen 4/5
    assert not re.search(r"<\d+ x double>", ir)


def _cond_forward(f, fp, xm, pv):
    y = mp_real(f(xm, *pv))
    return y, abs(xm * mp_real(fp(xm, *pv))) / max(abs(y), mpmath.mpf(2) ** -126)


def _points(declared, count: int = 90) -> np.ndarray:
    grid = float32_grid(declared.spec.domain.lo_float, declared.spec.domain.hi_float)
    return grid[np.linspace(0, grid.size - 1, min(count, grid.size)).astype(int)]


@pytest.mark.parametrize("name", CHECKED)
def test_float32_results_are_within_a_few_ulp_of_mpmath(name):
    """Forward and inverse of float32 inputs, whichever precision was chosen, against mpmath.

    The bound at a point is FLOAT32_MAX_ULP·max(1, cond), cond the relative condition
    number from the declared map's exact derivative.
    """
    case = CASES[name]
    bound_bijector = case.bind()
    spec = case.declared.spec
    args = [spec.x, *spec.parameter_symbols]
    f = mp_function(args, spec.forward_expr)
    fp = mp_function(args, sp.diff(spec.forward_expr, spec.x))
    pv = [mpmath.mpf(float(bound_bijector.parameters[p])) for p in spec.parameter_names]
    x = _points(case.declared)
    y32 = bound_bijector.forward(x)
    assert y32.dtype == np.float32
    failures = []
    inverse_points = []
    with mpmath.workdps(DPS):
        for xv, got in zip(x.tolist(), y32.tolist(), strict=True):
            truth, cond = _cond_forward(f, fp, mpmath.mpf(xv), pv)
            err = ulp_error32(got, truth)
            if err > FLOAT32_MAX_ULP * max(1.0, float(cond)):
                failures.append(("forward", xv, got, float(truth), err, float(cond)))
            if math.isfinite(got) and spec.domain.lo_float < xv < spec.domain.hi_float:
                inverse_points.append((np.float32(got), xv))
    # inverse at float32 images, truth the root of f(x) = y from the point that made y
    ys = {}
    for yv, xv in inverse_points:
        ys.setdefault(float(yv), xv)
    lo, hi = -math.inf, math.inf
    if hasattr(bound_bijector.module, "codomain_scalar"):
        lo, hi = bound_bijector.module.codomain_scalar(*(float(v) for v in pv))
    ys = {yv: xv for yv, xv in ys.items() if lo < yv < hi}
    yarr = np.array(sorted(ys), dtype=np.float32)
    x32 = bound_bijector.inverse(yarr)
    with mpmath.workdps(DPS):
        for yv, got in zip(yarr.tolist(), x32.tolist(), strict=True):
            root = mpmath.findroot(lambda t, yv=yv: f(t, *pv) - yv, mpmath.mpf(ys[yv]))
            d = mp_real(fp(root, *pv))
            cond = abs(mpmath.mpf(yv) / (d * root)) if root != 0 else 0
            err = ulp_error32(got, root)
            if err > FLOAT32_MAX_ULP * max(1.0, float(cond)):
                failures.append(("inverse", yv, got, float(root), err, float(cond)))
    assert not failures, f"{name}: (kernel, point, got, truth, ULP, cond) {failures[:5]}"


@pytest.mark.parametrize("name", ["Exp", "Sinh", "Softplus", "SinhArcsinh"])
def test_float32_log_det_is_within_a_few_ulp_of_mpmath(name):
    case = CASES[name]
    b = case.bind()
    spec = case.declared.spec
    args = [spec.x, *spec.parameter_symbols]
    d1 = sp.diff(spec.forward_expr, spec.x)
    fp = mp_function(args, d1)
    fpp = mp_function(args, sp.diff(d1, spec.x))
    pv = [mpmath.mpf(float(b.parameters[p])) for p in spec.parameter_names]
    x = _points(case.declared)
    got32 = b.forward_log_det_jacobian(x)
    failures = []
    with mpmath.workdps(DPS):
        for xv, got in zip(x.tolist(), got32.tolist(), strict=True):
            xm = mpmath.mpf(xv)
            d = mp_real(fp(xm, *pv))
            truth = mpmath.log(abs(d))
            if abs(truth) > 3e38:
                continue
            cond = abs(xm * mp_real(fpp(xm, *pv)) / d) / max(1, abs(truth))
            # error in ULPs of max(1, |truth|), the log-det measure
            scale = float(np.spacing(np.float32(max(1.0, abs(float(truth))))))
            err = float(abs(mpmath.mpf(got) - truth)) / scale if math.isfinite(got) else math.inf
            if err > FLOAT32_MAX_ULP * max(1.0, float(cond)):
                failures.append((xv, got, float(truth), err, float(cond)))
    assert not failures, f"{name}: (x, got, truth, ULP, cond) {failures[:5]}"


def test_catalog_maps_compute_in_float32_where_measured_accurate():
    """The point of float32 kernels: the common maps do choose float32 for every kernel."""
    kernels = ("forward", "forward_and_log_det", "inverse_and_log_det")
    for name in ["Exp", "Sigmoid", "Sinh", "Tanh", "AffineScalar"]:
        choices = CASES[name].bind().float32_choices(kernels)
        assert all(c.float32 for c in choices), [str(c) for c in choices]
    assert all(
        c.float32 for c in sf.bijectors.Softplus(hinge_softness=1.0).float32_choices(kernels)
    )


def test_float32_intermediate_overflow_is_caught():
    """Softplus(0.7) computes x/0.7, which overflows float32 for x above 2.4e38: refused."""
    choice = sf.bijectors.Softplus(hinge_softness=0.7).float32_choices(("forward",))[0]
    assert not choice.float32
    assert "float32 gives inf" in choice.reason
    y = sf.bijectors.Softplus(hinge_softness=0.7).forward(np.float32([3e38, 1.0]))
    assert y.dtype == np.float32 and np.isfinite(y).all()


@sf.bijector
def scaled_by_exp(x, a: sf.Real = 0.5):
    """y = x·e^a: with a = 20.3, rounding a to float32 moves e^a by about 20 float32 ULP."""
    return x * sp.exp(a)


def test_float32_is_refused_where_it_loses_accuracy():
    good = scaled_by_exp(a=0.5)  # a exact in float32: e^a within an ULP
    bad = scaled_by_exp(a=20.3)
    assert good.float32_choices(("forward",))[0].float32
    refused = bad.float32_choices(("forward",))[0]
    assert not refused.float32 and "too inaccurate" in refused.reason
    # and the float64 path it falls back to is correctly rounded
    x = np.array([1.5, -3.25, 7.0], dtype=np.float32)
    y = bad.forward(x)
    truth = [mpmath.mpf(float(v)) * mpmath.exp(mpmath.mpf(20.3)) for v in x]
    with mpmath.workdps(50):
        assert max(ulp_error32(g, t) for g, t in zip(y.tolist(), truth, strict=True)) <= 0.5001


def test_per_element_parameters_are_measured_at_several_elements():
    b = sf.bijectors.AffineScalar(shift=np.array([0.5, 1e6, -2.0]), scale=2.0)
    module = b.module
    params = [p.reshape(-1) for p in b._param_list]
    choice = float32_choice(module, "forward", 1, params, (-math.inf, math.inf))
    assert choice.points > 0
    y = b.forward(np.array([1.0, 2.0, 3.0], dtype=np.float32))
    assert y.dtype == np.float32 and np.allclose(y, [2.5, 1e6 + 4, 4.0])


def test_fused_chain_float32_matches_mpmath():
    chain = sf.bijectors.Chain(
        [
            sf.bijectors.Exp(),
            sf.bijectors.SinhArcsinh(skewness=0.3, tailweight=1.5),
            sf.bijectors.AffineScalar(shift=0.5, scale=2.0),
        ]
    )
    x = np.linspace(-4, 4, 33, dtype=np.float32)
    y = chain.forward(x)
    assert y.dtype == np.float32

    def truth(u):
        """Exp ∘ SinhArcsinh(0.3, 1.5) ∘ AffineScalar(0.5, 2), with TFP's multiplier."""
        tailweight = mpmath.mpf(1.5)
        multiplier = 2 / mpmath.sinh(mpmath.asinh(2) * tailweight)
        inner = (mpmath.asinh(0.5 + 2 * u) + mpmath.mpf(0.3)) * tailweight
        return mpmath.exp(mpmath.sinh(inner) * multiplier)

    with mpmath.workdps(50):
        worst = 0.0
        for xv, got in zip(x.tolist(), y.tolist(), strict=True):
            t = truth(mpmath.mpf(xv))
            # relative condition of the whole chain at x, by its derivative
            cond = abs(mpmath.diff(truth, mpmath.mpf(xv)) * xv / t)
            worst = max(worst, ulp_error32(got, t) / max(1.0, float(cond)))
    assert worst <= FLOAT32_MAX_ULP
