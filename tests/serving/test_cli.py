"""`satchel serve` as a process: the click command in serving/cli.py, and parse_workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import httpx
import pytest
from click.testing import CliRunner

from satchel.serving.cli import serve_command
from satchel.serving.server import parse_workers
from tests.conftest import REPO
from tests.serving.running import free_socket, healthy
from tests.waiting import wait_until


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
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()  # the server binds it again (SO_REUSEADDR)
    code = "import sys; from satchel.serving.cli import serve_command; serve_command(sys.argv[1:])"
    args = [str(refs["add"]), str(refs["describe"]), "--port", str(port), "--workers", "1:2"]
    args += ["--token-file", str(token_file)]
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: proc.poll() is not None or healthy(url), timeout=120, what="satchel serve")
        assert proc.poll() is None, proc.communicate()[1]
        auth = {"authorization": "Bearer tok", "x-request-id": "cli-1"}
        r = httpx.post(f"{url}/v1/functions/add:invoke", json={"a": 2, "b": 3}, headers=auth)
        assert r.json() == {"result": 5.0}
        assert httpx.post(f"{url}/v1/functions/add:invoke", json={"a": 2, "b": 3}).status_code == 401
        # --workers 1:2 starts MIN (1) worker each; the autoscaler adds the second under load
        assert httpx.get(f"{url}/readyz", headers=auth).json()["workers"] == {"add": 1, "describe": 1}
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=60)
    assert '"request_id": "cli-1"' in stderr  # the JSON access log
    # uvicorn drains, runs the shutdown (which closes the workers), then re-raises the signal
    assert "Application shutdown complete" in stderr
    assert proc.returncode in (0, -signal.SIGTERM), stderr
