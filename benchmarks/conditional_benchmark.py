"""Conditional flows side by side: neural posterior estimation with symflow, zuko and flowjax.

The task is `examples/posterior_estimation.py`'s: sbibm's Gaussian-linear model in 5
dimensions (prior N(0, 0.1 I), x = theta + shift + N(0, 0.1 I) noise), whose posterior
p(theta | x) = N((x - shift) / 2, 0.05 I) is exact. Each framework trains the same
conditional MAF q(theta | x): `--layers` layers (default 5), MADE networks of (64, 64) ReLU
units with the context entering every first layer, random permutations between layers
(flowjax's fixed choice above 2 dimensions; zuko `randperm=True`), an affine transformer, a
standard normal base, Adam (lr 1e-3, betas 0.9 / 0.999, eps 1e-7), batches of 256 in a fresh
order each epoch, `--epochs` epochs (default 40) over `--n` simulations (default 20000).
Every framework sees the contexts standardized by the training contexts' mean and sd:
symflow does it itself (`sf.fit`'s `standardize_context`), the peers get them standardized.

Metrics: training ms per epoch; held-out conditional NLL on 4000 joint draws; the KL
estimate mean[log p(theta | x) - log q(theta | x)] over them (0 is perfect; its standard
error in brackets); drawing 10^4 samples at one context, ns per draw (median of 5 calls);
log_prob of the 4000 held-out pairs, ns per row. ratio = peer / symflow: above 1, symflow
is faster. Run:

    python benchmarks/conditional_benchmark.py [--epochs 40] [--n 20000] [--layers 5]
        [--peers zuko,flowjax] [--threads N] [--seeds K]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import traceback
from pathlib import Path
from typing import NamedTuple

import numba
import numpy as np

_HERE = Path(__file__).resolve().parent
for _path in (_HERE, _HERE.parent, _HERE.parent / "examples"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import posterior_estimation as task  # noqa: E402
from _train_peers import ADAM_BETAS, ADAM_EPS, PeerUnavailableError, _torch  # noqa: E402
from flows_benchmark import _jax_modules, _median_time, cpu_description, versions  # noqa: E402

HIDDEN = (64, 64)
BATCH = 256
DRAWS = 10_000


class Setup(NamedTuple):
    theta: np.ndarray
    x: np.ndarray
    held_theta: np.ndarray
    held_x: np.ndarray
    x_obs: np.ndarray
    layers: int
    epochs: int
    seed: int
    threads: int

    def standardized(self, x: np.ndarray) -> np.ndarray:
        return (x - self.x.mean(0)) / self.x.std(0)


class Result(NamedTuple):
    epoch_ms: float
    held_nll: float
    kl: float
    kl_se: float
    sample_ns: float
    log_prob_ns: float
    compile_s: float


def _result(s: Setup, seconds: float, log_q: np.ndarray, sample_s: float, lp_s: float,
            compile_s: float) -> Result:  # fmt: skip
    diff = task.exact_log_posterior(s.held_theta, s.held_x) - log_q
    return Result(
        epoch_ms=seconds / s.epochs * 1e3,
        held_nll=-float(log_q.mean()),
        kl=float(diff.mean()),
        kl_se=float(diff.std(ddof=1) / math.sqrt(diff.size)),
        sample_ns=sample_s / DRAWS * 1e9,
        log_prob_ns=lp_s / s.held_theta.shape[0] * 1e9,
        compile_s=compile_s,
    )


def run_symflow(s: Setup) -> Result:
    import symflow as sf
    from symflow import flows

    def fit(epochs):
        q0 = flows.masked_autoregressive_flow(
            task.DIM, layers=s.layers, hidden_units=HIDDEN, permutation="random",
            context_size=task.DIM, seed=s.seed,
        )  # fmt: skip
        return sf.fit(
            q0, s.theta, context=s.x, epochs=epochs, batch_size=BATCH,
            optimizer=sf.Adam(learning_rate=1e-3), seed=s.seed, progress=False,
        )  # fmt: skip

    first = fit(1)  # compiles (or loads the cache)
    result = fit(s.epochs)
    q = result.distribution
    q.sample(DRAWS, seed=0, context=s.x_obs)
    log_q = q.log_prob(s.held_theta, context=s.held_x)
    sample_s = _median_time(lambda: q.sample(DRAWS, seed=1, context=s.x_obs), 5)
    lp_s = _median_time(lambda: q.log_prob(s.held_theta, context=s.held_x), 5)
    return _result(s, result.seconds, log_q, sample_s, lp_s, first.compile_seconds)


def _batches(n: int, rng) -> list[np.ndarray]:
    order = rng.permutation(n)
    return [order[lo : lo + BATCH] for lo in range(0, n, BATCH)]


def run_zuko(s: Setup) -> Result:
    torch = _torch(s.threads)
    try:
        import zuko
    except ImportError as err:
        raise PeerUnavailableError("zuko is not installed") from err
    torch.manual_seed(s.seed)
    flow = zuko.flows.MAF(
        features=task.DIM, context=task.DIM, transforms=s.layers, hidden_features=HIDDEN,
        randperm=True,
    )  # fmt: skip
    f32 = torch.float32
    theta = torch.from_numpy(s.theta).to(f32)
    ctx = torch.from_numpy(s.standardized(s.x)).to(f32)
    opt = torch.optim.Adam(flow.parameters(), lr=1e-3, betas=ADAM_BETAS, eps=ADAM_EPS)

    def step(rows):
        loss = -flow(ctx[rows]).log_prob(theta[rows]).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    rng = np.random.default_rng(s.seed)
    start = time.perf_counter()
    for rows in _batches(s.theta.shape[0], rng):
        step(torch.from_numpy(rows))
    compile_s = time.perf_counter() - start  # eager: the first epoch, for reference
    torch.manual_seed(s.seed)
    flow = zuko.flows.MAF(
        features=task.DIM, context=task.DIM, transforms=s.layers, hidden_features=HIDDEN,
        randperm=True,
    )  # fmt: skip
    opt = torch.optim.Adam(flow.parameters(), lr=1e-3, betas=ADAM_BETAS, eps=ADAM_EPS)
    seconds = 0.0
    for _ in range(s.epochs):
        batches = [torch.from_numpy(b) for b in _batches(s.theta.shape[0], rng)]
        start = time.perf_counter()
        for rows in batches:
            step(rows)
        seconds += time.perf_counter() - start
    ht = torch.from_numpy(s.held_theta).to(f32)
    hc = torch.from_numpy(s.standardized(s.held_x)).to(f32)
    c_obs = torch.from_numpy(s.standardized(s.x_obs[None])[0]).to(f32)
    with torch.no_grad():
        log_q = flow(hc).log_prob(ht).double().numpy()
        sample_s = _median_time(lambda: flow(c_obs).sample((DRAWS,)).numpy(), 5)
        lp_s = _median_time(lambda: flow(hc).log_prob(ht).numpy(), 5)
    return _result(s, seconds, log_q, sample_s, lp_s, compile_s)


def run_flowjax(s: Setup) -> Result:
    jax, optax, eqx, paramax, flowjax = _jax_modules(s.threads)
    jax.config.update("jax_enable_x64", False)
    jnp, jr = jax.numpy, jax.random
    flow = flowjax.flows.masked_autoregressive_flow(
        jr.key(s.seed),
        base_dist=flowjax.distributions.Normal(jnp.zeros(task.DIM)),
        transformer=flowjax.bijections.Affine(),
        cond_dim=task.DIM,
        flow_layers=s.layers,
        nn_width=HIDDEN[0],
        nn_depth=len(HIDDEN),
        nn_activation=jax.nn.relu,
    )
    params, static = eqx.partition(
        flow, eqx.is_inexact_array, is_leaf=lambda leaf: isinstance(leaf, paramax.NonTrainable)
    )
    optimizer = optax.adam(1e-3, b1=ADAM_BETAS[0], b2=ADAM_BETAS[1], eps=ADAM_EPS)
    theta = jnp.asarray(s.theta, dtype=jnp.float32)
    ctx = jnp.asarray(s.standardized(s.x), dtype=jnp.float32)

    def loss_fn(p, t, c):
        return -paramax.unwrap(eqx.combine(p, static)).log_prob(t, condition=c).mean()

    @eqx.filter_jit
    def step(p, state, rows):
        loss, grad = jax.value_and_grad(loss_fn)(p, theta[rows], ctx[rows])
        updates, state = optimizer.update(grad, state, p)
        return optax.apply_updates(p, updates), state

    rng = np.random.default_rng(s.seed)
    p, state = params, optimizer.init(params)
    start = time.perf_counter()
    for rows in _batches(s.theta.shape[0], rng)[-2:]:  # both batch shapes compile
        p, state = step(p, state, rows)
    jax.block_until_ready(p)
    compile_s = time.perf_counter() - start
    p, state = params, optimizer.init(params)
    seconds = 0.0
    for _ in range(s.epochs):
        batches = _batches(s.theta.shape[0], rng)
        start = time.perf_counter()
        for rows in batches:
            p, state = step(p, state, rows)
        jax.block_until_ready(p)
        seconds += time.perf_counter() - start
    trained = paramax.unwrap(eqx.combine(p, static))
    ht = jnp.asarray(s.held_theta, dtype=jnp.float32)
    hc = jnp.asarray(s.standardized(s.held_x), dtype=jnp.float32)
    c_obs = jnp.asarray(s.standardized(s.x_obs[None])[0], dtype=jnp.float32)
    log_prob = eqx.filter_jit(lambda d, t, c: d.log_prob(t, condition=c))
    sample = eqx.filter_jit(lambda d, key, c: d.sample(key, (DRAWS,), condition=c))
    log_q = np.asarray(log_prob(trained, ht, hc), dtype=np.float64)
    key = jr.key(1)
    np.asarray(sample(trained, key, c_obs))
    sample_s = _median_time(lambda: np.asarray(sample(trained, key, c_obs)), 5)
    lp_s = _median_time(lambda: np.asarray(log_prob(trained, ht, hc)), 5)
    return _result(s, seconds, log_q, sample_s, lp_s, compile_s)


RUNNERS = {"symflow": run_symflow, "zuko": run_zuko, "flowjax": run_flowjax}
ROWS = (
    ("train epoch (ms)", "epoch_ms", True),
    ("sample 1e4 at one x (ns)", "sample_ns", True),
    ("log_prob (ns/row)", "log_prob_ns", True),
    ("first call (s)", "compile_s", False),
    ("held-out NLL", "held_nll", False),
    ("KL to exact (nats)", "kl", False),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000, help="simulated training pairs")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--layers", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seeds", type=int, default=1, help="train with this many seeds")
    parser.add_argument("--peers", default="zuko,flowjax")
    parser.add_argument("--threads", type=int, default=numba.config.NUMBA_NUM_THREADS)
    args = parser.parse_args()
    names = ["symflow", *(p.strip() for p in args.peers.split(",") if p.strip())]
    for name in names:
        if name not in RUNNERS:
            parser.error(f"unknown peer {name!r}; choose from zuko, flowjax")
    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    if "flowjax" in names:
        try:  # XLA's thread flags count only before jax's first import
            _jax_modules(args.threads)
        except PeerUnavailableError:
            pass
    theta, x = task.simulate(args.n, args.seed)
    held_theta, held_x = task.simulate(4000, args.seed + 1)
    print(f"CPU: {cpu_description()}")
    print(versions())
    print(
        f"task: Gaussian-linear posterior, {task.DIM}-D, {args.n} simulations, "
        f"{args.layers} MAF layers {HIDDEN}, {args.epochs} epochs, batch {BATCH}, "
        f"Adam 1e-3; threads {numba.get_num_threads()}; symflow float64, peers float32"
    )
    results: dict[str, list[Result] | str] = {}
    for name in names:
        runs = []
        for k in range(args.seeds):
            setup = Setup(theta, x, held_theta, held_x, held_x[0], args.layers, args.epochs,
                          args.seed + k, args.threads)  # fmt: skip
            print(f"[{name}] seed {setup.seed} ...", flush=True)
            try:
                runs.append(RUNNERS[name](setup))
            except PeerUnavailableError as err:
                results[name] = f"skipped: {err}"
                break
            except Exception as err:  # report it, keep the others
                traceback.print_exc()
                results[name] = f"failed ({type(err).__name__}: {err})"
                break
        else:
            results[name] = runs
    header = f"{'metric':26}{'symflow':>12}" + "".join(f"{n:>12}{'ratio':>7}" for n in names[1:])
    print("\n" + header + "\n" + "-" * len(header))
    base = results["symflow"] if isinstance(results["symflow"], list) else None
    for label, field, ratio in ROWS:

        def value(runs, field=field):
            return float(np.mean([getattr(r, field) for r in runs]))

        b = value(base) if base else math.nan
        line = f"{label:26}{b:>12.4g}"
        for name in names[1:]:
            runs = results[name]
            v = value(runs) if isinstance(runs, list) else math.nan
            r = f"{v / b:.2f}" if ratio and math.isfinite(v) and b > 0 else ""
            line += f"{v:>12.4g}{r:>7}"
        print(line)
    for name, runs in results.items():
        if isinstance(runs, str):
            print(f"  {name}: {runs}")
        else:
            kls = ", ".join(f"{r.kl:.4f} ({r.kl_se:.4f})" for r in runs)
            print(f"  {name}: KL per seed (standard error): {kls}")
    print(
        "\nratio = peer / symflow (above 1: symflow faster); values are means over seeds. "
        "First call: symflow's\ncompile or cache load; flowjax's trace and compile of the "
        "step; zuko's first (eager) epoch."
    )


if __name__ == "__main__":
    main()
