"""Kits: the few parts of Satchel a foreign interpreter needs, copied once into SATCHEL_HOME/kits.

A worker (runtime) or a flow task in its own environment (flows) runs a Python that does not have
Satchel installed; its kit — chosen source files plus a launcher script — is put on its path instead.
A kit's directory is named by the hash of its contents, built aside and renamed into place.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import ModuleType

from satchel.core import settings

_built: dict[tuple[str, str], Path] = {}


def package_files(prefix: str, package: ModuleType) -> dict[str, Path]:
    """Kit path -> source file for every module of `package` (recursively), under `prefix`."""
    root = Path(package.__file__).parent
    return {f"{prefix}/{path.relative_to(root).as_posix()}": path for path in sorted(root.rglob("*.py"))}


# A registry entry ("satchel.bindings.transports.pipe:PipeTransportFactory") names a module imported later.
_TARGET = re.compile(r"^(satchel(?:\.\w+)+):\w+$")


def _source(module: str) -> tuple[Path, bool] | None:
    """(file, is_package) of a satchel module, found without importing it; None if there is none."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    return Path(spec.origin), spec.submodule_search_locations is not None


def _imports(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """The satchel modules a module's code imports anywhere (also inside functions, where the worker
    imports lazily), plus the registry targets it names; `if TYPE_CHECKING:` blocks are skipped."""
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parent = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{parent}.{base}" if base else parent
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import module`
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            match = _TARGET.match(node.value)
            if match:
                found.add(match.group(1))
        stack.extend(ast.iter_child_nodes(node))
    return {name for name in found if name == "satchel" or name.startswith("satchel.")}


# Computed once per process (as kits are built once): and CPython 3.11's ast.parse is not safe to call from
# several threads at once (gh-106905), which pools starting workers on threads would do.
_closures: dict[tuple, dict[str, Path]] = {}
_closure_lock = threading.Lock()


def module_closure(roots: Iterable[str], overrides: Mapping[str, Path] | None = None) -> dict[str, Path]:
    """Kit path -> source file for `roots` and every satchel module they import, transitively, with the
    packages above each. `overrides` (kit path -> file) stand in for a module whose own imports a kit must
    not follow (a package's `__init__` that would pull in a whole engine)."""
    key = (tuple(roots), tuple(sorted((overrides or {}).items())))
    with _closure_lock:
        if key not in _closures:
            _closures[key] = _closure(list(key[0]), dict(key[1]))
        return dict(_closures[key])


def _closure(roots: list[str], overrides: dict[str, Path]) -> dict[str, Path]:
    files: dict[str, Path] = {}
    pending = list(roots)
    seen: set[str] = set()
    while pending:
        module = pending.pop()
        if module in seen:
            continue
        seen.add(module)
        found = _source(module)
        if found is None:
            continue  # a name imported from a module, not a module of its own
        path, is_package = found
        parts = module.split(".")
        pending.extend(".".join(parts[:i]) for i in range(1, len(parts)))
        rel = "/".join(parts) + ("/__init__.py" if is_package else ".py")
        if rel in overrides:
            path = overrides[rel]
        files[rel] = path
        pending.extend(_imports(ast.parse(path.read_text()), module, is_package))
    return dict(sorted(files.items()))


def build_kit(name: str, sources: dict[str, Path], launcher: str, launcher_source: str) -> Path:
    """The kit directory holding `sources` and `<kit>/<launcher>`; built when its contents change."""
    cached = _built.get((name, launcher))
    if cached is not None and (cached / launcher).is_file():
        return cached
    digest = hashlib.sha256()
    contents = {launcher: launcher_source.encode()}
    for rel in sorted(sources):
        contents[rel] = sources[rel].read_bytes()
    for rel in sorted(contents):
        digest.update(rel.encode() + b"\0" + hashlib.sha256(contents[rel]).digest())
    kit = settings.kits_dir() / f"{name}-{digest.hexdigest()[:24]}"
    if not (kit / launcher).is_file():
        kit.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{kit.name}.tmp-", dir=kit.parent))
        try:
            for rel, data in contents.items():
                target = tmp / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
                if rel.endswith(".so"):
                    target.chmod(0o755)
            os.rename(tmp, kit)
        except OSError:
            if not (kit / launcher).is_file():  # another process won the race: use its kit
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    _built[(name, launcher)] = kit
    return kit
