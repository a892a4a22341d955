"""Bearer-token auth, and --debug tracebacks, on a second real server."""

from __future__ import annotations

import httpx
import pytest

from satchel.serving import create_app
from tests.serving.running import RunningServer

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def server(loaded):
    app = create_app({"add": loaded["add"], "fail": loaded["fail"]}, token=TOKEN, debug=True)
    with RunningServer(app) as running:
        yield running


ROUTES = [
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("POST", "/v1/functions/add:invoke"),
    ("POST", "/v1/functions/nope:invoke"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_every_route_but_healthz_needs_the_token(server, method, path) -> None:
    kwargs = {"json": {"a": 1, "b": 2}} if method == "POST" else {}
    for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": TOKEN}):
        r = httpx.request(method, server.url + path, headers=headers, **kwargs)
        assert r.status_code == 401, (headers, r.text)
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert r.headers["x-request-id"]
    r = httpx.request(method, server.url + path, headers={"authorization": f"Bearer {TOKEN}"}, **kwargs)
    assert r.status_code == (404 if "nope" in path else 200)


def test_healthz_is_open(server) -> None:
    assert httpx.get(server.url + "/healthz").status_code == 200


def test_openapi_declares_bearer(server) -> None:
    doc = httpx.get(server.url + "/openapi.json", headers={"authorization": f"Bearer {TOKEN}"}).json()
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert {p for p in doc["paths"] if p.endswith(":invoke")} == {
        "/v1/functions/add:invoke",
        "/v1/functions/fail:invoke",
    }


def test_debug_shows_the_remote_traceback(server) -> None:
    r = httpx.post(
        server.url + "/v1/functions/fail:invoke",
        json={"message": "boom"},
        headers={"authorization": f"Bearer {TOKEN}"},
    )
    assert r.status_code == 500
    assert "Traceback" in r.json()["traceback"] and "ValueError: boom" in r.json()["traceback"]


def test_empty_token_is_refused(loaded) -> None:
    with pytest.raises(ValueError):
        create_app({"add": loaded["add"]}, token="")
