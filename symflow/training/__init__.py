"""Compiled maximum-likelihood training: plan → generated NLL/gradient/loop module → fit."""

from symflow.training.fit import FitResult, fit, load_parameters, training_kernels
from symflow.training.optimizers import SGD, Adam

__all__ = ["SGD", "Adam", "FitResult", "fit", "load_parameters", "training_kernels"]
