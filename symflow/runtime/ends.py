"""Values at the exact ends of a domain or codomain: the limit there, never a silent nan.

An input exactly at a finite end of the domain or codomain (0, 1, -1/e) or at an infinite
one (±inf) is a valid input whose value is the limit there (`Exp().inverse(0.0)` is -inf).
A kernel's formula evaluated at the end itself can give nan (0 * inf in
`(1 - c) * log(x)`, inf - inf, inf / inf), so a nan at a valid input is repaired here, off
the hot path: the runtime looks for nan only with one reduction over the outputs, and this
module runs only when it found one.

The limit is read off the same kernel at points approaching the end along a geometric
ladder of floats (distance to the end multiplied by 2**8 per rung, starting one float away):
with d1, d2 the differences of the nearest three finite values, a ratio d1 / d2 below 0.9
means the values converge (a power law |v - L| ~ t**a gives 2**(-8a)) and the limit is
Aitken's extrapolation v1 + d1 * r / (1 - r); a ratio of 0.9 or more means they diverge
(log t gives 1, t**-a more) and the limit is ±inf in the direction they move; an infinite
value at the rung nearest the end is that limit. Differences within a few ulps mean the
values have settled: the nearest one is the limit. That is for the log-dets; the value
itself at an end is the end of the output's interval the map approaches there (a monotone
bijection maps ends to ends), whatever the formula gave. A nan elsewhere (a formula that
overflows inside the interval) is not guessed at: `NonFiniteResultError` names the input.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from symflow.errors import NonFiniteResultError

__all__ = ["end_limit", "ladder", "repair_ends"]

_STEP = 2.0**8


def ladder(end: float, inward: float, rungs: int = 12) -> np.ndarray:
    """Floats approaching `end` from the inside (`inward` = +1 or -1), nearest first."""
    if math.isinf(end):
        start = math.copysign(np.finfo(np.float64).max, end)
        return np.array([start / _STEP**k for k in range(rungs)])
    first = float(np.nextafter(end, inward * math.inf))
    gap = abs(first - end)
    points = [end + inward * gap * _STEP**k for k in range(rungs)]
    return np.array([p for p in points if math.isfinite(p)])


def end_limit(values: np.ndarray) -> float:
    """The limit of a quantity from its values on a `ladder` (nearest the end first)."""
    finite = [float(v) for v in values if not math.isnan(v)]
    if not finite:
        return math.nan
    if math.isinf(finite[0]):
        return finite[0]
    finite = [v for v in finite if math.isfinite(v)]
    if len(finite) < 3:
        return finite[0] if finite else math.nan
    v1, v2, v3 = finite[:3]
    d1, d2 = v1 - v2, v2 - v3
    if abs(d1) <= 4 * math.ulp(v1):
        return v1
    if d2 == 0:
        return math.copysign(math.inf, d1)
    r = d1 / d2
    if 0 <= r < 0.9:
        return v1 + d1 * r / (1 - r)
    return math.copysign(math.inf, d1)


def repair_ends(
    owner: str,
    kernel: str,
    flat: np.ndarray,
    params: list[np.ndarray],
    out: np.ndarray,
    ends: Callable[[list[float]], tuple[float, float]],
    out_ends: Callable[[list[float]], tuple[float, float]],
    evaluate: Callable[[np.ndarray, list[np.ndarray]], np.ndarray],
    cache: dict | None = None,
) -> None:
    """Gives each input exactly on an end of its interval the limit there, in place.

    Only rows with a non-finite output are looked at. At an exact end, the value output
    (row 0 of `forward`, `inverse` and the `*_and_log_det` kernels) is the end of the
    output's interval that the map approaches there (a monotone bijection maps an end to
    an end: read off the kernel's direction on the ladder), replacing whatever the
    formula gave, a wrong-signed infinity included; a log-det output that is nan gets the
    ladder's limit (`end_limit`). Inside the interval an infinite output is an overflow
    and stays; a nan is an error.

    Args:
        owner: the bijector's name, for messages.
        kernel: the kernel that produced `out` (n_out, n) from `flat` (n,).
        params: the kernel's flattened parameters (length 1 or n each).
        ends: parameter values of one element → (lo, hi) of the input's interval.
        out_ends: the same → (lo, hi) of the value output's interval.
        evaluate: (points, parameters as 1-element arrays) → the kernel's float64 output.
        cache: the limits found, by (input, *parameters), kept across calls of one kernel.

    Raises:
        NonFiniteResultError: for a nan at an input that is no end, or at an end whose
            values do not settle (no limit).
    """
    has_value = not kernel.endswith("log_det_jacobian")
    rows = ~np.isfinite(out).all(axis=0) & ~np.isnan(flat)
    if not rows.any():
        return
    scalar = all(p.shape[0] == 1 for p in params)
    cache = {} if cache is None else cache

    def limits(v: float, pvals: list[float], lo: float) -> np.ndarray:
        key = (v, *pvals)
        found = cache.get(key)
        if found is None:
            probes = ladder(v, 1.0 if v == lo else -1.0)
            values = evaluate(probes, [np.array([p]) for p in pvals])
            found = np.array([end_limit(values[k]) for k in range(values.shape[0])])
            if has_value:
                found[0] = _end_reached(values[0], out_ends(pvals))
            if len(cache) >= 1024:  # per-element parameters: keep the cache bounded
                cache.clear()
            cache[key] = found
        return found

    if scalar:
        pvals = [float(p[0]) for p in params]
        lo, hi = ends(pvals)
        groups = [(v, pvals, lo, rows & (flat == v)) for v in {lo, hi}]
        inside = rows & (flat != lo) & (flat != hi)
    else:
        groups, inside = [], np.zeros_like(rows)
        for i in np.flatnonzero(rows):
            pv = [float(p[i]) if p.shape[0] > 1 else float(p[0]) for p in params]
            lo, hi = ends(pv)
            v = float(flat[i])
            if v in (lo, hi):
                mask = np.zeros_like(rows)
                mask[i] = True
                groups.append((v, pv, lo, mask))
            else:
                inside[i] = True
    nan_inside = inside & np.isnan(out).any(axis=0)
    if nan_inside.any():
        i = int(np.flatnonzero(nan_inside)[0])
        pv = [float(p[i if p.shape[0] > 1 else 0]) for p in params]
        _raise(owner, kernel, float(flat[i]), i, pv, "lies inside the interval (the formula "
               "overflowed)")  # fmt: skip
    for v, pv, lo, mask in groups:
        if not mask.any():
            continue
        found = limits(v, pv, lo)
        cols = np.flatnonzero(mask)
        if has_value and not math.isnan(found[0]):
            out[0, cols] = found[0]
        for k in range(1 if has_value else 0, out.shape[0]):
            part = out[k, cols]
            out[k, cols] = np.where(np.isnan(part), found[k], part)
        if np.isnan(out[:, cols]).any():
            _raise(owner, kernel, v, int(cols[0]), pv, "is an end of the interval with no "
                   "limit found")  # fmt: skip


def _end_reached(values: np.ndarray, interval: tuple[float, float]) -> float:
    """The end of `interval` a monotone map approaches, from its values on a ladder."""
    lo, hi = interval
    finite = [float(v) for v in values if math.isfinite(v)]
    if len(finite) >= 2 and finite[0] != finite[1]:
        return hi if finite[0] > finite[1] else lo
    near = finite[0] if finite else float(values[0])
    if math.isnan(near):
        return math.nan
    if math.isinf(near):
        return near if near in (lo, hi) else math.nan
    return lo if abs(near - lo) <= abs(near - hi) else hi


def _raise(owner, kernel, v, i, pvals, why) -> None:
    raise NonFiniteResultError(
        f"{owner}.{kernel}: no finite or infinite value at input {v!r} (flat index {i}, "
        f"parameters {pvals}): it {why}. Move the input inside the interval, or report the "
        "map and the input: symflow returns the limit at an end and a number inside."
    )
