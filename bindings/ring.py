"""The shared-memory ring, from Python: one end of a satchel ring segment (docs/protocol.md).

`Ring.create()` (the caller) makes a segment `/satchel-<pid>-<random>` in /dev/shm with two byte rings;
`Ring.attach(name)` (the worker) maps it. `send(parts)` copies the parts straight into the ring, in chunks
when the message is larger than it; `recv()` returns one whole message (bytes when small; a bytearray of
the announced length, filled exactly once, when large: never zero-filled first, advised to be backed
by huge pages, and the same bytearray as the previous large message when that has the same length and
nothing refers to it any more, so that steady large calls cost no page faults; one such buffer, of
at most 1 GiB, stays with each end). The work is done by the C library (`satchel.bindings._native`),
through ctypes.

Also here, in pure Python (no library needed): reading segment headers, and finding and removing
segments whose processes are gone (`satchel doctor --clean`). Python 3.9+, standard library only.
"""

from __future__ import annotations

import ctypes
import os
import struct
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from satchel.bindings import _native
from satchel.core.errors import ProtocolError, TransportClosed, TransportTimeout

__all__ = [
    "Ring",
    "DEFAULT_CAPACITY",
    "MIN_CAPACITY",
    "HEADER_SIZE",
    "MAGIC",
    "LAYOUT_VERSION",
    "SHM_DIR",
    "NAME_PREFIX",
    "FLAG_NO_FUTEX",
    "Segment",
    "read_header",
    "list_segments",
    "clean_segments",
    "pid_gone",
]

MAGIC = b"SATCHRNG"
LAYOUT_VERSION = 1
HEADER_SIZE = 4096
MIN_CAPACITY = 4096
DEFAULT_CAPACITY = 1 << 20
SHM_DIR = Path("/dev/shm")
NAME_PREFIX = "satchel-"  # segment names are "/satchel-<creator pid>-<16 hex digits>"
FLAG_NO_FUTEX = 1
SIDE_STATES = {0: "absent", 1: "open", 2: "closed"}

# Return codes of the C library (satchelring.h).
OK, TIMEOUT, CLOSED, PEER_DEAD, MORE, SELF_CLOSED = 0, 1, 2, 3, 4, 5
ERR_OS = -1

_SLICE_NS = 1_000_000_000  # return to Python at least this often (signal handlers run in between)
_SCRATCH = 64 * 1024  # messages up to this size are received into a reused buffer, then copied out
_U64 = ctypes.c_uint64


def _as_bytes_view(part: Any) -> memoryview:
    view = part if isinstance(part, memoryview) else memoryview(part)
    if view.ndim != 1 or view.format != "B":
        view = view.cast("B")
    return view


class _ReadOnlyBuffer:
    """The address of a read-only buffer (bytes slices, read-only arrays), through the buffer protocol."""

    class _PyBuffer(ctypes.Structure):
        _fields_ = [
            ("buf", ctypes.c_void_p),
            ("obj", ctypes.c_void_p),
            ("len", ctypes.c_ssize_t),
            ("itemsize", ctypes.c_ssize_t),
            ("readonly", ctypes.c_int),
            ("ndim", ctypes.c_int),
            ("format", ctypes.c_char_p),
            ("shape", ctypes.c_void_p),
            ("strides", ctypes.c_void_p),
            ("suboffsets", ctypes.c_void_p),
            ("internal", ctypes.c_void_p),
        ]

    _api: Any = None

    def __init__(self, view: memoryview) -> None:
        api = type(self)._setup()
        self._buffer = self._PyBuffer()
        self._held = False
        if api is None:
            raise BufferError("no CPython buffer API")
        api.PyObject_GetBuffer(ctypes.py_object(view), ctypes.byref(self._buffer), 0)
        self._held = True
        self.address = self._buffer.buf

    @classmethod
    def _setup(cls) -> Any:
        if cls._api is None:
            api = getattr(ctypes, "pythonapi", None)
            if api is None:
                cls._api = False
            else:
                api.PyObject_GetBuffer.argtypes = [ctypes.py_object, ctypes.c_void_p, ctypes.c_int]
                api.PyObject_GetBuffer.restype = ctypes.c_int
                api.PyBuffer_Release.argtypes = [ctypes.c_void_p]
                api.PyBuffer_Release.restype = None
                cls._api = api
        return cls._api or None

    def release(self) -> None:
        if self._held:
            self._held = False
            type(self)._api.PyBuffer_Release(ctypes.byref(self._buffer))


