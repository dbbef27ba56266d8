"""`masked_autoregressive_flow`: a MAF (Papamakarios et al. 2017) with any transformer."""

from __future__ import annotations

import numpy as np

from symflow.bijectors import MaskedAutoregressiveFlow
from symflow.distributions import TransformedDistribution
from symflow.flows._common import assemble_flow, check_sizes, permutations

__all__ = ["masked_autoregressive_flow"]


def masked_autoregressive_flow(
    event_size: int,
    transformer=None,
    *,
    layers: int = 5,
    hidden_units=(64, 64),
    activation: str = "relu",
    permutation: str = "reverse",
    context_size: int | None = None,
    seed=0,
) -> TransformedDistribution:
    """A masked autoregressive flow over a standard normal base.

    Each layer is an `sfb.MaskedAutoregressiveFlow`: the transformer applied to every
    coordinate with parameters from a MADE network of the coordinates before it (and the
    context). Layers are separated by permutations and start near the identity.
    `log_prob` is one compiled call per batch (every layer, network and transformer);
    sampling produces coordinates in order at about the cost of one network pass.

    Args:
        event_size: D, the size of an event.
        transformer: any declared elementwise bijector (sfb.AffineScalar, sfb.SinhArcsinh, a
            user's @sf.bijector ...); default AffineScalar (shift and positive scale).
        layers: the number of autoregressive layers.
        hidden_units: widths of each MADE's hidden layers.
        activation: the hidden layers' nonlinearity ('relu', 'tanh', 'elu', ...).
        permutation: 'reverse' (default), 'random' (seeded) or 'none' between layers.
            Above 2 dimensions 'random' usually trains better: with 'reverse' every other
            layer sees the same order (64-D digits, 5 layers, 30 epochs: held-out NLL
            about 61.4 with 'random' vs 67.0 with 'reverse').
        context_size: an int for a conditional flow p(x | context).
        seed: initial weights and random permutations.

    Returns:
        A TransformedDistribution; `sf.fit` trains it.

    Raises:
        ShapeError: non-positive sizes. DeclarationError: a transformer that is not a
        declared elementwise bijector.

    Example:
        >>> from symflow import flows
        >>> d = flows.masked_autoregressive_flow(2, layers=2, hidden_units=(16,))
        >>> d.sample(3, seed=0).shape  # doctest: +SKIP
        (3, 2)
    """
    owner = "masked_autoregressive_flow"
    n, count, c = check_sizes(owner, event_size, layers, context_size)
    seeds = np.random.SeedSequence(seed).spawn(count + 1)
    made = [
        MaskedAutoregressiveFlow(
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
    return assemble_flow(made, perms, n)
