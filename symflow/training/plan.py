"""From a TransformedDistribution to a training plan: the flow's trainable parameters.

A plan lists the flow's members in the order the inverse pass meets them (from the data
side), each with its slice of the unconstrained parameter vector θ, and the base
distribution (whose loc and scale are trainable too with `train_base`). Constrained
parameters live in θ in unconstrained form, mapped back through
symflow's own bijectors: Positive through Softplus, UnitInterval through Sigmoid,
Interval(lo, hi) through lo + (hi - lo) * Sigmoid. Initial values come from the bound
bijectors (their derived inverses, evaluated at 30 digits, give the unconstrained start).
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
from symflow.symbolic.spec import Positive

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
    """Everything the training kernel generator needs, and θ's initial value and names."""

    members: list  # inverse-pass order: the member nearest the data first
    base: Normal | MultivariateNormalDiag
    event_size: int
    theta0: np.ndarray
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


def _inverse_at(declared, y: float) -> float:
    """`declared`'s inverse (the stable form its kernels compute) at y, at 30 digits.

    Evaluated by SymPy/mpmath rather than by the inverse kernel: a training run needs one
    value per parameter, and compiling Softplus' kernel for it cost 2.7 s on a cold start.
    The price is on a warm start: SymPy's first expression work in the process, 0.14 s,
    against 0.01 s for the cached kernel. (Emitting the inverse into the training module,
    compiled with it, would avoid both.) Parameters take the value 1 (Softplus'
    hinge_softness, as in `constraint_exprs`).
    """
    subs = {declared.output_symbol: sp.Float(float(y), 30)}
    subs.update({s: sp.S.One for s in declared.spec.parameter_symbols})
    value = declared.kernel_exprs["inverse"].xreplace(subs).evalf(30)
    if not (value.is_real and value.is_finite):
        raise SymflowError(
            f"fit: {declared.name}'s inverse at {y!r} is {value}, not a finite number; the "
            "parameter's value must lie strictly inside its constraint."
        )
    return float(value)


def _unconstrain(constraint, value: float) -> float:
    """θ entry for a constrained value, through the inverses of symflow's bijectors."""
    name = constraint.name
    if name == "Positive":
        return _inverse_at(Softplus, value)
    if name == "UnitInterval":
        return _inverse_at(Sigmoid, value)
    if name == "Interval":
        lo, hi = constraint.lo_float, constraint.hi_float
        return _inverse_at(Sigmoid, (value - lo) / (hi - lo))
    return float(value)


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
                raw = _unconstrain(p.constraint, values[p.name])
                slots[p.name] = slot(f"{prefix}.{p.name}", raw)
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
            "scale": slot(
                f"base.{scale_name}", np.array([_unconstrain(Positive, float(v)) for v in scale])
            ),
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
    return TrainingPlan(
        members, base, n, np.array(theta, dtype=np.float64), names, distribution, base_train
    )


def constraint_exprs(constraint, raw: sp.Symbol) -> tuple[sp.Expr, sp.Expr]:
    """(value, d value / d raw) of a constrained parameter as stable SymPy expressions."""
    name = constraint.name
    if name == "Positive":
        value = Softplus.kernel_exprs["forward"].xreplace(
            {Softplus.spec.x: raw, Softplus.spec.parameter_symbols[0]: sp.S.One}
        )
        return value, Sigmoid.kernel_exprs["forward"].xreplace({Sigmoid.spec.x: raw})
    if name in ("UnitInterval", "Interval"):
        lo, hi = (0, 1) if name == "UnitInterval" else (constraint.lo, constraint.hi)
        s = Sigmoid.kernel_exprs["forward"].xreplace({Sigmoid.spec.x: raw})
        # sigma' = sigma * (1 - sigma) = sigma(x) * sigma(-x), without cancellation
        s_neg = Sigmoid.kernel_exprs["forward"].xreplace({Sigmoid.spec.x: -raw})
        return lo + (hi - lo) * s, (hi - lo) * s * s_neg
    return raw, sp.S.One
