"""From a TransformedDistribution to a training plan: the flow's trainable parameters.

The flow's members (in the order the inverse pass meets them, from the data side) and its
base each supply their code and their parameter blocks through the composed-flow member
interface (`symflow.codegen.flow.member`); the plan only decides which blocks train and
where they sit in the unconstrained vector θ. Every block of q is trainable unless frozen,
absent from the bound bijector (an unperturbed Affine's factor) or the base's (trained only
with `train_base`). Constrained parameters live in θ in unconstrained form, mapped back
through symflow's own bijectors: Positive through Softplus, UnitInterval through Sigmoid,
Interval(lo, hi) through lo + (hi - lo) * Sigmoid (a half-line through a shifted
Softplus); network weights are unconstrained. Initial values come from the bound
bijectors, mapped to θ by the constraint bijectors' derived inverses, which the training
module compiles (`constraint_inverse_expr`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sympy as sp

from symflow.bijectors import Chain
from symflow.bijectors.catalog import Sigmoid, Softplus
from symflow.codegen.flow.compose import FlowCode
from symflow.distributions import MultivariateNormalDiag, Normal, TransformedDistribution
from symflow.distributions.transformed import base_member
from symflow.errors import ShapeError, SymflowError
from symflow.runtime.composed import FlowMember

__all__ = [
    "ThetaBlock",
    "TrainingPlan",
    "constraint_exprs",
    "constraint_inverse_expr",
    "plan_training",
]


@dataclass(frozen=True)
class ThetaBlock:
    """One block of q: its display name ('0.Affine.shift', 'base.loc', ...), owner (member
    index; len(members) for the base), first q index, size, constraint (None: real), and
    its first θ index (None when it does not train)."""

    name: str
    owner: int
    q_start: int
    size: int
    constraint: object | None
    theta_start: int | None


@dataclass
class TrainingPlan:
    """Everything the training generator and `fit` need: the flow's code, its members (in
    inverse-pass order) and base as bijector objects with their values, and θ's layout."""

    flow: FlowCode
    members: list  # [(bijector, FlowMember)], inverse-pass order
    base_member: FlowMember
    blocks: list[ThetaBlock]
    q0: np.ndarray  # every q entry's start value (the bound bijectors' values)
    distribution: TransformedDistribution
    train_base: bool

    @property
    def event_size(self) -> int:
        return self.flow.event_size

    @property
    def context_size(self) -> int:
        return self.flow.context_size

    @property
    def n_theta(self) -> int:
        return sum(b.size for b in self.blocks if b.theta_start is not None)

    @property
    def trained(self) -> list[ThetaBlock]:
        """The trainable blocks in θ order."""
        return sorted(
            (b for b in self.blocks if b.theta_start is not None), key=lambda b: b.theta_start
        )

    @property
    def names(self) -> list[str]:
        """θ entries' names: a block's name, with [j] for blocks of more than one entry."""
        return [
            b.name if b.size == 1 else f"{b.name}[{j}]"
            for b in self.trained
            for j in range(b.size)
        ]

    @property
    def theta_q(self) -> np.ndarray:
        """The q index of each θ entry."""
        idx = [np.arange(b.q_start, b.q_start + b.size) for b in self.trained]
        return np.concatenate(idx) if idx else np.empty(0, dtype=np.int64)

    @property
    def start(self) -> np.ndarray:
        """θ entries' constrained start values."""
        return self.q0[self.theta_q]


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


def plan_training(
    distribution, *, frozen=(), train_base: bool = False, context_size: int = 0
) -> TrainingPlan:
    """Lists the trainable parameters of `distribution` and their starting point.

    Args:
        distribution: a TransformedDistribution over `Normal` (scalar events) or
            `MultivariateNormalDiag`, through a Chain (or single bijector) of declared
            elementwise bijectors, Affine / ScaleMatvecTriL, Permute, MaskedAutoregressiveFlow
            and RealNVP members.
        frozen: block names (as in `TrainingPlan.blocks`, e.g. '1.PReLU.alpha', or a
            member-level prefix such as '0.Affine') kept at their bound values.
        train_base: also train the base's loc and scale (named 'base.loc' and 'base.scale'
            or 'base.scale_diag'; the scale through Softplus, as a Positive parameter).
        context_size: the flow's context size (0: unconditional).

    Raises:
        SymflowError: for a flow the training kernel cannot compile, naming the part.
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
    try:
        flow_members = distribution.bijector._flow_members(n)
    except SymflowError as err:
        raise SymflowError(f"fit: {err}") from err
    bijectors = _bijectors_in_inverse_order(distribution.bijector)
    if len(bijectors) != len(flow_members):  # pragma: no cover - a member kind's bug
        raise SymflowError("fit: internal error: members and flow members disagree.")
    base_part = base_member(base, n, trainable=train_base)
    flow = FlowCode([m.code for m in flow_members], base_part.code, n, context_size)
    frozen = tuple(frozen)
    matched: set[str] = set()
    every: list[str] = []
    blocks: list[ThetaBlock] = []
    theta = 0
    for k, block, q_start in flow.layout():
        owner = "base" if k == len(flow_members) else f"{k}.{flow_members[k].name}"
        name = f"{owner}.{block.name}"
        if not block.trainable or block.size == 0:
            blocks.append(ThetaBlock(name, k, q_start, block.size, block.constraint, None))
            continue
        every.append(name)
        hits = [f for f in frozen if name == f or name.startswith(f + ".")]
        matched.update(hits)
        slot = None if hits else theta
        if slot is not None:
            theta += block.size
        blocks.append(ThetaBlock(name, k, q_start, block.size, block.constraint, slot))
    unknown = [f for f in frozen if f not in matched]
    if unknown:
        raise SymflowError(
            f"fit: frozen names {unknown} match no parameter; the flow's parameters are "
            f"{every[:20]}{' ...' if len(every) > 20 else ''} (a member prefix such as "
            f"'{every[0].rsplit('.', 1)[0]}' freezes all of its parameters)."
            if every
            else f"fit: frozen names {unknown} match no parameter; the flow has none."
        )
    if theta == 0:
        raise SymflowError("fit: every parameter is frozen; there is nothing to train.")
    q0 = np.concatenate([m.values for m in flow_members] + [base_part.values])
    members = list(zip(bijectors, flow_members, strict=True))
    return TrainingPlan(flow, members, base_part, blocks, q0, distribution, train_base)


def _bijectors_in_inverse_order(bijector) -> list:
    if isinstance(bijector, Chain):
        return [m for b in bijector.bijectors for m in _bijectors_in_inverse_order(b)]
    return [bijector]
