"""The worker kit: the few parts of Satchel a worker imports, copied once into SATCHEL_HOME.

The worker's environment holds the function's packages plus fastavro, never Satchel itself; the kit
(`satchel/__init__`, `errors`, `bindings/`, `runtime/worker/`) is put on its path instead, with the
shared-memory ring's C source and library (`bindings/_native/`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import satchel
import satchel.bindings
import satchel.runtime
from satchel import config

LAUNCHER = "satchel_worker.py"
_LAUNCHER_SOURCE = "from satchel.runtime.worker.main import main\n\nmain()\n"


def _sources() -> dict[str, Path]:
    """Kit path -> source file."""
    top = Path(satchel.__file__).parent
    files = {f"satchel/{name}": top / name for name in ("__init__.py", "_version.py", "errors.py")}
    trees = {
        "satchel/bindings": Path(satchel.bindings.__file__).parent,
        "satchel/runtime/worker": Path(satchel.runtime.__file__).parent / "worker",
    }
    files["satchel/runtime/__init__.py"] = Path(satchel.runtime.__file__)
    for prefix, root in trees.items():
        for path in sorted(root.rglob("*.py")):
            files[f"{prefix}/{path.relative_to(root).as_posix()}"] = path
    files.update(_native_files())
    return files


def _native_files() -> dict[str, Path]:
    """The ring library's C source, and the library itself when this process has (or can build) one:
    a worker loads the kit's copy, whatever its Python version, or compiles the source if it must."""
    from satchel.bindings import _native

    files: dict[str, Path] = {}
    src = _native.source_dir()
    if src is None:
        return files
    for name in _native.SOURCES:
        files[f"satchel/bindings/_native/src/{name}"] = src / name
    try:
        files[f"satchel/bindings/_native/{_native.LIBRARY_NAME}"] = _native.library_path()
    except _native.NativeUnavailable:
        pass  # the pipe transport needs none of it
    return files


_cached: Path | None = None


def worker_kit() -> Path:
    """The kit directory (its launcher is `<kit>/satchel_worker.py`), built when its sources change."""
    global _cached
    if _cached is not None and _cached.is_dir():
        return _cached
    sources = _sources()
    digest = hashlib.sha256()
    contents = {}
    for rel in sorted(sources):
        data = sources[rel].read_bytes()
        contents[rel] = data
        digest.update(rel.encode() + b"\0" + hashlib.sha256(data).digest())
    kit = config.kits_dir() / digest.hexdigest()[:24]
    if not kit.is_dir():
        tmp = kit.with_name(f".{kit.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        for rel, data in contents.items():
            target = tmp / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            if rel.endswith(".so"):
                target.chmod(0o755)
        (tmp / LAUNCHER).write_text(_LAUNCHER_SOURCE)
        try:
            os.rename(tmp, kit)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
            if not kit.is_dir():
                raise
    _cached = kit
    return kit
