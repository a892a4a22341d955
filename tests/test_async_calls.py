"""`acall` awaited on the event loop itself: with the pipe transport a small call's reply is read by the loop
(no thread hop); deadlines, cancellation, crashes and large arguments behave as on the threaded path."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import satchel
from tests.functions import pooled
from tests.waiting import pid_gone, wait_until


@pytest.fixture(scope="module")
def refs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    store = (tmp_path_factory.mktemp("store") / "s").as_uri()
    return {name: getattr(pooled, name).export(name=name, store=store) for name in ("work", "echo", "divide")}


def _threads_used(fn) -> bool:
    """Whether `acall` has had to run a call on a thread (the proxy makes its thread pool on first use)."""
    return fn._executor_box[0] is not None


def test_small_calls_are_awaited_on_the_loop(refs) -> None:
    with satchel.load(refs["divide"], workers=2, transport="pipe") as fn:

        async def many() -> list[float]:
            return await asyncio.gather(*(fn.acall(float(i), 2.0) for i in range(300)))

        assert asyncio.run(many()) == [i / 2.0 for i in range(300)]
        assert not _threads_used(fn)


def test_large_arguments_take_the_threaded_path(refs) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB: more than a pipe's buffer
    with satchel.load(refs["echo"], transport="pipe") as fn:
        assert asyncio.run(fn.acall(data)) == data
        assert _threads_used(fn)


def test_remote_errors_and_the_worker_stays(refs) -> None:
    with satchel.load(refs["divide"], transport="pipe") as fn:
        pid = fn.worker_pid
        with pytest.raises(satchel.RemoteError, match="ZeroDivisionError"):
            asyncio.run(fn.acall(1.0, 0.0))
        assert asyncio.run(fn.acall(6.0, 3.0)) == 2.0
        assert fn.worker_pid == pid


def test_deadline_interrupts_python_code_and_keeps_the_worker(refs, tmp_path: Path) -> None:
    with satchel.load(refs["work"], transport="pipe", cancel_grace=5.0) as fn:
        pid = fn.worker_pid
        with pytest.raises(satchel.CallTimeout, match="within 0.5s"):
            asyncio.run(fn.acall("spin", seconds=60.0, timeout=0.5))
        assert asyncio.run(fn.acall("pid")) == pid
        assert not _threads_used(fn)


def test_call_stuck_in_c_gets_its_worker_killed(refs, tmp_path: Path) -> None:
    started = tmp_path / "started"
    with satchel.load(refs["work"], transport="pipe", cancel_grace=0.5) as fn:
        stuck = fn.worker_pid

        async def scenario() -> int:
            task = asyncio.create_task(fn.acall("sleep", str(started), seconds=120.0, timeout=1.0))
            with pytest.raises(satchel.CallTimeout, match="cancelled in its worker"):
                await task
            return await fn.acall("pid", timeout=30.0)  # waits for the slot: back once a new worker is up

        pid = asyncio.run(scenario())
        assert pid != stuck and fn.restarts == 1 and fn._pool.restart_causes == {"timeout": 1}
        wait_until(lambda: pid_gone(stuck), timeout=5.0, what="the stuck worker gone")


def test_crash_during_an_awaited_call(refs) -> None:
    with satchel.load(refs["work"], transport="pipe") as fn:
        crashed = fn.worker_pid
        with pytest.raises(satchel.WorkerCrashed, match="died during the call"):
            asyncio.run(fn.acall("crash"))
        wait_until(lambda: pid_gone(crashed), timeout=5.0, what="the crashed worker gone")
        assert asyncio.run(fn.acall("pid")) != crashed


def test_aclose_waits_for_a_call_awaited_on_the_loop(refs, tmp_path: Path) -> None:
    started = tmp_path / "started"
    fn = satchel.load(refs["work"], transport="pipe", cancel_grace=0.5)
    worker = fn.worker_pid

    async def scenario() -> None:
        task = asyncio.create_task(fn.acall("sleep", str(started), seconds=120.0))
        while not started.exists():
            await asyncio.sleep(0.005)
        task.cancel()  # the worker sleeps in C: it is killed after the grace period
        await fn.aclose()  # waits on a thread while this loop reads the call's end
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(asyncio.wait_for(scenario(), 60))
    wait_until(lambda: pid_gone(worker), timeout=5.0, what="the worker gone")


def test_close_on_the_loop_with_a_call_in_flight_does_not_hang(refs, tmp_path: Path) -> None:
    started = tmp_path / "started"
    fn = satchel.load(refs["work"], transport="pipe")
    worker = fn.worker_pid

    async def scenario() -> None:
        task = asyncio.create_task(fn.acall("sleep", str(started), seconds=120.0))
        while not started.exists():
            await asyncio.sleep(0.005)
        fn.close()  # on the loop: cannot wait for the call this loop must finish, so it stops the worker
        with pytest.raises(satchel.WorkerCrashed):
            await task

    asyncio.run(asyncio.wait_for(scenario(), 60))
    wait_until(lambda: pid_gone(worker), timeout=5.0, what="the worker gone")


def test_large_result_of_a_small_call_is_read_on_the_loop(refs_with_blob) -> None:
    size = 5 << 20
    with satchel.load(refs_with_blob, workers=1, transport="pipe") as fn:
        assert asyncio.run(fn.acall(size)) == bytes(i % 251 for i in range(size))
        assert not _threads_used(fn)


@pytest.fixture(scope="module")
def refs_with_blob(tmp_path_factory: pytest.TempPathFactory):
    return pooled.blob.export(name="blob", store=(tmp_path_factory.mktemp("blobstore") / "s").as_uri())
