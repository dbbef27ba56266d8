"""From a TransformedDistribution to a training plan: the flow's trainable parameters.

A plan lists the flow's members in the order the inverse pass meets them (from the data
side), each with its slice of the unconstrained parameter vector θ, and the base
distribution (whose loc and scale are trainable too with `train_base`). Constrained
parameters live in θ in unconstrained form, mapped back through symflow's own bijectors:
Positive through Softplus, UnitInterval through Sigmoid, Interval(lo, hi) through
lo + (hi - lo) * Sigmoid (a half-line through a shifted Softplus). Initial values come from
the bound bijectors: their values, mapped to θ by the constraint bijectors' derived
inverses, which the training module compiles (`constraint_inverse_expr`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import sympy as sp

from symflow.bijectors import Affine, Chain, ScaleMatvecTriL
from symflow.bijectors.catalog import Sigmoid, Softplus
from symflow.bijectors.gathers import fill_indices
from symflow.distributions import MultivariateNormalDiag, Normal, TransformedDistribution
from symflow.errors import ShapeError, SymflowError
from symflow.runtime.bijector import ElementwiseBijector

__all__ = [
    "AffineMember",
    "BaseParameters",
    "ElementwiseMember",
    "TrainingPlan",
    "plan_training",
]


@dataclass
class ElementwiseMember:
    """A declared elementwise member; `slots[name]` is its parameter's index in θ (or None
    when frozen), `constraints[name]` the constraint's name."""

    bijector: ElementwiseBijector
    slots: dict[str, int | None]
    constraints: dict[str, object]
    values: dict[str, float]


@dataclass
class AffineMember:
    """An Affine (or ScaleMatvecTriL) member: y = (L + V diag(d) V^T) x + shift.

    `slots[name]` is the first index in θ of each trainable block (None when frozen or
    absent): shift (n), tril (n(n+1)/2 entries in TFP's FillTriangular order), factor
    (n*r, row-major), diag (r).
    """

    bijector: Affine | ScaleMatvecTriL
    n: int
    r: int
    shift: np.ndarray
    tril: np.ndarray
    factor: np.ndarray
    diag: np.ndarray
    slots: dict[str, int | None]
    tril_positions: np.ndarray = field(repr=False)


@dataclass
class TrainingPlan:
    """Everything the training kernel generator needs, and θ's names and start values
    (constrained: the training module's `unconstrain` maps them into θ)."""

    members: list  # inverse-pass order: the member nearest the data first
    base: Normal | MultivariateNormalDiag
    event_size: int
    start: np.ndarray  # each θ entry's constrained start value (the bound parameter's)
    names: list[str]
    distribution: TransformedDistribution
    #: With `train_base`: the base's loc and scale (n each) and their first θ index each
    #: (None when frozen); None when the base stays as it is.
    base_train: BaseParameters | None = None


@dataclass
class BaseParameters:
    """The base distribution's loc and scale as trainable parameters (scale Positive)."""

    loc: np.ndarray
    scale: np.ndarray
    slots: dict[str, int | None]
    scale_name: str  # "scale" (Normal) or "scale_diag" (MultivariateNormalDiag)


def _members_in_inverse_order(bijector) -> list:
    if isinstance(bijector, Chain):
        return [m for b in bijector.bijectors for m in _members_in_inverse_order(b)]
    return [bijector]


def _bounds(constraint) -> tuple[sp.Expr | None, sp.Expr | None]:
    """(lo, hi) of a constraint, None for an infinite end (NonZero counts as the real line:
    a parameter trained through zero is not excluded from it)."""
    lo = None if constraint.lo == -sp.oo else constraint.lo
    hi = None if constraint.hi == sp.oo else constraint.hi
    return lo, hi


def _softplus(u: sp.Expr) -> sp.Expr:
    return Softplus.kernel_exprs["forward"].xreplace(
        {Softplus.spec.x: u, Softplus.spec.parameter_symbols[0]: sp.S.One}
    )


def _softplus_inverse(v: sp.Expr) -> sp.Expr:
    return Softplus.kernel_exprs["inverse"].xreplace(
        {Softplus.output_symbol: v, Softplus.spec.parameter_symbols[0]: sp.S.One}
    )


def _sigmoid(u: sp.Expr) -> sp.Expr:
    return Sigmoid.kernel_exprs["forward"].xreplace({Sigmoid.spec.x: u})


def constraint_exprs(constraint, raw: sp.Symbol) -> tuple[sp.Expr, sp.Expr]:
    """(value, d value / d raw) of a constrained parameter as stable SymPy expressions.

    By the constraint's bounds: (lo, hi) both finite, lo + (hi - lo)·Sigmoid(raw) (so
    UnitInterval is Sigmoid); only lo finite, lo + Softplus(raw) (Positive is Softplus);
    only hi finite, hi - Softplus(-raw); neither, raw itself.
    """
    lo, hi = _bounds(constraint)
    if lo is not None and hi is not None:
        # sigma' = sigma * (1 - sigma) = sigma(x) * sigma(-x), without cancellation
        s = _sigmoid(raw)
        return lo + (hi - lo) * s, (hi - lo) * s * _sigmoid(-raw)
    if lo is not None:
        return lo + _softplus(raw), _sigmoid(raw)
    if hi is not None:
        return hi - _softplus(-raw), _sigmoid(-raw)
    return raw, sp.S.One


def constraint_inverse_expr(constraint, y: sp.Symbol) -> sp.Expr:
    """θ for a constrained value y, the inverse of `constraint_exprs`' map in the derived
    stable forms of symflow's Softplus and Sigmoid (logit((y - lo)/(hi - lo)), Softplus^-1
    of y - lo or of hi - y). The training module compiles it (`unconstrain`), so that a
    warm start evaluates no SymPy expression."""
    lo, hi = _bounds(constraint)
    if lo is not None and hi is not None:
        return Sigmoid.kernel_exprs["inverse"].xreplace(
            {Sigmoid.output_symbol: (y - lo) / (hi - lo)}
        )
    if lo is not None:
        return _softplus_inverse(y - lo)
    if hi is not None:
        return -_softplus_inverse(hi - y)
    return y


