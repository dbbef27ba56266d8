"""`coupling_flow`: a RealNVP-style coupling flow (Dinh et al. 2017) with any transformer."""

from __future__ import annotations

import numpy as np

from symflow.bijectors import RealNVP
from symflow.distributions import TransformedDistribution
from symflow.errors import ShapeError
from symflow.flows._common import assemble_flow, check_sizes, permutations

__all__ = ["coupling_flow"]


def coupling_flow(
    event_size: int,
    transformer=None,
    *,
    layers: int = 5,
    hidden_units=(64, 64),
    activation: str = "relu",
    num_masked: int | None = None,
    permutation: str = "reverse",
    context_size: int | None = None,
    seed=0,
) -> TransformedDistribution:
    """A coupling flow over a standard normal base.

    Each layer is an `sfb.RealNVP`: the first `num_masked` coordinates (default
    event_size // 2) pass through and condition a dense network giving the transformer's
    parameters for the others. The permutation between layers (reverse by default) makes
    the halves alternate. Both directions are one network pass per layer.

    Args:
        event_size: D (at least 2).
        transformer: any declared elementwise bijector (default AffineScalar).
        layers, hidden_units, activation, permutation, context_size, seed: as in
            `masked_autoregressive_flow`.
        num_masked: the coordinates each layer leaves unchanged.

    Example:
        >>> from symflow import flows
        >>> d = flows.coupling_flow(2, layers=2, hidden_units=(16,))
        >>> d.sample(3, seed=0).shape  # doctest: +SKIP
        (3, 2)
    """
    owner = "coupling_flow"
    n, count, c = check_sizes(owner, event_size, layers, context_size)
    if n < 2:
        raise ShapeError(
            f"{owner}: a coupling layer needs event_size >= 2 (one part conditions the "
            f"other); got {n}. Use masked_autoregressive_flow with context for 1-D events."
        )
    d = n // 2 if num_masked is None else num_masked
    seeds = np.random.SeedSequence(seed).spawn(count + 1)
    nvp = [
        RealNVP(
            d,
            transformer,
            event_size=n,
            hidden_units=hidden_units,
            activation=activation,
            context_size=c or None,
            seed=np.random.default_rng(s),
        )  # fmt: skip
        for s in seeds[:count]
    ]
    perms = permutations(owner, permutation, n, count - 1, np.random.default_rng(seeds[-1]))
    return assemble_flow(nvp, perms, n)
