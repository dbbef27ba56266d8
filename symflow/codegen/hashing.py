"""Content hash of a declaration: what a cached module is keyed by.

The hash covers the canonical declaration, symflow's version, the code-generation options
and a fingerprint of the compiler's own source (derivation, checks, stabilization, code
generation), so a compiler change never reuses a stale kernel.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

from symflow.codegen.emit import PARALLEL_THRESHOLD, PARALLEL_THRESHOLD_MATH
from symflow.symbolic.spec import BijectorSpec

__all__ = ["CODEGEN_OPTIONS", "FORMAT_VERSION", "compiler_fingerprint", "spec_hash"]

#: Bumped whenever emitted text or the meta file changes shape.
FORMAT_VERSION = 1
CODEGEN_OPTIONS = (
    ("error_model", "numpy"),
    ("format", FORMAT_VERSION),
    ("parallel_threshold", PARALLEL_THRESHOLD, PARALLEL_THRESHOLD_MATH),
)

_PACKAGE = Path(__file__).resolve().parent.parent
#: The files whose text decides what a declaration compiles to (`runtime/tuning.py`: how
#: LLVM compiles it; Numba's own cache would otherwise keep code compiled the old way).
_COMPILER_SOURCES = (
    "symbolic/*.py",
    "checks.py",
    "stabilize.py",
    "codegen/*.py",
    "runtime/declared.py",
    "runtime/fused.py",
    "runtime/tuning.py",
)


@functools.cache
def compiler_fingerprint() -> str:
    """sha256 over the compiler's source files, in sorted path order."""
    digest = hashlib.sha256()
    for pattern in _COMPILER_SOURCES:
        for path in sorted(_PACKAGE.glob(pattern)):
            digest.update(path.relative_to(_PACKAGE).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def spec_hash(spec: BijectorSpec, version: str) -> str:
    """sha256 hex digest of (canonical spec, version, options, compiler fingerprint)."""
    text = (
        f"{spec.canonical()}version={version}\noptions={CODEGEN_OPTIONS!r}\n"
        f"compiler={compiler_fingerprint()}\n"
    )
    return hashlib.sha256(text.encode()).hexdigest()
