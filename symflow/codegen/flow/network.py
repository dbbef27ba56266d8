"""Masked dense networks as generated code: the conditioners of autoregressive and
coupling layers.

A network is a stack of dense layers whose units carry *degrees* (MADE, Germain et al.
2015): an input's degree is its position in the layer's order (1..D; context inputs 0), a
hidden unit connects to the units of the layer below whose degree is at most its own, and
an output for dimension i (degree i) to the units below of degree less than i. Output i
then depends on inputs before i only. Hidden units are kept **sorted by degree**, so the
units one unit connects to are a prefix of the layer below: each unit has a *fan-in*
`fan[o]`, and its weights are stored packed, `w[off[o] : off[o] + fan[o]]` (no masked
zeros are stored, multiplied or trained). A coupling layer's network is the special case
where every input has degree 0 and every unit connects to all of the layer below.

Sorted degrees also make one-pass sampling possible: when dimensions are produced in
order, the hidden units of degree d are computed as soon as dimension d exists, each
exactly once (`NetworkCode.forward_degree`), so sampling costs about one network pass
instead of D.

Activations are held feature-major like the rows (`h[unit, row]`), so every inner loop
runs over rows, contiguous, and vectorizes whatever the layer widths.
"""

from __future__ import annotations

import bisect
import functools
import inspect
from dataclasses import dataclass

import numpy as np

from symflow.codegen.flow.member import Block, Emitter

__all__ = [
    "ACTIVATIONS",
    "Activation",
    "NetworkCode",
    "NetworkLayout",
    "dense_layout",
    "made_layout",
]


@dataclass(frozen=True)
class Activation:
    """A hidden layer's nonlinearity: its value in `_z` and derivative in (`_z`, `_h`), as
    source, the math helpers they call, and a numpy version (for reference evaluation)."""

    value: str
    derivative: str
    helpers: tuple[str, ...]
    numpy: object


def _np_sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))


#: The selectable activations, by name.
ACTIVATIONS: dict[str, Activation] = {
    "relu": Activation(
        "_z if _z > 0.0 else 0.0", "1.0 if _z > 0.0 else 0.0", (), lambda z: np.maximum(z, 0.0)
    ),
    "leaky_relu": Activation(
        "_z if _z > 0.0 else 0.01 * _z",
        "1.0 if _z > 0.0 else 0.01",
        (),
        lambda z: np.where(z > 0, z, 0.01 * z),
    ),
    "tanh": Activation("_sf_tanh(_z)", "1.0 - _h * _h", ("_sf_tanh",), np.tanh),
    "elu": Activation(
        "_z if _z > 0.0 else _sf_expm1(_z)",
        "1.0 if _z > 0.0 else _h + 1.0",
        ("_sf_expm1",),
        lambda z: np.where(z > 0, z, np.expm1(np.minimum(z, 0.0))),
    ),
    "sigmoid": Activation("_sf_sigmoid(_z)", "_h * (1.0 - _h)", ("_sf_sigmoid",), _np_sigmoid),
    "softplus": Activation(
        "_sf_softplus(_z)",
        "_sf_sigmoid(_z)",
        ("_sf_softplus", "_sf_sigmoid"),
        lambda z: np.logaddexp(0.0, z),
    ),
    "silu": Activation(
        "_z * _sf_sigmoid(_z)",
        "_sf_sigmoid(_z) * (1.0 + _z * (1.0 - _sf_sigmoid(_z)))",
        ("_sf_sigmoid",),
        lambda z: z * _np_sigmoid(z),
    ),
}


