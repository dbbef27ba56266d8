"""Shared tools for the tests of the pasted helper libraries (not a test module itself).

`compile_helpers` compiles helpers exactly as a generated kernel module would contain them;
`vector_loop` wraps one in the loop a kernel runs and reports whether LLVM vectorized it;
`ulp_error` and `ulp_error32` measure a float64 or float32 result against a 50-digit mpmath
truth. `vector_lanes` and `foreign_ir` keep the IR tests true on any CPU: they assert that a
loop is vectorized in its element type with at least 4 lanes, on this machine and in IR
compiled for AVX-512 targets this machine may not have, never the lane count LLVM picked here.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import mpmath
from mpmath.libmp import to_float

from symflow.codegen.mathlib import helper_sources
from symflow.runtime.tuning import tune_module

PRELUDE = "import math\n\nimport numba\nimport numba.extending\nimport numpy as np\n\n"
OVERFLOW = mpmath.mpf(2) ** 1024 - mpmath.mpf(2) ** 970  # from here on, rounding gives inf
_FOLDER = Path(tempfile.mkdtemp(prefix="symflow-helpers-"))
_COMPILED: dict[tuple[str, ...], dict] = {}

_LOOP = """

@numba.njit(cache=True, error_model="numpy")
def _loop(x, out):
    for i in range(x.shape[0]):
        out[i] = {name}(x[i])
"""


def _module(names: tuple[str, ...], extra: str = "") -> dict:
    key = (*names, extra)
    if key not in _COMPILED:
        text = PRELUDE + helper_sources(names) + extra
        # A real file: Numba's cache=True needs a source file to key its cache on.
        path = _FOLDER / f"m{len(_COMPILED)}.py"
        path.write_text(text)
        namespace: dict = {"__file__": str(path)}
        exec(compile(text, str(path), "exec"), namespace)
        _COMPILED[key] = namespace
    return _COMPILED[key]


def compile_helpers(names: Iterable[str]) -> dict[str, Callable]:
    """name → the helper compiled by Numba (with everything it requires), once per session."""
    names = tuple(sorted(names))
    namespace = _module(names)
    return {n: namespace[n] for n in names}


def vector_loop(name: str, dtype: str = "float64") -> tuple[Callable, bool]:
    """`_loop(x, out)` applying helper `name` elementwise, and whether LLVM vectorized it.

    Vectorized means the loop's optimized LLVM IR holds vectors of `dtype` (``<4 x double>``
    and the like), which only the loop vectorizer produces here.
    """
    namespace = _module((name,), _LOOP.format(name=name))
    loop = namespace["_loop"]
    import numpy as np

    x = np.zeros(8, dtype=dtype)
    loop(x, np.empty_like(x))
    ir = loop.inspect_llvm(loop.signatures[0])
    scalar = "double" if dtype == "float64" else "float"
    return loop, re.search(rf"<\d+ x {scalar}>", ir) is not None


def loop_source(name: str, dtype: str = "float64") -> str:
    """The path of the file holding `_loop(x, out)` over helper `name` (see `vector_loop`)."""
    vector_loop(name, dtype)
    return _module((name,), _LOOP.format(name=name))["__file__"]


def vector_lanes(ir: str, scalar: str) -> int:
    """The widest vector of `scalar` (``float``, ``double``) in LLVM IR `ir`; 0 if none.

    LLVM's loop vectorizer picks the width from the target: 8 float lanes with AVX2, 16 on
    an AVX-512 CPU whose tuning does not prefer 256-bit vectors (Zen 4 and 5), 4 with SSE
    only. Tests assert a floor (`MIN_LANES`), not one CPU's choice.
    """
    return max((int(n) for n in re.findall(rf"<(\d+) x {scalar}>", ir)), default=0)


#: Every x86-64 CPU symflow runs on has at least 128-bit vectors: 4 float32 lanes.
MIN_LANES = 4

#: Targets to compile IR for in `foreign_ir`, beside the host: Intel's AVX-512 (which LLVM
#: tunes to prefer 256-bit vectors) and AMD's Zen 4 (512-bit vectors; Zen 5 is the same).
FOREIGN_CPUS = ("skylake-avx512", "znver4")

_FOREIGN = """
import json, sys
from numba.core.registry import CPUDispatcher
from symflow.runtime.tuning import interleaved
out = {}
for item in json.loads(sys.stdin.read()):
    text = open(item["path"]).read().replace("cache=True", "cache=False")
    namespace = {}
    exec(compile(text, item["path"], "exec"), namespace)
    fn = namespace[item["function"]]
    # compiled, never called: the host may lack the target's instructions
    if item["tuned"]:
        with interleaved():
            fn.compile(item["signature"])
    else:
        fn.compile(item["signature"])
    out[item["key"]] = fn.inspect_llvm(fn.signatures[0])
