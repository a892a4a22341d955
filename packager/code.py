"""Code capture: a function's module and the local modules it imports, zipped deterministically.

"Local" means found outside the standard library and site-packages (and not Satchel itself).
A function defined in a script (`__main__`) travels with only the part of the script it needs
(`script_subset`): the worker imports that part, so the script's other top-level code (training a
model, exporting, loading and calling the bundle) never runs there.
Extraction (`extract`) is safe: it refuses absolute paths, `..` and links.
"""

from __future__ import annotations

import ast
import importlib.util
import io
import os
import site
import symtable
import sys
import sysconfig
import zipfile
from collections.abc import Iterable
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


def _check_top_level(func) -> None:
    qualname = getattr(func, "__qualname__", "")
    if "<locals>" in qualname or "<lambda>" in qualname:
        raise CodeCaptureError(
            f"{qualname!r} is defined inside another function or is a lambda; "
            "define it at module level so the worker can import it"
        )


def shipped_module(func) -> tuple[str, Path]:
    """The module name `func` is imported by in the worker, and its file; CodeCaptureError when it
    cannot be packaged (a nested function or lambda, no source file, a script with a bad name)."""
    _check_top_level(func)
    qualname = getattr(func, "__qualname__", "")
    module_name = func.__module__
    module: ModuleType | None = sys.modules.get(module_name)
    file = getattr(module, "__file__", None) if module else None
    if not file or not file.endswith(".py"):
        raise CodeCaptureError(
            f"function {qualname!r} has no source file (module {module_name!r}); define it in a .py "
            "file and import it from there"
        )
    file_path = Path(file).resolve()
    if module_name == "__main__":
        module_name = file_path.stem
        if not module_name.isidentifier():
            raise CodeCaptureError(f"script {file_path} is not a valid module name; rename it")
    return module_name, file_path


def capture(func, *, script_names: Iterable[str] = ()) -> CodePackage:
    """Package the module defining `func` and every local module it (transitively) imports.

    For a function defined in a script (`__main__`), only `script_subset` of the script is packaged;
    `script_names` are further top-level names of the script the worker needs (classes and functions
    that bound artifacts or the interface refer to). A function defined in an interactive session (a
    notebook cell, `python -c`, ...) travels as the module `session_code` generates for it.
    """
    from satchel.packager import session_code  # it builds on this module's statement analysis

    qualname = getattr(func, "__qualname__", "")
    sources: dict[Path, str] = {}  # files shipped with other text than their own
    generated: Path | None = None  # the module generated for a session's function (no such file)
    if session_code.defined_in_session(func):
        _check_top_level(func)
        module_name, text = session_code.session_module(func, script_names)
        generated = file_path = Path("/", "<session>", f"{module_name}.py")
        sources[file_path] = text
    else:
        module_name, file_path = shipped_module(func)
    if func.__module__ == "__main__" and generated is None:
        text = file_path.read_text(encoding="utf-8")
        sources[file_path] = script_subset(text, str(file_path), [qualname.split(".")[0], *script_names])

    excluded = _excluded_roots()
    entries: dict[str, Path] = {}

    def add(name: str, path: Path, is_package: bool) -> None:
        if path == generated:
            entries[path.name] = path
            return
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
        source = sources[path] if path in sources else path.read_text(encoding="utf-8")
        for imported in sorted(_imports_of(source, str(path), name, is_package)):
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

    data = _deterministic_zip(entries, sources)
    return CodePackage(data=data, module=module_name, qualname=qualname, files=tuple(sorted(entries)))


# -- the part of a script a function needs ----------------------------------------------------------


@dataclass
class _Statement:
    node: ast.stmt
    first: int  # first line (its decorators included), 1-based
    last: int
    binds: set[str]  # top-level names it assigns, imports, defines (or mutates: `x.a = 1`, `x[k] = v`)
    reads: set[str]  # top-level names it reads, at once or later (in the bodies of its functions)
    always: bool  # `from __future__ import ...`, `from m import *`, a docstring


