"""Transports, registered by name. A new backend is one sibling module and one line here."""

from __future__ import annotations

from satchel.bindings.transports.base import Channel, Transport, TransportFactory

__all__ = ["Channel", "Transport", "TransportFactory", "get_transport", "available_transports"]

_BACKENDS = {
    "pipe": "satchel.bindings.transports.pipe:PipeTransportFactory",
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