@dataclass(frozen=True)
class NetworkLayout:
    """The structure of a masked network (no values).

    Attributes:
        degrees: degrees of the inputs, of each hidden layer's units and of the outputs.
        fans: per layer (hidden..., output), each unit's fan-in (a prefix of the layer
            below).
        activation: the hidden layers' nonlinearity (a key of ACTIVATIONS).
    """

    degrees: tuple[tuple[int, ...], ...]
    fans: tuple[tuple[int, ...], ...]
    activation: str

    @property
    def n_inputs(self) -> int:
        return len(self.degrees[0])

    @property
    def widths(self) -> tuple[int, ...]:
        """Units per layer (hidden..., outputs)."""
        return tuple(len(f) for f in self.fans)

    @property
    def offsets(self) -> tuple[tuple[int, ...], ...]:
        """Start of each unit's packed weights within its layer's kernel block."""
        return tuple(
            tuple(int(v) for v in np.concatenate([[0], np.cumsum(f)[:-1]])) for f in self.fans
        )

    def kernel_sizes(self) -> tuple[int, ...]:
        return tuple(int(sum(f)) for f in self.fans)

    def masks(self) -> list[np.ndarray]:
        """Each layer's connectivity as a dense (n_in, n_out) boolean mask."""
        out = []
        for layer, fan in enumerate(self.fans):
            n_in = len(self.degrees[layer])
            out.append(np.arange(n_in)[:, None] < np.asarray(fan)[None, :])
        return out

    def groups(self, layer: int, n_degrees: int) -> tuple[int, ...]:
        """For hidden layer `layer`: the first unit of each degree 0..n_degrees (so units of
        degree d are [g[d], g[d + 1]))."""
        deg = self.degrees[layer + 1]
        return tuple(bisect.bisect_left(deg, d) for d in range(n_degrees + 1))

    def key(self) -> str:
        return f"net:{self.activation}:{self.degrees}"


def _n(value) -> str:
    """An integer argument of a kernel call in generated code. A bare constant would reach
    the callee as a Numba literal type, and Numba compiles one specialization per distinct
    literal (four copies of `_nn_dense_backward` in a two-hidden-layer MADE, each linked
    into every function above it); `np.int64(...)` is typed as plain int64."""
    text = str(value)
    return f"np.int64({text})" if text.lstrip("-").isdigit() else text


def _fans(degrees) -> tuple[tuple[int, ...], ...]:
    fans = []
    for layer in range(1, len(degrees)):
        below = degrees[layer - 1]
        last = layer == len(degrees) - 1
        pick = bisect.bisect_left if last else bisect.bisect_right  # < for outputs, <= hidden
        fans.append(tuple(pick(below, d) for d in degrees[layer]))
    return tuple(fans)


def made_layout(
    event_size: int, hidden_units, n_params: int, context_size: int, activation: str
) -> NetworkLayout:
    """The MADE layout: inputs [context (degree 0), x_1..x_D (degrees 1..D)], hidden degrees
    cycling over d_min..D-1 (d_min = 0 with a context, so that the first dimension's outputs
    see it; 1 without), sorted; `n_params` outputs per dimension, dimension-major
    (output j * n_params + p is parameter p of dimension j)."""
    d = event_size
    inputs = (0,) * context_size + tuple(range(1, d + 1))
    lo = 0 if context_size else 1
    span = max(d - lo, 1)
    hidden = [tuple(sorted(lo + (j % span) for j in range(width))) for width in hidden_units]
    outputs = tuple(j + 1 for j in range(d) for _ in range(n_params))
    degrees = (inputs, *hidden, outputs)
    return NetworkLayout(degrees, _fans(degrees), activation)


def dense_layout(n_inputs: int, hidden_units, n_outputs: int, activation: str) -> NetworkLayout:
    """A fully connected network (a coupling layer's): every unit sees the whole layer below."""
    degrees = ((0,) * n_inputs, *((0,) * w for w in hidden_units), (1,) * n_outputs)
    return NetworkLayout(degrees, _fans(degrees), activation)


# ---- functions pasted into generated modules -------------------------------------------


