"""Resizing pools while calls run: growing without blocking, shrinking idle-first, cold starts, restarts."""

from __future__ import annotations

import logging
import threading

import pytest

import satchel
from satchel.runtime.pool import WorkerPool
from tests.functions import textutil
from tests.waiting import pid_gone, wait_until


class _FakeWorker:
    """Stands for a worker process; `stopped` once the pool stops it."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.label = f"fake worker {index}"
        self.unsettled = False  # no call of its ever times out
        self.end_cause = None
        self.alive = True
        self.stopped = False
        self.pid = 1000 + index

    @property
    def probably_alive(self) -> bool:
        return self.alive

    def ask_to_stop(self) -> None:
        self.alive = False

    def stop(self, timeout: float = 0.0) -> None:
        self.alive, self.stopped = False, True

    def kill(self) -> None:
        self.alive = False

    def why_ended(self) -> tuple[str, str]:
        return "crash", "it died (exit status 1)"


class _Starter:
    """start_worker for a pool: records its workers; holds starts back while `gate` is clear."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.gate.set()
        self.workers: list[_FakeWorker] = []

    def __call__(self, index: int) -> _FakeWorker:
        assert self.gate.wait(30), "the test never let the worker start"
        worker = _FakeWorker(index)
        self.workers.append(worker)
        return worker


def _acquire_in_thread(pool: WorkerPool) -> tuple[threading.Thread, list]:
    got: list = []
    thread = threading.Thread(target=lambda: got.append(pool.acquire()), daemon=True)
    thread.start()
    return thread, got


def test_growing_does_not_block_and_new_slots_serve_waiting_calls() -> None:
    starter = _Starter()
    pool = WorkerPool(starter, size=1, max_pending=8, name="fake")
    pool.start()
    held = pool.acquire()
    starter.gate.clear()
    pool.resize(3)  # returns while the new workers are still starting
    assert pool.size == 3 and len(pool.slots) == 1
    thread, got = _acquire_in_thread(pool)
    wait_until(lambda: pool.pending == 1, what="the call to wait")
    starter.gate.set()
    thread.join(30)
    assert got and got[0] is not held and got[0].process is not None
    wait_until(lambda: len(pool.slots) == 3, what="both new slots to join")
    assert sorted(s.index for s in pool.slots) == [0, 1, 2]
    pool.release(got[0])
    pool.release(held)
    pool.close()
    assert all(w.stopped for w in starter.workers)


def test_shrinking_retires_idle_slots_first_and_busy_ones_when_their_call_ends() -> None:
    starter = _Starter()
    pool = WorkerPool(starter, size=3, max_pending=8, name="fake")
    pool.start()
    busy = pool.acquire()
    pool.resize(1)
    assert pool.size == 1 and pool.slots == [busy]
    wait_until(lambda: sum(w.stopped for w in starter.workers) == 2, what="two idle workers stopped")
    assert not busy.process.stopped
    pool.resize(0)  # the busy one leaves the pool but keeps its worker until its call ends
    assert pool.size == 0 and pool.slots == [] and not busy.process.stopped
    worker = busy.process
    pool.release(busy)
    assert worker.stopped and pool.busy == 0
    pool.close()


def test_a_call_on_an_empty_pool_starts_a_worker() -> None:
    starter = _Starter()
    pool = WorkerPool(starter, size=0, max_pending=0, name="fake")
    pool.start()
    assert pool.size == 0 and starter.workers == []
    slot = pool.acquire()  # a cold start, even with max_pending=0
    assert pool.size == 1 and len(starter.workers) == 1 and slot.process is starter.workers[0]
    pool.release(slot)
    assert pool.idle_seconds(now=slot.idle_since + 5.0) == [5.0]
    pool.close()


def test_shrinking_to_zero_while_calls_wait_keeps_one_worker() -> None:
    pool = WorkerPool(_Starter(), size=1, max_pending=8, name="fake")
    pool.start()
    held = pool.acquire()
    thread, got = _acquire_in_thread(pool)
    wait_until(lambda: pool.pending == 1, what="the call to wait")
    pool.resize(0)
    thread.join(30)
    assert got, "the waiting call got a new worker"
    pool.release(held)
    pool.release(got[0])
    assert pool.size == 1
    pool.close()


def test_replacing_a_dead_worker_counts_a_restart(caplog: pytest.LogCaptureFixture) -> None:
    restarts: list[int] = []
    pool = WorkerPool(_Starter(), size=1, name="fake", on_restart=lambda: restarts.append(1))
    pool.start()
    slot = pool.acquire()
    slot.process.alive = False
    with caplog.at_level(logging.WARNING, logger="satchel.runtime.workers"):
        pool.worker(slot)
    pool.release(slot)
    assert pool.restarts == 1 and restarts == [1] and pool.restart_causes == {"crash": 1}
    (record,) = [r for r in caplog.records if r.name == "satchel.runtime.workers"]
    assert record.getMessage() == (
        "fake: starting a new worker in place of fake worker 0 (pid 1000, cause=crash): it died (exit status 1)"
    )
    with pytest.raises(ValueError, match="workers must be an int, 0 or more"):
        pool.resize(-1)
    pool.close()


@pytest.mark.slow
def test_loaded_function_scales_at_run_time(tmp_path) -> None:
    ref = textutil.nap.export(name="nap", store=(tmp_path / "s").as_uri())
    with satchel.load(ref, workers=0) as fn:
        assert fn.workers == 0 and fn.worker_pids == []
        assert fn(0.0) == 0.0  # the cold start
        assert fn.workers == 1 and fn.live_workers == 1
        fn.scale(3)
        wait_until(lambda: fn.live_workers == 3, timeout=30, what="three workers")
        pids = [p for p in fn.worker_pids if p is not None]
        fn.scale(1)
        assert fn.workers == 1
        gone = wait_until(lambda: sum(pid_gone(p) for p in pids) == 2, timeout=30, what="two workers gone")
        assert gone and fn(0.5) == 0.5


def test_shrinking_only_idle_slots_leaves_busy_ones_be() -> None:
    starter = _Starter()
    pool = WorkerPool(starter, size=2, max_pending=8, name="fake")
    pool.start()
    busy = pool.acquire()
    pool.resize(0, only_idle=True)
    assert pool.size == 1 and pool.slots == [busy] and not busy.process.stopped
    pool.release(busy)
    assert pool.idle_seconds() and not busy.process.stopped
    pool.close()
