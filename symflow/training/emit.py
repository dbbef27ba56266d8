"""Training plan → one generated module: the loss and its gradient, and the training loop.

The flow's loss and its gradient with respect to every entry of q come from the composer
(`symflow.codegen.flow.compose.gradient_functions`): each member supplies its inverse pass
and its adjoint through the member interface, so this module knows no member kind. Here
the θ ↔ q maps (`constrain`, `unconstrain`: each constrained parameter through symflow's
Softplus or Sigmoid, from their derived stable forms), the optimizers and the epoch loop
are added: `train` runs every epoch and step inside Numba, no Python per step.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import sympy as sp

from symflow._version import __version__
from symflow.codegen.emit import KernelSource
from symflow.codegen.flow.compose import FASTMATH, assemble, gradient_functions
from symflow.codegen.printer import KernelPrinter
from symflow.runtime.composed import flow_code_key
from symflow.training.optimizers import optimizer_source
from symflow.training.plan import TrainingPlan, constraint_exprs, constraint_inverse_expr

__all__ = ["PARALLEL_ROWS_BATCH", "PARALLEL_ROWS_ROW", "emit_training_module", "training_key"]

#: Batches of at least this many rows run each step's rows on all cores, for flows trained
#: in one fused row loop (measured on the tiny flow, 2 cores, ns a row at 300 / 1000 /
#: 3000 / 10^4 / 3x10^4 rows: serial 11.0 / 7.5 / 5.2 / 4.5 / 4.4, parallel 52 / 17.8 /
#: 7.5 / 4.0 / 3.1: thread start-up is paid per step).
PARALLEL_ROWS_ROW = 10_000
#: The same for flows with network layers, whose rows cost microseconds each.
PARALLEL_ROWS_BATCH = 64


def _is_real(c) -> bool:
    return c is None or (c.lo == -sp.oo and c.hi == sp.oo)  # Real, NonZero, networks


def training_key(plan: TrainingPlan) -> str:
    """Hash of everything the module's text depends on (structure, not values)."""
    parts = [flow_code_key(plan.flow, "training")]
    # the training generator's own source: an edit here never reuses a stale module
    for path in sorted(Path(__file__).parent.glob("*.py")):
        parts.append(f"{path.name}={hashlib.sha256(path.read_bytes()).hexdigest()}")
    for b in plan.blocks:
        c = "" if b.constraint is None else b.constraint.name
        parts.append(f"{b.q_start}:{b.size}:{b.theta_start}:{c}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _constrain(plan: TrainingPlan, printer) -> str:
    lines = [
        "",
        f'@numba.njit(cache=True, error_model="numpy", fastmath={FASTMATH})',
        "def constrain(theta, fixed, q, dq):",
        '    """q: every parameter\'s value (θ mapped through its constraint, or fixed);',
        '    dq: d q / d θ for the trainable ones."""',
        "    for _j in range(q.shape[0]):",
        "        q[_j] = fixed[_j]",
        "        dq[_j] = 0.0",
    ]
    raw = sp.Symbol("_raw", real=True)
    for b in plan.trained:
        q, t = b.q_start, b.theta_start
        lines.append(f"    # {b.name}{'' if b.constraint is None else ', ' + b.constraint.name}")
        lines.append(f"    for _j in range({b.size}):")
        if _is_real(b.constraint):
            lines.append(f"        q[{q} + _j] = theta[{t} + _j]")
            lines.append(f"        dq[{q} + _j] = 1.0")
            continue
        value, deriv = constraint_exprs(b.constraint, raw)
        lines.append(f"        _raw = theta[{t} + _j]")
        lines.append(f"        q[{q} + _j] = {printer.print_expr(value)}")
        lines.append(f"        dq[{q} + _j] = {printer.print_expr(deriv)}")
    return "\n".join(lines) + "\n"


def _unconstrain(plan: TrainingPlan, printer) -> str:
    lines = [
        "",
        '@numba.njit(cache=True, error_model="numpy")',
        "def unconstrain(start, theta):",
        '    """θ from the trainable parameters\' constrained start values (the inverses of',
        '    the constraint bijectors); the index of the first non-finite entry, or -1."""',
    ]
    y = sp.Symbol("_y", real=True)
    for b in plan.trained:
        t = b.theta_start
        lines.append(f"    # {b.name}{'' if b.constraint is None else ', ' + b.constraint.name}")
        lines.append(f"    for _j in range({b.size}):")
        if _is_real(b.constraint):
            lines.append(f"        theta[{t} + _j] = start[{t} + _j]")
            continue
        lines.append(f"        _y = start[{t} + _j]")
        inverse = printer.print_expr(constraint_inverse_expr(b.constraint, y))
        lines.append(f"        theta[{t} + _j] = {inverse}")
    lines += [
        "    for _j in range(theta.shape[0]):",
        "        if not np.isfinite(theta[_j]):",
        "            return _j",
        "    return -1",
    ]
    return "\n".join(lines) + "\n"


def emit_training_module(plan: TrainingPlan, key: str) -> KernelSource:
    """The module text for `plan`; same structure, same bytes."""
    printer = KernelPrinter(branch_free=True)
    gradient, _ = gradient_functions(plan.flow, printer)
    parameters = _constrain(plan, printer) + _unconstrain(plan, printer)
    row_mode = plan.flow.row_mode()
    members = "\n".join(f"#   {k}: {m.label}" for k, m in enumerate(plan.flow.members))
    names = "\n".join(
        f"#   theta[{b.theta_start}:{b.theta_start + b.size}] -> q[{b.q_start}:"
        f"{b.q_start + b.size}]  {b.name}"
        for b in plan.trained
    )
    header = (
        f"# Generated by symflow {__version__}: fused training kernels. Do not edit.\n"
        f"# Flow, members in inverse-pass order (data side first), base "
        f"{plan.flow.base.name} (n = {plan.event_size}, context {plan.context_size}):\n"
        f"{members}\n# Trainable parameters (unconstrained θ):\n{names}\n"
        f"# The loss's code: {'one fused loop over rows' if row_mode else 'batch code'}.\n"
        f"# hash:       sha256:{key}\n"
        '"""Fused training kernels: mean NLL + gradient, and the compiled training loop."""\n\n'
    )
    theta_q = tuple(int(i) for i in plan.theta_q)
    constants = [
        f"HASH = {key!r}",
        f"N_THETA = {plan.n_theta}",
        "#: the q index of each θ entry",
        f"THETA_Q = np.array({theta_q!r}, dtype=np.int64)",
        "#: batches of at least this many rows train on all cores (`train_parallel`)",
        f"PARALLEL_ROWS = {PARALLEL_ROWS_ROW if row_mode else PARALLEL_ROWS_BATCH}",
    ]
    text = assemble(
        header,
        [
            ("the loss and its gradient with respect to q (composed from the members)", gradient),
            ("parameters: θ <-> q", parameters),
            ("optimizers", optimizer_source()),
            ("the mean loss and its gradient with respect to θ, and the loop", _loop(False)),
            ("the same on all cores", _loop(True)),
        ],
        plan.flow,
        constants,
    )
    return KernelSource(f"Training_{key[:16]}", text, key)


def _loop(parallel: bool) -> str:
    """`nll_and_grad_into` and `train`, or their `_parallel` twins (rows on all cores)."""
    sfx, work = ("_parallel", "gqs") if parallel else ("", "w")
    what = (
        "the rows on all cores (gqs: (threads, len(q)) work)"
        if parallel
        else "w: `train_work(len(rows))` or larger"
    )
    args = "theta, fixed, data, context, order, batch_size, kind, hyper, state, losses"
    args += ", threads" if parallel else ""
    alloc = "gqs = np.empty((threads, N_Q))" if parallel else "w = train_work(batch_size)"
    doc = (
        '"""`train` with each batch\'s rows on `threads` cores (numba.get_num_threads(), passed\n'
        '    in: a function that calls it cannot be cached)."""'
        if parallel
        else '''"""Every epoch and step in one call: the step's loss and gradient, the update.

    order: (epochs, n_data) row permutations; kind: 0 Adam, 1 SGD with momentum; hyper:
    the optimizer's constants; state: (3, len(θ)) moments and, at [2, 0], the step
    count; losses[e]: the mean training NLL of epoch e.
    """'''
    )
    return f'''
@numba.njit(cache=True, error_model="numpy", fastmath={FASTMATH})
def nll_and_grad_into{sfx}(theta, fixed, data, context, rows, grad, q, dq, gq, {work}):
    """Mean NLL of the events data[rows] and its gradient w.r.t. θ, into `grad`; q, dq,
    gq: work vectors of len(q); {what}."""
    constrain(theta, fixed, q, dq)
    for _j in range(gq.shape[0]):
        gq[_j] = 0.0
    _loss = loss_and_gq{sfx}(q, data, context, rows, gq, {work})
    _nb = rows.shape[0]
    for _j in range(THETA_Q.shape[0]):
        grad[_j] = gq[THETA_Q[_j]] * dq[THETA_Q[_j]] / _nb
    return _loss / _nb


@numba.njit(cache=True)
def train{sfx}({args}):
    {doc}
    {alloc}
    q, dq, gq = np.empty(N_Q), np.empty(N_Q), np.empty(N_Q)
    grad = np.empty(theta.shape[0])
    n_data = data.shape[0]
    for _e in range(order.shape[0]):
        _total = 0.0
        for _s in range(0, n_data, batch_size):
            _m = min(batch_size, n_data - _s)
            # nll_and_grad_into{sfx}, inline (one call level less to compile)
            constrain(theta, fixed, q, dq)
            for _j in range(N_Q):
                gq[_j] = 0.0
            _l = loss_and_gq{sfx}(q, data, context, order[_e, _s : _s + _m], gq, {work}) / _m
            for _j in range(THETA_Q.shape[0]):
                grad[_j] = gq[THETA_Q[_j]] * dq[THETA_Q[_j]] / _m
            if kind == 0:
                adam_update(theta, grad, state, hyper)
            else:
                sgd_update(theta, grad, state, hyper)
            _total += _l * _m
        losses[_e] = _total / n_data
'''
