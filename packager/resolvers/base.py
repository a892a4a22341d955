"""The environment-resolver interface: requested `Environment` -> pinned `Lock` -> materialized env.

Backends: `uv` (PyPI) now; `rattler` (conda) later, as a sibling module.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import ClassVar

from satchel.packager.environment import Environment


@dataclass(frozen=True)
class LockedPackage:
    """One package file, pinned: the exact file a target installs, with its sha256."""

    name: str
    version: str
    filename: str
    url: str
    sha256: str
    size: int | None = None


@dataclass(frozen=True)
class Lock:
    """A resolved environment. `env_id` is derived from what gets installed, nothing else."""

    resolver: str
    python: str  # "major.minor" the lock was resolved for
    platform: str  # e.g. "linux-x86_64"
    packages: tuple[LockedPackage, ...]
    runtime_requirements: tuple[str, ...] = ()
    requested: Environment = field(default_factory=Environment)

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
        return {
            "resolver": self.resolver,
            "python": self.python,
            "platform": self.platform,
            "env_id": self.env_id,
            "requested": self.requested.to_dict(),
            "runtime_requirements": list(self.runtime_requirements),
            "packages": [asdict(p) for p in self.packages],
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> Lock:
        return cls(
            resolver=data["resolver"],
            python=data["python"],
            platform=data["platform"],
            packages=tuple(LockedPackage(**p) for p in data["packages"]),
            runtime_requirements=tuple(data.get("runtime_requirements", ())),
            requested=Environment.from_dict(data["requested"]),
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
    def materialize(self, lock: Lock, files: Mapping[str, Path], dest: Path, interpreter: Path) -> None:
        """Build the environment at `dest` from local package files only (`files`: sha256 -> path),
        with bytecode compiled. Never reaches a package index."""
