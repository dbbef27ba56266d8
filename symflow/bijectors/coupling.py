"""RealNVP: a coupling layer whose transformer is any declared elementwise bijector.

TFP's `tfb.RealNVP` (Dinh et al. 2017): coordinates [0, num_masked) pass through and
condition a dense network whose outputs give the transformer's parameters for the others,
y_i = f(x_i; θ_i(x_<num_masked)). Both directions are one network pass; log|det J| =
sum over the transformed coordinates of log|f'|. Flows alternate which half conditions by
permuting between layers (`symflow.flows.coupling_flow`).
"""

from __future__ import annotations

from symflow.bijectors.conditioned import ConditionedLayer, as_transformer, identity_bias
from symflow.bijectors.networks import DenseNetwork
from symflow.codegen.flow.conditioned import ConditionedCode
from symflow.errors import ShapeError

__all__ = ["RealNVP"]


class RealNVP(ConditionedLayer):
    """A coupling layer: the first `num_masked` coordinates condition the rest.

    Args:
        num_masked: coordinates left unchanged (TFP's name), 1 <= num_masked < event_size.
        transformer: a declared elementwise bijector (default AffineScalar with a positive
            scale); its parameters are constrained as in `MaskedAutoregressiveFlow`.
        event_size: the event size.
        hidden_units, activation, context_size, seed: the dense network (starting at the
            identity: last layer zero, its bias the identity parameters' raw values).
        network: a `DenseNetwork` with num_masked inputs and (event_size - num_masked) *
            n_params outputs, instead of building one.

    Example:
        >>> import numpy as np
        >>> from symflow import bijectors as sfb
        >>> nvp = sfb.RealNVP(1, event_size=2, hidden_units=(8,))
        >>> nvp.forward(np.zeros((1, 2))).shape  # doctest: +SKIP
        (1, 2)
    """

    def __init__(
        self,
        num_masked: int,
        transformer=None,
        *,
        event_size: int,
        hidden_units=(64, 64),
        activation: str = "relu",
        context_size: int | None = None,
        seed=0,
        network: DenseNetwork | None = None,
    ) -> None:
        transformer = as_transformer("RealNVP", transformer)
        self.name = f"RealNVP({transformer.name})"
        n = int(event_size)
        if (
            not isinstance(num_masked, int)
            or isinstance(num_masked, bool)
            or not 0 < num_masked < n
        ):
            raise ShapeError(
                f"{self.name}: `num_masked` must be an integer in [1, {n - 1}] (some "
                f"coordinates condition, the others are transformed); got {num_masked!r}."
            )
        n_params = len(transformer.spec.parameters)
        if n_params == 0:
            raise ShapeError(
                f"{self.name}: the transformer {transformer.name} has no parameters to condition."
            )
        n_out = (n - num_masked) * n_params
        if network is None:
            network = DenseNetwork(
                num_masked, n_out, hidden_units, activation=activation,
                context_size=context_size, seed=seed,
                output_bias=identity_bias(transformer, n - num_masked),
            )  # fmt: skip
        if not isinstance(network, DenseNetwork) or (network.n_inputs, network.n_outputs) != (
            num_masked,
            n_out,
        ):
            raise ShapeError(
                f"{self.name}: `network` must be an sfb DenseNetwork with {num_masked} inputs "
                f"and {n_out} outputs."
            )
        self.num_masked = num_masked
        self._setup(transformer, network, n, network.context_size)

    def _code(self) -> ConditionedCode:
        return ConditionedCode(
            self._transformer_info, self.network.layout, event_size=self.event_size,
            autoregressive=False, num_masked=self.num_masked, context_size=self.context_size,
            label=self.name,
        )  # fmt: skip
