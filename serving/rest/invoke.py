"""POST /v1/functions/{name}:invoke — JSON or Avro in, JSON or Avro out (content negotiation by Accept)."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from starlette.types import Receive, Scope, Send

from satchel.core.errors import ArgumentError

from ..hosted import HostedFunction
from ..metrics import Metrics
from ..problems import BAD_RESULT_TITLE, HttpProblem, from_call_error, problem_response
from ..tracing import call_spans

AVRO = "application/avro"
FINGERPRINT_HEADER = "x-satchel-fingerprint"
TIMEOUT_HEADER = "x-satchel-timeout"
COLD_START_HEADER = "X-Satchel-Cold-Start"  # milliseconds a call waited for a worker started for it
COLD_START_HEADER_RAW = COLD_START_HEADER.lower().encode()
PATH = "/v1/functions/{name}:invoke"
MAX_TIMEOUT = 1e6  # seconds (11.6 days): a longer X-Satchel-Timeout is refused (400)


class Invoke:
    """The ASGI app of `POST /v1/functions/{name}:invoke` (`scope["path_params"]["name"]`): reads the
    request straight off the ASGI messages and answers with two sends (the fast lane calls it directly)."""

    def __init__(self, functions: dict[str, HostedFunction], metrics: Metrics, *, debug: bool) -> None:
        self.functions = functions
        self.metrics = metrics
        self.debug = debug

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        name = scope["path_params"]["name"]
        request_id = scope.get("state", {}).get("request_id")
        hosted = self.functions.get(name)
        if hosted is None:
            await problem_response(unknown_function(name, self.functions), request_id)(scope, receive, send)
            return
        started = time.perf_counter()
        cold = not getattr(hosted.fn, "warm", True)  # no worker runs: this call starts one
        counted = self.metrics.of(name)
        counted.in_flight.inc()
        status = 500
        try:
            try:
                headers = _headers(scope)
                args, kwargs = call_arguments(hosted, await _body(receive), headers)
                with call_spans(hosted.name):
                    result = await hosted.fn.acall(*args, **kwargs)
                status, response_headers, body = answer(hosted, result, headers.get("accept", ""))
            except HttpProblem as p:
                response = problem_response(p, request_id)
                counted.error(p.kind)
            except Exception as exc:
                p = from_call_error(exc, name, debug=self.debug, request_id=request_id)
                response = problem_response(p, request_id)
                counted.error(p.kind)
            else:
                response = None
            if response is not None:
                status, response_headers, body = response.status_code, response.raw_headers, response.body
            if cold:
                elapsed = round((time.perf_counter() - started) * 1000)
                response_headers = [*response_headers, (COLD_START_HEADER_RAW, str(elapsed).encode())]
            await send({"type": "http.response.start", "status": status, "headers": response_headers})
            await send({"type": "http.response.body", "body": body})
        finally:
            counted.in_flight.dec()
            counted.request(status)
            counted.latency.observe(time.perf_counter() - started)


_WANTED = {name.encode(): name for name in ("content-type", "accept", TIMEOUT_HEADER, FINGERPRINT_HEADER)}


def _headers(scope: Scope) -> dict[str, str]:
    """The request headers an invocation reads (the first of each), by lower-case name."""
    out: dict[str, str] = {}
    for key, value in scope["headers"]:
        wanted = _WANTED.get(key)
        if wanted is not None and wanted not in out:
            out[wanted] = value.decode("latin-1")
    return out


async def _body(receive: Receive) -> bytes:
    message = await receive()
    body = message.get("body", b"")
    if not message.get("more_body", False):
        return body
    chunks = [body]
    while message.get("more_body", False):
        message = await receive()
        if message["type"] == "http.disconnect":
            raise HttpProblem(400, "malformed-body", "Malformed request body", "the client went away")
        chunks.append(message.get("body", b""))
    return b"".join(chunks)


def unknown_function(name: str, functions: dict[str, HostedFunction]) -> HttpProblem:
    return HttpProblem(
        404,
        "unknown-function",
        "Unknown function",
        f"no function named {name!r}",
        functions=sorted(functions),
    )


def call_arguments(hosted: HostedFunction, body: bytes, headers: Mapping[str, str]) -> tuple[tuple, dict]:
    """(args, kwargs) for `hosted.fn` from a JSON or Avro body and its request headers (lower-case
    names: content-type, x-satchel-fingerprint, x-satchel-timeout); HttpProblem."""
    content_type = headers.get("content-type", "application/json").split(";", 1)[0].strip().lower()
    if content_type == AVRO:
        arguments = _avro_arguments(hosted, body, headers.get(FINGERPRINT_HEADER))
    elif content_type in ("application/json", "") or content_type.endswith("+json"):
        try:
            document = json.loads(body) if body else {}
        except ValueError as exc:
            raise HttpProblem(
                400, "malformed-body", "Malformed request body", f"invalid JSON: {exc}", function=hosted.name
            ) from None
        try:
            arguments = hosted.arguments_from_json(document)
        except ArgumentError as exc:
            raise HttpProblem(
                400,
                "invalid-argument",
                "Invalid argument",
                str(exc),
                function=hosted.name,
                parameter=getattr(exc, "parameter", None),
            ) from None
    else:
        raise HttpProblem(
            415,
            "unsupported-media-type",
            "Unsupported media type",
            f"send application/json or {AVRO}, not {content_type}",
            function=hosted.name,
        )
    timeout = _timeout(headers.get(TIMEOUT_HEADER))
    args, kwargs = hosted.split(arguments)
    if timeout is not None:
        kwargs["timeout"] = timeout
    return args, kwargs


def answer(hosted: HostedFunction, result: Any, accept: str) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """(status, raw headers, body) of a call's result: Avro if `accept` asks for it, else `{"result": ...}`."""
    if _wants_avro(accept):
        try:
            body = hosted.response_codec.encode(result)
        except ArgumentError as exc:  # the result is at fault, not the request
            raise HttpProblem(500, "bad-result", BAD_RESULT_TITLE, str(exc), function=hosted.name) from None
        return (
            200,
            [
                (b"content-type", AVRO.encode()),
                (b"content-length", str(len(body)).encode()),
                (b"x-satchel-fingerprint", hosted.response_fingerprint.encode()),
            ],
            body,
        )
    body = json.dumps({"result": result_json(hosted, result)}, allow_nan=False).encode()
    return 200, [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())], body


