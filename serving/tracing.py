"""Request ids and the JSON access log (ASGI middleware): X-Request-ID echoed, or generated."""

from __future__ import annotations

import json
import logging
import time
import uuid

access_log = logging.getLogger("satchel.serving.access")
_HEADER = b"x-request-id"


class RequestIds:
    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        request_id = None
        for key, value in scope["headers"]:
            if key == _HEADER:
                request_id = value.decode("latin-1")[:200]
                break
        if not request_id:
            request_id = uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = [500]

        async def send_with_id(message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                message["headers"] = [*message.get("headers", []), (_HEADER, request_id.encode("latin-1"))]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if access_log.isEnabledFor(logging.INFO):
                access_log.info(
                    json.dumps(
                        {
                            "time": time.time(),
                            "request_id": request_id,
                            "method": scope.get("method"),
                            "path": scope.get("path"),
                            "status": status[0],
                            "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                            "client": (scope.get("client") or [None])[0],
                        }
                    )
                )
