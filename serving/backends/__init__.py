"""Where `satchel serve` runs the gateway and the worker pools: `local` (this process, under uvicorn:
`serving.server.serve`) or `ray` (Ray Serve deployments, autoscaled by Ray; needs the optional Ray)."""

from __future__ import annotations

from .base import Backend, ServeOptions

__all__ = ["Backend", "ServeOptions", "get_backend"]

BACKENDS = ("local", "ray")


def get_backend(name: str) -> Backend:
    """The backend registered as `name`; `ray` is imported only here, so Ray stays optional."""
    if name == "ray":
        from .ray import RayBackend

        return RayBackend()
    raise ValueError(f"unknown serving backend {name!r}; known: {', '.join(BACKENDS)}")
