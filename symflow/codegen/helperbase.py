"""What every pasted helper is made of: the `Helper` record and the bit-level primitives.

Generated kernel modules import only `math`, `numba` (with `numba.extending`) and `numpy as
np`; the special functions they call are pasted in as source. `symflow.codegen.mathlib`
holds the scalar special functions, `symflow.codegen.vm_exp`, `vm_log` and `vm_erf` the
vectorizable elementary functions. All of them are written as ordinary module-level
functions so that they are linted, formatted, readable and callable from CPython; a
`Helper` carries the text that is pasted, which is that function's source behind a
`@numba.njit(cache=True, error_model="numpy")` line.

Three primitives cannot be written as plain Python that Numba vectorizes: reading a
float's IEEE-754 bits as an integer, the reverse, and a fused multiply-add. In a generated
module they are `numba.extending.intrinsic`s (a bit cast and a call of LLVM's `llvm.fma`),
which LLVM's loop vectorizer turns into vector instructions. Below, the same names are
ordinary Python functions with the same results, so a helper that uses them can also be
called from CPython (in tests, and by the distributions' CPython paths).
"""

from __future__ import annotations

import functools
import inspect
import math
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction

__all__ = [
    "INLINE_NJIT_LINE",
    "INTRINSICS",
    "NJIT_LINE",
    "Helper",
    "_sf_as_bits",
    "_sf_as_bits32",
    "_sf_fma",
    "_sf_fma32",
    "_sf_from_bits",
    "_sf_from_bits32",
    "njit_helper",
]

NJIT_LINE = '@numba.njit(cache=True, error_model="numpy")\n'
INLINE_NJIT_LINE = '@numba.njit(cache=True, error_model="numpy", forceinline=True)\n'


@dataclass(frozen=True)
class Helper:
    """One helper function as source text.

    Attributes:
        name: The function's name in `source`, e.g. ``"_sf_erfinv"``.
        text: Its text, when given as text (the intrinsics); else "" and `func` is set.
        requires: Names of the other helpers it calls.
        func, decorator: the Python function whose source `source` is, behind `decorator`.
    """

    name: str
    text: str = field(default="", repr=False)
    requires: tuple[str, ...] = ()
    func: Callable | None = field(default=None, repr=False, compare=False)
    decorator: str = field(default="", repr=False)

    @functools.cached_property
    def source(self) -> str:
        """Text of one top-level function, decorator line first. Read from the function's
        file on first use only: importing symflow (a warm start, whose kernels are all
        cached) never needs it, and reading some 80 functions' sources costs 0.1 s."""
        if self.func is None:
            return self.text
        return self.decorator + inspect.getsource(self.func)


def njit_helper(func: Callable, *requires: Callable, inline: bool = False) -> Helper:
    """A `Helper` pasting `func`'s source behind `NJIT_LINE`; `requires` are its callees.

    With `inline`, behind `INLINE_NJIT_LINE`: Numba inlines the function into every caller
    before LLVM sees it. For helpers that call several vectorizable functions (log-cosh,
    softplus, ...): LLVM's inliner takes small functions such as `_sf_exp` into a kernel's
    loop by itself, but not a helper that has already absorbed three of them, and a loop
    with a call left in it is not vectorized. Numba-level inlining costs compile time, so
    the small functions are left to LLVM.
    """
    return Helper(
        func.__name__,
        requires=tuple(sorted(r.__name__ for r in requires)),
        func=func,
        decorator=INLINE_NJIT_LINE if inline else NJIT_LINE,
    )


# CPython twins of the intrinsics


def _sf_as_bits(x):
    """The bits of float64 `x` as a signed int64 (a reinterpretation, not a conversion)."""
    return struct.unpack("<q", struct.pack("<d", x))[0]


def _sf_from_bits(i):
    """The float64 whose bits are the int64 `i` (wrapped to 64 bits)."""
    return struct.unpack("<d", struct.pack("<q", ((i + 2**63) % 2**64) - 2**63))[0]


def _sf_as_bits32(x):
    """The bits of float32 `x` as a signed int32 (`x` is rounded to float32 first)."""
    return struct.unpack("<i", struct.pack("<f", x))[0]


