"""The TensorFlow Probability walkthrough's training, compiled end to end by symflow.

Data: 1000 samples from a 2-D Gaussian with mean (1, 1) and scale 2 in each dimension.
Flow, in the sampling direction: a declared PReLU (Piecewise forward, Positive alpha)
followed by Affine (a shift, scale_tril filled from 3 numbers, a rank-2 perturbation),
over MultivariateNormalDiag(loc=(0, 0)). Adam, batch 100, 100 epochs.

symflow derives PReLU's inverse and log-det, generates one module computing the batch's
mean negative log-likelihood and its gradient in a single loop, and runs every epoch and
step (with Adam) inside Numba. Run:

    python examples/train_tiny_flow.py [--epochs 100] [--seed 0] [--png tiny_flow.png]

It prints the loss as it goes, the held-out NLL next to the true distribution's, saves the
trained parameters, and (with matplotlib, `pip install ".[plot]"`) a picture of data
against flow samples and the loss curve.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from symflow import walkthrough as w


def plot(result, data: np.ndarray, path: str, seed: int) -> bool:
    """Data against flow samples, and the loss curve, into `path`; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    samples = result.distribution.sample(len(data), seed=seed + 1)
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4.8))
    ax0.scatter(*data.T, s=6, alpha=0.5, label="data: N((1, 1), 2² I)")
    ax0.scatter(*samples.T, s=6, alpha=0.5, label="trained flow samples")
    ax0.set_aspect("equal")
    ax0.legend(loc="upper left")
    ax0.set_title("PReLU → Affine over MultivariateNormalDiag")
    ax1.plot(np.arange(1, len(result.history) + 1), result.history, label="training NLL")
    ax1.axhline(w.true_nll(data), color="k", ls="--", lw=1, label="true distribution's NLL")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("mean negative log-likelihood")
    ax1.legend()
    ax1.set_title("loss (Adam, batch 100)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--png", default="tiny_flow.png")
    parser.add_argument("--save", default="tiny_flow_parameters.json")
    args = parser.parse_args()

    t0 = time.perf_counter()
    s = w.train_tiny_flow(args.epochs, seed=args.seed, progress=True)
    r = s["result"]
    every = max(1, args.epochs // 10)
    for epoch in range(0, args.epochs, every):
        print(f"epoch {epoch + 1:4d}  loss {r.history[epoch]:.4f}")
    print(f"epoch {args.epochs:4d}  loss {r.history[-1]:.4f}")
    gap = s["held_out_nll"] - s["true_held_out_nll"]
    print(f"held-out NLL {s['held_out_nll']:.4f}   true distribution's "
          f"{s['true_held_out_nll']:.4f}   difference {gap:+.4f} nats")  # fmt: skip
    per_step = r.seconds / s["steps"] * 1e6
    print(f"{s['steps']} steps: {r.seconds * 1e3:.2f} ms ({per_step:.2f} µs per step, one "
          "compiled call per epoch for the progress bar; benchmarks/train_benchmark.py times "
          "one call)")  # fmt: skip
    print(f"planning + compilation or cache load {r.compile_seconds:.2f} s")
    print("trained parameters:")
    for name, value in r.parameters.items():
        values = " ".join(f"{v: .5f}" for v in np.atleast_1d(value))
        print(f"  {name:<36} {values}")
    r.save(args.save)
    print(f"saved to {args.save} (load with sf.load_parameters(w.tiny_flow(), path))")
    if plot(r, s["data"], args.png, args.seed):
        print(f"picture: {args.png}")
    else:
        print("matplotlib is not installed; no picture (pip install '.[plot]')")
    print(f"total {time.perf_counter() - t0:.2f} s")


if __name__ == "__main__":
    main()
