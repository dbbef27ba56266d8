"""Where do the `*_parallel` kernels start to pay? Serial against parallel, by batch size.

Times the serial and the `numba.prange` variant of two generated kernels at sizes from 2^10
to 2^22 with all cores: a cheap one (AffineScalar's forward: one multiply-add per element)
and the issue-6 chain's fused `inverse_and_log_det` (log, asinh, sinh, log-cosh, hypot per
element). Prints ns per element and the ratio serial / parallel per size, and the smallest
size from which the parallel kernel is faster for both at every larger size tried. That
size, rounded to a power of two, is `symflow.codegen.emit.PARALLEL_THRESHOLD`.

Run:

    python benchmarks/parallel_threshold.py [--repeat 15]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from elementwise_benchmark import symflow_chain  # noqa: E402


def _best_ns(fn, args, n: int, repeat: int) -> float:
    fn(*args)
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - t)
    return float(np.min(times)) / n * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    import numba

    from symflow import bijectors as sfb

    chain = symflow_chain()
    fused = chain.fused_kernels()
    affine = sfb.AffineScalar(0.5, 2.0)
    cases = {
        "AffineScalar forward": (
            affine.module,
            "forward",
            [np.atleast_1d(a) for a in affine._param_list],
            1,
        ),
        "chain inverse_and_log_det": (
            fused.module,
            "inverse_and_log_det",
            [np.atleast_1d(a) for a in fused.arrays],
            2,
        ),
    }
    print(f"{numba.get_num_threads()} threads; best of {args.repeat}; ns per element")
    print(f"{'n':>9}" + "".join(f"{name:>30}{'ser/par':>9}" for name in cases))
    first_win = {name: None for name in cases}
    for power in range(10, 23):
        n = 2**power
        x = np.random.default_rng(0).standard_normal(n)
        line = f"{n:>9}"
        for name, (module, kernel, params, n_out) in cases.items():
            out = np.empty((n_out, n))
            ser = _best_ns(getattr(module, kernel), (x, *params, out), n, args.repeat)
            par = _best_ns(
                getattr(module, kernel + "_parallel"), (x, *params, out), n, args.repeat
            )
            line += f"{f'{ser:.2f} / {par:.2f}':>30}{ser / par:9.2f}"
            if ser / par > 1.0:
                first_win[name] = first_win[name] or n
            else:
                first_win[name] = None
        print(line)
    for name, n in first_win.items():
        print(f"{name}: parallel faster from n = {n} on" if n else f"{name}: never faster")


if __name__ == "__main__":
    main()
