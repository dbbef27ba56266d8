"""The kernel cache: hash → generated module on disk (+ a JSON meta file), loaded.

Default folder: `$XDG_CACHE_HOME/symflow` (else `~/.cache/symflow`); the environment
variable `SYMFLOW_CACHE_DIR` overrides it. Files are written to a temporary name in the
same folder and moved into place with `os.replace`, so a reader never sees half a file;
every entry records the sha256 of its module text, and an entry whose text, meta or hash
disagree is treated as missing and rebuilt.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
import tempfile
from pathlib import Path
from types import ModuleType

from symflow.codegen.emit import KernelSource
from symflow.errors import CacheError

__all__ = ["PREBUILT", "CacheEntry", "atomic_write", "cache_dir", "read_entry", "write_entry"]

ENV_VAR = "SYMFLOW_CACHE_DIR"
_PACKAGE = "symflow_kernels"
#: Cache entries shipped with the package: the catalog's, written by `symflow generate`.
PREBUILT = Path(__file__).resolve().parent.parent / "prebuilt"


def cache_dir() -> Path:
    """The cache folder, created if needed.

    Raises:
        CacheError: if it exists as a file or cannot be created or written.
    """
    env = os.environ.get(ENV_VAR)
    if env:
        path = Path(env).expanduser()
    else:
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        path = Path(base) / "symflow"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CacheError(
            f"symflow cannot create its kernel cache folder {path}: {err}. Set "
            f"{ENV_VAR} to a writable folder."
        ) from err
    if not os.access(path, os.W_OK):
        raise CacheError(
            f"symflow's kernel cache folder {path} is not writable. Set {ENV_VAR} to a "
            "writable folder."
        )
    return path


def atomic_write(path: Path, text: str) -> None:
    """Writes `text` to `path` so that readers see the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


class CacheEntry:
    """A loaded cache entry: the kernel module and its meta data."""

    def __init__(self, module: ModuleType, meta: dict, path: Path) -> None:
        self.module = module
        self.meta = meta
        self.path = path


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _paths(folder: Path, module_name: str) -> tuple[Path, Path]:
    return folder / f"{module_name}.py", folder / f"{module_name}.json"


def _import(path: Path, module_name: str) -> ModuleType:
    full = f"{_PACKAGE}.{module_name}"
    if full in sys.modules and getattr(sys.modules[full], "__file__", None) == str(path):
        return sys.modules[full]
    spec = importlib.util.spec_from_file_location(full, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[full] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[full]
        raise
    return module


def _read_valid(folder: Path, module_name: str, key: str) -> tuple[str, dict] | None:
    """(module text, meta) of the entry in `folder` if both files are there and agree with
    `key` and with each other; else None."""
    py, meta_path = _paths(folder, module_name)
    try:
        text = py.read_text(encoding="utf-8")
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if (
        not isinstance(meta, dict)
        or meta.get("hash") != key
        or meta.get("module_sha256") != _sha256(text)
        or f"sha256:{key}\n" not in text
    ):
        return None
    return text, meta


def read_entry(
    module_name: str, key: str, folder: Path | None = None, *, prebuilt: bool = True
) -> CacheEntry | None:
    """The cached entry for `key`, or None if missing, corrupt or stale.

    A miss in the cache folder is filled from the entries shipped in `PREBUILT` (the
    catalog's, derived and verified by `symflow generate`) when one has the same key: the
    key covers the declaration, symflow's version and the compiler's source, so a shipped
    entry is used only where this installation would have built the very same one.
    """
    folder = folder or cache_dir()
    py, meta_path = _paths(folder, module_name)
    found = _read_valid(folder, module_name, key)
    if found is None and prebuilt:
        shipped = _read_valid(PREBUILT, module_name, key)
        if shipped is not None:
            try:  # module first, as write_entry does: a reader never sees meta alone
                atomic_write(py, shipped[0])
                atomic_write(meta_path, json.dumps(shipped[1], indent=1, sort_keys=True) + "\n")
            except OSError as err:
                raise CacheError(f"cannot write kernel cache entry {py}: {err}") from err
            sys.modules.pop(f"{_PACKAGE}.{module_name}", None)
            found = shipped
    if found is None:
        return None
    meta = found[1]
    try:
        module = _import(py, module_name)
    except Exception:  # a file that passed the checksum but will not import: rebuild it
        return None
    if getattr(module, "HASH", None) != key:
        return None
    return CacheEntry(module, meta, py)


def write_entry(source: KernelSource, meta: dict, folder: Path | None = None) -> CacheEntry:
    """Writes module and meta atomically (module first), then imports the module."""
    folder = folder or cache_dir()
    py, meta_path = _paths(folder, source.module_name)
    meta = dict(meta, hash=source.hash, module_sha256=_sha256(source.text))
    try:
        atomic_write(py, source.text)
        atomic_write(meta_path, json.dumps(meta, indent=1, sort_keys=True) + "\n")
    except OSError as err:
        raise CacheError(f"cannot write kernel cache entry {py}: {err}") from err
    sys.modules.pop(f"{_PACKAGE}.{source.module_name}", None)
    return CacheEntry(_import(py, source.module_name), meta, py)
