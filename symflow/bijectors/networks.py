"""Conditioner networks: MADE (`AutoregressiveNetwork`) and the dense network of a coupling
layer. They hold weights and no training logic; layers read their outputs through compiled
kernels, and `__call__` evaluates them in numpy for inspection.

Hidden units are sorted by degree (see `symflow.codegen.flow.network`), so each unit's
weights are a prefix of the layer below; they are stored packed, without masked zeros.
`weights` shows them as Keras does: a dense (n_in, n_out) kernel per layer (masked entries
zero) and a bias.
"""

from __future__ import annotations

import numpy as np

from symflow.codegen.flow.network import ACTIVATIONS, NetworkLayout, dense_layout, made_layout
from symflow.errors import ConstraintError, ShapeError

__all__ = ["AutoregressiveNetwork", "DenseNetwork", "MaskedNetwork"]


def _positive_int(owner: str, name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ShapeError(f"{owner}: `{name}` must be a positive integer; got {value!r}.")
    return int(value)


def _hidden(owner: str, hidden_units) -> tuple[int, ...]:
    try:
        units = tuple(hidden_units)
    except TypeError:
        units = None
    if units is None or not all(
        isinstance(u, (int, np.integer)) and not isinstance(u, bool) and u >= 1 for u in units
    ):
        raise ShapeError(
            f"{owner}: `hidden_units` must be a tuple of positive integers, e.g. (64, 64); got "
            f"{hidden_units!r}."
        )
    return tuple(int(u) for u in units)


def _activation(owner: str, activation: str) -> str:
    if activation not in ACTIVATIONS:
        raise ValueError(
            f"{owner}: unknown `activation` {activation!r}; choose one of {sorted(ACTIVATIONS)}."
        )
    return activation


class MaskedNetwork:
    """Dense layers with connectivity given by a `NetworkLayout`, and their weights.

    Not built directly: see `AutoregressiveNetwork` and `DenseNetwork`.
    """

    name = "MaskedNetwork"

    def __init__(self, layout: NetworkLayout, *, seed, output_bias, weights) -> None:
        self.layout = layout
        fans = layout.fans
        if weights is None:
            rng = np.random.default_rng(seed)
            packed = []
            for layer, fan in enumerate(fans):
                n_in, n_out = len(layout.degrees[layer]), len(fan)
                if layer == len(fans) - 1:
                    # The last layer starts at zero: each layer starts as its transformer at
                    # the output bias (the identity, as the layers set it).
                    kernel = np.zeros(int(sum(fan)))
                else:
                    limit = np.sqrt(6.0 / (n_in + n_out))  # Glorot uniform, as Keras/TFP
                    kernel = rng.uniform(-limit, limit, int(sum(fan)))
                packed.append([kernel, np.zeros(n_out)])
            if output_bias is not None:
                bias = np.asarray(output_bias, dtype=np.float64).reshape(-1)
                width = len(fans[-1])
                if bias.size not in (1, width):
                    raise ShapeError(
                        f"{self.name}: `output_bias` must have {width} entries (one per "
                        f"output) or one; got {bias.size}."
                    )
                packed[-1][1] = np.broadcast_to(bias, (width,)).copy()
            self._packed = [(k, b) for k, b in packed]
        else:
            self._packed = self._pack(weights)

    # -- weights -----------------------------------------------------------------------
    def _pack(self, weights) -> list[tuple[np.ndarray, np.ndarray]]:
        layout = self.layout
        if len(weights) != len(layout.fans):
            raise ShapeError(
                f"{self.name}: `weights` must hold {len(layout.fans)} (kernel, bias) pairs, one "
                f"per layer; got {len(weights)}."
            )
        packed = []
        for layer, ((kernel, bias), mask) in enumerate(zip(weights, layout.masks(), strict=True)):
            kernel = np.asarray(kernel, dtype=np.float64)
            bias = np.asarray(bias, dtype=np.float64).reshape(-1)
            if kernel.shape != mask.shape or bias.shape != (mask.shape[1],):
                raise ShapeError(
                    f"{self.name}: layer {layer} needs a kernel of shape {mask.shape} and a bias "
                    f"of shape ({mask.shape[1]},); got {kernel.shape} and {bias.shape}."
                )
            if np.any(kernel[~mask] != 0):
                raise ConstraintError(
                    f"{self.name}: layer {layer}'s kernel has nonzero entries where its mask is "
                    "0 (connections the autoregressive order forbids). Zero them, e.g. "
                    "kernel * network.masks[layer]."
                )
            for name, arr in (("kernel", kernel), ("bias", bias)):
                if not np.all(np.isfinite(arr)):
                    raise ConstraintError(
                        f"{self.name}: layer {layer}'s {name} must be finite; it holds nan or inf."
                    )
            packed.append((kernel.T[mask.T].copy(), bias.copy()))
        return packed

    @property
    def masks(self) -> list[np.ndarray]:
        """Each layer's (n_in, n_out) connectivity."""
        return self.layout.masks()

    @property
    def weights(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """(kernel (n_in, n_out), bias (n_out,)) per layer; masked kernel entries are 0."""
        out = []
        for (packed, bias), mask in zip(self._packed, self.layout.masks(), strict=True):
            kernel_t = np.zeros(mask.T.shape)
            kernel_t[mask.T] = packed
            out.append((kernel_t.T.copy(), bias.copy()))
        return out

    @property
    def hidden_units(self) -> tuple[int, ...]:
        return self.layout.widths[:-1]

    @property
    def activation(self) -> str:
        return self.layout.activation

    def values(self) -> np.ndarray:
        """Every weight and bias in the composed kernels' order (layer by layer, packed
        kernel then bias)."""
        return np.concatenate([a for pair in self._packed for a in pair])

    def unpacked(self, values: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """The (packed kernel, bias) pairs of a `values()` vector."""
        out, start = [], 0
        for kernel, bias in self._packed:
            out.append((values[start : start + kernel.size].copy(),))
            start += kernel.size
            out[-1] += (values[start : start + bias.size].copy(),)
            start += bias.size
        return out

    def with_values(self, values: np.ndarray):
        """A copy of this network holding `values` (as `values()` orders them)."""
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone._packed = self.unpacked(np.asarray(values, dtype=np.float64))
        return clone

    # -- evaluation (numpy, for inspection) --------------------------------------------
    def _apply(self, inputs: np.ndarray) -> np.ndarray:
        act = ACTIVATIONS[self.layout.activation].numpy
        h = inputs
        weights = self.weights
        for layer, (kernel, bias) in enumerate(weights):
            h = h @ kernel + bias
            if layer < len(weights) - 1:
                h = act(h)
        return h


class AutoregressiveNetwork(MaskedNetwork):
    """MADE (Germain et al. 2015), TFP's `tfb.AutoregressiveNetwork`: `params` outputs per
    event coordinate, output i depending only on inputs before i (and on the context).

    Inputs are in the layer's order, coordinate i with degree i + 1; hidden degrees cycle
    over 1..D-1 (0..D-1 with a context, so that the first coordinate's outputs see the
    context too), sorted; context inputs have degree 0 and reach every hidden unit.

    Args:
        params: outputs per coordinate (a transformer's parameter count).
        event_shape: D, the event size (an int or (D,)).
        hidden_units: widths of the hidden layers.
        activation: a key of `symflow.codegen.flow.network.ACTIVATIONS` ('relu', 'tanh',
            'elu', 'leaky_relu', 'sigmoid', 'softplus', 'silu').
        context_size: size of a context vector every output may depend on (None: none).
        seed: initial weights (Glorot uniform; the last layer starts at zero).
        output_bias: the last layer's bias (one value per output, or one for all).
        weights: [(kernel (n_in, n_out), bias)] per layer instead of an initialization.

    Example:
        >>> import numpy as np
        >>> net = AutoregressiveNetwork(2, 3, hidden_units=(8,), seed=0)
        >>> net(np.zeros((5, 3))).shape
        (5, 3, 2)
    """

    name = "AutoregressiveNetwork"

    def __init__(
        self,
        params: int,
        event_shape,
        hidden_units=(64, 64),
        *,
        activation: str = "relu",
        context_size: int | None = None,
        seed=0,
        output_bias=None,
        weights=None,
    ) -> None:
        owner = self.name
        shape = (event_shape,) if isinstance(event_shape, (int, np.integer)) else event_shape
        if not isinstance(shape, (tuple, list)) or len(shape) != 1:
            raise ShapeError(
                f"{owner}: `event_shape` must be an int D or (D,); got {event_shape!r}."
            )
        self.event_size = _positive_int(owner, "event_shape", shape[0])
        self.params = _positive_int(owner, "params", params)
        self.context_size = (
            0 if context_size is None else _positive_int(owner, "context_size", context_size)
        )
        layout = made_layout(
            self.event_size, _hidden(owner, hidden_units), self.params, self.context_size,
            _activation(owner, activation),
        )  # fmt: skip
        super().__init__(layout, seed=seed, output_bias=output_bias, weights=weights)

    def __call__(self, x, context=None) -> np.ndarray:
        """The raw outputs for inputs x (..., D): shape (..., D, params)."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim == 0 or x.shape[-1] != self.event_size:
            raise ShapeError(
                f"{self.name}: expected inputs of shape (..., {self.event_size}); got {x.shape}."
            )
        inputs = _with_context(self.name, x, context, self.context_size)
        out = self._apply(inputs)
        return out.reshape(x.shape[:-1] + (self.event_size, self.params))


class DenseNetwork(MaskedNetwork):
    """A fully connected network (a coupling layer's conditioner): `n_inputs` (after the
    context) → `n_outputs`, with the same weights layout as `AutoregressiveNetwork`."""

    name = "DenseNetwork"

    def __init__(
        self,
        n_inputs: int,
        n_outputs: int,
        hidden_units=(64, 64),
        *,
        activation: str = "relu",
        context_size: int | None = None,
        seed=0,
        output_bias=None,
        weights=None,
    ) -> None:
        owner = self.name
        self.n_inputs = _positive_int(owner, "n_inputs", n_inputs)
        self.n_outputs = _positive_int(owner, "n_outputs", n_outputs)
        self.context_size = (
            0 if context_size is None else _positive_int(owner, "context_size", context_size)
        )
        layout = dense_layout(
            self.context_size + self.n_inputs, _hidden(owner, hidden_units), self.n_outputs,
            _activation(owner, activation),
        )  # fmt: skip
        super().__init__(layout, seed=seed, output_bias=output_bias, weights=weights)

    def __call__(self, x, context=None) -> np.ndarray:
        """The raw outputs for inputs x (..., n_inputs): shape (..., n_outputs)."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim == 0 or x.shape[-1] != self.n_inputs:
            raise ShapeError(
                f"{self.name}: expected inputs of shape (..., {self.n_inputs}); got {x.shape}."
            )
        return self._apply(_with_context(self.name, x, context, self.context_size))


def _with_context(owner: str, x: np.ndarray, context, size: int) -> np.ndarray:
    if size == 0:
        if context is not None:
            raise ShapeError(f"{owner}: this network takes no context; got one.")
        return x
    if context is None:
        raise ShapeError(f"{owner}: this network needs a context of shape (..., {size}).")
    c = np.asarray(context, dtype=np.float64)
    if c.ndim == 0 or c.shape[-1] != size:
        raise ShapeError(f"{owner}: the context must have shape (..., {size}); got {c.shape}.")
    c = np.broadcast_to(c, x.shape[:-1] + (size,))
    return np.concatenate([c, x], axis=-1)
