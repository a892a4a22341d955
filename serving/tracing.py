"""Request ids and the JSON access log (ASGI middleware): X-Request-ID echoed, or generated; and W3C
trace context with OpenTelemetry.

Tracing. A request with a `traceparent` header, or any request once an OpenTelemetry SDK tracer provider
is installed (`configure_tracing`: SATCHEL_TRACE_EXPORTER or OTEL_TRACES_EXPORTER = console | otlp |
jsonl | none, default none; or the embedding application's own), gets a SERVER span (a child of the
incoming context), and each call in it a `queue <function>` span (waiting for a worker) and a
`call <function>` CLIENT span (the worker's work), whose context travels in the CALL envelope into the
worker (runtime/worker/context.py), where a `satchel.worker <function>` span continues it. Without
either, nothing is done per request. Every gateway starts its spans with `start_server_span(name,
carrier)` and wraps calls in `call_spans(function)`.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from satchel.runtime.worker import spans
from satchel.runtime.worker.context import dispatching

from .logs import direct_writer

access_log = logging.getLogger("satchel.serving.access")
_HEADER = b"x-request-id"


_ID_PREFIX = os.urandom(8).hex()  # per process: ids are unique across processes, cheap within one
_ID_COUNTER = itertools.count(1)


def new_request_id() -> str:
    """A fresh request id: 32 hex digits, like a uuid4's, without a system call per request."""
    return f"{_ID_PREFIX}{next(_ID_COUNTER):016x}"


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
            request_id = new_request_id()
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
                log_access(scope, request_id, status[0], started)


_quote = json.encoder.encode_basestring_ascii  # type: ignore[attr-defined]  # the C one, when built


def log_access(scope, request_id: str, status: int, started: float) -> None:
    """One JSON line on the access log: time, request id, method, path, status, duration, client."""
    client = scope.get("client")
    line = (
        f'{{"time": {time.time()!r}, "request_id": {_quote(request_id)}, '
        f'"method": {_quote(scope.get("method") or "")}, "path": {_quote(scope.get("path") or "")}, '
        f'"status": {status}, "duration_ms": {round((time.perf_counter() - started) * 1000, 3)!r}, '
        f'"client": {_quote(client[0]) if client else "null"}}}'
    )
    writer = direct_writer(access_log)
    if writer is not None:  # the server's own handler, and nothing else to tell: no LogRecord needed
        writer.write_line(line)
    else:  # a record made without looking up the caller's frame (the line says it all)
        access_log.handle(access_log.makeRecord(access_log.name, logging.INFO, "", 0, line, (), None))


# --- tracing ---------------------------------------------------------------------------------------------

TRACER = "satchel.serving"
_TRACEPARENT = b"traceparent"
_TRACESTATE = b"tracestate"
_UNTRACED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
EXPORTERS = spans.EXPORTERS


def _trace() -> Any:
    """The OpenTelemetry trace API, or None when it is not installed."""
    try:
        from opentelemetry import trace
    except ImportError:  # pragma: no cover - the serve extra has it
        return None
    return trace


_TRACE = _trace()
_NO_SPANS = contextlib.nullcontext()


