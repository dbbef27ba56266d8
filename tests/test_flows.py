"""Masked autoregressive and coupling flows, against independent truth.

Gradients against 50-digit central differences of an mpmath implementation of the same
negative log-likelihood; Jacobians against mpmath; the density's integral; round trips;
one-pass sampling against the coordinate-by-coordinate reference; a declared transformer
that beats the affine one; errors that name the argument. The flows are tiny (3
coordinates, hidden (4,)) and shared by module fixtures: each compiles once.
"""

from __future__ import annotations

import mpmath as mp
import numpy as np
import pytest

import symflow as sf
from symflow import bijectors as sfb
from symflow import distributions as sfd
from symflow import flows
from symflow.codegen.flow.transformer import OUTPUT_FLOOR
from symflow.errors import DeclarationError, ShapeError
from symflow.training.fit import training_kernels

FLOOR = mp.mpf(OUTPUT_FLOOR)
# one worker runs this module: its fixtures' kernels compile once, not on both workers
pytestmark = pytest.mark.xdist_group("flows")


def _randomized(d: sfd.TransformedDistribution, seed: int, scale: float):
    """The flow with every network weight and bias drawn at random (the builders start at
    the identity, where the hidden layers' gradients vanish)."""
    rng = np.random.default_rng(seed)
    members = [
        b.with_values(scale * rng.standard_normal(b.network.values().size))
        if hasattr(b, "network")
        else b
        for b in d.bijector.bijectors
    ]
    return sfd.TransformedDistribution(d.distribution, sfb.Chain(members))


@pytest.fixture(scope="module")
def maf3():
    return _randomized(flows.masked_autoregressive_flow(3, layers=2, hidden_units=(4,)), 1, 0.7)


@pytest.fixture(scope="module")
def nvp3():
    return _randomized(flows.coupling_flow(3, layers=2, hidden_units=(4,)), 2, 0.7)


# ---- an mpmath implementation of the same flows ---------------------------------------


def _mp_weights(layer, values):
    """The dense (kernel[u][o], bias[o]) of each network layer from the packed values (mp
    numbers kept exact): unit o of a layer sees the first fan[o] units below, its weights
    stored from off[o] (the layout's documented packing)."""
    layout, out, start = layer.network.layout, [], 0
    for n, (fan, off) in enumerate(zip(layout.fans, layout.offsets, strict=True)):
        n_in, n_out = len(layout.degrees[n]), len(fan)
        kernel = [
            [values[start + off[o] + u] if u < fan[o] else mp.mpf(0) for o in range(n_out)]
            for u in range(n_in)
        ]
        start += sum(fan)
        out.append((kernel, values[start : start + n_out]))
        start += n_out
    assert start == len(values)
    return out


def _mp_network(weights, inputs):
    """The ReLU network on mp numbers."""
    h = list(inputs)
    for layer, (kernel, bias) in enumerate(weights):
        z = [
            bias[o] + mp.fsum(kernel[u][o] * h[u] for u in range(len(h))) for o in range(len(bias))
        ]
        h = z if layer == len(weights) - 1 else [max(v, mp.mpf(0)) for v in z]
    return h


def _mp_affine_inverse(y, raw_shift, raw_scale):
    """AffineScalar's inverse with its parameters from raw outputs: x, log|dx/dy|."""
    scale = FLOOR + mp.log1p(mp.exp(raw_scale))
    return (y - raw_shift) / scale, -mp.log(scale)


def _mp_layer_inverse(layer, values, y, context=()):
    """One layer's inverse on a list of mp numbers (values: its network's weights); a
    context enters the network before the event's inputs (the documented order)."""
    weights = _mp_weights(layer, [mp.mpf(v) for v in values])
    n, c = len(y), list(context)
    if isinstance(layer, sfb.MaskedAutoregressiveFlow):
        out = _mp_network(weights, c + list(y))
        pairs = [_mp_affine_inverse(y[j], out[2 * j], out[2 * j + 1]) for j in range(n)]
        return [p[0] for p in pairs], mp.fsum(p[1] for p in pairs)
    d = layer.num_masked
    out = _mp_network(weights, c + list(y[:d]))
    pairs = [_mp_affine_inverse(y[d + j], out[2 * j], out[2 * j + 1]) for j in range(n - d)]
    return list(y[:d]) + [p[0] for p in pairs], mp.fsum(p[1] for p in pairs)


