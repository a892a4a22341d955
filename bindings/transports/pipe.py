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
from satchel.core.errors import ProtocolError, TransportClosed, TransportTimeout

_LEN = struct.Struct("<Q")
_MAX_IOV = 512
_READ_AHEAD = 1 << 16  # bytes a read takes at once
_JOIN_PARTS = 4  # a message of at most this many bytes parts and _JOIN_BYTES bytes is sent joined
_JOIN_BYTES = 16 * 1024


class PipeTransport(Transport):
    name = "pipe"

    def __init__(self, read_fd: int, write_fd: int, *, nonblocking_reads: bool = False) -> None:
        self._rfd = read_fd
        self._wfd = write_fd
        if nonblocking_reads:
            os.set_blocking(read_fd, False)
        self._frames = _Frames(read_fd)
        self._loop: asyncio.AbstractEventLoop | None = None  # the event loop watching the read end
        self._waiter: asyncio.Future[bytearray] | None = None  # the frame an `arecv` awaits
        self._poll = select.poll()
        self._poll.register(read_fd, select.POLLIN | select.POLLHUP | select.POLLERR)
        self._closed = False

    def fileno(self) -> int:
        return self._rfd

    def send(self, parts: Sequence[bytes | bytearray | memoryview]) -> None:
        if len(parts) <= _JOIN_PARTS and all(type(p) is bytes for p in parts):  # a small message, mostly
            body = b"".join(parts)
            if len(body) <= _JOIN_BYTES:  # joined with its length prefix: one plain write
                self._write([memoryview(_LEN.pack(len(body)) + body)])
                return
        views = [memoryview(p).cast("B") for p in parts]
        total = sum(v.nbytes for v in views)
        self._write([memoryview(_LEN.pack(total)), *(v for v in views if v.nbytes)])

    def _write(self, pending: list[memoryview]) -> None:
        try:
            while pending:
                if len(pending) == 1:
                    written = os.write(self._wfd, pending[0])
                else:
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

    def recv(self, timeout: float | None = None) -> bytes:
        """The next whole message. The timeout bounds the wait for its first byte only: a message
        that has started is always read to its end, so a timeout never leaves half a frame behind."""
        frame = self._frames.complete()  # one may have come in with the previous read
        if frame is not None:
            return frame
        if timeout is not None and not self._frames.started:
            self._wait(time.monotonic() + timeout)
        return self._frames.read_frame(self._poll)

    async def arecv(self, timeout: float | None = None) -> bytearray:
        """`recv` on the running event loop: the frame is read as it arrives, without blocking the loop or
        using a thread (the read end must be non-blocking: the caller's side of a channel is). The timeout
        bounds the wait for the first byte, as in `recv`; a frame that has started is read to its end. If
        the awaiting task is cancelled mid-frame, the next `arecv` goes on with that frame.

        The descriptor stays registered with the loop between calls (no epoll_ctl per call); it leaves
        when it turns readable with nobody waiting (a blocking `recv` elsewhere, or the peer gone), and
        before it is closed."""
        frames = self._frames
        frame = frames.complete()
        if frame is not None:
            return frame
        loop = asyncio.get_running_loop()
        done: asyncio.Future[bytearray] = loop.create_future()
        self._waiter = done
        if self._loop is not loop:
            self._unwatch()
            loop.add_reader(self._rfd, self._readable)
            self._loop = loop
        try:
            if timeout is None:
                return await done
            try:
                return await asyncio.wait_for(asyncio.shield(done), timeout)
            except asyncio.TimeoutError:
                if _has_frame(done):  # it came in as the timeout fired: it is the answer, not lost
                    return done.result()
                if not frames.started:
                    raise TransportTimeout("no message within the timeout") from None
                return await done  # a frame has begun: read it to its end
        except asyncio.CancelledError:
            if _has_frame(done):  # read, but its task was cancelled before it woke: the next arecv gets it
                frames.put_back(done.result())
            raise
        finally:
            self._waiter = None

    def _readable(self) -> None:
        done = self._waiter
        if done is None or done.done():  # nobody awaits a frame here: stop watching until someone does
            self._unwatch()
            return
        try:
            message = self._frames.read_available()
        except BaseException as exc:  # TransportClosed, ProtocolError, OSError
            done.set_exception(exc)
            return
        if message is not None:
            done.set_result(message)

    def _unwatch(self) -> None:
        """Take the descriptor out of the loop watching it (on that loop's thread, or a loop not running)."""
        loop, self._loop = self._loop, None
        if loop is not None and not loop.is_closed():
            loop.remove_reader(self._rfd)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        _close(self._wfd)  # at once: the peer sees the end of its input
        loop = self._loop
        if loop is not None and loop.is_running() and not _runs_here(loop):
            # the read end must leave that loop's selector before it is closed (its number would be
            # reused): done on the loop's thread, which then closes it
            try:
                loop.call_soon_threadsafe(self._close_read_end)
                return
            except RuntimeError:  # the loop closed meanwhile
                pass
        self._close_read_end()

    def _close_read_end(self) -> None:
        self._unwatch()
        _close(self._rfd)


