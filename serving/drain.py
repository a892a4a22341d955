"""Graceful shutdown: drain in-flight requests before the workers stop.

When the server is asked to stop (SIGTERM, Ctrl-C, `server.should_exit = True`), `DrainingServer` first
turns the app's `Drain` on: /readyz answers 503 at once (a load balancer stops sending traffic), new
requests get 503 with Retry-After, and requests already in flight run to their answers. Once none is left
(or `drain_timeout` passes, or a second Ctrl-C), uvicorn's own shutdown proceeds: it stops listening and
runs the app's lifespan shutdown, which stops the workers.
"""

from __future__ import annotations

import time

import uvicorn
from starlette.responses import JSONResponse

from .options import DEFAULT_DRAIN_TIMEOUT
from .problems import RETRY_AFTER_SECONDS, HttpProblem, problem_response

_PROBES = frozenset({"/healthz", "/metrics"})


class Drain:
    """The drain state of one app, and the ASGI middleware that enforces it (count, refuse, report)."""

    def __init__(self) -> None:
        self.draining = False
        self.in_flight = 0

    def begin(self) -> None:
        self.draining = True

    def middleware(self, app):
        drain = self

        async def drained(scope, receive, send) -> None:
            if scope["type"] != "http":
                return await app(scope, receive, send)
            path = scope["path"]
            if drain.draining and path not in _PROBES:
                return await drain._refuse(scope, receive, send)
            if path in _PROBES or path == "/readyz":
                return await app(scope, receive, send)
            drain.in_flight += 1  # one event loop: no lock needed
            try:
                await app(scope, receive, send)
            finally:
                drain.in_flight -= 1

        return drained

    async def _refuse(self, scope, receive, send) -> None:
        if scope["path"] == "/readyz":
            body = {"status": "draining", "in_flight": self.in_flight}
            await JSONResponse(body, status_code=503)(scope, receive, send)
            return
        p = HttpProblem(
            503,
            "draining",
            "The server is shutting down",
            "this server is draining its in-flight requests before it stops; retry (another instance)",
        )
        p.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        p.headers["Connection"] = "close"
        await problem_response(p, scope.get("state", {}).get("request_id"))(scope, receive, send)


def drain_of(app) -> Drain | None:
    """The Drain of a Satchel app (create_app sets `app.state.drain`), or None."""
    state = getattr(app, "state", None)
    return getattr(state, "drain", None)


class DrainingServer(uvicorn.Server):
    """A uvicorn server that drains the app's in-flight requests (see the module doc) before it stops."""

    def __init__(self, config: uvicorn.Config, *, drain_timeout: float = DEFAULT_DRAIN_TIMEOUT) -> None:
        super().__init__(config)
        self.drain_timeout = drain_timeout
        self._drain_started: float | None = None

    async def on_tick(self, counter: int) -> bool:
        if not await super().on_tick(counter):
            return False
        drain = drain_of(self.config.app)
        if drain is None or self.force_exit:
            return True
        if self._drain_started is None:
            self._drain_started = time.monotonic()
            drain.begin()
        return drain.in_flight == 0 or time.monotonic() - self._drain_started >= self.drain_timeout
