"""Content hash of a declaration: what a cached module is keyed by.

The hash covers the canonical declaration, symflow's version and the code-generation
options, so a compiler change never reuses a stale kernel.
"""

from __future__ import annotations

import hashlib

from symflow.codegen.emit import PARALLEL_THRESHOLD
from symflow.symbolic.spec import BijectorSpec

__all__ = ["CODEGEN_OPTIONS", "FORMAT_VERSION", "spec_hash"]

#: Bumped whenever emitted text or the meta file changes shape.
FORMAT_VERSION = 1
CODEGEN_OPTIONS = (
    ("error_model", "numpy"),
    ("format", FORMAT_VERSION),
    ("parallel_threshold", PARALLEL_THRESHOLD),
)


def spec_hash(spec: BijectorSpec, version: str) -> str:
    """sha256 hex digest of (canonical spec, version, options)."""
    text = f"{spec.canonical()}version={version}\noptions={CODEGEN_OPTIONS!r}\n"
    return hashlib.sha256(text.encode()).hexdigest()
