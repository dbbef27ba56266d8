"""The `symflow` command: `generate`, `compile`, `show`, `check`, `demo`.

symflow generate [--out generated] [--check]   emit the catalog's and examples' kernels
                                                (and the catalog's cache entries shipped
                                                in symflow/prebuilt)
symflow compile FILE.py --out DIR              emit the kernels of every bijector in FILE
symflow show FILE.py:NAME                      derived inverse, log-dets and check report
symflow check FILE.py[:NAME] | --catalog       float64 kernel accuracy vs mpmath, tails too
        [--float32]                             and which precision float32 inputs compute in
symflow demo                                   declare, verify, compile and use bijectors
"""

from __future__ import annotations

import argparse
import difflib
import importlib.util
import sys
import time
from collections.abc import Callable
from pathlib import Path

from symflow.bijectors import CATALOG, Chain
from symflow.runtime.declared import DeclaredBijector
from symflow.runtime.loader import atomic_write

__all__ = ["compile_file", "declarations_in", "generate", "main"]

REPO = Path(__file__).resolve().parent.parent
EXAMPLES_WITH_KERNELS = ("user_bijectors.py",)


def _module_of(path: Path):
    path = Path(path)
    if not path.is_file():
        raise SystemExit(f"symflow: no such file {path}")
    spec = importlib.util.spec_from_file_location(f"_symflow_user_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def declarations_in(path: Path) -> dict[str, DeclaredBijector]:
    """The declared bijectors a Python file defines at module level, by attribute name."""
    return {k: v for k, v in vars(_module_of(path)).items() if isinstance(v, DeclaredBijector)}


def compile_file(path: Path, out: Path) -> list[Path]:
    """Writes the kernel module of every bijector `path` defines at module level into `out`.

    Declared bijectors give `<name>.py`; module-level fused chains give `<name>.chain.py`.
    Each is derived, checked and stabilized first (or taken from the cache). Returns the
    files written.
    """
    items = {
        k: v for k, v in vars(_module_of(path)).items() if isinstance(v, (DeclaredBijector, Chain))
    }
    items = {k: v for k, v in items.items() if isinstance(v, DeclaredBijector) or v.is_fused}
    if not items:
        raise SystemExit(f"symflow compile: {path} defines no declared bijectors or chains")
    written = []
    for k, (name, obj) in enumerate(sorted(items.items()), 1):
        t0 = time.perf_counter()
        if isinstance(obj, DeclaredBijector):
            src, dest = Path(obj.compile().path), out / f"{name}.py"
        else:
            src, dest = Path(obj.fused_kernels().module.__file__), out / f"{name}.chain.py"
        atomic_write(dest, src.read_text(encoding="utf-8"))
        written.append(dest)
        print(f"[{k:2d}/{len(items)}] {name:<24} -> {dest}  {time.perf_counter() - t0:6.2f} s")
    return written


def _targets(repo: Path) -> list[tuple[str, Callable[[], Path]]]:
    """(path under generated/, a function giving the module file), in a fixed order."""
    from symflow import walkthrough
    from symflow.training import training_kernels

    def declared(decl: DeclaredBijector) -> Callable[[], Path]:
        return lambda: Path(decl.compile().path)

    targets = [(f"catalog/{name}.py", declared(decl)) for name, decl in sorted(CATALOG.items())]
    for example in EXAMPLES_WITH_KERNELS:
        for name, decl in sorted(declarations_in(repo / "examples" / example).items()):
            targets.append((f"examples/{Path(example).stem}/{name}.py", declared(decl)))
    for name in ("exponential_icdf", "prelu"):
        targets.append(
            (f"examples/tfp_walkthrough/{name}.py", declared(getattr(walkthrough, name)))
        )
    targets.append(
        (
            "examples/tfp_walkthrough/tiny_flow_training.py",
            lambda: Path(training_kernels(walkthrough.tiny_flow()).module.__file__),
        )
    )
    return targets


def generate(out: Path, *, check: bool = False, repo: Path = REPO) -> list[str]:
    """Writes (or with `check`, compares) every generated module; returns the stale ones."""
    stale = []
    targets = _targets(repo)
    for k, (rel, source) in enumerate(targets, 1):
        t0 = time.perf_counter()
        text = source().read_text(encoding="utf-8")
        dest = out / rel
        old = dest.read_text(encoding="utf-8") if dest.exists() else None
        if old != text:
            stale.append(rel)
            if check:
                diff = difflib.unified_diff(
                    (old or "").splitlines(True), text.splitlines(True), str(dest), "fresh"
                )
                sys.stdout.writelines(list(diff)[:40])
            else:
                atomic_write(dest, text)
        status = "stale" if rel in stale else "ok"
        print(f"[{k:2d}/{len(targets)}] {rel:<48} {status:<5} {time.perf_counter() - t0:6.2f} s")
    prebuilt = _sync_prebuilt(repo / "symflow" / "prebuilt", check=check)
    print(f"symflow/prebuilt: the catalog's {len(CATALOG)} cache entries, {len(prebuilt)} stale")
    return stale + prebuilt


def _sync_prebuilt(folder: Path, *, check: bool) -> list[str]:
    """The catalog's cache entries (module and meta), shipped in the package so that a new
    installation loads them instead of deriving and verifying them again; with `check`,
    only compared. Entries of an older compiler are removed. Returns the stale files."""
    expected = {}
    for _, decl in sorted(CATALOG.items()):
        py = Path(decl.compile().path)
        for path in (py, py.with_suffix(".json")):
            expected[path.name] = path.read_text(encoding="utf-8")
    present = {p.name for p in folder.iterdir() if p.suffix in (".py", ".json")}
    present.discard("__init__.py")
    stale = []
    for name in sorted(present - expected.keys()):
        stale.append(f"symflow/prebuilt/{name}")
        if not check:
            (folder / name).unlink()
    for name, text in sorted(expected.items()):
        dest = folder / name
        if not dest.exists() or dest.read_text(encoding="utf-8") != text:
            stale.append(f"symflow/prebuilt/{name}")
            if not check:
                atomic_write(dest, text)
    return stale


def _show(target: str, latex: bool) -> None:
    file, _, name = target.rpartition(":")
    if not file:
        raise SystemExit("symflow show: expected FILE.py:NAME")
    decls = declarations_in(Path(file))
    if name not in decls:
        raise SystemExit(
            f"symflow show: {file} declares no bijector {name!r}; it has {sorted(decls)}"
        )
    d = decls[name]
    import sympy as sp

    fmt = sp.latex if latex else sp.pretty
    y = d.output_symbol
    for label, expr in (
        (f"forward:  {y} =", d.forward_expr),
        (f"inverse:  {d.spec.x} =", d.inverse_expr),
        ("forward_log_det_jacobian =", d.forward_log_det_jacobian_expr),
        ("inverse_log_det_jacobian =", d.inverse_log_det_jacobian_expr),
    ):
        print(label)
        print(fmt(expr))
        print()
    print(d.report())
    print(f"\nkernels: {d.source_path}")


def _check(target: str | None, *, catalog: bool, float32: bool = False) -> int:
    """Prints the accuracy report of each bijector; 1 if any kernel misses its bound.

    With `float32`, also the measured choice of precision for float32 inputs per kernel.
    """
    from symflow.runtime.accuracy import accuracy_report

    if catalog == (target is not None):
        raise SystemExit("symflow check: give either FILE.py[:NAME] or --catalog")
    if catalog:
        decls = dict(sorted(CATALOG.items()))
    else:
        file, _, name = target.rpartition(":")
        if not file or target.endswith(".py"):
            file, name = target, ""
        decls = declarations_in(Path(file))
        if name:
            if name not in decls:
                raise SystemExit(
                    f"symflow check: {file} declares no bijector {name!r}; it has {sorted(decls)}"
                )
            decls = {name: decls[name]}
        elif not decls:
            raise SystemExit(f"symflow check: {file} declares no bijectors")
    failed = []
    for name, decl in decls.items():
        report = accuracy_report(decl)
        print(report, end="\n\n")
        if float32:
            print("float32 inputs, at the same parameters:")
            for choice in decl(**report.params).float32_choices():
                print(f"  {choice}")
            print()
        if not report.passed:
            failed.append(name)
    summary = f"{len(decls) - len(failed)} of {len(decls)} passed"
    print(summary + (f"; failing: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="symflow", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate", help="emit the catalog's and examples' kernels into generated/")
    g.add_argument("--out", type=Path, default=REPO / "generated")
    g.add_argument("--check", action="store_true", help="compare only; exit 1 if stale")
    k = sub.add_parser("compile", help="emit the kernels of every bijector a file declares")
    k.add_argument("file", type=Path, help="a Python file declaring bijectors")
    k.add_argument("--out", type=Path, default=Path("symflow_kernels"))
    s = sub.add_parser("show", help="print derived expressions and the check report")
    s.add_argument("target", help="FILE.py:NAME")
    s.add_argument("--latex", action="store_true")
    c = sub.add_parser("check", help="measure the float64 kernels' accuracy against mpmath")
    c.add_argument("target", nargs="?", help="FILE.py or FILE.py:NAME")
    c.add_argument("--catalog", action="store_true", help="check the built-in catalog")
    c.add_argument(
        "--float32",
        action="store_true",
        help="also measure which precision each kernel computes float32 inputs in",
    )
    sub.add_parser("demo", help="declare, verify, compile and use bijectors")
    args = parser.parse_args(argv)
    if args.command == "generate":
        stale = generate(args.out, check=args.check)
        if args.check and stale:
            print(f"{len(stale)} generated file(s) are stale; run `python -m symflow generate`.")
            return 1
        return 0
    if args.command == "compile":
        compile_file(args.file, args.out)
        return 0
    if args.command == "show":
        _show(args.target, args.latex)
        return 0
    if args.command == "check":
        return _check(args.target, catalog=args.catalog, float32=args.float32)
    from symflow.demo import run_demo

    run_demo()
    return 0
