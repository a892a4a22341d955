"""The fast lane: `POST /v1/functions/{name}:invoke` goes straight to its handler.

Every request passes through Satchel's per-request middleware (request id and access log, drain, tracing,
body limit, auth) exactly once. Invocations then skip FastAPI's own middleware and router, which cost
about as much per request as the whole hop to a worker; every other route (OpenAPI, docs, jobs, probes)
is served by FastAPI as usual. Same handler, same answers: only the path to it is shorter.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

PREFIX = "/v1/functions/"
SUFFIX = ":invoke"


def invoked_function(scope: Scope) -> str | None:
    """The function name of an invocation request (`POST /v1/functions/{name}:invoke`), else None."""
    if scope["type"] != "http" or scope["method"] != "POST" or scope.get("root_path"):
        return None
    path: str = scope["path"]
    if not (path.startswith(PREFIX) and path.endswith(SUFFIX)):
        return None
    name = path[len(PREFIX) : -len(SUFFIX)]
    return name if name and "/" not in name else None


class GatewayApp(FastAPI):
    """FastAPI with the fast lane: set `fast_lane` to the invoke handler wrapped in the per-request
    middleware; until then every request takes FastAPI's path."""

    fast_lane: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        lane = self.fast_lane
        if lane is not None:
            name = invoked_function(scope)
            if name is not None:
                scope["app"] = self
                scope["path_params"] = {"name": name}
                await lane(scope, receive, send)
                return
        await super().__call__(scope, receive, send)
