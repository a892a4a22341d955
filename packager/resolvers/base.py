"""The environment-resolver interface: requested `Environment` -> pinned `Lock` -> materialized env.

Backends: `uv` (PyPI: a virtual environment over an interpreter of this machine) and `rattler` (conda:
a prefix with its own interpreter, plus PyPI wheels installed into it with uv).
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from satchel.packager.environment import Environment


@dataclass(frozen=True)
class LockedPackage:
    """One package file, pinned: the exact file a target installs, with its sha256.

    `manager` is "pip" (a wheel) or "conda" (a .conda or .tar.bz2 package); a conda package also
    carries its `subdir`, `channel`, `md5` and the repodata `record` the channel gave for it (what
    rattler's installer needs to install it again from the mirrored file alone).
    """

    name: str
    version: str
    filename: str
    url: str
    sha256: str
    size: int | None = None
    manager: str = "pip"
    md5: str | None = None
    subdir: str | None = None
    channel: str | None = None
    depends: tuple[str, ...] = ()
    record: Mapping[str, Any] | None = field(default=None, compare=False, hash=False)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["depends"] = list(self.depends)
        # a wheel's entry stays as it always was: the conda fields only where they mean something
        return {k: v for k, v in data.items() if k in _WHEEL_FIELDS or v not in (None, [], "pip")}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LockedPackage:
        known = {k: v for k, v in data.items() if k in _FIELDS}
        known["depends"] = tuple(known.get("depends") or ())
        return cls(**known)


_FIELDS = {
    "name",
    "version",
    "filename",
    "url",
    "sha256",
    "size",
    "manager",
    "md5",
    "subdir",
    "channel",
    "depends",
    "record",
}
_WHEEL_FIELDS = {"name", "version", "filename", "url", "sha256", "size"}


@dataclass(frozen=True)
class Lock:
    """A resolved environment. `env_id` is derived from what gets installed, nothing else."""

    resolver: str
    python: str  # "major.minor" the lock was resolved for
    platform: str  # e.g. "linux-x86_64"
    packages: tuple[LockedPackage, ...]
    runtime_requirements: tuple[str, ...] = ()
    requested: Environment = field(default_factory=Environment)
    channels: tuple[str, ...] = ()  # conda: the channels solved from, as URLs
    subdir: str | None = None  # conda: the platform solved for ("linux-64")
    virtual_packages: tuple[str, ...] = ()  # conda: the virtual packages solved with ("__glibc=2.36")
    requested_id: str | None = None  # `Environment.request_id` of what was asked

    @property
    def is_conda(self) -> bool:
        return self.resolver == "rattler"

    def conda_packages(self) -> tuple[LockedPackage, ...]:
        return tuple(p for p in self.packages if p.manager == "conda")

    def pypi_packages(self) -> tuple[LockedPackage, ...]:
        return tuple(p for p in self.packages if p.manager != "conda")

    @property
    def env_id(self) -> str:
        canonical = json.dumps(
            {
                "resolver": self.resolver,
                "python": self.python,
                "platform": self.platform,
                "packages": sorted([p.name.lower(), p.version, p.sha256] for p in self.packages),
            },
            sort_keys=True,
            separators=(",", ":"),
        )
        return hashlib.sha256(canonical.encode()).hexdigest()[:32]

    def to_dict(self) -> dict:
        data = {
            "resolver": self.resolver,
            "python": self.python,
            "platform": self.platform,
            "env_id": self.env_id,
            "requested": self.requested.to_dict(),
            "runtime_requirements": list(self.runtime_requirements),
            "packages": [p.to_dict() for p in self.packages],
        }
        if self.requested_id:
            data["requested_id"] = self.requested_id
        if self.is_conda:
            data.update(
                channels=list(self.channels), subdir=self.subdir, virtual_packages=list(self.virtual_packages)
            )
        return data

    @classmethod
    def from_dict(cls, data: Mapping) -> Lock:
        return cls(
            resolver=data["resolver"],
            python=data["python"],
            platform=data["platform"],
            packages=tuple(LockedPackage.from_dict(p) for p in data["packages"]),
            runtime_requirements=tuple(data.get("runtime_requirements", ())),
            requested=Environment.from_dict(data["requested"]),
            channels=tuple(data.get("channels", ())),
            subdir=data.get("subdir"),
            virtual_packages=tuple(data.get("virtual_packages", ())),
            requested_id=data.get("requested_id"),
        )


Progress = Callable[[str], None]


class Resolver(ABC):
    """Resolve, fetch and install environments of one kind of package."""

    name: ClassVar[str]

    @abstractmethod
    def resolve(self, env: Environment, runtime_requirements: list[str]) -> Lock:
        """Pin every package (user's and the worker's runtime requirements) for `env.python`."""

    @abstractmethod
    def download(self, package: LockedPackage, dest: Path) -> Path:
        """Fetch one package file from its index into `dest` (a file path), verifying its sha256."""

    @abstractmethod
    def materialize(
        self, lock: Lock, files: Mapping[str, Path], dest: Path, interpreter: Path | None
    ) -> None:
        """Build the environment at `dest` from local package files only (`files`: sha256 -> path),
        with bytecode compiled. Never reaches a package index. `interpreter` is the machine's
        interpreter for `lock.python` when `needs_interpreter`, else None (the environment brings its own)."""

    #: Whether `materialize` builds over an interpreter of this machine (a venv) rather than its own.
    needs_interpreter: ClassVar[bool] = True

    @staticmethod
    def check_build(lock: Lock, files: Mapping[str, Path], dest: Path) -> Path:
        """`dest` as a Path, after checking it is empty and that every locked package has its local file."""
        from satchel.core.errors import EnvironmentBuildError

        dest = Path(dest)
        if dest.exists() and any(dest.iterdir()):
            raise EnvironmentBuildError(
                f"cannot build an environment into {dest}: the directory is not empty"
            )
        missing = [p for p in lock.packages if p.sha256 not in files or not Path(files[p.sha256]).is_file()]
        if missing:
            names = ", ".join(f"{p.name} {p.version}" for p in missing)
            raise EnvironmentBuildError(f"cannot build environment {lock.env_id}: no local file for {names}")
        return dest
