"""The trace context of a call (W3C Trace Context), on both sides of the envelope.

In a function running in a Satchel worker:

    from satchel.runtime.worker.context import traceparent, tracestate

    traceparent()  # "00-<trace id>-<parent span id>-<flags>" of the request being served, or None

The caller sends the context of its current OpenTelemetry span (or, in a worker, of the call being
served, so a function calling another Satchel function continues the trace) in the CALL envelope
(version 2, docs/protocol.md); a call without one travels as version 1 and costs nothing more. The
worker runs the function with that context current and, when OpenTelemetry is importable in its
environment, inside a SERVER span `satchel.worker <function>`, a child of it. That span is recorded
and exported when the environment also has opentelemetry-sdk and the worker's environment variables
name an exporter (spans.py: the gateway's knob, SATCHEL_TRACE_EXPORTER; off by default); the provider
is installed at the first traced call.

Imports only the standard library (it ships in the worker kit); OpenTelemetry is looked up lazily.
"""

from __future__ import annotations

import contextlib
import contextvars
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import Any

__all__ = ["traceparent", "tracestate", "current", "outgoing", "running", "dispatching"]

_current: contextvars.ContextVar[Mapping[str, str] | None] = contextvars.ContextVar(
    "satchel_call_context", default=None
)
_dispatch: contextvars.ContextVar[Callable[[], Mapping[str, str] | None] | None] = contextvars.ContextVar(
    "satchel_dispatch_hook", default=None
)
_UNSET: Any = object()
TRACER = "satchel.worker"  # the tracer's name, and its spans' prefix
WORKER_SERVICE = "satchel-worker"  # service.name of the spans a worker exports
_otel: Any = _UNSET  # (trace module, propagator) once looked up, None if OpenTelemetry is absent


def current() -> Mapping[str, str]:
    """The context of the call this code runs for (empty outside a traced call)."""
    return _current.get() or {}


def traceparent() -> str | None:
    """The W3C `traceparent` the running call arrived with, or None."""
    return current().get("traceparent")


def tracestate() -> str | None:
    """The W3C `tracestate` the running call arrived with, or None."""
    return current().get("tracestate")


def outgoing() -> Mapping[str, str] | None:
    """The context a call made now should carry, asked by the proxy once the call has a worker: what a
    `dispatching` hook returns, else the current OpenTelemetry span's (if OpenTelemetry is imported and a
    span is active), else the running call's own; None when there is none (the cheap, usual case: a
    dict lookup and two context-variable reads)."""
    hook = _dispatch.get()
    if hook is not None:
        return hook()
    trace = sys.modules.get("opentelemetry.trace")
    if trace is not None:
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            out = {"traceparent": f"00-{span.trace_id:032x}-{span.span_id:016x}-{int(span.trace_flags):02x}"}
            if span.trace_state:
                out["tracestate"] = span.trace_state.to_header()
            return out
    return _current.get()


def _opentelemetry() -> Any:
    global _otel
    if _otel is _UNSET:
        try:
            from opentelemetry import trace
            from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

            _otel = (trace, TraceContextTextMapPropagator())
        except Exception:  # not installed, or broken: the context is still exposed
            _otel = None
        else:
            _install_exporter()
    return _otel


def _install_exporter() -> None:
    """Export this worker's spans as its environment variables say (spans.py), if its environment has
    opentelemetry-sdk. A setting it cannot follow is reported on stderr (the caller's log) once, and
    calls go on with the context propagated only."""
    from satchel.runtime.worker import spans

    try:
        spans.install(spans.exporter_name(), WORKER_SERVICE, need_sdk=False)
    except ValueError as exc:
        print(f"satchel worker: spans are not exported: {exc}", file=sys.stderr, flush=True)
    except Exception as exc:  # a package missing, or a broken exporter
        hint = "; add what it needs to the function's Environment(pypi=[...])"
        print(f"satchel worker: spans are not exported: {exc}{hint}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def running(context: Mapping[str, str], name: str) -> Iterator[None]:
    """Run the body as a call of function `name` carrying `context`: `traceparent()` returns it, and with
    OpenTelemetry importable a SERVER span `satchel.worker <name>` (a child of the context's span) is
    current."""
    token = _current.set(context)
    try:
        otel = _opentelemetry()
        if otel is None:
            yield
        else:
            trace, propagator = otel
            parent = propagator.extract(carrier=dict(context))
            tracer = trace.get_tracer(TRACER)
            with tracer.start_as_current_span(
                f"{TRACER} {name}",
                context=parent,
                kind=trace.SpanKind.SERVER,
                attributes={"satchel.function": name},
            ):
                yield
    finally:
        _current.reset(token)


@contextlib.contextmanager
def dispatching(hook: Callable[[], Mapping[str, str] | None]) -> Iterator[None]:
    """Calls made in the body ask `hook` for their context when they are sent to a worker (a gateway
    ends its queue-wait span and starts its worker-call span there)."""
    token = _dispatch.set(hook)
    try:
        yield
    finally:
        _dispatch.reset(token)
