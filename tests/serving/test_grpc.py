"""The gRPC gateway (satchel.v1.Functions) on a real server, started by the REST app's lifespan on loopback,
called through a real grpcio channel with the committed stubs."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import grpc
import httpx
import pytest
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from satchel.bindings.codec import Codec, RequestCodec
from satchel.bindings.proto.satchel.v1 import functions_pb2 as pb
from satchel.bindings.proto.satchel.v1 import functions_pb2_grpc as pb_grpc
from satchel.serving import create_app
from tests.conftest import REPO
from tests.serving.running import RunningServer
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
PROTO_ROOT = ROOT / "bindings" / "proto"
TOKEN = "s3cret-grpc-token"


class Gateway:
    """A running app with its gRPC port, and a channel to it."""

    def __init__(self, app) -> None:
        self.app = app
        self.running = RunningServer(app)

    def __enter__(self) -> Gateway:
        self.running.__enter__()
        self.port = self.app.state.grpc_port
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        self.stub = pb_grpc.FunctionsStub(self.channel)
        return self

    def __exit__(self, *exc: object) -> None:
        self.channel.close()
        self.running.__exit__(*exc)


@pytest.fixture(scope="module")
def gateway(loaded):
    with Gateway(create_app(loaded, grpc_port=0)) as running:
        yield running


@pytest.fixture(scope="module")
def stub(gateway) -> pb_grpc.FunctionsStub:
    return gateway.stub


def request(loaded, name: str, **arguments) -> pb.InvokeRequest:
    codec = RequestCodec(loaded[name].schema["request"])
    return pb.InvokeRequest(
        function=name, payload=codec.encode_call(arguments), request_fingerprint=codec.fingerprint_hex
    )


def result(loaded, name: str, payload: bytes):
    return Codec(loaded[name].schema["response"]).decode(payload)


def trailers(error: grpc.RpcError) -> dict[str, str]:
    return dict(error.trailing_metadata() or ())


# -- the stubs ------------------------------------------------------------------------------------------


def test_committed_stubs_match_the_proto(tmp_path) -> None:
    """Stale stubs fail here: the descriptor compiled from the .proto now must be the one in functions_pb2
    (compared as messages, so the generator's version does not matter), and every rpc has a stub."""
    pytest.importorskip("grpc_tools", reason="grpcio-tools compiles the .proto")
    out = tmp_path / "functions.desc"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{PROTO_ROOT}",
            f"--descriptor_set_out={out}",
            "satchel/v1/functions.proto",
        ],
        check=True,
    )
    compiled = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file[0]
    _drop_json_names(compiled.message_type)  # derived from the field names; gencode leaves them out
    committed = descriptor_pb2.FileDescriptorProto.FromString(pb.DESCRIPTOR.serialized_pb)
    assert committed == compiled, "bindings/proto stubs are stale: run scripts/gen_protos.sh"
    stubs = (PROTO_ROOT / "satchel" / "v1" / "functions_pb2_grpc.py").read_text()
    for method in compiled.service[0].method:
        assert f"'/satchel.v1.Functions/{method.name}'" in stubs, f"no stub for {method.name}: regenerate"
    assert "from . import functions_pb2" in stubs  # importable as satchel.bindings.proto.satchel.v1


def _drop_json_names(messages) -> None:
    for message in messages:
        for field in message.field:
            field.ClearField("json_name")
        _drop_json_names(message.nested_type)


# -- Invoke ---------------------------------------------------------------------------------------------


def test_invoke(stub, loaded) -> None:
    reply, call = stub.Invoke.with_call(request(loaded, "add", a=1.5, b=2.0))
    assert result(loaded, "add", reply.payload) == 3.5
    assert reply.response_fingerprint == Codec(loaded["add"].schema["response"]).fingerprint_hex
    assert len(dict(call.initial_metadata())["x-request-id"]) == 32  # generated
    reply = stub.Invoke(request(loaded, "scale", values=[1.0, 2.0], factor=2.0, offset=0.5))
    assert result(loaded, "scale", reply.payload) == [2.5, 4.5]


def test_request_id_is_echoed(stub, loaded) -> None:
    _, call = stub.Invoke.with_call(
        request(loaded, "add", a=1.0, b=1.0), metadata=[("x-request-id", "abc-1")]
    )
    assert dict(call.initial_metadata())["x-request-id"] == "abc-1"