def result_json(hosted: HostedFunction, result: Any) -> Any:
    """The JSON form of a result; HttpProblem if the function returned what its schema does not allow."""
    try:
        return hosted.response_form.value_to_json(result)
    except ArgumentError as exc:
        raise HttpProblem(500, "bad-result", BAD_RESULT_TITLE, str(exc), function=hosted.name) from None


def _avro_arguments(hosted: HostedFunction, body: bytes, fingerprint: str | None) -> dict[str, Any]:
    if fingerprint is None or fingerprint.strip().lower() != hosted.request_fingerprint:
        raise HttpProblem(
            400,
            "fingerprint-mismatch",
            "Schema fingerprint mismatch",
            f"an {AVRO} body needs the header X-Satchel-Fingerprint: {hosted.request_fingerprint} "
            f"(the request schema's CRC-64-AVRO fingerprint); got {fingerprint!r}",
            function=hosted.name,
            expected_fingerprint=hosted.request_fingerprint,
        )
    return hosted.request_codec.decode_call(body)  # ProtocolError -> 400


def _timeout(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= MAX_TIMEOUT:  # also refuses NaN and infinity
        raise HttpProblem(
            400,
            "invalid-header",
            "Invalid header",
            f"X-Satchel-Timeout: {text!r} is not a number of seconds in (0, {MAX_TIMEOUT:g}]",
        )
    return value


def _wants_avro(accept: str) -> bool:
    return AVRO in accept and "application/json" not in accept