def _nn_dense(w, b, fan, off, x, z, lo, hi, m):
    """z[o, :m] = b[o] + sum_{u < fan[o]} w[off[o] + u] x[u, :m] for units lo <= o < hi.

    Two units and four inputs per pass over the rows (eight multiply-adds for four input
    loads): about 29 GFLOP/s on one AVX2 core for 64 x 64 x 256, 2.2x the one-unit,
    one-input loop. Fans must not decrease with the unit (a pair shares [0, fan[o]))."""
    o = lo
    while o + 1 < hi:
        za, zb = z[o], z[o + 1]
        ba, bb = b[o], b[o + 1]
        sa, sb = off[o], off[o + 1]
        for i in range(m):
            za[i] = ba
            zb[i] = bb
        f = fan[o]
        f4 = f - f % 4
        for u in range(0, f4, 4):
            a0, a1, a2, a3 = w[sa + u], w[sa + u + 1], w[sa + u + 2], w[sa + u + 3]
            b0, b1, b2, b3 = w[sb + u], w[sb + u + 1], w[sb + u + 2], w[sb + u + 3]
            x0, x1, x2, x3 = x[u], x[u + 1], x[u + 2], x[u + 3]
            for i in range(m):
                v0, v1, v2, v3 = x0[i], x1[i], x2[i], x3[i]
                za[i] += a0 * v0 + a1 * v1 + a2 * v2 + a3 * v3
                zb[i] += b0 * v0 + b1 * v1 + b2 * v2 + b3 * v3
        for u in range(f4, f):
            wa, wb, xu = w[sa + u], w[sb + u], x[u]
            for i in range(m):
                za[i] += wa * xu[i]
                zb[i] += wb * xu[i]
        _nn_row_add(w, sb, f, fan[o + 1], x, zb, m)
        o += 2
    if o < hi:
        zo, bo = z[o], b[o]
        for i in range(m):
            zo[i] = bo
        _nn_row_add(w, off[o], np.int64(0), fan[o], x, zo, m)


def _nn_row_add(w, s, lo, hi, x, zo, m):
    """zo[:m] += sum_{lo <= u < hi} w[s + u] x[u, :m]."""
    for u in range(lo, hi):
        wu, xu = w[s + u], x[u]
        for i in range(m):
            zo[i] += wu * xu[i]


def _nn_dense_backward(w, fan, off, x, dz, gw, gb, dx, n_in, n_out, m, need_dx):
    """Adds d/dw and d/db of a dense layer (units dz[:n_out]) to gw, gb; dx[:n_in] = d/dx
    (if need_dx). Fans must not decrease with the unit (degrees sorted, as they are).

    The weight gradients take four inputs per pass over a unit's d/dz row, d/dx four units
    per pass over an input's row (about 1.6x the one-at-a-time loops)."""
    for o in range(n_out):
        dzo = dz[o]
        acc = 0.0
        for i in range(m):
            acc += dzo[i]
        gb[o] += acc
        s, f = off[o], fan[o]
        f4 = f - f % 4
        for u in range(0, f4, 4):
            x0, x1, x2, x3 = x[u], x[u + 1], x[u + 2], x[u + 3]
            a0 = a1 = a2 = a3 = 0.0
            for i in range(m):
                d = dzo[i]
                a0 += d * x0[i]
                a1 += d * x1[i]
                a2 += d * x2[i]
                a3 += d * x3[i]
            gw[s + u] += a0
            gw[s + u + 1] += a1
            gw[s + u + 2] += a2
            gw[s + u + 3] += a3
        for u in range(f4, f):
            xu = x[u]
            acc = 0.0
            for i in range(m):
                acc += dzo[i] * xu[i]
            gw[s + u] += acc
    if not need_dx:
        return
    for u in range(n_in):
        dxu = dx[u]
        for i in range(m):
            dxu[i] = 0.0
    o = 0
    while o + 4 <= n_out:
        d0, d1, d2, d3 = dz[o], dz[o + 1], dz[o + 2], dz[o + 3]
        s0, s1, s2, s3 = off[o], off[o + 1], off[o + 2], off[o + 3]
        f0 = fan[o]  # the four units share inputs [0, f0)
        for u in range(f0):
            w0, w1, w2, w3 = w[s0 + u], w[s1 + u], w[s2 + u], w[s3 + u]
            dxu = dx[u]
            for i in range(m):
                dxu[i] += w0 * d0[i] + w1 * d1[i] + w2 * d2[i] + w3 * d3[i]
        for oo in range(o + 1, o + 4):
            _nn_dx_add(w, off[oo], f0, fan[oo], dz[oo], dx, m)
        o += 4
    for oo in range(o, n_out):
        _nn_dx_add(w, off[oo], np.int64(0), fan[oo], dz[oo], dx, m)


