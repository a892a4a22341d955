"""The `uv` resolver: PyPI requirements -> a lock of wheels -> a virtual environment.

Uses the `uv` binary shipped by the `uv` PyPI package (never one found on PATH) and never lets it
download interpreters. Resolution goes through `uv pip compile --format pylock.toml`; one wheel is
kept per package (the one this machine prefers for the requested Python). Materialization is
offline: `uv venv` plus `uv pip install --offline --no-index --require-hashes --no-deps` from a
directory of the locked files.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import ClassVar

from packaging import tags
from packaging.markers import InvalidMarker, Marker
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

from satchel.core import settings as config
from satchel.core.errors import EnvironmentBuildError, EnvironmentResolutionError
from satchel.packager import interpreters
from satchel.packager.environment import Environment
from satchel.packager.resolvers.base import Lock, LockedPackage, Progress, Resolver
from satchel.packager.resolvers.download import download
from satchel.packager.resolvers.pins import check_additions, check_requirements, satisfied_by

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    try:
        import tomli as tomllib
    except ImportError:
        tomllib = None

CHUNK = 1 << 20
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07")
# Settings from the caller's environment that would make uv look for interpreters elsewhere.
_DROPPED_ENV = ("VIRTUAL_ENV", "UV_PYTHON", "UV_MANAGED_PYTHON", "UV_SYSTEM_PYTHON", "UV_NO_CACHE")


# --- running uv ----------------------------------------------------------------------------------


def uv_binary() -> str:
    """The uv executable of the installed `uv` package."""
    try:
        from uv import find_uv_bin
    except ImportError:  # pragma: no cover - uv is a dependency
        raise EnvironmentResolutionError(
            "the `uv` Python package is not installed; install it with `pip install uv`"
        ) from None
    try:
        return find_uv_bin()
    except FileNotFoundError as exc:  # pragma: no cover
        raise EnvironmentResolutionError(
            f"the `uv` package is installed but its binary is missing: {exc}"
        ) from None


def uv_cache_dir() -> Path:
    """Satchel's own uv cache, so the user's is left alone."""
    return config.home() / "uv-cache"


def uv_environ(overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _DROPPED_ENV}
    env.update(
        {
            "UV_PYTHON_DOWNLOADS": "never",
            "UV_CACHE_DIR": str(uv_cache_dir()),
            "UV_NO_PROGRESS": "1",
            "NO_COLOR": "1",
            "PATH": interpreters.discovery_path(),
        }
    )
    if overrides:
        env.update(overrides)
    return env


def run_uv(
    args: list[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | str | None = None,
    timeout: float = 900,
) -> subprocess.CompletedProcess:
    """Run uv (never raising on a non-zero exit); `env` overrides entries of the prepared env."""
    try:
        return subprocess.run(
            [uv_binary(), *args],
            env=uv_environ(env),
            cwd=cwd,
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="replace",
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(
            [uv_binary(), *args], returncode=-1, stdout="", stderr=f"error: uv timed out after {timeout:.0f}s"
        )


def uv_error_text(stderr: str, max_lines: int = 15, max_chars: int = 1500) -> str:
    """uv's own explanation of a failure: ANSI codes and warnings removed, kept short."""
    lines: list[str] = []
    in_warning = False
    for raw in _ANSI.sub("", stderr).splitlines():
        line = raw.rstrip()
        if line.startswith("warning:"):
            in_warning = True
            continue
        if in_warning and (not line or line[:1].isspace()):
            continue
        in_warning = False
        lines.append(line)
    for index, line in enumerate(lines):
        if line.startswith("error:"):
            lines = lines[index:]
            break
    while lines and not lines[-1].strip():
        lines.pop()
    while lines and not lines[0].strip():
        lines.pop(0)
    if len(lines) > max_lines:
        lines = lines[:max_lines] + ["  ..."]
    text = "\n".join(lines) or "uv failed without an explanation"
    if len(text) > max_chars:
        text = text[: max_chars - 4] + " ..."
    return text


# --- wheel selection -----------------------------------------------------------------------------


def target_tags(python: str) -> list[tags.Tag]:
    """Wheel tags this machine accepts for CPython `python` ("3.11"), most preferred first."""
    major, minor = (int(p) for p in python.split(".")[:2])
    platforms = list(tags.platform_tags())
    interpreter = f"cp{major}{minor}"
    ordered = list(tags.cpython_tags(python_version=(major, minor), platforms=platforms))
    ordered += list(
        tags.compatible_tags(python_version=(major, minor), interpreter=interpreter, platforms=platforms)
    )
    seen: set[tags.Tag] = set()
    result = []
    for tag in ordered:
        if tag not in seen:
            seen.add(tag)
            result.append(tag)
    return result


def _marker_environment(python: str) -> dict[str, str]:
    return {"python_version": python, "python_full_version": f"{python}.0"}


def _filename_of(entry: Mapping) -> str:
    name = entry.get("name")
    if name:
        return str(name)
    url = str(entry.get("url") or entry.get("path") or "")
    return url.rstrip("/").rsplit("/", 1)[-1].split("#", 1)[0].split("?", 1)[0]


