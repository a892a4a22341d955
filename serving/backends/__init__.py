"""Where `satchel serve` runs the gateway and the worker pools: `local` (this process, under uvicorn:
`serving.server.serve`) or a cluster backend registered in BACKENDS (`ray`: Ray Serve deployments,
autoscaled by Ray; needs the optional Ray)."""

from __future__ import annotations

from satchel.core.registry import Entry, Registry

from .base import Backend, ServeOptions

__all__ = ["BACKENDS", "LOCAL", "Backend", "ServeOptions", "backend_names", "get_backend"]

#: The gateway in this process; every other backend is looked up in BACKENDS.
LOCAL = "local"

BACKENDS: Registry[Backend] = Registry(
    "serving backend",
    {"ray": Entry("satchel.serving.backends.ray:RayBackend", extra="ray")},
)


def backend_names() -> list[str]:
    return [LOCAL, *BACKENDS.names()]


def get_backend(name: str) -> Backend:
    """A new backend registered as `name`, imported only here, so its dependencies stay optional."""
    if name == LOCAL:
        raise ValueError("the local backend is this process: serve it with satchel.serving.serve(refs)")
    if name not in BACKENDS:
        raise ValueError(f"unknown serving backend {name!r}; known: {', '.join(backend_names())}")
    return BACKENDS.get(name)()
