"""Cold and warm time to compile the whole catalog, each in a fresh process.

Cold: an empty kernel cache, so every bijector is derived, checked, stabilized, emitted
and its float64 forward / inverse / log-det kernels compiled by Numba. Warm: a new
process with that cache, so everything loads from disk. Run:

    python benchmarks/compile_catalog.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

CHILD = r"""
import json, time
t0 = time.perf_counter()
import numpy as np
from symflow import bijectors as sfb
t_import = time.perf_counter() - t0
rows = {}
for name, decl in sfb.CATALOG.items():
    t = time.perf_counter()
    decl.compile()
    t_pipeline = time.perf_counter() - t
    params = {p.name: p.default if p.default is not None else 1.0 for p in decl.spec.parameters}
    b = decl(**params)
    lo, hi = decl.spec.domain.lo_float, decl.spec.domain.hi_float
    x = np.array([0.5 if lo == 0 else (lo + 1.0 if hi == float('inf') else 0.25)])
    t = time.perf_counter()
    y = b.forward(x); b.inverse(y)
    b.forward_log_det_jacobian(x, 0); b.inverse_log_det_jacobian(y, 0)
    rows[name] = (t_pipeline, time.perf_counter() - t)
print(json.dumps({"import": t_import, "rows": rows, "total": time.perf_counter() - t0}))
"""


def run(cache: str) -> dict:
    env = dict(os.environ, SYMFLOW_CACHE_DIR=cache)
    out = subprocess.run(
        [sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    with tempfile.TemporaryDirectory() as cache:
        t = time.perf_counter()
        cold = run(cache)
        cold_wall = time.perf_counter() - t
        t = time.perf_counter()
        warm = run(cache)
        warm_wall = time.perf_counter() - t
    head = ("bijector", "cold pipeline", "cold numba", "warm load", "warm call")
    print(f"{head[0]:<16} {head[1]:>14} {head[2]:>11} {head[3]:>10} {head[4]:>10}")
    for name, (pipe, call) in cold["rows"].items():
        wpipe, wcall = warm["rows"][name]
        print(f"{name:<16} {pipe:14.2f} {call:11.2f} {wpipe:10.3f} {wcall:10.3f}")
    print("\nwhole catalog, new process, wall clock (import + 17 bijectors x 4 kernels):")
    print(f"  cold (empty cache): {cold_wall:7.1f} s")
    print(f"  warm (cached):      {warm_wall:7.1f} s   (import symflow: {warm['import']:.2f} s)")
    print(f"  ratio cold/warm:    {cold_wall / warm_wall:7.1f}x")


if __name__ == "__main__":
    main()