def _pointer(part: Any, keep: list) -> tuple[Any, int]:
    """(something ctypes passes as a void*, length) for one message part; no copy unless unavoidable."""
    if type(part) is bytes:
        return part, len(part)
    view = _as_bytes_view(part)
    size = view.nbytes
    if size == 0:
        return None, 0
    if not view.readonly:
        buf = (ctypes.c_char * size).from_buffer(view)
        keep.append(buf)
        return ctypes.addressof(buf), size
    if isinstance(view.obj, bytes) and size == len(view.obj) and view.c_contiguous:
        return view.obj, size
    try:
        held = _ReadOnlyBuffer(view)
    except (BufferError, TypeError, ValueError):
        data = view.tobytes()  # no buffer API (not CPython): one copy
        keep.append(data)
        return data, size
    keep.append(held)
    return held.address, size


def _release(keep: list) -> None:
    for item in keep:
        if isinstance(item, _ReadOnlyBuffer):
            item.release()


class Ring:
    """One end of a ring segment. One thread sends and one receives at a time; `close()` may come from
    any thread (blocked calls return with TransportClosed)."""

    def __init__(self, handle: int, lib: Any, side: int) -> None:
        self._h = ctypes.c_void_p(handle)
        self._lib = lib
        self.side = side
        self.name = lib.sr_name(self._h).decode()
        info = _native.RingInfo()
        lib.sr_info_get(self._h, ctypes.byref(info))
        self.capacity = int(info.capacity)
        self._scratch_size = min(_SCRATCH, self.capacity)
        self._scratch = ctypes.create_string_buffer(self._scratch_size)
        self._scratch_addr = ctypes.addressof(self._scratch)
        self._len = _U64()
        self._len_ref = ctypes.byref(self._len)
        self._big: bytearray | None = None
        self._big_ref: Any = None
        # the buffer of the last large message, received into again once nothing else refers to it
        self._spare: bytearray | None = None
        self._spare_ref: Any = None
        self._spare_refs = 0  # sys.getrefcount(self._spare) when only this ring refers to it
        self._state = threading.Lock()
        self._busy = 0
        self._closing = False
        self._freed = False

    # -- opening --------------------------------------------------------------------------------------

    @classmethod
    def create(cls, capacity: int = 0, *, peer_fd: int = -1, name: str | None = None, flags: int = 0) -> Ring:
        """A new segment (this side is its creator). `peer_fd`: a descriptor that hangs up when the peer
        process is gone, owned (and closed) by the ring from now on, even if this raises."""
        lib = _native.load()
        handle = ctypes.c_void_p()
        rc = lib.sr_create(name.encode() if name else None, capacity, peer_fd, flags, ctypes.byref(handle))
        if rc != OK:
            if peer_fd >= 0:
                os.close(peer_fd)
            raise _os_error(lib, rc, "cannot create a ring segment")
        return cls(handle.value, lib, 0)

    @classmethod
    def attach(cls, name: str, *, flags: int = 0) -> Ring:
        """Map the segment `name` that the peer created (and unlink its name: both ends hold it now)."""
        lib = _native.load()
        handle = ctypes.c_void_p()
        rc = lib.sr_attach(name.encode(), flags, ctypes.byref(handle))
        if rc != OK:
            raise _os_error(lib, rc, f"cannot attach to ring segment {name}")
        return cls(handle.value, lib, 1)

    def info(self) -> dict:
        info = _native.RingInfo()
        self._enter()
        try:
            self._lib.sr_info_get(self._h, ctypes.byref(info))
        finally:
            self._leave()
        return {name: getattr(info, name) for name, _ in _native.RingInfo._fields_ if name != "reserved"}

    def stats(self) -> dict:
        """What this end's waits did: waits, spins, spin_successes, sleeps (futex), wakes (futex)."""
        stats = _native.RingStats()
        self._enter()
        try:
            self._lib.sr_stats_get(self._h, ctypes.byref(stats))
        finally:
            self._leave()
        return {name: getattr(stats, name) for name, _ in _native.RingStats._fields_}

    def segment_bytes(self) -> bytes:
        """A copy of the whole mapped segment (header and both rings): for inspection and tests."""
        self._enter()
        try:
            return ctypes.string_at(self._lib.sr_segment(self._h), HEADER_SIZE + 2 * self.capacity)
        finally:
            self._leave()

    # -- calls --------------------------------------------------------------------------------------

    def _raise(self, rc: int, what: str) -> None:
        if rc in (CLOSED, PEER_DEAD, SELF_CLOSED):
            reason = {
                CLOSED: "the peer closed the ring",
                PEER_DEAD: "the peer process is gone",
                SELF_CLOSED: "the ring was closed",
            }[rc]
            raise TransportClosed(f"{what}: {reason}")
        if rc == TIMEOUT:
            raise TransportTimeout("no message within the timeout")
        if rc == -4:
            raise ProtocolError(f"{what}: the ring is corrupt")
        raise _os_error(self._lib, rc, what)

    def _enter(self) -> None:
        with self._state:
            if self._closing:
                raise TransportClosed("the ring was closed")
            self._busy += 1

    def _leave(self) -> None:
        with self._state:
            self._busy -= 1
            if self._closing and not self._busy:
                self._free()

    def send(self, parts: Sequence[Any]) -> None:
        """Write one message made of `parts` (concatenated), waiting for room as long as the peer lives."""
        self._enter()
        try:
            lib, h = self._lib, self._h
            if len(parts) == 2 and type(parts[0]) is bytes and type(parts[1]) is bytes:  # the usual case
                p0, p1 = parts
                rc = lib.sr_send2(h, p0, len(p0), p1, len(p1), _SLICE_NS)
                if rc == TIMEOUT:
                    rc = self._send_more(lib.sr_send2, (h, p0, len(p0), p1, len(p1), _SLICE_NS), [])
            else:
                keep: list = []
                try:
                    array = (_native.Part * max(1, len(parts)))()
                    for i, part in enumerate(parts):
                        array[i].ptr, array[i].len = _address(*_pointer(part, keep))
                    rc = lib.sr_send(h, array, len(parts), _SLICE_NS)
                    if rc == TIMEOUT:
                        rc = self._send_more(lib.sr_send, (h, array, len(parts), _SLICE_NS), keep)
                finally:
                    _release(keep)
                    keep.clear()  # drop the buffer exports now, even if an exception outlives this frame
            if rc != OK:
                self._raise(rc, "send")
        finally:
            self._leave()

    def _send_more(self, call: Any, args: tuple, keep: list) -> int:
        """Go on with a message that did not fit at once, one slice at a time. Interrupted half-way (an
        exception between slices), the ring is shut: the peer must not read a torn stream."""
        done = False
        try:
            rc = TIMEOUT
            while rc == TIMEOUT:
                rc = call(*args)
            done = True
            return rc
        finally:
            if not done:
                self._lib.sr_shutdown(self._h)

    def recv(self, timeout: float | None = None) -> bytes | bytearray:
        """The next whole message. `timeout` bounds the wait for a message to start: one that has
        started is read to its end (as the pipe transport does), so a timeout never splits a message;
        the peer's death still ends the wait within ~100 ms. TransportClosed once the peer closed or
        died and every complete message it sent has been read."""
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        self._enter()
        try:
            if self._big is None:
                rc = self._lib.sr_recv(
                    self._h, self._scratch_addr, self._scratch_size, self._len_ref, _slice(deadline)
                )
                if rc == OK:
                    return ctypes.string_at(self._scratch_addr, self._len.value)
                return self._recv_more(rc, deadline)
            return self._recv_more(MORE, deadline)
        finally:
            self._leave()

    def _recv_more(self, rc: int, deadline: float | None) -> bytes | bytearray:
        lib, h = self._lib, self._h
        while self._big is None:
            if rc == OK:
                return ctypes.string_at(self._scratch_addr, self._len.value)
            if rc == MORE:
                size = self._len.value
                spare, self._spare = self._spare, None
                if spare is not None and len(spare) == size and _getrefcount(spare) == self._spare_refs:
                    self._big, self._big_ref = spare, self._spare_ref  # nothing refers to it any more
                    self._spare_ref = None
                    del spare
                    break
                del spare
                self._spare_ref = None
                try:
                    self._big = _new_buffer(size)
                except MemoryError:
                    lib.sr_shutdown(h)
                    raise ProtocolError(f"a message of {size} bytes announced: too large") from None
                self._big_ref = (ctypes.c_char * size).from_buffer(self._big)
                lib.sr_advise_buffer(ctypes.addressof(self._big_ref), size)
                self._spare_refs = _getrefcount(self._big) if _REUSE else -1
                break
            if rc != TIMEOUT:
                self._raise(rc, "recv")
            if lib.sr_recv_started(h):
                deadline = None  # a message has started: read it to its end
            elif deadline is not None and time.monotonic() >= deadline:
                raise TransportTimeout("no message within the timeout")
            rc = lib.sr_recv(h, self._scratch_addr, self._scratch_size, self._len_ref, _slice(deadline))
        address = ctypes.addressof(self._big_ref)
        while True:
            rc = lib.sr_recv_into(h, address, _SLICE_NS)  # started: no deadline (slices for signals)
            if rc == OK:
                message, ref = self._big, self._big_ref
                self._big = self._big_ref = None
                if _REUSE and len(message) <= _SPARE_MAX:
                    self._spare, self._spare_ref = message, ref
                return message
            if rc != TIMEOUT:
                self._raise(rc, "recv")

    # -- closing --------------------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Mark this end closed and wake everyone waiting on the segment (any thread may call this)."""
        with self._state:
            if self._freed:
                return
            self._lib.sr_shutdown(self._h)

    def close(self) -> None:
        """Close this end: the peer sees TransportClosed; the creator unlinks the segment's name."""
        with self._state:
            if self._closing:
                return
            self._closing = True
            if self._busy:
                self._lib.sr_shutdown(self._h)  # the call in flight returns, then frees the handle
                return
            self._free()

    def _free(self) -> None:
        if not self._freed:
            self._freed = True
            self._lib.sr_close(self._h)
            self._big = self._big_ref = None
            self._spare = self._spare_ref = None

    @property
    def closed(self) -> bool:
        return self._closing

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        return f"<Ring {self.name} {'creator' if self.side == 0 else 'attacher'} capacity={self.capacity}>"


