"""Code generation and the cache: determinism, readable headers, imports, atomic writes,
and detection of corrupt or stale entries."""

from __future__ import annotations

import ast
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import sympy as sp

import symflow as sf
from symflow import bijectors as sfb
from symflow.codegen.emit import emit_module
from symflow.codegen.printer import KernelPrinter
from symflow.codegen.templates import SCALAR, render
from symflow.runtime import loader
from symflow.runtime.declared import build_plan


def test_generated_module_imports_only_math_numpy_numba():
    text = open(sfb.SinhArcsinh.source_path).read()
    imported = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            imported.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module.split(".")[0])
    assert imported == {"math", "numpy", "numba"}


def test_header_names_the_maths_version_and_hash():
    text = open(sfb.NormalCDF.source_path).read()
    head = text.split('"""')[0]
    for label in ("forward:", "inverse:", "fldj:", "ildj:", "domain:", "codomain:", "hash:"):
        assert f"# {label}" in head
    assert f"symflow {sf.__version__}" in head
    assert sfb.NormalCDF.hash in head
    assert "erfinv" in head  # the derived inverse, as SymPy found it


def test_emission_is_deterministic_within_a_process():
    spec = sfb.Sigmoid.spec
    key = sfb.Sigmoid.hash
    first = emit_module(build_plan(spec, key)[0]).text
    assert first == open(sfb.Sigmoid.source_path).read()


def test_emission_is_deterministic_across_hash_seeds(tmp_path):
    """Same input, same bytes, whatever Python's string-hash seed (set and dict order)."""
    code = (
        "import hashlib, sys\n"
        "from symflow import bijectors as sfb\n"
        "from symflow.codegen.emit import emit_module\n"
        "from symflow.runtime.declared import build_plan\n"
        "b = sfb.SinhArcsinh\n"
        "text = emit_module(build_plan(b.spec, b.hash)[0]).text\n"
        "print(hashlib.sha256(text.encode()).hexdigest())\n"
    )
    digests = set()
    for seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=seed, SYMFLOW_CACHE_DIR=str(tmp_path / seed))
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        digests.add(out.stdout.strip())
    digests.add(
        __import__("hashlib").sha256(open(sfb.SinhArcsinh.source_path, "rb").read()).hexdigest()
    )
    assert len(digests) == 1


def test_render_checks_template_keys():
    with pytest.raises(KeyError, match="missing.*body"):
        render(SCALAR, name="f", args="x", doc="d")
    with pytest.raises(KeyError, match="unexpected.*extra"):
        render(SCALAR, name="f", args="x", doc="d", body="", extra=1)


def test_printer_refuses_functions_nobody_can_compile():
    x = sp.Symbol("x")
    with pytest.raises(sf.DeclarationError, match="zeta"):
        KernelPrinter().print_expr(sp.zeta(x))


def _fresh_shift(name="cache_probe"):
    x = sp.Symbol("x")
    s = sp.Symbol("s")
    return sf.DeclaredBijector.from_expr(x + 2 * s, x, params={s: sf.Real}, name=name)


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(loader.ENV_VAR, str(tmp_path))
    return tmp_path


def test_corrupt_module_is_detected_and_rebuilt(private_cache):
    d = _fresh_shift()
    path = d.compile().path
    good = path.read_text()
    path.write_text(good.replace("return", "retrun", 1))  # a half-edited file
    again = _fresh_shift()
    assert again.compile().path == path
    assert path.read_text() == good
    assert again(s=1.0).forward(1.0) == 3.0


def test_corrupt_meta_is_detected_and_rebuilt(private_cache):
    d = _fresh_shift()
    meta = d.compile().path.with_suffix(".json")
    meta.write_text("{ not json")
    again = _fresh_shift()
    assert again(s=0.5).forward(0.0) == 1.0
    assert meta.read_text().startswith("{\n")


def test_truncated_module_is_rebuilt(private_cache):
    d = _fresh_shift()
    path = d.compile().path
    path.write_text(path.read_text()[:200])
    assert _fresh_shift()(s=2.0).inverse(4.0) == 0.0


def test_catalog_entries_come_prebuilt_and_are_not_derived_again(private_cache, monkeypatch):
    from symflow.bijectors.catalog import Softplus
    from symflow.runtime import declared

    def no_derivation(*args, **kwargs):
        raise AssertionError("a catalog bijector was derived although its entry is shipped")

    monkeypatch.setattr(declared, "build_plan", no_derivation)
    fresh = sf.DeclaredBijector(Softplus._fn, domain=Softplus._domain, name=Softplus._name)
    entry = fresh.compile()
    assert entry.path.parent == private_cache  # copied into the user's cache, imported there
    shipped = loader.PREBUILT / entry.path.name
    assert entry.path.read_text() == shipped.read_text()
    assert fresh(hinge_softness=1.0).inverse(math.log(2.0)) == pytest.approx(0.0, abs=1e-15)


def test_a_damaged_prebuilt_entry_is_ignored(private_cache, tmp_path, monkeypatch):
    from symflow.bijectors.catalog import Softplus

    key = Softplus.hash
    name = f"Softplus_{key[:16]}"
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    for suffix in (".py", ".json"):
        text = (loader.PREBUILT / f"{name}{suffix}").read_text()
        (shipped / f"{name}{suffix}").write_text(text.replace("return", "retrun", 1))
    monkeypatch.setattr(loader, "PREBUILT", shipped)
    assert loader.read_entry(name, key) is None  # checksum mismatch: derive instead
    assert not (private_cache / f"{name}.py").exists()


def test_atomic_write_keeps_old_file_when_replace_fails(tmp_path, monkeypatch):
    target = tmp_path / "k.py"
    target.write_text("old")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(loader.os, "replace", broken_replace)
    with pytest.raises(OSError):
        loader.atomic_write(target, "new")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.py"]


def test_unwritable_cache_dir_gives_clear_error(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv(loader.ENV_VAR, str(blocker / "sub"))
    with pytest.raises(sf.CacheError, match="SYMFLOW_CACHE_DIR"):
        loader.cache_dir()


def test_large_batches_use_parallel_kernels_with_the_same_results():
    b = sfb.Exp()
    n = b.module.PARALLEL_THRESHOLD + 5
    x = np.linspace(-5, 5, n)
    y = b.forward(x)
    np.testing.assert_array_equal(y[:100], b.forward(x[:100]))
    np.testing.assert_array_equal(b.inverse(y)[-100:], b.inverse(y[-100:]))
