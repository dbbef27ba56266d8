"""`sf.fit`: maximum-likelihood training of a TransformedDistribution, compiled end to end.

The flow's training module (fused NLL + gradient, optimizer, epoch loop) is generated once
per flow structure and cached like every kernel; `fit` calls its `train` for as many epochs
at a time as take about `CHUNK_SECONDS` (then updates the progress bar, or checks the
validation loss after each epoch when there is validation data), so Python never runs per
step.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numba
import numpy as np

from symflow._version import __version__
from symflow.bijectors import Chain
from symflow.errors import ShapeError, SymflowError
from symflow.runtime.loader import atomic_write, read_entry, write_entry
from symflow.training.emit import emit_training_module, training_key
from symflow.training.optimizers import Adam, Optimizer
from symflow.training.plan import TrainingPlan, plan_training

__all__ = [
    "FitResult",
    "TrainingKernels",
    "fit",
    "load_parameters",
    "training_kernels",
]

#: `fit` runs as many epochs per compiled call as take about this long, then updates the
#: progress bar (each return to Python costs a redraw).
CHUNK_SECONDS = 0.1


@dataclass
class TrainingKernels:
    """A flow's loaded training module and its parameter layout."""

    plan: TrainingPlan
    module: object
    fixed: np.ndarray
    theta0: np.ndarray  # θ's start: the plan's start values mapped by `unconstrain`
    compile_seconds: float = 0.0

    def constrained(self, theta: np.ndarray) -> np.ndarray:
        """Every parameter's value (q) for unconstrained θ."""
        q, dq = np.empty_like(self.fixed), np.empty_like(self.fixed)
        self.module.constrain(theta, self.fixed, q, dq)
        return q

    def nll_and_grad(self, theta: np.ndarray, batch, context=None) -> tuple[float, np.ndarray]:
        """Mean NLL of `batch` (rows of events) and its gradient with respect to θ."""
        rows = _rows(batch, self.plan)
        return self._nll_and_grad(theta, rows, _context_rows(context, rows, self.plan))

    def _nll_and_grad(self, theta, rows, context) -> tuple[float, np.ndarray]:
        grad = np.empty_like(theta)
        index = np.arange(rows.shape[0])
        work = [np.empty(self.fixed.size) for _ in range(3)]
        loss = self.module.nll_and_grad_into(
            theta, self.fixed, rows, context, index, grad, *work,
            self.module.train_work(max(rows.shape[0], 1)),
        )  # fmt: skip
        return float(loss), grad

    def mean_nll(self, theta, rows, context, batch_size: int) -> float:
        """Mean NLL over all rows, in batches (the gradient is computed and dropped)."""
        total = 0.0
        for lo in range(0, rows.shape[0], batch_size):
            hi = min(rows.shape[0], lo + batch_size)
            total += self._nll_and_grad(theta, rows[lo:hi], context[lo:hi])[0] * (hi - lo)
        return total / rows.shape[0]

    def distribution(self, theta: np.ndarray):
        """The flow rebuilt with the parameters θ stands for."""
        return _rebuild(self.plan, self.constrained(theta))


def _rows(data, plan: TrainingPlan) -> np.ndarray:
    arr = np.asarray(data, dtype=np.float64)
    n = plan.event_size
    if plan.distribution.distribution.event_shape == ():
        if arr.ndim != 1:
            raise ShapeError(f"fit: scalar events need 1-D data; got shape {arr.shape}.")
        arr = arr.reshape(-1, 1)
    elif arr.ndim != 2 or arr.shape[1] != n:
        raise ShapeError(
            f"fit: data must have shape (n_samples, {n}) for events of size {n}; got {arr.shape}."
        )
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ShapeError(f"fit: data must be finite; row {int(bad[0])} holds {arr[tuple(bad)]}.")
    return np.ascontiguousarray(arr)


