"""The request body size limit (ASGI middleware): 413 problem documents, decided before the body is read.

A request whose Content-Length exceeds the limit is refused at once, without reading its body; one that
does not announce its length (chunked) is counted while it streams in, and refused as soon as it passes
the limit: the routes read bodies through `receive`, which then raises the 413 problem.
"""

from __future__ import annotations

import re

from ..problems import HttpProblem, problem_response

DEFAULT_MAX_BODY = 64 * 1024 * 1024
_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$", re.IGNORECASE)


def parse_size(text: str | int) -> int:
    """Bytes from 1048576, "32MB" (decimal units: kB, MB, GB) or "64MiB" (binary: KiB, MiB, GiB)."""
    if isinstance(text, int):
        value = text
    else:
        match = _SIZE.match(text)
        unit = match.group(2).lower() if match else ""
        if match is None or unit not in _UNITS:
            raise ValueError(f"size {text!r}: expected a number of bytes with an optional unit (32MB, 64MiB)")
        value = int(float(match.group(1)) * _UNITS[unit])
    if value < 1:
        raise ValueError(f"size {text!r}: must be at least 1 byte")
    return value


def _human(size: int) -> str:
    for unit, factor in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size} bytes"


def _limit_text(limit: int) -> str:
    human = _human(limit)
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
