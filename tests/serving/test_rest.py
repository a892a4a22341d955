"""The REST gateway on a real uvicorn server: invoke (JSON and Avro), errors, probes, metrics, OpenAPI."""

from __future__ import annotations

import re
import threading

import httpx
import pytest

import satchel
from satchel.bindings.codec import Codec, RequestCodec
from satchel.serving import create_app
from tests.serving.running import RunningServer
from tests.waiting import pid_gone, wait_until

AVRO = "application/avro"


@pytest.fixture(scope="module")
def server(loaded):
    with RunningServer(create_app(loaded)) as running:
        yield running


@pytest.fixture
def client(server):
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


def invoke(client: httpx.Client, name: str, body=None, **kwargs) -> httpx.Response:
    return client.post(f"/v1/functions/{name}:invoke", json=body, **kwargs)


# -- JSON ---------------------------------------------------------------------------------------------


def test_invoke_json(client) -> None:
    r = invoke(client, "add", {"a": 1.5, "b": 2})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {"result": 3.5}
    assert invoke(client, "describe", {"n": 1_200_000}).json() == {"result": "1.2 million"}
    assert invoke(client, "describe", {"n": 3_000_000, "suffix": "!"}).json() == {"result": "3.0 million!"}
    assert invoke(client, "scale", {"values": [1, 2], "factor": 2.0}).json() == {"result": [2.0, 4.0]}


def test_nested_error_names_the_path(client) -> None:
    r = invoke(client, "scale", {"values": [1, "x"], "factor": 2.0})
    assert r.status_code == 400
    assert r.json()["parameter"] == "values"
    assert r.json()["detail"].startswith("parameter 'values'[1]: expected a number")


@pytest.mark.parametrize(
    ("body", "parameter", "fragment"),
    [
        ({"a": "one", "b": 2}, "a", "expected a number"),
        ({"a": 1}, "b", "missing parameter 'b'"),
        ({"a": 1, "b": 2, "c": 3}, "c", "unknown parameter"),
        ([1, 2], None, "JSON object"),
    ],
)
def test_invalid_json_arguments_name_the_parameter(client, body, parameter, fragment) -> None:
    r = invoke(client, "add", body)
    assert r.status_code == 400
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert problem["status"] == 400 and problem["parameter"] == parameter
    assert fragment in problem["detail"]
    assert problem["function"] == "add"


@pytest.mark.parametrize(
    ("body", "args", "kwargs"),
    [({"a": 1}, (1,), {}), ({"a": 1, "b": 2, "c": 3}, (1, 2), {"c": 3}), ({}, (), {})],
)
def test_argument_errors_read_as_in_python(client, loaded, body, args, kwargs) -> None:
    """The same wrong call gets the same words over REST as from a Python call of the function."""
    with pytest.raises(satchel.ArgumentError) as info:
        loaded["add"](*args, **kwargs)
    r = invoke(client, "add", body)
    assert r.status_code == 400
    assert r.json()["detail"] == str(info.value)


