"""The worker kit: the few parts of Satchel a worker imports, copied once into SATCHEL_HOME.

The worker's environment holds the function's packages plus fastavro, never Satchel itself; the kit
(`satchel/__init__`, `errors`, `bindings/`, `runtime/worker/`, and of `satchel.flows` only `Task`: see
`runtime/worker/flows_shim.py`) is put on its path instead, with the shared-memory ring's C source and
library (`bindings/_native/`).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import satchel
import satchel.bindings
import satchel.runtime
import satchel.runtime.worker
from satchel._kits import build_kit, package_files

LAUNCHER = "satchel_worker.py"
_LAUNCHER_SOURCE = "from satchel.runtime.worker.main import main\n\nmain()\n"


def _sources() -> dict[str, Path]:
    """Kit path -> source file."""
    top = Path(satchel.__file__).parent
    files = {f"satchel/{name}": top / name for name in ("__init__.py", "_version.py", "errors.py")}
    files["satchel/runtime/__init__.py"] = Path(satchel.runtime.__file__)
    files.update(package_files("satchel/bindings", satchel.bindings))
    files.update(package_files("satchel/runtime/worker", satchel.runtime.worker))
    files.update(_flows_task_files())
    files.update(_native_files())
    return files


def _flows_task_files() -> dict[str, Path]:
    """`satchel.flows` as a worker sees it: the Task module and a package stand-in exporting only Task.
    Located without importing the flow engine."""
    spec = importlib.util.find_spec("satchel.flows")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("satchel.flows is not installed: the worker kit needs satchel/flows/task.py")
    flows_dir = Path(next(iter(spec.submodule_search_locations)))
    worker_dir = Path(satchel.runtime.worker.__file__).parent
    return {
        "satchel/flows/__init__.py": worker_dir / "flows_shim.py",
        "satchel/flows/task.py": flows_dir / "task.py",
    }


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
