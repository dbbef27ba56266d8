"""Normalizing flows side by side: symflow's compiled MAF and coupling flow vs zuko and flowjax.

The workload: a masked autoregressive flow (MAF) and a coupling flow (RealNVP), both with an
affine transformer, trained by maximum likelihood on a deterministic data set (`--data`):
`gaussians8` (default: a 2-D mixture of 8 Gaussians on a circle, whose exact density gives
the true held-out NLL), `digits` (scikit-learn's 64-D 8x8 digits, dequantized, 1,297
training and 500 held-out rows; needs scikit-learn), `moons` or `mixture8` (an 8-D
correlated Gaussian mixture). Every framework builds the same architecture: `--layers`
layers (default 5), dense networks of `--hidden` units (default 64,64) with ReLU, a
permutation between layers (`--permutation`; by default a reverse one in 2-D and random
ones above, as flowjax always does), a standard normal base, Adam (lr 1e-3, betas 0.9 /
0.999, eps 1e-7), batches of 256 rows in a fresh shuffled order each epoch (the last,
partial batch included). A "symflow SAS" column trains the same flow with a declared
transformer, loc + scale * sinh((asinh(x) + skew) * tail), written as its forward map only
(`--no-declared` skips it).

Frameworks (columns):

- symflow: `flows.masked_autoregressive_flow` / `flows.coupling_flow` trained by `sf.fit`
  (the whole epoch loop in one compiled Numba call), float64.
- zuko (PyTorch eager): `zuko.flows.MAF` / `zuko.flows.RealNVP`, `torch.optim.Adam`, in
  its default float32 ("zuko") and in float64 ("zuko f64", `--peers torch64`), the like for
  like row since symflow is float64.
- flowjax (JAX): `flowjax.flows.masked_autoregressive_flow` / `coupling_flow` with a
  `flowjax.bijections.Affine` transformer, trained by a hand-written step (loss, gradient
  and optax Adam in one `eqx.filter_jit`, the batch gathered inside it from an index array,
  as symflow's kernel does) called from a Python loop; `fit_to_data` is not used. In JAX's
  default float32 ("flowjax") and in float64 ("flowjax f64", `--peers flowjax64`).

Metrics, one table per flow: (1) training time per epoch over `--n` rows (default 20000) and
per step, after a warm-up (symflow: `FitResult.seconds` of a fresh fit after a one-epoch
warm-up fit; peers: a few warm-up steps covering both batch shapes, then the initial
parameters restored and the epochs timed); (2) `log_prob` of the n training rows, ns/row;
(3) drawing n samples, ns/row; both the median of `--repeat` calls, each from NumPy in to
NumPy out, allocating its result (symflow could write into a preallocated array, the peers
cannot, so none does); (4) first-call costs: symflow's `FitResult.compile_seconds` of the
first fit (planning, code generation, Numba compilation, or its load from symflow's disk
cache on later runs; `--cold` uses an empty cache), the peers' first training step (JAX:
trace + compile + one step; eager PyTorch: one step), and each framework's first `log_prob`
and `sample` call. ratio = peer time / symflow time: above 1, symflow is faster. The last
rows: the mean train NLL of the last epoch and the held-out NLL at the end (and, for
gaussians8, each one's gap to the true NLL).

Parameterizations differ in detail: symflow's affine scale is 1e-3 + softplus, flowjax's
Affine softplus, zuko's exp of a soft-clipped log-scale. zuko's RealNVP alternates
checkered masks, and flowjax permutes with random permutations for more than 2 dims
(reverse, i.e. a flip, in 2-D); flowjax gives every hidden layer one width.

Threads: Numba's thread count (`--threads`, default all cores) is also torch's
(`torch.set_num_threads`); XLA uses all cores unless fewer are asked for. symflow trains on
all threads when a batch has at least its module's PARALLEL_ROWS rows (64 for flows with
networks) and evaluates log_prob and sample in parallel from 2048 rows.

Run:

    python benchmarks/flows_benchmark.py [--quick] [--epochs 3] [--layers 5] [--hidden 64,64]
        [--data gaussians8|digits|moons|mixture8] [--n 20000] [--flows maf,coupling]
        [--peers zuko,torch64,flowjax,flowjax64] [--threads N] [--repeat 5] [--cold]
        [--no-declared] [--permutation auto|reverse|random] [--seeds K]

`--seeds K` trains every column again with K - 1 more seeds (init and batch order, same
data) and prints the held-out NLL's mean and sd: one run's NLL varies between seeds by
more than the frameworks differ (8 Gaussians: sd about 0.01-0.02 nats; digits: 1-2 nats).

`--quick` (n = 2000, 1 epoch, 2 layers of (16, 16)) is a smoke test.
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import NamedTuple

import numba
import numpy as np

_HERE = Path(__file__).resolve().parent
for _path in (_HERE, _HERE.parent):  # _train_peers beside this file; symflow from this checkout
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from _train_peers import ADAM_BETAS, ADAM_EPS, PeerUnavailableError, _torch  # noqa: E402

PEERS = ("zuko", "torch64", "flowjax", "flowjax64")
COLUMN = {"zuko": "zuko", "torch64": "zuko f64", "flowjax": "flowjax", "flowjax64": "flowjax f64"}
FLOWS = {"maf": "MAF (affine)", "coupling": "coupling / RealNVP (affine)"}
WARM_STEPS = 5


# -- data ---------------------------------------------------------------------------------
def two_moons(n: int, seed: int = 0, noise: float = 0.1) -> np.ndarray:
    """n rows of the two-moons set (two interleaved half circles plus Gaussian noise),
    standardized to zero mean and unit variance per coordinate; deterministic in seed."""
    rng = np.random.default_rng(seed)
    upper = n // 2
    t = np.pi * rng.random(n)
    x = np.where(np.arange(n) < upper, np.cos(t), 1.0 - np.cos(t))
    y = np.where(np.arange(n) < upper, np.sin(t), 0.5 - np.sin(t))
    data = np.stack([x, y], axis=1) + noise * rng.standard_normal((n, 2))
    data = data[rng.permutation(n)]
    return (data - data.mean(0)) / data.std(0)


def gaussian_mixture(n: int, dims: int = 8, seed: int = 0, components: int = 4) -> np.ndarray:
    """n rows of a mixture of `components` correlated Gaussians in `dims` dimensions
    (random means and covariances A A^T + 0.1 I), standardized; deterministic in seed."""
    rng = np.random.default_rng(seed)
    means = 3.0 * rng.standard_normal((components, dims))
    factors = rng.standard_normal((components, dims, dims)) / math.sqrt(dims)
    label = rng.integers(components, size=n)
    z = rng.standard_normal((n, dims))
    data = means[label] + np.einsum("nij,nj->ni", factors[label], z)
    data += math.sqrt(0.1) * rng.standard_normal((n, dims))
    return (data - data.mean(0)) / data.std(0)


def eight_gaussians(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n rows of an equal mixture of 8 isotropic Gaussians (sd 0.35) centred on a circle of
    radius 2, and the exact log-density of each row (so the true NLL is known)."""
    rng = np.random.default_rng(seed)
    angles = np.arange(8) * (np.pi / 4)
    centres = 2.0 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    sd = 0.35
    data = centres[rng.integers(8, size=n)] + sd * rng.standard_normal((n, 2))
    sq = ((data[:, None, :] - centres[None]) ** 2).sum(-1) / (2 * sd * sd)
    top = (-sq).max(axis=1)
    log_p = top + np.log(np.exp(-sq - top[:, None]).sum(axis=1))
    log_p += -np.log(8.0) - np.log(2 * np.pi * sd * sd)
    return data, log_p