def plan_training(distribution, *, frozen=(), train_base: bool = False) -> TrainingPlan:
    """Lists the trainable parameters of `distribution` and their starting point.

    Args:
        distribution: a TransformedDistribution over `Normal` (scalar events) or
            `MultivariateNormalDiag`, through a Chain (or single bijector) of declared
            elementwise bijectors and Affine / ScaleMatvecTriL members.
        frozen: parameter names (as in `TrainingPlan.names`, e.g. '1.PReLU.alpha', or a
            member-level prefix such as '0.Affine') kept at their bound values.
        train_base: also train the base's loc and scale (named 'base.loc' and 'base.scale'
            or 'base.scale_diag'; the scale through Softplus, as a Positive parameter).

    Raises:
        SymflowError: for a flow the training kernel cannot compile yet, naming the part.
    """
    if not isinstance(distribution, TransformedDistribution):
        raise SymflowError(
            f"fit: expected a TransformedDistribution (a base pushed through a bijector); got "
            f"{distribution!r}."
        )
    base = distribution.distribution
    if isinstance(base, MultivariateNormalDiag):
        n = base.event_shape[0]
        if base.batch_shape != ():
            raise ShapeError(f"fit: the base must have no batch shape; got {base.batch_shape}.")
    elif isinstance(base, Normal):
        n = 1
        if base.batch_shape != ():
            raise ShapeError(
                f"fit: the base Normal must have scalar loc and scale; got batch shape "
                f"{base.batch_shape}."
            )
    else:
        raise SymflowError(
            f"fit: the base must be Normal or MultivariateNormalDiag; got {base.name}."
        )
    names: list[str] = []
    theta: list[float] = []
    frozen = tuple(frozen)

    matched: set[str] = set()
    every: list[str] = []

    def slot(name: str, values) -> int | None:
        every.append(name)
        hits = [f for f in frozen if name == f or name.startswith(f + ".")]
        if hits:
            matched.update(hits)
            return None
        start = len(theta)
        values = np.atleast_1d(np.asarray(values, dtype=np.float64)).reshape(-1)
        for k, v in enumerate(values):
            names.append(name if values.size == 1 else f"{name}[{k}]")
            theta.append(float(v))
        return start

    members = []
    for k, b in enumerate(_members_in_inverse_order(distribution.bijector)):
        prefix = f"{k}.{b.name}"
        if isinstance(b, ElementwiseBijector) and b.declared is not None:
            slots, constraints, values = {}, {}, {}
            for p in b.declared.spec.parameters:
                value = b.parameters[p.name]
                if value.size != 1:
                    raise ShapeError(
                        f"fit: {prefix}.{p.name} has shape {value.shape}; training supports "
                        "scalar parameters of elementwise members for now."
                    )
                values[p.name] = float(value.reshape(()))
                constraints[p.name] = p.constraint
                slots[p.name] = slot(f"{prefix}.{p.name}", values[p.name])
            members.append(ElementwiseMember(b, slots, constraints, values))
        elif isinstance(b, (Affine, ScaleMatvecTriL)):
            if b.event_size != n:
                raise ShapeError(
                    f"fit: {prefix} acts on events of size {b.event_size}; the base has {n}."
                )
            given = b.parameters
            _, positions = fill_indices(n, False)
            tril_entries = b._tril.reshape(-1)[positions]
            slots = {
                "shift": slot(f"{prefix}.shift", b._shift) if "shift" in given else None,
                "tril": slot(f"{prefix}.scale_tril", tril_entries)
                if "scale_tril" in given
                else None,
                "factor": slot(f"{prefix}.scale_perturb_factor", b._factor)
                if "scale_perturb_factor" in given
                else None,
                "diag": slot(f"{prefix}.scale_perturb_diag", b._diag)
                if "scale_perturb_diag" in given
                else None,
            }
            members.append(
                AffineMember(b, n, b._r, b._shift, b._tril, b._factor, b._diag, slots, positions)
            )
        else:
            raise SymflowError(
                f"fit: cannot compile training through {b.name} yet; members may be declared "
                "elementwise bijectors, Affine or ScaleMatvecTriL (in any Chain)."
            )
    base_train = None
    if train_base:
        if isinstance(base, MultivariateNormalDiag):
            loc = np.asarray(base.loc, dtype=np.float64).reshape(-1)
            scale = np.abs(np.asarray(base.scale_diag, dtype=np.float64).reshape(-1))
            scale_name = "scale_diag"
        else:
            loc = np.array([float(base.loc)])
            scale = np.array([abs(float(base.scale))])
            scale_name = "scale"
        slots = {
            "loc": slot("base.loc", loc),
            "scale": slot(f"base.{scale_name}", scale),
        }
        base_train = BaseParameters(loc, scale, slots, scale_name)
    unknown = [f for f in frozen if f not in matched]
    if unknown:
        raise SymflowError(
            f"fit: frozen names {unknown} match no parameter; the flow's parameters are "
            f"{every} (a member prefix such as '{every[0].rsplit('.', 1)[0]}' freezes all "
            "of its parameters)."
            if every
            else f"fit: frozen names {unknown} match no parameter; the flow has none."
        )
    if not theta:
        raise SymflowError("fit: every parameter is frozen; there is nothing to train.")
    start = np.array(theta, dtype=np.float64)
    return TrainingPlan(members, base, n, start, names, distribution, base_train)
