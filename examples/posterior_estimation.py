"""Neural posterior estimation with a conditional MAF, checked against the exact posterior.

The simulator is a Gaussian-linear model whose posterior is known in closed form, sbibm's
"gaussian_linear" task (Lueckmann et al. 2021) in 5 dimensions, its data shifted:

    theta ~ N(0, 0.1 I_5)                   (prior, 5 parameters)
    x | theta ~ N(theta + shift, 0.1 I_5)   (simulated data; shift = (0, 10, 20, 30, 40))

so p(theta | x) = N((x - shift) / 2, 0.05 I). The shift makes the raw contexts badly
scaled (means 0 to 40), which the context standardization `sf.fit` applies by default
takes care of.

We simulate pairs (theta, x), train q(theta | x) = `flows.masked_autoregressive_flow(5,
context_size=5)` by maximum likelihood on theta given x (amortized: one network for every
x), and measure on held-out pairs from the joint

    KL estimate = mean over (theta, x) of [log p(theta | x) - log q(theta | x)],

the expected KL divergence from the exact posterior to q (0 for a perfect q). Run:

    python examples/posterior_estimation.py [--n 20000] [--epochs 40] [--png posterior.png]

With matplotlib (`pip install ".[plot]"`) it also draws q's samples for one observed x next
to the exact posterior's, pair by pair for the first three parameters.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import symflow as sf
from symflow import flows

DIM = 5
PRIOR_VAR = 0.1
NOISE_VAR = 0.1
SHIFT = 10.0 * np.arange(DIM)


def simulate(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n pairs (theta, x) from the joint: theta from the prior, x from the simulator."""
    rng = np.random.default_rng(seed)
    theta = np.sqrt(PRIOR_VAR) * rng.standard_normal((n, DIM))
    x = theta + SHIFT + np.sqrt(NOISE_VAR) * rng.standard_normal((n, DIM))
    return theta, x


def exact_posterior(x: np.ndarray) -> tuple[np.ndarray, float]:
    """The posterior's mean (one row per x) and its standard deviation (every coordinate)."""
    shrink = PRIOR_VAR / (PRIOR_VAR + NOISE_VAR)
    return (x - SHIFT) * shrink, float(np.sqrt(NOISE_VAR * shrink))


def exact_log_posterior(theta: np.ndarray, x: np.ndarray) -> np.ndarray:
    mean, sd = exact_posterior(x)
    z = (theta - mean) / sd
    return -0.5 * (z * z).sum(axis=1) - DIM * (np.log(sd) + 0.5 * np.log(2 * np.pi))


def kl_estimate(q, theta: np.ndarray, x: np.ndarray) -> tuple[float, float]:
    """Mean of log p(theta | x) - log q(theta | x) over joint draws, and its standard error."""
    diff = exact_log_posterior(theta, x) - q.log_prob(theta, context=x)
    return float(diff.mean()), float(diff.std(ddof=1) / np.sqrt(diff.size))


def plot(path: str, q, x_obs: np.ndarray, seed: int) -> bool:
    """q's samples at x_obs against the exact posterior's; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    n = 5000
    drawn = q.sample(n, seed=seed, context=x_obs)
    mean, sd = exact_posterior(x_obs[None])
    exact = mean + sd * np.random.default_rng(seed + 1).standard_normal((n, DIM))
    pairs = [(0, 1), (1, 2), (0, 2)]
    fig, axes = plt.subplots(1, len(pairs), figsize=(4.2 * len(pairs), 4.0))
    for ax, (i, j) in zip(axes, pairs, strict=True):
        ax.scatter(exact[:, i], exact[:, j], s=2, alpha=0.25, color="0.45", label="exact")
        ax.scatter(drawn[:, i], drawn[:, j], s=2, alpha=0.25, color="tab:blue", label="q")
        ax.set_xlabel(f"theta[{i}]")
        ax.set_ylabel(f"theta[{j}]")
        ax.set_aspect("equal", adjustable="datalim")
    axes[0].legend(markerscale=6, loc="upper left")
    fig.suptitle("posterior at one observed x: conditional MAF samples vs exact")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000, help="simulated training pairs")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--layers", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--png", default="posterior_estimation.png")
    args = parser.parse_args()

    theta, x = simulate(args.n, args.seed)
    held_theta, held_x = simulate(5000, args.seed + 1)
    q0 = flows.masked_autoregressive_flow(
        DIM, layers=args.layers, hidden_units=(64, 64), context_size=DIM, seed=args.seed
    )
    start = time.perf_counter()
    result = sf.fit(
        q0,
        theta,
        context=x,
        epochs=args.epochs,
        batch_size=256,
        optimizer=sf.Adam(learning_rate=1e-3),
        seed=args.seed,
        validation_data=(held_theta[:1000], held_x[:1000]),
        progress=False,
    )
    wall = time.perf_counter() - start
    q = result.distribution
    print(
        f"trained q(theta | x) on {args.n} simulations, {args.epochs} epochs: "
        f"{result.seconds:.2f} s training ({result.seconds / args.epochs * 1e3:.1f} ms an "
        f"epoch), {result.compile_seconds:.1f} s compile or cache load, {wall:.1f} s in all"
    )
    print(f"  context standardization (from the training x): mean {q.context_standardization[0]}")
    kl, se = kl_estimate(q, held_theta[1000:], held_x[1000:])
    print(f"  KL(p(theta | x) || q) estimate on 4000 held-out pairs: {kl:.4f} +- {se:.4f} nats")
    nll = -float(q.log_prob(held_theta[1000:], context=held_x[1000:]).mean())
    exact_nll = -float(exact_log_posterior(held_theta[1000:], held_x[1000:]).mean())
    print(f"  held-out NLL {nll:.4f}; exact posterior's {exact_nll:.4f}")

    x_obs = held_x[1000]
    draws = q.sample(10000, seed=1, context=x_obs)
    mean, sd = exact_posterior(x_obs[None])
    print(f"  at one x: q's mean {np.round(draws.mean(0), 3)}, exact {np.round(mean[0], 3)}")
    print(f"            q's sd   {np.round(draws.std(0), 4)}, exact {sd:.4f} each")
    if plot(args.png, q, x_obs, args.seed):
        print(f"  saved {args.png}")


if __name__ == "__main__":
    main()