def digits(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits (1,797 images, 64 pixels of 0..16), dequantized with
    uniform noise, (x + u) / 17, and standardized per pixel with the training rows' mean
    and sd; 1,297 training and 500 held-out rows, split by a seeded permutation."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:
        raise SystemExit("--data digits needs scikit-learn: pip install scikit-learn") from err
    rng = np.random.default_rng(seed)
    pixels = load_digits().data[rng.permutation(1797)]
    x = (pixels + rng.random(pixels.shape)) / 17.0
    train, held = x[:1297], x[1297:]
    mean, sd = train.mean(0), train.std(0)
    return (train - mean) / sd, (held - mean) / sd


DATA = ("gaussians8", "digits", "moons", "mixture8")


def make_data(name: str, n: int, seed: int):
    """(train, held-out, true held-out NLL or nan, description)."""
    if name == "gaussians8":
        (x, _), (held, log_p) = eight_gaussians(n, seed), eight_gaussians(n // 4, seed + 1)
        return x, held, -float(log_p.mean()), "2-D mixture of 8 Gaussians (known density)"
    if name == "digits":
        x, held = digits(seed)
        return x, held, math.nan, "64-D scikit-learn digits, dequantized (1,297 rows)"
    if name == "moons":
        return two_moons(n, seed), two_moons(n // 4, seed + 1), math.nan, "2-D two moons"
    x, held = gaussian_mixture(n, 8, seed), gaussian_mixture(n // 4, 8, seed + 1)
    return x, held, math.nan, "8-D Gaussian mixture (4 correlated components)"


# -- what is measured ---------------------------------------------------------------------
class Measured(NamedTuple):
    """Seconds unless named otherwise; nan where not measured."""

    dtype: str
    epoch_s: float
    step_us: float
    log_prob_ns: float
    sample_ns: float
    compile_s: float
    first_log_prob_s: float
    first_sample_s: float
    last_epoch_nll: float
    held_nll: float
    note: str = ""


class Config(NamedTuple):
    dims: int
    n: int
    held: np.ndarray
    layers: int
    hidden: tuple[int, ...]
    batch_size: int
    epochs: int
    learning_rate: float
    seed: int
    repeat: int
    threads: int
    permutation: str  # "reverse" or "random" between layers


def _measured(cfg: Config, dtype: str, seconds: float, times: dict, last: float, held,
              note: str = "") -> Measured:  # fmt: skip
    """A Measured from the timed epochs' seconds and `times`: log_prob / sample (medians),
    first_step / first_log_prob / first_sample, in seconds over the n training rows."""
    n = cfg.n
    return Measured(
        dtype=dtype,
        epoch_s=seconds / cfg.epochs,
        step_us=seconds / (cfg.epochs * _steps_per_epoch(n, cfg.batch_size)) * 1e6,
        log_prob_ns=times["log_prob"] / n * 1e9,
        sample_ns=times["sample"] / n * 1e9,
        compile_s=times["first_step"],
        first_log_prob_s=times["first_log_prob"],
        first_sample_s=times["first_sample"],
        last_epoch_nll=last,
        held_nll=-float(np.mean(held)),
        note=note,
    )


def _steps_per_epoch(n: int, batch_size: int) -> int:
    return -(-n // batch_size)


def _epoch_batches(cfg: Config, rng) -> list[np.ndarray]:
    """One epoch's batches: row indices of a fresh permutation, the last one partial."""
    order = rng.permutation(cfg.n)
    return [order[lo : lo + cfg.batch_size] for lo in range(0, cfg.n, cfg.batch_size)]


def _warm_batches(cfg: Config, rng) -> list[np.ndarray]:
    """A few batches covering both shapes (full and, if n % batch_size, the partial one)."""
    batches = _epoch_batches(cfg, rng)
    warm = batches[: min(WARM_STEPS, len(batches))]
    if len(batches[-1]) != cfg.batch_size:
        warm.append(batches[-1])
    return warm


def _median_time(call, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def _first_and_median(call, repeat: int) -> tuple[float, float, object]:
    """(first call's seconds, median of `repeat` later calls, the first result)."""
    start = time.perf_counter()
    out = call()
    first = time.perf_counter() - start
    return first, _median_time(call, repeat), out


# -- symflow ------------------------------------------------------------------------------
def sas_transformer():
    """The declared transformer of the "symflow SAS" column: its forward map only."""
    import sympy as sp

    import symflow as sf

    # the annotations are evaluated in this module's globals (from __future__ import
    # annotations), so the constraints are named through it
    globals()["sf"] = sf

    @sf.bijector
    def sas(x, loc: sf.Real, scale: sf.Positive, skew: sf.Real, tail: sf.Interval(0.25, 4)):
        return loc + scale * sp.sinh((sp.asinh(x) + skew) * tail)

    return sas


def run_symflow(kind: str, x: np.ndarray, cfg: Config, declared: bool = False) -> Measured:
    import symflow as sf
    from symflow import flows

    transformer = sas_transformer() if declared else None

    def build():
        if kind == "maf":
            make = flows.masked_autoregressive_flow
        else:
            make = flows.coupling_flow
        return make(
            cfg.dims,
            transformer,
            layers=cfg.layers,
            hidden_units=cfg.hidden,
            permutation=cfg.permutation,
            seed=cfg.seed,
        )

    def fit(epochs):
        start = time.perf_counter()
        result = sf.fit(
            build(),
            x,
            epochs=epochs,
            batch_size=cfg.batch_size,
            optimizer=sf.Adam(learning_rate=cfg.learning_rate),
            seed=cfg.seed,
            progress=False,
        )
        return result, time.perf_counter() - start

    warm, warm_wall = fit(1)  # compiles (or loads the disk cache) and runs one epoch
    result, _ = fit(cfg.epochs)
    dist = result.distribution
    n = x.shape[0]
    lp_first, lp, _ = _first_and_median(lambda: dist.log_prob(x), cfg.repeat)
    sm_first, sm, _ = _first_and_median(lambda: dist.sample(n, seed=1), cfg.repeat)
    times = dict(log_prob=lp, sample=sm, first_step=warm.compile_seconds,
                 first_log_prob=lp_first, first_sample=sm_first)  # fmt: skip
    note = (
        f"first fit() {warm_wall:.1f} s in all; second fit's compile_seconds "
        f"{result.compile_seconds:.2f} s"
    )
    held = dist.log_prob(cfg.held)
    return _measured(cfg, "float64", result.seconds, times, float(result.history[-1]), held,
                     note)  # fmt: skip


# -- zuko (PyTorch eager) -----------------------------------------------------------------
def run_zuko(kind: str, x: np.ndarray, cfg: Config, float64: bool) -> Measured:
    torch = _torch(cfg.threads)
    try:
        import zuko
    except ImportError as err:
        raise PeerUnavailableError("zuko is not installed") from err
    dtype = torch.float64 if float64 else torch.float32
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        torch.manual_seed(cfg.seed)
        if kind == "maf":
            flow = zuko.flows.MAF(
                features=cfg.dims,
                transforms=cfg.layers,
                hidden_features=cfg.hidden,
                randperm=cfg.permutation == "random",
            )
        else:  # zuko's RealNVP alternates checkered masks (no permutation option)
            flow = zuko.flows.RealNVP(
                features=cfg.dims, transforms=cfg.layers, hidden_features=cfg.hidden
            )
    finally:
        torch.set_default_dtype(previous)
    flow = flow.to(dtype)
    data = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64)).to(dtype)
    initial = copy.deepcopy(flow.state_dict())

    def optimizer():
        return torch.optim.Adam(
            flow.parameters(), lr=cfg.learning_rate, betas=ADAM_BETAS, eps=ADAM_EPS
        )

    def step(opt, rows):
        loss = -flow().log_prob(data[rows]).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.detach()

    rng = np.random.default_rng(cfg.seed)
    opt = optimizer()
    warm = [torch.from_numpy(b) for b in _warm_batches(cfg, rng)]
    start = time.perf_counter()
    step(opt, warm[0])
    first = time.perf_counter() - start
    for rows in warm[1:]:
        step(opt, rows)

    flow.load_state_dict(initial)
    opt = optimizer()
    seconds, last = 0.0, math.nan
    for _ in range(cfg.epochs):
        batches = [torch.from_numpy(b) for b in _epoch_batches(cfg, rng)]
        start = time.perf_counter()
        total = torch.zeros((), dtype=dtype)
        for rows in batches:
            total += step(opt, rows) * len(rows)
        seconds += time.perf_counter() - start
        last = float(total) / cfg.n

    n = x.shape[0]

    def log_prob(rows=x):
        with torch.no_grad():
            return flow().log_prob(torch.from_numpy(rows).to(dtype)).numpy()

    def sample():
        with torch.no_grad():
            return flow().sample((n,)).numpy()

    lp_first, lp, _ = _first_and_median(log_prob, cfg.repeat)
    held = log_prob(cfg.held)
    torch.manual_seed(1)
    sm_first, sm, _ = _first_and_median(sample, cfg.repeat)
    times = dict(log_prob=lp, sample=sm, first_step=first, first_log_prob=lp_first,
                 first_sample=sm_first)  # fmt: skip
    return _measured(cfg, str(dtype).removeprefix("torch."), seconds, times, last, held)


# -- flowjax (JAX) ------------------------------------------------------------------------
def _jax_modules(threads: int):
    """jax, optax, equinox, paramax, flowjax on the CPU; XLA's thread flags count only
    before jax's first import."""
    if "jax" not in sys.modules:
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
        if threads < (os.cpu_count() or 1):
            flags = f"intra_op_parallelism_threads={threads}"
            if threads == 1:
                flags = "--xla_cpu_multi_thread_eigen=false " + flags
            os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + flags).strip()
    try:
        import equinox
        import flowjax.bijections
        import flowjax.distributions
        import flowjax.flows
        import jax
        import optax
        import paramax
    except ImportError as err:
        raise PeerUnavailableError(f"{err.name or 'flowjax'} is not installed") from err
    return jax, optax, equinox, paramax, flowjax


def run_flowjax(kind: str, x: np.ndarray, cfg: Config, float64: bool) -> Measured:
    jax, optax, eqx, paramax, flowjax = _jax_modules(cfg.threads)
    jax.config.update("jax_enable_x64", bool(float64))  # before any array of this run
    jnp, jr = jax.numpy, jax.random
    dtype = np.float64 if float64 else np.float32
    note = ""
    width, depth = max(cfg.hidden), len(cfg.hidden)
    if len(set(cfg.hidden)) > 1:
        note = f"one width for all hidden layers: {depth} x {width}"
    make = (
        flowjax.flows.masked_autoregressive_flow if kind == "maf" else flowjax.flows.coupling_flow
    )
    flow = make(
        jr.key(cfg.seed),
        base_dist=flowjax.distributions.Normal(jnp.zeros(cfg.dims, dtype=dtype)),
        transformer=flowjax.bijections.Affine(),
        flow_layers=cfg.layers,
        nn_width=width,
        nn_depth=depth,
        nn_activation=jax.nn.relu,
    )
    params, static = eqx.partition(
        flow, eqx.is_inexact_array, is_leaf=lambda leaf: isinstance(leaf, paramax.NonTrainable)
    )
    leaf_dtypes = {str(a.dtype) for a in jax.tree_util.tree_leaves(params)}
    optimizer = optax.adam(cfg.learning_rate, b1=ADAM_BETAS[0], b2=ADAM_BETAS[1], eps=ADAM_EPS)
    data = jnp.asarray(x, dtype=dtype)

    def loss_fn(p, batch):
        return -paramax.unwrap(eqx.combine(p, static)).log_prob(batch).mean()

    @eqx.filter_jit
    def step(p, opt_state, rows):
        loss, grad = jax.value_and_grad(loss_fn)(p, data[rows])
        updates, opt_state = optimizer.update(grad, opt_state, p)
        return optax.apply_updates(p, updates), opt_state, loss

    rng = np.random.default_rng(cfg.seed)
    p, state = params, optimizer.init(params)
    warm = _warm_batches(cfg, rng)
    start = time.perf_counter()
    p, state, loss = step(p, state, warm[0])
    jax.block_until_ready(loss)
    first = time.perf_counter() - start
    for rows in warm[1:]:
        p, state, loss = step(p, state, rows)
    jax.block_until_ready(p)

    p, state = params, optimizer.init(params)  # JAX arrays are immutable: θ0 is intact
    seconds, last = 0.0, math.nan
    for _ in range(cfg.epochs):
        batches = _epoch_batches(cfg, rng)
        start = time.perf_counter()
        losses = []
        for rows in batches:
            p, state, loss = step(p, state, rows)
            losses.append(loss * len(rows))
        jax.block_until_ready(p)
        seconds += time.perf_counter() - start
        last = float(sum(losses)) / cfg.n

    trained = eqx.combine(p, static)
    n = x.shape[0]
    log_prob_jit = eqx.filter_jit(lambda dist, v: dist.log_prob(v))
    sample_jit = eqx.filter_jit(lambda dist, key: dist.sample(key, (n,)))
    key = jr.key(1)
    lp_first, lp, _ = _first_and_median(
        lambda: np.asarray(log_prob_jit(trained, x.astype(dtype, copy=False))), cfg.repeat
    )
    held = np.asarray(log_prob_jit(trained, cfg.held.astype(dtype, copy=False)))
    sm_first, sm, _ = _first_and_median(lambda: np.asarray(sample_jit(trained, key)), cfg.repeat)
    times = dict(log_prob=lp, sample=sm, first_step=first, first_log_prob=lp_first,
                 first_sample=sm_first)  # fmt: skip
    return _measured(cfg, "/".join(sorted(leaf_dtypes)), seconds, times, last, held, note)


# -- the report ---------------------------------------------------------------------------
def cpu_description() -> str:
    """lscpu's model name and the CPU's AVX2 / FMA / AVX-512 flags."""
    model = platform.processor() or platform.machine()
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.lower().startswith("model name"):
                model = line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    vector = [f for f in ("avx2", "fma") if f in flags]
    vector += sorted(f for f in flags if f.startswith("avx512"))
    return f"{model}; {' '.join(vector) or 'no AVX2/AVX-512 flags'}; {os.cpu_count()} cores"


def versions() -> str:
    from importlib import metadata

    parts = [f"python {platform.python_version()}", f"numpy {np.__version__}"]
    for name in ("numba", "symflow", "torch", "zuko", "jax", "flowjax", "optax", "equinox"):
        try:
            parts.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            parts.append(f"{name} -")
    return ", ".join(parts)


def _fmt(v: float) -> str:
    if v is None or not math.isfinite(v):
        return "-"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.3f}"


ROWS = (
    ("train epoch (ms)", lambda m: m.epoch_s * 1e3, True),
    ("train step (µs)", lambda m: m.step_us, True),
    ("log_prob (ns/row)", lambda m: m.log_prob_ns, True),
    ("sample (ns/row)", lambda m: m.sample_ns, True),
    ("compile/1st step (s)", lambda m: m.compile_s, True),
    ("1st log_prob (s)", lambda m: m.first_log_prob_s, True),
    ("1st sample (s)", lambda m: m.first_sample_s, True),
    ("NLL: last epoch", lambda m: m.last_epoch_nll, False),
    ("NLL: held-out", lambda m: m.held_nll, False),
)


def print_table(title: str, results: dict[str, Measured | str]) -> None:
    names = list(results)
    print(f"\n{title}")
    header = f"{'metric':22}{'symflow':>11}"
    for name in names[1:]:
        header += f"{name:>13}{'ratio':>7}"
    print(header)
    print("-" * len(header))
    sym = results["symflow"]
    line = f"{'dtype':22}{getattr(sym, 'dtype', '-'):>11}"
    for name in names[1:]:
        line += f"{getattr(results[name], 'dtype', '-'):>13}{'':7}"
    print(line)
    for label, get, ratio in ROWS:
        base = get(sym) if isinstance(sym, Measured) else math.nan
        line = f"{label:22}{_fmt(base):>11}"
        for name in names[1:]:
            m = results[name]
            v = get(m) if isinstance(m, Measured) else math.nan
            r = v / base if ratio and isinstance(m, Measured) and base > 0 else math.nan
            line += f"{_fmt(v):>13}{(_fmt(r) if math.isfinite(r) else ''):>7}"
        print(line)
    for name, m in results.items():
        note = m if isinstance(m, str) else m.note
        if note:
            print(f"  {name}: {note}")


def run_columns(kind: str, cfg: Config, columns: dict, quiet: bool = False) -> dict:
    """Each column's Measured for one flow kind and cfg (a failure or a missing peer is
    reported in its column, and the others still run)."""
    results: dict[str, Measured | str] = {}
    for name, run in columns.items():
        print(f"[{FLOWS[kind]}] {name}, seed {cfg.seed} ...", flush=True)
        try:
            results[name] = run(kind, cfg)
        except PeerUnavailableError as err:
            if not quiet:
                print(f"  skipping {name}: {err}")
            results[name] = f"skipped: {err}"
        except Exception as err:  # report it, keep the others
            traceback.print_exc()
            results[name] = f"failed ({type(err).__name__}: {err})"
    return results


def print_seed_summary(kind: str, cfg: Config, held: dict, true_nll: float) -> None:
    """Held-out NLL over seeds: one run's NLL differs from the next seed's by more than
    the frameworks differ, so accuracy is compared on the mean."""
    seeds = f"seeds {cfg.seed}..{cfg.seed + max(len(v) for v in held.values()) - 1}"
    print(f"\n{FLOWS[kind]}: held-out NLL over {seeds} (init and batch order; same data)")
    print(f"{'':14}{'mean':>10}{'sd':>9}" + (f"{'- true':>10}" if math.isfinite(true_nll) else ""))
    for name, values in held.items():
        v = np.asarray(values)
        line = f"{name:14}{v.mean():>10.4f}{v.std(ddof=1) if v.size > 1 else math.nan:>9.4f}"
        if math.isfinite(true_nll):
            line += f"{v.mean() - true_nll:>10.4f}"
        print(line + f"   ({v.size} runs: {', '.join(f'{a:.3f}' for a in v)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="n 2000, 1 epoch, 2 x (16, 16)")
    parser.add_argument("--n", type=int, default=None, help="rows (default 20000)")
    parser.add_argument("--epochs", type=int, default=None, help="timed epochs (default 3)")
    parser.add_argument("--layers", type=int, default=None, help="flow layers (default 5)")
    parser.add_argument("--hidden", default=None, help="hidden widths (default 64,64)")
    parser.add_argument("--data", choices=DATA, default="gaussians8")
    parser.add_argument(
        "--no-declared", action="store_true", help="skip the declared-transformer column"
    )
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=None, help="log_prob/sample calls (5)")
    parser.add_argument("--threads", type=int, default=numba.config.NUMBA_NUM_THREADS)
    parser.add_argument("--flows", default="maf,coupling", help="comma-separated: maf,coupling")
    parser.add_argument(
        "--peers", default=",".join(PEERS), help=f"comma-separated, of {','.join(PEERS)}"
    )
    parser.add_argument("--cold", action="store_true", help="symflow with an empty disk cache")
    parser.add_argument(
        "--permutation",
        choices=("auto", "reverse", "random"),
        default="auto",
        help="between layers; auto: random above 2 dims (flowjax's fixed choice), else reverse",
    )
    parser.add_argument(
        "--seeds",
        type=int,
        default=1,
        help="train again with this many seeds (init and batch order) and report the "
        "held-out NLL's mean and sd (default 1: the table's run only)",
    )
    args = parser.parse_args()

    quick = args.quick
    x, held, true_nll, data_name = make_data(
        args.data, args.n or (2000 if quick else 20000), args.seed
    )
    cfg = Config(
        dims=x.shape[1],
        n=x.shape[0],
        held=held,
        layers=args.layers or (2 if quick else 5),
        hidden=tuple(int(h) for h in (args.hidden or ("16,16" if quick else "64,64")).split(",")),
        batch_size=args.batch_size,
        epochs=args.epochs or (1 if quick else 3),
        learning_rate=args.learning_rate,
        seed=args.seed,
        repeat=args.repeat or (3 if quick else 5),
        threads=min(args.threads, numba.config.NUMBA_NUM_THREADS),
        permutation=(
            ("random" if x.shape[1] > 2 else "reverse")
            if args.permutation == "auto"
            else args.permutation
        ),
    )
    kinds = [k.strip() for k in args.flows.split(",") if k.strip()]
    peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    for name in kinds:
        if name not in FLOWS:
            parser.error(f"unknown flow {name!r}; choose from {', '.join(FLOWS)}")
    for name in peers:
        if name not in PEERS:
            parser.error(f"unknown peer {name!r}; choose from {', '.join(PEERS)}")
    if args.cold:
        os.environ["SYMFLOW_CACHE_DIR"] = tempfile.mkdtemp(prefix="symflow-cold-")
    numba.set_num_threads(cfg.threads)
    if any(p.startswith("flowjax") for p in peers):
        try:  # XLA's thread flags must be set before jax is first imported
            _jax_modules(cfg.threads)
        except PeerUnavailableError:
            pass

    print(f"CPU: {cpu_description()}")
    print(versions())
    xla = "all cores" if cfg.threads >= (os.cpu_count() or 1) else f"{cfg.threads}"
    print(
        f"threads: Numba {numba.get_num_threads()}, torch {cfg.threads} "
        f"(torch.set_num_threads), XLA {xla}"
    )
    print(
        f"data: {data_name}, n = {cfg.n}; {cfg.layers} layers, hidden {cfg.hidden}, ReLU, "
        f"{cfg.permutation} permutations, batch {cfg.batch_size} "
        f"({_steps_per_epoch(cfg.n, cfg.batch_size)} steps an epoch), "
        f"{cfg.epochs} timed epoch(s), Adam lr {cfg.learning_rate:g}; log_prob/sample: "
        f"median of {cfg.repeat} calls on {cfg.n} rows; held-out rows {held.shape[0]}"
        + (f"; true held-out NLL {true_nll:.4f}" if math.isfinite(true_nll) else "")
        + ("; symflow cache: empty (--cold)" if args.cold else "")
    )

    runners = {
        "zuko": lambda kind, c: run_zuko(kind, x, c, float64=False),
        "torch64": lambda kind, c: run_zuko(kind, x, c, float64=True),
        "flowjax": lambda kind, c: run_flowjax(kind, x, c, float64=False),
        "flowjax64": lambda kind, c: run_flowjax(kind, x, c, float64=True),
    }
    columns = {"symflow": lambda kind, c: run_symflow(kind, x, c)}
    if not args.no_declared:
        columns["symflow SAS"] = lambda kind, c: run_symflow(kind, x, c, declared=True)
    for peer in peers:
        columns[COLUMN[peer]] = runners[peer]
    for kind in kinds:
        results = run_columns(kind, cfg, columns)
        print_table(f"{FLOWS[kind]}, {data_name}, n = {cfg.n}", results)
        if math.isfinite(true_nll):
            gaps = {
                name: f"{m.held_nll - true_nll:.4f}"
                for name, m in results.items()
                if isinstance(m, Measured)
            }
            print(f"  held-out NLL - true NLL ({true_nll:.4f}): {gaps}")
        if args.seeds > 1:
            held_by_seed = {name: [m.held_nll] for name, m in results.items()
                            if isinstance(m, Measured)}  # fmt: skip
            for s in range(1, args.seeds):
                again = cfg._replace(seed=cfg.seed + s, repeat=1)
                for name, m in run_columns(kind, again, columns, quiet=True).items():
                    if isinstance(m, Measured) and name in held_by_seed:
                        held_by_seed[name].append(m.held_nll)
            print_seed_summary(kind, cfg, held_by_seed, true_nll)

    print(
        "\nratio = peer / symflow (above 1: symflow faster). Times exclude the first calls, "
        "shown apart:\nsymflow's compile is FitResult.compile_seconds of its first fit "
        "(Numba compile, or the disk cache's\nload on later runs); a peer's is its first "
        "training step (JAX: trace + compile). log_prob and\nsample: NumPy in, NumPy out, "
        "each call allocating its result (peers cannot write into a\npreallocated array). "
        "NLL rows: each framework's own, after the same epochs (different inits)."
    )


if __name__ == "__main__":
    main()
