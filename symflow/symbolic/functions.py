"""Numerically stable special functions as SymPy functions: softplus, log1mexp, ndtr, ...

The stabilization stage (`symflow.stabilize`) rewrites derived expressions into these.
Each class is a plain SymPy `Function` that

- evaluates only at obvious constants (softplus(0) = log(2)) and never rewrites a symbolic
  argument by itself, so the rewrite stage alone decides the form;
- differentiates to stable terms (softplus' = sigmoid, not exp(x)/(1 + exp(x)), which is
  inf/inf for x > 709.78), because parameter gradients are derived from the rewritten
  expressions;
- knows its plain definition (`definition`, also `rewrite(sp.exp)` / `rewrite(sp.log)`),
  which is what checks compare against;
- names the Numba helper the code printer calls (`numba_helper`);
- has an mpmath implementation, accurate at any working precision, registered with
  `symflow.symbolic.numeric.register_mpmath` so that `mp_function` evaluates it.

SymPy's own `log1p`, `expm1` and `hypot` (`sympy.codegen.cfunctions`) are used as they
are: `mp_function` maps them to `mpmath.log1p`, `mpmath.expm1` and `mpmath.hypot`.
"""

from __future__ import annotations

from typing import ClassVar

import mpmath
import sympy as sp
from sympy.codegen.cfunctions import expm1, hypot, log1p

from symflow.symbolic.numeric import register_mpmath

__all__ = [
    "FUNCTIONS",
    "as_definitions",
    "cbrt_real",
    "log1mexp",
    "log_ndtr",
    "log_sigmoid",
    "logcosh",
    "loghypot",
    "logit",
    "logsinh",
    "ndtr",
    "newton_step",
    "ndtri",
    "sigmoid",
    "softplus",
    "softplus_inverse",
]


class _StableFunction(sp.Function):
    """A one-argument function with a plain definition, a Numba helper and an mpmath twin."""

    nargs = 1
    #: Name of the `symflow.codegen` helper the printer emits a call to.
    numba_helper: ClassVar[str] = ""
    #: LaTeX for the function name; the argument is printed in parentheses after it.
    latex_name: ClassVar[str] = ""

    @classmethod
    def definition(cls, arg: sp.Expr) -> sp.Expr:
        """The plain SymPy expression this function stands for."""
        raise NotImplementedError

    @staticmethod
    def mp(arg):
        """The value at `arg` in mpmath at the current working precision."""
        raise NotImplementedError

    def _eval_rewrite_as_exp(self, arg, **hints):
        return self.definition(arg)

    _eval_rewrite_as_log = _eval_rewrite_as_exp

    def _eval_evalf(self, prec):
        arg = self.args[0]._eval_evalf(prec)
        if arg is None or not arg.is_Number:
            return None
        with mpmath.workprec(prec):
            value = self.mp(mpmath.mpmathify(arg))
        return sp.Expr._from_mpmath(value, prec)

    def _latex(self, printer):
        name = self.latex_name or rf"\operatorname{{{self.func.__name__}}}"
        return rf"{name}\left({printer._print(self.args[0])}\right)"


def _true_or_none(condition):
    """An assumption answer: True where the condition is known to hold, else None (unknown)."""
    return True if condition else None


class softplus(_StableFunction):  # noqa: N801 (SymPy function names are lower case)
    """softplus(x) = log(1 + exp(x)).

    The plain form overflows to inf for x > 709.78. Stable form:
    max(x, 0) + log1p(exp(-|x|)).
    """

    numba_helper = "_sf_softplus"

    @classmethod
    def eval(cls, arg):
        if arg.is_zero:
            return sp.log(2)
        if arg is sp.oo:
            return sp.oo
        if arg is sp.S.NegativeInfinity:
            return sp.Integer(0)
        return None

    @classmethod
    def definition(cls, arg):
        return sp.log(1 + sp.exp(arg))

    @staticmethod
    def mp(arg):
        return mpmath.log1p(mpmath.exp(arg))

    def fdiff(self, argindex=1):
        return sigmoid(self.args[0])

    def inverse(self, argindex=1):
        return softplus_inverse

    def _eval_is_real(self):
        return _true_or_none(self.args[0].is_real)

    def _eval_is_positive(self):
        return _true_or_none(self.args[0].is_real)


