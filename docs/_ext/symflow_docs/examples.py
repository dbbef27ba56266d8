"""`symflow-example FILE`: run `examples/FILE` during the build, show its output and PNGs.

An equivalent of sphinx-gallery for this repository's examples, which are plain scripts
with an argparse `main()` (`--png` names the picture, `--save` a parameters file) rather
than gallery-formatted notebooks. Every example runs once per build in a fresh process,
before any page is read (so the gallery index can show the pictures), with its working
folder and its `--png`/`--save` paths under `docs/_examples_out/NAME/`; the page shows
what it printed and every PNG it wrote, so the pictures are the ones the current code
draws. An example that exits non-zero is a build warning (an error under `-W`), with the
end of its stderr. Examples only run when a page under `examples/` is (re)read; the
doctest builder reusing the HTML build's environment does not run them again.
"""

from __future__ import annotations

import ast
import dataclasses
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

LOG = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Run:
    name: str
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    pngs: tuple[str, ...]  # srcdir-absolute paths ("/_examples_out/...")


def _clean(text: str, folder: Path) -> str:
    """Progress-bar carriage returns resolved, the run's own folder left out of paths."""
    lines = [line.rsplit("\r", 1)[-1] for line in text.splitlines()]
    text = "\n".join(lines).replace(f"{folder}{os.sep}", "")
    return re.sub(r"\n{3,}", "\n\n", text).strip("\n")


def run_example(app: Sphinx, name: str) -> Run:
    path = Path(app.config.symflow_examples_dir) / name
    folder = Path(app.srcdir) / "_examples_out" / path.stem
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    source = path.read_text()
    cmd = [sys.executable, str(path)]
    if '"--png"' in source:
        cmd += ["--png", str(folder / f"{path.stem}.png")]
    if '"--save"' in source:
        cmd += ["--save", str(folder / f"{path.stem}_parameters.json")]
    cmd += shlex.split(app.config.symflow_example_args.get(name, ""))
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1"}
    LOG.info("examples: running %s", shlex.join(cmd[1:]))
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd,
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=app.config.symflow_example_timeout,
        )
        rc, out, err = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        rc, out, err = -1, exc.stdout or "", f"timed out after {exc.timeout} s"
        out = out.decode() if isinstance(out, bytes) else out
    seconds = time.perf_counter() - t0
    pngs = tuple(f"/_examples_out/{path.stem}/{p.name}" for p in sorted(folder.glob("*.png")))
    LOG.info("examples: %s exited %d after %.1f s, %d PNG(s)", name, rc, seconds, len(pngs))
    return Run(name, rc, _clean(out, folder), _clean(err, folder), seconds, pngs)


def example_names(app: Sphinx) -> list[str]:
    return sorted(p.name for p in Path(app.config.symflow_examples_dir).glob("*.py"))


def run_all(app: Sphinx, env, docnames: list[str]) -> None:
    """Runs every example once, before reading, when any gallery page is to be read."""
    if not app.config.symflow_run_examples:
        return
    if not any(d.startswith("examples/") for d in docnames):
        return
    app.symflow_example_runs = {name: run_example(app, name) for name in example_names(app)}


def get_run(app: Sphinx, name: str) -> Run:
    runs = getattr(app, "symflow_example_runs", None)
    if runs is None:
        runs = app.symflow_example_runs = {}
    if name not in runs:
        runs[name] = run_example(app, name)
    return runs[name]


def _literal(text: str) -> str:
    return "\n".join("   " + line if line else "" for line in text.splitlines())


class ExampleDirective(SphinxDirective):
    """`.. symflow-example:: two_moons.py`: picture(s), printed output, then the source."""

    required_arguments = 1
    option_spec = {"alt": directives.unchanged}

    def run(self) -> list[nodes.Node]:
        name = self.arguments[0]
        app = self.env.app
        path = Path(app.config.symflow_examples_dir) / name
        if not path.exists():
            raise self.error(f"symflow-example: no file {path}")
        self.env.note_dependency(str(path))
        if not app.config.symflow_run_examples:
            return self.parse_text_to_nodes(
                f"(``{name}`` was not run: this build set ``symflow_run_examples`` off.)"
            )
        run = get_run(app, name)
        if run.returncode != 0:
            LOG.warning(
                "example %s failed (exit %d) after %.1f s:\n%s",
                name,
                run.returncode,
                run.seconds,
                "\n".join(run.stderr.splitlines()[-15:]),
                location=self.get_location(),
            )
        here = Path(self.env.doc2path(self.env.docname)).parent
        rel = os.path.relpath(path, here)
        args = shlex.split(app.config.symflow_example_args.get(name, ""))
        command = shlex.join(["python", f"examples/{name}", *args])
        text = []
        for png in run.pngs:
            alt = self.options.get("alt", f"the picture {name} draws")
            text += [f".. image:: {png}", f"   :alt: {alt}", ""]
        status = "" if run.returncode == 0 else f", and **failed with exit {run.returncode}**"
        text += [
            f"What ``{command}`` printed when this page was built "
            f"({run.seconds:.1f} s, kernel cache as the build found it{status}):",
            "",
            ".. code-block:: text",
            "",
            _literal(run.stdout or "(nothing)"),
            "",
        ]
        if run.returncode != 0:
            text += [".. code-block:: text", "", _literal(run.stderr[-3000:]), ""]
        text += [
            ".. rubric:: Source",
            "",
            f".. literalinclude:: {rel}",
            "   :language: python",
            "",
        ]
        return self.parse_text_to_nodes("\n".join(text))


class GalleryDirective(SphinxDirective):
    """`.. symflow-gallery::`: every example, its docstring's first line and its pictures."""

    def run(self) -> list[nodes.Node]:
        app = self.env.app
        text = []
        for name in example_names(app):
            stem = Path(name).stem
            path = Path(app.config.symflow_examples_dir) / name
            doc = ast.get_docstring(ast.parse(path.read_text())) or ""
            summary = doc.split("\n\n", 1)[0].replace("\n", " ")
            text += [f"* :doc:`{stem}`: {summary}", ""]
            runs = getattr(app, "symflow_example_runs", {})
            for png in runs[name].pngs if name in runs else ():
                text += [
                    f"  .. image:: {png}",
                    "     :width: 45%",
                    f"     :target: {stem}.html",
                    f"     :alt: the picture {name} draws",
                    "",
                ]
        return self.parse_text_to_nodes("\n".join(text))


def check_pages(app: Sphinx, env) -> None:
    """Every example has a gallery page."""
    for name in example_names(app):
        if f"examples/{Path(name).stem}" not in env.found_docs:
            LOG.warning("examples: %s has no page docs/examples/%s.rst", name, Path(name).stem)


def setup(app: Sphinx) -> None:
    app.add_config_value("symflow_examples_dir", "", "env")
    app.add_config_value("symflow_example_args", {}, "env")
    app.add_config_value("symflow_example_timeout", 900, "env")
    # `-D symflow_run_examples=0` for a quick look at the other pages; CI runs them.
    app.add_config_value("symflow_run_examples", True, "env", types=(bool, int))
    app.add_directive("symflow-example", ExampleDirective)
    app.add_directive("symflow-gallery", GalleryDirective)
    app.connect("env-before-read-docs", run_all)
    app.connect("env-check-consistency", check_pages)
