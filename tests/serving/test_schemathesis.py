"""Schemathesis against a real server, from the server's own /openapi.json: no 5xx, and every response
(success or problem document) conforms to the schema the document declares for it."""

from __future__ import annotations

import contextlib

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

import satchel
from satchel.serving import create_app
from tests.serving.running import RunningServer
from tests.waiting import wait_until

# fail, crash and nap answer 5xx by design (the function raised, its worker died, it timed out): left out
SERVED = ["describe", "add", "scale"]
CHECKS = [not_a_server_error, response_schema_conformance]


@contextlib.contextmanager
def _serving(refs, names):
    fns = {name: satchel.load(refs[name], workers=1) for name in names}
    try:
        with RunningServer(create_app(fns)) as running:
            yield running
    finally:
        for fn in fns.values():
            fn.close()


@pytest.fixture(scope="module")
def server(refs):
    with _serving(refs, SERVED) as running:
        yield running


@pytest.fixture(scope="module")
def api_schema(server):
    return schemathesis.openapi.from_url(f"{server.url}/openapi.json")


def generous_timeout(case) -> None:
    """A valid but tiny X-Satchel-Timeout answers 504 by design: such calls get 30 s instead."""
    value = (case.headers or {}).get("X-Satchel-Timeout")
    try:
        tiny = 0 < float(value) < 30
    except (TypeError, ValueError):
        tiny = False
    if tiny:
        case.headers["X-Satchel-Timeout"] = "30"


def fuzz(operation, mode: GenerationMode) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    def run(case) -> None:
        generous_timeout(case)
        case.call_and_validate(checks=CHECKS, timeout=30)

    run()


@pytest.mark.slow
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda m: m.value)
def test_the_api_keeps_its_own_contract(api_schema, mode: GenerationMode) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    invoked = {op.path for op in operations if op.path.endswith(":invoke")}
    assert invoked == {f"/v1/functions/{name}:invoke" for name in SERVED}
    failures = []
    for operation in operations:
        try:
            fuzz(operation, mode)
        except Unsatisfiable:  # no invalid input exists (e.g. a path of one free string): nothing to test
            assert mode is GenerationMode.NEGATIVE, operation.label
        except Exception as exc:  # every operation is fuzzed; all failures reported together
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)


def test_each_function_documents_examples_that_work(server, api_schema) -> None:
    document = httpx.get(f"{server.url}/openapi.json").json()
    bodies = {}
    for name in SERVED:
        post = document["paths"][f"/v1/functions/{name}:invoke"]["post"]
        bodies[name] = post["requestBody"]["content"]["application/json"]["example"]
        assert "result" in post["responses"]["200"]["content"]["application/json"]["example"]
    # defaults are used when there are any; otherwise a sample value of each type
    assert bodies == {
        "describe": {"n": 1, "suffix": ""},
        "add": {"a": 1.5, "b": 1.5},
        "scale": {"values": [1.5], "factor": 1.5, "offset": 0.0},
    }
    describe = document["paths"]["/v1/functions/describe:invoke"]["post"]
    assert describe["requestBody"]["description"] == "Say a number in words."
    assert describe["responses"]["200"]["content"]["application/json"]["example"] == {"result": "text"}
    # each request example, sent as is, is served and answered as documented
    for result in api_schema.get_all_operations():
        operation = result.ok()
        name = operation.path.removeprefix("/v1/functions/").removesuffix(":invoke")
        if name in bodies:
            case = operation.Case(body=bodies[name], media_type="application/json")
            response = case.call_and_validate(checks=CHECKS, timeout=30)
            assert response.status_code == 200, response.text


@pytest.fixture(scope="module")
def job_server(refs):
    """Two functions with jobs that end without a result: `fail` (failed) and `nap` (cancelled)."""
    with _serving(refs, ("fail", "nap")) as running:
        yield running


def test_job_documents_of_two_functions_keep_the_contract(job_server) -> None:
    url = job_server.url
    failed = httpx.post(f"{url}/v1/functions/fail/jobs", json={"message": "no"}).json()["id"]
    napping = httpx.post(f"{url}/v1/functions/nap/jobs", json={"seconds": 600}).json()["id"]

    def state(job_id: str) -> str:
        return httpx.get(f"{url}/v1/jobs/{job_id}").json()["state"]

    wait_until(lambda: state(failed) == "failed", timeout=120, what="the fail job to fail")
    api = schemathesis.openapi.from_url(f"{url}/openapi.json")
    get = api["/v1/jobs/{id}"]["GET"]
    cancel = api["/v1/jobs/{id}"]["DELETE"]
    cancelled = cancel.Case(path_parameters={"id": napping}).call_and_validate(checks=CHECKS, timeout=30)
    assert cancelled.json()["state"] == "cancelled" and "result" not in cancelled.json()
    for job_id, expected in ((failed, "failed"), (napping, "cancelled")):
        response = get.Case(path_parameters={"id": job_id}).call_and_validate(checks=CHECKS, timeout=30)
        assert response.json()["state"] == expected
    allowed = httpx.options(f"{url}/v1/jobs/{failed}").headers["allow"]
    assert {m.strip() for m in allowed.split(",")} >= {"GET", "HEAD", "DELETE"}