class softplus_inverse(_StableFunction):  # noqa: N801
    """softplus_inverse(y) = log(exp(y) - 1), for y > 0.

    The plain form overflows to inf for y > 709.78 and loses every digit of exp(y) - 1 for
    y < 1e-16. Stable form: y + log(-expm1(-y)).
    """

    numba_helper = "_sf_softplus_inverse"
    latex_name = r"\operatorname{softplus}^{-1}"

    @classmethod
    def eval(cls, arg):
        if arg == sp.log(2):
            return sp.Integer(0)
        if arg is sp.oo:
            return sp.oo
        if arg.is_zero:
            return -sp.oo
        return None

    @classmethod
    def definition(cls, arg):
        return sp.log(sp.exp(arg) - 1)

    @staticmethod
    def mp(arg):
        return mpmath.log(mpmath.expm1(arg))

    def fdiff(self, argindex=1):
        # 1/(1 - exp(-y)): finite for large y, and -expm1(-y) keeps its digits near 0.
        return -1 / expm1(-self.args[0])

    def inverse(self, argindex=1):
        return softplus

    def _eval_is_real(self):
        return _true_or_none(self.args[0].is_positive)


class log1mexp(_StableFunction):  # noqa: N801
    """log1mexp(a) = log(1 - exp(-a)), for a > 0.

    The plain form is log(0) = -inf for a < 1.1e-16 (1 - exp(-a) rounds to 0) and loses
    digits for a < 0.69. Stable form (Maechler 2012): log(-expm1(-a)) for a <= log(2),
    log1p(-exp(-a)) above.
    """

    numba_helper = "_sf_log1mexp"

    @classmethod
    def eval(cls, arg):
        if arg is sp.oo:
            return sp.Integer(0)
        if arg.is_zero:
            return -sp.oo
        if arg == sp.log(2):
            return -sp.log(2)
        return None

    @classmethod
    def definition(cls, arg):
        return sp.log(1 - sp.exp(-arg))

    @staticmethod
    def mp(arg):
        # The same switch as the stable form: each branch is exact where it is used.
        if mpmath.re(arg) <= mpmath.log(2):
            return mpmath.log(-mpmath.expm1(-arg))
        return mpmath.log1p(-mpmath.exp(-arg))

    def fdiff(self, argindex=1):
        # exp(-a)/(1 - exp(-a)) = 1/expm1(a): 1/inf = 0 for large a, no 0/0.
        return 1 / expm1(self.args[0])

    def _eval_is_real(self):
        return _true_or_none(self.args[0].is_positive)

    def _eval_is_negative(self):
        return _true_or_none(self.args[0].is_positive)


class logcosh(_StableFunction):  # noqa: N801
    """logcosh(x) = log(cosh(x)).

    cosh overflows to inf for |x| > 710.48. Stable form: |x| + log1p(exp(-2|x|)) - log(2).
    """

    numba_helper = "_sf_logcosh"

    @classmethod
    def eval(cls, arg):
        if arg.is_zero:
            return sp.Integer(0)
        if arg in (sp.oo, -sp.oo):
            return sp.oo
        return None

    @classmethod
    def definition(cls, arg):
        return sp.log(sp.cosh(arg))

    @staticmethod
    def mp(arg):
        # cosh(x) - 1 = 2*sinh(x/2)**2 keeps the digits log(cosh(x)) loses for small x.
        return mpmath.log1p(2 * mpmath.sinh(arg / 2) ** 2)

    def fdiff(self, argindex=1):
        return sp.tanh(self.args[0])

    def _eval_is_real(self):
        return _true_or_none(self.args[0].is_real)

    def _eval_is_nonnegative(self):
        return _true_or_none(self.args[0].is_real)


