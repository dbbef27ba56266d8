"""Which precision a float32 input is computed in: measured per kernel, not assumed.

A generated module has, for each kernel whose functions all have float32 versions, a
`<kernel>_f32` variant computing in float32: twice the SIMD lanes of float64 and half the
memory traffic. The alternative is the float64 kernel with its result rounded to float32
at the store, which is within half a float32 ULP of the truth plus the float64 kernel's own
error (at most 1e-12 relative at well-conditioned points, `tests/test_accuracy.py`), i.e.
as accurate as float32 output can be. Float32 arithmetic is not always good enough: a
derived expression may cancel, or a parameter rounded to float32 may shift a result by
many ULPs. So before a float32 variant is used, `float32_choice` measures it.

The measurement, per (module, kernel, parameter values), cached for the process:
    points  a float32 grid over the domain (0, ±1e-45 … ±3.4e38 log-spaced, and
            -20 … 20 evenly; for a bounded or half-bounded domain the same offsets from
            its ends, and the float32 neighbours of the ends); for an inverse-side kernel,
            the float32 images of those points under the float64 forward kernel.
    truth   the float64 kernel at the same points: its error (1e-12) is 1e-5 float32 ULP.
    error   |f32 result - truth| in float32 ULPs of the truth; for log-dets (and
            log-densities) in ULPs of max(1, |truth|), as issue 5 measures log-dets.
    bound   FLOAT32_MAX_ULP · max(1, cond), cond the relative condition number of the
            kernel at the point (a central difference of the float64 kernel): a float32
            input already carries half an ULP of uncertainty, which the map amplifies by
            cond, so no float32 computation can do better at an ill-conditioned point.
    choice  float32 if every point whose truth is finite in float32 is within its bound
            and finite; else float64 (and the reason is kept).

Parameters given per element are measured at three of their elements (first, middle,
last); all three must pass.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType

import numpy as np

__all__ = ["FLOAT32_MAX_ULP", "Float32Choice", "float32_choice", "float32_grid"]

#: The largest error (float32 ULPs, at a well-conditioned point) a float32 variant may have.
FLOAT32_MAX_ULP = 4.0
_TINY32 = float(np.finfo(np.float32).tiny)
_MAX32 = float(np.finfo(np.float32).max)
#: Relative step of the central difference that estimates condition numbers.
_STEP = 2.0**-20
_CACHE: dict[tuple, Float32Choice] = {}
_CACHE_SIZE = 4096


@dataclass(frozen=True)
class Float32Choice:
    """The measured choice for one kernel at one set of parameter values.

    Attributes:
        kernel: the kernel's name ('forward', 'inverse_and_log_det', ...).
        float32: whether float32 inputs are computed in float32 (else in float64).
        max_ulp: the float32 variant's largest error over well-conditioned points (cond
            at most 1), in float32 ULPs; nan when there is no variant.
        points: how many points were compared.
        reason: why, in words (the worst point when float64 was chosen).
    """

    kernel: str
    float32: bool
    max_ulp: float
    points: int
    reason: str

    def __str__(self) -> str:
        where = "float32" if self.float32 else "float64"
        return f"{self.kernel}: computes in {where} ({self.reason})"


def float32_grid(lo: float, hi: float) -> np.ndarray:
    """Float32 points strictly inside (lo, hi) and at its ends' neighbours; sorted, unique."""
    mags = np.concatenate([10.0 ** np.linspace(-45.0, 38.5, 168), np.linspace(0.05, 20.0, 80)])
    if math.isinf(lo) and math.isinf(hi):
        pts = np.concatenate([-mags, [0.0], mags])
    elif math.isinf(hi):
        pts = np.concatenate([lo + mags, [np.nextafter(np.float32(lo), np.float32(np.inf))]])
    elif math.isinf(lo):
        pts = np.concatenate([hi - mags, [np.nextafter(np.float32(hi), np.float32(-np.inf))]])
    else:
        width = hi - lo
        frac = np.concatenate([10.0 ** np.linspace(-45.0, -0.31, 120), np.linspace(0, 1, 81)])
        pts = np.concatenate(
            [
                lo + width * frac,
                hi - width * frac,
                [np.nextafter(np.float32(lo), np.float32(hi))],
                [np.nextafter(np.float32(hi), np.float32(lo))],
            ]
        )
    with np.errstate(over="ignore"):
        pts = np.asarray(pts, dtype=np.float64).astype(np.float32)
    pts = pts[np.isfinite(pts) & (pts > lo) & (pts < hi)]
    return np.unique(pts)


