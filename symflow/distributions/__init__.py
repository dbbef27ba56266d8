"""Distributions (TFP names): Normal, Uniform, Exponential, MultivariateNormalDiag, and
TransformedDistribution, which pushes a base distribution through a bijector.

Densities, cdfs and samples run on numpy arrays; a transformed distribution calls the
bijector's compiled kernels once per batch.
"""

from symflow.distributions.distribution import Distribution
from symflow.distributions.mvn import MultivariateNormalDiag
from symflow.distributions.scalar import Exponential, Normal, Uniform
from symflow.distributions.transformed import TransformedDistribution

__all__ = [
    "Distribution",
    "Exponential",
    "MultivariateNormalDiag",
    "Normal",
    "TransformedDistribution",
    "Uniform",
]
