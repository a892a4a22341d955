"""A real uvicorn server on a free loopback port, in a thread of the test process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import uvicorn

from tests.conftest import REPO
from tests.waiting import wait_until


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


def healthy(url: str) -> bool:
    try:
        return httpx.get(url + "/healthz", timeout=1.0).status_code == 200
    except httpx.TransportError:
        return False


class RunningServer:
    def __init__(self, app) -> None:
        self.sock = free_socket()
        host, port = self.sock.getsockname()
        self.url = f"http://{host}:{port}"
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> RunningServer:
        self.thread.start()
        wait_until(lambda: healthy(self.url), timeout=30, what=f"{self.url}/healthz")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()


class ServeProcess:
    """`satchel serve ARGS --port P` (the CLI) in its own process, healthy on entry; terminated on exit,
    its stderr in `stderr_path` (`stderr()` reads it; a file, so a chatty server never blocks on a pipe)."""

    _CODE = "import sys; from satchel.cli import main; main(sys.argv[1:])"

    def __init__(self, args: list[str], stderr_path: Path, *, env: dict[str, str] | None = None) -> None:
        sock = free_socket()
        self.port = sock.getsockname()[1]
        sock.close()  # the server binds it again (SO_REUSEADDR)
        self.url = f"http://127.0.0.1:{self.port}"
        self.stderr_path = stderr_path
        self.args = ["serve", *args, "--port", str(self.port)]
        self.env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> ServeProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> ServeProcess:
        """Start it and wait until it is healthy (stopped again if it is not)."""
        with self.stderr_path.open("w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", self._CODE, *self.args],
                cwd=REPO,
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        proc = self.proc
        try:
            wait_until(
                lambda: proc.poll() is not None or healthy(self.url), timeout=120, what="satchel serve"
            )
            assert proc.poll() is None, self.stderr()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Terminate it (killed if it lingers a minute); nothing if it already exited."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def stderr(self) -> str:
        return self.stderr_path.read_text()