def _sf_from_bits32(i):
    """The float32 (as a Python float) whose bits are the low 32 bits of the integer `i`.

    Compiled, `i` may be an int32 or an int64 (Numba widens int32 arithmetic to int64; the
    intrinsic truncates, so ``_sf_from_bits32(_sf_as_bits32(x) + 1)`` needs no cast).
    """
    return struct.unpack("<f", struct.pack("<i", ((int(i) + 2**31) % 2**32) - 2**31))[0]


def _sf_fma(a, b, c):
    """a·b + c with one rounding (exact rational arithmetic, then round to nearest)."""
    if not (math.isfinite(a) and math.isfinite(b) and math.isfinite(c)):
        return a * b + c
    exact = Fraction(a) * Fraction(b) + Fraction(c)
    if exact == 0:
        return a * b + c  # the sign of an exact zero follows IEEE's rules for a·b + c
    try:
        return float(exact)
    except OverflowError:
        return math.copysign(math.inf, exact.numerator)


def _sf_fma32(a, b, c):
    """a·b + c for float32 values with one rounding to float32, as a numpy float32.

    The exact value is rounded to float64 first, then to float32; the two roundings differ
    from one only when the float64 lands exactly halfway between two float32s, which the
    product of two 24-bit significands plus a float32 cannot reach except at huge exponent
    gaps. The twin exists for plain-Python calls; kernels use the intrinsic.
    """
    import numpy as np

    a, b, c = (float(np.float32(v)) for v in (a, b, c))
    return np.float32(_sf_fma(a, b, c))


# Sources pasted into generated modules in place of the twins above

_BITCAST = '''\
@numba.extending.intrinsic
def {name}(typingctx, x):
    """{doc}"""

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(signature.return_type))

    return numba.{to}(numba.{frm}), codegen
'''

_FMA = '''\
@numba.extending.intrinsic
def _sf_fma(typingctx, a, b, c):
    """a*b + c rounded once (LLVM's llvm.fma.f64: one instruction where the CPU has FMA)."""

    def codegen(context, builder, signature, args):
        return builder.fma(*args)

    return numba.float64(numba.float64, numba.float64, numba.float64), codegen
'''

_FMA32 = '''\
@numba.extending.intrinsic
def _sf_fma32(typingctx, a, b, c):
    """a*b + c for float32 rounded once (LLVM's llvm.fma.f32)."""

    def codegen(context, builder, signature, args):
        return builder.fma(*args)

    return numba.float32(numba.float32, numba.float32, numba.float32), codegen
'''

_FROM_BITS32 = '''\
@numba.extending.intrinsic
def _sf_from_bits32(typingctx, i):
    """The float32 whose bits are the low 32 bits of an int32 or int64."""

    def codegen(context, builder, signature, args):
        value = args[0]
        if value.type.width != 32:
            value = builder.trunc(value, context.get_value_type(numba.int32))
        return builder.bitcast(value, context.get_value_type(numba.float32))

    return numba.float32(i), codegen
'''

INTRINSICS: dict[str, Helper] = {
    "_sf_as_bits": Helper(
        "_sf_as_bits",
        _BITCAST.format(
            name="_sf_as_bits", to="int64", frm="float64", doc="The bits of a float64, as int64."
        ),
    ),
    "_sf_from_bits": Helper(
        "_sf_from_bits",
        _BITCAST.format(
            name="_sf_from_bits", to="float64", frm="int64", doc="The float64 with these bits."
        ),
    ),
    "_sf_as_bits32": Helper(
        "_sf_as_bits32",
        _BITCAST.format(
            name="_sf_as_bits32", to="int32", frm="float32", doc="The bits of a float32, as int32."
        ),
    ),
    "_sf_from_bits32": Helper("_sf_from_bits32", _FROM_BITS32),
    "_sf_fma": Helper("_sf_fma", _FMA),
    "_sf_fma32": Helper("_sf_fma32", _FMA32),
}
"""Intrinsic helpers by name; their CPython twins are the functions of the same name here."""
