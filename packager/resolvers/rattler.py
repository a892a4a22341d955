"""The `rattler` resolver: conda packages (solved by py-rattler) plus PyPI wheels (by uv) -> a conda prefix.

Resolution, as pixi mixes the two: the conda specs are solved for the target platform (virtual packages
detected or given); then the PyPI requirements (the user's and the worker's own) are resolved with uv for
the solved Python, the Python distributions the conda packages install counting as installed (pinned, and
not installed again). A requirement a conda package already meets is not sent to uv at all.

Materialization never reaches a channel or an index: rattler's installer (and its package cache under
SATCHEL_HOME/conda/pkgs) installs the conda packages from the mirrored files, presented as a one-off local
channel; the wheels go in with uv, offline (bytecode compiled); then the conda packages' bytecode is
compiled, or linked from a per-package cache of it (conda_bytecode.py). The interpreter is the prefix's own
`python` package.
"""

from __future__ import annotations

import asyncio
import difflib
import json
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from packaging.utils import canonicalize_name

from satchel.core import settings as config
from satchel.core.errors import EnvironmentBuildError, EnvironmentResolutionError
from satchel.core.extras import needs_extra
from satchel.packager import interpreters
from satchel.packager.environment import Environment
from satchel.packager.resolvers import conda_bytecode
from satchel.packager.resolvers.base import Lock, LockedPackage, Progress, Resolver
from satchel.packager.resolvers.download import download
from satchel.packager.resolvers.pins import check_additions, check_requirements, satisfied_by
from satchel.packager.resolvers.uv import UvResolver, install_wheels

T = TypeVar("T")
FEATURE = "conda environments"
# conda's platform names (subdirs) and Satchel's (interpreters.machine_platform)
_PLATFORMS = {
    "linux-64": "linux-x86_64",
    "linux-aarch64": "linux-aarch64",
    "linux-ppc64le": "linux-ppc64le",
    "osx-64": "macos-x86_64",
    "osx-arm64": "macos-arm64",
    "win-64": "windows-amd64",
}
_SUBDIRS = {machine: subdir for subdir, machine in _PLATFORMS.items()}


def _rattler() -> Any:
    with needs_extra("conda", FEATURE):
        import rattler
    return rattler


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run one of py-rattler's coroutines to completion, also from inside a running event loop (Jupyter)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coroutine)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="satchel-rattler")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def machine_subdir() -> str:
    machine = interpreters.machine_platform()
    try:
        return _SUBDIRS[machine]
    except KeyError:
        raise EnvironmentResolutionError(
            f"this machine ({machine}) has no conda platform Satchel knows; give Environment(platform=...)"
        ) from None


def satchel_platform(subdir: str) -> str:
    try:
        return _PLATFORMS[subdir]
    except KeyError:
        known = ", ".join(_PLATFORMS)
        raise EnvironmentResolutionError(f"unknown conda platform {subdir!r}; known: {known}") from None


def conda_subdir(platform: str) -> str:
    """The conda platform (subdir) of one of Satchel's platforms: "linux-x86_64" -> "linux-64"."""
    try:
        return _SUBDIRS[platform]
    except KeyError:
        known = ", ".join(_SUBDIRS)
        raise EnvironmentResolutionError(
            f"platform {platform!r} has no conda platform; known: {known}"
        ) from None


def channel_url(channel: str) -> str:
    """A channel as a URL with a trailing slash: a name (under SATCHEL_CONDA_CHANNEL_ALIAS), a URL, or a path."""
    if "://" in channel:
        return channel.rstrip("/") + "/"
    if channel.startswith((".", "/", "~")) or os.sep in channel and Path(channel).expanduser().exists():
        path = Path(channel).expanduser().resolve()
        if not path.is_dir():
            raise EnvironmentResolutionError(
                f"conda channel {channel!r}: the directory {path} does not exist; give an existing channel "
                "directory (one with noarch/repodata.json), an https:// URL or a channel name"
            )
        return path.as_uri() + "/"
    return config.conda_channel_alias() + channel.strip("/") + "/"


def _check_local_channel(url: str) -> None:
    if not url.startswith("file:"):
        return
    path = Path(url[len("file://") :])
    if not (path / "noarch" / "repodata.json").is_file():
        subdirs = (
            sorted(p.name for p in path.iterdir() if (p / "repodata.json").is_file()) if path.is_dir() else []
        )
        have = f" (it has repodata for {', '.join(subdirs)})" if subdirs else ""
        raise EnvironmentResolutionError(
            f"{path} is not a conda channel: it has no noarch/repodata.json{have}. Index it (e.g. "
            "`rattler-index fs` or `conda index`), or check the path."
        )