_uninitialized: Any = None
_getrefcount: Any = getattr(sys, "getrefcount", None)
_REUSE = _getrefcount is not None  # CPython: a received buffer nothing refers to any more is reused
_SPARE_MAX = 1 << 30  # larger message buffers are not kept for reuse


def _new_buffer(size: int) -> bytearray:
    """A bytearray of `size` bytes that is about to be overwritten whole. `bytearray(size)` would zero it
    first, touching every page (as long again as the copy itself for large messages); CPython's
    PyByteArray_FromStringAndSize(NULL, size) leaves it untouched."""
    global _uninitialized
    if _uninitialized is None:
        try:
            make = ctypes.pythonapi.PyByteArray_FromStringAndSize
            make.argtypes = [ctypes.c_void_p, ctypes.c_ssize_t]
            make.restype = ctypes.py_object
            _uninitialized = make
        except AttributeError:  # not CPython
            _uninitialized = False
    if _uninitialized and size > _SCRATCH:
        return _uninitialized(None, size)
    return bytearray(size)


def _address(pointer: Any, size: int) -> tuple[int | None, int]:
    if pointer is None or isinstance(pointer, int):
        return pointer, size
    return ctypes.cast(ctypes.c_char_p(pointer), ctypes.c_void_p).value, size


def _slice(deadline: float | None) -> int:
    if deadline is None:
        return _SLICE_NS
    return max(0, min(_SLICE_NS, int((deadline - time.monotonic()) * 1e9)))