class logsinh(_StableFunction):  # noqa: N801
    """logsinh(x) = log(sinh(x)), for x > 0.

    sinh overflows to inf for x > 710.48. Stable form: x + log(-expm1(-2x)) - log(2).
    """

    numba_helper = "_sf_logsinh"

    @classmethod
    def eval(cls, arg):
        if arg is sp.oo:
            return sp.oo
        if arg.is_zero:
            return -sp.oo
        return None

    @classmethod
    def definition(cls, arg):
        return sp.log(sp.sinh(arg))

    @staticmethod
    def mp(arg):
        return mpmath.log(mpmath.sinh(arg))

    def fdiff(self, argindex=1):
        return 1 / sp.tanh(self.args[0])

    def _eval_is_real(self):
        return _true_or_none(self.args[0].is_positive)


class loghypot(_StableFunction):  # noqa: N801
    """loghypot(x) = log(sqrt(1 + x**2)) = log1p(x**2)/2.

    x**2 overflows to inf for |x| > 1.34e154 (true value log|x|), and log(hypot(1, x))
    rounds to 0 for |x| < 1e-8 (true value x**2/2). Its kernel shares its first steps with
    asinh(x) = log(x + sqrt(1 + x**2)), which SinhArcsinh's log-det also computes.
    """

    numba_helper = "_sf_loghypot"

    @classmethod
    def eval(cls, arg):
        if arg.is_zero:
            return sp.Integer(0)
        if arg in (sp.oo, -sp.oo):
            return sp.oo
        return None

    @classmethod
    def definition(cls, arg):
        return sp.log(sp.sqrt(1 + arg**2))

    @staticmethod
    def mp(arg):
        return mpmath.log1p(arg**2) / 2

    def fdiff(self, argindex=1):
        x = self.args[0]
        return x / (1 + x**2)

    def _eval_is_real(self):
        return _true_or_none(self.args[0].is_real)

    def _eval_is_nonnegative(self):
        return _true_or_none(self.args[0].is_real)


class ndtr(_StableFunction):  # noqa: N801
    """ndtr(x) = (1 + erf(x/sqrt(2)))/2, the standard normal CDF.

    The erf form is 1 + (-1 + tiny) = 0 for x < -8.3: the whole lower tail is lost.
    Stable form: erfc(-x/sqrt(2))/2, accurate down to x = -38.
    """

    numba_helper = "_sf_ndtr_v"
    latex_name = r"\Phi"

    @classmethod
    def eval(cls, arg):
        if arg.is_zero:
            return sp.S.Half
        if arg is sp.oo:
            return sp.Integer(1)
        if arg is sp.S.NegativeInfinity:
            return sp.Integer(0)
        return None

    @classmethod
    def definition(cls, arg):
        return (1 + sp.erf(arg / sp.sqrt(2))) / 2

    @staticmethod
    def mp(arg):
        return mpmath.ncdf(arg)

    def fdiff(self, argindex=1):
        return sp.exp(-(self.args[0] ** 2) / 2) / sp.sqrt(2 * sp.pi)

    def inverse(self, argindex=1):
        return ndtri

    def _eval_is_real(self):
        return _true_or_none(self.args[0].is_real)

    def _eval_is_positive(self):
        return _true_or_none(self.args[0].is_real)


class log_ndtr(_StableFunction):  # noqa: N801
    """log_ndtr(x) = log(ndtr(x)).

    ndtr underflows to 0 for x < -38.5, so log(ndtr(x)) = -inf there. Stable form: the
    asymptotic series of log(erfc) in the lower tail, log1p(-ndtr(-x)) in the upper one.
    """

    numba_helper = "_sf_log_ndtr_v"
    latex_name = r"\log\Phi"

    @classmethod
    def eval(cls, arg):
        if arg.is_zero:
            return -sp.log(2)
        if arg is sp.oo:
            return sp.Integer(0)
        if arg is sp.S.NegativeInfinity:
            return -sp.oo
        return None

    @classmethod
    def definition(cls, arg):
        return sp.log((1 + sp.erf(arg / sp.sqrt(2))) / 2)

    @staticmethod
    def mp(arg):
        # Upper tail: ncdf(x) = 1 - ncdf(-x) rounds towards 1; log1p keeps the difference.
        if mpmath.re(arg) > 0:
            return mpmath.log1p(-mpmath.ncdf(-arg))
        return mpmath.log(mpmath.ncdf(arg))

    def fdiff(self, argindex=1):
        # pdf/cdf as one exp: both factors underflow for x << 0, their ratio does not.
        x = self.args[0]
        return sp.exp(-(x**2) / 2 - log_ndtr(x)) / sp.sqrt(2 * sp.pi)

    def _eval_is_real(self):
        return _true_or_none(self.args[0].is_real)

    def _eval_is_negative(self):
        return _true_or_none(self.args[0].is_real)


