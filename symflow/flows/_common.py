"""What the flow builders share: argument checks, permutations, the standard normal base."""

from __future__ import annotations

import numpy as np

from symflow.bijectors import Chain, Permute
from symflow.distributions import MultivariateNormalDiag, TransformedDistribution
from symflow.errors import ShapeError

__all__ = ["assemble_flow", "check_sizes", "permutations"]

#: The permutations a builder puts between its layers.
PERMUTATIONS = ("reverse", "random", "none")


def check_sizes(owner: str, event_size, layers, context_size) -> tuple[int, int, int]:
    """(event_size, layers, context_size) as ints; context_size None means 0.

    Raises:
        ShapeError: for a non-positive or non-integer size.
    """

    def positive(name, value):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ShapeError(f"{owner}: `{name}` must be a positive integer; got {value!r}.")
        return int(value)

    n = positive("event_size", event_size)
    k = positive("layers", layers)
    c = 0 if context_size is None else positive("context_size", context_size)
    return n, k, c


def permutations(owner: str, kind: str, event_size: int, count: int, rng) -> list:
    """`count` permutations of range(event_size) to put between layers.

    Raises:
        ValueError: for an unknown kind.
    """
    if kind not in PERMUTATIONS:
        raise ValueError(f"{owner}: `permutation` must be one of {PERMUTATIONS}; got {kind!r}.")
    if kind == "none" or event_size == 1:
        return [None] * count
    if kind == "reverse":
        return [np.arange(event_size)[::-1]] * count
    return [rng.permutation(event_size) for _ in range(count)]


def assemble_flow(layers: list, perms: list, event_size: int) -> TransformedDistribution:
    """A standard normal base pushed through the layers, with the permutations between
    them; layers[0] is the one nearest the data (its inverse runs first on data)."""
    members = []
    for k, layer in enumerate(layers):
        members.append(layer)
        if k < len(layers) - 1 and perms[k] is not None:
            members.append(Permute(perms[k]))
    base = MultivariateNormalDiag(loc=np.zeros(event_size), scale_diag=np.ones(event_size))
    return TransformedDistribution(base, Chain(members))
