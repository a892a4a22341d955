"""Values that do not fit, on every transport: a result that breaks its annotation is `bad-result` (not the
arguments' fault), and bytes that do not decode as their parameter's type are that parameter's fault.
Also the JSON forms of DataFrame and ndarray parameters MLflow users send. Real workers, a real uvicorn
server with its gRPC gateway, and the real CLI."""

from __future__ import annotations

import base64
import io
import json

import grpc
import httpx
import numpy as np
import pandas as pd
import pytest

import satchel
from satchel.bindings.codec import RequestCodec
from satchel.bindings.logical import encode_dataframe
from satchel.bindings.proto.satchel.v1 import functions_pb2 as pb
from satchel.serving import create_app
from tests.functions import frames, textutil
from tests.serving.test_grpc import Gateway, trailers
from tests.test_cli import satchel_cli
from tests.waiting import wait_until

NOT_ARROW = base64.b64encode(b"hello").decode()  # valid base64, not an Arrow IPC stream nor .npy data


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    return (tmp_path_factory.mktemp("store") / "s").as_uri()


@pytest.fixture(scope="module")
def refs(store) -> dict:
    return {
        "liar": textutil.liar.export(name="liar", store=store),
        "columns": frames.columns.export(name="columns", store=store),
        "total": frames.total.export(name="total", store=store),
    }


@pytest.fixture(scope="module")
def fns(refs):
    loaded = {}
    try:
        for name, ref in refs.items():
            loaded[name] = satchel.load(ref, workers=1)
        yield loaded
    finally:
        for fn in loaded.values():
            fn.close()


@pytest.fixture(scope="module")
def gateway(fns):
    with Gateway(create_app(fns, grpc_port=0)) as running:
        yield running


@pytest.fixture
def client(gateway):
    with httpx.Client(base_url=gateway.running.url, timeout=120) as c:
        yield c


def invoke(client: httpx.Client, name: str, body) -> httpx.Response:
    return client.post(f"/v1/functions/{name}:invoke", json=body)


# -- a result that does not fit its annotation -----------------------------------------------------------


def test_python_callers_get_bad_result_and_the_worker_stays_usable(fns) -> None:
    with pytest.raises(satchel.BadResult) as info:
        fns["liar"](1.5)
    assert isinstance(info.value, satchel.RemoteError)
    assert "return value: expected float, got str '1.5'" in info.value.message
    assert "ArgumentError" not in str(info.value)
    assert fns["liar"](2.5, lie=False) == 2.5


def test_rest_answers_bad_result(client) -> None:
    r = invoke(client, "liar", {"x": 1.5})
    assert r.status_code == 500, r.text
    problem = r.json()
    assert problem["type"] == "https://satchel.dev/problems/bad-result"
    assert "return value: expected float" in problem["detail"] and "remote_type" not in problem


def test_a_job_whose_result_does_not_fit_fails_with_bad_result(client) -> None:
    job = client.post("/v1/functions/liar/jobs", json={"x": 1.5}).json()

    def finished() -> dict | None:
        doc = client.get(f"/v1/jobs/{job['id']}").json()
        return doc if doc["state"] in ("succeeded", "failed") else None

    doc = wait_until(finished, timeout=120, what="the job to finish")
    assert doc["state"] == "failed" and doc["error"]["kind"] == "bad-result", doc


def test_grpc_answers_internal_with_kind_bad_result(gateway, fns) -> None:
    codec = RequestCodec(fns["liar"].schema["request"])
    req = pb.InvokeRequest(
        function="liar",
        payload=codec.encode_call({"x": 1.5, "lie": True}),
        request_fingerprint=codec.fingerprint_hex,
    )
    with pytest.raises(grpc.RpcError) as info:
        gateway.stub.Invoke(req)
    assert info.value.code() == grpc.StatusCode.INTERNAL
    assert trailers(info.value)["x-satchel-error-kind"] == "bad-result"
    assert "return value: expected float" in info.value.details()


def test_cli_says_it_is_the_result(refs) -> None:
    out = satchel_cli("call", str(refs["liar"]), "--args", '{"x": 1.5}', check=False)
    assert out.returncode == 1
    assert "BadResult" in out.stderr and "return value: expected float" in out.stderr, out.stderr