def _nn_dx_add(w, s, lo, hi, dzo, dx, m):
    """dx[u, :m] += w[s + u] dzo[:m] for lo <= u < hi."""
    for u in range(lo, hi):
        wu = w[s + u]
        dxu = dx[u]
        for i in range(m):
            dxu[i] += wu * dzo[i]


_ACT_TEMPLATE = '''
@numba.njit(cache=True, error_model="numpy", fastmath={{"reassoc", "contract"}})
def _nn_act_{name}(z, h, lo, hi, m):
    """h = {name}(z) for units lo <= o < hi (h may be z)."""
    for o in range(lo, hi):
        for i in range(m):
            _z = z[o, i]
            h[o, i] = {value}


@numba.njit(cache=True, error_model="numpy", fastmath={{"reassoc", "contract"}})
def _nn_act_{name}_grad(z, h, d, n, m):
    """d *= {name}'(z): d/dh into d/dz, for the first n units."""
    for o in range(n):
        for i in range(m):
            _z = z[o, i]
            _h = h[o, i]
            d[o, i] *= {derivative}
'''


@functools.cache
def _dense_source() -> str:
    return "".join(
        '\n@numba.njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})\n'
        + inspect.getsource(fn)
        for fn in (_nn_dense, _nn_row_add, _nn_dense_backward, _nn_dx_add)
    )


