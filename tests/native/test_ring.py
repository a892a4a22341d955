"""The ring in one process: framing at every boundary, sizes around the ring's, parts, timeouts, closing."""

from __future__ import annotations

import array
import os
import random
import stat
import threading
import time

import pytest

from satchel.bindings import _native
from satchel.bindings.ring import HEADER_SIZE, SHM_DIR, Ring, clean_segments, list_segments, read_header
from satchel.core.errors import TransportClosed, TransportTimeout
from tests.native.conftest import Peer, segments_of, wait_until

CAP = 4096


def _data(size: int, seed: int = 0) -> bytes:
    return random.Random(size * 7919 + seed).randbytes(size)


def _transfer(sender: Ring, receiver: Ring, parts: list, timeout: float = 20.0):
    """Send `parts` and receive them; a reader thread when the message may not fit at once."""
    total = sum(memoryview(p).nbytes for p in parts)
    if total + 8 <= CAP // 2:
        sender.send(parts)
        return receiver.recv(timeout)
    box: dict = {}

    def read() -> None:
        try:
            box["message"] = receiver.recv(timeout)
        except BaseException as exc:  # re-raised below
            box["error"] = exc

    thread = threading.Thread(target=read)
    thread.start()
    sender.send(parts)
    thread.join(timeout)
    assert not thread.is_alive()
    if "error" in box:
        raise box["error"]
    return box["message"]


