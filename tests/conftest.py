"""Shared test set-up: one kernel cache for the whole run, so each kernel compiles once.

The cache lives in `.pytest_cache/symflow-kernels` (git-ignored): a second local run is
warm; CI starts cold, which is the case the time budget is set for.
"""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".pytest_cache" / "symflow-kernels"


def pytest_configure(config):
    os.environ.setdefault("SYMFLOW_CACHE_DIR", str(CACHE))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT
