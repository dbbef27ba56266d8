"""MaskedAutoregressiveFlow: y_i = f(x_i; θ_i(y_<i)), f any declared elementwise bijector.

TFP's `tfb.MaskedAutoregressiveFlow` (Papamakarios et al. 2017), with a declared
transformer in place of the hand-written shift and log-scale: y = f(x; θ) per coordinate,
θ_i = constrain(network(y)_i), the network a MADE (`AutoregressiveNetwork`), so θ_i depends
on y_1..y_{i-1} only and the Jacobian is triangular: log|det J| = sum_i log|f'(x_i; θ_i)|.
The density direction (inverse, data to base) is one network pass; sampling (forward)
produces coordinates in order, computing every hidden unit once.
"""

from __future__ import annotations

from symflow.bijectors.conditioned import ConditionedLayer, as_transformer, identity_bias
from symflow.bijectors.networks import AutoregressiveNetwork
from symflow.codegen.flow.conditioned import ConditionedCode
from symflow.errors import ShapeError

__all__ = ["MaskedAutoregressiveFlow"]


class MaskedAutoregressiveFlow(ConditionedLayer):
    """A masked autoregressive layer whose transformer is any declared bijector.

    Each parameter of the transformer comes from the network's outputs for its coordinate,
    mapped into the parameter's constraint: Real as is, Positive (and NonZero, produced
    positive) as 1e-3 + softplus, an interval (lo, hi) through a sigmoid kept 1e-3 of the
    width inside (`symflow.codegen.flow.transformer.OUTPUT_FLOOR`).

    Args:
        transformer: a declared elementwise bijector (sfb.AffineScalar, sfb.SinhArcsinh, a
            user's @sf.bijector, ...); a bound one stands for its declaration. Default:
            AffineScalar, y = shift + scale x with a positive scale.
        network: an `AutoregressiveNetwork` with one output per transformer parameter;
            default: one built from `event_size`, `hidden_units`, `activation`,
            `context_size` and `seed`, starting at the identity (last layer zero, its bias
            the raw values of the transformer's identity parameters;
            `conditioned.identity_parameters` gives the rule).
        event_size, hidden_units, activation, context_size, seed: for the default network.

    Raises:
        DeclarationError: the transformer is not a declared elementwise bijector.
        ShapeError: the network's outputs do not match the transformer's parameters.

    Example:
        >>> import numpy as np
        >>> from symflow import bijectors as sfb
        >>> maf = sfb.MaskedAutoregressiveFlow(sfb.SinhArcsinh, event_size=2, hidden_units=(8,))
        >>> np.allclose(maf.inverse(maf.forward(np.ones((3, 2)))), 1.0)  # doctest: +SKIP
        True
    """

    def __init__(
        self,
        transformer=None,
        network: AutoregressiveNetwork | None = None,
        *,
        event_size: int | None = None,
        hidden_units=(64, 64),
        activation: str = "relu",
        context_size: int | None = None,
        seed=0,
    ) -> None:
        transformer = as_transformer("MaskedAutoregressiveFlow", transformer)
        self.name = f"MaskedAutoregressiveFlow({transformer.name})"
        n_params = len(transformer.spec.parameters)
        if n_params == 0:
            raise ShapeError(
                f"{self.name}: the transformer {transformer.name} has no parameters, so there "
                "is nothing for the network to condition; use it as an elementwise bijector."
            )
        if network is None:
            if event_size is None:
                raise ShapeError(
                    f"{self.name}: give `network` (an sfb.AutoregressiveNetwork) or "
                    "`event_size` to build one."
                )
            network = AutoregressiveNetwork(
                n_params, event_size, hidden_units, activation=activation,
                context_size=context_size, seed=seed,
                output_bias=identity_bias(transformer, int(event_size)),
            )  # fmt: skip
        if not isinstance(network, AutoregressiveNetwork):
            raise ShapeError(
                f"{self.name}: `network` must be an sfb.AutoregressiveNetwork; got "
                f"{type(network).__name__}."
            )
        if network.params != n_params:
            raise ShapeError(
                f"{self.name}: the network gives {network.params} output(s) per coordinate, "
                f"but {transformer.name} has {n_params} parameter(s) "
                f"{list(transformer.spec.parameter_names)}. Build the network with "
                f"params={n_params}."
            )
        if event_size is not None and int(event_size) != network.event_size:
            raise ShapeError(
                f"{self.name}: event_size={event_size} but the network's event size is "
                f"{network.event_size}."
            )
        self._setup(transformer, network, network.event_size, network.context_size)

    def _code(self) -> ConditionedCode:
        return ConditionedCode(
            self._transformer_info, self.network.layout, event_size=self.event_size,
            autoregressive=True, context_size=self.context_size, label=self.name,
        )  # fmt: skip
