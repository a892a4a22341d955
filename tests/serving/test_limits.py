"""The request body size limit: 413 problem documents, decided up front or while the body streams in."""

from __future__ import annotations

import socket

import httpx
import pytest
from click.testing import CliRunner

import satchel
from satchel.serving import create_app
from satchel.serving.cli import serve_command
from satchel.serving.rest.limits import parse_size
from tests.functions import textutil
from tests.serving.running import RunningServer

LIMIT = 100


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    store = (tmp_path_factory.mktemp("store") / "s").as_uri()
    fn = satchel.load(textutil.scale.export(name="scale", store=store), workers=1)
    try:
        with RunningServer(create_app({"scale": fn}, max_body_bytes=LIMIT)) as running:
            yield running
    finally:
        fn.close()


def assert_too_large(r: httpx.Response) -> None:
    assert r.status_code == 413, r.text
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert problem["type"].endswith("/body-too-large")
    assert problem["max_body_bytes"] == LIMIT
    assert "limit of 100 bytes" in problem["detail"]


def test_a_body_under_the_limit_is_served(server) -> None:
    r = httpx.post(f"{server.url}/v1/functions/scale:invoke", json={"values": [1], "factor": 2.0})
    assert r.status_code == 200, r.text
    assert r.json() == {"result": [2.0]}


def test_a_body_over_the_limit_gets_413(server) -> None:
    body = {"values": [1.0] * 50, "factor": 2.0}  # ~ 180 bytes, with its Content-Length
    assert_too_large(httpx.post(f"{server.url}/v1/functions/scale:invoke", json=body))


def test_a_chunked_body_is_refused_once_it_passes_the_limit(server) -> None:
    chunks = iter([b'{"values": [', b"1.0, " * 40, b'1.0], "factor": 2.0}'])  # no Content-Length
    r = httpx.post(
        f"{server.url}/v1/functions/scale:invoke",
        content=chunks,
        headers={"content-type": "application/json"},
    )
    assert_too_large(r)


def test_an_announced_huge_body_is_refused_without_reading_it(server) -> None:
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(
            b"POST /v1/functions/scale:invoke HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 5000000000\r\n\r\n"
        )  # ... and not one byte of the 5 GB: the answer must come anyway
        answer = b""
        while b"\r\n\r\n" not in answer:
            data = sock.recv(65536)
            assert data, "the server closed the connection without answering"
            answer += data
    assert answer.startswith(b"HTTP/1.1 413 ")


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("1048576", 1048576),
        ("32MB", 32_000_000),
        ("64MiB", 64 * 1024**2),
        ("1.5k", 1500),
        ("2 GiB", 2 * 1024**3),
    ],
)
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["lots", "12XB", "0", "-5MB", ""])
def test_parse_size_refuses_nonsense(text: str) -> None:
    with pytest.raises(ValueError, match=f"size {text!r}"):
        parse_size(text)


def test_cli_names_a_bad_max_body() -> None:
    result = CliRunner().invoke(serve_command, ["some-ref", "--max-body", "huge"])
    assert result.exit_code == 2
    assert "--max-body" in result.output and "size 'huge'" in result.output
