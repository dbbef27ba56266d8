"""Float64 accuracy of every catalog bijector and user example, symflow vs plain lambdify.

For each bijector (parameters as in `tests/catalog.py`) and each kernel, the largest
relative error against mpmath over well-conditioned points (condition number <= 1e3) and
the count of non-finite outputs where the truth is finite, for symflow's compiled kernels
and for `sympy.lambdify(..., "numpy")` of the derived, unrewritten expressions; the grid
reaches |x| = 700 and 1e-300 from finite ends (see `symflow/runtime/accuracy.py`). Run:

    python benchmarks/accuracy_table.py

It prints a markdown table; a kernel that misses its bound anywhere shows FAIL.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from symflow.bijectors import CATALOG  # noqa: E402
from symflow.cli import declarations_in  # noqa: E402
from symflow.runtime.accuracy import (  # noqa: E402
    ILL_CONDITIONED,
    KERNELS,
    TOLERANCE,
    accuracy_report,
    lambdify_baseline_report,
)

SHORT = {
    "forward": "forward",
    "inverse": "inverse",
    "forward_log_det_jacobian": "fldj",
    "inverse_log_det_jacobian": "ildj",
}


def _cases() -> list[tuple[str, object, dict]]:
    """(label, declared, parameters): tests/catalog.py's CASES, then anything they miss."""
    spec = importlib.util.spec_from_file_location("_accuracy_cases", REPO / "tests" / "catalog.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look the module up while it executes
    spec.loader.exec_module(module)
    rows = [(label, case.declared, dict(case.params)) for label, case in module.CASES.items()]
    covered = {declared.name for _, declared, _ in rows}
    user = declarations_in(REPO / "examples" / "user_bijectors.py")
    extra = [*sorted(CATALOG.items()), *((f"user:{k}", v) for k, v in sorted(user.items()))]
    rows += [(label, d, {}) for label, d in extra if d.name not in covered]
    return rows


def _num(v: float) -> str:
    return "0" if v == 0 else f"{v:.1e}"


def main() -> int:
    t0 = time.perf_counter()
    lines = [
        "| bijector | kernel | symflow max rel err (well-cond.) | symflow non-finite "
        "| lambdify max rel err (well-cond.) | lambdify non-finite | ill-cond. points "
        "| symflow | lambdify |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    failed = []
    method = ""
    for label, declared, params in _cases():
        ours = accuracy_report(declared, params)
        base = lambdify_baseline_report(declared, params)
        method = base.method
        for kernel in KERNELS:
            a, b = ours.row(kernel), base.row(kernel)
            verdict = "pass" if a.passed else "**FAIL**"
            lines.append(
                f"| {label} | {SHORT[kernel]} | {_num(a.max_error)} | {a.non_finite} "
                f"| {_num(b.max_error)} | {b.non_finite} | {len(a.ill_conditioned)} "
                f"| {verdict} | {'pass' if b.passed else 'fail'} |"
            )
            if not a.passed:
                failed.append(f"{label} {kernel}")
    print("\n".join(lines))
    print(
        f"\nbound per point: {TOLERANCE:g} * max(1, cond/{ILL_CONDITIONED:g}); 'well-cond.' "
        f"columns are over points with cond <= {ILL_CONDITIONED:g} and a finite output."
    )
    print(f"baseline: {method}")
    print(f"symflow kernels failing their bound: {', '.join(failed) or 'none'}")
    print(f"({time.perf_counter() - t0:.1f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