class ndtri(_StableFunction):  # noqa: N801
    """ndtri(p), the inverse of ndtr: sqrt(2)*erfinv(2*p - 1), for 0 < p < 1.

    2*p - 1 rounds to -1 for p < 1.1e-16, where the erfinv form returns -inf, and keeps
    only the absolute error of 2*p - 1 for small p. Stable form: an approximation in p
    itself (Wichura's AS 241), not in 2*p - 1.
    """

    numba_helper = "_sf_ndtri"
    latex_name = r"\Phi^{-1}"

    @classmethod
    def eval(cls, arg):
        if arg == sp.S.Half:
            return sp.Integer(0)
        if arg.is_zero:
            return -sp.oo
        if arg == 1:
            return sp.oo
        return None

    @classmethod
    def definition(cls, arg):
        return sp.sqrt(2) * sp.erfinv(2 * arg - 1)

    @staticmethod
    def mp(arg):
        return _mp_ndtri(arg)

    def fdiff(self, argindex=1):
        return sp.sqrt(2 * sp.pi) * sp.exp(ndtri(self.args[0]) ** 2 / 2)

    def inverse(self, argindex=1):
        return ndtr

    def _eval_is_real(self):
        p = self.args[0]
        return _true_or_none(p.is_positive and (1 - p).is_positive)


class log_sigmoid(_StableFunction):  # noqa: N801
    """log_sigmoid(x) = log(1/(1 + exp(-x))) = -softplus(-x).

    The plain form overflows (exp(-x) = inf) for x < -709.78. Stable form:
    min(x, 0) - log1p(exp(-|x|)).
    """

    numba_helper = "_sf_log_sigmoid"
    latex_name = r"\log\sigma"

    @classmethod
    def eval(cls, arg):
        if arg.is_zero:
            return -sp.log(2)
        if arg is sp.oo:
            return sp.Integer(0)
        if arg is sp.S.NegativeInfinity:
            return -sp.oo
        return None

    @classmethod
    def definition(cls, arg):
        return -sp.log(1 + sp.exp(-arg))

    @staticmethod
    def mp(arg):
        return -mpmath.log1p(mpmath.exp(-arg))

    def fdiff(self, argindex=1):
        return sigmoid(-self.args[0])

    def _eval_is_real(self):
        return _true_or_none(self.args[0].is_real)

    def _eval_is_negative(self):
        return _true_or_none(self.args[0].is_real)


class sigmoid(_StableFunction):  # noqa: N801
    """sigmoid(x) = 1/(1 + exp(-x)).

    The plain form is fine in IEEE arithmetic (1/inf = 0) but exp(x)/(1 + exp(x)) is
    inf/inf = nan for x > 709.78. Stable form: branch on the sign of x so exp never
    overflows.
    """

    numba_helper = "_sf_sigmoid"
    latex_name = r"\sigma"

    @classmethod
    def eval(cls, arg):
        if arg.is_zero:
            return sp.S.Half
        if arg is sp.oo:
            return sp.Integer(1)
        if arg is sp.S.NegativeInfinity:
            return sp.Integer(0)
        return None

    @classmethod
    def definition(cls, arg):
        return 1 / (1 + sp.exp(-arg))

    @staticmethod
    def mp(arg):
        return 1 / (1 + mpmath.exp(-arg))

    def fdiff(self, argindex=1):
        x = self.args[0]
        return sigmoid(x) * sigmoid(-x)

    def inverse(self, argindex=1):
        return logit

    def _eval_is_real(self):
        return _true_or_none(self.args[0].is_real)

    def _eval_is_positive(self):
        return _true_or_none(self.args[0].is_real)


