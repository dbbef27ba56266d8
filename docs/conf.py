"""Sphinx configuration of symflow's documentation.

The build commands (what `.ci/run` runs, warnings as errors) are in `docs/about.md`.
"""

from __future__ import annotations

import doctest
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))

import symflow  # noqa: E402

project = "symflow"
author = "the symflow authors"
copyright = "the symflow authors"  # noqa: A001 (Sphinx's name)
release = symflow.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.doctest",
    "sphinx.ext.mathjax",
    # MathJax copied into the build (_static/mathjax): the pages render their maths with
    # no network, from a file:// folder or an offline machine, not only from a CDN
    "sphinx-mathjax-offline",
    "sphinx.ext.viewcode",
    "myst_parser",
    "symflow_docs",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "_examples_out", "_ext"]
# `text` in a docstring is code, linked when it names a documented object.
default_role = "py:obj"

myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_preserve_defaults = True
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False

# Exception messages are part of the contract: checked in full (no IGNORE_EXCEPTION_DETAIL).
doctest_default_flags = doctest.ELLIPSIS | doctest.DONT_ACCEPT_TRUE_FOR_1

doctest_global_setup = """
import numpy as np
import sympy as sp
import symflow as sf
from symflow import bijectors as sfb, distributions as sfd, flows
# Docstring examples are written in their module's namespace (as `pytest --doctest-modules`
# runs them): the public names are in scope.
from symflow import *
from symflow.bijectors import *
from symflow.distributions import *
from symflow.flows import *
np.set_printoptions(precision=6, suppress=True)
"""

html_theme = "furo"
html_title = f"symflow {release}"
html_static_path = ["_static"]
html_css_files = ["symflow.css"]

# The examples run during the build (symflow_docs.examples): arguments for each, beyond
# `--png`/`--save`, which point into the build's output folder.
symflow_examples_dir = str(DOCS.parent / "examples")
symflow_example_timeout = 900
