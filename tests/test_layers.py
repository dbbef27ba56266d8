"""Imports go one way, down the pipeline: a module never imports from a layer above it."""

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "symflow"

#: Top to bottom. A module may import its own layer and the layers below it.
LAYERS = [
    ("cli", "demo", "walkthrough", "__main__"),
    ("training",),
    ("flows",),
    ("distributions",),
    ("bijectors",),
    ("runtime",),
    ("codegen",),
    ("stabilize",),
    ("checks",),
    ("symbolic",),
    ("errors", "_version", "prebuilt"),  # prebuilt: shipped kernel modules (numpy, numba)
]


def _layer(module: str) -> int:
    parts = module.split(".")
    if parts[0] != "symflow" or len(parts) == 1:
        return -1  # the package root re-exports everything: it sits on top
    for k, names in enumerate(LAYERS):
        if parts[1] in names:
            return k
    raise AssertionError(f"module {module} is in no layer; add it to LAYERS")


def test_imports_go_one_way():
    violations = []
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG.parent).with_suffix("")
        module = ".".join(rel.parts).removesuffix(".__init__")
        here = _layer(module)
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.ImportFrom) and node.module:
                targets = [node.module]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            for t in targets:
                if t.startswith("symflow.") and here >= 0 and _layer(t) < here:
                    violations.append(f"{module} imports {t}")
    assert not violations, violations
