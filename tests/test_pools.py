"""Pools of workers: parallel calls, back-pressure, map, deadlines and cancellation, zero-copy sending.

Calls that must overlap meet through files (tests/functions/pooled.py): each creates its own file
and waits for the other's, so they finish only if they run at the same time. No test sleeps to
make things happen at once; the few waits poll for a state with a deadline.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import satchel
from satchel.bindings import envelope as env
from satchel.bindings.codec import ZERO_COPY_MIN, Codec, RequestCodec
from tests.functions import pooled
from tests.waiting import pid_gone, wait_until

# The default transport (the shared-memory ring where it is available), and the pipe by name.
TRANSPORTS = [None, "pipe"]


def _load(ref, transport: str | None = None, **options):
    return satchel.load(ref, **({"transport": transport} if transport else {}), **options)


@pytest.fixture(scope="module")
def refs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    store = (tmp_path_factory.mktemp("store") / "s").as_uri()
    return {
        name: getattr(pooled, name).export(name=name, store=store)
        for name in ("work", "nap", "divide", "echo")
    }


class _Call(threading.Thread):
    """A call on its own thread; `.result()` joins it and returns its value or raises its error."""

    def __init__(self, fn, *args, **kwargs) -> None:
        super().__init__(daemon=True)
        self.fn, self.args, self.kwargs = fn, args, kwargs
        self.value = self.error = None
        self.start()

    def run(self) -> None:
        try:
            self.value = self.fn(*self.args, **self.kwargs)
        except BaseException as exc:
            self.error = exc

    def result(self, timeout: float = 60.0):
        self.join(timeout)
        assert not self.is_alive(), "the call did not finish"
        if self.error is not None:
            raise self.error
        return self.value


# --- dispatch ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_two_workers_run_calls_in_parallel(refs, tmp_path: Path, transport) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    with _load(refs["work"], transport, workers=2) as fn:
        assert fn.workers == 2
        pids = fn.worker_pids
        assert len(set(pids)) == 2 and None not in pids
        # each call waits for the other's file: both finish only if they run at the same time
        first = _Call(fn, "meet", str(a), str(b), 30.0)
        second = _Call(fn, "meet", str(b), str(a), 30.0)
        assert {first.result(), second.result()} == set(pids)
    for pid in pids:
        wait_until(lambda pid=pid: pid_gone(pid), what=f"worker {pid} gone after close")


def test_many_threads_and_tasks_on_a_pool(refs) -> None:
    with _load(refs["divide"], workers=2) as fn:
        results: dict[tuple[int, int], float] = {}

        def calls(i: int) -> None:
            for j in range(1, 60):
                results[i, j] = fn(float(i), float(j))

        threads = [threading.Thread(target=calls, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results == {(i, j): i / j for i in range(6) for j in range(1, 60)}

        async def tasks() -> list[float]:
            return await asyncio.gather(*(fn.acall(float(i), b=4.0) for i in range(200)))

        assert asyncio.run(tasks()) == [i / 4.0 for i in range(200)]
        assert fn.pending == 0


def test_overloaded_when_max_pending_calls_wait(refs, tmp_path: Path) -> None:
    started, release = tmp_path / "started", tmp_path / "release"
    with _load(refs["work"], workers=1, max_pending=1) as fn:
        blocked = _Call(fn, "meet", str(started), str(release), 30.0)
        wait_until(started.exists, what="the first call running")
        queued = _Call(fn, "pid", str(tmp_path / "queued"))
        wait_until(lambda: fn.pending == 1, what="the second call queued")
        with pytest.raises(satchel.Overloaded) as info:
            fn("pid", str(tmp_path / "refused"))
        message = str(info.value)
        assert "1 calls are already waiting" in message and "max_pending=1" in message
        assert "larger max_pending=" in message and "workers=" in message  # how to raise the limit

        async def refused_too() -> None:
            await fn.acall("pid", str(tmp_path / "refused"))

        with pytest.raises(satchel.Overloaded):
            asyncio.run(refused_too())
        release.touch()
        pid = blocked.result()
        assert queued.result() == pid
        assert not (tmp_path / "refused").exists(), "a refused call must not run"
        assert fn("pid") == pid


def test_queued_call_times_out_without_running(refs, tmp_path: Path) -> None:
    started, release = tmp_path / "started", tmp_path / "release"
    with _load(refs["work"], workers=1) as fn:
        blocked = _Call(fn, "meet", str(started), str(release), 30.0)
        wait_until(started.exists, what="the first call running")
        with pytest.raises(satchel.CallTimeout, match="no worker became free"):
            fn("pid", str(tmp_path / "late"), timeout=0.2)
        assert fn.pending == 0
        release.touch()
        blocked.result()
        assert not (tmp_path / "late").exists()


# --- map -----------------------------------------------------------------------------------------


def test_map_keeps_order_and_is_lazy(refs) -> None:
    pulled = 0

    def items():
        nonlocal pulled
        for i in range(1, 41):
            pulled += 1
            yield (float(i), 2.0) if i % 2 else {"a": float(i), "b": 2.0}

    with _load(refs["divide"], workers=2) as fn:
        results = fn.map(items())
        assert pulled == 0, "nothing is taken before the first result is asked for"
        assert next(results) == 0.5
        assert pulled <= 1 + 2 * 2, f"{pulled} items taken for one result"
        assert list(results) == [i / 2.0 for i in range(2, 41)]
        assert list(fn.map([3.0, (4.0,), {"a": 5.0}])) == [
            3.0,
            4.0,
            5.0,
        ]  # a single value: the first argument


def test_map_order_and_completion_order(refs) -> None:
    with _load(refs["nap"], workers=2) as fn:
        # one parameter: each item is the argument; the first call is the slowest
        assert list(fn.map([0.6, 0.0, 0.0, 0.0])) == [0.6, 0.0, 0.0, 0.0]
        assert next(iter(fn.map([0.6, 0.0, 0.0, 0.0], ordered=False))) == 0.0


def test_map_raises_at_the_failing_item(refs) -> None:
    with _load(refs["divide"], workers=2) as fn:
        results = fn.map([(1.0, 1.0), (2.0, 1.0), (1.0, 0.0), (3.0, 1.0)])
        assert next(results) == 1.0
        assert next(results) == 2.0
        with pytest.raises(satchel.RemoteError) as info:
            next(results)
        assert info.value.type_name == "ZeroDivisionError"
        assert list(results) == []
        with pytest.raises(satchel.ArgumentError, match="'b'"):
            list(fn.map([(1.0, "x")]))
        assert fn(6.0, 3.0) == 2.0


# --- deadlines and cancellation ------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_cancel_interrupts_python_code_and_keeps_the_worker(refs, tmp_path: Path, transport) -> None:
    with _load(refs["work"], transport, workers=1, cancel_grace=30.0) as fn:
        pid = fn.worker_pid
        with pytest.raises(satchel.CallTimeout) as info:
            fn("spin", seconds=60.0, timeout=0.5)
        assert "cancelled in its worker" in str(info.value)
        assert fn("pid") == pid  # the slot came back once the worker answered the cancel, long before 60 s
        assert fn.restarts == 0


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_deadline_raises_at_the_deadline_not_after_the_grace(refs, tmp_path: Path, transport) -> None:
    """A call stuck in C code (time.sleep) raises CallTimeout at its deadline: before the function could
    have returned (it creates `done` once its sleep is over), not once the worker answered the cancel."""
    started, done = tmp_path / "started", tmp_path / "done"
    with _load(refs["work"], transport, workers=1, cancel_grace=30.0) as fn:
        pid = fn.worker_pid
        with pytest.raises(satchel.CallTimeout):
            fn("sleep", str(started), seconds=5.0, after=str(done), timeout=0.5)
        assert started.exists() and not done.exists(), "CallTimeout came only after the function returned"
        # the sleep ends well within the grace: the worker answers the cancel and stays
        assert fn("pid") == pid and fn.restarts == 0

        async def on_the_loop() -> None:  # the pipe: the reply is awaited on the loop itself
            with pytest.raises(satchel.CallTimeout):
                await fn.acall("sleep", str(started), seconds=5.0, after=str(done), timeout=0.5)

        started.unlink()
        done.unlink()
        asyncio.run(on_the_loop())
        assert started.exists() and not done.exists(), "CallTimeout came only after the function returned"
        assert fn("pid") == pid and fn.restarts == 0


@pytest.mark.parametrize("transport", TRANSPORTS)  # pipe: the call is awaited on the loop itself
def test_cancelling_an_acall_task_interrupts_its_call(refs, tmp_path: Path, transport) -> None:
    started = tmp_path / "started"
    with _load(refs["work"], transport, workers=1, cancel_grace=5.0) as fn:
        pid = fn.worker_pid

        async def scenario() -> int:
            task = asyncio.create_task(fn.acall("spin", str(started), seconds=60.0))
            while not started.exists():
                await asyncio.sleep(0.005)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            # the slot comes back once the worker has answered the CANCEL, well before 60 s
            return await fn.acall("pid", timeout=10.0)

        t0 = time.monotonic()
        assert asyncio.run(scenario()) == pid
        assert time.monotonic() - t0 < 10.0
        assert fn.worker_pid == pid


def test_cancelling_an_acall_stuck_in_c_kills_its_worker_after_the_grace(refs, tmp_path: Path) -> None:
    started = tmp_path / "started"
    grace = 1.0
    with _load(refs["work"], workers=1, cancel_grace=grace) as fn:
        stuck = fn.worker_pid

        async def scenario() -> tuple[float, int]:
            task = asyncio.create_task(fn.acall("sleep", str(started), seconds=120.0))
            while not started.exists():
                await asyncio.sleep(0.005)
            t0 = time.monotonic()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            pid = await fn.acall("pid", timeout=30.0)  # waits for the slot: back once the worker is killed
            return time.monotonic() - t0, pid

        elapsed, pid = asyncio.run(scenario())
        assert pid != stuck and fn.worker_pid == pid
        assert grace <= elapsed < grace + 5.0, f"the slot came back after {elapsed:.2f}s"
        wait_until(lambda: pid_gone(stuck), timeout=5.0, what="the stuck worker gone")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_call_stuck_in_c_gets_its_worker_killed_others_unaffected(
    refs, tmp_path: Path, transport, caplog: pytest.LogCaptureFixture
) -> None:
    started, release = tmp_path / "started", tmp_path / "release"
    grace = 1.0
    with _load(refs["work"], transport, workers=2, cancel_grace=grace) as fn:
        other = _Call(fn, "meet", str(started), str(release), 60.0)
        wait_until(started.exists, what="the other call running")
        holder = int(started.read_text())
        stuck = next(pid for pid in fn.worker_pids if pid != holder)
        with caplog.at_level(logging.WARNING, logger="satchel.runtime.workers"):
            with pytest.raises(satchel.CallTimeout):
                fn("sleep", seconds=120.0, timeout=0.5)
            wait_until(lambda: pid_gone(stuck), timeout=10.0, what="the stuck worker gone")
            # replaced in the background, before any call asks for it
            replaced = wait_until(
                lambda: [pid for pid in fn.worker_pids if pid not in (holder, stuck, None)],
                timeout=60.0,
                what="a new worker in the stuck one's place",
            )
        assert other.is_alive(), "the other call is still running on its worker"
        release.touch()
        assert other.result() == holder, "the other worker's call completes, on the same worker"
        _assert_two_workers_again(fn, tmp_path, holder, stuck)
        assert fn.restarts == 1 and fn._pool.restart_causes == {"timeout": 1}
        assert set(fn.worker_pids) == {holder, *replaced}
    lines = [r.getMessage() for r in caplog.records if r.name == "satchel.runtime.workers"]
    assert len(lines) == 1 and f"(pid {stuck}, cause=timeout)" in lines[0], lines
    assert "still ran 1s after its deadline (0.5s)" in lines[0], lines


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_deadlines_racing_replies_restart_only_the_stuck_workers(refs, transport) -> None:
    """Many calls whose deadline falls about when they answer, some calls cancelled as they answer, and
    two calls truly stuck in C code: only the two stuck ones cost a restart (a worker that answered,
    however late, is kept)."""
    rng = random.Random(10)
    with _load(refs["work"], transport, workers=1, cancel_grace=3.0) as fn:

        async def scenario() -> None:
            for i in range(400):
                if i in (150, 300):  # truly stuck: killed
                    await fn.acall("pid")  # waits for the slot (back once the last stuck worker is replaced)
                    with pytest.raises(satchel.CallTimeout):
                        await fn.acall("sleep", seconds=120.0, timeout=0.2)
                    continue
                if i % 2:
                    try:
                        await fn.acall("pid", timeout=rng.uniform(0.0002, 0.004))
                    except satchel.CallTimeout:
                        pass
                    continue
                task = asyncio.create_task(fn.acall("pid"))
                for _ in range(rng.randrange(8)):
                    await asyncio.sleep(0)
                task.cancel()
                try:
                    await task
                except (asyncio.CancelledError, satchel.CallTimeout):
                    pass

        asyncio.run(scenario())
        for _ in range(200):  # from a thread, as a plain call
            try:
                fn("pid", timeout=rng.uniform(0.0002, 0.004))
            except satchel.CallTimeout:
                pass
        assert fn("pid") == fn.worker_pid
        assert (fn.restarts, dict(fn._pool.restart_causes)) == (2, {"timeout": 2})


def test_deadline_passed_before_start_is_not_run(refs, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    with _load(refs["work"], workers=1) as fn:
        # through the API: no time left, nothing is sent
        with pytest.raises(satchel.CallTimeout, match="did not run"):
            fn("pid", str(marker), timeout=0.0)
        # on the wire: a CALL whose deadline_ms has passed when the worker gets it
        slot = fn._pool.acquire()
        try:
            worker = fn._pool.worker(slot)
            payload = fn._request.encode_call({"action": "pid", "mine": str(marker)})
            past = int(time.time() * 1000) - 5000
            worker.transport.send(
                env.encode_parts(
                    env.Kind.CALL, 77, payload, fingerprint=fn._request.fingerprint, deadline_ms=past
                )
            )
            reply = env.decode(worker.transport.recv(10.0))
        finally:
            fn._pool.release(slot)
        assert (reply.kind, reply.call_id) == (env.Kind.ERROR, 77)
        error = env.decode_error(reply.payload)
        assert error.type == env.TIMEOUT_ERROR_TYPE and "did not run" in error.message
        assert not marker.exists(), "a call past its deadline must not run"
        assert fn("pid", str(marker)) == fn.worker_pid and marker.exists()


def test_crashed_worker_is_replaced_and_others_unaffected(refs, tmp_path: Path) -> None:
    started, release = tmp_path / "started", tmp_path / "release"
    with _load(refs["work"], workers=2) as fn:
        other = _Call(fn, "meet", str(started), str(release), 60.0)
        wait_until(started.exists, what="the other call running")
        holder = int(started.read_text())
        crashed = next(pid for pid in fn.worker_pids if pid != holder)
        with pytest.raises(satchel.WorkerCrashed) as info:
            fn("crash")
        assert info.value.exit_status == -9
        wait_until(lambda: pid_gone(crashed), timeout=5.0, what="the crashed worker gone")
        release.touch()
        assert other.result() == holder
        _assert_two_workers_again(fn, tmp_path, holder, crashed)


def _assert_two_workers_again(fn, tmp_path: Path, kept: int, lost: int) -> None:
    """Two calls that can only finish together run on `kept` and on a new worker in `lost`'s slot."""
    a, b = tmp_path / "again-a", tmp_path / "again-b"
    first = _Call(fn, "meet", str(a), str(b), 30.0)
    second = _Call(fn, "meet", str(b), str(a), 30.0)
    pids = {first.result(), second.result()}
    assert kept in pids and lost not in pids and len(pids) == 2
    assert set(fn.worker_pids) == pids


