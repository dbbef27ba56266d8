"""Every catalog entry at the exact ends of its domain and codomain: the limit, or a clear error.

Inputs are each end (0, 1, -1, ±inf, -1/e, ...) and the float next to it inside, for the
case's parameters and the parameter sets drawn from each declared constraint
(`parameter_sets`). A returned value is never nan; at an exact end it is the limit there,
computed in mpmath from the declared forward map alone: f and log|f'| (f' by SymPy's
derivative, lambdified in mpmath) at points 10**-300 and 10**-3000 from a finite end, or
±10**300 and ±10**3000 for an infinite one (the log-det at ±10**30 and ±10**300 with
twice the exponent's digits, where a derivative's terms cancel). Values that
settle give the limit; values that keep moving give ±inf. The inverse at a codomain end is
the matching domain end, and its log-det is minus the forward log-det's limit there. An
input may instead raise a `SymflowError` whose message names the map (issue 19, item 1).
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import sympy as sp
from catalog import CASES

from symflow.errors import SymflowError
from symflow.symbolic.numeric import mp_function, parameter_sets

NEAR, NEARER = 300, 3000


def _psets(case):
    sets = [case.params]
    for p in parameter_sets(case.declared.spec):
        p = {**case.params, **p} if case.params else p
        if p not in sets:
            sets.append(p)
    return sets[:4]


def _limit(fn, end: float, inward: int, cancels: bool = False) -> float:
    """The float limit of mpmath function `fn` at `end` from the inside. `cancels`: fn
    is a derivative's log, whose terms at an infinite end (1/(1+x) - x/(1+x)**2 = 1/x**2)
    cancel: it is evaluated at ±10**30 and ±10**300 with twice the exponent's digits."""
    values = []
    finite = math.isfinite(end)
    small = cancels and not finite
    for k in (NEAR // 10, NEARER // 10) if small else (NEAR, NEARER):
        # digits to resolve the point (a finite end's neighbour)
        with mpmath.workdps(2 * k + 50 if small else k + 40 if finite and end != 0 else 50):
            t = mpmath.mpf(10) ** -k
            point = mpmath.mpf(end) + inward * t if math.isfinite(end) else inward * -1 / t
            try:
                v = fn(point)
            except (ValueError, ZeroDivisionError, OverflowError):
                return math.nan
            v = mpmath.re(v) if isinstance(v, mpmath.mpc) else v
            values.append(v)
    near, nearer = values
    if abs(nearer - near) <= mpmath.mpf(10) ** -12 * max(1, abs(nearer)):
        return float(nearer)
    return math.copysign(math.inf, float(nearer - near))


def _run(b, kernel: str, v: float):
    fn = getattr(b, kernel)
    arr = np.array([v])
    return float((fn(arr, event_ndims=0) if "log_det" in kernel else fn(arr))[0])


def _inside(end: float, inward: int) -> float:
    return float(np.nextafter(end, inward * math.inf))


@pytest.mark.parametrize("name", sorted(CASES))
def test_ends_give_the_limit_or_a_clear_error(name):
    case = CASES[name]
    spec = case.declared.spec
    x = spec.x
    fprime = sp.diff(spec.forward_expr, x).replace(sp.DiracDelta, lambda *a: sp.S.Zero)
    raised, nans, wrong = [], [], []
    for pset in _psets(case):
        b = case.declared(**pset)
        pv = [mpmath.mpf(float(pset[p])) for p in spec.parameter_names]
        f_mp = mp_function([x, *spec.parameter_symbols], spec.forward_expr)
        fp_mp = mp_function([x, *spec.parameter_symbols], fprime)

        def f(t, pv=pv, f_mp=f_mp):
            return f_mp(t, *pv)

        def fldj(t, pv=pv, fp_mp=fp_mp):
            return mpmath.log(abs(fp_mp(t, *pv)))

        domain = (spec.domain.lo_float, spec.domain.hi_float)
        checks = []  # (kernel, input, limit at an exact end or None for a neighbour)
        for end, inward in ((domain[0], 1), (domain[1], -1)):
            f_end, ldj_end = _limit(f, end, inward), _limit(fldj, end, inward, cancels=True)
            checks += [("forward", end, f_end), ("forward_log_det_jacobian", end, ldj_end)]
            checks += [("forward", _inside(end, inward), None)]
            checks += [("forward_log_det_jacobian", _inside(end, inward), None)]
            # the codomain end this domain end maps to, with f's direction there
            other = domain[1] if inward == 1 else domain[0]
            f_other = _limit(f, other, -inward)
            y_inward = 1 if f_end < f_other else -1
            checks += [("inverse", f_end, end), ("inverse_log_det_jacobian", f_end, -ldj_end)]
            if not math.isnan(f_end):
                checks += [("inverse", _inside(f_end, y_inward), None)]
                checks += [("inverse_log_det_jacobian", _inside(f_end, y_inward), None)]
        for kernel, v, limit in checks:
            if math.isnan(v):
                continue
            try:
                got = _run(b, kernel, v)
            except SymflowError as err:
                assert spec.name in str(err), f"{kernel}({v!r}): {err} does not name the map"
                raised.append((kernel, v, pset, type(err).__name__))
                continue
            if math.isnan(got):
                nans.append((kernel, v, pset))
            elif limit is not None and not math.isnan(limit):
                ok = got == limit or (
                    math.isfinite(limit) and abs(got - limit) <= 1e-7 * max(1.0, abs(limit))
                )
                if not ok:
                    wrong.append((kernel, v, pset, got, limit))
    assert not nans, f"{name}: nan at {nans}"
    assert not wrong, f"{name}: (kernel, input, params, got, limit) {wrong}"
