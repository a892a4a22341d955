"""/healthz (the process answers), /readyz (every function has a live worker), /metrics."""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import Response

from ..hosted import HostedFunction
from ..metrics import CONTENT_TYPE_LATEST, Metrics


async def healthz(request: Request) -> Response:
    return Response('{"status":"ok"}', media_type="application/json")


def make_readyz(functions: dict[str, HostedFunction]):
    async def readyz(request: Request) -> Response:
        live = {name: sum(p is not None for p in h.fn.worker_pids) for name, h in functions.items()}
        # a function scaled to zero workers on purpose is ready: its next call starts one
        ready = all(n or not functions[name].fn.workers for name, n in live.items())
        body = {"status": "ready" if ready else "not ready", "workers": live}
        return Response(json.dumps(body), status_code=200 if ready else 503, media_type="application/json")

    return readyz


def make_metrics(functions: dict[str, HostedFunction], metrics: Metrics):
    async def metrics_route(request: Request) -> Response:
        for name, h in functions.items():
            metrics.observe_pool(name, h.fn)
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    return metrics_route
