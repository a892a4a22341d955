"""Environment resolvers, registered by name: `get_resolver("uv")`.

A backend is a `Resolver` subclass in its own module; register it here by "module:Class" (imported
only when first asked for) or at run time with `register_resolver`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from satchel.errors import EnvironmentResolutionError
from satchel.packager.resolvers.base import Lock, LockedPackage, Progress, Resolver

__all__ = [
    "Lock",
    "LockedPackage",
    "Progress",
    "Resolver",
    "available_resolvers",
    "get_resolver",
    "register_resolver",
]

# name -> "module:attribute" (imported lazily) or a factory returning a Resolver.
_REGISTRY: dict[str, str | Callable[..., Resolver]] = {
    "uv": "satchel.packager.resolvers.uv:UvResolver",
}


def register_resolver(name: str, factory: str | Callable[..., Resolver]) -> None:
    """Register a backend under `name`: a "module:Class" string or a callable returning a Resolver."""
    _REGISTRY[name] = factory


def available_resolvers() -> list[str]:
    return sorted(_REGISTRY)


def get_resolver(name: str, **options) -> Resolver:
    """A new resolver of backend `name`; `options` go to its constructor (e.g. `progress=`)."""
    try:
        factory = _REGISTRY[name]
    except KeyError:
        known = ", ".join(available_resolvers())
        raise EnvironmentResolutionError(
            f"unknown environment resolver {name!r}; this version of Satchel has: {known}"
        ) from None
    if isinstance(factory, str):
        module_name, _, attribute = factory.partition(":")
        factory = getattr(importlib.import_module(module_name), attribute)
    resolver = factory(**options)
    if not isinstance(resolver, Resolver):
        raise TypeError(f"resolver {name!r} is not a Resolver: {resolver!r}")
    return resolver
