"""`symflow-catalog` and `symflow-stabilize-rules`: tables built from the package's own data.

The catalog table has one row per entry of `symflow.bijectors.CATALOG`: the forward map,
domain and parameters from the declaration, the inverse and log-det as symflow derived
them, and each kernel's worst float64 error against mpmath measured during the build
(`DeclaredBijector.accuracy_report`, the measurement behind `symflow check` and
`benchmarks/accuracy_table.py`, at the parameter values of `tests/catalog.py`). The
measurements are cached in the build folder by each declaration's hash, which covers the
declaration, symflow's version and the code generator's source, so they are redone
exactly when a kernel can have changed.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

from symflow.bijectors import CATALOG
from symflow.runtime.accuracy import KERNELS, TOLERANCE
from symflow_docs.api import catalog_parameters, interval_latex, latex

LOG = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[3]
_SHORT = {
    "forward": "forward",
    "inverse": "inverse",
    "forward_log_det_jacobian": "fldj",
    "inverse_log_det_jacobian": "ildj",
}


def measured_parameters() -> dict[str, dict]:
    """Catalog name -> parameter values, from tests/catalog.py (as accuracy_table.py)."""
    path = REPO / "tests" / "catalog.py"
    if not path.exists():
        return {}
    spec = importlib.util.spec_from_file_location("_docs_catalog_cases", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    out: dict[str, dict] = {}
    for case in module.CASES.values():
        out.setdefault(case.declared.name, dict(case.params))
    return out


def measure(app: Sphinx, name: str, declared, params: dict) -> dict:
    """{kernel: [max error, non-finite count, passed]}, cached by the declaration's hash."""
    cache_path = Path(app.doctreedir) / "symflow-catalog-accuracy.json"
    cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}
    key = f"{declared.hash}|{json.dumps(params, sort_keys=True)}"
    if key not in cache:
        t0 = time.perf_counter()
        report = declared.accuracy_report(params)
        cache[key] = {
            k: [report.row(k).max_error, report.row(k).non_finite, report.row(k).passed]
            for k in KERNELS
        }
        LOG.info("catalog: measured %s in %.1f s", name, time.perf_counter() - t0)
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        cache_path.write_text(json.dumps(cache, indent=1, sort_keys=True))
    return cache[key]


def _cell(text: str) -> str:
    return text.replace("\n", " ")


def _prose(text: str) -> str:
    """Plain text as reST: `**` in `2**-53` is a power, not emphasis."""
    for char in "\\*`|":
        text = text.replace(char, "\\" + char)
    return _cell(text)


def catalog_table(app: Sphinx) -> str:
    params_of = measured_parameters()
    rows = []
    for name, declared in CATALOG.items():
        params = params_of.get(name, {})
        errors = measure(app, name, declared, params)
        worst = max(KERNELS, key=lambda k: errors[k][0])
        non_finite = sum(errors[k][1] for k in KERNELS)
        passed = all(errors[k][2] for k in KERNELS)
        at = ", ".join(f"{k}={v:g}" for k, v in params.items()) or "no parameters"
        err = f"{errors[worst][0]:.1e} ({_SHORT[worst]}), {at}"
        if non_finite:
            err += f"; {non_finite} non-finite"
        if not passed:
            err += "; **misses its bound**"
            LOG.warning("catalog: %s misses its accuracy bound: %s", name, errors)
        rows.append(
            [
                f":py:data:`~symflow.bijectors.{name}`",
                f":math:`{latex(declared.forward_expr)}`",
                f":math:`{interval_latex(declared.spec.domain)}`",
                catalog_parameters(declared),
                f":math:`{latex(declared.inverse_expr)}`",
                f":math:`{latex(declared.forward_log_det_jacobian_expr)}`",
                err,
            ]
        )
    head = [
        "bijector",
        "forward map :math:`y = f(x)`",
        "domain of :math:`x`",
        "parameters",
        "derived inverse :math:`x = f^{-1}(y)`",
        r"derived :math:`\log|f'(x)|`",
        "worst relative error (kernel), measured at",
    ]
    out = [
        ".. list-table::",
        "   :header-rows: 1",
        "   :class: symflow-catalog",
        "",
    ]
    for row in [head, *rows]:
        out.append("   * - " + _cell(row[0]))
        out += ["     - " + _cell(c) for c in row[1:]]
    out += [
        "",
        f"Error: the largest relative error of the four float64 kernels (forward, inverse, "
        f"fldj, ildj) against mpmath at 50 digits over a grid reaching :math:`|x| = 700` and "
        f":math:`10^{{-300}}` from finite ends, over well-conditioned points; every kernel's "
        f"bound is {TOLERANCE:g} times the point's condition number over 1000 (at least 1).",
    ]
    return "\n".join(out)


class CatalogDirective(SphinxDirective):
    """`.. symflow-catalog::` writes the catalog table here."""

    def run(self) -> list[nodes.Node]:
        self.env.note_dependency(str(REPO / "symflow" / "bijectors" / "catalog.py"))
        return self.parse_text_to_nodes(catalog_table(self.env.app))


def rules_table() -> str:
    from symflow.stabilize import RULES, parse_example, stabilize

    out = [
        ".. list-table::",
        "   :header-rows: 1",
        "   :class: symflow-rules",
        "",
        "   * - rule (priority)",
        "     - an input it rewrites",
        "     - after the whole rule table",
        "     - the float64 failure it removes",
    ]
    for rule in sorted(RULES, key=lambda r: r.priority):
        example = parse_example(rule.examples[0])
        out += [
            f"   * - ``{rule.name}`` ({rule.priority})",
            f"     - :math:`{latex(example)}`",
            f"     - :math:`{latex(stabilize(example))}`",
            f"     - {_prose(rule.fixes)}",
        ]
    return "\n".join(out)


class RulesDirective(SphinxDirective):
    """`.. symflow-stabilize-rules::` writes the rewrite-rule table here."""

    def run(self) -> list[nodes.Node]:
        return self.parse_text_to_nodes(rules_table())


class GeneratedDirective(SphinxDirective):
    """`.. symflow-generated:: SinhArcsinh` shows part of that entry's generated module.

    Options: `:head: N` (the first N lines), `:function: NAME` (one function, with its
    decorator). The module is the one this build compiled or loaded from the cache.
    """

    required_arguments = 1
    option_spec = {"head": directives.nonnegative_int, "function": directives.unchanged}

    def run(self) -> list[nodes.Node]:
        declared = CATALOG[self.arguments[0]]
        lines = Path(declared.source_path).read_text().splitlines()
        if "function" in self.options:
            name = self.options["function"]
            start = next(
                (i for i, line in enumerate(lines) if line.startswith(f"def {name}(")), None
            )
            if start is None:
                raise self.error(f"symflow-generated: no function {name} in {declared.name}")
            while start > 0 and lines[start - 1].startswith("@"):
                start -= 1
            end = start + 1
            while end < len(lines) and not (
                lines[end][:1] not in ("", " ", "#") or lines[end].startswith("# ----")
            ):
                end += 1
            lines = lines[start:end]
        else:
            lines = lines[: self.options.get("head", 30)]
        text = "\n".join(lines).rstrip() + "\n"
        block = nodes.literal_block(text, text, language="python")
        return [block]


def setup(app: Sphinx) -> None:
    app.add_directive("symflow-catalog", CatalogDirective)
    app.add_directive("symflow-generated", GeneratedDirective)
    app.add_directive("symflow-stabilize-rules", RulesDirective)