print(json.dumps(out))
"""


def foreign_ir(cpu: str, items: list[dict]) -> dict[str, str]:
    """Optimized LLVM IR of generated functions compiled for CPU `cpu` (an LLVM name).

    Each item names `key`, the source file `path`, the `function`, its Numba `signature`
    and whether it compiles `tuned` (interleaved, as a fused module does). A fresh process
    compiles them with ``NUMBA_CPU_NAME=cpu`` and the CPU's own features, so the IR is what
    that CPU would run; nothing is executed, so the host need not have its instructions.
    """
    # an empty feature string means the CPU's own features, not the host's
    env = {**os.environ, "NUMBA_CPU_NAME": cpu, "NUMBA_CPU_FEATURES": ""}
    done = subprocess.run(
        [sys.executable, "-c", _FOREIGN],
        input=json.dumps(items),
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"compiling for {cpu} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout)


def uncached(module, tuned: bool = False) -> dict:
    """A generated module's namespace compiled afresh, without Numba's on-disk cache.

    Numba cannot show the LLVM IR of a function it loaded from its cache, and a local test
    run after the first finds every kernel cached; the IR tests compile from the text.
    `tuned`: compile as the runtime compiles a fused chain module (loops interleaved).
    """
    text = Path(module.__file__).read_text().replace("cache=True", "cache=False")
    namespace: dict = {}
    exec(compile(text, module.__file__, "exec"), namespace)
    if tuned:
        tune_module(namespace)
    return namespace


def ulp_error(got: float, truth) -> float:
    """|got - truth| in ULPs of the correctly rounded truth (0.5 for correct rounding).

    An infinite or nan result counts as 0 if it equals the rounded truth, else as inf.
    """
    rounded = (
        to_float(truth._mpf_, rnd="n") if abs(truth) < OVERFLOW else math.copysign(math.inf, truth)
    )
    if math.isinf(rounded) or math.isinf(got) or math.isnan(got):
        return 0.0 if got == rounded else math.inf
    return float(abs(mpmath.mpf(got) - truth) / mpmath.mpf(math.ulp(rounded)))


OVERFLOW32 = mpmath.mpf(2) ** 128 - mpmath.mpf(2) ** 103  # float32 rounding gives inf here


def ulp_error32(got: float, truth) -> float:
    """|got - truth| in float32 ULPs of the truth rounded to float32 (0.5: correctly rounded).

    `got` is a float32 value (as a Python float or numpy float32). Subnormal results are
    measured in the subnormal spacing 2^-149. Infinite or nan results count as in
    `ulp_error`.
    """
    import numpy as np

    got = float(got)
    if abs(truth) >= OVERFLOW32:
        rounded = math.copysign(math.inf, truth)
    else:
        # Round to float32 exactly: scale to an integer significand of 24 bits.
        m, e = mpmath.frexp(truth) if truth != 0 else (mpmath.mpf(0), 0)
        e = max(int(e), -125)  # below 2^-126 the spacing stays 2^-149
        rounded = float(mpmath.nint(truth * mpmath.mpf(2) ** (24 - e)) * mpmath.mpf(2) ** (e - 24))
        if abs(rounded) >= float(OVERFLOW32):
            rounded = math.copysign(math.inf, truth)
    if math.isinf(rounded) or math.isinf(got) or math.isnan(got):
        return 0.0 if got == rounded else math.inf
    # the spacing below |rounded| equals the one above except at a power of two, where the
    # upper one is the correct unit; at float32's maximum np.spacing would overflow to inf
    big = abs(rounded) >= 2.0**127
    spacing = 2.0**104 if big else float(np.spacing(np.float32(abs(rounded))))
    spacing = spacing if rounded != 0 else 2.0**-149
    return float(abs(mpmath.mpf(got) - truth) / mpmath.mpf(spacing))


def same_value(got: float, want: float) -> bool:
    """Equal, with nan equal to nan and the sign of a zero checked."""
    if math.isnan(want):
        return math.isnan(got)
    return got == want and math.copysign(1.0, got) == math.copysign(1.0, want)