def _pick_wheel(package: Mapping, rank: Mapping[tags.Tag, int]) -> Mapping | None:
    best: tuple[int, Mapping] | None = None
    for wheel in package.get("wheels") or ():
        try:
            _, _, _, wheel_tags = parse_wheel_filename(_filename_of(wheel))
        except InvalidWheelFilename:
            continue
        score = min((rank[t] for t in wheel_tags if t in rank), default=None)
        if score is not None and (best is None or score < best[0]):
            best = (score, wheel)
    return best[1] if best else None


def parse_pylock(data: Mapping, python: str) -> list[LockedPackage]:
    """The packages of a pylock.toml document, one compatible wheel each, sorted by name."""
    rank = {tag: index for index, tag in enumerate(target_tags(python))}
    environment = _marker_environment(python)
    packages: list[LockedPackage] = []
    for package in data.get("packages") or ():
        name = str(package.get("name", "?"))
        version = str(package.get("version", "?"))
        marker = package.get("marker")
        if marker:
            try:
                if not Marker(marker).evaluate(environment):
                    continue
            except InvalidMarker:
                pass
        wheel = _pick_wheel(package, rank)
        if wheel is None:
            archive = package.get("archive")
            if archive and _filename_of(archive).endswith(".whl"):
                wheel = archive
        if wheel is None:
            if package.get("sdist") or package.get("wheels"):
                only = ", only a source distribution (sdist)" if package.get("sdist") else ""
                raise EnvironmentResolutionError(
                    f"{name} {version} has no wheel for Python {python} on "
                    f"{interpreters.machine_platform()}{only}; building packages from sdists is not "
                    f"supported yet. Pin a version of {name} that publishes wheels for this target, "
                    "or pick another Python version."
                )
            raise EnvironmentResolutionError(
                f"{name} {version} comes from a source Satchel cannot lock (a VCS checkout, a local "
                "directory or a direct URL without a wheel); only wheels from a package index are supported."
            )
        sha256 = str((wheel.get("hashes") or {}).get("sha256", "")).lower()
        url = str(wheel.get("url") or "")
        if not re.fullmatch(r"[0-9a-f]{64}", sha256) or not url:
            raise EnvironmentResolutionError(
                f"{name} {version}: the index gave no URL or sha256 for {_filename_of(wheel)}; "
                "Satchel only locks files with a known sha256."
            )
        size = wheel.get("size")
        packages.append(
            LockedPackage(
                name=str(canonicalize_name(name)),
                version=version,
                filename=_filename_of(wheel),
                url=url,
                sha256=sha256,
                size=int(size) if size is not None else None,
            )
        )
    return sorted(packages, key=lambda p: p.name)


def venv_python(env_dir: Path) -> Path:
    if os.name == "nt":  # pragma: no cover
        return Path(env_dir) / "Scripts" / "python.exe"
    return Path(env_dir) / "bin" / "python"


def _link(source: Path, target: Path) -> None:
    # a symlink first: a hard link would change the cached file's ctime, which the blob cache takes for a
    # change (packager/blobcache.py), so the next build would hash every wheel again
    try:
        os.symlink(Path(source).resolve(), target)
    except OSError:
        try:
            os.link(source, target)
        except OSError:  # pragma: no cover
            shutil.copyfile(source, target)


# --- the resolver --------------------------------------------------------------------------------


