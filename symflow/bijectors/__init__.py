"""Bijectors (TFP names): the declared elementwise catalog, Chain and Invert, and the
structured ones acting on vector events (Affine, ScaleMatvecTriL, FillTriangular, Permute)."""

from symflow.bijectors.affine import Affine, ScaleMatvecTriL
from symflow.bijectors.autoregressive import MaskedAutoregressiveFlow
from symflow.bijectors.catalog import (
    CATALOG,
    AffineScalar,
    Exp,
    Expm1,
    GumbelCDF,
    KumaraswamyCDF,
    NormalCDF,
    Power,
    PReLU,
    Scale,
    Shift,
    Sigmoid,
    SignedPower,
    Sinh,
    SinhArcsinh,
    Softplus,
    Softsign,
    Tanh,
    WeibullCDF,
)
from symflow.bijectors.chain import Chain
from symflow.bijectors.coupling import RealNVP
from symflow.bijectors.gathers import FillTriangular, Permute
from symflow.bijectors.invert import Invert, Log
from symflow.bijectors.networks import AutoregressiveNetwork, DenseNetwork

__all__ = [
    "Affine",
    "AutoregressiveNetwork",
    "DenseNetwork",
    "MaskedAutoregressiveFlow",
    "RealNVP",
    "FillTriangular",
    "Permute",
    "ScaleMatvecTriL",
    "CATALOG",
    "AffineScalar",
    "Chain",
    "Exp",
    "Expm1",
    "GumbelCDF",
    "Invert",
    "KumaraswamyCDF",
    "Log",
    "NormalCDF",
    "PReLU",
    "Power",
    "Scale",
    "Shift",
    "Sigmoid",
    "SignedPower",
    "Sinh",
    "SinhArcsinh",
    "Softplus",
    "Softsign",
    "Tanh",
    "WeibullCDF",
]