def _advance_to(sender: Ring, receiver: Ring, position: int) -> None:
    """Move the sender's ring's counters to `position` modulo the capacity (messages of at most half the
    ring, so no reader thread is needed)."""
    index = sender.side  # the creator writes ring 0, the attacher ring 1
    current = _head(sender, index)
    while (position - current) % CAP:
        gap = (position - current) % CAP
        size = min(gap, CAP // 2) - 8 if min(gap, CAP // 2) >= 8 else gap + CAP // 4 - 8
        sender.send([b"\xa5" * size])
        assert receiver.recv(1) == b"\xa5" * size
        current += 8 + size
    assert _head(sender, index) % CAP == position % CAP


def _head(ring: Ring, index: int = 0) -> int:
    offset = 512 * (index + 1)
    return int.from_bytes(ring.segment_bytes()[offset : offset + 8], "little")


def _tail(ring: Ring, index: int = 0) -> int:
    offset = 512 * (index + 1) + 128
    return int.from_bytes(ring.segment_bytes()[offset : offset + 8], "little")


# around the length prefix (8), the chunk (CAP / 4), a ring holding one message (CAP - 8) and the ring
SIZES = [*range(0, 18), 1023, 1024, 1025, CAP - 9, CAP - 8, CAP - 7, CAP - 1, CAP, CAP + 1, 3 * CAP + 5]
OFFSETS = [0, 1, 7, 8, CAP - 9, CAP - 8, CAP - 7, CAP - 5, CAP - 4, CAP - 3, CAP - 2, CAP - 1]


@pytest.mark.parametrize("direction", ["request", "response"])
@pytest.mark.parametrize("offset", OFFSETS)
def test_wrap_at_every_boundary(pair, offset: int, direction: str) -> None:
    """Every size around the header's, the chunk's and the ring's, starting at every position around the
    end of the data area (so the length prefix and the payload are split at every possible byte)."""
    a, b = pair
    sender, receiver = (a, b) if direction == "request" else (b, a)
    for size in SIZES:
        _advance_to(sender, receiver, offset)
        message = _data(size, offset)
        got = _transfer(sender, receiver, [message[: size // 3], memoryview(message)[size // 3 :]])
        assert bytes(got) == message, f"size {size} at offset {offset}"
        assert _head(a, sender.side) == _tail(a, sender.side), "the ring is not drained"


@pytest.mark.parametrize("size", [0, 1, 100, CAP // 4, CAP - 8, CAP, 5 * CAP, 1 << 20])
def test_sizes_both_directions(pair, size: int) -> None:
    a, b = pair
    message = _data(size)
    assert bytes(_transfer(a, b, [message])) == message
    assert bytes(_transfer(b, a, [message])) == message


def test_small_message_is_bytes_large_is_bytearray(pair) -> None:
    a, b = pair
    a.send([b"abc"])
    assert type(b.recv(1)) is bytes
    big = _transfer(a, b, [_data(200_000)])
    assert type(big) is bytearray and len(big) == 200_000


def test_many_messages_in_a_row_fill_and_drain(pair) -> None:
    a, b = pair
    sent = [_data(n, n) for n in range(0, 200, 3)]
    pending = []
    for message in sent:  # send until the ring would block, then drain
        if sum(8 + len(m) for m in pending) + 8 + len(message) > CAP:
            for expected in pending:
                assert b.recv(1) == expected
            pending = []
        a.send([message])
        pending.append(message)
    for expected in pending:
        assert b.recv(1) == expected


def test_parts_of_every_kind_are_sent_without_joining(pair) -> None:
    a, b = pair
    raw = _data(3000)
    numbers = array.array("d", [1.5, 2.5, -3.0])
    readonly = memoryview(raw)[10:900]  # a read-only slice of bytes
    parts = [
        b"head",
        bytearray(b"-mutable-"),
        memoryview(bytearray(raw[:50]))[5:45],
        readonly,
        memoryview(numbers),  # not a byte format: sent as its bytes
        b"",
        memoryview(b""),
    ]
    expected = b"".join(bytes(memoryview(p).cast("B")) for p in parts)
    a.send(parts)
    assert b.recv(1) == expected
    a.send([readonly, b"!"])  # the two-part fast path with a read-only view
    assert b.recv(1) == bytes(readonly) + b"!"


def test_recv_timeout_bounds_the_wait_for_a_message_to_start(pair) -> None:
    a, b = pair
    t0 = time.monotonic()
    with pytest.raises(TransportTimeout):
        b.recv(0.05)
    assert 0.04 <= time.monotonic() - t0 < 2.0
    with pytest.raises(TransportTimeout):
        b.recv(0)
    a.send([b"now"])
    assert b.recv(0) == b"now"


@pytest.mark.parametrize("size", [CAP // 2, 3 * CAP])  # received into the scratch buffer / a new one
def test_a_started_message_is_read_to_its_end_whatever_the_timeout(pair, size: int) -> None:
    """Part of a message is in the ring and the sender stalls past the receiver's timeout, then
    finishes: the receiver gets the whole message, not a TransportTimeout that would split it."""
    from satchel.bindings._native import Part

    a, b = pair
    lib = a._lib
    message = _data(size)
    parts = (Part * 1)()
    parts[0].ptr, parts[0].len = ctypes_address(message), size
    stalled, finish = threading.Event(), threading.Event()

    def produce() -> None:
        # CAP // 2 fits the ring: hold back the whole message by announcing it only once finish is set;
        # 3 * CAP does not: write what fits at once (rc 1, SR_TIMEOUT), then stall
        rc = lib.sr_send(a._h, parts, 1, 0) if size > CAP else 1
        stalled.set()
        finish.wait(10)
        while rc == 1:
            rc = lib.sr_send(a._h, parts, 1, 100_000_000)
        box["sent"] = rc

    box: dict = {}
    producer = threading.Thread(target=produce)
    producer.start()
    stalled.wait(10)

    def consume() -> None:
        try:
            box["message"] = b.recv(0.05)
        except BaseException as exc:
            box["error"] = exc

    consumer = threading.Thread(target=consume)
    t0 = time.monotonic()
    consumer.start()
    if size > CAP:  # the message has started: the timeout no longer applies
        wait_until(lambda: time.monotonic() - t0 > 0.3, what="the receiver's timeout to pass")
        assert "error" not in box, box.get("error")
    else:  # nothing has started: the timeout applies
        consumer.join(5)
        assert isinstance(box.pop("error"), TransportTimeout)
        consumer = threading.Thread(target=consume)
        consumer.start()
    finish.set()
    consumer.join(10)
    producer.join(10)
    assert box["sent"] == 0 and bytes(box["message"]) == message


def ctypes_address(data: bytes) -> int:
    import ctypes

    return ctypes.cast(ctypes.c_char_p(data), ctypes.c_void_p).value


def test_close_wakes_a_blocked_receiver_in_another_thread(pair) -> None:
    a, b = pair
    box = {}

    def read() -> None:
        try:
            b.recv(30)
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=read)
    thread.start()
    wait_until(lambda: b._busy, what="the reader to block")
    t0 = time.monotonic()
    b.close()
    thread.join(5)
    assert isinstance(box.get("error"), TransportClosed) and time.monotonic() - t0 < 1.0


def test_peer_close_ends_waits_after_delivering_what_was_sent(pair) -> None:
    a, b = pair
    a.send([b"last words"])
    a.close()
    assert b.recv(1) == b"last words"
    t0 = time.monotonic()
    with pytest.raises(TransportClosed, match="closed"):
        b.recv(10)
    assert time.monotonic() - t0 < 0.5
    with pytest.raises(TransportClosed):
        b.send([b"anyone?"])


def test_a_message_cut_short_by_close_is_not_delivered(pair) -> None:
    a, b = pair
    lib = a._lib
    from satchel.bindings._native import Part

    message = _data(3 * CAP)
    parts = (Part * 1)()
    parts[0].ptr, parts[0].len = ctypes_address(message), len(message)
    assert lib.sr_send(a._h, parts, 1, 5_000_000) == 1
    a.close()
    with pytest.raises(TransportClosed):
        b.recv(5)


def test_closed_ring_refuses_calls(pair) -> None:
    a, b = pair
    a.close()
    a.close()  # idempotent
    with pytest.raises(TransportClosed):
        a.send([b"x"])
    with pytest.raises(TransportClosed):
        a.recv(0)


def test_segment_header_permissions_and_name() -> None:
    ring = Ring.create(CAP)
    try:
        name = ring.name
        assert name.startswith(f"/satchel-{os.getpid()}-") and len(name.rsplit("-", 1)[1]) == 16
        path = SHM_DIR / name[1:]
        st = path.stat()
        assert stat.S_IMODE(st.st_mode) == 0o600
        assert st.st_size == HEADER_SIZE + 2 * CAP
        header = read_header(path.read_bytes()[:256])
        assert header["capacity"] == CAP and header["creator_pid"] == os.getpid()
        assert header["attacher_pid"] == 0 and header["creator_state"] == 1
        assert abs(header["created_ns"] / 1e9 - time.time()) < 60
        (seg,) = [s for s in list_segments() if s.name == name]
        assert seg.valid and not seg.orphaned
        peer = Ring.attach(name)
        assert not path.exists(), "the attacher unlinks the name: both ends have it mapped"
        info = ring.info()
        assert info["attacher_pid"] == os.getpid() and info["attacher_state"] == 1
        with pytest.raises(OSError):
            Ring.attach(name)
        peer.close()
        assert ring.info()["attacher_state"] == 2
    finally:
        ring.close()
    assert segments_of(os.getpid()) == []


def test_creator_close_unlinks_an_unattached_segment() -> None:
    ring = Ring.create(CAP)
    assert segments_of(os.getpid()) == [ring.name[1:]]
    ring.close()
    assert segments_of(os.getpid()) == []


def test_attach_refuses_what_is_not_a_ring(tmp_path) -> None:
    name = f"satchel-{os.getpid()}-notaring{random.randrange(1 << 30):08x}"
    (SHM_DIR / name).write_bytes(b"\0" * (HEADER_SIZE + 2 * CAP))
    try:
        with pytest.raises(OSError, match="not a satchel ring"):
            Ring.attach("/" + name)
    finally:
        (SHM_DIR / name).unlink()
    with pytest.raises(OSError):
        Ring.attach(f"/satchel-{os.getpid()}-missing")
    with pytest.raises(OSError, match="invalid"):
        Ring.create(5000)  # not a power of two


@pytest.mark.usefixtures("sweeping")
def test_clean_segments_removes_only_orphans() -> None:
    # a segment whose creator is dead: created by a process that is SIGKILLed before anyone attaches
    child = Peer("creator_only", {})
    orphan = child.line()
    child.kill()
    child.finish()
    live = Ring.create(CAP)
    try:
        listed = {s.name: s for s in list_segments()}
        assert listed[orphan].orphaned and not listed[live.name].orphaned
        removed = {s.name for s in clean_segments()}
        assert orphan in removed and live.name not in removed
        assert segments_of(child.pid) == [] and segments_of(os.getpid()) == [live.name[1:]]
    finally:
        live.close()


def test_library_identity() -> None:
    lib = _native.load()
    assert lib.sr_abi_version() == _native.ABI_VERSION
    assert lib.sr_source_hash().decode() == _native.source_hash(_native.source_dir())
    assert lib.sr_pid_gone(os.getpid()) == 0
