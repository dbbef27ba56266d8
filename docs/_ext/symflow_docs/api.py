"""`symflow-api MODULE`: reference entries for every name in `MODULE.__all__`.

Classes, functions and exceptions go through autodoc (Google-style docstrings through
napoleon). Declared catalog bijectors are instances, not classes: their entry is written
here from the declaration (forward map, domain, parameters, derived inverse and log-det)
with a doctest that binds and round-trips them. Names are grouped by `GROUPS`; a name in
no group lands under "Other", so nothing public is left out.
"""

from __future__ import annotations

import importlib
import inspect
import textwrap
import types

import sympy as sp
from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

from symflow.runtime.declared import DeclaredBijector
from symflow.symbolic.spec import Constraint

LOG = logging.getLogger(__name__)

#: The modules whose `__all__` the API pages cover, each on its own page.
MODULES = ("symflow", "symflow.bijectors", "symflow.distributions", "symflow.flows")

#: module -> (section title, names) in page order.
GROUPS = {
    "symflow": (
        ("Declaring a bijector", ("bijector", "DeclaredBijector", "CheckReport")),
        ("Constraints and domains", ("Real", "Positive", "UnitInterval", "NonZero", "Interval")),
        ("Bound bijectors", ("Bijector",)),
        ("Training", ("fit", "FitResult", "Adam", "SGD", "load_parameters")),
        (
            "Errors",
            (
                "SymflowError",
                "DeclarationError",
                "NotInvertibleError",
                "NoClosedFormInverseError",
                "CheckFailedError",
                "ConstraintError",
                "DomainError",
                "ShapeError",
                "CacheError",
            ),
        ),
    ),
    "symflow.bijectors": (
        ("Composition", ("Chain", "Invert", "Log")),
        ("Structured bijectors (vector events)", ("Affine", "ScaleMatvecTriL")),
        ("Reshaping", ("FillTriangular", "Permute")),
        (
            "Flow layers",
            ("MaskedAutoregressiveFlow", "RealNVP", "AutoregressiveNetwork", "DenseNetwork"),
        ),
    ),
}

#: Points at which a catalog entry's generated doctest evaluates it, by domain name.
_DOCTEST_POINTS = {
    "Real": "[-1.5, 0.0, 2.0]",
    "Positive": "[0.5, 1.0, 2.0]",
    "UnitInterval": "[0.25, 0.5, 0.75]",
}


def latex(expr: sp.Expr) -> str:
    """SymPy's LaTeX, with multi-letter parameter names upright and products spaced."""
    names = {
        sym: r"\mathrm{" + sym.name.replace("_", r"\_") + "}"
        for sym in expr.free_symbols
        if len(sym.name) > 1
    }
    return sp.latex(expr, symbol_names=names, mul_symbol=r" \, ")


def constraint_text(c: Constraint) -> str:
    """'Positive: (0, inf)' as reST with inline maths."""
    return f"``{c.name}``: :math:`{interval_latex(c)}`"


def interval_latex(c: Constraint) -> str:
    lo, hi = sp.sympify(c.lo), sp.sympify(c.hi)
    if lo == -sp.oo and hi == sp.oo:
        text = r"\mathbb{R}"
    else:
        text = rf"({sp.latex(lo)}, {sp.latex(hi)})"
    if c.excludes_zero:
        text += r" \setminus \{0\}"
    return text


def catalog_parameters(declared: DeclaredBijector) -> str:
    """'``tailweight`` in (0, inf), default ``1.0``; ...' as reST."""
    parts = []
    for p in declared.spec.parameters:
        default = "" if p.default is None else f", default ``{p.default!r}``"
        parts.append(
            f"``{p.name}`` :math:`\\in {interval_latex(p.constraint)}` "
            f"({p.constraint.name}){default}"
        )
    return "; ".join(parts) or "none"


def _doctest_params(declared: DeclaredBijector) -> str:
    values = []
    for p in declared.spec.parameters:
        if p.default is None:
            values.append(f"{p.name}={float(p.constraint.representatives()[-1])!r}")
    return ", ".join(values)