def _context_rows(context, rows: np.ndarray, plan: TrainingPlan) -> np.ndarray:
    c = plan.context_size
    if c == 0:
        if context is not None:
            raise ShapeError(
                "fit: this flow takes no context (it was built with context_size=None); got "
                "one. Drop `context`, or build a conditional flow."
            )
        return np.empty((rows.shape[0], 0))
    if context is None:
        raise ShapeError(
            f"fit: this conditional flow needs `context` of shape (n_samples, {c}), one row "
            "per data row; got none."
        )
    arr = np.asarray(context, dtype=np.float64)
    if arr.shape != (rows.shape[0], c):
        raise ShapeError(
            f"fit: `context` must have shape ({rows.shape[0]}, {c}) (one context per data row); "
            f"got {arr.shape}."
        )
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ShapeError(
            f"fit: context must be finite; row {int(bad[0])} holds {arr[tuple(bad)]}."
        )
    return np.ascontiguousarray(arr)


def training_kernels(distribution, *, frozen=(), train_base: bool = False) -> TrainingKernels:
    """Plans, emits (or loads from the cache) and returns the flow's training kernels."""
    t0 = time.perf_counter()
    context_size = (
        getattr(distribution.bijector, "context_size", 0)
        if hasattr(distribution, "bijector")
        else 0
    )
    plan = plan_training(
        distribution, frozen=frozen, train_base=train_base, context_size=context_size
    )
    key = training_key(plan)
    module_name = f"Training_{key[:16]}"
    entry = read_entry(module_name, key)
    if entry is None:
        entry = write_entry(
            emit_training_module(plan, key), {"name": "training", "symflow_version": __version__}
        )
    fixed = plan.q0.copy()
    theta0 = _theta0(plan, entry.module)
    return TrainingKernels(plan, entry.module, fixed, theta0, time.perf_counter() - t0)


def _theta0(plan: TrainingPlan, module) -> np.ndarray:
    """θ's start: the compiled inverses of the constraint bijectors at the bound values.

    Raises:
        SymflowError: where a value maps to a non-finite θ (it lies on its constraint's
            boundary).
    """
    start = plan.start
    theta = np.empty_like(start)
    bad = module.unconstrain(start, theta)
    if bad >= 0:
        raise SymflowError(
            f"fit: {plan.names[bad]} = {float(start[bad])!r} maps to {theta[bad]} in the "
            "unconstrained space; the parameter's value must lie strictly inside its "
            "constraint."
        )
    return theta


def _rebuild(plan: TrainingPlan, q: np.ndarray):
    from symflow.distributions import MultivariateNormalDiag, Normal, TransformedDistribution

    new = []
    for k, (bijector, _) in enumerate(plan.members):
        values = np.concatenate(
            [q[b.q_start : b.q_start + b.size] for b in plan.blocks if b.owner == k] or [[]]
        )
        new.append(bijector._from_flow_values(values))
    bijector = (
        new[0]
        if len(new) == 1 and not isinstance(plan.distribution.bijector, Chain)
        else Chain(new)
    )
    base = plan.distribution.distribution
    if plan.train_base:
        owner = len(plan.members)
        loc, scale = (q[b.q_start : b.q_start + b.size] for b in plan.blocks if b.owner == owner)
        if isinstance(base, MultivariateNormalDiag):
            base = MultivariateNormalDiag(loc=loc.copy(), scale_diag=scale.copy())
        else:
            base = Normal(float(loc[0]), float(scale[0]))
    return TransformedDistribution(base, bijector)