def _close(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


def _has_frame(done: asyncio.Future) -> bool:
    return done.done() and not done.cancelled() and done.exception() is None


def _runs_here(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


class _Frames:
    """Frames read from a pipe. A read takes up to 64 KiB at once, so a small frame usually comes whole in
    one system call (header, body and whatever follows it, kept for the next frame); a larger body is read
    straight into its own buffer. Works on blocking and non-blocking descriptors."""

    __slots__ = ("fd", "pending", "body", "got", "kept")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.kept: bytearray | None = None  # a whole frame read for an `arecv` whose task was cancelled
        self.pending = bytearray()  # bytes read past the last whole frame
        self.body: bytearray | None = None  # a large frame being read into its own buffer
        self.got = 0  # bytes of `body` read so far

    @property
    def started(self) -> bool:
        """Whether part of a frame has been read."""
        return bool(self.pending) or self.body is not None

    def put_back(self, frame: bytearray) -> None:
        """`frame` goes first again: the next `complete` returns it."""
        self.kept = frame

    def complete(self) -> bytearray | None:
        """The next whole frame if it has been read; else None (after setting up a large body's buffer)."""
        if self.kept is not None:
            frame, self.kept = self.kept, None
            return frame
        if self.body is not None:
            if self.got < len(self.body):
                return None
            frame, self.body = self.body, None
            return frame
        pending = self.pending
        if len(pending) < _LEN.size:
            return None
        (size,) = _LEN.unpack_from(pending)
        if size > 1 << 46:
            raise ProtocolError(f"frame of {size} bytes announced: the stream is corrupt")
        end = _LEN.size + size
        if len(pending) >= end:
            frame = pending[_LEN.size : end]
            del pending[:end]
            return frame
        if size > _READ_AHEAD:  # the rest goes straight into the frame's own buffer
            body = bytearray(size)
            have = len(pending) - _LEN.size
            body[:have] = memoryview(pending)[_LEN.size :]
            pending.clear()
            self.body, self.got = body, have
        return None

    def _read_once(self) -> bool:
        """One read; False if nothing was there (a non-blocking descriptor). TransportClosed at the end."""
        try:
            if self.body is not None:
                n = os.readv(self.fd, [memoryview(self.body)[self.got :]])
                self.got += n
            else:
                chunk = os.read(self.fd, _READ_AHEAD)
                n = len(chunk)
                self.pending += chunk
        except BlockingIOError:
            return False
        if n == 0:
            raise TransportClosed("the peer closed the pipe")
        return True

    def read_available(self) -> bytearray | None:
        """Read what is there (non-blocking); the next whole frame once it is complete, else None."""
        while True:
            frame = self.complete()
            if frame is not None:
                return frame
            if not self._read_once():
                return None

    def read_frame(self, poll: select.poll) -> bytearray:
        """Read until the next frame is whole (waiting with `poll` when a non-blocking read finds nothing)."""
        while True:
            frame = self.complete()
            if frame is not None:
                return frame
            if not self._read_once():
                poll.poll()


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