def test_close_fails_waiting_calls_and_leaves_no_processes(refs, tmp_path: Path) -> None:
    release = tmp_path / "release"
    fn = _load(refs["work"], workers=3)
    pids = fn.worker_pids
    assert len(set(pids)) == 3
    blockers = [_Call(fn, "meet", str(tmp_path / f"s{i}"), str(release), 60.0) for i in range(3)]
    wait_until(lambda: all((tmp_path / f"s{i}").exists() for i in range(3)), what="three calls running")
    waiting = _Call(fn, "pid")
    wait_until(lambda: fn.pending == 1, what="a call waiting")
    closer = threading.Thread(target=fn.close)
    closer.start()
    with pytest.raises(satchel.SatchelError, match="closed"):
        waiting.result()
    release.touch()
    assert {b.result() for b in blockers} == set(pids), "running calls finish before their workers stop"
    closer.join(30)
    assert not closer.is_alive()
    for pid in pids:
        wait_until(lambda pid=pid: pid_gone(pid), timeout=10.0, what=f"worker {pid} gone")
    with pytest.raises(satchel.SatchelError, match="closed"):
        fn("pid")


def test_pickled_pool_keeps_its_options(refs) -> None:
    import pickle

    with _load(refs["divide"], workers=2, max_pending=7) as fn:
        clone = pickle.loads(pickle.dumps(fn))
        try:
            assert clone.workers == 2 and clone(1.0, 4.0) == 0.25
        finally:
            clone.close()


