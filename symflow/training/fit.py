"""`sf.fit`: maximum-likelihood training of a TransformedDistribution, compiled end to end.

The flow's training module (fused NLL + gradient, optimizer, epoch loop) is generated once
per flow structure and cached like every kernel; `fit` calls its `train` once per epoch
(or once for the whole run when nothing needs to happen between epochs), so Python never
runs per step.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from symflow._version import __version__
from symflow.bijectors import Affine, Chain, ScaleMatvecTriL
from symflow.errors import ShapeError, SymflowError
from symflow.runtime.loader import atomic_write, read_entry, write_entry
from symflow.training.emit import emit_training_module, layout, training_key
from symflow.training.optimizers import Adam, Optimizer
from symflow.training.plan import ElementwiseMember, TrainingPlan, plan_training

__all__ = [
    "PARALLEL_ROWS",
    "FitResult",
    "TrainingKernels",
    "fit",
    "load_parameters",
    "training_kernels",
]

#: Batches of at least this many rows run each step's rows on all cores. Measured on the
#: tiny flow (2 cores, one call a batch from Python), ns a row at 300 / 1000 / 3000 / 10^4
#: / 3x10^4 rows: serial 11.0 / 7.5 / 5.2 / 4.5 / 4.4, parallel 52 / 17.8 / 7.5 / 4.0 /
#: 3.1 (thread start-up is paid per step; the serial rows are vectorized, four a vector).
PARALLEL_ROWS = 10_000


@dataclass
class TrainingKernels:
    """A flow's loaded training module and its parameter layout."""

    plan: TrainingPlan
    module: object
    fixed: np.ndarray
    theta0: np.ndarray  # θ's start: the plan's start values mapped by `unconstrain`
    compile_seconds: float = 0.0

    def constrained(self, theta: np.ndarray) -> np.ndarray:
        """Every parameter's value (layout order) for unconstrained θ."""
        q, dq = np.empty_like(self.fixed), np.empty_like(self.fixed)
        self.module.constrain(theta, self.fixed, q, dq)
        return q

    def nll_and_grad(self, theta: np.ndarray, batch: np.ndarray) -> tuple[float, np.ndarray]:
        """Mean NLL of `batch` (rows of events) and its gradient with respect to θ."""
        return self._nll_and_grad(theta, _rows(batch, self.plan))

    def _nll_and_grad(self, theta: np.ndarray, rows: np.ndarray) -> tuple[float, np.ndarray]:
        # the kernel `train` compiles anyway; the module's allocating `nll_and_grad` would
        # be one more compilation (about 1.4 s cold)
        grad = np.empty_like(theta)
        index = np.arange(rows.shape[0])
        loss = self.module.nll_and_grad_into(
            theta, self.fixed, rows, index, grad, *self.module.work_arrays()
        )
        return float(loss), grad

    def distribution(self, theta: np.ndarray):
        """The flow rebuilt with the parameters θ stands for."""
        return _rebuild(self.plan, self.constrained(theta))


def _rows(data, plan: TrainingPlan) -> np.ndarray:
    arr = np.asarray(data, dtype=np.float64)
    n = plan.event_size
    if plan.base.name == "Normal":
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


def training_kernels(distribution, *, frozen=(), train_base: bool = False) -> TrainingKernels:
    """Plans, emits (or loads from the cache) and returns the flow's training kernels."""
    t0 = time.perf_counter()
    plan = plan_training(distribution, frozen=frozen, train_base=train_base)
    key = training_key(plan)
    module_name = f"Training_{key[:16]}"
    entry = read_entry(module_name, key)
    if entry is None:
        entry = write_entry(
            emit_training_module(plan, key), {"name": "training", "symflow_version": __version__}
        )
    fixed = np.array(_initial_q(plan))
    theta0 = _theta0(plan, entry.module)
    return TrainingKernels(plan, entry.module, fixed, theta0, time.perf_counter() - t0)


def _theta0(plan: TrainingPlan, module) -> np.ndarray:
    """θ's start: the compiled inverses of the constraint bijectors at the bound values.

    Raises:
        SymflowError: where a value maps to a non-finite θ (it lies on its constraint's
            boundary).
    """
    theta = np.empty_like(plan.start)
    bad = module.unconstrain(plan.start, theta)
    if bad >= 0:
        raise SymflowError(
            f"fit: {plan.names[bad]} = {float(plan.start[bad])!r} maps to {theta[bad]} in the "
            "unconstrained space; the parameter's value must lie strictly inside its "
            "constraint."
        )
    return theta


