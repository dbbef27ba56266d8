"""TensorFlow Probability's bijector walkthrough, reproduced through symflow's API.

Each step returns the numbers it prints, so tests can assert them; `symflow demo` and
`examples/tfp_walkthrough.py` run `main()`. Where TFP's walkthrough hand-writes an
inverse and a log-det for a custom bijector (`tfb_inline`), symflow is given the forward
map only and derives and checks the rest.
"""

from __future__ import annotations

import numpy as np
import sympy as sp

import symflow as sf
from symflow import bijectors as sfb
from symflow import distributions as sfd

__all__ = [
    "affine_scalar_step",
    "tiny_flow",
    "tiny_flow_data",
    "train_tiny_flow",
    "true_nll",
    "exponential_icdf",
    "exponential_step",
    "flow_step",
    "main",
    "normal_cdf_step",
    "prelu",
]


@sf.bijector(domain=sf.UnitInterval)
def exponential_icdf(u, rate: sf.Positive = 1.0):
    """y = -log(1 - u) / rate: uniform draws to exponential ones (the inverse CDF)."""
    return -sp.log(1 - u) / rate


@sf.bijector
def prelu(x, alpha: sf.Positive = 0.5):
    """y = x for x >= 0, alpha * x below: a PReLU written as a Piecewise forward map."""
    return sp.Piecewise((x, x >= 0), (alpha * x, True))


def normal_cdf_step(x: float = 2.01) -> dict:
    """Normal(0, 1).log_prob(x), and the same through Uniform and the NormalCDF bijector."""
    direct = sfd.Normal(0.0, 1.0).log_prob(x)
    b = sfb.NormalCDF()
    via_bijector = sfd.Uniform().log_prob(b.forward(x)) + b.forward_log_det_jacobian(
        x, event_ndims=0
    )
    return {"direct": float(direct), "via_bijector": float(via_bijector)}


def affine_scalar_step() -> dict:
    """AffineScalar(0, 2): densities by the change of variables, and the transformed cdf."""
    x = np.array([0.0, 0.5, 1.0])
    normal = sfd.Normal(0.0, 1.0)
    b = sfb.AffineScalar(shift=0.0, scale=2.0)
    z = b.forward(x)
    transformed = sfd.TransformedDistribution(normal, b)
    return {
        "x": x,
        "z": z,
        "log_prob_x": normal.log_prob(x),
        "log_prob_z": normal.log_prob(b.inverse(z)) + b.inverse_log_det_jacobian(z, event_ndims=0),
        "transformed_log_prob_z": transformed.log_prob(z),
        "transformed_cdf_z": transformed.cdf(z),
        "normal_cdf_x": normal.cdf(x),
    }


def exponential_step(n: int = 1_000_000, rate: float = 0.5, seed: int = 0) -> dict:
    """Exponential(rate) draws by pushing Uniform draws through a declared inverse CDF."""
    b = exponential_icdf(rate=rate)
    draws = sfd.TransformedDistribution(sfd.Uniform(), b).sample(n, seed=seed)
    grid = np.array([0.1, 1.0, 5.0])
    return {
        "inverse_expr": exponential_icdf.inverse_expr,
        "mean": float(draws.mean()),
        "variance": float(draws.var()),
        "n": n,
        # the change of variables recovers the exponential density exactly
        "log_prob": sfd.TransformedDistribution(sfd.Uniform(), b).log_prob(grid),
        "exponential_log_prob": sfd.Exponential(rate).log_prob(grid),
    }


#: The flow's parameters: a 2-vector shift, a lower-triangular scale filled from three
#: numbers (TFP's FillTriangular order) and a rank-2 perturbation.
FLOW_SHIFT = (1.0, -0.5)
FLOW_TRIL_ENTRIES = (0.9, 0.3, 1.2)
FLOW_PERTURB_FACTOR = ((0.2, -0.1), (0.4, 0.3))
FLOW_ALPHA = 0.5


def flow() -> sfd.TransformedDistribution:
    """PReLU, then Affine, over MultivariateNormalDiag(loc=(0, 0)) (sampling direction)."""
    scale_tril = sfb.FillTriangular().forward(np.array(FLOW_TRIL_ENTRIES))
    affine = sfb.Affine(
        shift=np.array(FLOW_SHIFT),
        scale_tril=scale_tril,
        scale_perturb_factor=np.array(FLOW_PERTURB_FACTOR),
    )
    chain = sfb.Chain([affine, prelu(alpha=FLOW_ALPHA)])
    return sfd.TransformedDistribution(sfd.MultivariateNormalDiag(loc=np.zeros(2)), chain)


def flow_step(seed: int = 0) -> dict:
    """log_prob and sample of the flow; the density integrates to one on a grid."""
    d = flow()
    points = np.array([[0.0, 0.0], [1.5, -1.0], [2.0, 1.5]])
    samples = d.sample(100_000, seed=seed)
    # Riemann sum of p over a box holding all but a sliver of the mass.
    g = np.linspace(-9.0, 11.0, 801)
    h = g[1] - g[0]
    grid = np.stack(np.meshgrid(g, g, indexing="ij"), axis=-1)
    mass = float(np.exp(d.log_prob(grid)).sum() * h * h)
    return {
        "scale_tril": d.bijector.bijectors[0].parameters["scale_tril"],
        "points": points,
        "log_prob": d.log_prob(points),
        "sample_mean": samples.mean(axis=0),
        "mean_log_prob_of_samples": float(d.log_prob(samples).mean()),
        "mass": mass,
    }


