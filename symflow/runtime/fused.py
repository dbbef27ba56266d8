"""Fused chains: one generated module running every elementwise member in one pass.

`fused_kernels(members, base)` takes bound elementwise bijectors, each with a flag saying
whether it runs inverted, in the order a chain's forward applies them. It keys the fused
module by the members' own hashes (which already cover their maths and the compiler), so
a cached module loads without touching SymPy; only a miss reads the members' stabilized
expressions and emits a new module. `FusedKernels.run` calls one kernel per batch.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from types import ModuleType

import numpy as np
import sympy as sp

from symflow._version import __version__
from symflow.codegen.fuse import BaseDensity, ChainPlan, Stage, emit_chain_module
from symflow.codegen.hashing import CODEGEN_OPTIONS, compiler_fingerprint
from symflow.runtime.bijector import ElementwiseBijector, broadcast_flat
from symflow.runtime.float32 import float32_choice
from symflow.runtime.loader import read_entry, write_entry
from symflow.runtime.tuning import tune_module

__all__ = ["FusedKernels", "fused_kernels"]


def _stage(member: ElementwiseBijector, inverted: bool) -> Stage:
    declared = member.declared
    spec = declared.spec
    exprs = declared.kernel_exprs
    domain = (spec.domain.lo, spec.domain.hi)
    codomain = declared.codomain
    x, y = spec.x, declared.output_symbol
    if not inverted:
        return Stage(
            member.name, x, y, spec.parameter_symbols, exprs["forward"], exprs["inverse"],
            exprs["fldj"], exprs["ildj"], domain, codomain,
        )  # fmt: skip
    return Stage(
        f"Invert({member.name})", y, x, spec.parameter_symbols, exprs["inverse"],
        exprs["forward"], exprs["ildj"], exprs["fldj"], codomain, domain,
    )  # fmt: skip


def _key(members, base: BaseDensity | None) -> str:
    lines = [f"version={__version__}", f"options={CODEGEN_OPTIONS!r}"]
    lines.append(f"compiler={compiler_fingerprint()}")
    lines += [f"member={m.declared.hash}:{int(inv)}" for m, inv in members]
    if base is not None:
        lines.append(
            f"base={base.label}:{sp.srepr(base.log_prob)}:{sp.srepr(base.support)}:"
            f"{[p.name for p in base.parameters]}"
        )
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


@dataclass
class FusedKernels:
    """A loaded fused module and the parameter arrays its kernels take, in order."""

    module: ModuleType
    arrays: list[np.ndarray]
    name: str
    names: list[str]
    #: (lo, hi) of the chain's input x, where float32 choices are measured
    domain: tuple[float, float] = (-math.inf, math.inf)

    def run(self, kernel: str, arr: np.ndarray, n_out: int):
        """Runs `kernel` over `arr` (any shape) in one call.

        Returns:
            (outputs shaped like the broadcast input, number of inputs outside some
            member's interval).
        """
        shape, flat, params = broadcast_flat(f"{self.name}.{kernel}", arr, self.arrays, self.names)
        out = np.empty((n_out, flat.shape[0]), dtype=flat.dtype)
        parallel = flat.shape[0] >= self.module.PARALLEL_THRESHOLD
        if flat.dtype == np.float32 and kernel in self.module.FLOAT32_KERNELS:
            if float32_choice(self.module, kernel, n_out, params, self.domain).float32:
                kernel += "_f32"
        fn = getattr(self.module, kernel + ("_parallel" if parallel else ""))
        bad = fn(flat, *params, out)
        return [o.reshape(shape) for o in out], int(bad)


def fused_kernels(
    members: list[tuple[ElementwiseBijector, bool]],
    name: str,
    base: BaseDensity | None = None,
    base_arrays: tuple[np.ndarray, ...] = (),
) -> FusedKernels:
    """The fused module for `members` (application order), built or loaded from cache.

    Args:
        members: (bound elementwise bijector, runs inverted) pairs, first applied first.
        name: the chain's display name (used in error messages).
        base: a scalar base density to fuse into a `log_prob` kernel, if any.
        base_arrays: the base's parameter values, in `base.parameters` order.
    """
    key = _key(members, base)
    module_name = f"Chain_{key[:16]}"
    entry = read_entry(module_name, key)
    if entry is None:
        plan = ChainPlan(
            name="Chain",
            stages=tuple(_stage(m, inv) for m, inv in members),
            base=base,
            hash=key,
            version=__version__,
        )
        meta = {
            "name": name,
            "members": [[m.declared.name, m.declared.hash, bool(inv)] for m, inv in members],
            "symflow_version": __version__,
        }
        entry = write_entry(emit_chain_module(plan), meta)
    tune_module(entry.module)
    arrays = [p for m, _ in members for p in m._param_list]
    names = [f"{m.name}.{p}" for m, _ in members for p in m.module.PARAMETERS]
    names += [f"{base.label}.{p.name}" for p in base.parameters] if base is not None else []
    first, inverted = members[0]
    return FusedKernels(
        entry.module, arrays + list(base_arrays), name, names, _input_interval(first, inverted)
    )


def _input_interval(member: ElementwiseBijector, inverted: bool) -> tuple[float, float]:
    """(lo, hi) of the values the first member takes: its domain, or its codomain if inverted."""
    if not inverted:
        return member._describe["domain"]
    if hasattr(member.module, "codomain_scalar"):  # emitted where an end is finite
        lo, hi = member.module.codomain_scalar(
            *(float(p.reshape(-1)[0]) for p in member._param_list)
        )
        return float(lo), float(hi)
    return (-math.inf, math.inf)
