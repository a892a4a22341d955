"""The pipe transport: length-prefixed frames over two OS pipes (one each way).

Frame: an unsigned 64-bit little-endian byte count, then that many bytes (one envelope).
Portable (any POSIX system); the fallback when the shared-memory ring is unavailable.

The caller's read end is non-blocking, so besides the blocking `recv` it offers `arecv`: a frame read on an
asyncio event loop as its bytes arrive (no thread), which is how a server awaits many workers at once.
"""

from __future__ import annotations

import asyncio
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

    def __init__(self, read_fd: int, write_fd: int, *, nonblocking_reads: bool = False) -> None:
        self._rfd = read_fd
        self._wfd = write_fd
        if nonblocking_reads:
            os.set_blocking(read_fd, False)
        self._frame: _FrameReader | None = None  # a frame `arecv` has begun reading
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
            except BlockingIOError:  # a non-blocking read end: wait for the rest of the frame
                self._poll.poll()
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

    async def arecv(self, timeout: float | None = None) -> bytearray:
        """`recv` on the running event loop: the frame is read as it arrives, without blocking the loop or
        using a thread (the read end must be non-blocking: the caller's side of a channel is). The timeout
        bounds the wait for the first byte, as in `recv`; a frame that has started is read to its end. If
        the awaiting task is cancelled mid-frame, the next `arecv` goes on with that frame."""
        loop = asyncio.get_running_loop()
        frame = self._frame
        if frame is None:
            frame = self._frame = _FrameReader(self._rfd)
        done: asyncio.Future[bytearray] = loop.create_future()

        def readable() -> None:
            if done.done():
                return
            try:
                message = frame.read_available()
            except BaseException as exc:  # TransportClosed, ProtocolError, OSError
                self._frame = None
                done.set_exception(exc)
                return
            if message is not None:
                self._frame = None
                done.set_result(message)

        if frame.started:  # the rest of a frame a cancelled arecv began
            readable()
            if done.done():
                return done.result()
        loop.add_reader(self._rfd, readable)
        try:
            if timeout is None:
                return await done
            try:
                return await asyncio.wait_for(asyncio.shield(done), timeout)
            except asyncio.TimeoutError:
                if not frame.started:
                    raise TransportTimeout("no message within the timeout") from None
                return await done  # a frame has begun: read it to its end
        finally:
            loop.remove_reader(self._rfd)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for fd in (self._rfd, self._wfd):
            try:
                os.close(fd)
            except OSError:
                pass


class _FrameReader:
    """One frame read from a non-blocking fd in as many steps as its bytes take to arrive."""

    __slots__ = ("fd", "header", "body", "got", "started")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.header = bytearray(_LEN.size)
        self.body: bytearray | None = None
        self.got = 0
        self.started = False

    def read_available(self) -> bytearray | None:
        """Read what is there; the whole frame once complete, else None."""
        while True:
            target = memoryview(self.header if self.body is None else self.body)
            if self.got < target.nbytes:
                try:
                    n = os.readv(self.fd, [target[self.got :]])
                except BlockingIOError:
                    return None
                if n == 0:
                    raise TransportClosed("the peer closed the pipe")
                self.started = True
                self.got += n
                if self.got < target.nbytes:
                    continue
            if self.body is None:
                (size,) = _LEN.unpack(self.header)
                if size > 1 << 46:
                    raise ProtocolError(f"frame of {size} bytes announced: the stream is corrupt")
                self.body, self.got = bytearray(size), 0
                if size:
                    continue
            return self.body


class _PipeChannel(Channel):
    def __init__(self) -> None:
        to_worker_r, to_worker_w = os.pipe()
        to_caller_r, to_caller_w = os.pipe()
        self.transport = PipeTransport(to_caller_r, to_worker_w, nonblocking_reads=True)
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
