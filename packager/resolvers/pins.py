"""Requirements against packages already pinned (a base environment, or the conda part of one)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from satchel.core.errors import EnvironmentResolutionError


def check_requirements(requirements: Iterable[str]) -> tuple[str, ...]:
    """`requirements` as a tuple, each parsed (EnvironmentResolutionError naming a bad one)."""
    out = tuple(requirements)
    for req in out:
        try:
            Requirement(req)
        except InvalidRequirement as exc:
            raise EnvironmentResolutionError(f"runtime requirement {req!r} is not valid: {exc}") from None
    return out


def _version(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


def satisfied_by(requirement: str, pinned: Mapping[str, object]) -> bool:
    """Whether a pinned package (name -> an object with `.version`) already meets `requirement`."""
    req = Requirement(requirement)
    have = pinned.get(str(canonicalize_name(req.name)))
    if have is None or req.url:
        return False
    version = _version(str(getattr(have, "version", have)))
    return version is not None and req.specifier.contains(version, prereleases=True)


def check_additions(additions: Iterable[str], pinned: Mapping[str, object], where: str) -> None:
    """An addition that names a pinned package at another version is one error naming both."""
    for addition in additions:
        req = Requirement(addition)
        name = str(canonicalize_name(req.name))
        have = pinned.get(name)
        if have is not None and not satisfied_by(addition, pinned):
            version = getattr(have, "version", have)
            raise EnvironmentResolutionError(
                f"{addition!r} conflicts with {name} {version}, pinned by {where}: the base's packages "
                f"stay exactly as they are. Ask for a version {name} {version} satisfies, or extend "
                "another base."
            )
