"""The shm transport: a pair of byte rings in one POSIX shared-memory segment (docs/protocol.md).

The caller creates the segment (`/dev/shm/satchel-<pid>-<random>`, mode 0600) and a liveness pipe whose
write end only the worker holds; the worker attaches by name (`endpoint["name"]`) and, once both ends
have it mapped, unlinks the name. Messages are length-prefixed in the ring; one larger than the ring
streams through it in chunks. Waiting spins briefly when a CPU is free, then sleeps on a futex; the
death of the peer (its liveness pipe hangs up, its pid is gone) ends a wait with TransportClosed within
about 100 ms. The default transport on Linux when the ring library loads (`default_transport()`).

Ring capacity per direction: `SATCHEL_RING_CAPACITY` (bytes, a power of two >= 4096), default 1 MiB.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from satchel.bindings.ring import DEFAULT_CAPACITY, Ring
from satchel.bindings.transports.base import Channel, Transport, TransportFactory
from satchel.core import settings


class ShmTransport(Transport):
    name = "shm"

    def __init__(self, ring: Ring, hold_fd: int | None = None) -> None:
        self.ring = ring
        self._hold_fd = hold_fd  # worker side: the liveness pipe's write end, held until close

    def send(self, parts: Sequence[bytes | bytearray | memoryview]) -> None:
        self.ring.send(parts)

    def recv(self, timeout: float | None = None) -> bytes:
        return self.ring.recv(timeout)  # type: ignore[return-value]  # bytes, or a bytearray when large

    def close(self) -> None:
        self.ring.close()
        fd, self._hold_fd = self._hold_fd, None
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass


class _ShmChannel(Channel):
    def __init__(self, capacity: int) -> None:
        liveness_r, liveness_w = os.pipe()
        try:
            ring = Ring.create(capacity, peer_fd=liveness_r)  # owns liveness_r from here on
        except BaseException:
            os.close(liveness_w)
            raise
        self.transport = ShmTransport(ring)
        self.endpoint = {"name": ring.name, "capacity": ring.capacity, "liveness_fd": liveness_w}
        self.pass_fds = (liveness_w,)
        self._liveness_w: int | None = liveness_w

    def after_spawn(self) -> None:
        fd, self._liveness_w = self._liveness_w, None
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass


def _capacity() -> int:
    value = settings.raw("SATCHEL_RING_CAPACITY")
    if not value:
        return DEFAULT_CAPACITY
    try:
        capacity = int(value)
    except ValueError:
        raise ValueError(f"SATCHEL_RING_CAPACITY={value!r} is not a number of bytes") from None
    if capacity < 4096 or capacity & (capacity - 1):
        raise ValueError(f"SATCHEL_RING_CAPACITY={value!r}: expected a power of two >= 4096")
    return capacity


class ShmTransportFactory(TransportFactory):
    name = "shm"

    def __init__(self, capacity: int | None = None) -> None:
        self.capacity = capacity

    def create(self) -> Channel:
        return _ShmChannel(self.capacity or _capacity())

    @staticmethod
    def attach(endpoint: dict) -> Transport:
        ring = Ring.attach(str(endpoint["name"]))
        fd = endpoint.get("liveness_fd")
        if fd is not None:
            fd = int(fd)
            try:
                os.set_inheritable(fd, False)  # the function's own subprocesses must not hold it
            except OSError:
                fd = None
        return ShmTransport(ring, hold_fd=fd)
