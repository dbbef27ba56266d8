"""SymPy → Numba-compatible Python source for one scalar expression.

Functions Numba has are printed as `math.*` calls (SymPy's Python printer already knows
them); functions it lacks are printed as calls to symflow helpers whose source
`symflow.codegen.mathlib` supplies. The printer records which helpers it used.
"""

from __future__ import annotations

import sympy as sp
from sympy.printing.codeprinter import PrintMethodNotImplementedError
from sympy.printing.pycode import PythonCodePrinter

from symflow.codegen.mathlib import HELPERS
from symflow.errors import DeclarationError

__all__ = ["HELPER_FUNCTIONS", "VECTOR_FUNCTIONS", "Float32UnavailableError", "KernelPrinter"]

#: SymPy functions Numba lacks, by class name → the helper symflow emits for them.
#: Stable special functions declared in `symflow.symbolic.functions` carry their own
#: `numba_helper` attribute instead of an entry here.
HELPER_FUNCTIONS: dict[str, str] = {
    "erfinv": "_sf_erfinv",
    "erfcinv": "_sf_erfcinv",
    "LambertW": "_sf_lambertw",
}

#: Elementary functions printed as calls of symflow's vectorizable implementations
#: (`symflow.codegen.vm_exp`, `vm_log`, `vm_erf`) instead of `math.*`: Numba lowers `math.*`
#: to scalar libm calls, which keep LLVM from vectorizing a kernel's loop. A name whose
#: helper is not registered falls back to `math.*`.
VECTOR_FUNCTIONS: dict[str, str] = {
    "exp": "_sf_exp",
    "expm1": "_sf_expm1",
    "log": "_sf_log",
    "log1p": "_sf_log1p",
    "sinh": "_sf_sinh",
    "cosh": "_sf_cosh",
    "tanh": "_sf_tanh",
    "asinh": "_sf_asinh",
    "acosh": "_sf_acosh",
    "atanh": "_sf_atanh",
    "hypot": "_sf_hypot",
    "erf": "_sf_erf",
    "erfc": "_sf_erfc",
}


class Float32UnavailableError(Exception):
    """An expression calls a function that has no float32 implementation (`args[0]` names it).

    The emitter catches it and leaves that kernel without a float32 variant: float32 inputs
    are then computed in float64 and rounded.
    """


