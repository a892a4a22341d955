"""Errors as RFC 9457 problem documents (application/problem+json): what each failure answers."""

from __future__ import annotations

import json
import logging
from typing import Any

from starlette.responses import Response

from satchel.core.errors import (
    ArgumentError,
    BadResult,
    CallTimeout,
    FunctionClosed,
    Overloaded,
    ProtocolError,
    RemoteError,
    WorkerCrashed,
    WorkerError,
)

log = logging.getLogger("satchel.serving.errors")

PROBLEM = "application/problem+json"
RETRY_AFTER_SECONDS = 1
_BASE = "https://satchel.dev/problems/"
BAD_RESULT_TITLE = "The result does not fit the response schema"


class HttpProblem(Exception):
    """Raised by the routes to answer a problem document."""

    def __init__(self, status: int, kind: str, title: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status, self.kind, self.title, self.detail, self.extra = status, kind, title, detail, extra
        self.headers: dict[str, str] = {}


def problem_response(p: HttpProblem, request_id: str | None = None) -> Response:
    body = {"type": _BASE + p.kind, "title": p.title, "status": p.status, "detail": p.detail, **p.extra}
    if request_id:
        body["request_id"] = request_id
    return Response(json.dumps(body), status_code=p.status, media_type=PROBLEM, headers=p.headers)


def from_call_error(exc: BaseException, function: str, *, debug: bool, request_id: str | None) -> HttpProblem:
    """The problem a failed call answers; worker tracebacks go to the log, to clients only with debug."""
    if isinstance(exc, ArgumentError):
        return HttpProblem(
            400,
            "invalid-argument",
            "Invalid argument",
            str(exc),
            function=function,
            parameter=getattr(exc, "parameter", None),
        )
    if isinstance(exc, ProtocolError):
        return HttpProblem(400, "malformed-body", "Malformed request body", str(exc), function=function)
    if isinstance(exc, Overloaded):
        p = HttpProblem(429, "overloaded", "Too many pending calls", str(exc), function=function)
        p.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return p
    if isinstance(exc, BadResult):
        log.error("function %s: %s (request %s)", function, exc.message, request_id)
        return HttpProblem(500, "bad-result", BAD_RESULT_TITLE, exc.message, function=function)
    if isinstance(exc, RemoteError):
        log.error(
            "function %s raised %s: %s (request %s)\n%s",
            function,
            exc.type_name,
            exc.message,
            request_id,
            exc.remote_traceback,
        )
        extra: dict[str, Any] = {"function": function, "remote_type": exc.type_name}
        if debug:
            extra["traceback"] = exc.remote_traceback
        return HttpProblem(500, "remote-error", "The function raised", exc.message, **extra)
    if isinstance(exc, CallTimeout):
        return HttpProblem(504, "timeout", "The call timed out", str(exc), function=function)
    if isinstance(exc, WorkerCrashed):
        log.error("function %s: %s (request %s)", function, exc, request_id)
        extra = {"function": function, "exit_status": exc.exit_status}
        if debug:
            extra["stderr_tail"] = exc.stderr_tail
        return HttpProblem(502, "worker-crashed", "A worker crashed", exc.args[0], **extra)
    if isinstance(exc, (FunctionClosed, WorkerError)):
        log.error("function %s: %s (request %s)", function, exc, request_id)
        return HttpProblem(503, "unavailable", "The function is unavailable", str(exc), function=function)
    log.exception("function %s: unexpected error (request %s)", function, request_id, exc_info=exc)
    detail = f"{type(exc).__name__}: {exc}" if debug else "internal error"
    return HttpProblem(500, "internal", "Internal server error", detail, function=function)
