"""Independent truth for kernel tests: the *declared* forward map evaluated in mpmath.

Inverse truth is the root of f(x) = y found by Newton's method at high precision from the
grid point x0 that produced y = fl(f(x0)); it never uses symflow's derived inverse.
"""

from __future__ import annotations

import functools
import math

import mpmath
import sympy as sp

from symflow.symbolic.numeric import domain_grid, mp_function, mp_real

DPS = 50
#: Function values are computed at this many digits and then rounded: the declared map may
#: cancel (exp(x) - 1 at x = -1e-100 is 0 at 50 digits), and 400 digits cover every
#: float64 grid point down to 1e-300.
VALUE_DPS = 400


@functools.cache
def _fns(declared):
    spec = declared.spec
    args = [spec.x, *spec.parameter_symbols]
    f = mp_function(args, spec.forward_expr)
    fp = mp_function(args, sp.diff(spec.forward_expr, spec.x))
    return f, fp


def _pv(declared, params):
    return [mpmath.mpf(float(params[p])) for p in declared.spec.parameter_names]


@functools.cache
def _grid_cached(declared, key):
    params = dict(key)
    f, fp = _fns(declared)
    pv = _pv(declared, params)
    rows = []
    with mpmath.workdps(VALUE_DPS):
        for x0 in domain_grid(declared.spec.domain, dense=41):
            xm = mpmath.mpf(x0)
            try:
                y = mp_real(f(xm, *pv))
                d = mp_real(fp(xm, *pv))
            except (ZeroDivisionError, ValueError, OverflowError):
                continue
            if y is None or d is None or d == 0:
                continue
            yf = float(y) if abs(y) < mpmath.mpf("1.7e308") else math.inf
            rows.append((x0, y, yf, d))
    return rows


def grid(case):
    """[(x0, f(x0) in mp, fl(f(x0)), f'(x0) in mp)] over the declared domain."""
    return _grid_cached(case.declared, tuple(sorted(case.params.items())))


def inverse_truth(case, y_float, x0):
    """x with f(x) = y_float exactly, at DPS digits (Newton from x0)."""
    f, fp = _fns(case.declared)
    pv = _pv(case.declared, case.params)
    with mpmath.workdps(VALUE_DPS):
        x = mpmath.mpf(x0)
        yv = mpmath.mpf(y_float)
        for _ in range(8):
            step = (mp_real(f(x, *pv)) - yv) / mp_real(fp(x, *pv))
            x -= step
            if abs(step) <= abs(x) * mpmath.mpf(10) ** (-DPS):
                break
        return x
