"""`Environment`: what a function asks for (a Python version and PyPI requirements)."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

from satchel.core.errors import EnvironmentResolutionError


def _current_python() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


@dataclass(frozen=True)
class Environment:
    """The requested environment of a function.

    `python` is a "major.minor" version (default: the exporting interpreter's); `pypi` holds
    requirement strings as pip takes them ("humanize==4.12.1", "numpy>=1.26").
    """

    python: str = field(default_factory=_current_python)
    pypi: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.pypi, str):
            raise TypeError("Environment(pypi=...) takes a list of requirement strings, not one string")
        object.__setattr__(self, "pypi", tuple(self.pypi))
        for req in self.pypi:
            if not isinstance(req, str):
                raise TypeError(
                    f"Environment(pypi=...) takes requirement strings, got {type(req).__name__} {req!r}"
                )
        if not isinstance(self.python, str):
            # a float cannot say 3.10 (it is 3.1), so a version is only ever taken as a string
            note = ", and as a number 3.10 is 3.1" if isinstance(self.python, float) else ""
            raise TypeError(
                f"Environment(python=...) takes a version string such as '3.11', not "
                f"{type(self.python).__name__} {self.python!r}{note}: write it in quotes"
            )
        python = self.python
        parts = python.split(".")
        if len(parts) < 2 or not all(p.isdigit() for p in parts[:2]):
            raise ValueError(f"Environment(python={self.python!r}): expected a version like '3.11'")
        object.__setattr__(self, "python", ".".join(parts[:2]))
        for req in self.pypi:
            try:
                Requirement(req)
            except InvalidRequirement as exc:
                raise EnvironmentResolutionError(
                    f"Environment(pypi=...): {req!r} is not a valid requirement: {exc}"
                ) from None

    @classmethod
    def from_requirements(cls, path: str | Path, python: str | None = None) -> Environment:
        """Read a requirements file (one requirement a line; `#` comments and blank lines ignored)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"requirements file not found: {path}")
        reqs: list[str] = []
        for number, raw in enumerate(path.read_text().splitlines(), start=1):
            line = raw.split(" #", 1)[0].strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("-"):
                raise EnvironmentResolutionError(
                    f"{path}:{number}: options such as {line.split()[0]!r} are not supported; "
                    "list plain requirements only"
                )
            reqs.append(line)
        return cls(python=python or _current_python(), pypi=tuple(reqs))

    @classmethod
    def from_current(cls, packages: Iterable[str], python: str | None = None) -> Environment:
        """Pin exactly the versions of `packages` installed in this interpreter."""
        if isinstance(packages, str):
            packages = [packages]
        reqs = []
        for name in packages:
            try:
                version = metadata.version(name)
            except metadata.PackageNotFoundError:
                raise EnvironmentResolutionError(
                    f"Environment.from_current: package {name!r} is not installed in this interpreter "
                    f"({sys.executable})"
                ) from None
            reqs.append(f"{name}=={version}")
        return cls(python=python or _current_python(), pypi=tuple(reqs))

    def to_dict(self) -> dict:
        return {"python": self.python, "pypi": list(self.pypi)}

    @classmethod
    def from_dict(cls, data: dict) -> Environment:
        return cls(python=data["python"], pypi=tuple(data.get("pypi", ())))
