"""Transports, registered by name. A new backend is one sibling module and one line here."""

from __future__ import annotations

import os
import sys

from satchel.bindings.transports.base import Channel, Transport, TransportFactory
from satchel.core import settings
from satchel.core.registry import Entry, Registry

__all__ = [
    "Channel",
    "Transport",
    "TransportFactory",
    "get_transport",
    "available_transports",
    "TRANSPORTS",
    "default_transport",
]

TRANSPORTS: Registry[TransportFactory] = Registry(
    "transport",
    {
        "pipe": Entry("satchel.bindings.transports.pipe:PipeTransportFactory"),
        "shm": Entry("satchel.bindings.transports.shm:ShmTransportFactory"),
    },
)


def available_transports() -> list[str]:
    return TRANSPORTS.names()


def get_transport(name: str) -> TransportFactory:
    return TRANSPORTS.get(name)()


_default: str | None = None


def default_transport() -> str:
    """`SATCHEL_TRANSPORT` if set; else "shm" on Linux when the ring library loads (it is built on first
    use if needed) and /dev/shm is writable; else "pipe"."""
    global _default
    chosen = settings.raw("SATCHEL_TRANSPORT")
    if chosen:
        if chosen not in TRANSPORTS:
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
