"""Transports, registered by name. A new backend is one sibling module and one line here."""

from __future__ import annotations

import os
import sys

from satchel.bindings.transports.base import Channel, Transport, TransportFactory

__all__ = [
    "Channel",
    "Transport",
    "TransportFactory",
    "get_transport",
    "available_transports",
    "default_transport",
]

_BACKENDS = {
    "pipe": "satchel.bindings.transports.pipe:PipeTransportFactory",
    "shm": "satchel.bindings.transports.shm:ShmTransportFactory",
}


def available_transports() -> list[str]:
    return sorted(_BACKENDS)


def get_transport(name: str) -> TransportFactory:
    try:
        target = _BACKENDS[name]
    except KeyError:
        raise ValueError(
            f"unknown transport {name!r}; available: {', '.join(available_transports())}"
        ) from None
    import importlib

    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)()


_default: str | None = None


def default_transport() -> str:
    """`SATCHEL_TRANSPORT` if set; else "shm" on Linux when the ring library loads (it is built on first
    use if needed) and /dev/shm is writable; else "pipe"."""
    global _default
    chosen = os.environ.get("SATCHEL_TRANSPORT")
    if chosen:
        if chosen not in _BACKENDS:
            raise ValueError(
                f"SATCHEL_TRANSPORT={chosen!r}: unknown transport; available: {', '.join(available_transports())}"
            )
        return chosen
    if _default is None:
        _default = "shm" if _shm_usable() else "pipe"
    return _default


def _shm_usable() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    from satchel.bindings import _native
    from satchel.bindings.ring import SHM_DIR

    return os.access(SHM_DIR, os.W_OK | os.X_OK) and _native.available()