def _record_dict(record: Any) -> dict[str, Any]:
    data = json.loads(record.to_json())
    return {k: v for k, v in data.items() if k not in ("url", "channel", "fn")}


def _locked(record: Any) -> LockedPackage:
    data = json.loads(record.to_json())
    return LockedPackage(
        name=record.name.normalized,
        version=str(record.version),
        filename=record.file_name,
        url=record.url,
        sha256=data["sha256"],
        size=data.get("size"),
        manager="conda",
        md5=data.get("md5"),
        subdir=data.get("subdir"),
        channel=str(data.get("channel") or "").rstrip("/") + "/",
        depends=tuple(data.get("depends") or ()),
        record=_record_dict(record),
    )


def canonical_spec(spec: str) -> str:
    """`spec` in the strict form rattler's solver takes: conda's "name=version=build" (what `conda env
    export` writes) becomes "name ==version build"; anything unparsable is one error naming it."""
    rattler = _rattler()
    try:
        rattler.MatchSpec(spec, strict=True)
        return spec
    except Exception as exc:  # noqa: BLE001 - InvalidMatchSpecError has no importable base here
        strict = exc
    if not any(c.isspace() for c in spec):  # the lenient parser reads spaces too freely ("num py" is "num")
        try:
            canonical = str(rattler.MatchSpec(spec))
            rattler.MatchSpec(canonical, strict=True)
            return canonical
        except Exception:  # noqa: BLE001 - reported with the strict parser's reason below
            pass
    raise EnvironmentResolutionError(f"Environment(conda=...): {spec!r} is not a conda match spec: {strict}")


def _spec_name(spec: str) -> str:
    name = _rattler().MatchSpec(canonical_spec(spec)).name
    return name.normalized if name is not None else spec


def _python_dists(records: Sequence[LockedPackage]) -> dict[str, LockedPackage]:
    """The PyPI names the conda packages provide: a package that depends on python is a Python
    distribution of its own name (conda-forge's convention), as are the `purls` a channel declares."""
    provided: dict[str, LockedPackage] = {}
    for package in records:
        purls = (package.record or {}).get("purls") or ()
        names = [p.split("/", 1)[1].split("@", 1)[0] for p in purls if p.startswith("pkg:pypi/")]
        if not names and any(dep.split()[0] == "python" for dep in package.depends):
            names = [package.name]
        for name in names:
            provided[str(canonicalize_name(name))] = package
    return provided