def test_malformed_json_and_media_type(client) -> None:
    r = client.post(
        "/v1/functions/add:invoke", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert r.status_code == 400 and "invalid JSON" in r.json()["detail"]
    r = client.post("/v1/functions/add:invoke", content=b"a=1", headers={"content-type": "text/plain"})
    assert r.status_code == 415


def test_unknown_function_is_404(client) -> None:
    r = invoke(client, "nope", {})
    assert r.status_code == 404
    assert "nope" in r.json()["detail"] and "add" in r.json()["functions"]


# -- Avro ---------------------------------------------------------------------------------------------


def test_invoke_avro_both_ways(client, loaded) -> None:
    request = RequestCodec(loaded["add"].schema["request"])
    response = Codec(loaded["add"].schema["response"])
    body = request.encode_call({"a": 1.25, "b": 2.0})
    headers = {"content-type": AVRO, "x-satchel-fingerprint": request.fingerprint_hex}
    r = client.post("/v1/functions/add:invoke", content=body, headers=headers)
    assert r.status_code == 200 and r.json() == {"result": 3.25}
    r = client.post("/v1/functions/add:invoke", content=body, headers={**headers, "accept": AVRO})
    assert r.status_code == 200 and r.headers["content-type"] == AVRO
    assert r.headers["x-satchel-fingerprint"] == response.fingerprint_hex
    assert response.decode(r.content) == 3.25
    r = invoke(client, "add", {"a": 1, "b": 2}, headers={"accept": AVRO})
    assert response.decode(r.content) == 3.0


def test_avro_fingerprint_mismatch_and_malformed_body(client, loaded) -> None:
    request = RequestCodec(loaded["add"].schema["request"])
    body = request.encode_call({"a": 1.0, "b": 2.0})
    for fingerprint in ("0" * 16, None):
        headers = {"content-type": AVRO}
        if fingerprint:
            headers["x-satchel-fingerprint"] = fingerprint
        r = client.post("/v1/functions/add:invoke", content=body, headers=headers)
        assert r.status_code == 400
        assert r.json()["expected_fingerprint"] == request.fingerprint_hex
    headers = {"content-type": AVRO, "x-satchel-fingerprint": request.fingerprint_hex}
    r = client.post("/v1/functions/add:invoke", content=body[:3], headers=headers)
    assert r.status_code == 400 and r.json()["type"].endswith("malformed-body")


# -- failures -----------------------------------------------------------------------------------------


def test_remote_error_is_500_without_traceback(client) -> None:
    r = invoke(client, "fail", {"message": "boom"})
    assert r.status_code == 500
    problem = r.json()
    assert (problem["remote_type"], problem["detail"]) == ("ValueError", "boom")
    assert "traceback" not in problem and "Traceback" not in r.text
    assert invoke(client, "add", {"a": 1, "b": 1}).json() == {"result": 2.0}


def test_worker_crash_is_502_and_the_next_call_works(client, loaded) -> None:
    r = invoke(client, "crash", {"how": "exit"})
    assert r.status_code == 502
    problem = r.json()
    assert re.search(r"worker \d/2 of crash died during the call", problem["detail"]), problem
    assert problem["exit_status"] == 7 and "stderr_tail" not in problem
    wait_until(lambda: None in loaded["crash"].worker_pids, what="the crashed worker to be reaped")
    ready = client.get("/readyz")
    assert ready.status_code == 200  # the other worker of crash is still live
    r = invoke(client, "crash", {"how": "none"})
    assert r.status_code == 200 and isinstance(r.json()["result"], int)


def test_worker_crash_of_the_only_worker_makes_it_unready(client, loaded) -> None:
    nap = loaded["nap"]
    first = nap.worker_pid
    nap._pool.slots[0].process.proc.kill()  # the only worker of nap dies while idle
    wait_until(lambda: pid_gone(first), what="the worker to die")
    wait_until(lambda: nap.worker_pids == [None], what="the pool to see it gone")
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.json()["workers"]["nap"] == 0
    assert invoke(client, "nap", {"seconds": 0.0}).json() == {"result": 0.0}  # a new worker starts
    assert client.get("/readyz").status_code == 200


def test_full_queue_is_429_with_retry_after(client, server, loaded) -> None:
    nap = loaded["nap"]
    slot = nap._pool.acquire()  # hold nap's only worker
    waiting: list[httpx.Response] = []
    thread = threading.Thread(
        target=lambda: waiting.append(
            httpx.post(f"{server.url}/v1/functions/nap:invoke", json={"seconds": 0.0}, timeout=60)
        )
    )
    try:
        thread.start()
        wait_until(lambda: nap.pending == 1, what="the call to wait for the worker")
        r = invoke(client, "nap", {"seconds": 0.0})
        assert r.status_code == 429
        assert r.headers["retry-after"] == "1"
        assert r.json()["type"].endswith("overloaded")
    finally:
        nap._pool.release(slot)
        thread.join(60)
    assert waiting[0].status_code == 200 and waiting[0].json() == {"result": 0.0}


def test_timeout_is_504(client, loaded) -> None:
    nap = loaded["nap"]
    slot = nap._pool.acquire()  # the call cannot get a worker before its timeout
    try:
        r = invoke(client, "nap", {"seconds": 0.0}, headers={"x-satchel-timeout": "0.05"})
    finally:
        nap._pool.release(slot)
    assert r.status_code == 504 and r.json()["type"].endswith("timeout")
    r = invoke(client, "nap", {"seconds": 0.0}, headers={"x-satchel-timeout": "zero"})
    assert r.status_code == 400


def test_timeout_interrupts_a_running_call(client) -> None:
    r = invoke(client, "nap", {"seconds": 60.0}, headers={"x-satchel-timeout": "0.3"})
    assert r.status_code == 504
    assert invoke(client, "nap", {"seconds": 0.0}).json() == {"result": 0.0}


# -- probes, metrics, request ids -----------------------------------------------------------------------


def test_probes(client, loaded) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert set(ready.json()["workers"]) == set(loaded)


def _sample(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(name + "{"):
            series, value = line.rsplit(" ", 1)
            got = ",".join(sorted(series[len(name) + 1 : -1].split(",")))
            if got == wanted:
                return float(value)
    return 0.0


def test_metrics_move(client) -> None:
    before = client.get("/metrics").text
    assert invoke(client, "add", {"a": 1, "b": 2}).status_code == 200
    assert invoke(client, "add", {"a": "x", "b": 2}).status_code == 400
    assert invoke(client, "fail", {"message": "m"}).status_code == 500
    after = client.get("/metrics")
    assert after.headers["content-type"].startswith("text/plain")
    text = after.text

    def moved(name, **labels):
        return _sample(text, name, **labels) - _sample(before, name, **labels)

    assert moved("satchel_requests_total", function="add", status="200") == 1
    assert moved("satchel_requests_total", function="add", status="400") == 1
    assert moved("satchel_errors_total", function="add", kind="invalid-argument") == 1
    assert moved("satchel_errors_total", function="fail", kind="remote-error") == 1
    assert moved("satchel_request_duration_seconds_count", function="add") == 2
    assert _sample(text, "satchel_in_flight", function="add") == 0
    assert _sample(text, "satchel_workers", function="add") == 2
    assert "satchel_queue_depth" in text


def test_request_id_echoed_or_generated(client) -> None:
    r = invoke(client, "add", {"a": 1, "b": 2}, headers={"x-request-id": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    generated = client.get("/healthz").headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    problem = invoke(client, "nope", {}, headers={"x-request-id": "r-9"}).json()
    assert problem["request_id"] == "r-9"


def test_access_log_is_json_with_the_request_id(client, caplog) -> None:
    import json
    import logging

    with caplog.at_level(logging.INFO, logger="satchel.serving.access"):
        invoke(client, "add", {"a": 1, "b": 2}, headers={"x-request-id": "log-me"})
        wait_until(
            lambda: any("log-me" in rec.getMessage() for rec in caplog.records), what="the access log line"
        )
    line = next(json.loads(rec.getMessage()) for rec in caplog.records if "log-me" in rec.getMessage())
    assert line["status"] == 200 and line["path"] == "/v1/functions/add:invoke" and line["method"] == "POST"


# -- OpenAPI ------------------------------------------------------------------------------------------


def test_openapi_has_the_real_schemas(client, loaded) -> None:
    doc = client.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.1")
    op = doc["paths"]["/v1/functions/describe:invoke"]["post"]
    assert op["summary"] == "Say a number in words."
    assert "Say a number in words." in op["description"]
    ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schemas = doc["components"]["schemas"]
    request = schemas[ref.rsplit("/", 1)[1]]
    assert request["properties"]["n"]["type"] == "integer"
    assert request["properties"]["suffix"] == {"type": "string", "default": ""}
    assert request["required"] == ["n"] and request["additionalProperties"] is False
    result = schemas["describe.Result"]
    assert result["properties"]["result"] == {"type": "string"}
    scale = schemas[
        doc["paths"]["/v1/functions/scale:invoke"]["post"]["requestBody"]["content"]["application/json"][
            "schema"
        ]["$ref"].rsplit("/", 1)[1]
    ]
    assert scale["properties"]["values"]["type"] == "array"
    assert {p for p in doc["paths"] if p.endswith(":invoke")} == {f"/v1/functions/{n}:invoke" for n in loaded}
    for status in ("400", "429", "500", "502", "504"):
        assert status in doc["paths"]["/v1/functions/add:invoke"]["post"]["responses"]
    # every $ref resolves
    refs = re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', __import__("json").dumps(doc))
    assert refs and all(r in schemas for r in refs)


def test_swagger_ui(client) -> None:
    r = client.get("/docs")
    assert r.status_code == 200 and "swagger" in r.text.lower() and "/openapi.json" in r.text
    # offline: every asset the page loads is served here, from the package
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", r.text)
    assert any(a.endswith(".js") for a in assets) and any(a.endswith(".css") for a in assets), assets
    for asset in assets:
        assert asset.startswith("/") and not asset.startswith("//"), asset
        fetched = client.get(asset)
        assert fetched.status_code == 200 and len(fetched.content) > 1000, asset


def test_deadlines_and_cancels_racing_quick_replies_cost_no_restart(refs) -> None:
    """Invokes whose X-Satchel-Timeout falls about when the function answers, and jobs deleted right
    after they are submitted, on the gateway's own workers (pipes, replies awaited on its loop): a worker
    that answered, however late, is never killed for it."""
    app = create_app([refs["add"], refs["nap"]], workers=1)
    with RunningServer(app) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        functions = app.state.functions
        pids = {name: functions[name].fn.worker_pids for name in ("add", "nap")}
        statuses = set()
        for i in range(200):
            timeout = f"{0.0002 + 0.00002 * i:.5f}"  # 0.2 to 4.2 ms: before, around and after the answer
            r = invoke(client, "add", {"a": 1, "b": 2}, headers={"x-satchel-timeout": timeout})
            statuses.add(r.status_code)
        for _ in range(40):
            job = client.post("/v1/functions/nap/jobs", json={"seconds": 0.0}).json()
            assert client.delete(f"/v1/jobs/{job['id']}").status_code == 200
        assert invoke(client, "nap", {"seconds": 0.0}).json() == {"result": 0.0}
        assert invoke(client, "add", {"a": 1, "b": 2}).json() == {"result": 3.0}
        assert statuses <= {200, 504} and 504 in statuses
        restarts = {name: functions[name].fn.restarts for name in ("add", "nap")}
        assert restarts == {"add": 0, "nap": 0}
        assert {name: functions[name].fn.worker_pids for name in ("add", "nap")} == pids
        assert "satchel_worker_restarts_total{" not in client.get("/metrics").text