def _os_error(lib: Any, rc: int, what: str) -> Exception:
    if rc == ERR_OS:
        errno = lib.sr_last_errno()
        return OSError(errno, f"{what}: {os.strerror(errno)}")
    return OSError(f"{what}: {lib.sr_strerror(rc).decode()}")


# --- segments on this machine (pure Python: works without the library) ----------------------------


class Segment(NamedTuple):
    """A satchel ring segment in /dev/shm, as its header describes it."""

    name: str  # "/satchel-..."
    path: Path
    size: int
    valid: bool  # a header of a layout this Satchel reads
    capacity: int
    created_ns: int
    creator_pid: int
    attacher_pid: int
    creator_state: str
    attacher_state: str
    orphaned: bool  # every process that had it open is gone: safe to remove


_HEAD = struct.Struct("<8sIIQQQ")
_SIDE = struct.Struct("<iII")


def read_header(data: bytes) -> dict | None:
    """The fields of a segment header (None if `data` is not one of a known layout)."""
    if len(data) < 192:
        return None
    magic, version, header_size, capacity, segment_size, created_ns = _HEAD.unpack_from(data, 0)
    if magic != MAGIC or version != LAYOUT_VERSION or header_size != HEADER_SIZE:
        return None
    creator = _SIDE.unpack_from(data, 64)
    attacher = _SIDE.unpack_from(data, 128)
    return {
        "layout_version": version,
        "header_size": header_size,
        "capacity": capacity,
        "segment_size": segment_size,
        "created_ns": created_ns,
        "creator_pid": creator[0],
        "creator_state": creator[1],
        "creator_flags": creator[2],
        "attacher_pid": attacher[0],
        "attacher_state": attacher[1],
        "attacher_flags": attacher[2],
    }