def declared_entry(modname: str, name: str, declared: DeclaredBijector) -> str:
    """reST for a declared (catalog) bijector: maths, parameters and a doctest."""
    spec = declared.spec
    # A docstring's |x| is an absolute value, not a reST substitution.
    doc = inspect.cleandoc(declared.__doc__ or "").replace("|", "\\|")
    points = _DOCTEST_POINTS.get(spec.domain.name, "[0.5, 1.0, 2.0]")
    call = f"sfb.{name}({_doctest_params(declared)})"
    lines = [
        f".. py:data:: {name}",
        "   :type: DeclaredBijector",
        "",
        textwrap.indent(doc, "   "),
        "",
        "   .. math::",
        "",
        f"      y = {latex(declared.forward_expr)}",
        "",
        f"   :Domain: :math:`x \\in {interval_latex(spec.domain)}` ({spec.domain.name})",
        f"   :Parameters: {catalog_parameters(declared)}",
        f"   :Derived inverse: :math:`x = {latex(declared.inverse_expr)}`",
        r"   :Derived log-det: :math:`\log\left|f'(x)\right| = "
        f"{latex(declared.forward_log_det_jacobian_expr)}`",
        "",
        "   Calling it binds parameter values; see :doc:`/catalog` for its measured error.",
        "",
        f"   >>> b = {call}",
        f"   >>> x = np.array({points})",
        "   >>> bool(np.allclose(b.inverse(b.forward(x)), x))",
        "   True",
        "   >>> ldj = b.forward_log_det_jacobian(x, event_ndims=0)",
        "   >>> bool(np.allclose(ldj, -b.inverse_log_det_jacobian(b.forward(x), event_ndims=0)))",
        "   True",
        "",
    ]
    return "\n".join(lines)


def entry(modname: str, name: str) -> str:
    """reST documenting `modname.name`, whatever kind of object it is."""
    obj = getattr(importlib.import_module(modname), name)
    if isinstance(obj, types.ModuleType):
        return f"``{name}``: the submodule :mod:`{obj.__name__}`.\n"
    if isinstance(obj, DeclaredBijector):
        return declared_entry(modname, name, obj)
    if isinstance(obj, Constraint):
        return (
            f".. py:data:: {name}\n\n"
            f"   The constraint {constraint_text(obj)}: annotate a parameter with it, or pass "
            "it as a declaration's ``domain=``.\n"
        )
    if isinstance(obj, type) and issubclass(obj, BaseException):
        return f".. autoexception:: {name}\n   :show-inheritance:\n"
    if isinstance(obj, type):
        return f".. autoclass:: {name}\n   :members:\n   :show-inheritance:\n"
    if callable(obj):
        return f".. autofunction:: {name}\n"
    if name == "__version__":
        return f".. py:data:: {name}\n   :type: str\n\n   The installed version, ``{obj}``.\n"
    if name == "CATALOG":
        return (
            f".. py:data:: {name}\n   :type: dict[str, DeclaredBijector]\n\n"
            "   Every declared catalog entry by name; :doc:`/catalog` tabulates them.\n"
        )
    return f".. autodata:: {name}\n"


def module_page(modname: str) -> str:
    module = importlib.import_module(modname)
    public = list(module.__all__)
    groups = list(GROUPS.get(modname, ()))
    grouped = {n for _, names in groups for n in names}
    declared = [n for n in public if isinstance(getattr(module, n), DeclaredBijector)]
    if declared:
        groups.insert(0, ("Elementwise catalog (declared with the DSL)", tuple(declared)))
        grouped |= set(declared)
    rest = [n for n in public if n not in grouped]
    if rest:
        groups.append(("Other", tuple(rest)))
    unknown = grouped - set(public) - set(declared)
    if unknown:
        LOG.warning("symflow-api: %s lists names not in %s.__all__: %s", modname, modname,
                    sorted(unknown))  # fmt: skip
    out = [f".. py:currentmodule:: {modname}", ""]
    for title, names in groups:
        names = [n for n in names if n in public]
        if not names:
            continue
        out += [title, "-" * len(title), ""]
        out += [entry(modname, n) for n in names]
    return "\n".join(out)


class ApiDirective(SphinxDirective):
    """`.. symflow-api:: symflow.bijectors` writes that module's reference here."""

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        return self.parse_text_to_nodes(
            module_page(self.arguments[0]), allow_section_headings=True
        )


def check_coverage(app: Sphinx, env) -> None:
    """Every public name of `MODULES` has an entry (submodules: their own page)."""
    objects = env.get_domain("py").objects
    for modname in MODULES:
        module = importlib.import_module(modname)
        for name in module.__all__:
            obj = getattr(module, name)
            target = obj.__name__ if isinstance(obj, types.ModuleType) else f"{modname}.{name}"
            if target not in objects:
                LOG.warning("API reference: %s.%s has no entry (add it to docs/api)", modname,
                            name)  # fmt: skip


def compile_catalog(app: Sphinx) -> None:
    """Derives (or loads) every catalog entry before any page is parsed.

    SymPy's derivation recurses deeply; inside a directive, under docutils' own nested
    parse, it can exceed Python's recursion limit.
    """
    from symflow.bijectors import CATALOG

    for declared in CATALOG.values():
        declared.compile()


def setup(app: Sphinx) -> None:
    app.add_directive("symflow-api", ApiDirective)
    app.connect("builder-inited", compile_catalog)
    app.connect("env-check-consistency", check_coverage)
