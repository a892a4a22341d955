"""Async jobs over REST on a real server: submit, poll, results, failures, cancel, expiry, 404, Avro."""

from __future__ import annotations

import httpx
import pytest

import satchel
from satchel.bindings.codec import RequestCodec
from satchel.serving import create_app
from satchel.serving.hosted import HostedFunction
from satchel.serving.hosting import Hosting
from satchel.serving.jobs import Jobs
from tests.serving.running import RunningServer
from tests.waiting import wait_until

AVRO = "application/avro"
FINISHED = ("succeeded", "failed", "cancelled")


class Clock:
    """A wall clock the test moves by hand (job expiry)."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def fns(refs):
    loaded = {}
    try:
        for name in ("add", "fail", "nap"):
            loaded[name] = satchel.load(refs[name], workers=1)
        yield loaded
    finally:
        for fn in loaded.values():
            fn.close()


@pytest.fixture(scope="module")
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="module")
def hosting(fns, clock):
    hosted = {name: HostedFunction.of(name, fn) for name, fn in fns.items()}
    hosting = Hosting(functions=hosted, jobs=Jobs(keep_seconds=60.0, clock=clock))
    yield hosting
    hosting.close()


@pytest.fixture(scope="module")
def server(hosting):
    with RunningServer(create_app(hosting)) as running:
        yield running


@pytest.fixture
def client(server):
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


def submit(client: httpx.Client, name: str, body=None, **kwargs) -> httpx.Response:
    return client.post(f"/v1/functions/{name}/jobs", json=body, **kwargs)


def finished(client: httpx.Client, job_id: str) -> dict:
    def done() -> dict | None:
        doc = client.get(f"/v1/jobs/{job_id}").json()
        return doc if doc["state"] in FINISHED else None

    return wait_until(done, timeout=30, what=f"job {job_id} to finish")  # type: ignore[return-value]


def test_submit_then_poll_for_the_result(client) -> None:
    r = submit(client, "add", {"a": 1.5, "b": 2}, headers={"x-request-id": "job-req-1"})
    assert r.status_code == 202, r.text
    job = r.json()
    assert set(job) >= {"id", "function", "state", "created_at"}
    assert job["function"] == "add" and job["state"] in ("queued", "running", "succeeded")
    assert r.headers["location"] == f"/v1/jobs/{job['id']}"
    doc = finished(client, job["id"])
    assert doc["state"] == "succeeded" and doc["result"] == 3.5
    assert doc["request_id"] == "job-req-1"
    assert doc["created_at"].endswith("+00:00") and doc["finished_at"] is not None
    assert "error" not in doc


def test_failing_function_job_fails_with_its_kind(client) -> None:
    job = submit(client, "fail", {"message": "no good"}).json()
    doc = finished(client, job["id"])
    assert doc["state"] == "failed" and "result" not in doc
    error = doc["error"]
    assert error["kind"] == "remote-error" and error["title"] == "The function raised"
    assert "no good" in error["detail"] and error["remote_type"] == "ValueError"
    assert "traceback" not in error


def test_cancel_interrupts_the_running_call(client) -> None:
    job = submit(client, "nap", {"seconds": 120.0}).json()
    wait_until(lambda: client.get(f"/v1/jobs/{job['id']}").json()["state"] == "running", what="running")
    r = client.delete(f"/v1/jobs/{job['id']}")
    assert r.status_code == 200 and r.json()["state"] == "cancelled"
    assert client.get(f"/v1/jobs/{job['id']}").json()["state"] == "cancelled"
    r = client.post("/v1/functions/nap:invoke", json={"seconds": 0.0})  # the worker answers again
    assert r.status_code == 200 and r.json() == {"result": 0.0}
    r = client.delete(f"/v1/jobs/{job['id']}")  # cancelling a finished job answers it as it is
    assert r.status_code == 200 and r.json()["state"] == "cancelled"


def test_finished_jobs_expire_after_the_ttl(client, clock) -> None:
    job = submit(client, "add", {"a": 1, "b": 1}).json()
    assert finished(client, job["id"])["result"] == 2.0
    clock.now += 59.0
    assert client.get(f"/v1/jobs/{job['id']}").status_code == 200
    clock.now += 2.0
    r = client.get(f"/v1/jobs/{job['id']}")
    assert r.status_code == 404 and r.json()["job"] == job["id"]


def test_unknown_job_and_function_are_404(client) -> None:
    for r in (client.get("/v1/jobs/nope"), client.delete("/v1/jobs/nope")):
        assert r.status_code == 404
        assert r.headers["content-type"] == "application/problem+json"
        assert "'nope'" in r.json()["detail"] and r.json()["job"] == "nope"
    r = submit(client, "missing", {})
    assert r.status_code == 404 and "missing" in r.json()["detail"]


def test_invalid_arguments_are_400_before_any_job(client, hosting) -> None:
    before = len(hosting.jobs)
    r = submit(client, "add", {"a": "one", "b": 2})
    assert r.status_code == 400 and r.json()["parameter"] == "a"
    assert len(hosting.jobs) == before


def test_avro_body(client, fns) -> None:
    request = RequestCodec(fns["add"].schema["request"])
    headers = {"content-type": AVRO, "x-satchel-fingerprint": request.fingerprint_hex}
    r = client.post(
        "/v1/functions/add/jobs", content=request.encode_call({"a": 1.25, "b": 2.0}), headers=headers
    )
    assert r.status_code == 202, r.text
    assert finished(client, r.json()["id"])["result"] == 3.25
    r = client.post("/v1/functions/add/jobs", content=b"\x00", headers={"content-type": AVRO})
    assert r.status_code == 400 and r.json()["type"].endswith("fingerprint-mismatch")


def test_too_many_unfinished_jobs_is_429(client, hosting) -> None:
    hosting.jobs.max_jobs = 1
    try:
        running = submit(client, "nap", {"seconds": 120.0}).json()
        r = submit(client, "add", {"a": 1, "b": 1})
        assert r.status_code == 429 and r.headers["retry-after"] == "1"
        assert "max_jobs=1" in r.json()["detail"]
        assert client.delete(f"/v1/jobs/{running['id']}").json()["state"] == "cancelled"
        assert submit(client, "add", {"a": 1, "b": 1}).status_code == 202
    finally:
        hosting.jobs.max_jobs = 10_000


def test_openapi_documents_the_job_routes(client) -> None:
    doc = client.get("/openapi.json").json()
    submit_op = doc["paths"]["/v1/functions/add/jobs"]["post"]
    assert "202" in submit_op["responses"]
    job = doc["paths"]["/v1/jobs/{id}"]
    assert {"get", "delete"} <= set(job)
    result = job["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert result  # the job document, with the results of every function


def test_a_job_waiting_for_a_worker_is_queued_until_it_gets_one(client, fns) -> None:
    first = submit(client, "nap", {"seconds": 120.0}).json()
    wait_until(lambda: client.get(f"/v1/jobs/{first['id']}").json()["state"] == "running", what="running")
    second = submit(client, "nap", {"seconds": 0.0}).json()
    wait_until(lambda: fns["nap"].pending == 1, what="the second job to wait for the worker")
    doc = client.get(f"/v1/jobs/{second['id']}").json()
    assert doc["state"] == "queued" and doc["started_at"] is None
    assert client.delete(f"/v1/jobs/{first['id']}").json()["state"] == "cancelled"
    doc = finished(client, second["id"])
    assert doc["state"] == "succeeded" and doc["started_at"] is not None
