"""Serving: host loaded functions behind gateways (REST, gRPC) with async jobs, autoscaling and deployments.

`serve([refs...])` runs a server; `create_app(functions)` builds the ASGI app (FastAPI) to run elsewhere.
Needs the `serve` extra (fastapi, uvicorn, prometheus-client, grpcio); imported lazily so `import satchel` never does.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app", "serve"]


def create_app(*args: Any, **kwargs: Any):
    from .extras import require_serving

    require_serving(grpc=kwargs.get("grpc_port") is not None)
    from .app import create_app as _create_app

    return _create_app(*args, **kwargs)


def serve(*args: Any, **kwargs: Any) -> None:
    from .server import serve as _serve

    return _serve(*args, **kwargs)