class RattlerResolver(Resolver):
    """conda environments with py-rattler (and uv for their PyPI part). `progress` receives status lines."""

    name: ClassVar[str] = "rattler"
    needs_interpreter: ClassVar[bool] = False

    def __init__(self, *, progress: Progress | None = None, download_timeout: float = 60.0) -> None:
        self.progress = progress
        self.download_timeout = download_timeout
        self._uv = UvResolver(progress=progress, download_timeout=download_timeout)

    def _say(self, message: str) -> None:
        if self.progress is not None:
            self.progress(message)

    # -- resolve ----------------------------------------------------------------------------------

    def resolve(self, env: Environment, runtime_requirements: list[str]) -> Lock:
        rattler = _rattler()
        runtime = check_requirements(runtime_requirements)
        base = env.base
        if base is not None and not base.is_conda:
            raise EnvironmentResolutionError(
                f"the base environment {base.env_id[:12]} is a PyPI environment (a virtual environment over "
                "this machine's Python); conda packages can only be added to a conda environment. Extend it "
                "with pypi=[...] only, or start from a conda environment."
            )
        subdir = env.platform or (base.subdir if base is not None else None) or machine_subdir()
        platform = satchel_platform(subdir)
        channels = [channel_url(c) for c in env.channels]
        virtual = self._virtual_packages(env, subdir)
        base_conda = base.conda_packages() if base is not None else ()
        pinned = {p.name: p for p in base_conda}

        specs = [canonical_spec(s) for s in env.conda]
        names = {_spec_name(s) for s in specs}
        if base is None and "python" not in names:
            specs.append(f"python {env.python}.*")
        for spec in specs:
            check_additions_conda(spec, pinned, base)
        if base is not None and all(self._met(spec, pinned) for spec in specs):
            conda = list(base_conda)  # the base already has every addition: nothing to solve
        else:
            conda = self._solve(rattler, channels, specs, subdir, virtual, base_conda)
        python = next((p for p in conda if p.name == "python"), None)
        if python is None:
            raise EnvironmentResolutionError(
                "the solved conda environment has no python package; add python to Environment(conda=[...])"
            )
        python_version = ".".join(python.version.split(".")[:2])

        pip = self._resolve_pypi(env, runtime, conda, base, python_version, subdir)
        packages = sorted([*conda, *pip], key=lambda p: (p.manager, p.name))
        return Lock(
            resolver=self.name,
            python=python_version,
            platform=platform,
            packages=tuple(packages),
            runtime_requirements=runtime,
            requested=env,
            channels=tuple(channels) if channels else (base.channels if base is not None else ()),
            subdir=subdir,
            virtual_packages=tuple(virtual),
            requested_id=env.request_id(runtime),
        )

    def _virtual_packages(self, env: Environment, subdir: str) -> list[str]:
        """The virtual packages to solve with: given ones, else this machine's when solving for it."""
        rattler = _rattler()
        detected: dict[str, str] = {}
        if subdir == machine_subdir():
            for package in rattler.VirtualPackage.detect():
                generic = package.into_generic()
                detected[generic.name.normalized] = str(generic)
        for given in env.virtual_packages:
            name = given.split("=", 1)[0].strip()
            if not name.startswith("__"):
                raise EnvironmentResolutionError(
                    f"Environment(virtual_packages=...): {given!r} is not a virtual package (those start with "
                    "__, e.g. '__glibc=2.28', '__cuda=12.2')"
                )
            detected[name] = given
        return sorted(detected.values())

    @staticmethod
    def _met(spec: str, pinned: Mapping[str, LockedPackage]) -> bool:
        rattler = _rattler()
        match = rattler.MatchSpec(spec)
        name = match.name.normalized if match.name is not None else None
        have = pinned.get(name) if name else None
        return have is not None and match.matches(_package_record(have))

    def _solve(
        self,
        rattler: Any,
        channels: list[str],
        specs: list[str],
        subdir: str,
        virtual: list[str],
        base: Sequence[LockedPackage],
    ) -> list[LockedPackage]:
        for url in channels:  # only when solving: extending a base may need no channel at all
            _check_local_channel(url)
        self._say(f"solving {len(specs)} conda spec(s) for {subdir} from {', '.join(channels)}")
        gateway = rattler.Gateway(cache_dir=config.conda_dir() / "repodata")
        virtual_packages = [_generic(rattler, v) for v in virtual]
        pinned = _repodata_records(rattler, base)
        # pinned packages are only kept when asked for: ask for every base package by name
        all_specs = specs + [p.name for p in base if p.name not in {_spec_name(s) for s in specs}]
        try:
            records = run(
                rattler.solve(
                    sources=[rattler.Channel(c) for c in channels],
                    specs=all_specs,
                    gateway=gateway,
                    platforms=[subdir, "noarch"],
                    virtual_packages=virtual_packages,
                    pinned_packages=pinned or None,
                )
            )
        except Exception as exc:  # noqa: BLE001 - SolverError, GatewayError: explained below
            raise self._explain(rattler, exc, channels, specs, subdir, gateway, base) from None
        locked = [_locked(r) for r in records]
        self._say(f"solved {len(locked)} conda package(s)")
        return sorted(locked, key=lambda p: p.name)

    def _explain(
        self,
        rattler: Any,
        exc: Exception,
        channels: list[str],
        specs: list[str],
        subdir: str,
        gateway: Any,
        base: Sequence[LockedPackage],
    ) -> EnvironmentResolutionError:
        """rattler's failure as one error that says what is wrong and what to do."""
        message = str(exc).strip()
        listed = ", ".join(channels)
        kind = type(exc).__name__
        if kind == "GatewayError" or "repodata" in message and kind != "SolverError":
            first = message.splitlines()[0] if message else kind
            causes = [line.removeprefix("Caused by:").strip() for line in message.splitlines()[1:]]
            why = f" ({causes[-1]})" if causes else ""
            return EnvironmentResolutionError(
                f"could not read conda channel(s) {listed}: {first}{why}. Check the channel's name, URL or "
                "path, and your network."
            )
        try:
            platform_names = {
                n.normalized for n in run(gateway.names([rattler.Channel(c) for c in channels], [subdir]))
            }
            names = {
                n.normalized
                for n in run(gateway.names([rattler.Channel(c) for c in channels], [subdir, "noarch"]))
            }
        except Exception:  # noqa: BLE001 - the explanation is best effort
            platform_names, names = set(), set()
        if subdir != "noarch" and not platform_names and names is not None:
            return EnvironmentResolutionError(
                f"conda channel(s) {listed} have no packages for platform {subdir}: nothing there can provide "
                "python for it. Pick a platform the channel serves, or a channel that serves this one."
            )
        lines = [line.rstrip() for line in message.splitlines() if line.strip()]
        missing = [
            line.split("No candidates were found for", 1)[1].strip().rstrip(".")
            for line in lines
            if "No candidates were found for" in line
        ]
        hints = []
        for spec in missing:
            name = spec.split()[0]
            if name not in names:
                close = difflib.get_close_matches(name, sorted(names), n=3, cutoff=0.6)
                hint = f"; did you mean {', '.join(close)}?" if close else ""
                hints.append(f"no package named {name!r} in {listed}{hint}")
            else:
                hints.append(
                    f"no version of {name} in {listed} matches {spec!r} for {subdir}"
                    + _versions_there(rattler, gateway, channels, subdir, name)
                )
        pinned = {p.name: p for p in base}
        for line in lines:  # "humanize 4.12.1 is locked, but another version is required"
            if "is locked" in line:
                locked_name = line.split("─", 1)[-1].strip().split()[0]
                if locked_name in pinned:
                    wanted = next((s for s in specs if _spec_name(s) == locked_name), locked_name)
                    hints.append(
                        f"{wanted!r} conflicts with {locked_name} {pinned[locked_name].version}, pinned by the base "
                        "environment (its packages stay exactly as they are)"
                    )
        if len(lines) > 12:
            lines = lines[:12] + ["  ..."]
        explanation = "\n".join(lines)
        head = "; ".join(hints) if hints else "the conda request cannot be satisfied"
        return EnvironmentResolutionError(
            f"Could not solve the conda environment ({', '.join(specs)} for {subdir}): {head}.\n"
            f"rattler says:\n{explanation}\n"
            "Check the package names and versions in the channel, or relax conflicting pins."
        )

    def _resolve_pypi(
        self,
        env: Environment,
        runtime: tuple[str, ...],
        conda: Sequence[LockedPackage],
        base: Lock | None,
        python: str,
        subdir: str,
    ) -> list[LockedPackage]:
        """The wheels the PyPI part needs on top of the conda packages (and the base's wheels)."""
        provided: dict[str, Any] = dict(_python_dists(conda))
        base_pip = {p.name: p for p in base.pypi_packages()} if base is not None else {}
        provided.update(base_pip)
        if base is not None:
            check_additions(env.pypi, provided, f"the base environment {base.env_id[:12]}")
        wanted = [r for r in (*env.pypi, *runtime) if not satisfied_by(r, provided)]
        if not wanted:
            return list(base_pip.values())
        if subdir != machine_subdir():
            # wheels are picked by this machine's tags (uv.target_tags): they would not fit another platform
            raise EnvironmentResolutionError(
                f"the PyPI part ({', '.join(wanted)}) can only be resolved for this machine's platform "
                f"({machine_subdir()}), not {subdir}: resolve on a {subdir} machine, or take these packages "
                "from the conda channel instead (conda=[...])"
            )
        constraints = [f"{name}=={p.version}" for name, p in sorted(provided.items())]
        solved = self._uv.compile(wanted, python, constraints=constraints)
        return [*base_pip.values(), *(p for p in solved if p.name not in provided)]

    # -- download ---------------------------------------------------------------------------------

    def download(self, package: LockedPackage, dest: Path) -> Path:
        self._say(f"downloading {package.filename}")
        return download(package, dest, timeout=self.download_timeout)

    # -- materialize ------------------------------------------------------------------------------

    def materialize(
        self, lock: Lock, files: Mapping[str, Path], dest: Path, interpreter: Path | None
    ) -> None:
        rattler = _rattler()
        dest = self.check_build(lock, files, dest)
        conda = lock.conda_packages()
        self._say(f"installing {len(conda)} conda package(s)")
        with tempfile.TemporaryDirectory(prefix="satchel-conda-mirror-") as tmp:
            records = _mirror_channel(rattler, Path(tmp), conda, files)
            try:
                run(
                    rattler.install(
                        records,
                        target_prefix=dest,
                        cache_dir=config.conda_dir() / "pkgs",
                        show_progress=False,
                        execute_link_scripts=False,
                    )
                )
            except Exception as exc:  # noqa: BLE001 - InstallerError and its causes
                raise EnvironmentBuildError(
                    f"could not install the conda packages of environment {lock.env_id}: {exc}"
                ) from None
        python = dest / "bin" / "python"
        if not python.exists():
            raise EnvironmentBuildError(
                f"environment {lock.env_id} installed no bin/python: its python package is not an interpreter"
            )
        self._say(f"installing {len(lock.pypi_packages())} wheel(s)")
        install_wheels(python, lock.pypi_packages(), files, what=f"environment {lock.env_id}")
        _compile_bytecode(python, dest, lock)


