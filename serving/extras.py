"""What serving needs of the optional extras, checked before any function is loaded: without them,
`satchel serve` (and `serve()`, `create_app()`) is one MissingExtra line, not a traceback 20 s later."""

from __future__ import annotations

from satchel.core.extras import require

#: The REST gateway's modules (extra `serve`), and those gRPC adds.
REST_MODULES = ("fastapi", "starlette", "uvicorn", "prometheus_client")  # OpenTelemetry: only if present
GRPC_MODULES = ("grpc", "grpc_health", "grpc_reflection", "google.protobuf")


def require_serving(backend: str = "local", *, grpc: bool = False) -> None:
    """MissingExtra naming the first module a server on `backend` (with gRPC: `grpc`) cannot import."""
    if backend == "ray":
        require("ray", "the ray serving backend", "ray", "ray.serve")
    require("serve", "satchel serve", *REST_MODULES)
    if grpc:
        require("serve", "gRPC serving", *GRPC_MODULES)
