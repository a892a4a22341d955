"""The pipe transport's framing over real OS pipes: frames that arrive together, in pieces, or larger than
a read; the blocking and the event-loop receivers; a timeout that never leaves half a frame behind."""

from __future__ import annotations

import asyncio
import os
import threading

import pytest

from satchel.bindings.transports.pipe import _LEN, PipeTransport
from satchel.core.errors import TransportClosed, TransportTimeout


@pytest.fixture
def pair():
    """(caller, worker): the caller reads without blocking, as a channel's caller side does."""
    to_worker_r, to_worker_w = os.pipe()
    to_caller_r, to_caller_w = os.pipe()
    caller = PipeTransport(to_caller_r, to_worker_w, nonblocking_reads=True)
    worker = PipeTransport(to_worker_r, to_caller_w)
    yield caller, worker
    caller.close()
    worker.close()


def test_frames_sent_back_to_back_come_out_one_by_one(pair) -> None:
    caller, worker = pair
    messages = [b"a", b"", b"bc" * 10, bytes(range(256))]
    for m in messages:
        worker.send([m[:1], m[1:]])
    assert [bytes(caller.recv(5.0)) for _ in messages] == messages
    with pytest.raises(TransportTimeout):
        caller.recv(0.01)


def test_a_frame_in_pieces_and_a_large_frame(pair) -> None:
    caller, worker = pair
    large = os.urandom(3 << 20)  # more than a pipe holds and a read takes: written while being read
    writer = threading.Thread(target=worker.send, args=([large],))
    writer.start()
    assert bytes(caller.recv(10.0)) == large
    writer.join()
    header = _LEN.pack(5)
    os.write(worker._wfd, header[:3])  # half a header, then the rest with the body
    os.write(worker._wfd, header[3:] + b"hel")
    os.write(worker._wfd, b"lo")
    assert bytes(caller.recv(5.0)) == b"hello"


def test_event_loop_receiver_matches_the_blocking_one(pair) -> None:
    caller, worker = pair
    large = os.urandom(1 << 20)

    async def scenario() -> list[bytes]:
        got = []
        worker.send([b"first"])
        worker.send([b"second"])  # arrives with the first: kept for the next arecv
        got.append(bytes(await caller.arecv()))
        got.append(bytes(await caller.arecv()))
        writer = threading.Thread(target=worker.send, args=([large],))
        writer.start()
        got.append(bytes(await caller.arecv(10.0)))
        writer.join()
        with pytest.raises(TransportTimeout):
            await caller.arecv(0.01)
        return got

    assert asyncio.run(scenario()) == [b"first", b"second", large]


def test_cancelled_mid_frame_the_next_arecv_finishes_it(pair) -> None:
    caller, worker = pair

    async def scenario() -> bytes:
        header = _LEN.pack(6)
        os.write(worker._wfd, header + b"abc")  # half the frame is there
        task = asyncio.create_task(caller.arecv())
        while not caller._frames.started:  # until it has read what is there and waits for the rest
            await asyncio.sleep(0.001)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        os.write(worker._wfd, b"def")
        return bytes(await caller.arecv(5.0))

    assert asyncio.run(asyncio.wait_for(scenario(), 30)) == b"abcdef"


def test_peer_gone_is_transport_closed(pair) -> None:
    caller, worker = pair
    worker.send([b"last"])
    worker.close()
    assert bytes(caller.recv(5.0)) == b"last"
    with pytest.raises(TransportClosed):
        caller.recv(5.0)


def test_closing_from_another_thread_takes_the_read_end_out_of_the_loop(pair) -> None:
    """The read end stays registered with the loop between awaited frames; closing the transport from
    another thread must unregister it on the loop's thread before closing it (its number is reused)."""
    caller, worker = pair
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        worker.send([b"x"])
        assert bytes(asyncio.run_coroutine_threadsafe(caller.arecv(5.0), loop).result(10)) == b"x"
        read_end = caller._rfd
        caller.close()  # from this thread, while the loop still watches the read end

        async def still_watched() -> bool:  # runs after the close the loop was handed
            return loop.remove_reader(read_end)

        assert asyncio.run_coroutine_threadsafe(still_watched(), loop).result(10) is False
        with pytest.raises(OSError):
            os.fstat(read_end)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def test_a_frame_read_for_a_task_cancelled_before_it_woke_goes_to_the_next_arecv(pair) -> None:
    """The race of a cancel with a reply that has just arrived: the frame is read (its future resolved),
    but the task is cancelled before it runs again. The frame must not be lost: the caller would wait
    for an answer that already came, and kill a worker that had answered."""
    caller, worker = pair

    async def scenario() -> bytes:
        task = asyncio.create_task(caller.arecv())
        while caller._waiter is None:  # until it awaits the frame
            await asyncio.sleep(0)
        worker.send([b"reply"])
        while not caller._waiter.done():  # the loop read it; the task has not resumed yet
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return bytes(await caller.arecv(5.0))

    assert asyncio.run(asyncio.wait_for(scenario(), 30)) == b"reply"