class KernelPrinter(PythonCodePrinter):
    """Prints scalar expressions for `@numba.njit` functions; collects helper names used.

    With `float32`, the expression is printed to be evaluated in float32 arithmetic: every
    constant is wrapped as ``np.float32(...)`` (Numba types a bare literal as float64 and
    would promote the whole expression), integer powers stay integer (``x**2`` is float32
    for a float32 x), and each helper `h` is called as its float32 version ``h_f32``.
    Printing raises `Float32UnavailableError` for a function without one.

    With `branch_free`, a Piecewise is printed as nested ``_sf_select(cond, a, b)`` calls
    (a bit-mask select) instead of conditional expressions, for loops that LLVM does not
    vectorize and might compile into jumps (the training kernel's rows).
    """

    def __init__(self, *, float32: bool = False, branch_free: bool = False) -> None:
        super().__init__({"fully_qualified_modules": True, "standard": "python3"})
        self.helpers: set[str] = set()
        self.float32 = float32
        self.branch_free = branch_free

    def _print_Piecewise(self, expr):  # noqa: N802
        # a Piecewise of conditions (x >= 0 where x is itself a Piecewise, as CSE leaves
        # it) picks a bool: the bit-mask select is for floats
        boolean = all(isinstance(v, sp.logic.boolalg.Boolean) for v, _ in expr.args)
        if not self.branch_free or self.float32 or boolean:
            return super()._print_Piecewise(expr)
        *pieces, (last, last_cond) = expr.args
        text = self._select_arg(last) if last_cond == sp.true else "math.nan"
        if last_cond != sp.true:
            pieces.append((last, last_cond))
        for value, cond in reversed(pieces):
            text = f"_sf_select({self._print(cond)}, {self._select_arg(value)}, {text})"
        self.helpers.add("_sf_select")
        return text

    def _select_arg(self, value) -> str:
        """A select's value; an integer or rational constant printed as a float, so that every
        call has the signature (bool, float64, float64) and Numba compiles `_sf_select` once
        rather than once per mix of literal types (about 0.2 s each)."""
        if isinstance(value, sp.Rational):
            return repr(float(value))
        return self._print(value)

    def _num(self, text: str) -> str:
        """A constant in the printer's precision."""
        return f"np.float32({text})" if self.float32 else text

    def _precision(self, helper: str) -> str:
        """`helper`, or its float32 version when printing for float32."""
        if not self.float32:
            return helper
        if helper + "_f32" not in HELPERS:
            raise Float32UnavailableError(helper)
        return helper + "_f32"

    def _folded(self, expr) -> str | None:
        """A function of numbers only (log(2), asinh(2)) as its correctly rounded value, or
        None where it is not a finite real: a literal costs nothing per element, and a helper
        called with an integer would be compiled once more for that signature."""
        if not expr.is_number:
            return None
        value = expr.evalf(40)
        if not (value.is_Float and value.is_finite):
            return None
        return self._num(repr(float(value)))

    def _print_Function(self, expr):  # noqa: N802 (SymPy's printer naming)
        folded = self._folded(expr)
        if folded is not None:
            return folded
        helper = getattr(expr.func, "numba_helper", None) or HELPER_FUNCTIONS.get(
            expr.func.__name__
        )
        if helper is None:
            return super()._print_Function(expr)
        helper = self._precision(helper)
        if expr.func.__name__ == "LambertW" and len(expr.args) > 1 and expr.args[1] != 0:
            raise DeclarationError(
                f"Only the principal branch of LambertW can be compiled; got {expr}."
            )
        self.helpers.add(helper)
        return (
            f"{helper}({self._print(expr.args[0])})"
            if expr.func.__name__ == "LambertW"
            else (f"{helper}({', '.join(self._print(a) for a in expr.args)})")
        )

    def _print_vector_function(self, expr):
        folded = self._folded(expr)
        if folded is not None:
            return folded
        helper = VECTOR_FUNCTIONS[type(expr).__name__]
        if helper not in HELPERS:
            if self.float32:
                raise Float32UnavailableError(f"math.{type(expr).__name__}")
            return _MATH_PRINTERS[type(expr).__name__](self, expr)
        helper = self._precision(helper)
        self.helpers.add(helper)
        return f"{helper}({', '.join(self._print(a) for a in expr.args)})"

    def _print_NegativeInfinity(self, expr):  # noqa: N802
        return "-" + self._num("math.inf")

    def _print_Infinity(self, expr):  # noqa: N802
        return self._num("math.inf")

    def _print_NaN(self, expr):  # noqa: N802
        return self._num("math.nan")

    def _print_Float(self, expr):  # noqa: N802
        # repr of the nearest float64: deterministic and exact round trip.
        return self._num(repr(float(expr)))

    def _print_Rational(self, expr):  # noqa: N802
        # Folded to one float literal so that 1/3 is not a division at run time.
        return self._num(repr(float(expr))) if expr.q != 1 else self._print_Integer(expr)

    def _print_Integer(self, expr):  # noqa: N802
        return self._num(repr(float(expr.p))) if self.float32 else str(expr.p)

    def _print_Half(self, expr):  # noqa: N802
        return self._num("0.5")

    def _print_Exp1(self, expr):  # noqa: N802
        return self._num("math.e")

    def _print_Pi(self, expr):  # noqa: N802
        return self._num("math.pi")

    def _print_UnevaluatedExpr(self, expr):  # noqa: N802
        # A group that must be evaluated as a unit (a Newton step's starting point).
        return f"({self._print(expr.args[0])})"

    def _print_sign(self, expr):
        arg = self._print(expr.args[0])
        zero, one = self._num("0.0"), self._num("1.0")
        return f"({zero} if {arg} == 0 else math.copysign({one}, {arg}))"

    def _print_Pow(self, expr, rational=False):  # noqa: N802
        base = self.parenthesize(expr.base, sp.printing.precedence.PRECEDENCE["Pow"])
        if expr.exp == -1:
            return f"{self._num('1.0')}/{base}"
        if expr.exp == sp.Rational(-1, 2):
            return f"{self._num('1.0')}/math.sqrt({self._print(expr.base)})"
        if self.float32 and expr.exp.is_Integer:
            # An integer power of a float32 stays float32 (and becomes multiplications).
            return f"{base}**{int(expr.exp)}" if expr.exp > 0 else f"{base}**({int(expr.exp)})"
        return super()._print_Pow(expr, rational=rational)

    def print_expr(self, expr: sp.Expr) -> str:
        """The source text of `expr`.

        Raises:
            DeclarationError: for a function neither Numba nor symflow can compile.
        """
        try:
            return self.doprint(expr)
        except PrintMethodNotImplementedError as err:
            raise DeclarationError(
                f"Cannot compile {expr}: {err.args[0].splitlines()[0]}. Numba has no such "
                "function and symflow has no implementation of it; rewrite the map with "
                "elementary functions, erf/erfc, erfinv or LambertW."
            ) from err


#: SymPy's own printers of those functions (`math.*` calls), the fallback.
_MATH_PRINTERS = {n: getattr(PythonCodePrinter, f"_print_{n}") for n in VECTOR_FUNCTIONS}
for _name in VECTOR_FUNCTIONS:
    setattr(KernelPrinter, f"_print_{_name}", KernelPrinter._print_vector_function)
