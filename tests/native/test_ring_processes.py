"""The ring between real processes: echo, both directions at once, and either side killed mid-message.

Each test checks /dev/shm before and after: whatever happens, no segment of ours or of the peer's stays.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest

from satchel.bindings.ring import Ring
from satchel.bindings.transports.shm import ShmTransportFactory
from satchel.core.errors import TransportClosed
from tests.native.conftest import Peer, segments_of, wait_until

DEATH_NOTICE = 1.0  # seconds within which a blocked side must learn that its peer died (typically ~0.1)


def _channel(capacity: int = 0):
    channel = ShmTransportFactory(capacity or None).create()
    return channel, channel.transport


def _start(role: str, channel, **args) -> Peer:
    peer = Peer(role, {**channel.endpoint, **args}, pass_fds=channel.pass_fds)
    channel.after_spawn()
    return peer


def _head(ring: Ring, index: int) -> int:
    offset = 512 * (index + 1)
    return int.from_bytes(ring.segment_bytes()[offset : offset + 8], "little")


def test_echo_between_processes() -> None:
    before = segments_of(os.getpid())
    channel, transport = _channel(8192)
    peer = _start("echo", channel)
    peer.expect("attached")
    assert segments_of(os.getpid()) == before, "the attacher unlinked the name"
    for size in (0 + 1, 100, 8192 - 8, 8192, 100_000, 3 << 20):
        message = os.urandom(size)
        transport.send([message[:7], memoryview(message)[7:]])
        assert bytes(transport.recv(30)) == message
    transport.send([b""])
    assert peer.finish() == 0
    transport.close()
    assert segments_of(os.getpid()) == before


@pytest.mark.parametrize("size", [64, 5000, 70_000])
def test_concurrent_messages_both_directions(size: int) -> None:
    """The peer sends numbered messages while reading our echoes of them: both rings busy at once."""
    channel, transport = _channel(16384)
    peer = _start("pingpong", channel, count=300, size=size)
    peer.expect("attached")
    echoed = 0
    while echoed < 300:
        message = transport.recv(60)
        transport.send([message])
        echoed += 1
    assert peer.line(60) == "ok"
    assert peer.finish() == 0
    with pytest.raises(TransportClosed):
        transport.recv(5)
    transport.close()
    assert segments_of(os.getpid()) == segments_of(peer.pid) == []


def test_worker_killed_while_writing_a_large_message() -> None:
    """The peer streams 1 GiB through a 16 KiB ring; we read part of it, SIGKILL it mid-message, and the
    blocked recv raises TransportClosed within DEATH_NOTICE."""
    channel, transport = _channel(16384)
    peer = _start("source", channel, size=1 << 30)
    peer.expect("attached")
    box: dict = {}

    def read() -> None:
        try:
            transport.recv(60)
            box["result"] = "a whole message"
        except BaseException as exc:
            box["result"] = exc
            box["at"] = time.monotonic()

    reader = threading.Thread(target=read)
    reader.start()
    ring = transport.ring
    wait_until(lambda: ring._lib.sr_recv_progress(ring._h) > 1 << 20, what="1 MiB received")
    killed = time.monotonic()
    peer.kill()
    reader.join(10)
    assert isinstance(box["result"], TransportClosed), box["result"]
    assert box["at"] - killed < DEATH_NOTICE
    transport.close()
    assert segments_of(os.getpid()) == segments_of(peer.pid) == []


def test_worker_killed_while_reading_a_large_message() -> None:
    """We stream 1 GiB to a peer that reads it; SIGKILL it mid-message: our send raises TransportClosed."""
    import mmap

    channel, transport = _channel(16384)
    peer = _start("sink", channel)
    peer.expect("attached")
    source = mmap.mmap(-1, 1 << 30)  # untouched anonymous memory: nothing is allocated to read it
    box: dict = {}

    def write() -> None:
        try:
            transport.send([memoryview(source)])
            box["result"] = "sent it all"
        except BaseException as exc:
            box["result"] = exc
            box["at"] = time.monotonic()

    writer = threading.Thread(target=write)
    writer.start()
    wait_until(lambda: _head(transport.ring, 0) > 1 << 20, what="1 MiB written")
    killed = time.monotonic()
    peer.kill()
    writer.join(10)
    assert isinstance(box["result"], TransportClosed), box["result"]
    assert box["at"] - killed < DEATH_NOTICE
    box.clear()  # the exception's frames hold a view of `source`
    transport.close()
    source.close()
    assert segments_of(os.getpid()) == segments_of(peer.pid) == []


def test_worker_dies_before_attaching() -> None:
    """Only the liveness pipe can tell: the peer never wrote its pid into the header."""
    channel, transport = _channel()
    peer = Peer("echo", {**channel.endpoint, "name": "/satchel-no-such-segment"}, pass_fds=channel.pass_fds)
    channel.after_spawn()
    t0 = time.monotonic()
    with pytest.raises(TransportClosed, match="gone"):
        transport.recv(30)
    assert time.monotonic() - t0 < 10  # includes the peer's start and failure
    peer.finish()
    assert segments_of(os.getpid()) == [], "the survivor unlinked the never-attached segment"
    transport.close()


@pytest.mark.parametrize("request_size", [64, 1 << 22])
def test_caller_killed_mid_call(request_size: int) -> None:
    """The peer is the caller (the creator): it sends a request and waits for the answer; we attach as
    the worker, read part or all of the request, and kill the caller. We learn it within DEATH_NOTICE."""
    caller = Peer("creator_call", {"capacity": 16384, "size": request_size})
    name = caller.line()
    worker = Ring.attach(name)
    try:
        assert segments_of(caller.pid) == []
        if request_size <= 16384:
            assert len(worker.recv(30)) == request_size
            assert caller.line() == "sent"  # now blocked in recv, waiting for our answer
        else:
            # the request is streaming; read part of it in another thread, then kill the caller
            box: dict = {}

            def read() -> None:
                try:
                    worker.recv(60)
                    box["result"] = "whole"
                except BaseException as exc:
                    box["result"] = exc
                    box["at"] = time.monotonic()

            thread = threading.Thread(target=read)
            thread.start()
            wait_until(lambda: worker._lib.sr_recv_progress(worker._h) > 1 << 16, what="64 KiB received")
        killed = time.monotonic()
        caller.kill()
        if request_size <= 16384:
            with pytest.raises(TransportClosed, match="gone"):
                worker.recv(30)
            assert time.monotonic() - killed < DEATH_NOTICE
            with pytest.raises(TransportClosed):
                worker.send([b"the answer"])
        else:
            thread.join(10)
            assert isinstance(box["result"], TransportClosed), box["result"]
            assert box["at"] - killed < DEATH_NOTICE
    finally:
        worker.close()
        caller.finish()
    assert segments_of(caller.pid) == []


@pytest.mark.usefixtures("sweeping")
def test_caller_killed_before_anyone_attached_leaves_a_segment_for_doctor() -> None:
    from click.testing import CliRunner

    from satchel.cli import main

    caller = Peer("creator_only", {"capacity": 8192})
    name = caller.line()
    caller.kill()
    caller.finish()
    assert segments_of(caller.pid) == [name[1:]]
    result = CliRunner().invoke(main, ["doctor"])
    assert result.exit_code == 0 and name in result.output and "orphaned" in result.output
    result = CliRunner().invoke(main, ["doctor", "--clean"])
    assert result.exit_code == 0, result.output
    assert segments_of(caller.pid) == []


def test_close_from_the_worker_side_is_seen_as_closed() -> None:
    channel, transport = _channel()
    peer = _start("echo", channel)
    peer.expect("attached")
    transport.send([b"ping"])
    assert transport.recv(10) == b"ping"
    transport.send([b""])  # the echo peer closes its end and exits
    with pytest.raises(TransportClosed):
        transport.recv(10)
    assert peer.finish() == 0
    transport.close()
    assert segments_of(os.getpid()) == []


def test_ring_probe_reports_both_ends_counters_and_the_wake_up_latency() -> None:
    from satchel.bindings import ring_probe

    probe = ring_probe.round_trips(300)
    caller, peer = probe["caller"], probe["peer"]
    assert set(caller) == set(peer) == set(ring_probe.STAT_NAMES)
    assert 0 < probe["p50_us"] <= probe["p99_us"]
    for stats in (caller, peer):
        assert stats["waits"] >= stats["spins"] >= stats["spin_successes"]
    assert peer["waits"] > 0, "the echo peer waits for every message"
    tuning = probe["tuning"]
    assert tuning["wake_us"] > 0 and 10.0 <= tuning["budget_us"] <= 1000.0 and tuning["override_us"] is None
    assert segments_of(os.getpid()) == []


def test_doctor_runs_a_ring_self_test() -> None:
    from click.testing import CliRunner

    from satchel.cli import main

    result = CliRunner().invoke(main, ["doctor"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any(line.startswith("ring waits     wake-up latency ") for line in lines), result.output
    assert any(line.startswith("ring self-test 2000 round trips of 64 B: p50 ") for line in lines)
    assert any(line.startswith("  this end     waits ") for line in lines)
    assert any(line.startswith("  echo peer    waits ") for line in lines)
    assert segments_of(os.getpid()) == []


def test_under_a_cpu_hog_on_every_core_the_ring_answers_without_spinning() -> None:
    """No CPU free: neither end spins (a spinner would keep the peer from the CPU it needs), and every
    round trip is still answered, by futex sleeps and wakes."""
    from satchel.bindings import ring_probe

    hogs = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"])
        for _ in range(len(os.sched_getaffinity(0)))
    ]
    try:

        def all_running() -> bool:
            for hog in hogs:
                with open(f"/proc/{hog.pid}/stat") as fh:
                    if fh.read().rsplit(")", 1)[1].split()[0] != "R":
                        return False
            return True

        wait_until(all_running, 30, "the CPU hogs to run")
        probe = ring_probe.round_trips(200)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    assert probe["caller"]["spins"] == 0 and probe["peer"]["spins"] == 0, probe
    assert probe["caller"]["waits"] > 0 and probe["caller"]["sleeps"] > 0
