"""The request body size limit (ASGI middleware): 413 problem documents, decided before the body is read.

A request whose Content-Length exceeds the limit is refused at once, without reading its body; one that
does not announce its length (chunked) is counted while it streams in, and refused as soon as it passes
the limit: the routes read bodies through `receive`, which then raises the 413 problem.
"""

from __future__ import annotations

from ..options import DEFAULT_MAX_BODY, human_size, parse_size
from ..problems import HttpProblem, problem_response

__all__ = ["DEFAULT_MAX_BODY", "BodyLimit", "parse_size"]


def _limit_text(limit: int) -> str:
    human = human_size(limit, sep=" ")
    return human if human.endswith(" bytes") else f"{human} ({limit} bytes)"


def too_large(limit: int) -> HttpProblem:
    p = HttpProblem(
        413,
        "body-too-large",
        "Request body too large",
        f"the request body exceeds this server's limit of {_limit_text(limit)}",
        max_body_bytes=limit,
    )
    p.headers["Connection"] = "close"  # the rest of the body is never read
    return p


class BodyLimit:
    """Refuses request bodies larger than `max_bytes` with 413."""

    def __init__(self, app, max_bytes: int = DEFAULT_MAX_BODY) -> None:
        if max_bytes < 1:
            raise ValueError(f"max_body_bytes {max_bytes}: must be at least 1")
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.max_bytes
        for key, value in scope["headers"]:
            if key == b"content-length":
                try:
                    announced = int(value)
                except ValueError:
                    break  # the server itself refuses a malformed length; count what comes
                if announced > limit:
                    return await self._refuse(scope, receive, send)
                # the HTTP server delivers no more than the announced length: nothing to count
                return await self.app(scope, receive, send)
        received = 0
        started = False

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise too_large(limit)
            return message

        async def watching_send(message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, watching_send)
        except HttpProblem as p:  # a route that let the 413 through
            if p.status != 413 or started:
                raise
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope, receive, send) -> None:
        request_id = scope.get("state", {}).get("request_id")
        response = problem_response(too_large(self.max_bytes), request_id)
        await response(scope, receive, send)