def float32_choice(
    module: ModuleType,
    kernel: str,
    n_out: int,
    params: Sequence[np.ndarray],
    domain: tuple[float, float],
) -> Float32Choice:
    """Whether `module`'s `kernel` computes float32 inputs in float32, at these parameters.

    Args:
        module: a generated module (single bijector or fused chain).
        kernel: a kernel name; without a `<kernel>_f32` variant the answer is float64.
        n_out: the number of rows the kernel writes.
        params: the flat parameter arrays the kernel takes (length 1 or per element).
        domain: (lo, hi) of the module's x.
    """
    if kernel not in getattr(module, "FLOAT32_KERNELS", ()):
        return Float32Choice(kernel, False, math.nan, 0, "no float32 variant")
    sets = _parameter_sets(params)
    key = (module.__name__, kernel, tuple(tuple(s) for s in sets))
    choice = _CACHE.get(key)
    if choice is None:
        choices = [_measure(module, kernel, n_out, s, domain) for s in sets]
        failed = [c for c in choices if not c.float32]
        choice = failed[0] if failed else max(choices, key=lambda c: c.max_ulp)
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.clear()
        _CACHE[key] = choice
    return choice


def _parameter_sets(params: Sequence[np.ndarray]) -> list[list[float]]:
    n = max((p.shape[0] for p in params), default=1)
    picks = sorted({0, n // 2, n - 1})
    return [[float(p[i if p.shape[0] > 1 else 0]) for p in params] for i in picks]


def _is_inverse_side(kernel: str) -> bool:
    return kernel.startswith("inverse") or kernel == "log_prob"


def _log_det_rows(kernel: str, n_out: int) -> list[bool]:
    if kernel.endswith("_and_log_det"):
        return [False, True]
    return [kernel.endswith("log_det_jacobian") or kernel == "log_prob"] * n_out


def _run(module: ModuleType, name: str, points: np.ndarray, values: list[float], n_out: int):
    args = [np.array([v]) for v in values]
    out = np.empty((n_out, points.shape[0]), dtype=points.dtype)
    with np.errstate(all="ignore"):
        getattr(module, name)(points, *args, out)
    return out


def _measure(module, kernel, n_out, values, domain) -> Float32Choice:
    x = float32_grid(*domain)
    if _is_inverse_side(kernel):
        y = _run(module, "forward", x.astype(np.float64), values, 1)[0]
        with np.errstate(over="ignore", invalid="ignore"):
            y = y.astype(np.float32)
        points = np.unique(y[np.isfinite(y)])
    else:
        points = x
    wide = points.astype(np.float64)
    truth = _run(module, kernel, wide, values, n_out)
    got = _run(module, kernel + "_f32", points, values, n_out).astype(np.float64)
    up = _run(module, kernel, wide * (1 + _STEP), values, n_out)
    down = _run(module, kernel, wide * (1 - _STEP), values, n_out)
    worst_ratio, worst_text, max_ulp, compared = 0.0, "", 0.0, 0
    for row, log_det in enumerate(_log_det_rows(kernel, n_out)):
        t, g = truth[row], got[row]
        scale = np.maximum(np.abs(t), 1.0) if log_det else np.maximum(np.abs(t), _TINY32)
        with np.errstate(all="ignore"):
            ulp = np.spacing(scale.astype(np.float32)).astype(np.float64)
            error = np.abs(g - t) / ulp
            slope = _difference(up[row], t, down[row])
            cond = np.where(wide != 0, slope / scale, 0.0)
        cond = np.where(np.isfinite(cond), cond, np.inf)
        bound = FLOAT32_MAX_ULP * np.maximum(1.0, cond)
        finite32 = np.isfinite(t) & (np.abs(t) <= _MAX32)
        ratio = np.where(np.isfinite(g), error / bound, np.inf)[finite32]
        compared += int(finite32.sum())
        well = finite32 & (cond <= 1.0) & np.isfinite(g)
        if well.any():
            max_ulp = max(max_ulp, float(error[well].max()))
        if ratio.size and float(ratio.max()) > worst_ratio:
            i = int(np.flatnonzero(finite32)[int(np.argmax(ratio))])
            arg = "y" if _is_inverse_side(kernel) else "x"
            worst_ratio = float(ratio.max())
            worst_text = (
                f"at {arg}={float(points[i]):.9g}{_params_text(values)}: float32 gives "
                f"{g[i]:.9g}, truth {t[i]:.9g} ({error[i]:.3g} ULP, bound {bound[i]:.3g})"
            )
    if worst_ratio <= 1.0:
        reason = f"measured {max_ulp:.2f} float32 ULP at most, over {compared} points"
        return Float32Choice(kernel, True, max_ulp, compared, reason)
    return Float32Choice(kernel, False, max_ulp, compared, f"float32 too inaccurate {worst_text}")


def _difference(up: np.ndarray, mid: np.ndarray, down: np.ndarray) -> np.ndarray:
    """|d out / d ln(input)|: central where both neighbours are finite, else one-sided."""
    central = np.abs(up - down) / (2 * _STEP)
    upper = np.abs(up - mid) / _STEP
    lower = np.abs(mid - down) / _STEP
    ok_up, ok_down = np.isfinite(up), np.isfinite(down)
    return np.where(ok_up & ok_down, central, np.where(ok_up, upper, lower))


def _params_text(values: list[float]) -> str:
    return f" (parameters {', '.join(f'{v:.6g}' for v in values)})" if values else ""
