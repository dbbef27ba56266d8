"""symflow: a symbolic bijector compiler for normalizing flows.

A user writes only the forward map of a bijector as a SymPy expression; symflow does the
rest, in stages, each one module with a small typed hand-off to the next:

1. declare   `symbolic/dsl.py`     Python function or expression → `BijectorSpec`
2. check     `checks.py`           spec → invertibility evidence (f' keeps one sign)
3. derive    `symbolic/derive.py`  spec → `Derivation` (inverse with branch selection,
                                   codomain, log|det J| of both directions)
4. check     `checks.py`           derivation → `CheckReport` (round trips and log-dets
                                   against mpmath at high precision; raises on failure)
5. stabilize `stabilize.py`        derivation → the same maths in numerically stable form
                                   (log1p, expm1, softplus, ...), re-checked
6. emit      `codegen/`            stable expressions + partials → `KernelSource` (Numba
                                   source text, CSE, deterministic, content-hashed)
7. load      `runtime/loader.py`   source → cached module on disk (atomic writes) → import
8. run       `runtime/bijector.py` bound bijector: numpy in, numpy out, compiled kernels

`runtime/declared.py` drives stages 1-7 on first use, or loads everything from the cache.
"""

from symflow import bijectors, distributions, flows
from symflow._version import __version__
from symflow.checks import CheckReport
from symflow.errors import (
    CacheError,
    CheckFailedError,
    ConstraintError,
    DeclarationError,
    DomainError,
    NoClosedFormInverseError,
    NonFiniteResultError,
    NotInvertibleError,
    ShapeError,
    SymflowError,
)
from symflow.runtime.bijector import Bijector
from symflow.runtime.declared import DeclaredBijector, bijector
from symflow.symbolic.spec import Interval, NonZero, Positive, Real, UnitInterval
from symflow.training import SGD, Adam, FitResult, fit, load_parameters

__all__ = [
    "SGD",
    "Adam",
    "FitResult",
    "fit",
    "load_parameters",
    "Bijector",
    "CacheError",
    "CheckFailedError",
    "CheckReport",
    "ConstraintError",
    "DeclarationError",
    "DeclaredBijector",
    "DomainError",
    "Interval",
    "NoClosedFormInverseError",
    "NonFiniteResultError",
    "NonZero",
    "NotInvertibleError",
    "Positive",
    "Real",
    "ShapeError",
    "SymflowError",
    "UnitInterval",
    "__version__",
    "bijector",
    "bijectors",
    "distributions",
    "flows",
]
