"""The one plugin registry: a backend's name -> "module:attr", imported only when first asked for.

Stores, resolvers, transports, flow executors and serving backends are all registered this way. An unknown
name lists the known ones; a backend whose optional dependency is missing raises `MissingExtra`, naming the
extra that brings it (`pip install 'satchel[serve]'`). Adding a backend is one module and one entry.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from satchel.core.extras import needs_extra

T = TypeVar("T")

__all__ = ["Entry", "Registry", "load_target"]


@dataclass(frozen=True)
class Entry:
    target: str | Callable[..., Any]  # "module:attr", or the object itself
    extra: str | None = None  # the pip extra that brings the backend's dependencies


def load_target(target: str, *, feature: str, extra: str | None = None) -> Any:
    """The object named by "module:attr" (or "module"). A module of `extra` that is not installed is
    `MissingExtra` naming `feature` and the extra (core/extras.py); any other import error goes through."""
    module_name, _, attribute = target.partition(":")
    if extra is None:
        module = importlib.import_module(module_name)
    else:
        with needs_extra(extra, feature):
            module = importlib.import_module(module_name)
    return getattr(module, attribute) if attribute else module


class Registry(Generic[T]):
    """Backends of one kind (`kind` names it in errors, e.g. "store URL scheme")."""

    def __init__(self, kind: str, entries: dict[str, Entry], unknown: type[Exception] = ValueError) -> None:
        self.kind = kind
        self._entries = dict(entries)
        self._unknown = unknown
        self._loaded: dict[str, Any] = {}

    def register(self, name: str, target: str | Callable[..., T], extra: str | None = None) -> None:
        """Add (or replace) a backend at run time."""
        self._entries[name] = Entry(target, extra)
        self._loaded.pop(name, None)

    def unregister(self, name: str) -> None:
        self._entries.pop(name, None)
        self._loaded.pop(name, None)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def unknown(self, name: str) -> Exception:
        """The error for a name nobody registered: it lists the known ones."""
        return self._unknown(f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}")

    def get(self, name: str) -> Any:
        """The registered object (a class or a factory), imported on first use."""
        if name in self._loaded:
            return self._loaded[name]
        entry = self._entries.get(name)
        if entry is None:
            raise self.unknown(name)
        value = entry.target
        if isinstance(value, str):
            value = load_target(value, feature=f"the {name} {self.kind}", extra=entry.extra)
        self._loaded[name] = value
        return value
