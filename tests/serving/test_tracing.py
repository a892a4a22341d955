"""W3C trace context end to end: REST request -> gateway spans -> CALL envelope -> the function in its worker."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import satchel
from satchel.runtime.worker import context as call_context
from satchel.serving import create_app
from satchel.serving.tracing import configure_tracing, start_server_span
from tests.functions import textutil, traced
from tests.serving.running import RunningServer
from tests.waiting import wait_until

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"


@pytest.fixture(scope="module")
def exporter():
    """Spans finished in this process (an SDK provider: this module's, or one another test installed)."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        trace.set_tracer_provider(TracerProvider())
        provider = trace.get_tracer_provider()
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    yield memory
    memory.shutdown()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    return (tmp_path_factory.mktemp("store") / "s").as_uri()


@pytest.fixture(scope="module")
def seen_ref(store: str):
    return traced.seen_traceparent.export(name="seen", store=store)


@pytest.fixture(scope="module")
def functions(store: str, seen_ref):
    fns = {
        "add": satchel.load(textutil.add.export(name="add", store=store), workers=1),
        "seen_traceparent": satchel.load(seen_ref, workers=1),
    }
    yield fns
    for fn in fns.values():
        fn.close()


@pytest.fixture(scope="module")
def server(functions, exporter):
    with RunningServer(create_app(functions)) as running:
        yield running


def spans_of(exporter: InMemorySpanExporter, trace_id: int, count: int) -> dict[str, object]:
    """The finished spans of trace `trace_id` by name, once `count` of them are in."""

    def found():
        spans = [s for s in exporter.get_finished_spans() if s.context.trace_id == trace_id]
        return spans if len(spans) >= count else None

    return {s.name: s for s in wait_until(found, timeout=10, what=f"{count} spans of trace {trace_id:032x}")}


def test_request_spans_are_children_of_the_incoming_traceparent(server, exporter) -> None:
    r = httpx.post(
        f"{server.url}/v1/functions/seen_traceparent:invoke",
        json={"tag": "a"},
        headers={"traceparent": TRACEPARENT, "tracestate": "congo=t61rcWkgMzE"},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    spans = spans_of(exporter, int(TRACE_ID, 16), 3)
    server_span = spans["POST /v1/functions/seen_traceparent:invoke"]
    assert server_span.kind == trace.SpanKind.SERVER
    assert server_span.parent is not None and server_span.parent.span_id == int(PARENT_ID, 16)
    assert server_span.parent.is_remote
    assert server_span.attributes["http.response.status_code"] == 200
    queue, call = spans["queue seen_traceparent"], spans["call seen_traceparent"]
    assert queue.parent.span_id == server_span.context.span_id
    assert call.parent.span_id == server_span.context.span_id
    assert call.kind == trace.SpanKind.CLIENT
    assert queue.end_time <= call.start_time
    # in the worker: the same trace, and the gateway's call span as the parent
    version, trace_id, parent_id, flags = r.json()["result"].split("-")
    assert (version, trace_id, parent_id, flags) == ("00", TRACE_ID, f"{call.context.span_id:016x}", "01")


def test_a_request_without_traceparent_starts_a_new_trace(server, exporter) -> None:
    r = httpx.post(f"{server.url}/v1/functions/seen_traceparent:invoke", json={}, timeout=60)
    assert r.status_code == 200, r.text
    seen = r.json()["result"]
    assert seen.startswith("00-") and TRACE_ID not in seen  # the SDK is installed: a new trace
    spans = spans_of(exporter, int(seen.split("-")[1], 16), 3)
    assert spans["POST /v1/functions/seen_traceparent:invoke"].parent is None


def test_errors_mark_the_call_span(server, exporter) -> None:
    trace_id = "0af7651916cd43dd8448eb211c80319c"
    r = httpx.post(
        f"{server.url}/v1/functions/add:invoke",
        json={"a": 1, "b": 2},
        headers={"traceparent": f"00-{trace_id}-b7ad6b7169203331-01", "X-Satchel-Timeout": "0.000001"},
        timeout=60,
    )
    assert r.status_code == 504, r.text
    spans = spans_of(exporter, int(trace_id, 16), 2)
    failed = spans.get("call add") or spans["queue add"]  # timed out before or after it had a worker
    assert failed.status.status_code == trace.StatusCode.ERROR
    assert "CallTimeout" in failed.status.description


def test_a_call_outside_any_span_carries_no_context(functions) -> None:
    assert functions["seen_traceparent"]() == ""


def test_a_proxy_call_in_a_span_carries_its_context(functions, exporter) -> None:
    with trace.get_tracer("test").start_as_current_span("caller") as span:
        seen = functions["seen_traceparent"]()
    context = span.get_span_context()
    assert seen.split("-")[1:3] == [f"{context.trace_id:032x}", f"{context.span_id:016x}"]


def test_start_server_span_reads_grpc_metadata(exporter) -> None:
    metadata = (("content-type", "application/grpc"), ("TraceParent", TRACEPARENT))
    with start_server_span("satchel.v1.Functions/Invoke", metadata) as span:
        assert trace.get_current_span() is span
    assert span.parent.span_id == int(PARENT_ID, 16)
    assert span.context.trace_id == int(TRACE_ID, 16)
    with start_server_span("x", {}) as root:  # no context, SDK installed: a new root span
        assert root.parent is None


def test_configure_tracing_checks_the_exporter_name(monkeypatch) -> None:
    with pytest.raises(
        ValueError, match="trace exporter 'jaeger': expected one of console, otlp, jsonl, none"
    ):
        configure_tracing("jaeger")
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    assert configure_tracing() == "none"
    monkeypatch.setenv("SATCHEL_TRACE_EXPORTER", "Console")
    assert configure_tracing() == "console"  # a provider is installed already: left alone


WITHOUT_SDK = """
import json, sys
import satchel
from starlette.testclient import TestClient
from satchel.serving import create_app

with satchel.load(sys.argv[1], workers=1) as fn, TestClient(create_app({"seen": fn})) as client:
    traced = client.post("/v1/functions/seen:invoke", json={}, headers={"traceparent": sys.argv[2]})
    plain = client.post("/v1/functions/seen:invoke", json={})
    print(json.dumps([traced.json()["result"], plain.json()["result"]]))
"""


@pytest.mark.slow
def test_without_an_sdk_the_traceparent_still_reaches_the_function(seen_ref) -> None:
    """The default deployment: opentelemetry-api only, no exporter. Nothing is recorded, the incoming
    context passes through to the worker unchanged, and a request without one carries none."""
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_SDK, str(seen_ref), TRACEPARENT],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == [TRACEPARENT, ""]


def test_the_worker_side_runs_the_call_in_a_child_span(exporter) -> None:
    """What a worker does with a CALL's context when OpenTelemetry is importable in its environment
    (here: this process's): the function sees the incoming traceparent, inside a SERVER span child of it,
    and calls it makes carry that span's context."""
    context = {"traceparent": TRACEPARENT, "tracestate": "congo=t61rcWkgMzE"}
    assert call_context.traceparent() is None
    with call_context.running(context, "seen_traceparent"):
        assert call_context.traceparent() == TRACEPARENT
        assert call_context.tracestate() == "congo=t61rcWkgMzE"
        span = trace.get_current_span()
        onward = call_context.outgoing()
    assert call_context.current() == {}
    assert span.parent.span_id == int(PARENT_ID, 16) and span.context.trace_id == int(TRACE_ID, 16)
    assert span.kind == trace.SpanKind.SERVER and span.name == "satchel.worker seen_traceparent"
    assert span.attributes["satchel.function"] == "seen_traceparent"
    assert onward["traceparent"] == f"00-{TRACE_ID}-{span.context.span_id:016x}-01"
    assert onward["tracestate"] == "congo=t61rcWkgMzE"