def _versions_there(rattler: Any, gateway: Any, channels: list[str], subdir: str, name: str) -> str:
    try:
        found = run(
            gateway.query([rattler.Channel(c) for c in channels], [subdir, "noarch"], [name], recursive=False)
        )
    except Exception:  # noqa: BLE001 - the explanation is best effort
        return ""
    versions = sorted({r.version for group in found for r in group})
    return f" (there: {', '.join(str(v) for v in versions[-8:])})" if versions else ""


def check_additions_conda(spec: str, pinned: Mapping[str, LockedPackage], base: Lock | None) -> None:
    """A conda addition naming a base package at a version it does not have: one error naming both."""
    if base is None:
        return
    name = _spec_name(spec)
    have = pinned.get(name)
    if have is not None and not RattlerResolver._met(spec, pinned):
        raise EnvironmentResolutionError(
            f"{spec!r} conflicts with {name} {have.version}, pinned by the base environment "
            f"{base.env_id[:12]}: the base's packages stay exactly as they are. Ask for a version "
            f"{name} {have.version} satisfies, or extend another base."
        )


def _generic(rattler: Any, text: str) -> Any:
    name, _, rest = text.partition("=")
    version, _, build = rest.partition("=")
    return rattler.GenericVirtualPackage(
        rattler.PackageName(name), rattler.Version(version or "0"), rattler.BuildString(build or "0")
    )