def test_wrong_fingerprint_names_the_expected_one(stub, loaded) -> None:
    req = request(loaded, "add", a=1.0, b=2.0)
    req.request_fingerprint = "0123456789abcdef"
    with pytest.raises(grpc.RpcError) as info:
        stub.Invoke(req)
    expected = RequestCodec(loaded["add"].schema["request"]).fingerprint_hex
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert expected in info.value.details() and "0123456789abcdef" in info.value.details()
    assert trailers(info.value)["x-satchel-error-kind"] == "fingerprint-mismatch"


def test_bad_argument_names_the_parameter(stub, loaded) -> None:
    good = request(loaded, "scale", values=[1.0, 2.0], factor=2.0, offset=0.0)
    truncated = pb.InvokeRequest(
        function="scale", payload=good.payload[:-12], request_fingerprint=good.request_fingerprint
    )  # the array of `values` is whole (18 bytes), `factor` is cut short (4 of its 8 bytes)
    with pytest.raises(grpc.RpcError) as info:
        stub.Invoke(truncated)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details().startswith("parameter 'factor': the payload ends before")
    assert trailers(info.value)["x-satchel-error-kind"] == "invalid-argument"
    assert trailers(info.value)["x-satchel-parameter"] == "factor"


def test_unknown_function_is_not_found(stub) -> None:
    with pytest.raises(grpc.RpcError) as info:
        stub.Invoke(pb.InvokeRequest(function="nope", payload=b""))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert "'nope'" in info.value.details() and "add" in info.value.details()
    assert trailers(info.value)["x-satchel-error-kind"] == "unknown-function"
    with pytest.raises(grpc.RpcError) as info:
        stub.Describe(pb.DescribeRequest(function="nope"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_function_error_is_unknown_with_its_type_and_no_traceback(stub, loaded) -> None:
    with pytest.raises(grpc.RpcError) as info:
        stub.Invoke(request(loaded, "fail", message="bad input 42"))
    assert info.value.code() == grpc.StatusCode.UNKNOWN
    assert info.value.details() == "ValueError: bad input 42"
    assert "Traceback" not in info.value.details()
    assert trailers(info.value)["x-satchel-error-kind"] == "remote-error"


def test_debug_adds_the_traceback(loaded) -> None:
    with Gateway(create_app(loaded, grpc_port=0, debug=True)) as running:
        with pytest.raises(grpc.RpcError) as info:
            running.stub.Invoke(request(loaded, "fail", message="loud"))
    assert info.value.code() == grpc.StatusCode.UNKNOWN
    assert info.value.details().startswith("ValueError: loud\nTraceback")
    assert "raise ValueError(message)" in info.value.details()


def test_deadline_interrupts_a_running_call(stub, loaded) -> None:
    with pytest.raises(grpc.RpcError) as info:
        stub.Invoke(request(loaded, "nap", seconds=60.0), timeout=0.5)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    reply = stub.Invoke(request(loaded, "nap", seconds=0.0), timeout=60)
    assert result(loaded, "nap", reply.payload) == 0.0


def test_full_queue_is_resource_exhausted_with_retry_after(stub, loaded) -> None:
    nap = loaded["nap"]
    slot = nap._pool.acquire()  # hold nap's only worker
    try:
        waiting = stub.Invoke.future(request(loaded, "nap", seconds=0.0), timeout=60)
        wait_until(lambda: nap.pending == 1, what="the call to wait for the worker")
        with pytest.raises(grpc.RpcError) as info:
            stub.Invoke(request(loaded, "nap", seconds=0.0))
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert trailers(info.value)["retry-after"] == "1"
        assert trailers(info.value)["x-satchel-error-kind"] == "overloaded"
    finally:
        nap._pool.release(slot)
    assert result(loaded, "nap", waiting.result(timeout=60).payload) == 0.0


def test_worker_crash_is_unavailable_and_the_next_call_works(stub, loaded) -> None:
    with pytest.raises(grpc.RpcError) as info:
        stub.Invoke(request(loaded, "crash", how="exit"))
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert trailers(info.value)["x-satchel-error-kind"] == "worker-crashed"
    assert isinstance(result(loaded, "crash", stub.Invoke(request(loaded, "crash", how="none")).payload), int)


def test_metrics_count_grpc_calls(gateway, stub, loaded) -> None:
    stub.Invoke(request(loaded, "add", a=1.0, b=2.0))
    text = httpx.get(f"{gateway.running.url}/metrics").text
    assert 'satchel_grpc_requests_total{code="OK",function="add"}' in text
    assert 'satchel_request_duration_seconds_count{function="add"}' in text


# -- Describe, List, health, reflection -----------------------------------------------------------------


def test_describe_returns_the_schemas(stub, loaded) -> None:
    d = stub.Describe(pb.DescribeRequest(function="add"))
    assert d.name == "add" and d.doc == "Add two numbers."
    assert json.loads(d.request_schema) == loaded["add"].schema["request"]
    assert json.loads(d.response_schema) == loaded["add"].schema["response"]
    assert d.request_fingerprint == RequestCodec(json.loads(d.request_schema)).fingerprint_hex
    assert d.response_fingerprint == Codec(json.loads(d.response_schema)).fingerprint_hex
    assert d.bundle == str(loaded["add"].ref)
    names = [f.name for f in stub.List(pb.ListRequest()).functions]
    assert names == sorted(loaded)


def test_health_is_serving_overall_and_per_function(gateway) -> None:
    health = health_pb2_grpc.HealthStub(gateway.channel)
    for service in ("", "satchel.v1.Functions", "add", "nap"):
        reply = health.Check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING, service
    with pytest.raises(grpc.RpcError) as info:
        health.Check(health_pb2.HealthCheckRequest(service="nope"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_shutdown_turns_health_not_serving_for_watchers(loaded) -> None:
    with Gateway(create_app(loaded, grpc_port=0, grpc_grace=2.0)) as running:
        health = health_pb2_grpc.HealthStub(running.channel)
        updates = health.Watch(health_pb2.HealthCheckRequest(service="add"), timeout=60)
        assert next(updates).status == health_pb2.HealthCheckResponse.SERVING
        running.running.server.should_exit = True  # the lifespan's shutdown drains gRPC first
        assert next(updates).status == health_pb2.HealthCheckResponse.NOT_SERVING
        updates.cancel()


def test_grpc_calls_join_the_rest_drain(loaded) -> None:
    """In-flight gRPC calls count in the app's drain (the server waits for them); once it drains, health
    answers NOT_SERVING and new calls get UNAVAILABLE with retry-after."""
    with Gateway(create_app(loaded, grpc_port=0)) as running:
        drain, nap = running.app.state.drain, loaded["nap"]
        slot = nap._pool.acquire()  # the call waits for nap's only worker: it stays in flight
        try:
            waiting = running.stub.Invoke.future(request(loaded, "nap", seconds=0.0), timeout=60)
            wait_until(lambda: drain.in_flight == 1, what="the gRPC call to count in the drain")
        finally:
            nap._pool.release(slot)
        assert result(loaded, "nap", waiting.result(timeout=60).payload) == 0.0
        assert drain.in_flight == 0
        drain.begin()  # what DrainingServer does on SIGTERM
        health = health_pb2_grpc.HealthStub(running.channel)
        for service in ("", "add"):
            status = health.Check(health_pb2.HealthCheckRequest(service=service)).status
            assert status == health_pb2.HealthCheckResponse.NOT_SERVING, service
        with pytest.raises(grpc.RpcError) as info:
            running.stub.Invoke(request(loaded, "add", a=1.0, b=2.0))
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert trailers(info.value)["x-satchel-error-kind"] == "draining"
        assert trailers(info.value)["retry-after"] == "1"


def list_services(channel: grpc.Channel, metadata=()) -> list[str]:
    reflect = reflection_pb2_grpc.ServerReflectionStub(channel)
    replies = reflect.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), metadata=metadata
    )
    return [s.name for reply in replies for s in reply.list_services_response.service]


def test_reflection_lists_the_service(gateway) -> None:
    services = list_services(gateway.channel)
    assert "satchel.v1.Functions" in services and "grpc.health.v1.Health" in services


# -- jobs -----------------------------------------------------------------------------------------------


def test_submit_then_get_job_until_succeeded(stub, loaded) -> None:
    job = stub.Submit(request(loaded, "add", a=2.0, b=3.0))
    assert job.function == "add" and job.state in (pb.Job.QUEUED, pb.Job.RUNNING, pb.Job.SUCCEEDED)
    assert job.created_at > 0
    done = wait_until(
        lambda: (j := stub.GetJob(pb.GetJobRequest(id=job.id))).state == pb.Job.SUCCEEDED and j,
        timeout=60,
        what="the job to succeed",
    )
    assert result(loaded, "add", done.payload) == 5.0 and done.finished_at >= done.created_at


def test_failed_job_carries_the_error(stub, loaded) -> None:
    job = stub.Submit(request(loaded, "fail", message="nope"))
    done = wait_until(
        lambda: (j := stub.GetJob(pb.GetJobRequest(id=job.id))).state == pb.Job.FAILED and j,
        timeout=60,
        what="the job to fail",
    )
    assert done.error.kind == "remote-error" and done.error.message == "ValueError: nope"


def test_cancel_a_running_job(stub, loaded) -> None:
    job = stub.Submit(request(loaded, "nap", seconds=60.0))
    wait_until(
        lambda: stub.GetJob(pb.GetJobRequest(id=job.id)).state == pb.Job.RUNNING,
        timeout=60,
        what="the job to run",
    )
    cancelled = stub.Cancel(pb.CancelRequest(id=job.id))
    assert cancelled.state == pb.Job.CANCELLED and cancelled.id == job.id
    assert stub.GetJob(pb.GetJobRequest(id=job.id)).state == pb.Job.CANCELLED
    reply = stub.Invoke(request(loaded, "nap", seconds=0.0), timeout=60)  # nap's worker answers again
    assert result(loaded, "nap", reply.payload) == 0.0


def test_unknown_job_is_not_found(stub) -> None:
    for call in (stub.GetJob, stub.Cancel):
        with pytest.raises(grpc.RpcError) as info:
            call(pb.GetJobRequest(id="missing") if call is stub.GetJob else pb.CancelRequest(id="missing"))
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        assert trailers(info.value)["x-satchel-error-kind"] == "unknown-job"


# -- auth -----------------------------------------------------------------------------------------------


def test_token_is_required_except_for_health(loaded) -> None:
    with Gateway(create_app(loaded, grpc_port=0, token=TOKEN)) as running:
        stub = running.stub
        for metadata in ((), (("authorization", "Bearer wrong"),)):
            with pytest.raises(grpc.RpcError) as info:
                stub.Invoke(request(loaded, "add", a=1.0, b=2.0), metadata=metadata)
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert trailers(info.value)["x-satchel-error-kind"] == "unauthorized"
        with pytest.raises(grpc.RpcError) as info:
            list_services(running.channel)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        good = (("authorization", f"Bearer {TOKEN}"),)
        reply = stub.Invoke(request(loaded, "add", a=1.0, b=2.0), metadata=good)
        assert result(loaded, "add", reply.payload) == 3.0
        assert "satchel.v1.Functions" in list_services(running.channel, metadata=good)
        health = health_pb2_grpc.HealthStub(running.channel)
        assert health.Check(health_pb2.HealthCheckRequest()).status == health_pb2.HealthCheckResponse.SERVING


# -- satchel serve --grpc-port ---------------------------------------------------------------------------


def test_serve_command_with_grpc_port(refs, loaded, tmp_path) -> None:
    """`satchel serve REF --grpc-port 0` in its own process: the bound port is logged, Invoke answers, and
    SIGTERM stops it."""
    log = tmp_path / "stderr.log"
    code = "import sys; from satchel.serving.cli import serve_command; serve_command(sys.argv[1:])"
    args = [str(refs["add"]), "--port", "0", "--grpc-port", "0", "--workers", "1"]  # any free ports
    with log.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-c", code, *args],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        found = wait_until(
            lambda: (
                proc.poll() is not None
                or re.search(r"gRPC server listening on [\d.]+:(\d+)", log.read_text())
            ),
            timeout=120,
            what="satchel serve to log its gRPC port",
        )
        assert proc.poll() is None, log.read_text()
        with grpc.insecure_channel(f"127.0.0.1:{found.group(1)}") as channel:
            stub = pb_grpc.FunctionsStub(channel)
            try:
                reply = stub.Invoke(request(loaded, "add", a=4.0, b=5.0), timeout=60)
            except grpc.RpcError as exc:
                raise AssertionError(f"{exc}\n{log.read_text()}") from None
            assert result(loaded, "add", reply.payload) == 9.0
        # once listening it says what it serves, on which ports (the ones bound, not 0), and the docs URL
        banner = wait_until(
            lambda: re.search(r"serving add\n  REST  http://127\.0\.0\.1:(\d+)/", log.read_text()),
            timeout=60,
            what="satchel serve to say what it serves",
        )
        port = banner.group(1)
        assert port != "0" and httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
        assert f"  gRPC  127.0.0.1:{found.group(1)} " in log.read_text()
        assert f"  docs  http://127.0.0.1:{port}/docs" in log.read_text()
        proc.send_signal(signal.SIGTERM)
        # uvicorn drains, runs the shutdown (which stops gRPC, then the workers), then re-raises the signal
        assert proc.wait(timeout=60) in (0, -signal.SIGTERM), log.read_text()
        assert "Application shutdown complete" in log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
