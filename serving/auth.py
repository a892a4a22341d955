"""Bearer-token auth (ASGI middleware): with a token set, every route but the open ones needs it."""

from __future__ import annotations

import hmac
import json

OPEN_PATHS = frozenset({"/healthz"})


class BearerAuth:
    def __init__(self, app, token: str, open_paths: frozenset[str] = OPEN_PATHS) -> None:
        self.app = app
        self.expected = ("Bearer " + token).encode()
        self.open_paths = open_paths

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"] in self.open_paths:
            return await self.app(scope, receive, send)
        given = b""
        for key, value in scope["headers"]:
            if key == b"authorization":
                given = value
                break
        if hmac.compare_digest(given, self.expected):
            return await self.app(scope, receive, send)
        body = json.dumps(
            {
                "type": "https://satchel.dev/problems/unauthorized",
                "title": "Unauthorized",
                "status": 401,
                "detail": "this route needs 'Authorization: Bearer <token>'",
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/problem+json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", b'Bearer realm="satchel"'),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
