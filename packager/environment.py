"""`Environment`: what a function asks for: a Python version, PyPI requirements, conda packages and their
channels, or another environment extended (`Environment.of(ref).extend(...)`)."""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packaging.requirements import InvalidRequirement, Requirement

from satchel.core.errors import EnvironmentResolutionError

if TYPE_CHECKING:
    from satchel.packager.resolvers.base import Lock

DEFAULT_CHANNELS = ("conda-forge",)


def _current_python() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


@dataclass(frozen=True)
class Environment:
    """The requested environment of a function.

    `python` is a "major.minor" version (default: the exporting interpreter's); `pypi` holds
    requirement strings as pip takes them ("humanize==4.12.1", "numpy>=1.26"). `conda` holds conda
    match specs ("numpy=2.1", "scikit-learn>=1.5"), solved from `channels` (names such as
    "conda-forge", https:// URLs or local directories; default conda-forge) for `platform` (a conda
    subdir such as "linux-64"; default this machine's), with `virtual_packages` ("__glibc=2.28")
    given instead of detected. With `conda`, the interpreter is the environment's own `python`
    package; without, the environment is a virtual environment over an interpreter of this machine.
    `base` is a resolved environment this one extends (see `extend`): its packages stay pinned.
    """

    python: str = field(default_factory=_current_python)
    pypi: tuple[str, ...] = ()
    conda: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    platform: str | None = None
    virtual_packages: tuple[str, ...] = ()
    base: Lock | None = None

    def __post_init__(self) -> None:
        for name in ("pypi", "conda", "channels", "virtual_packages"):
            value = getattr(self, name)
            if isinstance(value, str):
                what = "requirement strings" if name == "pypi" else "strings"
                raise TypeError(
                    f"Environment({name}=...) takes a list of {what}, not one string: [{value!r}]"
                )
            if value is None:
                value = ()
            object.__setattr__(self, name, tuple(value))
            for item in getattr(self, name):
                if not isinstance(item, str):
                    what = "requirement strings" if name == "pypi" else "strings"
                    raise TypeError(
                        f"Environment({name}=...) takes {what}, got {type(item).__name__} {item!r}"
                    )
        if self.platform is not None and not isinstance(self.platform, str):
            raise TypeError(
                f"Environment(platform=...) takes a conda platform such as 'linux-64', not {self.platform!r}"
            )
        if self.base is not None and not callable(getattr(self.base, "conda_packages", None)):
            raise TypeError(
                f"Environment(base=...) takes a resolved Lock, not {type(self.base).__name__}; to extend a "
                "bundle's, a task's or a named environment, use Environment.of(source).extend(...)"
            )
        if self.conda and not self.channels:
            object.__setattr__(self, "channels", DEFAULT_CHANNELS)
        for spec in self.conda:
            if not spec.strip():
                raise EnvironmentResolutionError("Environment(conda=...): an empty package spec")
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

    def __repr__(self) -> str:
        from satchel.packager.summary import environment_repr

        return environment_repr(self)

    def _repr_html_(self) -> str:
        from satchel.packager.summary import environment_html

        return environment_html(self)

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

    @property
    def is_conda(self) -> bool:
        """Whether this environment is a conda prefix (it asks for conda packages, or extends one)."""
        return bool(self.conda) or (self.base is not None and self.base.is_conda)

    def extend(
        self, *, conda: Iterable[str] = (), pypi: Iterable[str] = (), channels: Iterable[str] = ()
    ) -> Environment:
        """This environment plus `conda` and `pypi` additions; every package it resolves to stays pinned.

        The base must be resolved (`Environment.of(...)`, `Environment.named(...)`); extending a request
        that is not resolved yet just adds to it.
        """
        conda, pypi, channels = (
            _strings("conda", conda),
            _strings("pypi", pypi),
            _strings("channels", channels),
        )
        return replace(
            self, conda=self.conda + conda, pypi=self.pypi + pypi, channels=_merge(self.channels, channels)
        )

    @classmethod
    def resolved(cls, lock: Lock) -> Environment:
        """The environment `lock` pins, as a base to extend: nothing is solved again for it."""
        return cls(python=lock.python, channels=lock.channels, platform=lock.subdir, base=lock)

    @classmethod
    def of(cls, source: Any) -> Environment:
        """The resolved environment of a bundle (a ref or its string), a flow task (a `Task` or its
        pathspec "Flow/run/step/task"), or a named environment ("team/name:tag"), to extend."""
        from satchel.packager.environment_sources import lock_of

        return cls.resolved(lock_of(source))

    @classmethod
    def named(cls, name: str, store: str | None = None) -> Environment:
        """A named environment published in the store (`satchel env resolve FILE --name NAME`):
        "ml/sklearn" (tag latest), "ml/sklearn:stable", "ml/sklearn:3"."""
        from satchel.packager.named_environments import NamedEnvironments

        return cls.resolved(NamedEnvironments(store).lock(name))

    @classmethod
    def from_file(cls, path: str | Path, python: str | None = None) -> Environment:
        """Read conda's `environment.yml` (channels, dependencies, and its `pip:` section) or a
        requirements file (any other name)."""
        path = Path(path)
        if path.suffix in (".yml", ".yaml"):
            from satchel.packager.environment_files import read_environment_yml

            return read_environment_yml(path, python=python)
        return cls.from_requirements(path, python=python)

    def request_id(self, runtime_requirements: Iterable[str] = ()) -> str:
        """A hash of what was asked (this request and the worker's own requirements); a request already
        resolved is found by it and not solved again."""
        data = self.to_dict()
        data["runtime"] = sorted(runtime_requirements)
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:32]

    def to_dict(self) -> dict:
        data: dict[str, Any] = {"python": self.python, "pypi": list(self.pypi)}
        if self.is_conda or self.channels:
            data.update(conda=list(self.conda), channels=list(self.channels))
        if self.platform:
            data["platform"] = self.platform
        if self.virtual_packages:
            data["virtual_packages"] = list(self.virtual_packages)
        if self.base is not None:
            data["base"] = self.base.env_id
        return data

    @classmethod
    def from_dict(cls, data: Mapping, base: Lock | None = None) -> Environment:
        return cls(
            python=data["python"],
            pypi=tuple(data.get("pypi", ())),
            conda=tuple(data.get("conda", ())),
            channels=tuple(data.get("channels", ())),
            platform=data.get("platform"),
            virtual_packages=tuple(data.get("virtual_packages", ())),
            base=base,
        )


def _strings(name: str, values: Iterable[str]) -> tuple[str, ...]:
    if isinstance(values, str):
        raise TypeError(f"extend({name}=...) takes a list of strings, not one string: [{values!r}]")
    values = tuple(values or ())
    for item in values:
        if not isinstance(item, str):
            raise TypeError(f"extend({name}=...) takes strings, got {type(item).__name__} {item!r}")
    return values


def _merge(first: tuple[str, ...], second: tuple[str, ...]) -> tuple[str, ...]:
    return first + tuple(c for c in second if c not in first)
