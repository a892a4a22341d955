"""Bearer-token auth (ASGI middleware): with a token set, every route but the open ones needs it."""

from __future__ import annotations

import hmac

from .problems import HttpProblem, problem_response

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
        p = HttpProblem(
            401, "unauthorized", "Unauthorized", "this route needs 'Authorization: Bearer <token>'"
        )
        p.headers["WWW-Authenticate"] = 'Bearer realm="satchel"'
        await problem_response(p, scope.get("state", {}).get("request_id"))(scope, receive, send)
