"""Sphinx extension for symflow's documentation: pages generated from the package itself.

- `symflow-api MODULE`: the API reference of every name in `MODULE.__all__`; a check at
  the end of the build warns (an error under `-W`) when a public name has no entry.
- `symflow-catalog`: the catalog table, from `symflow.bijectors.CATALOG`, with each
  entry's derived maths and its accuracy measured against mpmath during the build.
- `symflow-stabilize-rules`: the stabilization rules, from `symflow.stabilize.RULES`.
- `symflow-example FILE`: runs `examples/FILE` during the build and shows its printed
  output and the PNGs it draws.
"""

from __future__ import annotations

from sphinx.application import Sphinx

from symflow_docs import api, catalog, examples


def setup(app: Sphinx) -> dict:
    api.setup(app)
    catalog.setup(app)
    examples.setup(app)
    return {"parallel_read_safe": False, "parallel_write_safe": True}