def _package_record(package: LockedPackage) -> Any:
    rattler = _rattler()
    return _repodata_record(rattler, package)


def _repodata_record(rattler: Any, package: LockedPackage) -> Any:
    return _repodata_records(rattler, [package])[0]


def _repodata_records(rattler: Any, packages: Sequence[LockedPackage]) -> list[Any]:
    """The RepoDataRecords of locked conda packages, rebuilt from the records the lock kept: all from one
    one-off channel (one per package made extending a base cost a directory per base package)."""
    if not packages:
        return []
    with tempfile.TemporaryDirectory(prefix="satchel-record-") as tmp:
        return _mirror_channel(rattler, Path(tmp), packages, None)


def _mirror_channel(
    rattler: Any, root: Path, packages: Sequence[LockedPackage], files: Mapping[str, Path] | None
) -> list[Any]:
    """A one-off local channel at `root` of `packages` (linked from `files` when given) and their records."""
    repodata: dict[str, Any] = {"info": {}, "packages": {}, "packages.conda": {}}
    for package in packages:
        record = dict(package.record or {})
        if not record:
            raise EnvironmentBuildError(
                f"the lock of {package.filename} has no conda record to install it from"
            )
        key = "packages.conda" if package.filename.endswith(".conda") else "packages"
        repodata[key][package.filename] = record
        if files is not None:
            target = root / (package.subdir or record.get("subdir") or "noarch") / package.filename
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                # a symbolic link: a hard link would change the cached blob's ctime, so the blob cache
                # would take it for changed and hash it again on the next lookup
                os.symlink(Path(files[package.sha256]).resolve(), target)
            except OSError:
                shutil.copyfile(files[package.sha256], target)
    (root / "repodata.json").write_text(json.dumps(repodata), encoding="utf-8")
    records = rattler.RepoData.from_path(root / "repodata.json").into_repo_data(rattler.Channel(str(root)))
    order = {p.filename: i for i, p in enumerate(packages)}
    return sorted(records, key=lambda r: order.get(r.file_name, 0))


def _compile_bytecode(python: Path, prefix: Path, lock: Lock) -> None:
    """The bytecode of the conda packages' modules: linked from SATCHEL_HOME/conda/pyc where an environment
    with the same package and interpreter compiled it before, else compiled by the prefix's interpreter and
    kept there (conda_bytecode.py says how and why)."""
    conda = lock.conda_packages()
    interpreter = next((p.sha256[:16] for p in conda if p.name == "python"), lock.python)
    root = config.conda_dir() / "pyc"
    wanted: dict[str, str] = {}
    for package in conda:
        cached = root / f"{package.sha256}-{interpreter}"
        if cached.is_dir():
            conda_bytecode.link(str(cached), str(prefix))
        else:
            wanted[package.sha256] = str(cached)
    if not wanted:
        return
    proc = subprocess.run(
        [str(python), "-I", conda_bytecode.__file__],  # -I: not this package's directory on sys.path
        input=json.dumps({"prefix": str(prefix), "packages": wanted}),
        capture_output=True,
        text=True,
        timeout=900,
    )
    if proc.returncode != 0:
        raise EnvironmentBuildError(
            f"compiling the bytecode of environment {lock.env_id} failed: {proc.stderr[-500:]}"
        )
