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
        ready = all(live.values())
        body = {"status": "ready" if ready else "not ready", "workers": live}
        return Response(json.dumps(body), status_code=200 if ready else 503, media_type="application/json")

    return readyz


def make_metrics(functions: dict[str, HostedFunction], metrics: Metrics):
    async def metrics_route(request: Request) -> Response:
        for name, h in functions.items():
            metrics.queue_depth.labels(name).set(h.fn.pending)
            metrics.workers.labels(name).set(sum(p is not None for p in h.fn.worker_pids))
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    return metrics_route