def _mp_nll(flow, member_values, rows, contexts=None):
    """Mean -log p of `rows` (mp): each member's inverse in turn, then the standard normal;
    `contexts` (one per row) for a conditional flow."""
    total = mp.mpf(0)
    for r, row in enumerate(rows):
        v, ldj = [mp.mpf(float(a)) for a in row], mp.mpf(0)
        c = () if contexts is None else [mp.mpf(float(a)) for a in contexts[r]]
        for k, b in enumerate(flow.bijector.bijectors):
            if isinstance(b, sfb.Permute):
                inv = np.argsort(b.permutation)
                v = [v[i] for i in inv]
            else:
                v, ld = _mp_layer_inverse(b, member_values[k], v, c)
                ldj += ld
        logp = -mp.fsum(x * x for x in v) / 2 - len(v) * mp.log(2 * mp.pi) / 2
        total += logp + ldj
    return -total / len(rows)


def _member_values(kernels, theta):
    """θ (mp numbers) split into each member's values, by the plan's blocks."""
    plan = kernels.plan
    q = [mp.mpf(float(v)) for v in plan.q0]
    for t, i in zip(theta, plan.theta_q, strict=True):
        q[int(i)] = t
    out = {}
    for b in plan.blocks:
        out.setdefault(b.owner, []).extend(q[b.q_start : b.q_start + b.size])
    return out


@pytest.mark.parametrize("which", ["maf3", "nvp3"])
def test_gradient_of_every_weight_matches_50_digit_finite_differences(which, request):
    flow = request.getfixturevalue(which)
    kernels = training_kernels(flow)
    assert all(name.split(".")[-1].startswith(("kernel", "bias")) for name in
               (n.split("[")[0] for n in kernels.plan.names))  # fmt: skip
    ys = np.random.default_rng(3).standard_normal((3, 3)) * 1.5
    theta0 = kernels.theta0
    loss, grad = kernels.nll_and_grad(theta0, ys)
    assert np.count_nonzero(grad) > 0.8 * grad.size  # random weights: (almost) all live
    with mp.workdps(50):
        theta = [mp.mpf(float(t)) for t in theta0]
        exact = _mp_nll(flow, _member_values(kernels, theta), ys)
        assert abs(loss - float(exact)) < 1e-13 * max(1.0, abs(float(exact)))
        h = mp.mpf(10) ** -20
        for j in range(len(theta)):
            up, down = list(theta), list(theta)
            up[j] += h
            down[j] -= h
            fd = (
                _mp_nll(flow, _member_values(kernels, up), ys)
                - _mp_nll(flow, _member_values(kernels, down), ys)
            ) / (2 * h)
            assert abs(grad[j] - float(fd)) <= 1e-12 * max(1.0, abs(float(fd))), (
                kernels.plan.names[j]
            )


@pytest.mark.parametrize("which", ["maf3", "nvp3"])
def test_each_layers_jacobian_is_triangular_and_its_log_det_matches_mpmath(which, request):
    flow = request.getfixturevalue(which)
    rng = np.random.default_rng(4)
    for layer in flow.bijector.bijectors:
        if isinstance(layer, sfb.Permute):
            continue
        values = [mp.mpf(float(v)) for v in layer.network.values()]
        for y in rng.standard_normal((3, 3)):
            # Triangular: coordinate i of the inverse does not move with a later one (the
            # compiled kernel, perturbed one input at a time: exactly no change).
            base = layer.inverse(y[None])[0]
            for j in range(3):
                bumped = y.copy()
                bumped[j] += 0.25
                moved = layer.inverse(bumped[None])[0] != base
                assert not moved[:j].any(), (j, moved)
                if isinstance(layer, sfb.MaskedAutoregressiveFlow) or j >= layer.num_masked:
                    assert moved[j]
            with mp.workdps(40):
                ymp = [mp.mpf(float(v)) for v in y]

                def g(*args, i, layer=layer, values=values):
                    return _mp_layer_inverse(layer, values, list(args))[0][i]

                jac = mp.matrix(3, 3)
                for i in range(3):
                    for j in range(3):
                        order = [0, 0, 0]
                        order[j] = 1
                        jac[i, j] = mp.diff(lambda *a, i=i: g(*a, i=i), ymp, tuple(order))
                logdet = mp.log(abs(mp.det(jac)))
            ildj = layer.inverse_log_det_jacobian(y[None])[0]
            assert abs(ildj - float(logdet)) < 1e-13 * max(1.0, abs(float(logdet)))
            x = layer.inverse(y[None])
            np.testing.assert_allclose(layer.forward_log_det_jacobian(x), -ildj, rtol=1e-13)


@pytest.mark.parametrize("which", ["maf3", "nvp3"])
def test_inverse_of_forward_is_the_identity(which, request):
    flow = request.getfixturevalue(which)
    x = np.random.default_rng(5).standard_normal((500, 3)) * 2.0
    chain = flow.bijector
    y, fldj = chain.forward(x), chain.forward_log_det_jacobian(x, event_ndims=1)
    np.testing.assert_allclose(chain.inverse(y), x, rtol=0, atol=1e-12)
    np.testing.assert_allclose(chain.inverse_log_det_jacobian(y, event_ndims=1), -fldj, atol=1e-12)
    samples = flow.sample(4000, seed=2)
    assert samples.shape == (4000, 3) and np.isfinite(samples).all()
    np.testing.assert_allclose(
        chain.forward(chain.inverse(samples)), samples, rtol=1e-12, atol=1e-12
    )