@dataclass
class FitResult:
    """What `fit` returns.

    Attributes:
        distribution: the trained distribution (a new object; the input is unchanged).
        history: mean training NLL per epoch (over the epoch's steps).
        validation_history: mean NLL of the validation data after each epoch, if any.
        parameters: the trained value of every trainable parameter block, by name (a float
            for a single parameter such as '1.PReLU.alpha', an array for a vector such as
            '0.Affine.shift' or a network layer's weights).
        theta: the unconstrained parameter vector.
        best_epoch: the epoch whose parameters were kept (early stopping), 0-based.
        seconds: wall time of the training calls; compile_seconds: planning, emission
            and (first call) Numba compilation.
        blocks: (name, size) of each trained block, in θ order.
    """

    distribution: object
    history: list[float]
    validation_history: list[float] | None
    parameters: dict
    theta: np.ndarray
    best_epoch: int
    seconds: float
    compile_seconds: float
    blocks: list[tuple[str, int]] = field(repr=False, default_factory=list)

    def save(self, path) -> None:
        """Writes the trained parameters (JSON, atomically) for `load_parameters`."""
        data = {
            "symflow_version": __version__,
            "blocks": [[name, size] for name, size in self.blocks],
            "theta": [float(v) for v in self.theta],
            "history": self.history,
        }
        std = getattr(self.distribution, "context_standardization", None)
        if std is not None:  # a conditional flow's fixed embedding is part of the model
            data["context_standardization"] = [[float(v) for v in a] for a in std]
        atomic_write(Path(path), json.dumps(data, indent=1) + "\n")


def load_parameters(distribution, path, *, frozen=()):
    """`distribution` with the parameters a `FitResult.save` file holds, and the file's
    context standardization (a conditional flow's; else `distribution`'s own, if any).

    Raises:
        SymflowError: if the file's parameter blocks do not match the flow's.
    """
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    blocks = [tuple(b) for b in data.get("blocks", [])]
    train_base = any(name.startswith("base.") for name, _ in blocks)
    kernels = training_kernels(distribution, frozen=frozen, train_base=train_base)
    mine = [(b.name, b.size) for b in kernels.plan.trained]
    if blocks != mine:
        raise SymflowError(
            f"load_parameters: {path} holds parameters {[n for n, _ in blocks][:12]}, but this "
            f"flow has {[n for n, _ in mine][:12]}. Load into the same flow structure it was "
            "saved from (with the same frozen parameters)."
        )
    loaded = kernels.distribution(np.array(data["theta"], dtype=np.float64))
    std = data.get("context_standardization") or getattr(
        distribution, "context_standardization", None
    )
    return loaded if std is None else loaded.with_context_standardization(*std)


def _validation(kernels, rows, context, validation_data, validation_fraction, rng):
    """(training rows, their context, validation rows, their context) as fit splits them."""
    plan = kernels.plan
    if validation_fraction is not None:
        if validation_data is not None:
            raise ValueError("fit: give validation_data or validation_fraction, not both.")
        if not 0.0 < validation_fraction < 1.0:
            raise ValueError(
                f"fit: validation_fraction must be in (0, 1); got {validation_fraction!r}."
            )
        order = rng.permutation(rows.shape[0])
        cut = int(round(rows.shape[0] * (1.0 - validation_fraction)))
        keep, held = order[:cut], order[cut:]
        return rows[keep], context[keep], rows[held], context[held]
    if validation_data is None:
        return rows, context, None, None
    if plan.context_size:
        if not (isinstance(validation_data, tuple) and len(validation_data) == 2):
            raise ShapeError(
                "fit: a conditional flow's validation_data must be a pair (x, context)."
            )
        val_rows = _rows(validation_data[0], plan)
        return rows, context, val_rows, _context_rows(validation_data[1], val_rows, plan)
    val_rows = _rows(validation_data, plan)
    return rows, context, val_rows, _context_rows(None, val_rows, plan)