def _traced(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """Whether an HTTP request gets a span: it carries a traceparent, or spans are recorded here."""
    if _TRACE is None:
        return False
    for key, _ in headers:
        if key == _TRACEPARENT:
            return True
    return _recording(_TRACE)


def _recording(trace: Any) -> bool:
    """Whether an SDK tracer provider is installed (spans are recorded, not just propagated)."""
    return spans.recording(trace)


def configure_tracing(exporter: str | None = None) -> str:
    """Install a tracer provider exporting to `exporter` (default: $SATCHEL_TRACE_EXPORTER, else
    $OTEL_TRACES_EXPORTER, else "none": see runtime/worker/spans.py); returns the exporter used. Does
    nothing for "none", or when a provider is installed already (the embedding application's). Needs
    opentelemetry-sdk (the `trace` extra), for otlp an OTLP exporter package (endpoint from the standard
    OTEL_EXPORTER_OTLP_* vars), for jsonl $SATCHEL_TRACE_FILE. Workers read the same variables from the
    environment they inherit, and export their own spans when their environment has the SDK."""
    name = spans.exporter_name(exporter)
    spans.install(name, "satchel")
    return name


def _carrier(headers: Iterable[tuple[Any, Any]]) -> dict[str, str]:
    """The W3C trace headers among `headers` (HTTP header pairs as bytes, or gRPC metadata as str)."""
    out: dict[str, str] = {}
    for key, value in headers:
        if isinstance(key, bytes):
            key = key.decode("latin-1")
        key = key.lower()
        if key == "traceparent" or key == "tracestate":
            out[key] = value.decode("latin-1") if isinstance(value, bytes) else str(value)
    return out


def start_server_span(
    name: str,
    carrier: Mapping[str, str] | Iterable[tuple[Any, Any]] | None,
    *,
    attributes: Mapping[str, Any] | None = None,
) -> contextlib.AbstractContextManager[Any]:
    """Make a SERVER span `name` current for the body, a child of the W3C context in `carrier` (a mapping,
    HTTP header pairs or gRPC invocation metadata; names are case-insensitive). Yields the span, or None
    when there is nothing to do (no trace context and no SDK installed): then it costs nothing."""
    trace = _TRACE
    if trace is None:
        return _NO_SPANS
    found = _carrier(carrier.items() if isinstance(carrier, Mapping) else (carrier or ()))
    if not (found or _recording(trace)):
        return _NO_SPANS
    return _server_span(trace, name, found, attributes)


@contextlib.contextmanager
def _server_span(
    trace: Any, name: str, found: dict[str, str], attributes: Mapping[str, Any] | None
) -> Iterator[Any]:
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    parent = TraceContextTextMapPropagator().extract(carrier=found)
    tracer = trace.get_tracer(TRACER)
    with tracer.start_as_current_span(
        name, context=parent, kind=trace.SpanKind.SERVER, attributes=dict(attributes or {})
    ) as span:
        yield span


def call_spans(function: str) -> contextlib.AbstractContextManager[None]:
    """Spans around one call of `function` made in the body: `queue <function>` until the call has a
    worker, then `call <function>` (CLIENT), whose context the worker receives. Nothing without a
    current span."""
    trace = _TRACE
    if trace is None or not trace.get_current_span().get_span_context().is_valid:
        return _NO_SPANS
    return _call_spans(trace, function)


@contextlib.contextmanager
def _call_spans(trace: Any, function: str) -> Iterator[None]:
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    tracer = trace.get_tracer(TRACER)
    attributes = {"satchel.function": function}
    queue = tracer.start_span(f"queue {function}", attributes=attributes)
    spans: list[Any] = [queue]

    def dispatch() -> dict[str, str] | None:
        if len(spans) == 1:  # the first dispatch of this call: the queue wait is over
            queue.end()
            spans.append(
                tracer.start_span(f"call {function}", kind=trace.SpanKind.CLIENT, attributes=attributes)
            )
        carrier: dict[str, str] = {}
        TraceContextTextMapPropagator().inject(carrier, context=trace.set_span_in_context(spans[-1]))
        return carrier or None

    try:
        with dispatching(dispatch):
            yield
    except BaseException as exc:
        span = spans[-1]
        span.record_exception(exc)
        span.set_status(trace.Status(trace.StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        raise
    finally:
        spans[-1].end()


class Tracing:
    """ASGI middleware: a SERVER span per HTTP request (see the module doc); probes only when traced."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = scope["headers"]
        if not _traced(headers):  # the common case: nothing to do per request
            return await self.app(scope, receive, send)
        if scope["path"] in _UNTRACED_PATHS and not any(k == _TRACEPARENT for k, _ in headers):
            return await self.app(scope, receive, send)
        method = scope.get("method", "GET")
        attributes = {"http.request.method": method, "url.path": scope["path"]}
        with start_server_span(f"{method} {scope['path']}", headers, attributes=attributes) as span:
            if span is None:
                return await self.app(scope, receive, send)
            request_id = scope.get("state", {}).get("request_id")
            if request_id:
                span.set_attribute("satchel.request_id", request_id)

            async def send_traced(message) -> None:
                if message["type"] == "http.response.start":
                    span.set_attribute("http.response.status_code", message["status"])
                    if message["status"] >= 500:
                        span.set_status(_trace().Status(_trace().StatusCode.ERROR))
                await send(message)

            await self.app(scope, receive, send_traced)