def test_large_batches_on_threads_equal_small_calls(maf3):
    """From PARALLEL_ROWS rows the batch runs as chunks on several threads: the same
    values as small calls of the same kernel, in order."""
    import numba

    from symflow.runtime.composed import PARALLEL_ROWS

    threads = numba.get_num_threads()
    numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
    try:
        x = np.random.default_rng(13).standard_normal((PARALLEL_ROWS + 777, 3))
        small = np.concatenate([maf3.log_prob(x[i : i + 500]) for i in range(0, len(x), 500)])
        np.testing.assert_allclose(maf3.log_prob(x), small, rtol=1e-14, atol=1e-14)
        y = maf3.bijector.forward(x)
        np.testing.assert_allclose(y[-300:], maf3.bijector.forward(x[-300:]), rtol=1e-14)
    finally:
        numba.set_num_threads(threads)


def test_one_pass_sampling_equals_the_coordinate_by_coordinate_reference(maf3):
    # The reference: D network passes, each producing one more coordinate (numpy network).
    rng = np.random.default_rng(6)
    for layer in maf3.bijector.bijectors:
        if not isinstance(layer, sfb.MaskedAutoregressiveFlow):
            continue
        x = rng.standard_normal((50, 3))
        y = np.zeros_like(x)
        for i in range(3):
            out = layer.network(y).reshape(len(y), -1)
            shift, raw = out[:, 2 * i], out[:, 2 * i + 1]
            scale = OUTPUT_FLOOR + np.logaddexp(0.0, raw)
            y[:, i] = shift + scale * x[:, i]
        np.testing.assert_allclose(layer.forward(x), y, rtol=1e-13, atol=1e-13)


def test_density_integrates_to_one_over_the_plane():
    d = _randomized(flows.masked_autoregressive_flow(2, layers=2, hidden_units=(8,)), 7, 0.3)
    g = np.linspace(-9.0, 9.0, 721)
    xx, yy = np.meshgrid(g, g, indexing="ij")
    p = d.prob(np.stack([xx.ravel(), yy.ravel()], axis=1)).reshape(xx.shape)
    total = np.trapezoid(np.trapezoid(p, g, axis=1), g)
    assert abs(total - 1.0) < 1e-4, total
    # The coupling flow: the same.
    c = _randomized(flows.coupling_flow(2, layers=2, hidden_units=(8,)), 8, 0.3)
    p = c.prob(np.stack([xx.ravel(), yy.ravel()], axis=1)).reshape(xx.shape)
    assert abs(np.trapezoid(np.trapezoid(p, g, axis=1), g) - 1.0) < 1e-4


# ---- a declared transformer ------------------------------------------------------------


@sf.bijector
def sas_loc_scale(x, loc: sf.Real, scale: sf.Positive, skew: sf.Real, tail: sf.Positive):
    """loc + scale sinh((asinh(x) + skew) tail): skewed, heavy- or light-tailed."""
    import sympy as sp

    return loc + scale * sp.sinh((sp.asinh(x) + skew) * tail)


def _skewed_heavy_tailed(n: int, seed: int):
    """x1 = sinh((asinh(z1) - 0.8) / 0.6) (skewed, heavy-tailed); x2 = x1 / 2 + 0.5 z2^3-ish
    (a skewed conditional): samples and their exact log-density."""
    z = np.random.default_rng(seed).standard_normal((n, 2))
    a, t = -0.8, 0.6
    x1 = np.sinh((np.arcsinh(z[:, 0]) - a) / t)
    # x1 = h(z1), z1 = sinh(t asinh(x1) + a); log p = log N(z1) + log |dz1/dx1|.
    z1 = np.sinh(t * np.arcsinh(x1) + a)
    logp1 = -0.5 * z1**2 - 0.5 * np.log(2 * np.pi)
    logp1 += np.log(t * np.cosh(t * np.arcsinh(x1) + a) / np.sqrt(1 + x1**2))
    x2 = 0.5 * x1 + np.sinh(z[:, 1] + 0.5)
    w = x2 - 0.5 * x1  # = sinh(z2 + 0.5)
    logp2 = -0.5 * (np.arcsinh(w) - 0.5) ** 2 - 0.5 * np.log(2 * np.pi) - 0.5 * np.log1p(w**2)
    return np.stack([x1, x2], axis=1), logp1 + logp2


