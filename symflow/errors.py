"""Exceptions raised by symflow; every one derives from `SymflowError`.

Messages name the object and the argument, say what was expected and what came in, and
offer a fix. This module imports nothing from symflow so every layer can use it.
"""

from __future__ import annotations

__all__ = [
    "CacheError",
    "CheckFailedError",
    "ConstraintError",
    "DeclarationError",
    "DomainError",
    "NoClosedFormInverseError",
    "NonFiniteResultError",
    "NotInvertibleError",
    "ShapeError",
    "SymflowError",
]


class SymflowError(Exception):
    """Base class of every error symflow raises on purpose."""


class DeclarationError(SymflowError, ValueError):
    """A bijector declaration is malformed: a bad name, annotation or expression."""


class NotInvertibleError(SymflowError, ValueError):
    """The forward map is not one-to-one on its declared domain.

    The message carries a witness: where f' changes sign, and when it can be found,
    two inputs with the same output.
    """


class NoClosedFormInverseError(SymflowError):
    """SymPy found no closed-form inverse; the message names the equation it could not solve."""


class CheckFailedError(SymflowError):
    """A derived inverse or log-det disagreed with the high-precision reference."""


class ConstraintError(SymflowError, ValueError):
    """A parameter value lies outside its declared constraint."""


class DomainError(SymflowError, ValueError):
    """An input lies outside the domain (forward) or the codomain (inverse)."""


class NonFiniteResultError(SymflowError, ArithmeticError):
    """A kernel gave nan at a valid input and no limit could stand in for it."""


class ShapeError(SymflowError, ValueError):
    """Array shapes do not broadcast, or `event_ndims` exceeds the input's rank."""


class CacheError(SymflowError, OSError):
    """The kernel cache folder cannot be used (not writable, not a folder)."""
