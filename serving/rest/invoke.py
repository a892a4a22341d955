"""POST /v1/functions/{name}:invoke — JSON or Avro in, JSON or Avro out (content negotiation by Accept)."""

from __future__ import annotations

import json
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from satchel.errors import ArgumentError

from ..hosted import HostedFunction
from ..metrics import Metrics
from ..problems import HttpProblem, from_call_error, problem_response
from ..tracing import call_spans

AVRO = "application/avro"
FINGERPRINT_HEADER = "x-satchel-fingerprint"
TIMEOUT_HEADER = "x-satchel-timeout"
COLD_START_HEADER = "X-Satchel-Cold-Start"  # milliseconds a call waited for a worker started for it
PATH = "/v1/functions/{name}:invoke"
MAX_TIMEOUT = 1e6  # seconds (11.6 days): a longer X-Satchel-Timeout is refused (400)


def make_invoke(functions: dict[str, HostedFunction], metrics: Metrics, *, debug: bool):
    async def invoke(request: Request) -> Response:
        name = request.path_params["name"]
        request_id = request.scope.get("state", {}).get("request_id")
        hosted = functions.get(name)
        if hosted is None:
            return problem_response(unknown_function(name, functions), request_id)
        started = time.perf_counter()
        cold = not getattr(hosted.fn, "warm", True)  # no worker runs: this call starts one
        counted = metrics.of(name)
        counted.in_flight.inc()
        status = 500
        try:
            try:
                response = await _invoke(hosted, request)
            except HttpProblem as p:
                response = problem_response(p, request_id)
                counted.error(p.kind)
            except Exception as exc:
                p = from_call_error(exc, name, debug=debug, request_id=request_id)
                response = problem_response(p, request_id)
                counted.error(p.kind)
            if cold:
                response.headers[COLD_START_HEADER] = str(round((time.perf_counter() - started) * 1000))
            status = response.status_code
            return response
        finally:
            counted.in_flight.dec()
            counted.request(status)
            counted.latency.observe(time.perf_counter() - started)

    return invoke


def unknown_function(name: str, functions: dict[str, HostedFunction]) -> HttpProblem:
    return HttpProblem(
        404,
        "unknown-function",
        "Unknown function",
        f"no function named {name!r}",
        functions=sorted(functions),
    )


async def _invoke(hosted: HostedFunction, request: Request) -> Response:
    args, kwargs = await call_arguments(hosted, request)
    with call_spans(hosted.name):
        result = await hosted.fn.acall(*args, **kwargs)
    return result_response(hosted, result, request.headers.get("accept", ""))


async def call_arguments(hosted: HostedFunction, request: Request) -> tuple[tuple, dict]:
    """(args, kwargs) for `hosted.fn` from a JSON or Avro body (and the timeout header); HttpProblem."""
    body = await request.body()
    content_type = request.headers.get("content-type", "application/json").split(";", 1)[0].strip().lower()
    if content_type == AVRO:
        arguments = _avro_arguments(hosted, body, request.headers.get(FINGERPRINT_HEADER))
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
    timeout = _timeout(request.headers.get(TIMEOUT_HEADER))
    args, kwargs = hosted.split(arguments)
    if timeout is not None:
        kwargs["timeout"] = timeout
    return args, kwargs


def result_response(hosted: HostedFunction, result: Any, accept: str) -> Response:
    """The response of a call's result: Avro if `accept` asks for it, else `{"result": ...}`."""
    if _wants_avro(accept):
        return Response(
            hosted.response_codec.encode(result),
            media_type=AVRO,
            headers={"X-Satchel-Fingerprint": hosted.response_fingerprint},
        )
    payload = json.dumps({"result": result_json(hosted, result)}, allow_nan=False)
    return Response(payload, media_type="application/json")


def result_json(hosted: HostedFunction, result: Any) -> Any:
    """The JSON form of a result; HttpProblem if the function returned what its schema does not allow."""
    try:
        return hosted.response_form.value_to_json(result)
    except ArgumentError as exc:
        raise HttpProblem(
            500, "bad-result", "The result does not fit the response schema", str(exc), function=hosted.name
        ) from None


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