def script_subset(source: str, filename: str, needed: Iterable[str]) -> str:
    """The statements of a script that define `needed` names, and those they need in turn, transitively.

    Everything else (expression statements such as `fn.export(...)` or `train()`, loops, `with` blocks,
    `if __name__ == "__main__":`, assignments to names the function never reads) becomes blank lines,
    so line numbers in the worker's tracebacks still match the script. A kept statement runs in the
    worker exactly as written: a global the function reads is computed there, as any import would.
    """
    try:
        tree = ast.parse(source, filename)
    except SyntaxError as exc:
        raise CodeCaptureError(f"{filename}:{exc.lineno}: cannot parse: {exc.msg}") from None
    statements = [_statement(node, filename) for node in tree.body]
    wanted = set(needed)
    for name in sorted(wanted):  # a name only a `__main__` guard defines is never defined in the worker
        guards = [st for st in statements if name in st.binds and _is_main_guard(st.node)]
        if guards and all(_is_main_guard(st.node) for st in statements if name in st.binds):
            raise CodeCaptureError(
                f'{filename}:{guards[0].first}: {name!r} is defined under `if __name__ == "__main__":`, '
                "which the worker does not run (it imports the script); define it at the top level"
            )
    keep = [False] * len(statements)
    changed = True
    while changed:
        changed = False
        for i, st in enumerate(statements):
            if not keep[i] and (st.always or st.binds & wanted):
                keep[i] = changed = True
                wanted |= st.reads

    lines = source.splitlines(keepends=True)
    out = list(lines)
    i = 0
    while i < len(statements):  # statements sharing a line (`a = 1; train()`) form one group
        j, last = i, statements[i].last
        while j + 1 < len(statements) and statements[j + 1].first <= last:
            j += 1
            last = max(last, statements[j].last)
        group = range(i, j + 1)
        first = statements[i].first
        if not all(keep[k] for k in group):
            for n in range(first, last + 1):
                out[n - 1] = "\n"
            kept = [ast.unparse(statements[k].node) for k in group if keep[k]]
            if kept:
                out[first - 1] = "; ".join(kept) + "\n"
        i = j + 1
    return "".join(out)


def _is_main_guard(node: ast.stmt) -> bool:
    """`if __name__ == "__main__":` (either way round)."""
    if not isinstance(node, ast.If) or not isinstance(node.test, ast.Compare):
        return False
    test = node.test
    if len(test.ops) != 1 or not isinstance(test.ops[0], ast.Eq):
        return False
    sides = [test.left, test.comparators[0]]
    names = [s for s in sides if isinstance(s, ast.Name) and s.id == "__name__"]
    consts = [s for s in sides if isinstance(s, ast.Constant) and s.value == "__main__"]
    return len(names) == 1 and len(consts) == 1


def _statement(node: ast.stmt, filename: str) -> _Statement:
    first = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", ()))])
    always = (
        isinstance(node, ast.ImportFrom)
        and (node.module == "__future__" or any(alias.name == "*" for alias in node.names))
    ) or (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))
    # the statement alone: at its top level, what it reads and binds; in its functions and classes,
    # the names they leave to the module (symtable resolves their scopes as the compiler does)
    table = symtable.symtable(ast.unparse(node), filename, "exec")
    binds, reads = set(), set()
    for sym in table.get_symbols():
        if sym.is_assigned() or sym.is_imported() or sym.is_namespace():
            binds.add(sym.get_name())
        if sym.is_referenced():
            reads.add(sym.get_name())
    stack = list(table.get_children())
    while stack:
        child = stack.pop()
        stack.extend(child.get_children())
        reads.update(sym.get_name() for sym in child.get_symbols() if sym.is_global())
    targets = []
    if isinstance(node, ast.Assign):
        targets = node.targets
    elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
        targets = [node.target]
    for target in targets:
        while isinstance(target, (ast.Attribute, ast.Subscript)):
            target = target.value
        if isinstance(target, ast.Name):
            binds.add(target.id)
    return _Statement(node, first, node.end_lineno or node.lineno, binds, reads, always)


def _deterministic_zip(entries: dict[str, Path], sources: dict[Path, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for rel in sorted(entries):
            info = zipfile.ZipInfo(rel, date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3
            info.external_attr = (0o100644 & 0xFFFF) << 16
            path = entries[rel]
            data = sources[path].encode("utf-8") if path in sources else path.read_bytes()
            zf.writestr(info, data, compresslevel=9)
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
