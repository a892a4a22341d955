"""One worker process: spawn it with its environment's interpreter, talk to it, notice when it dies."""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from satchel.bindings import envelope as env
from satchel.bindings.transports import get_transport
from satchel.errors import (
    CallTimeout,
    TransportClosed,
    TransportTimeout,
    WorkerCrashed,
    WorkerStartupError,
)
from satchel.runtime.kit import LAUNCHER, worker_kit

STDERR_TAIL_LINES = 40


def describe_exit(returncode: int | None) -> str:
    if returncode is None:
        return "still running"
    if returncode < 0:
        try:
            return f"killed by signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit status {returncode}"


class WorkerProcess:
    """A started worker. Not thread-safe: its owner serialises calls."""

    def __init__(self, python: Path, spec: dict, *, transport: str = "pipe", label: str = "worker") -> None:
        self.python = Path(python)
        self.spec = spec
        self.transport_name = transport
        self.label = label
        self.proc: subprocess.Popen | None = None
        self.transport = None
        self._lifeline_w: int | None = None
        self._tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
        self._stderr_thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------------------

    def start(self, timeout: float = 300.0) -> None:
        kit = worker_kit()
        channel = get_transport(self.transport_name).create()
        lifeline_r, lifeline_w = os.pipe()
        spec = {
            **self.spec,
            "transport": self.transport_name,
            "endpoint": channel.endpoint,
            "lifeline_fd": lifeline_r,
        }
        try:
            self.proc = subprocess.Popen(
                [str(self.python), "-E", "-s", str(kit / LAUNCHER), json.dumps(spec)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                pass_fds=(*channel.pass_fds, lifeline_r),
                close_fds=True,
            )
        except OSError as exc:
            channel.transport.close()
            channel.after_spawn()
            os.close(lifeline_r)
            os.close(lifeline_w)
            raise WorkerStartupError(f"cannot start {self.label} with {self.python}: {exc}") from None
        channel.after_spawn()
        os.close(lifeline_r)
        self._lifeline_w = lifeline_w
        self.transport = channel.transport
        self._stderr_thread = threading.Thread(
            target=self._pump_stderr, name=f"{self.label}-stderr", daemon=True
        )
        self._stderr_thread.start()
        try:
            message = env.decode(self.transport.recv(timeout))
        except TransportTimeout:
            self.kill()
            raise WorkerStartupError(
                f"{self.label} did not become ready within {timeout:.0f}s" + self._tail_text()
            ) from None
        except TransportClosed:
            status = self._reap()
            raise WorkerStartupError(
                f"{self.label} exited while starting ({status})" + self._tail_text()
            ) from None
        if message.kind == env.Kind.STARTUP_ERROR:
            error = env.decode_error(message.payload)
            self._reap()
            hint = ""
            if error.type == "ModuleNotFoundError":
                hint = (
                    "\n\nThe function's code imports a package its environment lacks: add it to "
                    "Environment(pypi=[...]) and export again."
                )
            raise WorkerStartupError(
                f"{self.label} could not start: {error.type}: {error.message}{hint}\n\n{error.traceback.rstrip()}"
            )
        if message.kind != env.Kind.READY:
            self.kill()
            raise WorkerStartupError(f"{self.label} sent {message.kind!r} instead of READY")

    def _pump_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        out = sys.stderr
        for raw in iter(self.proc.stderr.readline, b""):
            line = raw.decode("utf-8", "replace")
            self._tail.append(line)
            try:
                out.write(line)
                out.flush()
            except (ValueError, OSError):  # the caller's stderr is closed: keep the tail only
                pass
        self.proc.stderr.close()

    def _tail_text(self) -> str:
        if self._stderr_thread is not None and self.proc is not None and self.proc.poll() is not None:
            self._stderr_thread.join(timeout=2.0)
        tail = "".join(self._tail).rstrip()
        return f"\n\nLast lines of its stderr:\n{tail}" if tail else ""

    def _reap(self, timeout: float = 10.0) -> str:
        """Wait for the process to end (killing it if it lingers); release everything; describe its end."""
        if self.proc is None:
            return "never started"
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self._stderr_thread is not None:
            self._stderr_thread.join(timeout=2.0)
        self._release()
        return describe_exit(self.proc.returncode)

    def _release(self) -> None:
        if self.transport is not None:
            self.transport.close()
        if self._lifeline_w is not None:
            try:
                os.close(self._lifeline_w)
            except OSError:
                pass
            self._lifeline_w = None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        self._reap()

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the worker to exit; kill it if it does not within `timeout`."""
        if self.proc is None:
            return
        if self.proc.poll() is None and self.transport is not None:
            try:
                self.transport.send([env.encode_header(env.Kind.SHUTDOWN, 0, 0, 0, 0)])
            except (TransportClosed, OSError):
                pass
        self._reap(timeout)

    # -- calls --------------------------------------------------------------------------------------

    def request(self, parts: Sequence[bytes | memoryview], timeout: float | None = None):
        """Send one message, return the decoded reply envelope. Raises CallTimeout or WorkerCrashed."""
        assert self.transport is not None
        try:
            self.transport.send(parts)
            reply = self.transport.recv(timeout)
        except TransportTimeout:
            self.kill()
            raise CallTimeout(
                f"{self.label} did not answer within {timeout:g}s; it was stopped and the next call starts a new one"
            ) from None
        except TransportClosed:
            status = self._reap()
            raise WorkerCrashed(
                f"{self.label} died during the call ({status}); the next call starts a new one",
                exit_status=self.proc.returncode if self.proc else None,
                stderr_tail="".join(self._tail),
            ) from None
        return env.decode(reply)
