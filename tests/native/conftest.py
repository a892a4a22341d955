"""Helpers for the ring tests: ring pairs, peer processes, what is in /dev/shm, waiting with deadlines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from satchel.bindings import _native
from satchel.bindings.ring import SHM_DIR, Ring
from tests.waiting import wait_until  # noqa: F401  (re-exported for the ring tests)

REPO = Path(__file__).resolve().parents[2]

if not _native.available():  # pragma: no cover - a machine without a C compiler
    pytest.skip(f"the ring library is unavailable: {_native.unavailable_reason()}", allow_module_level=True)


def segments_of(pid: int) -> list[str]:
    """The names in /dev/shm of the ring segments created by process `pid`."""
    return sorted(name for name in os.listdir(SHM_DIR) if name.startswith(f"satchel-{pid}-"))


class Peer:
    """A peer process (tests/native/peers.py) whose stdout lines we can wait for."""

    def __init__(self, role: str, args: dict, pass_fds: tuple[int, ...] = ()) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.native.peers", role, json.dumps(args)],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            pass_fds=pass_fds,
            bufsize=0,
        )
        self._buffer = b""

    @property
    def pid(self) -> int:
        return self.proc.pid

    def line(self, timeout: float = 30.0) -> str:
        """The peer's next line of output (unbuffered here, so `select` sees all that is pending)."""
        import select

        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buffer:
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise AssertionError(f"peer said nothing within {timeout}s")
            data = os.read(fd, 4096)
            if not data:
                raise AssertionError(f"peer exited (status {self.proc.wait()}) without a line")
            self._buffer += data
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode().strip()

    def expect(self, text: str, timeout: float = 30.0) -> None:
        got = self.line(timeout)
        assert got == text, f"peer said {got!r}, expected {text!r}"

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)

    def finish(self, timeout: float = 30.0) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.kill()
            for stream in (self.proc.stdin, self.proc.stdout):
                if stream:
                    stream.close()


@pytest.fixture
def pair(request) -> Iterator[tuple[Ring, Ring]]:
    """A creator and an attacher in this process (capacity: the `capacity` mark's value, else 4096)."""
    marker = request.node.get_closest_marker("capacity")
    capacity = marker.args[0] if marker else 4096
    before = segments_of(os.getpid())
    a = Ring.create(capacity)
    b = Ring.attach(a.name)
    try:
        yield a, b
    finally:
        b.close()
        a.close()
    assert segments_of(os.getpid()) == before


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "capacity(n): ring capacity for the `pair` fixture")


@pytest.fixture
def sweeping() -> Iterator[None]:
    """Held by a test that sweeps every orphaned segment on the machine (`clean_segments`, `doctor --clean`)
    while it has an orphan of its own: under xdist two such tests would each sweep the other's orphan."""
    from filelock import FileLock

    with FileLock(str(Path(tempfile.gettempdir()) / f"satchel-test-sweeping-{os.getuid()}.lock")):
        yield