def test_a_declared_sinh_arcsinh_transformer_beats_the_affine_one():
    train, _ = _skewed_heavy_tailed(3000, 10)
    held, logp = _skewed_heavy_tailed(3000, 11)
    truth = -logp.mean()
    nll = {}
    for name, transformer in (("affine", None), ("sas", sas_loc_scale)):
        d = flows.masked_autoregressive_flow(2, transformer, layers=2, hidden_units=(16,), seed=3)
        fitted = sf.fit(d, train, epochs=40, batch_size=128, optimizer=sf.Adam(5e-3),
                        progress=False)  # fmt: skip
        nll[name] = -fitted.distribution.log_prob(held).mean()
    gap_affine, gap_sas = nll["affine"] - truth, nll["sas"] - truth
    assert gap_sas < 0.5 * gap_affine, (truth, nll)


def test_each_layer_starts_at_the_identity_found_without_algebra():
    """The identity values of a transformer whose defaults are not the identity, with a
    sinh/asinh form SymPy's `solve` cannot finish (it ran for minutes); the built flow's
    forward map is then exactly the identity."""
    import sympy as sp

    from symflow.bijectors.conditioned import identity_parameters

    @sf.bijector
    def sas_interval(x, loc: sf.Real, scale: sf.Positive, skew: sf.Real,
                     tail: sf.Interval(0.25, 4)):  # fmt: skip
        return loc + scale * sp.sinh((sp.asinh(x) + skew) * tail)

    assert identity_parameters(sas_interval) == {"loc": 0, "scale": 1, "skew": 0, "tail": 1}
    x = np.random.default_rng(5).standard_normal((6, 2))
    d = flows.masked_autoregressive_flow(2, sas_interval, layers=1, hidden_units=(3,))
    np.testing.assert_allclose(d.bijector.forward(x), x, rtol=0, atol=1e-12)


# ---- training machinery on a flow with networks ---------------------------------------


def test_fit_is_deterministic_and_saves_and_loads(maf3, tmp_path):
    data = np.random.default_rng(12).standard_normal((300, 3)) @ np.array(
        [[1.0, 0.5, 0.0], [0.0, 1.0, 0.3], [0.0, 0.0, 1.0]]
    )
    runs = [
        sf.fit(
            maf3, data, epochs=3, batch_size=64, validation_fraction=0.2, seed=4, progress=False
        )  # fmt: skip
        for _ in range(2)
    ]
    assert runs[0].history == runs[1].history and runs[0].history[-1] < runs[0].history[0]
    assert len(runs[0].validation_history) == 3
    x = data[:7]
    np.testing.assert_array_equal(
        runs[0].distribution.log_prob(x), runs[1].distribution.log_prob(x)
    )
    path = tmp_path / "maf.json"
    runs[0].save(path)
    loaded = sf.load_parameters(maf3, path)
    np.testing.assert_array_equal(loaded.log_prob(x), runs[0].distribution.log_prob(x))


def test_64_dimensions_and_five_layers_train_and_evaluate():
    """The digits' size: no per-coordinate unrolling limit (a loop per coordinate and
    permutation once made Numba's control-flow analysis recurse past Python's limit)."""
    d = flows.masked_autoregressive_flow(64, layers=5, hidden_units=(4,), seed=1)
    x = np.random.default_rng(14).standard_normal((200, 64)) * np.linspace(0.5, 2.0, 64)
    fitted = sf.fit(d, x, epochs=3, batch_size=100, optimizer=sf.Adam(1e-2), progress=False)
    assert np.all(np.isfinite(fitted.history)) and fitted.history[-1] < fitted.history[0]
    lp = fitted.distribution.log_prob(x)
    assert lp.shape == (200,) and np.isfinite(lp).all()
    assert -lp.mean() < fitted.history[0]


# ---- errors ------------------------------------------------------------------------------


def test_bad_input_gets_an_error_naming_the_argument(maf3):
    with pytest.raises(ShapeError, match="3"):
        maf3.log_prob(np.zeros((4, 2)))
    with pytest.raises(ShapeError, match="finite"):
        sf.fit(maf3, np.full((10, 3), np.nan), epochs=1, progress=False)
    with pytest.raises(ShapeError, match="3"):
        sf.fit(maf3, np.zeros((10, 2)), epochs=1, progress=False)
    with pytest.raises(DeclarationError, match="transformer"):
        flows.masked_autoregressive_flow(2, "affine")
    with pytest.raises(DeclarationError, match="whole events"):
        flows.coupling_flow(2, sfb.Affine(shift=np.zeros(1), scale_tril=np.eye(1)))
    with pytest.raises(ValueError, match="activation"):
        flows.masked_autoregressive_flow(2, activation="swish-ish")
    with pytest.raises(ShapeError, match="hidden_units"):
        flows.masked_autoregressive_flow(2, hidden_units=(0,))
    with pytest.raises(ShapeError, match="event_size"):
        flows.coupling_flow(1)
