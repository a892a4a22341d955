"""A peer written from docs/protocol.md alone, the way a Java 17 client would: it maps /dev/shm/<name>,
uses no futex (it announces NO_FUTEX and polls), and talks to the C ring. Proves the protocol needs no
native code on the other side, and that the C side honours NO_FUTEX (it polls instead of waiting for a
wake that will never come)."""

from __future__ import annotations

import mmap
import os
import struct
import threading
import time

import pytest

from satchel.bindings.ring import FLAG_NO_FUTEX, HEADER_SIZE, MAGIC, SHM_DIR, Ring
from satchel.core.errors import TransportClosed
from tests.native.conftest import segments_of

U64 = struct.Struct("<Q")
U32 = struct.Struct("<I")


class PollingPeer:
    """The attacher side of the protocol in plain Python: plain loads and stores (x86-64 and arm64 give
    the acquire/release the protocol asks for to aligned 8-byte accesses of a single writer... close
    enough for a test; a Java client uses VarHandle getAcquire/setRelease)."""

    def __init__(self, name: str) -> None:
        path = SHM_DIR / name[1:]
        fd = os.open(path, os.O_RDWR)
        try:
            self.mm = mmap.mmap(fd, 0)
        finally:
            os.close(fd)
        assert self.mm[0:8] == MAGIC and U32.unpack_from(self.mm, 8)[0] == 1
        self.cap = U64.unpack_from(self.mm, 16)[0]
        assert U64.unpack_from(self.mm, 24)[0] == HEADER_SIZE + 2 * self.cap == len(self.mm)
        U32.pack_into(self.mm, 128, os.getpid())  # side 1: pid, flags, then state open
        U32.pack_into(self.mm, 136, FLAG_NO_FUTEX)
        assert U32.unpack_from(self.mm, 132)[0] == 0
        U32.pack_into(self.mm, 132, 1)
        path.unlink()  # both ends have it mapped

    def _get(self, offset: int) -> int:
        return U64.unpack_from(self.mm, offset)[0]

    def _poll(self, ready, timeout: float = 10.0) -> None:
        pause, deadline = 20e-6, time.monotonic() + timeout
        while not ready():
            if U32.unpack_from(self.mm, 64 + 4)[0] == 2:  # the creator closed
                raise TransportClosed("creator closed")
            if time.monotonic() > deadline:
                raise TimeoutError
            time.sleep(pause)
            pause = min(pause * 2, 1e-3)

    def _copy_out(self, base: int, pos: int, n: int) -> bytes:
        off = pos % self.cap
        first = min(n, self.cap - off)
        return self.mm[base + off : base + off + first] + self.mm[base : base + n - first]

    def _copy_in(self, base: int, pos: int, data: bytes) -> None:
        off = pos % self.cap
        first = min(len(data), self.cap - off)
        self.mm[base + off : base + off + first] = data[:first]
        self.mm[base : base + len(data) - first] = data[first:]

    def recv(self) -> bytes:
        """From ring 0 (control block at 512: head +0, tail +128)."""
        tail = self._get(640)
        self._poll(lambda: self._get(512) - tail >= 8)
        size = U64.unpack(self._copy_out(HEADER_SIZE, tail, 8))[0]
        self._poll(lambda: self._get(512) - tail >= 8 + size)
        data = self._copy_out(HEADER_SIZE, tail + 8, size)
        U64.pack_into(self.mm, 640, tail + 8 + size)
        return data

    def send(self, data: bytes) -> None:
        """Into ring 1 (control block at 1024); messages smaller than the ring only."""
        head = self._get(1024)
        record = U64.pack(len(data)) + data
        self._poll(lambda: self.cap - (head - self._get(1024 + 128)) >= len(record))
        self._copy_in(HEADER_SIZE + self.cap, head, record)
        U64.pack_into(self.mm, 1024, head + len(record))  # publish; no FUTEX_WAKE: we cannot

    def close(self) -> None:
        U32.pack_into(self.mm, 132, 2)
        self.mm.close()


@pytest.fixture
def no_spin():
    """Without spinning, every wait of the C side sleeps: only NO_FUTEX makes it poll."""
    from satchel.bindings import _native

    lib = _native.load()
    saved = lib.sr_get_spin_ns()
    lib.sr_set_spin_ns(0)
    yield
    lib.sr_set_spin_ns(saved)


def test_c_ring_talks_to_a_polling_peer(no_spin) -> None:
    ring = Ring.create(4096)
    peer = PollingPeer(ring.name)
    assert ring.info()["attacher_flags"] == FLAG_NO_FUTEX
    assert segments_of(os.getpid()) == []

    def serve() -> None:
        try:
            while True:
                message = peer.recv()
                if not message:
                    break
                peer.send(message[::-1])
        except TransportClosed:
            pass

    server = threading.Thread(target=serve)
    server.start()
    t0 = time.monotonic()
    for i in range(50):
        body = f"message {i} ".encode() * (i % 40 + 1)  # up to ~500 bytes: wraps the 4 KiB ring often
        ring.send([body])
        assert ring.recv(5) == body[::-1]
    elapsed = time.monotonic() - t0
    # a peer that never wakes us: a C side sleeping in 100 ms slices would need ~5 s; polling, ~ms
    assert elapsed < 2.0, f"{elapsed:.2f}s for 50 round trips: the NO_FUTEX flag was not honoured"
    stats = ring.stats()
    assert stats["wakes"] == 0, "the polling peer never parks: nobody should have issued a FUTEX_WAKE"
    ring.send([b""])
    server.join(10)
    peer.close()
    with pytest.raises(TransportClosed):
        ring.recv(2)
    ring.close()
