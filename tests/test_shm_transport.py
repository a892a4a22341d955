"""End to end over the shared-memory ring: real bundles, real workers, transport="shm"."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import satchel
from satchel.bindings import _native
from tests.functions import textutil
from tests.waiting import wait_gone

pytestmark = pytest.mark.skipif(not _native.available(), reason="the ring library is unavailable here")


def _segments(pid: int) -> list[str]:
    return sorted(name for name in os.listdir("/dev/shm") if name.startswith(f"satchel-{pid}-"))


def _uses_ring(pid: int) -> bool:
    with open(f"/proc/{pid}/maps") as fh:
        return _native.LIBRARY_NAME in fh.read()


@pytest.fixture(scope="module")
def refs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    store = (tmp_path_factory.mktemp("store") / "s").as_uri()
    return {
        name: getattr(textutil, name).export(name=name, store=store)
        for name in ("add", "scale", "fail", "crash", "nap")
    }


def test_shm_is_the_default_on_linux(refs, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SATCHEL_TRANSPORT", raising=False)
    with satchel.load(refs["add"]) as fn:
        assert fn(1.5, 2.25) == 3.75
        assert fn._transport == "shm" and _uses_ring(fn.worker_pid)


def test_calls_errors_and_large_values(refs) -> None:
    before = _segments(os.getpid())
    with satchel.load(refs["add"], transport="shm") as fn:
        assert [fn(float(i), 0.5) for i in range(200)] == [i + 0.5 for i in range(200)]
        assert _segments(os.getpid()) == before, "the worker unlinked the name once attached"
    with satchel.load(refs["scale"], transport="shm") as fn:
        values = [float(i) for i in range(300_000)]  # ~2.7 MB each way: larger than the 1 MiB ring
        assert fn(values, 2.0, offset=1.0) == [2.0 * v + 1.0 for v in values]
    with satchel.load(refs["fail"], transport="shm") as fn:
        pid = fn.worker_pid
        with pytest.raises(satchel.RemoteError) as info:
            fn("boom over shm")
        assert info.value.type_name == "ValueError" and info.value.message == "boom over shm"
        assert fn.worker_pid == pid, "a RemoteError keeps the worker"
    assert _segments(os.getpid()) == before


@pytest.mark.parametrize(("how", "status"), [("kill", -signal.SIGKILL), ("exit", 7)])
def test_worker_crash(refs, how: str, status: int) -> None:
    with satchel.load(refs["crash"], transport="shm") as fn:
        first = fn.worker_pid
        t0 = time.monotonic()
        with pytest.raises(satchel.WorkerCrashed) as info:
            fn(how)
        assert time.monotonic() - t0 < 5
        assert info.value.exit_status == status
        assert f"about to crash by {how}" in info.value.stderr_tail
        assert wait_gone(first)
        again = fn("none")
        assert again != first and fn.worker_pid == again
    assert _segments(os.getpid()) == []


def test_worker_killed_by_a_signal_shows_its_python_stack(refs, caplog: pytest.LogCaptureFixture) -> None:
    """A segmentation fault in the function: WorkerCrashed carries the Python stack of the crash (the
    worker runs with faulthandler), the restart is logged with the signal, and nothing is left behind."""
    with satchel.load(refs["crash"], transport="shm") as fn:
        first = fn.worker_pid
        with pytest.raises(satchel.WorkerCrashed) as info:
            fn("segfault")
        assert info.value.exit_status == -signal.SIGSEGV
        tail = info.value.stderr_tail
        assert "Fatal Python error: Segmentation fault" in tail, tail
        assert re.search(r'File ".*textutil\.py", line \d+ in crash', tail), tail
        assert wait_gone(first)
        with caplog.at_level(logging.WARNING, logger="satchel.runtime.workers"):
            again = fn("none")
        assert again != first and fn.restart_causes == {"crash": 1}
        (line,) = [r.getMessage() for r in caplog.records if r.name == "satchel.runtime.workers"]
        assert f"(pid {first}, cause=crash): it died (killed by signal SIGSEGV)" in line, line
    assert _segments(os.getpid()) == []


def test_timeout_restarts_worker(refs) -> None:
    with satchel.load(refs["nap"], transport="shm") as fn:
        first = fn.worker_pid
        with pytest.raises(satchel.CallTimeout):
            fn(60.0, timeout=0.5)
        assert wait_gone(first)
        assert fn(0.0) == 0.0 and fn.worker_pid != first
    assert _segments(os.getpid()) == []


def test_caller_killed_mid_call_leaves_nothing(refs) -> None:
    script = textwrap.dedent(
        f"""
        import satchel
        fn = satchel.load({str(refs["nap"])!r}, transport="shm")
        print(fn.worker_pid, flush=True)
        fn(3600.0)
        """
    )
    caller = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    worker = int(caller.stdout.readline())
    assert _uses_ring(worker)
    caller.kill()
    caller.wait()
    caller.stdout.close()
    assert wait_gone(worker), "the worker outlived its caller"
    assert _segments(caller.pid) == []


def test_threads_share_one_worker(refs) -> None:
    import threading

    with satchel.load(refs["add"], transport="shm") as fn:
        results: dict[int, float] = {}

        def work(i: int) -> None:
            for j in range(50):
                results[i * 100 + j] = fn(float(i), float(j))

        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results == {i * 100 + j: float(i + j) for i in range(4) for j in range(50)}


def _switches(pid: int) -> dict[int, int]:
    """Voluntary context switches of each thread of process `pid` (a thread that sleeps and wakes adds one
    per wake-up)."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/status") as fh:
            for line in fh:
                if line.startswith("voluntary_ctxt_switches:"):
                    out[int(tid)] = int(line.split()[1])
    return out


@pytest.mark.parametrize(("transport", "wakers"), [("shm", 1), ("pipe", 0)])
def test_an_idle_worker_does_not_wake(refs, transport: str, wakers: int) -> None:
    """Between calls only the ring's liveness check wakes (its reading thread, every 100 ms slice; none
    over a pipe): no thread of the worker ticks on a timer while no call runs."""
    with satchel.load(refs["add"], transport=transport) as fn:
        for i in range(50):  # calls, then an idle spell
            assert fn(1.0, float(i)) == 1.0 + i
        before = _switches(fn.worker_pid)
        time.sleep(1.0)  # a window to observe, not a synchronisation
        after = _switches(fn.worker_pid)
        busy = {tid: after[tid] - before[tid] for tid in before if after.get(tid, 0) - before[tid] > 3}
        assert len(busy) <= wakers, f"threads that woke while idle (thread: wake-ups in 1 s): {busy}"
        assert fn(2.0, 3.0) == 5.0, "the worker still answers after its idle spell"