def pid_gone(pid: int) -> bool:
    """True if process `pid` does not run any more (a zombie counts as gone)."""
    if pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except FileNotFoundError:
        return True
    except OSError:
        return False
    state = stat.rsplit(b") ", 1)[-1][:1]
    return state in (b"Z", b"X")


def _name_pid(filename: str) -> int:
    try:
        return int(filename[len(NAME_PREFIX) :].split("-", 1)[0])
    except ValueError:
        return 0


def list_segments(directory: Path = SHM_DIR) -> list[Segment]:
    """Every satchel ring segment in `directory` (/dev/shm), with whether it is orphaned."""
    found = []
    try:
        entries = sorted(os.listdir(directory))
    except OSError:
        return []
    for filename in entries:
        if not filename.startswith(NAME_PREFIX):
            continue
        path = directory / filename
        try:
            with open(path, "rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                data = fh.read(256)
        except OSError:
            continue
        header = read_header(data)
        if header is None:  # being created, or not ours: judge by the pid in its name
            pid = _name_pid(filename)
            found.append(Segment(f"/{filename}", path, size, False, 0, 0, pid, 0, "?", "?", pid_gone(pid)))
            continue
        creator, attacher = header["creator_pid"], header["attacher_pid"]
        orphaned = pid_gone(creator) and (attacher == 0 or pid_gone(attacher))
        found.append(
            Segment(
                f"/{filename}",
                path,
                size,
                True,
                header["capacity"],
                header["created_ns"],
                creator,
                attacher,
                SIDE_STATES.get(header["creator_state"], "?"),
                SIDE_STATES.get(header["attacher_state"], "?"),
                orphaned,
            )
        )
    return found


def clean_segments(directory: Path = SHM_DIR) -> list[Segment]:
    """Remove the orphaned segments (their processes are all gone); returns those removed."""
    removed = []
    for segment in list_segments(directory):
        if segment.orphaned:
            try:
                segment.path.unlink()
            except FileNotFoundError:
                pass
            except OSError:
                continue
            removed.append(segment)
    return removed
