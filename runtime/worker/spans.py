"""Which span exporter a process uses, and installing it: one knob for the gateway and its workers.

`SATCHEL_TRACE_EXPORTER` (else the standard `OTEL_TRACES_EXPORTER`) names it: `console`, `otlp`, `jsonl`
(one JSON object per span appended to the file `SATCHEL_TRACE_FILE`; processes may share the file) or
`none`, the default. A worker inherits its server's environment, so one setting configures both.

Imports only the standard library (it ships in the worker kit); the OpenTelemetry SDK is imported only
when an exporter is installed.
"""

from __future__ import annotations

import os
from typing import Any

from satchel.core import settings
from satchel.core.errors import MissingExtra

__all__ = ["EXPORTERS", "TRACE_FILE", "exporter_name", "install"]

EXPORTERS = ("console", "otlp", "jsonl", "none")
TRACE_FILE = "SATCHEL_TRACE_FILE"


def exporter_name(exporter: str | None = None) -> str:
    """`exporter`, else $SATCHEL_TRACE_EXPORTER, else $OTEL_TRACES_EXPORTER, else "none" (lower-cased);
    ValueError naming the value when it is none of EXPORTERS, or when `jsonl` has no SATCHEL_TRACE_FILE."""
    name = (
        exporter or settings.raw("SATCHEL_TRACE_EXPORTER") or os.environ.get("OTEL_TRACES_EXPORTER") or "none"
    )
    name = name.strip().lower()
    if name not in EXPORTERS:
        raise ValueError(f"trace exporter {name!r}: expected one of {', '.join(EXPORTERS)}")
    if name == "jsonl" and not settings.raw(TRACE_FILE):
        raise ValueError(f"trace exporter 'jsonl' needs {TRACE_FILE}: the file to append spans to")
    return name


def recording(trace: Any) -> bool:
    """Whether an SDK tracer provider is installed in this process (spans are recorded)."""
    provider = trace.get_tracer_provider()
    return not isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider))


def install(name: str, service: str, *, need_sdk: bool = True) -> bool:
    """Install a tracer provider exporting to `name` (one of EXPORTERS) for service `service` (unless
    $OTEL_SERVICE_NAME names it); True if installed. Nothing for "none", or when a provider is installed
    already (an embedding application's). MissingExtra (`satchel[trace]`) when the OpenTelemetry API or SDK
    is missing (unless not `need_sdk`: then nothing); RuntimeError when, for otlp, no OTLP exporter is."""
    if name == "none":
        return False
    try:
        from opentelemetry import trace
    except ImportError:
        if not need_sdk:
            return False
        raise MissingExtra(f"trace exporter {name!r}", "opentelemetry", "trace") from None
    if recording(trace):
        return False
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            ConsoleSpanExporter,
            SimpleSpanProcessor,
        )
    except ImportError:
        if not need_sdk:
            return False
        raise MissingExtra(f"trace exporter {name!r}", "opentelemetry.sdk", "trace") from None
    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": service}
    provider = TracerProvider(resource=Resource.create(attributes))
    if name == "jsonl":  # a local append: written as each span ends, so the file is always complete
        from satchel.runtime.worker.jsonl_exporter import JsonLinesExporter

        provider.add_span_processor(SimpleSpanProcessor(JsonLinesExporter(settings.raw(TRACE_FILE))))
    elif name == "console":
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    else:
        provider.add_span_processor(BatchSpanProcessor(_otlp_exporter()))
    trace.set_tracer_provider(provider)
    return True


def _otlp_exporter() -> Any:
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        except ImportError:
            raise RuntimeError(
                "trace exporter 'otlp' needs an OTLP exporter: pip install opentelemetry-exporter-otlp"
            ) from None
    return OTLPSpanExporter()