class NetworkCode:
    """Emits one member's network: its constants, work arrays, forward and backward code.

    Blocks: `layer{l}.kernel` (packed weights) and `layer{l}.bias` for each layer.
    """

    def __init__(self, layout: NetworkLayout) -> None:
        if layout.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {layout.activation!r}")
        self.layout = layout
        sizes = layout.kernel_sizes()
        self.blocks = tuple(
            b
            for layer, (width, size) in enumerate(zip(layout.widths, sizes, strict=True))
            for b in (Block(f"layer{layer}.kernel", size), Block(f"layer{layer}.bias", width))
        )

    @property
    def n_layers(self) -> int:
        return len(self.layout.fans)

    @property
    def n_outputs(self) -> int:
        return self.layout.widths[-1]

    def _register(self, e: Emitter) -> None:
        act = ACTIVATIONS[self.layout.activation]
        e.add_helper("_nn_dense", _dense_source())
        name = self.layout.activation
        e.add_helper(
            f"_nn_act_{name}",
            _ACT_TEMPLATE.format(name=name, value=act.value, derivative=act.derivative),
        )
        for h in act.helpers:
            e.printer.helpers.add(h)
        for layer, (fan, off) in enumerate(
            zip(self.layout.fans, self.layout.offsets, strict=True)
        ):
            for what, values in (("FAN", fan), ("OFF", off)):
                const = f"NN{e.k}_{what}{layer}"
                e.add_helper(const, f"{const} = np.array({list(values)!r}, dtype=np.int64)\n")

    def scratch(self, e: Emitter, train: bool) -> list[tuple[str, str]]:
        widths = self.layout.widths
        arrays = [(e.s(f"h{j}_"), f"({w}, _B)") for j, w in enumerate(widths[:-1])]
        arrays.append((e.s("out"), f"({widths[-1]}, _B)"))
        if train:
            arrays += [(e.s(f"z{j}_"), f"({w}, _B)") for j, w in enumerate(widths[:-1])]
            if len(widths) > 1:
                top = max(widths[:-1])
                arrays += [(e.s("da"), f"({top}, _B)"), (e.s("db"), f"({top}, _B)")]
        return arrays

    def _args(self, e: Emitter, layer: int) -> str:
        return (
            f"{e.q_slice(f'layer{layer}.kernel')}, {e.q_slice(f'layer{layer}.bias')}, "
            f"NN{e.k}_FAN{layer}, NN{e.k}_OFF{layer}"
        )

    def forward(self, e: Emitter, inp: str, train: bool) -> list[str]:
        """The whole network on `inp`: outputs into the member's `out` array."""
        self._register(e)
        name, widths = self.layout.activation, self.layout.widths
        lines = [f"# member {e.k}: the network ({' -> '.join(map(str, widths))}, {name})"]
        below = inp
        for layer, width in enumerate(widths):
            last = layer == len(widths) - 1
            h = e.s("out") if last else e.s(f"h{layer}_")
            z = e.s(f"z{layer}_") if train and not last else h
            lines.append(
                f"_nn_dense({self._args(e, layer)}, {below}, {z}, {_n(0)}, {_n(width)}, _m)"
            )
            if not last:
                lines.append(f"_nn_act_{name}({z}, {h}, {_n(0)}, {_n(width)}, _m)")
            below = h
        return lines

    def forward_degree(self, e: Emitter, inp: str, degree: str, out_lo: str, out_hi: str):
        """The hidden units of degree `degree` in every layer, then outputs [out_lo, out_hi)."""
        self._register(e)
        name, widths = self.layout.activation, self.layout.widths
        n_degrees = max(max(d) for d in self.layout.degrees) + 1
        lines = []
        below = inp
        for layer in range(len(widths) - 1):
            const = f"NN{e.k}_G{layer}"
            groups = self.layout.groups(layer, n_degrees)
            e.add_helper(const, f"{const} = np.array({list(groups)!r}, dtype=np.int64)\n")
            h = e.s(f"h{layer}_")
            lo, hi = f"{const}[{degree}]", f"{const}[{degree} + 1]"
            lines.append(f"_nn_dense({self._args(e, layer)}, {below}, {h}, {lo}, {hi}, _m)")
            lines.append(f"_nn_act_{name}({h}, {h}, {lo}, {hi}, _m)")
            below = h
        last = len(widths) - 1
        lines.append(
            f"_nn_dense({self._args(e, last)}, {below}, {e.s('out')}, {_n(out_lo)}, "
            f"{_n(out_hi)}, _m)"
        )
        return lines

    def backward(self, e: Emitter, inp: str, d_inp: str | None) -> list[str]:
        """Reverse pass from d/d outputs (in the `out` array) down to d/d inputs (into
        `d_inp`, unless None), adding every weight's and bias's gradient into gq."""
        name, widths = self.layout.activation, self.layout.widths
        lines = [f"# member {e.k}: the network's reverse pass"]
        d_above = e.s("out")
        spare = [e.s("da"), e.s("db")]
        for layer in range(len(widths) - 1, -1, -1):
            below = e.s(f"h{layer - 1}_") if layer else inp
            n_below = widths[layer - 1] if layer else self.layout.n_inputs
            if layer:
                d_below, need = spare[layer % 2], "True"
            else:
                d_below, need = (d_inp, "True") if d_inp is not None else (spare[0], "False")
                if len(widths) == 1 and d_inp is None:
                    d_below = d_above  # unused (need_dx False); any float64 2-D array
            kern, bias = f"layer{layer}.kernel", f"layer{layer}.bias"
            lines.append(
                f"_nn_dense_backward({e.q_slice(kern)}, NN{e.k}_FAN{layer}, NN{e.k}_OFF{layer}, "
                f"{below}, {d_above}, {e.g_slice(kern)}, {e.g_slice(bias)}, {d_below}, "
                f"{_n(n_below)}, {_n(widths[layer])}, _m, np.bool_({need}))"
            )
            if layer:
                lines.append(
                    f"_nn_act_{name}_grad({e.s(f'z{layer - 1}_')}, {below}, {d_below}, "
                    f"{_n(widths[layer - 1])}, _m)"
                )
            d_above = d_below
        return lines
