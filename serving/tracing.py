"""Request ids and the JSON access log (ASGI middleware): X-Request-ID echoed, or generated; and W3C
trace context with OpenTelemetry.

Tracing. A request with a `traceparent` header, or any request once an OpenTelemetry SDK tracer provider
is installed (`configure_tracing`: SATCHEL_TRACE_EXPORTER or OTEL_TRACES_EXPORTER = console | otlp | none,
default none; or the embedding application's own), gets a SERVER span (a child of the incoming
context), and each call in it a `queue <function>` span (waiting for a worker) and a `call <function>`
CLIENT span (the worker's work), whose context travels in the CALL envelope into the worker
(runtime/worker/context.py). Without either, nothing is done per request. Every gateway starts its
spans with `start_server_span(name, carrier)` and wraps calls in `call_spans(function)`.
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

from satchel.runtime.worker.context import dispatching

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


# --- tracing ---------------------------------------------------------------------------------------------

TRACER = "satchel.serving"
_TRACEPARENT = b"traceparent"
_TRACESTATE = b"tracestate"
_UNTRACED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
EXPORTERS = ("console", "otlp", "none")


def _trace() -> Any:
    """The OpenTelemetry trace API, or None when it is not installed."""
    try:
        from opentelemetry import trace
    except ImportError:  # pragma: no cover - the serve extra has it
        return None
    return trace


def _recording(trace: Any) -> bool:
    """Whether an SDK tracer provider is installed (spans are recorded, not just propagated)."""
    provider = trace.get_tracer_provider()
    return not isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider))


def configure_tracing(exporter: str | None = None) -> str:
    """Install a tracer provider exporting to `exporter` (default: $SATCHEL_TRACE_EXPORTER, else
    $OTEL_TRACES_EXPORTER, else "none"); returns the exporter used. Does nothing for "none", or when a
    provider is installed already (the embedding application's). Needs opentelemetry-sdk (the `trace`
    extra), and for otlp an OTLP exporter package (endpoint from the standard OTEL_EXPORTER_OTLP_* vars)."""
    name = (
        exporter
        or os.environ.get("SATCHEL_TRACE_EXPORTER")
        or os.environ.get("OTEL_TRACES_EXPORTER")
        or "none"
    )
    name = name.strip().lower()
    if name not in EXPORTERS:
        raise ValueError(f"trace exporter {name!r}: expected one of {', '.join(EXPORTERS)}")
    trace = _trace()
    if name == "none" or trace is None or _recording(trace):
        return name
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
    except ImportError:
        raise RuntimeError(
            f"trace exporter {name!r} needs opentelemetry-sdk: pip install 'satchel[trace]'"
        ) from None
    if name == "console":
        span_exporter: Any = ConsoleSpanExporter()
    else:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            try:
                from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
            except ImportError:
                raise RuntimeError(
                    "trace exporter 'otlp' needs an OTLP exporter: pip install opentelemetry-exporter-otlp"
                ) from None
        span_exporter = OTLPSpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "satchel"}))
    provider.add_span_processor(BatchSpanProcessor(span_exporter))
    trace.set_tracer_provider(provider)
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


@contextlib.contextmanager
def start_server_span(
    name: str,
    carrier: Mapping[str, str] | Iterable[tuple[Any, Any]] | None,
    *,
    attributes: Mapping[str, Any] | None = None,
) -> Iterator[Any]:
    """Make a SERVER span `name` current for the body, a child of the W3C context in `carrier` (a mapping,
    HTTP header pairs or gRPC invocation metadata; names are case-insensitive). Yields the span, or None
    when there is nothing to do (no trace context and no SDK installed): then it costs nothing."""
    trace = _trace()
    found = _carrier(carrier.items() if isinstance(carrier, Mapping) else (carrier or ()))
    if trace is None or not (found or _recording(trace)):
        yield None
        return
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    parent = TraceContextTextMapPropagator().extract(carrier=found)
    tracer = trace.get_tracer(TRACER)
    with tracer.start_as_current_span(
        name, context=parent, kind=trace.SpanKind.SERVER, attributes=dict(attributes or {})
    ) as span:
        yield span


@contextlib.contextmanager
def call_spans(function: str) -> Iterator[None]:
    """Spans around one call of `function` made in the body: `queue <function>` until the call has a
    worker, then `call <function>` (CLIENT), whose context the worker receives. Nothing without a
    current span."""
    trace = _trace()
    if trace is None or not trace.get_current_span().get_span_context().is_valid:
        yield
        return
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
