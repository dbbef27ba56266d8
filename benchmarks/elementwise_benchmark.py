"""Fused elementwise kernels against NumPy (chunked), PyTorch and JAX, on one three-member chain.

The chain (issue 6): y = Exp(SinhArcsinh(skewness=0.3, tailweight=1.5)(AffineScalar(shift=0.5,
scale=2)(z))), in TFP's order `Chain([Exp(), SinhArcsinh(0.3, 1.5), AffineScalar(0.5, 2)])`,
over points z ~ Normal(0, 1) (and y = f(z) for the inverse), in float64 and in float32
(`--dtypes`; float32 inputs stay float32 in every implementation, and symflow computes
them in float32 where its measurement allows, see `symflow.runtime.float32`). Three
operations:
forward, forward + log-det, inverse + log-det. Every implementation allocates its outputs on
each call, as a user's call does:

- symflow: the public `chain.forward` / `forward_and_log_det` / `inverse_and_log_det` (one
  fused kernel call each, `*_parallel` above the module's PARALLEL_THRESHOLD);
- NumPy, whole arrays: the same maths in ufuncs on whole arrays (one temporary per step);
- NumPy, chunked: the same ufuncs on cache-sized chunks (4096 elements) with `out=` into
  reused scratch buffers, the fastest way to use NumPy;
- PyTorch (eager, CPU) and JAX (`jax.jit` of each operation), when installed.

Each configuration (threads = 1, then all cores) runs in a fresh subprocess so that Numba's,
PyTorch's and XLA's thread settings take effect before anything starts. Every peer's results
are checked against symflow's before timing. Prints ns per element (median of `--repeat`)
and symflow's speed-up over each peer (peer time / symflow time).

Run:

    python benchmarks/elementwise_benchmark.py [--sizes 1000000 10000000] [--repeat 7]
        [--dtypes float64 float32]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time

import numpy as np

SHIFT, SCALE, SKEW, TAIL = 0.5, 2.0, 0.3, 1.5
MULT = 2.0 / math.sinh(math.asinh(2.0) * TAIL)  # SinhArcsinh's output multiplier
LOG_CONST = math.log(SCALE) + math.log(TAIL) + math.log(MULT) - math.log(2.0)
OPS = ("forward", "forward + log-det", "inverse + log-det")
CHUNK = 4096


def symflow_chain():
    from symflow import bijectors as sfb

    return sfb.Chain(
        [
            sfb.Exp(),
            sfb.SinhArcsinh(skewness=SKEW, tailweight=TAIL),
            sfb.AffineScalar(SHIFT, SCALE),
        ]
    )


# -- NumPy ----------------------------------------------------------------------------------
# log|f'(z)| = log scale + log tail + log mult + log cosh(t) - log1p(u^2)/2 + v, with
# u = shift + scale z, t = tail (asinh u + skew), v = mult sinh t, y = exp v;
# log cosh t = |t| + log1p(exp(-2|t|)) - log 2 (folded into LOG_CONST).


def numpy_forward(z):
    return np.exp(MULT * np.sinh(TAIL * (np.arcsinh(SHIFT + SCALE * z) + SKEW)))


def numpy_forward_ldj(z):
    u = SHIFT + SCALE * z
    t = TAIL * (np.arcsinh(u) + SKEW)
    v = MULT * np.sinh(t)
    a = np.abs(t)
    ldj = LOG_CONST + a + np.log1p(np.exp(-2.0 * a)) - 0.5 * np.log1p(u * u) + v
    return np.exp(v), ldj


def numpy_inverse_ldj(y):
    v = np.log(y)
    t = np.arcsinh(v / MULT)
    u = np.sinh(t / TAIL - SKEW)
    a = np.abs(t)
    ldj = -(LOG_CONST + a + np.log1p(np.exp(-2.0 * a)) - 0.5 * np.log1p(u * u) + v)
    return (u - SHIFT) / SCALE, ldj


def _chunked(body, n_out):
    """Runs `body(chunk, outs, scratch)` over CHUNK-sized pieces with reused buffers."""
    scratch = {}

    def run(x):
        if x.dtype not in scratch:
            scratch[x.dtype] = [np.empty(CHUNK, dtype=x.dtype) for _ in range(3)]
        buffers = scratch[x.dtype]
        outs = [np.empty_like(x) for _ in range(n_out)]
        for lo in range(0, x.shape[0], CHUNK):
            hi = min(lo + CHUNK, x.shape[0])
            m = hi - lo
            body(x[lo:hi], [o[lo:hi] for o in outs], [s[:m] for s in buffers])
        return outs[0] if n_out == 1 else tuple(outs)

    return run


def _forward_body(z, outs, s):
    (y,) = outs
    np.multiply(z, SCALE, out=y)
    np.add(y, SHIFT, out=y)
    np.arcsinh(y, out=y)
    np.add(y, SKEW, out=y)
    np.multiply(y, TAIL, out=y)
    np.sinh(y, out=y)
    np.multiply(y, MULT, out=y)
    np.exp(y, out=y)


def _sas_ldj_into(t, u, ldj, s):
    """ldj = LOG_CONST + log cosh(t) (less log 2) - log1p(u^2)/2, t and u kept."""
    np.abs(t, out=s)
    np.multiply(s, -2.0, out=ldj)
    np.exp(ldj, out=ldj)
    np.log1p(ldj, out=ldj)
    np.add(ldj, s, out=ldj)
    np.multiply(u, u, out=s)
    np.log1p(s, out=s)
    np.multiply(s, 0.5, out=s)
    np.subtract(ldj, s, out=ldj)
    np.add(ldj, LOG_CONST, out=ldj)


def _forward_ldj_body(z, outs, s):
    y, ldj = outs
    u, t = s[0], s[1]
    np.multiply(z, SCALE, out=u)
    np.add(u, SHIFT, out=u)
    np.arcsinh(u, out=t)
    np.add(t, SKEW, out=t)
    np.multiply(t, TAIL, out=t)
    _sas_ldj_into(t, u, ldj, s[2])
    np.sinh(t, out=y)
    np.multiply(y, MULT, out=y)  # y holds v
    np.add(ldj, y, out=ldj)
    np.exp(y, out=y)


def _inverse_ldj_body(y, outs, s):
    x, ldj = outs
    v, t = s[0], s[1]
    np.log(y, out=v)
    np.multiply(v, 1.0 / MULT, out=t)
    np.arcsinh(t, out=t)
    np.multiply(t, 1.0 / TAIL, out=x)
    np.subtract(x, SKEW, out=x)
    np.sinh(x, out=x)  # x holds u
    _sas_ldj_into(t, x, ldj, s[2])
    np.add(ldj, v, out=ldj)
    np.negative(ldj, out=ldj)
    np.subtract(x, SHIFT, out=x)
    np.multiply(x, 1.0 / SCALE, out=x)


numpy_chunked = {
    OPS[0]: _chunked(_forward_body, 1),
    OPS[1]: _chunked(_forward_ldj_body, 2),
    OPS[2]: _chunked(_inverse_ldj_body, 2),
}


# -- PyTorch and JAX (optional peers) ---------------------------------------------------------


def torch_functions(threads: int):
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)

    def forward(z):
        return torch.exp(MULT * torch.sinh(TAIL * (torch.asinh(SHIFT + SCALE * z) + SKEW)))

    def sas_ldj(t, u):
        a = torch.abs(t)
        return LOG_CONST + a + torch.log1p(torch.exp(-2.0 * a)) - 0.5 * torch.log1p(u * u)

    def forward_ldj(z):
        u = SHIFT + SCALE * z
        t = TAIL * (torch.asinh(u) + SKEW)
        v = MULT * torch.sinh(t)
        return torch.exp(v), sas_ldj(t, u) + v

    def inverse_ldj(y):
        v = torch.log(y)
        t = torch.asinh(v / MULT)
        u = torch.sinh(t / TAIL - SKEW)
        return (u - SHIFT) / SCALE, -(sas_ldj(t, u) + v)

    def wrap(fn):
        def run(x, tensor=None):
            with torch.no_grad():
                return fn(torch.from_numpy(x))

        return run

    return {OPS[0]: wrap(forward), OPS[1]: wrap(forward_ldj), OPS[2]: wrap(inverse_ldj)}


def jax_functions():
    try:
        import jax
    except ImportError:
        return None
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy

    def sas_ldj(t, u):
        a = jnp.abs(t)
        return LOG_CONST + a + jnp.log1p(jnp.exp(-2.0 * a)) - 0.5 * jnp.log1p(u * u)

    def forward(z):
        return jnp.exp(MULT * jnp.sinh(TAIL * (jnp.arcsinh(SHIFT + SCALE * z) + SKEW)))

    def forward_ldj(z):
        u = SHIFT + SCALE * z
        t = TAIL * (jnp.arcsinh(u) + SKEW)
        v = MULT * jnp.sinh(t)
        return jnp.exp(v), sas_ldj(t, u) + v

    def inverse_ldj(y):
        v = jnp.log(y)
        t = jnp.arcsinh(v / MULT)
        u = jnp.sinh(t / TAIL - SKEW)
        return (u - SHIFT) / SCALE, -(sas_ldj(t, u) + v)

    def wrap(fn):
        jitted = jax.jit(fn)

        def run(x):
            return jax.block_until_ready(jitted(jnp.asarray(x)))

        return run

    return {OPS[0]: wrap(forward), OPS[1]: wrap(forward_ldj), OPS[2]: wrap(inverse_ldj)}


# -- one configuration (a subprocess) ---------------------------------------------------------


def _median_ns(fn, x, repeat: int) -> float:
    fn(x)
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t)
    return float(np.median(times)) / x.shape[0] * 1e9


def _check(name, got, want):
    got = got if isinstance(got, tuple) else (got,)
    want = want if isinstance(want, tuple) else (want,)
    for g, w in zip(got, want, strict=True):
        g = np.asarray(g)
        assert g.dtype == w.dtype, f"{name}: {g.dtype} result for {w.dtype} input"
        tol = 1e-9 if w.dtype == np.float64 else 2e-4  # float32: a few hundred ULP at most
        np.testing.assert_allclose(g, w, rtol=tol, atol=tol, err_msg=name)


def worker(threads: int, sizes: list[int], repeat: int, dtype: str) -> list[dict]:
    import numba

    numba.set_num_threads(threads)
    chain = symflow_chain()
    impls = {
        "symflow": {
            OPS[0]: chain.forward,
            OPS[1]: chain.forward_and_log_det,
            OPS[2]: chain.inverse_and_log_det,
        },
        "NumPy chunked": numpy_chunked,
        "NumPy": {OPS[0]: numpy_forward, OPS[1]: numpy_forward_ldj, OPS[2]: numpy_inverse_ldj},
    }
    peers = {"PyTorch": torch_functions(threads), "JAX": jax_functions()}
    impls.update({k: v for k, v in peers.items() if v is not None})
    rows = []
    for n in sizes:
        z = np.random.default_rng(0).standard_normal(n).astype(dtype)
        y = chain.forward(z)
        for op in OPS:
            x = y if op.startswith("inverse") else z
            want = impls["symflow"][op](x)
            row = {"n": n, "threads": threads, "op": op, "dtype": dtype}
            for name, table in impls.items():
                _check(f"{name} {op}", table[op](x), want)
                row[name] = _median_ns(table[op], x, repeat)
            rows.append(row)
    return rows


def _jax_env(threads: int) -> dict:
    env = dict(os.environ)
    if threads == 1:
        env["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    env.setdefault("JAX_PLATFORMS", "cpu")
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--threads", type=int, nargs="+", default=None)
    parser.add_argument("--dtypes", nargs="+", default=["float64", "float32"])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.threads[0], args.sizes, args.repeat, args.dtypes[0])))
        return
    cores = os.cpu_count() or 1
    thread_counts = args.threads or sorted({1, cores})
    rows = []
    for dtype in args.dtypes:
        for threads in thread_counts:
            command = [sys.executable, __file__, "--worker", "--threads", str(threads)]
            command += ["--repeat", str(args.repeat), "--sizes", *map(str, args.sizes)]
            command += ["--dtypes", dtype]
            done = subprocess.run(
                command, env=_jax_env(threads), capture_output=True, text=True, check=False
            )
            if done.returncode:
                sys.exit(f"worker for {dtype}, {threads} thread(s) failed:\n{done.stderr}")
            rows += json.loads(done.stdout.strip().splitlines()[-1])
    if "float32" in args.dtypes:
        print("symflow's float32 choices for this chain (measured at first use):")
        chain = symflow_chain()
        fused = chain.fused_kernels()
        from symflow.runtime.float32 import float32_choice

        for kernel, n_out in (
            ("forward", 1),
            ("forward_and_log_det", 2),
            ("inverse_and_log_det", 2),
        ):
            flat = [np.asarray(a, dtype=np.float64).reshape(-1) for a in fused.arrays]
            print(f"  {float32_choice(fused.module, kernel, n_out, flat, fused.domain)}")
    peers = [k for k in rows[0] if k not in ("n", "threads", "op", "dtype", "symflow")]
    print(
        f"Chain([Exp(), SinhArcsinh({SKEW}, {TAIL}), AffineScalar({SHIFT}, {SCALE})]), "
        f"ns per element (median of {args.repeat}); 'x' columns: peer time / symflow time"
    )
    head = f"{'dtype':<8}{'n':>10} {'thr':>3} {'operation':<18}{'symflow':>9}"
    head += "".join(f"{p:>15}" for p in peers) + "".join(f"{'x ' + p:>17}" for p in peers)
    print(head)
    for r in rows:
        line = f"{r['dtype']:<8}{r['n']:>10,} {r['threads']:>3} {r['op']:<18}{r['symflow']:9.2f}"
        line += "".join(f"{r[p]:15.2f}" for p in peers)
        line += "".join(f"{r[p] / r['symflow']:17.2f}" for p in peers)
        print(line)


if __name__ == "__main__":
    main()