# -- bytes that do not decode as their parameter's type -----------------------------------------------------


@pytest.mark.parametrize(("name", "parameter"), [("columns", "df"), ("total", "x")])
def test_rest_json_names_the_parameter(client, name, parameter) -> None:
    r = invoke(client, name, {parameter: NOT_ARROW})
    assert r.status_code == 400, r.text
    problem = r.json()
    assert problem["type"].endswith("/invalid-argument") and problem["parameter"] == parameter
    assert problem["detail"].startswith(f"parameter {parameter!r}: not ")


def test_rest_avro_and_grpc_name_the_parameter(client, gateway, fns) -> None:
    codec = RequestCodec(fns["columns"].schema["request"])
    payload = codec.encode_datum({"df": b"hello"})
    r = client.post(
        "/v1/functions/columns:invoke",
        content=payload,
        headers={"content-type": "application/avro", "x-satchel-fingerprint": codec.fingerprint_hex},
    )
    assert r.status_code == 400, r.text
    assert r.json()["parameter"] == "df" and "not an Arrow IPC stream" in r.json()["detail"]
    req = pb.InvokeRequest(function="columns", payload=payload, request_fingerprint=codec.fingerprint_hex)
    with pytest.raises(grpc.RpcError) as info:
        gateway.stub.Invoke(req)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert trailers(info.value)["x-satchel-parameter"] == "df"
    assert trailers(info.value)["x-satchel-error-kind"] == "invalid-argument"


def test_cli_names_the_parameter(refs) -> None:
    out = satchel_cli("call", str(refs["columns"]), "--args", json.dumps({"df": NOT_ARROW}), check=False)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "parameter 'df': not an Arrow IPC stream" in out.stderr, out.stderr


# -- the JSON forms of tables and arrays ------------------------------------------------------------------


def test_dataframes_as_records_split_or_arrow(client) -> None:
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}, index=[7, 8])
    arrow = base64.b64encode(encode_dataframe(frame)).decode()
    bodies = {
        "records": [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}],
        "split": {"columns": ["a", "b"], "data": [[1, "x"], [2, "y"]], "index": [7, 8]},
        "arrow": arrow,
    }
    answers = {form: invoke(client, "columns", {"df": body}).json() for form, body in bodies.items()}
    assert answers == {
        "records": {"result": ["a", "b", "2", "0"]},
        "split": {"result": ["a", "b", "2", "7"]},
        "arrow": {"result": ["a", "b", "2", "7"]},
    }
    r = invoke(client, "columns", {"df": {"columns": ["a"], "data": [[1, 2]]}})
    assert r.status_code == 400 and r.json()["parameter"] == "df", r.text


def test_arrays_as_json(client) -> None:
    assert invoke(client, "total", {"x": [[1, 2], [3, 4.5]]}).json() == {"result": 21.0}
    npy = io.BytesIO()
    np.save(npy, np.array([1.0, 2.0]))
    assert invoke(client, "total", {"x": base64.b64encode(npy.getvalue()).decode()}).json() == {"result": 3.0}
    r = invoke(client, "total", {"x": [[1], [2, 3]]})
    assert r.status_code == 400 and r.json()["parameter"] == "x", r.text


def test_openapi_shows_each_form_with_an_example_that_works(client) -> None:
    document = client.get("/openapi.json").json()
    for name, parameter, titles in [
        ("columns", "df", ["records", "split orient", "base64 Arrow IPC stream"]),
        ("total", "x", ["nested arrays of numbers", "base64 of .npy bytes"]),
    ]:
        post = document["paths"][f"/v1/functions/{name}:invoke"]["post"]
        schema = post["requestBody"]["content"]["application/json"]["schema"]
        request = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
        forms = request["properties"][parameter]["anyOf"]
        assert [form["title"] for form in forms] == titles
        for form in forms[:-1]:  # the JSON forms: each example is served
            r = invoke(client, name, {parameter: form["examples"][0]})
            assert r.status_code == 200, (form["title"], r.text)
        example = post["requestBody"]["content"]["application/json"]["example"]
        assert invoke(client, name, example).status_code == 200, example
