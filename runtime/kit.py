"""The worker kit: the parts of Satchel a worker imports, copied once into SATCHEL_HOME.

The worker's environment holds the function's packages plus fastavro, never Satchel itself; the kit is put
on its path instead. It is derived, not listed: `satchel.runtime.worker.main` and every satchel module it
imports (the floor, `bindings/`, the worker package; `core/kits.py` follows the imports), with the shared-memory
ring's C source and library (`bindings/_native/`). Two package `__init__`s are stand-ins for the ones the
function's own module would otherwise reach: `satchel` is `runtime/worker/face.py` (the declaration API as
no-ops, the errors), and of `satchel.flows` a worker gets only `Task` (`runtime/worker/flows_shim.py`).
"""

from __future__ import annotations

from pathlib import Path

from satchel.core.kits import build_kit, module_closure

LAUNCHER = "satchel_worker.py"
ENTRY = "satchel.runtime.worker.main"
_LAUNCHER_SOURCE = f"from {ENTRY} import main\n\nmain()\n"
_WORKER_DIR = Path(__file__).resolve().parent / "worker"


def _sources() -> dict[str, Path]:
    """Kit path -> source file."""
    files = module_closure(
        [ENTRY],
        overrides={
            "satchel/__init__.py": _WORKER_DIR / "face.py",
            "satchel/flows/__init__.py": _WORKER_DIR / "flows_shim.py",
        },
    )
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


def worker_kit() -> Path:
    """The kit directory (its launcher is `<kit>/satchel_worker.py`), built when its sources change."""
    return build_kit("worker", _sources(), LAUNCHER, _LAUNCHER_SOURCE)
