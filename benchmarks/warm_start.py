"""Where a warm start of the tiny-flow example spends its time, phase by phase.

Runs the example's work in fresh Python processes (kernels already cached: run
`examples/train_tiny_flow.py` once first) and times each phase in the order the example
meets it:

- importing numpy, SymPy, Numba and symflow (with the walkthrough's declarations);
- Numba's first-use set-up: the first compiled function a process calls, cached or not,
  makes Numba load its lowering registries (timed here on a one-line cached function);
- building the flow (`walkthrough.tiny_flow()`), then `sf.fit` for 100 epochs with the
  held-out NLL, as `walkthrough.train_tiny_flow` does (SymPy's first arithmetic in the
  process falls in these);
- the picture: importing matplotlib and drawing and saving the PNG (skipped without it);
- starting the interpreter, and its exit (CPython tearing down SymPy's and Numba's modules).

Prints the median of `--runs` processes per phase and the whole process's wall time. Run:

    python benchmarks/warm_start.py [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numba

_CHILD = r"""
import json, sys, time
marks = [("start", time.time())]
import numpy as np
marks.append(("import numpy", time.time()))
import sympy
marks.append(("import SymPy", time.time()))
import numba
marks.append(("import Numba", time.time()))
from symflow import walkthrough as w
marks.append(("import symflow + declarations", time.time()))
sys.path.insert(0, sys.argv[1])
import warm_start
warm_start.first_use(1.0)
marks.append(("Numba first use", time.time()))
w.tiny_flow()
marks.append(("build the flow", time.time()))
s = w.train_tiny_flow(100, seed=0, progress=False)
marks.append(("fit, 100 epochs + held-out NLL", time.time()))
try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    marks.append(("import matplotlib", time.time()))
    fig, (a0, a1) = plt.subplots(1, 2, figsize=(11, 4.8))
    samples = s["result"].distribution.sample(1000, seed=1)
    a0.scatter(*s["data"].T, s=6)
    a0.scatter(*samples.T, s=6)
    a1.plot(s["result"].history)
    fig.tight_layout()
    fig.savefig(sys.argv[2], dpi=120)
    marks.append(("draw and save the PNG", time.time()))
except ImportError:
    pass
print(json.dumps(marks))
"""


@numba.njit(cache=True)
def first_use(x: float) -> float:
    """A one-line cached Numba function: the child's first compiled call."""
    return x


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    here = str(Path(__file__).resolve().parent)
    phases: dict[str, list[float]] = {}
    walls = []
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.runs + 1):  # the first run fills the caches and is not counted
            t0 = time.time()
            done = subprocess.run(
                [sys.executable, "-c", _CHILD, here, f"{tmp}/picture.png"],
                capture_output=True,
                text=True,
                check=False,
            )
            t1 = time.time()
            if done.returncode != 0:
                sys.exit(f"the child process failed:\n{done.stderr}")
            if run == 0:
                continue
            walls.append(t1 - t0)
            marks = json.loads(done.stdout.strip().splitlines()[-1])
            phases.setdefault("interpreter start", []).append(marks[0][1] - t0)
            for (_, before), (name, after) in zip(marks, marks[1:], strict=False):
                phases.setdefault(name, []).append(after - before)
            phases.setdefault("interpreter exit", []).append(t1 - marks[-1][1])
    print(f"warm start of the tiny-flow example, median of {args.runs} fresh processes (s)")
    to_trained = 0.0
    for name, values in phases.items():
        value = statistics.median(values)
        print(f"  {name:<34} {value:6.2f}")
        if name in ("import matplotlib", "draw and save the PNG", "interpreter exit"):
            continue
        to_trained += value
    print(f"  {'start to the trained flow':<34} {to_trained:6.2f}")
    print(f"  {'whole process (wall, from outside)':<34} {statistics.median(walls):6.2f}")


if __name__ == "__main__":
    main()