class logit(_StableFunction):  # noqa: N801
    """logit(p) = log(p/(1 - p)), for 0 < p < 1.

    The quotient form loses digits near p = 1 and p/(1 - p) is inf at p = 1 - 1e-17.
    Stable form: log(p) - log1p(-p).
    """

    numba_helper = "_sf_logit"

    @classmethod
    def eval(cls, arg):
        if arg == sp.S.Half:
            return sp.Integer(0)
        if arg.is_zero:
            return -sp.oo
        if arg == 1:
            return sp.oo
        return None

    @classmethod
    def definition(cls, arg):
        return sp.log(arg / (1 - arg))

    @staticmethod
    def mp(arg):
        return mpmath.log(arg) - mpmath.log1p(-arg)

    def fdiff(self, argindex=1):
        p = self.args[0]
        return 1 / (p * (1 - p))

    def inverse(self, argindex=1):
        return sigmoid

    def _eval_is_real(self):
        p = self.args[0]
        return _true_or_none(p.is_positive and (1 - p).is_positive)


class cbrt_real(_StableFunction):  # noqa: N801
    """cbrt_real(x), the real cube root: sign(x)*|x|**(1/3), odd in x.

    x**(1/3) is the principal complex root (NaN in float64 for x < 0). Stable form: a
    dedicated cube root (C99 cbrt), odd by construction and exact on perfect cubes,
    where pow(|x|, 1/3) is not (pow(64, 1/3) = 3.9999999999999996).
    """

    numba_helper = "_sf_cbrt"

    @classmethod
    def eval(cls, arg):
        if arg.is_Rational:
            # Exact constants only: cbrt_real(-8) = -2, cbrt_real(2) = 2**(1/3).
            return sp.sign(arg) * sp.Abs(arg) ** sp.Rational(1, 3)
        if arg in (sp.oo, -sp.oo):
            return arg
        return None

    @classmethod
    def definition(cls, arg):
        return sp.sign(arg) * sp.Abs(arg) ** sp.Rational(1, 3)

    @staticmethod
    def mp(arg):
        return mpmath.sign(arg) * mpmath.cbrt(abs(arg))

    def fdiff(self, argindex=1):
        return 1 / (3 * cbrt_real(self.args[0]) ** 2)

    def _eval_is_real(self):
        return _true_or_none(self.args[0].is_real)

    def _eval_is_positive(self):
        return self.args[0].is_positive

    def _eval_is_negative(self):
        return self.args[0].is_negative

    def _latex(self, printer):
        return rf"\sqrt[3]{{{printer._print(self.args[0])}}}"


def _mp_ndtri(p):
    """The standard normal quantile in mpmath, accurate for p down to any exponent.

    mpmath has no ndtri, and sqrt(2)*erfinv(2p - 1) loses all digits once 2p - 1 rounds
    to -1. Newton's method on log(ncdf(x)) = log(p) converges from any start because
    log(ncdf) is concave and increasing; the upper half uses ndtri(p) = -ndtri(1 - p).
    """
    p = mpmath.mpmathify(p)
    if isinstance(p, mpmath.mpc):
        if p.imag:
            return mpmath.nan
        p = p.real
    if p <= 0 or p >= 1:
        if p == 0:
            return -mpmath.inf
        if p == 1:
            return mpmath.inf
        return mpmath.nan
    if p > 0.5:
        # 1 - p is exact: mpf subtraction with exact=True keeps every bit.
        return -_mp_ndtri_lower(mpmath.fsub(1, p, exact=True))
    return _mp_ndtri_lower(p)


def _mp_ndtri_lower(p):
    """ndtri(p) for 0 < p <= 1/2, at the current working precision."""
    with mpmath.extradps(20):
        p = mpmath.mpf(p)
        if p > mpmath.mpf("1e-3"):
            x = mpmath.sqrt(2) * mpmath.erfinv(2 * p - 1)
        else:
            # Asymptotic start: x ~ -sqrt(L - log(L) - log(2*pi)), L = -2*log(p).
            big = -2 * mpmath.log(p)
            x = -mpmath.sqrt(big - mpmath.log(big) - mpmath.log(2 * mpmath.pi))
        target = mpmath.log(p)
        eps = mpmath.mpf(2) ** (-mpmath.mp.prec + 8)
        for _ in range(200):
            cdf = mpmath.ncdf(x)
            step = (mpmath.log(cdf) - target) * cdf / mpmath.npdf(x)
            x -= step
            if abs(step) <= eps * max(abs(x), 1):
                break
    return +x


