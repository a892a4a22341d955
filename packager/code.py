"""Code capture: a function's module and the local modules it imports, zipped deterministically.

"Local" means found outside the standard library and site-packages (and not Satchel itself).
Extraction (`extract`) is safe: it refuses absolute paths, `..` and links.
"""

from __future__ import annotations

import ast
import importlib.util
import io
import os
import site
import sys
import sysconfig
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import ModuleType

from satchel.core.errors import CodeCaptureError, UnsafeArchive

_EPOCH = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class CodePackage:
    """The zipped code of a function and where to find it inside."""

    data: bytes
    module: str  # module to import in the worker
    qualname: str
    files: tuple[str, ...]  # paths inside the zip


def _excluded_roots() -> list[Path]:
    roots = set()
    paths = sysconfig.get_paths()
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        if paths.get(key):
            roots.add(Path(paths[key]).resolve())
    for entry in [*getattr(site, "getsitepackages", lambda: [])(), site.getusersitepackages()]:
        roots.add(Path(entry).resolve())
    return sorted(roots)


def _is_local(path: Path, excluded: list[Path]) -> bool:
    path = path.resolve()
    if any(part in ("site-packages", "dist-packages") for part in path.parts):
        return False
    if _is_satchel_file(path):
        return False
    return not any(path == root or root in path.parents for root in excluded)


def _is_satchel_file(path: Path) -> bool:
    for name, module in list(sys.modules.items()):
        if (name == "satchel" or name.startswith("satchel.")) and getattr(module, "__file__", None):
            if Path(module.__file__).resolve() == path:
                return True
    return False


def _root_of(module_name: str, file: Path) -> Path:
    """The sys.path entry a module was imported from: strip its dotted name off its file path."""
    depth = module_name.count(".") + (1 if file.name == "__init__.py" else 0)
    root = file.resolve().parent
    for _ in range(depth):
        root = root.parent
    return root


def _imports_of(source: str, filename: str, module_name: str, is_package: bool) -> set[str]:
    try:
        tree = ast.parse(source, filename)
    except SyntaxError as exc:
        raise CodeCaptureError(f"{filename}:{exc.lineno}: cannot parse: {exc.msg}") from None
    package = module_name if is_package else module_name.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                names.update(".".join(parts[: i + 1]) for i in range(len(parts)))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".") if package else []
                if node.level - 1 > len(base_parts):
                    continue
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if not base:
                continue
            parts = base.split(".")
            names.update(".".join(parts[: i + 1]) for i in range(len(parts)))
            names.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return names


def _find(name: str) -> tuple[Path, bool] | None:
    """(file, is_package) of an importable source module, or None."""
    module = sys.modules.get(name)
    if module is not None:
        file = getattr(module, "__file__", None)
        if not file:
            return None
        return Path(file), hasattr(module, "__path__")
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError, AttributeError):
        return None
    if spec is None or not spec.origin or not spec.has_location:
        return None
    return Path(spec.origin), spec.submodule_search_locations is not None


def capture(func) -> CodePackage:
    """Package the module defining `func` and every local module it (transitively) imports."""
    qualname = getattr(func, "__qualname__", "")
    if "<locals>" in qualname or "<lambda>" in qualname:
        raise CodeCaptureError(
            f"{qualname!r} is defined inside another function or is a lambda; "
            "define it at module level so the worker can import it"
        )
    module_name = func.__module__
    module: ModuleType | None = sys.modules.get(module_name)
    file = getattr(module, "__file__", None) if module else None
    if not file or not file.endswith(".py"):
        raise CodeCaptureError(
            f"function {qualname!r} has no source file (module {module_name!r}); define it in a .py "
            "file and import it from there (functions typed into a notebook cell or a REPL cannot be "
            "packaged yet)"
        )
    file_path = Path(file).resolve()
    if module_name == "__main__":
        module_name = file_path.stem
        if not module_name.isidentifier():
            raise CodeCaptureError(f"script {file_path} is not a valid module name; rename it")

    excluded = _excluded_roots()
    entries: dict[str, Path] = {}

    def add(name: str, path: Path, is_package: bool) -> None:
        root = _root_of(name, path)
        rel = PurePosixPath(*path.resolve().relative_to(root).parts).as_posix()
        previous = entries.get(rel)
        if previous is not None and previous != path.resolve():
            raise CodeCaptureError(f"two local modules map to {rel}: {previous} and {path}")
        entries[rel] = path.resolve()
        # parent packages' __init__.py, so the dotted import works in the worker
        parts = name.split(".")
        for i in range(1, len(parts) if not is_package else len(parts)):
            parent = ".".join(parts[:i])
            found = _find(parent)
            if found and found[0].name == "__init__.py":
                prel = PurePosixPath(*found[0].resolve().relative_to(root).parts).as_posix()
                entries[prel] = found[0].resolve()

    seen: set[str] = set()
    queue: list[tuple[str, Path, bool]] = [(module_name, file_path, file_path.name == "__init__.py")]
    while queue:
        name, path, is_package = queue.pop()
        if name in seen:
            continue
        seen.add(name)
        add(name, path, is_package)
        for imported in sorted(_imports_of(path.read_text(encoding="utf-8"), str(path), name, is_package)):
            if imported in seen or imported.split(".")[0] in sys.stdlib_module_names:
                continue
            if imported == "satchel" or imported.startswith("satchel."):
                continue
            found = _find(imported)
            if found is None:
                continue
            ipath, ipkg = found
            if ipath.suffix == ".py" and _is_local(ipath, excluded):
                queue.append((imported, ipath, ipkg))

    data = _deterministic_zip(entries)
    return CodePackage(data=data, module=module_name, qualname=qualname, files=tuple(sorted(entries)))


def _deterministic_zip(entries: dict[str, Path]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for rel in sorted(entries):
            info = zipfile.ZipInfo(rel, date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3
            info.external_attr = (0o100644 & 0xFFFF) << 16
            zf.writestr(info, entries[rel].read_bytes(), compresslevel=9)
    return buffer.getvalue()


def _check_member(info: zipfile.ZipInfo, dest: Path) -> Path:
    name = info.filename
    mode = (info.external_attr >> 16) & 0o170000
    if mode == 0o120000:
        raise UnsafeArchive(f"archive entry {name!r} is a symbolic link; links are refused")
    pure = PurePosixPath(name)
    if pure.is_absolute() or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise UnsafeArchive(f"archive entry {name!r} has an absolute path")
    if ".." in pure.parts or "\\" in name:
        raise UnsafeArchive(f"archive entry {name!r} escapes the destination ('..' or '\\\\')")
    target = (dest / Path(*pure.parts)).resolve()
    if dest.resolve() not in target.parents and target != dest.resolve():
        raise UnsafeArchive(f"archive entry {name!r} would land outside {dest}")
    return target


def extract(archive: Path, dest: Path) -> Path:
    """Extract a code zip into `dest` (created whole, via a sibling temp dir); refuse unsafe entries."""
    if dest.is_dir():
        return dest
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    if tmp.exists():
        import shutil

        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        with zipfile.ZipFile(archive) as zf:
            members = [(info, _check_member(info, tmp)) for info in zf.infolist()]
            for info, target in members:
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as out:
                    out.write(src.read())
        try:
            os.rename(tmp, dest)
        except OSError:
            if not dest.is_dir():  # somebody else won the race: fine; anything else: raise
                raise
    finally:
        if tmp.exists():
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    return dest
