"""Find Python interpreters installed on this machine, through uv's discovery.

Interpreters always come from the machine (OS packages, pyenv, python.org, uv-managed installs):
uv is never allowed to download one. pyenv is handled explicitly: its shims only work for the
versions selected with `pyenv global/local`, so `<pyenv root>/versions/*/bin` is put ahead of PATH
for discovery, newest patch release first.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
import threading
from pathlib import Path

from satchel.core.errors import InterpreterNotFound

_lock = threading.Lock()
_found: dict[str, Path] = {}
_versions: list[str] | None = None

# pyenv "versions" that cannot serve as a Python 3 interpreter for uv (it rejects Python 2).
_NOT_PY3 = re.compile(r"^(?:2[.\d]|pypy2|jython|ironpython|stackless-2|activepython-2)", re.IGNORECASE)
_FAILED_AT = re.compile(r"Failed to (?:inspect|query) Python interpreter.*? at `([^`]+)`")


def machine_platform() -> str:
    """This machine's OS and architecture as Satchel names them in locks: "linux-x86_64",
    "macos-arm64", "windows-amd64"."""
    system = {"darwin": "macos", "win32": "windows", "cygwin": "windows"}.get(sys.platform, sys.platform)
    if system.startswith("linux"):
        system = "linux"
    machine = platform.machine().lower() or "unknown"
    machine = {"aarch64": "arm64"}.get(machine, machine) if system == "macos" else machine
    return f"{system}-{machine}"


def pyenv_root() -> Path | None:
    value = os.environ.get("PYENV_ROOT")
    root = Path(value).expanduser() if value else Path.home() / ".pyenv"
    return root if (root / "versions").is_dir() else None


def _version_key(name: str) -> tuple:
    """Sort key for pyenv version directory names: numeric parts, so 3.11.10 > 3.11.9."""
    parts = re.findall(r"\d+|[a-zA-Z]+", name)
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts)


def pyenv_bin_dirs() -> list[Path]:
    """`<pyenv root>/versions/*/bin` of Python 3 installs, newest first (empty without pyenv)."""
    root = pyenv_root()
    if root is None:
        return []
    dirs = []
    for entry in (root / "versions").iterdir():
        if entry.name.startswith(".") or _NOT_PY3.match(entry.name):
            continue
        bin_dir = entry / ("Scripts" if os.name == "nt" else "bin")
        if bin_dir.is_dir():
            dirs.append(bin_dir)
    return sorted(dirs, key=lambda d: _version_key(d.parent.name), reverse=True)


def discovery_path(exclude: set[str] = frozenset()) -> str:
    """PATH for uv's interpreter discovery: pyenv's real version directories first."""
    parts = [str(d) for d in pyenv_bin_dirs()]
    parts += [p for p in os.environ.get("PATH", "").split(os.pathsep) if p]
    seen: set[str] = set()
    result = []
    for part in parts:
        if part in seen or part in exclude:
            continue
        seen.add(part)
        result.append(part)
    return os.pathsep.join(result)


def _run_discovery(args: list[str]) -> subprocess.CompletedProcess:
    """Run a uv discovery command; when uv trips over an unusable interpreter on the search path
    (a Python 2, a broken shim), drop that directory and try again."""
    from satchel.packager.resolvers.uv import run_uv

    excluded: set[str] = set()
    while True:
        env = {"PATH": discovery_path(excluded)}
        proc = run_uv(args, env=env)
        if proc.returncode == 0:
            return proc
        match = _FAILED_AT.search(proc.stderr)
        if match is None or len(excluded) >= 10:
            return proc
        bad_dir = str(Path(match.group(1)).parent)
        if bad_dir in excluded:
            return proc
        excluded.add(bad_dir)


def _major_minor(version: str) -> str:
    match = re.match(r"^\s*(\d+)\.(\d+)", str(version))
    if not match:
        raise ValueError(f"expected a Python version like '3.11', got {version!r}")
    return f"{match.group(1)}.{match.group(2)}"


def available_versions() -> list[str]:
    """The CPython "major.minor" versions installed on this machine, oldest first."""
    global _versions
    with _lock:
        if _versions is not None:
            return list(_versions)
    proc = _run_discovery(
        ["python", "list", "--only-installed", "--output-format", "json", "--no-config", "--color", "never"]
    )
    found: set[tuple[int, int]] = set()
    if proc.returncode == 0:
        try:
            entries = json.loads(proc.stdout or "[]")
        except json.JSONDecodeError:
            entries = []
        for entry in entries:
            if str(entry.get("implementation", "")).lower() != "cpython":
                continue
            if entry.get("variant", "default") not in ("default", None):
                continue  # free-threaded and debug builds have other ABIs
            parts = entry.get("version_parts") or {}
            try:
                found.add((int(parts["major"]), int(parts["minor"])))
            except (KeyError, TypeError, ValueError):
                try:
                    major, minor = _major_minor(entry.get("version", "")).split(".")
                    found.add((int(major), int(minor)))
                except ValueError:
                    continue
    versions = [f"{a}.{b}" for a, b in sorted(found)]
    with _lock:
        _versions = versions
    return list(versions)


def find_interpreter(version: str) -> Path:
    """The path of an installed CPython `version` ("3.11"); InterpreterNotFound if there is none."""
    wanted = _major_minor(version)
    with _lock:
        if wanted in _found:
            return _found[wanted]
    proc = _run_discovery(
        [
            "python",
            "find",
            f"cpython@{wanted}",
            "--system",
            "--no-project",
            "--no-config",
            "--color",
            "never",
        ]
    )
    path = (
        Path(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0 and proc.stdout.strip() else None
    )
    if path is None or not path.exists():
        versions = available_versions()
        listed = ", ".join(versions) if versions else "none"
        raise InterpreterNotFound(
            f"Python {wanted} is not installed on this machine; found: {listed}. Install it (e.g. with "
            f"your OS packages, pyenv or `uv python install {wanted}`) or request one of those."
        )
    with _lock:
        _found[wanted] = path
    return path


def clear_cache() -> None:
    """Forget discovered interpreters (they are cached for the life of the process)."""
    global _versions
    with _lock:
        _found.clear()
        _versions = None
