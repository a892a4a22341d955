"""The pipe transport: length-prefixed frames over two OS pipes (one each way).

Frame: an unsigned 64-bit little-endian byte count, then that many bytes (one envelope).
Portable (any POSIX system); the fallback when the shared-memory ring is unavailable.
"""

from __future__ import annotations

import os
import select
import struct
import time
from collections.abc import Sequence

from satchel.bindings.transports.base import Channel, Transport, TransportFactory
from satchel.errors import ProtocolError, TransportClosed, TransportTimeout

_LEN = struct.Struct("<Q")
_MAX_IOV = 512


class PipeTransport(Transport):
    name = "pipe"

    def __init__(self, read_fd: int, write_fd: int) -> None:
        self._rfd = read_fd
        self._wfd = write_fd
        self._poll = select.poll()
        self._poll.register(read_fd, select.POLLIN | select.POLLHUP | select.POLLERR)
        self._closed = False

    def fileno(self) -> int:
        return self._rfd

    def send(self, parts: Sequence[bytes | bytearray | memoryview]) -> None:
        views = [memoryview(p).cast("B") for p in parts]
        total = sum(v.nbytes for v in views)
        pending = [memoryview(_LEN.pack(total)), *(v for v in views if v.nbytes)]
        try:
            while pending:
                written = os.writev(self._wfd, pending[:_MAX_IOV])
                while pending and written >= pending[0].nbytes:
                    written -= pending[0].nbytes
                    pending.pop(0)
                if written:
                    pending[0] = pending[0][written:]
        except (BrokenPipeError, OSError) as exc:
            if isinstance(exc, BrokenPipeError) or exc.errno in (32, 9):
                raise TransportClosed("the peer closed the pipe") from None
            raise

    def _wait(self, deadline: float) -> None:
        remaining = max(0.0, deadline - time.monotonic())
        if not self._poll.poll(remaining * 1000.0):
            raise TransportTimeout("no message within the timeout")

    def _read_into(self, view: memoryview) -> None:
        got = 0
        size = view.nbytes
        while got < size:
            try:
                n = os.readv(self._rfd, [view[got:]])
            except InterruptedError:  # pragma: no cover - PEP 475 retries for us
                continue
            if n == 0:
                raise TransportClosed("the peer closed the pipe")
            got += n

    def recv(self, timeout: float | None = None) -> bytes:
        """The next whole message. The timeout bounds the wait for its first byte only: a message
        that has started is always read to its end, so a timeout never leaves half a frame behind."""
        if timeout is not None:
            self._wait(time.monotonic() + timeout)
        header = bytearray(_LEN.size)
        self._read_into(memoryview(header))
        (size,) = _LEN.unpack(header)
        if size > 1 << 46:
            raise ProtocolError(f"frame of {size} bytes announced: the stream is corrupt")
        body = bytearray(size)
        if size:
            self._read_into(memoryview(body))
        return body

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for fd in (self._rfd, self._wfd):
            try:
                os.close(fd)
            except OSError:
                pass


class _PipeChannel(Channel):
    def __init__(self) -> None:
        to_worker_r, to_worker_w = os.pipe()
        to_caller_r, to_caller_w = os.pipe()
        self.transport = PipeTransport(to_caller_r, to_worker_w)
        self.endpoint = {"read_fd": to_worker_r, "write_fd": to_caller_w}
        self.pass_fds = (to_worker_r, to_caller_w)

    def after_spawn(self) -> None:
        for fd in self.pass_fds:
            try:
                os.close(fd)
            except OSError:
                pass


class PipeTransportFactory(TransportFactory):
    name = "pipe"

    def create(self) -> Channel:
        return _PipeChannel()

    @staticmethod
    def attach(endpoint: dict) -> Transport:
        return PipeTransport(int(endpoint["read_fd"]), int(endpoint["write_fd"]))