def _mp_erfcinv(w):
    """erfcinv(w) = -ndtri(w/2)/sqrt(2): accurate for tiny w, where erfinv(1 - w) is not."""
    return -_mp_ndtri(mpmath.mpmathify(w) / 2) / mpmath.sqrt(2)


class newton_step(sp.Function):  # noqa: N801
    """newton_step(x0, r, s) = x0 - r / s, one Newton step from x0 with residual r and slope
    s, except that it is x0 where r or s is 0 (no step is needed, or none can be taken).

    The inverse's Newton polish (`symflow.runtime.declared`) computes x0 - (f(x0) - y) /
    f'(x0). Where f' vanishes inside the domain (x**3 at 0) the plain step is 0/0 = nan at
    the one input where the closed form x0 is exact; a SymPy Piecewise on r == 0 cannot
    stand in (SymPy tries to decide the condition, evaluating symflow's functions).
    """

    nargs = 3
    numba_helper = "_sf_newton_step"

    @classmethod
    def definition(cls, x0, r, s):
        return x0 - r / s

    @staticmethod
    def mp(x0, r, s):
        return x0 if (r == 0 or s == 0) else x0 - r / s

    def fdiff(self, argindex=1):
        _, r, s = self.args
        return (sp.S.One, -1 / s, r / s**2)[argindex - 1]

    def _eval_evalf(self, prec):
        args = [a._eval_evalf(prec) for a in self.args]
        if any(a is None or not a.is_Number for a in args):
            return None
        with mpmath.workprec(prec):
            value = self.mp(*(mpmath.mpmathify(a) for a in args))
        return sp.Expr._from_mpmath(mpmath.mpmathify(value), prec)

    def _eval_is_real(self):
        return _true_or_none(all(a.is_real for a in self.args))

    def _latex(self, printer):
        x0, r, s = (printer._print(a) for a in self.args)
        return rf"\left({x0} - \frac{{{r}}}{{{s}}}\right)"


#: Every stable function class, in the order the module defines them.
FUNCTIONS = (
    softplus,
    softplus_inverse,
    log1mexp,
    logcosh,
    logsinh,
    loghypot,
    ndtr,
    log_ndtr,
    ndtri,
    log_sigmoid,
    sigmoid,
    logit,
    cbrt_real,
)

#: SymPy's C99 functions by their plain definitions (for checks that compare forms).
_CFUNCTION_DEFINITIONS = {
    log1p: lambda u: sp.log(1 + u),
    expm1: lambda u: sp.exp(u) - 1,
    hypot: lambda a, b: sp.sqrt(a**2 + b**2),
    newton_step: newton_step.definition,
}


def as_definitions(expr: sp.Expr) -> sp.Expr:
    """`expr` with every stable function (and log1p, expm1, hypot) replaced by its definition.

    Example:
        >>> x = sp.Symbol("x", real=True)
        >>> as_definitions(softplus(x) + log1p(x))
        log(x + 1) + log(exp(x) + 1)
    """

    def _is_defined(e):
        return isinstance(e, FUNCTIONS) or e.func in _CFUNCTION_DEFINITIONS

    def _definition(e):
        if isinstance(e, FUNCTIONS):
            return e.definition(*e.args)
        return _CFUNCTION_DEFINITIONS[e.func](*e.args)

    return sp.sympify(expr).replace(_is_defined, _definition)


for _cls in (*FUNCTIONS, newton_step):
    register_mpmath(_cls.__name__, _cls.mp)
# mp_function already evaluates log1p, expm1 and hypot (mpmath has all three); SymPy's
# erfcinv has no mpmath counterpart, and the ndtri rule rewrites it, so it needs one.
register_mpmath("erfcinv", _mp_erfcinv)
