"""Environment resolvers, registered by name: `get_resolver("uv")`.

A backend is a `Resolver` subclass in its own module and one entry in RESOLVERS (imported only when first
asked for; `satchel.core.registry`), or registered at run time with `register_resolver`.
"""

from __future__ import annotations

from collections.abc import Callable

from satchel.core.errors import EnvironmentResolutionError
from satchel.core.registry import Entry, Registry
from satchel.packager.resolvers.base import Lock, LockedPackage, Progress, Resolver

__all__ = [
    "RESOLVERS",
    "Lock",
    "LockedPackage",
    "Progress",
    "Resolver",
    "available_resolvers",
    "get_resolver",
    "register_resolver",
]

RESOLVERS: Registry[Resolver] = Registry(
    "environment resolver",
    {
        "uv": Entry("satchel.packager.resolvers.uv:UvResolver"),
        "rattler": Entry("satchel.packager.resolvers.rattler:RattlerResolver", extra="conda"),
    },
    unknown=EnvironmentResolutionError,
)


def register_resolver(name: str, factory: str | Callable[..., Resolver]) -> None:
    """Register a backend under `name`: a "module:Class" string or a callable returning a Resolver."""
    RESOLVERS.register(name, factory)


def available_resolvers() -> list[str]:
    return RESOLVERS.names()


def get_resolver(name: str, **options) -> Resolver:
    """A new resolver of backend `name`; `options` go to its constructor (e.g. `progress=`)."""
    resolver = RESOLVERS.get(name)(**options)
    if not isinstance(resolver, Resolver):
        raise TypeError(f"resolver {name!r} is not a Resolver: {resolver!r}")
    return resolver
