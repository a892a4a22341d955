"""A span exporter appending one JSON object per span to a file (`SATCHEL_TRACE_EXPORTER=jsonl`).

Each export is one `write` to a file opened for appending, so a gateway and its workers can share the
file. A line: name, kind, trace_id (32 hex digits), span_id and parent_span_id (16, or null), start and
end (ns since the epoch), status, attributes, service (the resource's service.name) and pid.

Imported only when that exporter is chosen (spans.py): it needs opentelemetry-sdk.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult


def span_record(span: ReadableSpan) -> dict:
    """The JSON-able record of a finished span."""
    context = span.get_span_context()
    parent = span.parent
    return {
        "name": span.name,
        "kind": span.kind.name,
        "trace_id": f"{context.trace_id:032x}",
        "span_id": f"{context.span_id:016x}",
        "parent_span_id": f"{parent.span_id:016x}" if parent is not None else None,
        "start_time_unix_nano": span.start_time,
        "end_time_unix_nano": span.end_time,
        "status": span.status.status_code.name,
        "attributes": {key: _jsonable(value) for key, value in (span.attributes or {}).items()},
        "service": span.resource.attributes.get("service.name"),
        "pid": os.getpid(),
    }


def _jsonable(value: object) -> object:
    return list(value) if isinstance(value, (tuple, list)) else value


class JsonLinesExporter(SpanExporter):
    """Appends finished spans to `path`, one JSON object a line."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        data = "".join(json.dumps(span_record(s), separators=(",", ":")) + "\n" for s in spans).encode()
        with self._lock:
            if self._fd is None:
                return SpanExportResult.FAILURE
            os.write(self._fd, data)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