#: The tiny flow's starting point: L = I (from (1, 0, 1)), a small rank-2 perturbation.
TINY_ALPHA = 0.5
TINY_TRIL_ENTRIES = (1.0, 0.0, 1.0)
TINY_PERTURB_FACTOR = ((0.1, 0.0), (0.0, 0.1))


def tiny_flow() -> sfd.TransformedDistribution:
    """The walkthrough's trainable flow at its starting point (sampling direction): the
    declared PReLU, then Affine (shift, FillTriangular scale, rank-2 perturbation), over
    MultivariateNormalDiag(loc=(0, 0))."""
    affine = sfb.Affine(
        shift=np.zeros(2),
        scale_tril=sfb.FillTriangular().forward(np.array(TINY_TRIL_ENTRIES)),
        scale_perturb_factor=np.array(TINY_PERTURB_FACTOR),
    )
    chain = sfb.Chain([affine, prelu(alpha=TINY_ALPHA)])
    return sfd.TransformedDistribution(sfd.MultivariateNormalDiag(loc=np.zeros(2)), chain)


def tiny_flow_data(seed: int = 0, n: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """(training, held-out) samples of the target: a 2-D Gaussian, mean (1, 1), scale 2."""
    rng = np.random.default_rng(seed)
    return 1.0 + 2.0 * rng.standard_normal((n, 2)), 1.0 + 2.0 * rng.standard_normal((n, 2))


def true_nll(data: np.ndarray) -> float:
    """Mean negative log-likelihood of `data` under the target itself."""
    target = sfd.MultivariateNormalDiag(loc=np.ones(2), scale_diag=np.full(2, 2.0))
    return float(-target.log_prob(data).mean())


def train_tiny_flow(epochs: int = 100, *, seed: int = 0, progress: bool = True) -> dict:
    """The walkthrough's training: Adam(1e-2), batch 100, on 1000 target samples."""
    data, held_out = tiny_flow_data(seed)
    result = sf.fit(
        tiny_flow(), data, epochs=epochs, batch_size=100, optimizer=sf.Adam(learning_rate=1e-2),
        seed=seed, progress=progress,
    )  # fmt: skip
    return {
        "result": result,
        "data": data,
        "held_out_nll": float(-result.distribution.log_prob(held_out).mean()),
        "true_held_out_nll": true_nll(held_out),
        "steps": epochs * -(-len(data) // 100),
    }


def main(train_epochs: int = 100) -> None:
    """Runs every step and prints its numbers beside the walkthrough's."""
    np.set_printoptions(precision=7, suppress=True)
    print("1. Normal(0, 1).log_prob(2.01), directly and via Uniform + NormalCDF:")
    s = normal_cdf_step()
    print(f"   {s['direct']:.6f}  and  {s['via_bijector']:.6f}   (walkthrough: -2.938989)")

    print("\n2. AffineScalar(shift=0, scale=2) on x = (0, 0.5, 1):")
    s = affine_scalar_step()
    print(f"   Normal log_prob(x)                    {s['log_prob_x']}")
    print("     walkthrough: (-0.9189385, -1.0439385, -1.4189385)")
    print(f"   log_prob(inverse(z)) + ildj(z)        {s['log_prob_z']}")
    print(f"   TransformedDistribution.log_prob(z)   {s['transformed_log_prob_z']}")
    print("     walkthrough (float32 there): (-1.6120857, -1.7370857, -2.1120858)")
    print(f"   TransformedDistribution.cdf(z)        {s['transformed_cdf_z']}")
    print(f"   Normal cdf(x)                         {s['normal_cdf_x']}")
    print("     walkthrough: (0.5, 0.6914625, 0.8413447)")

    print("\n3. Exponential(0.5) draws from Uniform draws through y = -log(1 - u)/rate:")
    s = exponential_step()
    print(f"   derived inverse: u = {s['inverse_expr']}")
    print(f"   sample mean {s['mean']:.4f} (truth 2), variance {s['variance']:.4f} (truth 4)")
    print(f"   change-of-variables log_prob {s['log_prob']}")
    print(f"   Exponential(0.5).log_prob    {s['exponential_log_prob']}")

    print("\n4. A declared PReLU, then Affine (FillTriangular scale, rank-2 perturbation),")
    print("   over MultivariateNormalDiag(loc=(0, 0)):")
    print(f"   PReLU's derived inverse: x = {prelu.inverse_expr}")
    s = flow_step()
    print(f"   scale_tril = FillTriangular()({list(FLOW_TRIL_ENTRIES)}) =")
    print("   " + str(s["scale_tril"]).replace("\n", "\n   "))
    for p, lp in zip(s["points"], s["log_prob"], strict=True):
        print(f"   log_prob({p}) = {lp:.7f}")
    print(f"   mean of 100000 samples {s['sample_mean']}")
    print(f"   mean log_prob of the samples {s['mean_log_prob_of_samples']:.4f}")
    print(f"   integral of prob over [-9, 11]^2: {s['mass']:.6f}")

    print("\n5. Training that flow on 1000 samples of N((1, 1), 2^2 I): Adam(1e-2), batch 100,")
    print(f"   {train_epochs} epochs, one compiled loop (sf.fit):")
    s = train_tiny_flow(train_epochs)
    r = s["result"]
    print(f"   loss per epoch: first {r.history[0]:.4f}, last {r.history[-1]:.4f}")
    print(
        f"   held-out NLL {s['held_out_nll']:.4f}; "
        f"the true distribution's {s['true_held_out_nll']:.4f}"
    )
    print(
        f"   {s['steps']} steps in {r.seconds * 1e3:.1f} ms "
        f"({r.seconds / s['steps'] * 1e6:.2f} us per "
        f"step); planning + compile/load {r.compile_seconds:.2f} s"
    )


if __name__ == "__main__":
    main()