def _initial_q(plan: TrainingPlan) -> list[float]:
    q = []
    for kind, k, name, _, _, _ in layout(plan):
        # vector entries are named "block[j]"; an elementwise parameter's name is bare
        j = int(name[name.index("[") + 1 : -1]) if name.endswith("]") else None
        if kind.startswith("base_"):
            values = plan.base_train.loc if kind == "base_loc" else plan.base_train.scale
            q.append(float(values[j]))
            continue
        m = plan.members[k]
        if isinstance(m, ElementwiseMember):
            q.append(m.values[name])
        else:
            if kind == "shift":
                q.append(float(m.shift[j]))
            elif kind == "tril":
                q.append(float(m.tril.reshape(-1)[m.tril_positions[j]]))
            elif kind == "factor":
                q.append(float(m.factor.reshape(-1)[j]))
            else:
                q.append(float(m.diag[j]))
    return q


def _rebuild(plan: TrainingPlan, q: np.ndarray):
    from symflow.distributions import MultivariateNormalDiag, Normal, TransformedDistribution

    entries = layout(plan)
    new = []
    for k, m in enumerate(plan.members):
        mine = [(kind, name, qi) for kind, kk, name, qi, _, _ in entries if kk == k]
        if isinstance(m, ElementwiseMember):
            new.append(m.bijector.declared(**{name: float(q[qi]) for _, name, qi in mine}))
            continue
        block = {kind: np.array([q[qi] for kk, _, qi in mine if kk == kind]) for kind, *_ in mine}
        n, r = m.n, m.r
        tril = np.zeros(n * n)
        tril[m.tril_positions] = block["tril"]
        tril = tril.reshape(n, n)
        given = m.bijector.parameters
        if isinstance(m.bijector, ScaleMatvecTriL):
            new.append(ScaleMatvecTriL(tril))
            continue
        kwargs = {"shift": block["shift"], "scale_tril": tril}
        if "scale_perturb_factor" in given:
            kwargs["scale_perturb_factor"] = block["factor"].reshape(n, r)
        if "scale_perturb_diag" in given:
            kwargs["scale_perturb_diag"] = block["diag"]
        new.append(Affine(**kwargs))
    bijector = (
        new[0]
        if len(new) == 1 and not isinstance(plan.distribution.bijector, Chain)
        else Chain(new)
    )
    base = plan.distribution.distribution
    if plan.base_train is not None:
        loc = np.array([q[qi] for kind, _, _, qi, _, _ in entries if kind == "base_loc"])
        scale = np.array([q[qi] for kind, _, _, qi, _, _ in entries if kind == "base_scale"])
        if isinstance(base, MultivariateNormalDiag):
            base = MultivariateNormalDiag(loc=loc, scale_diag=scale)
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
        parameters: trained value of every trainable parameter, by name.
        theta: the unconstrained parameter vector.
        best_epoch: the epoch whose parameters were kept (early stopping), 0-based.
        seconds: wall time of the training calls; compile_seconds: planning, emission
            and (first call) Numba compilation.
    """

    distribution: object
    history: list[float]
    validation_history: list[float] | None
    parameters: dict[str, float]
    theta: np.ndarray
    best_epoch: int
    seconds: float
    compile_seconds: float
    names: list[str] = field(repr=False, default_factory=list)

    def save(self, path) -> None:
        """Writes the trained parameters (JSON, atomically) for `load_parameters`."""
        data = {
            "symflow_version": __version__,
            "names": self.names,
            "theta": [float(v) for v in self.theta],
            "parameters": self.parameters,
            "history": self.history,
        }
        atomic_write(Path(path), json.dumps(data, indent=1) + "\n")


def load_parameters(distribution, path, *, frozen=()):
    """`distribution` with the parameters a `FitResult.save` file holds.

    Raises:
        SymflowError: if the file's parameter names do not match the flow's.
    """
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    train_base = any(name.startswith("base.") for name in data.get("names", []))
    kernels = training_kernels(distribution, frozen=frozen, train_base=train_base)
    if data.get("names") != kernels.plan.names:
        raise SymflowError(
            f"load_parameters: {path} holds parameters {data.get('names')}, but this flow has "
            f"{kernels.plan.names}. Load into the same flow structure it was saved from."
        )
    return kernels.distribution(np.array(data["theta"], dtype=np.float64))


def fit(
    distribution,
    data,
    *,
    epochs: int = 100,
    batch_size: int = 100,
    optimizer: Optimizer | None = None,
    seed: int = 0,
    validation_data=None,
    validation_fraction: float | None = None,
    patience: int | None = None,
    frozen=(),
    train_base: bool = False,
    progress: bool = True,
) -> FitResult:
    """Maximum-likelihood training of a flow's parameters, compiled end to end.

    Args:
        distribution: a TransformedDistribution (see `symflow.training.plan`).
        data: (n_samples, n) array of events (1-D for scalar events).
        epochs: passes over the data, each in a fresh shuffled order.
        batch_size: rows per step (the last step of an epoch may be smaller).
        optimizer: `sf.Adam(...)` (default, learning rate 1e-3) or `sf.SGD(...)`.
        seed: seeds the shuffling (and the validation split): same seed, same result.
        validation_data: held-out events; or `validation_fraction` of `data` held out.
        patience: stop after this many epochs without a better validation NLL, keeping
            the best parameters (needs validation data).
        frozen: parameter names (or member prefixes like '0.Affine') not to train.
        train_base: also train the base distribution's loc and scale ('base.loc',
            'base.scale' or 'base.scale_diag'; the scale stays positive through Softplus).
        progress: show a progress bar (tqdm, if installed) with the epoch's loss.

    Returns:
        FitResult with the trained distribution and the history.

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
    rng = np.random.default_rng(seed)
    if validation_fraction is not None:
        if validation_data is not None:
            raise ValueError("fit: give validation_data or validation_fraction, not both.")
        if not 0.0 < validation_fraction < 1.0:
            raise ValueError(
                f"fit: validation_fraction must be in (0, 1); got {validation_fraction!r}."
            )
        order = rng.permutation(rows.shape[0])
        cut = int(round(rows.shape[0] * (1.0 - validation_fraction)))
        rows, val_rows = rows[order[:cut]], rows[order[cut:]]
    else:
        val_rows = None if validation_data is None else _rows(validation_data, plan)
    if patience is not None and val_rows is None:
        raise ValueError("fit: early stopping (patience) needs validation data.")
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
    if batch_size >= PARALLEL_ROWS and hasattr(kernels.module, "train_parallel"):
        train = kernels.module.train_parallel
    train(
        theta.copy(), kernels.fixed, rows, orders[:0], int(batch_size), optimizer.kind,
        hyper, state.copy(), np.empty(0),
    )  # fmt: skip
    compile_seconds = kernels.compile_seconds + time.perf_counter() - t_compile
    bar = _progress(epochs) if progress else None
    per_epoch = bar is not None or val_rows is not None
    seconds = 0.0
    chunks = [(e, e + 1) for e in range(epochs)] if per_epoch else [(0, epochs)]
    for start, stop in chunks:
        losses = np.empty(stop - start)
        t = time.perf_counter()
        train(
            theta, kernels.fixed, rows, orders[start:stop], int(batch_size),
            optimizer.kind, hyper, state, losses,
        )  # fmt: skip
        seconds += time.perf_counter() - t
        history.extend(float(v) for v in losses)
        if not np.all(np.isfinite(theta)):
            raise SymflowError(
                f"fit: the parameters became non-finite in epoch {stop}; the learning rate "
                f"({hyper[0]:g}) is probably too large for this flow. Lower it."
            )
        if val_rows is not None:
            val = kernels._nll_and_grad(theta, val_rows)[0]
            val_history.append(float(val))
            if val < best[0]:
                best = (float(val), theta.copy(), start)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(
                loss=f"{history[-1]:.4f}",
                **({"val": f"{val_history[-1]:.4f}"} if val_history else {}),
            )
        if patience is not None and start - best[2] >= patience:
            break
    if bar is not None:
        bar.close()
    best_epoch = len(history) - 1
    if val_rows is not None and patience is not None:
        theta, best_epoch = best[1], best[2]
    q = kernels.constrained(theta)
    trainable = sorted((e for e in layout(plan) if e[4] is not None), key=lambda e: e[4])
    parameters = {name: float(q[e[3]]) for name, e in zip(plan.names, trainable, strict=True)}
    return FitResult(
        distribution=kernels.distribution(theta),
        history=history,
        validation_history=val_history,
        parameters=parameters,
        theta=theta,
        best_epoch=best_epoch,
        seconds=seconds,
        compile_seconds=compile_seconds,
        names=list(plan.names),
    )


def _progress(epochs: int):
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _PlainProgress(epochs)
    return tqdm(total=epochs, desc="fit", unit="epoch")


class _PlainProgress:
    """A progress line without tqdm: epoch and loss, every tenth of the run."""

    def __init__(self, total: int) -> None:
        self.total, self.done, self.every = total, 0, max(1, total // 10)

    def update(self, k: int) -> None:
        self.done += k

    def set_postfix(self, **values) -> None:
        if self.done % self.every == 0 or self.done == self.total:
            text = ", ".join(f"{k} {v}" for k, v in values.items())
            print(f"fit: epoch {self.done}/{self.total}: {text}", flush=True)

    def close(self) -> None:
        pass
