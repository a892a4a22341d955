"""The caller's W3C trace context in mapped calls, and the span a worker records for a traced call when
its environment has the OpenTelemetry SDK and an exporter is configured (runtime/worker/spans.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

import satchel
from satchel.runtime.worker import spans
from tests.functions import otel_traced, traced
from tests.serving.running import ServeProcess
from tests.waiting import wait_until

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"


def caller_span() -> NonRecordingSpan:
    """A span of trace TRACE_ID with id PARENT_ID, as the caller's current span (the OpenTelemetry API
    alone: a remote parent, as a request handler would have)."""
    return NonRecordingSpan(
        SpanContext(int(TRACE_ID, 16), int(PARENT_ID, 16), is_remote=True, trace_flags=TraceFlags(1))
    )


def read_spans(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture(scope="module")
def seen(tmp_path_factory: pytest.TempPathFactory):
    store = (tmp_path_factory.mktemp("store") / "s").as_uri()
    with satchel.load(traced.seen_traceparent.export(name="seen", store=store), workers=2) as fn:
        yield fn


@pytest.mark.parametrize("ordered", [True, False])
def test_mapped_calls_carry_the_callers_trace_context(seen, ordered: bool) -> None:
    with trace.use_span(caller_span()):
        results = seen.map([f"item {i}" for i in range(6)], ordered=ordered)
        assert list(results) == [TRACEPARENT] * 6


def test_map_takes_the_context_current_when_it_is_called(seen) -> None:
    """The calls run on executor threads, and lazily: each carries the context `map` was called in."""
    with trace.use_span(caller_span()):
        results = seen.map(["a", "b", "c"])
    assert list(results) == [TRACEPARENT] * 3  # consumed outside the span
    assert list(seen.map(["d", "e"])) == ["", ""]  # no context, none sent


def test_spans_knob_checks_its_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SATCHEL_TRACE_EXPORTER", raising=False)
    monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
    assert spans.exporter_name() == "none"
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "OTLP ")
    assert spans.exporter_name() == "otlp"
    monkeypatch.setenv("SATCHEL_TRACE_EXPORTER", "jsonl")  # ours wins over the standard variable
    monkeypatch.delenv(spans.TRACE_FILE, raising=False)
    with pytest.raises(ValueError, match="trace exporter 'jsonl' needs SATCHEL_TRACE_FILE"):
        spans.exporter_name()
    monkeypatch.setenv(spans.TRACE_FILE, "spans.jsonl")
    assert spans.exporter_name() == "jsonl"
    with pytest.raises(
        ValueError, match="trace exporter 'zipkin': expected one of console, otlp, jsonl, none"
    ):
        spans.exporter_name("zipkin")


IN_A_WORKER = """
import sys
from opentelemetry import trace
from satchel.runtime.worker.context import running, traceparent

with running({"traceparent": sys.argv[1]}, "f"):
    span = trace.get_current_span()
    print(traceparent(), int(span.is_recording()), f"{span.get_span_context().span_id:016x}")