def fit(
    distribution,
    data,
    *,
    context=None,
    epochs: int = 100,
    batch_size: int = 100,
    optimizer: Optimizer | None = None,
    seed: int = 0,
    validation_data=None,
    validation_fraction: float | None = None,
    patience: int | None = None,
    frozen=(),
    train_base: bool = False,
    standardize_context: bool = True,
    progress: bool = True,
) -> FitResult:
    """Maximum-likelihood training of a flow's parameters, compiled end to end.

    Args:
        distribution: a TransformedDistribution (see `symflow.training.plan`).
        data: (n_samples, n) array of events (1-D for scalar events).
        context: (n_samples, context_size), one context per row, for a conditional flow.
        epochs: passes over the data, each in a fresh shuffled order.
        batch_size: rows per step (the last step of an epoch may be smaller).
        optimizer: `sf.Adam(...)` (default, learning rate 1e-3) or `sf.SGD(...)`.
        seed: seeds the shuffling (and the validation split): same seed, same result.
        validation_data: held-out events (a pair (x, context) for a conditional flow); or
            `validation_fraction` of `data` held out.
        patience: stop after this many epochs without a better validation NLL, keeping
            the best parameters (needs validation data).
        frozen: parameter names (or member prefixes like '0.Affine') not to train.
        train_base: also train the base distribution's loc and scale ('base.loc',
            'base.scale' or 'base.scale_diag'; the scale stays positive through Softplus).
        standardize_context: for a conditional flow without a context standardization,
            standardize every context by the training contexts' mean and standard
            deviation (a constant coordinate: scale 1) before the networks see it; the
            returned distribution keeps it and applies it in `log_prob` and `sample`
            (see `TransformedDistribution.with_context_standardization`). A flow that
            already has one keeps its own.
        progress: show a progress bar (tqdm, if installed) with the epoch's loss.

    Returns:
        FitResult with the trained distribution and the history.

    Raises:
        ShapeError: data (or context) of the wrong shape, or not finite.
        SymflowError: a flow the training generator cannot compile, or parameters that
            became non-finite (the learning rate is too large).

    Example:
        >>> import numpy as np, symflow as sf
        >>> from symflow import bijectors as sfb, distributions as sfd
        >>> flow = sfd.TransformedDistribution(sfd.Normal(0.0, 1.0),
        ...                                    sfb.AffineScalar(shift=0.0, scale=1.0))
        >>> data = 3.0 + 2.0 * np.random.default_rng(0).standard_normal(1000)
        >>> result = sf.fit(flow, data, epochs=200, optimizer=sf.Adam(5e-2), progress=False)
        >>> [round(float(v), 1) for v in result.parameters.values()]  # doctest: +SKIP
        [3.0, 2.0]
    """
    optimizer = optimizer or Adam()
    if not isinstance(optimizer, Optimizer):
        raise TypeError(
            f"fit: `optimizer` must be sf.Adam(...) or sf.SGD(...); got {optimizer!r}."
        )
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"fit: `{name}` must be a positive integer; got {value!r}.")
    kernels = training_kernels(distribution, frozen=frozen, train_base=train_base)
    plan = kernels.plan
    rows = _rows(data, plan)
    ctx = _context_rows(context, rows, plan)
    rng = np.random.default_rng(seed)
    rows, ctx, val_rows, val_ctx = _validation(
        kernels, rows, ctx, validation_data, validation_fraction, rng
    )
    if patience is not None and val_rows is None:
        raise ValueError("fit: early stopping (patience) needs validation data.")
    standardization = _context_standardization(distribution, ctx, standardize_context)
    if standardization is not None:
        mean, scale = standardization
        ctx = (ctx - mean) / scale
        if val_ctx is not None:
            val_ctx = (val_ctx - mean) / scale
    theta = kernels.theta0.copy()
    state = np.zeros((3, theta.size))
    hyper = optimizer.hyper()
    history: list[float] = []
    val_history: list[float] | None = [] if val_rows is not None else None
    best = (math.inf, theta.copy(), 0)
    t_compile = time.perf_counter()
    # The first call compiles (or loads Numba's cache); time it apart from training.
    orders = np.stack([rng.permutation(rows.shape[0]) for _ in range(epochs)])
    train = kernels.module.train
    if batch_size >= kernels.module.PARALLEL_ROWS:
        threads = numba.get_num_threads()

        def train(*args):
            kernels.module.train_parallel(*args, threads)

    train(
        theta.copy(), kernels.fixed, rows, ctx, orders[:0], int(batch_size), optimizer.kind,
        hyper, state.copy(), np.empty(0),
    )  # fmt: skip
    compile_seconds = kernels.compile_seconds + time.perf_counter() - t_compile
    bar = _progress(epochs) if progress else None
    seconds = 0.0
    done, chunk = 0, 1
    while done < epochs:
        # Validation is per epoch; otherwise as many epochs a call as take CHUNK_SECONDS.
        stop = min(epochs, done + (1 if val_rows is not None else chunk))
        losses = np.empty(stop - done)
        t = time.perf_counter()
        train(
            theta, kernels.fixed, rows, ctx, orders[done:stop], int(batch_size),
            optimizer.kind, hyper, state, losses,
        )  # fmt: skip
        elapsed = time.perf_counter() - t
        seconds += elapsed
        history.extend(float(v) for v in losses)
        if not np.all(np.isfinite(theta)):
            raise SymflowError(
                f"fit: the parameters became non-finite in epoch {stop}; the learning rate "
                f"({hyper[0]:g}) is probably too large for this flow. Lower it."
            )
        if val_rows is not None:
            val = kernels.mean_nll(theta, val_rows, val_ctx, int(batch_size))
            val_history.append(float(val))
            if val < best[0]:
                best = (float(val), theta.copy(), done)
        chunk = max(1, int(CHUNK_SECONDS * (stop - done) / max(elapsed, 1e-9)))
        if bar is not None:
            bar.update(stop - done)
            bar.set_postfix(
                loss=f"{history[-1]:.4f}",
                **({"val": f"{val_history[-1]:.4f}"} if val_history else {}),
            )
        done = stop
        if patience is not None and done - 1 - best[2] >= patience:
            break
    if bar is not None:
        bar.close()
    best_epoch = len(history) - 1
    if val_rows is not None and patience is not None:
        theta, best_epoch = best[1], best[2]
    q = kernels.constrained(theta)
    parameters = {
        b.name: float(q[b.q_start]) if b.size == 1 else q[b.q_start : b.q_start + b.size].copy()
        for b in plan.trained
    }
    trained = kernels.distribution(theta)
    if standardization is not None:
        trained = trained.with_context_standardization(*standardization)
    return FitResult(
        distribution=trained,
        history=history,
        validation_history=val_history,
        parameters=parameters,
        theta=theta,
        best_epoch=best_epoch,
        seconds=seconds,
        compile_seconds=compile_seconds,
        blocks=[(b.name, b.size) for b in plan.trained],
    )


