"""`satchel serve` as a process: the click command in serving/cli.py, and parse_workers."""

from __future__ import annotations

import signal

import httpx
import pytest
from click.testing import CliRunner

from satchel.serving.cli import serve_command
from satchel.serving.server import parse_workers
from tests.serving.running import ServeProcess


def test_parse_workers() -> None:
    assert parse_workers("1:4") == (1, 4)
    assert parse_workers("3") == (3, 3)
    assert parse_workers(2) == (2, 2)
    assert parse_workers((0, 2)) == (0, 2)
    for bad in ("4:1", "x", "1:0", (2, 1)):
        with pytest.raises(ValueError):
            parse_workers(bad)


def test_bad_options_are_refused(tmp_path) -> None:
    runner = CliRunner()
    result = runner.invoke(serve_command, ["add", "--workers", "4:1"])
    assert result.exit_code == 2 and "--workers" in result.output
    empty = tmp_path / "token"
    empty.write_text("\n")
    result = runner.invoke(serve_command, ["add", "--token-file", str(empty)])
    assert result.exit_code == 2 and "empty" in result.output


def test_serve_command_hosts_functions(refs, tmp_path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("tok\n")
    args = [str(refs["add"]), str(refs["describe"]), "--workers", "1:2", "--token-file", str(token_file)]
    with ServeProcess(args, tmp_path / "serve.log") as server:
        url = server.url
        auth = {"authorization": "Bearer tok", "x-request-id": "cli-1"}
        r = httpx.post(f"{url}/v1/functions/add:invoke", json={"a": 2, "b": 3}, headers=auth)
        assert r.json() == {"result": 5.0}
        assert httpx.post(f"{url}/v1/functions/add:invoke", json={"a": 2, "b": 3}).status_code == 401
        # --workers 1:2 starts MIN (1) worker each; the autoscaler adds the second under load
        assert httpx.get(f"{url}/readyz", headers=auth).json()["workers"] == {"add": 1, "describe": 1}
    stderr = server.stderr()
    assert '"request_id": "cli-1"' in stderr  # the JSON access log
    # what it serves, where, and the docs
    assert "serving add, describe" in stderr
    assert f"REST  {url}/v1/functions/{{name}}:invoke" in stderr and f"docs  {url}/docs" in stderr
    # uvicorn drains, runs the shutdown (which closes the workers), then re-raises the signal
    assert "Application shutdown complete" in stderr
    assert server.proc.returncode in (0, -signal.SIGTERM), stderr
