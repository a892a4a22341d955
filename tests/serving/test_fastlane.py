"""The fast lane (serving/rest/fastlane.py): invocations skip FastAPI's router, with the same answers, and
the same per-request middleware, as the FastAPI route they would otherwise take."""

from __future__ import annotations

import json
import logging

import httpx
import pytest

from satchel.bindings.codec import RequestCodec
from satchel.serving import create_app
from satchel.serving.rest.fastlane import invoked_function
from tests.serving.running import RunningServer
from tests.waiting import wait_until

TOKEN = "lane-token"


@pytest.fixture(scope="module")
def servers(loaded):
    """Two servers over the same functions (with auth): one with the fast lane, one without."""
    fast = create_app({"add": loaded["add"], "fail": loaded["fail"]}, token=TOKEN)
    plain = create_app({"add": loaded["add"], "fail": loaded["fail"]}, token=TOKEN)
    plain.fast_lane = None  # every request takes FastAPI's path
    assert fast.fast_lane is not None
    with RunningServer(fast) as a, RunningServer(plain) as b:
        yield a.url, b.url


def _answers(url: str, add_request_schema: dict) -> list[tuple]:
    codec = RequestCodec(add_request_schema)
    auth = {"authorization": f"Bearer {TOKEN}"}
    requests = [
        ("POST", "/v1/functions/add:invoke", {"json": {"a": 1.5, "b": 2}, "headers": auth}),
        ("POST", "/v1/functions/add:invoke", {"json": {"a": 1.5}, "headers": auth}),  # missing b
        ("POST", "/v1/functions/add:invoke", {"content": b"{nope", "headers": auth}),
        (
            "POST",
            "/v1/functions/add:invoke",
            {"content": b"x", "headers": {**auth, "content-type": "text/csv"}},
        ),
        ("POST", "/v1/functions/nope:invoke", {"json": {}, "headers": auth}),
        ("POST", "/v1/functions/add:invoke", {"json": {"a": 1, "b": 2}}),  # no token
        ("POST", "/v1/functions/fail:invoke", {"json": {"message": "boom"}, "headers": auth}),
        ("POST", "/v1/functions/a/b:invoke", {"json": {}, "headers": auth}),  # not a function name
        (
            "POST",
            "/v1/functions/add:invoke",
            {
                "content": codec.encode_call({"a": 2.0, "b": 0.5}),
                "headers": {
                    **auth,
                    "content-type": "application/avro",
                    "accept": "application/json",
                    "x-satchel-fingerprint": codec.fingerprint_hex,
                },
            },
        ),
    ]
    out = []
    with httpx.Client(base_url=url, timeout=60) as client:
        for method, path, kwargs in requests:
            r = client.request(method, path, **kwargs)
            body = r.json() if r.headers.get("content-type", "").endswith("json") else r.text
            if isinstance(body, dict):
                body.pop("request_id", None)
                body.pop("instance", None)
            out.append(
                (path, r.status_code, r.headers.get("content-type"), "x-request-id" in r.headers, body)
            )
    return out


def test_the_fast_lane_answers_as_fastapi_would(servers, loaded) -> None:
    fast, plain = servers
    schema = loaded["add"].schema["request"]
    got, expected = _answers(fast, schema), _answers(plain, schema)
    assert got == expected
    statuses = [status for _, status, *_ in got]
    assert statuses == [200, 400, 400, 415, 404, 401, 500, 404, 200]
    assert got[0][-1] == {"result": 3.5} and got[-1][-1] == {"result": 2.5}


@pytest.mark.parametrize(
    ("method", "path", "root_path", "name"),
    [
        ("POST", "/v1/functions/add:invoke", "", "add"),
        ("POST", "/v1/functions/my-fn_2:invoke", "", "my-fn_2"),
        ("GET", "/v1/functions/add:invoke", "", None),  # FastAPI answers 405
        ("POST", "/v1/functions/:invoke", "", None),
        ("POST", "/v1/functions/a/b:invoke", "", None),
        ("POST", "/v1/functions/add/jobs", "", None),
        ("POST", "/v1/functions/add:invoke", "/api", None),  # mounted: FastAPI strips the prefix
    ],
)
def test_which_requests_take_the_fast_lane(method, path, root_path, name) -> None:
    scope = {"type": "http", "method": method, "path": path, "root_path": root_path}
    assert invoked_function(scope) == name


def test_access_log_lines_stay_json_whatever_the_request_id(servers, caplog) -> None:
    fast, _ = servers
    odd = 'id "with" quotes \\ and ünïcode'
    with caplog.at_level(logging.INFO, logger="satchel.serving.access"):
        r = httpx.post(
            fast + "/v1/functions/add:invoke",
            json={"a": 1, "b": 2},
            headers={
                "authorization": f"Bearer {TOKEN}",
                "x-request-id": odd.encode("utf-8"),
            },
        )
        assert r.status_code == 200
        wait_until(
            lambda: any("quotes" in rec.getMessage() for rec in caplog.records), what="the access log line"
        )
    lines = [json.loads(rec.getMessage()) for rec in caplog.records if "quotes" in rec.getMessage()]
    assert len(lines) == 1
    line = lines[0]
    assert line["request_id"] == odd.encode("utf-8").decode("latin-1")
    assert line["method"] == "POST" and line["status"] == 200 and line["client"] == "127.0.0.1"
    assert line["duration_ms"] >= 0 and line["time"] > 0