def _context_standardization(distribution, ctx: np.ndarray, standardize: bool):
    """(mean, scale) for the training contexts, the flow's own, or None (no context, or
    not asked for)."""
    own = getattr(distribution, "context_standardization", None)
    if own is not None:
        return own
    if not standardize or ctx.shape[1] == 0:
        return None
    mean = ctx.mean(axis=0)
    scale = ctx.std(axis=0)
    flat = ~(scale > 1e-12 * np.maximum(1.0, np.abs(mean)))
    scale[flat] = 1.0  # a constant coordinate: centred, not divided by ~0
    return mean, scale


def _progress(epochs: int):
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _PlainProgress(epochs)
    return tqdm(total=epochs, desc="fit", unit="epoch", mininterval=0.1)


class _PlainProgress:
    """A progress line without tqdm: epoch and loss, every tenth of the run."""

    def __init__(self, total: int) -> None:
        self.total, self.done, self.every = total, 0, max(1, total // 10)
        self.shown = 0

    def update(self, k: int) -> None:
        self.done += k

    def set_postfix(self, **values) -> None:
        if self.done - self.shown >= self.every or self.done == self.total:
            self.shown = self.done
            text = ", ".join(f"{k} {v}" for k, v in values.items())
            print(f"fit: epoch {self.done}/{self.total}: {text}", flush=True)

    def close(self) -> None:
        pass
