"""LLVM's loop interleaving for symflow's generated kernels, set only while they compile.

An elementwise kernel of a chain is one long dependency chain per element: the square
root, divisions and polynomials of asinh, then sinh, then exp, several hundred cycles of
latency. LLVM's loop vectorizer turns the loop into 4-lane (float64) or 8-lane (float32)
code but, seeing the register pressure, does not interleave it, so each vector iteration
waits on its own latency and the out-of-order core (a window of about 250 instructions)
cannot reach the next one. With LLVM's `-force-vector-interleave=4` the loop body carries
four independent vectors in program order and the core overlaps them. Measured on the
issue-6 chain `Exp(SinhArcsinh(AffineScalar))`, one core, 4096 points in cache, ns per
element (`python benchmarks/elementwise_benchmark.py` has the end-to-end numbers):

    interleave       1      2      4      8
    forward         27.1   18.2   12.6   18.4

8 spills more registers than it hides latency. It is applied to fused chain modules
(`symflow.runtime.fused`, also the fused `log_prob` kernels), whose parameter-only terms
are hoisted out of the loop; there it costs about 10% more compile time. Single-bijector
modules and the training module compile with LLVM's default, measured: interleaving made
SinhArcsinh's single-module fldj kernel compile in 35 s instead of 6.7 s (its loop still
evaluates TFP's parameter-only log sinh term per element), and the tiny flow's training
step (2-D events, whose loop does not vectorize) took 5.7 µs instead of 4.8.

The option is a process-wide LLVM setting; `interleaved()` sets it only around the
compilation of a tuned module's function and puts LLVM's default (0: let the cost model
choose) back afterwards, so the user's own Numba code is compiled as before. Loading a
kernel from Numba's on-disk cache compiles nothing, and the option has no effect on the
results a kernel computes, only on its instruction order. The option is set under Numba's
compiler lock, so a compilation in another thread never sees it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType

from numba.core.compiler_lock import global_compiler_lock
from numba.core.registry import CPUDispatcher

__all__ = ["INTERLEAVE", "interleaved", "tune_module"]

INTERLEAVE = 4
_depth = 0


def _set(count: int) -> None:
    import llvmlite.binding as llvm  # numba's own dependency

    llvm.set_option("symflow", f"-force-vector-interleave={count}")


@contextmanager
def interleaved(count: int = INTERLEAVE) -> Iterator[None]:
    """LLVM interleaves vectorized loops `count` times while the block runs (re-entrant).

    The block holds Numba's compiler lock, which every compilation takes: no other
    thread's code is compiled while the option is set.
    """
    global _depth
    with global_compiler_lock:
        if _depth == 0:
            _set(count)
        _depth += 1
        try:
            yield
        finally:
            _depth -= 1
            if _depth == 0:
                _set(0)


def _compiling(dispatcher: CPUDispatcher) -> Callable:
    compile_for_args = dispatcher._compile_for_args

    @functools.wraps(compile_for_args)
    def compile_interleaved(*args, **kwargs):
        with interleaved():
            return compile_for_args(*args, **kwargs)

    return compile_interleaved


def tune_module(module: ModuleType | dict) -> None:
    """Makes every Numba function of a generated module compile under `interleaved()`.

    `module` is the module or its namespace (a dict). Numba compiles a function on the
    first call with new argument types, through the dispatcher's `_compile_for_args`; that
    is where the option is set. Functions a kernel calls are compiled (and inlined) within
    the kernel's own compilation.
    """
    namespace = module if isinstance(module, dict) else vars(module)
    for value in namespace.values():
        if isinstance(value, CPUDispatcher) and "_compile_for_args" not in vars(value):
            value._compile_for_args = _compiling(value)