"""


def run_a_traced_call(**environ: str) -> subprocess.CompletedProcess:
    """What a worker does with a traced call, in a fresh process (OpenTelemetry API and SDK present)."""
    clean = {
        k: v for k, v in os.environ.items() if k not in ("SATCHEL_TRACE_EXPORTER", "OTEL_TRACES_EXPORTER")
    }
    return subprocess.run(
        [sys.executable, "-c", IN_A_WORKER, TRACEPARENT],
        env={**clean, **environ},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_worker_exports_its_call_span_as_configured(tmp_path: Path) -> None:
    out = tmp_path / "spans.jsonl"
    done = run_a_traced_call(SATCHEL_TRACE_EXPORTER="jsonl", SATCHEL_TRACE_FILE=str(out))
    assert done.returncode == 0, done.stderr
    seen, recording, span_id = done.stdout.split()
    assert (seen, recording) == (TRACEPARENT, "1")
    [span] = read_spans(out)
    assert (span["name"], span["span_id"], span["parent_span_id"]) == ("satchel.worker f", span_id, PARENT_ID)


def test_by_default_a_worker_records_nothing() -> None:
    done = run_a_traced_call()
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [TRACEPARENT, "0", PARENT_ID]  # the incoming context, not recorded
    assert done.stderr == ""


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"SATCHEL_TRACE_EXPORTER": "zipkin"}, "trace exporter 'zipkin': expected one of"),
        ({"OTEL_TRACES_EXPORTER": "jsonl"}, "trace exporter 'jsonl' needs SATCHEL_TRACE_FILE"),
    ],
)
def test_a_worker_reports_a_setting_it_cannot_follow_and_goes_on(environ: dict, message: str) -> None:
    done = run_a_traced_call(**environ)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [TRACEPARENT, "0", PARENT_ID]
    assert f"satchel worker: spans are not exported: {message}" in done.stderr


@pytest.fixture(scope="module")
def otel_ref(tmp_path_factory: pytest.TempPathFactory):
    store = (tmp_path_factory.mktemp("otel-store") / "s").as_uri()
    return otel_traced.current_span.export(name="current_span", store=store)


@pytest.mark.slow
def test_the_worker_exports_a_span_child_of_the_callers(
    otel_ref, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The function's environment has opentelemetry-sdk; the worker inherits the exporter setting."""
    out = tmp_path / "spans.jsonl"
    monkeypatch.setenv("SATCHEL_TRACE_EXPORTER", "jsonl")
    monkeypatch.setenv(spans.TRACE_FILE, str(out))
    with satchel.load(otel_ref, workers=1) as fn:
        assert fn("untraced") == ""  # no context: no span, nothing exported
        with trace.use_span(caller_span()):
            seen = fn("traced")
        recorded = wait_until(lambda: read_spans(out) or None, timeout=10, what=f"a span in {out}")
    trace_id, span_id, recording = seen.split("-")
    assert (trace_id, recording) == (TRACE_ID, "1")  # the function ran in a recording child span
    [span] = recorded
    assert span["name"] == "satchel.worker current_span" and span["kind"] == "SERVER"
    assert (span["trace_id"], span["parent_span_id"], span["span_id"]) == (TRACE_ID, PARENT_ID, span_id)
    assert span["attributes"] == {"satchel.function": "current_span"}
    assert span["service"] == "satchel-worker" and span["status"] == "UNSET"
    assert span["pid"] != os.getpid()


@pytest.mark.slow
def test_one_setting_exports_the_gateways_and_the_workers_spans(otel_ref, tmp_path: Path) -> None:
    """`satchel serve` with SATCHEL_TRACE_EXPORTER=jsonl: the request's spans, from the gateway and from
    the worker, land in one file as one trace, the worker's span a child of the gateway's call span."""
    out = tmp_path / "spans.jsonl"
    environ = {"SATCHEL_TRACE_EXPORTER": "jsonl", spans.TRACE_FILE: str(out)}
    args = [str(otel_ref), "--workers", "1"]
    with ServeProcess(args, tmp_path / "serve.log", env=environ) as server:
        r = httpx.post(
            f"{server.url}/v1/functions/current_span:invoke",
            json={},
            headers={"traceparent": TRACEPARENT},
            timeout=60,
        )
        assert r.status_code == 200, r.text

        def four_spans() -> dict[str, dict] | None:
            found = [s for s in read_spans(out) if s["trace_id"] == TRACE_ID]
            return {s["name"]: s for s in found} if len(found) >= 4 else None

        by_name = wait_until(four_spans, timeout=10, what=f"4 spans of the request in {out}")
    request = by_name["POST /v1/functions/current_span:invoke"]
    call = by_name["call current_span"]
    worker = by_name["satchel.worker current_span"]
    assert request["parent_span_id"] == PARENT_ID and request["service"] == "satchel"
    assert call["parent_span_id"] == request["span_id"] and call["kind"] == "CLIENT"
    assert worker["parent_span_id"] == call["span_id"] and worker["service"] == "satchel-worker"
    assert worker["pid"] != request["pid"]
    assert r.json()["result"] == f"{TRACE_ID}-{worker['span_id']}-1"  # the function ran in that span