# --- zero-copy sending ---------------------------------------------------------------------------


def test_request_parts_send_large_values_by_reference() -> None:
    schema = {
        "type": "record",
        "name": "Request",
        "namespace": "tests.pooled",
        "fields": [
            {
                "name": "point",
                "type": {"type": "record", "name": "Point", "fields": [{"name": "x", "type": "double"}]},
            },
            {"name": "data", "type": "bytes"},
            {"name": "again", "type": ["null", "tests.pooled.Point"]},
            {"name": "array", "type": {"type": "bytes", "logicalType": "satchel.ndarray"}},
            {"name": "n", "type": "long", "default": 3},
        ],
    }
    codec = RequestCodec(schema)
    data = bytes(range(256)) * (ZERO_COPY_MIN // 128)
    array = np.arange(ZERO_COPY_MIN, dtype=np.float64).reshape(-1, 8)
    kwargs = {"point": {"x": 1.0}, "data": data, "again": {"x": 2.0}, "array": array}
    parts = codec.encode_call_parts(kwargs)
    assert b"".join(parts) == codec.encode_call(kwargs)
    assert any(part is data for part in parts), "the bytes argument is sent as itself"
    views = [p for p in parts if isinstance(p, memoryview) and p.nbytes == array.nbytes]
    assert len(views) == 1 and np.shares_memory(np.asarray(views[0]), array), "the array's own memory"
    decoded = codec.decode_call(b"".join(parts))
    assert decoded["data"] == data and np.array_equal(decoded["array"], array) and decoded["n"] == 3
    small = {**kwargs, "data": b"xy", "array": np.arange(3.0)}
    assert codec.encode_call_parts(small) == [codec.encode_call(small)]
    with pytest.raises(satchel.ArgumentError, match="'data'"):
        codec.encode_call_parts({**kwargs, "data": 1.5})
    with pytest.raises(satchel.ArgumentError, match="bogus"):
        codec.encode_call_parts({**kwargs, "bogus": 1})
    # a result of a bytes schema: its prefix, and the value itself
    result = Codec("bytes").encode_parts(data)
    assert result[1] is data and b"".join(result) == Codec("bytes").encode(data)


def test_large_argument_reaches_the_transport_unjoined(refs) -> None:
    data = np.random.default_rng(0).integers(0, 256, 8 << 20, dtype=np.uint8).tobytes()
    with _load(refs["echo"], workers=1) as fn:
        worker = fn._pool.worker(fn._pool.slots[0])
        sent: list = []
        real_send = worker.transport.send

        def spy(parts):
            sent.append(list(parts))
            return real_send(parts)

        worker.transport.send = spy
        try:
            assert fn(data) == data
        finally:
            worker.transport.send = real_send
        (parts,) = sent
        assert any(part is data for part in parts), "the argument went to the transport as itself"


# --- the pool alone (no processes) -----------------------------------------------------------------


class _FakeWorker:
    alive = True
    pid = 0
    unsettled = False  # no call of its ever times out
    end_cause = None

    def ask_to_stop(self) -> None:
        self.alive = False

    def stop(self, timeout: float = 0.0) -> None:
        self.alive = False


def test_pool_never_gives_a_slot_to_two_callers_and_starves_none() -> None:
    from satchel.runtime.pool import WorkerPool

    pool = WorkerPool(lambda index: _FakeWorker(), size=2, max_pending=64, name="fake")
    pool.start()
    holders = [0, 0]
    lock = threading.Lock()
    errors: list[str] = []
    waits: list[float] = []

    def hold(slot) -> None:
        with lock:
            holders[slot.index] += 1
            if holders[slot.index] != 1:
                errors.append(f"slot {slot.index} held {holders[slot.index]} times")
        time.sleep(0.0002)
        with lock:
            holders[slot.index] -= 1

    def thread_calls() -> None:
        for _ in range(300):
            t0 = time.monotonic()
            slot = pool.acquire(time.monotonic() + 30.0)
            waits.append(time.monotonic() - t0)
            try:
                hold(slot)
            finally:
                pool.release(slot)

    async def task_calls() -> None:
        async def one(i: int) -> None:
            deadline = time.monotonic() + (0.0005 if i % 7 == 0 else 30.0)
            try:
                slot = await pool.acquire_async(deadline)
            except satchel.CallTimeout:
                return
            try:
                hold(slot)
                await asyncio.sleep(0)
            finally:
                pool.release(slot)

        tasks = [asyncio.ensure_future(one(i)) for i in range(60)]
        await asyncio.sleep(0.001)
        for task in tasks[::5]:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    threads = [threading.Thread(target=thread_calls) for _ in range(5)]
    for t in threads:
        t.start()
    for _ in range(5):
        asyncio.run(task_calls())
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert pool.pending == 0 and sorted(s.index for s in pool._idle) == [0, 1], "every slot came back"
    assert max(waits) < 2.0, f"a call waited {max(waits):.2f}s"
    pool.close()