class UvResolver(Resolver):
    """PyPI environments with uv. `progress`, when given, receives one-line status messages."""

    name: ClassVar[str] = "uv"

    def __init__(self, *, progress: Progress | None = None, download_timeout: float = 60.0) -> None:
        self.progress = progress
        self.download_timeout = download_timeout

    def _say(self, message: str) -> None:
        if self.progress is not None:
            self.progress(message)

    # -- resolve ----------------------------------------------------------------------------------

    def resolve(self, env: Environment, runtime_requirements: list[str]) -> Lock:
        if env.is_conda:
            raise EnvironmentResolutionError(
                "the uv resolver builds PyPI environments only; conda packages need the rattler resolver"
            )
        runtime = check_requirements(runtime_requirements)
        base = env.base
        pinned = {p.name: p for p in base.packages} if base is not None else {}
        requirements = [*env.pypi, *runtime]
        if base is not None:
            check_additions(env.pypi, pinned, f"the base environment {base.env_id[:12]}")
            requirements = [r for r in requirements if not satisfied_by(r, pinned)]
        packages = list(pinned.values())
        if requirements:
            constraints = [f"{p.name}=={p.version}" for p in pinned.values()]
            solved = self.compile(requirements, env.python, constraints=constraints)
            packages += [p for p in solved if p.name not in pinned]
        return Lock(
            resolver=self.name,
            python=env.python,
            platform=interpreters.machine_platform(),
            packages=tuple(sorted(packages, key=lambda p: p.name)),
            runtime_requirements=runtime,
            requested=env,
            requested_id=env.request_id(runtime),
        )

    def compile(
        self, requirements: list[str], python: str, *, constraints: list[str] = ()
    ) -> list[LockedPackage]:
        """Pin `requirements` (and their dependencies) to wheels for Python `python`, within `constraints`."""
        self._say(f"resolving {len(requirements)} requirement(s) for Python {python} with uv")
        with tempfile.TemporaryDirectory(prefix="satchel-resolve-") as tmp:
            tmpdir = Path(tmp)
            (tmpdir / "requirements.in").write_text("\n".join(requirements) + "\n", encoding="utf-8")
            extra = []
            if constraints:
                (tmpdir / "constraints.txt").write_text("\n".join(constraints) + "\n", encoding="utf-8")
                extra = ["--constraint", "constraints.txt"]
            out = tmpdir / "pylock.toml"
            proc = run_uv(
                [
                    "pip",
                    "compile",
                    "requirements.in",
                    *extra,
                    "--python-version",
                    python,
                    "--format",
                    "pylock.toml",
                    "-o",
                    str(out),
                    "--no-header",
                    "--quiet",
                    "--no-python-downloads",
                    "--color",
                    "never",
                ],
                cwd=tmpdir,
            )
            if proc.returncode != 0 or not out.is_file():
                listed = ", ".join(requirements)
                pinned = (
                    f" with {len(constraints)} package(s) pinned by the base environment"
                    if constraints
                    else ""
                )
                raise EnvironmentResolutionError(
                    f"Could not resolve the environment (Python {python}: {listed}){pinned}.\n"
                    f"uv says:\n{uv_error_text(proc.stderr)}\n"
                    "Check the package names and versions on your package index, relax "
                    "conflicting pins, or check your network and index settings."
                )
            if tomllib is None:  # pragma: no cover
                raise EnvironmentResolutionError(
                    "reading uv's pylock.toml on Python 3.10 needs the `tomli` package: pip install tomli"
                )
            try:
                data = tomllib.loads(out.read_text(encoding="utf-8"))
            except tomllib.TOMLDecodeError as exc:  # pragma: no cover
                raise EnvironmentResolutionError(f"uv wrote an unreadable pylock.toml: {exc}") from None
        packages = parse_pylock(data, python)
        self._say(f"resolved {len(packages)} package(s)")
        return packages

    # -- download ---------------------------------------------------------------------------------

    def download(self, package: LockedPackage, dest: Path) -> Path:
        self._say(f"downloading {package.filename}")
        return download(package, dest, timeout=self.download_timeout)

    # -- materialize ------------------------------------------------------------------------------

    def materialize(self, lock: Lock, files: Mapping[str, Path], dest: Path, interpreter: Path) -> None:
        dest = self.check_build(lock, files, dest)

        self._say(f"creating a Python {lock.python} environment")
        proc = run_uv(
            [
                "venv",
                str(dest),
                "--python",
                str(interpreter),
                "--relocatable",
                "--no-project",
                "--no-config",
                "--no-python-downloads",
                "--quiet",
                "--color",
                "never",
            ]
        )
        if proc.returncode != 0:
            raise EnvironmentBuildError(
                f"could not create a virtual environment with {interpreter}:\n{uv_error_text(proc.stderr)}"
            )
        python = venv_python(dest)
        actual = _venv_version(dest)
        if actual is not None and actual != lock.python:
            raise EnvironmentBuildError(
                f"{interpreter} is Python {actual}, but environment {lock.env_id} is locked for Python {lock.python}"
            )
        self._say(f"installing {len(lock.packages)} package(s)")
        install_wheels(python, lock.packages, files, what=f"environment {lock.env_id}")


def install_wheels(
    python: Path, packages: Sequence[LockedPackage], files: Mapping[str, Path], *, what: str
) -> None:
    """Install locked wheels into the environment of `python` from local files only, bytecode compiled."""
    if not packages:
        return
    with tempfile.TemporaryDirectory(prefix="satchel-install-") as tmp:
        tmpdir = Path(tmp)
        links = tmpdir / "wheels"
        links.mkdir()
        lines = []
        for package in packages:
            _link(Path(files[package.sha256]), links / package.filename)
            lines.append(f"{package.name}=={package.version} --hash=sha256:{package.sha256}")
        requirements = tmpdir / "requirements.txt"
        requirements.write_text("\n".join(lines) + "\n", encoding="utf-8")
        proc = run_uv(
            [
                "pip",
                "install",
                "--python",
                str(python),
                "--offline",
                "--no-index",
                "--find-links",
                str(links),
                "--require-hashes",
                "--no-deps",
                "--no-build",
                "--compile-bytecode",
                "--no-config",
                "--color",
                "never",
                "-r",
                str(requirements),
            ],
            cwd=tmpdir,
        )
    if proc.returncode != 0:
        raise EnvironmentBuildError(
            f"could not install the packages of {what}:\n{uv_error_text(proc.stderr)}"
        )


def _venv_version(env_dir: Path) -> str | None:
    """The major.minor version in a venv's pyvenv.cfg (`version_info` written by uv, `version` by venv)."""
    try:
        text = (env_dir / "pyvenv.cfg").read_text(encoding="utf-8")
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key.strip() in ("version_info", "version"):
            match = re.match(r"\s*(\d+)\.(\d+)", value)
            if match:
                return f"{match.group(1)}.{match.group(2)}"
    return None
