"""A function whose environment has the OpenTelemetry SDK: it reports the span its worker runs it in
(tests/test_trace_context.py)."""

from __future__ import annotations

import satchel

OTEL = satchel.Environment(python="3.11", pypi=["opentelemetry-sdk==1.45.2"])


@satchel.function(environment=OTEL)
def current_span(tag: str = "") -> str:
    """ "<trace id>-<span id>-<recording: 1 or 0>" of the span current in the worker ("" when none is)."""
    from opentelemetry import trace

    span = trace.get_current_span()
    context = span.get_span_context()
    if not context.is_valid:
        return ""
    return f"{context.trace_id:032x}-{context.span_id:016x}-{int(span.is_recording())}"
