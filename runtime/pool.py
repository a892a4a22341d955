"""A pool of worker processes for one loaded function, with a bounded queue of waiting calls.

    pool = WorkerPool(start_worker, size=2, max_pending=1024, name="describe")
    pool.start()                      # all workers, in parallel
    slot = pool.acquire(deadline)     # or: await pool.acquire_async(deadline)
    try:
        worker = pool.worker(slot)    # its live worker, (re)started here when it has none
        ...one call on worker...
    finally:
        pool.release(slot)
    pool.close()

Dispatch. Each slot holds one worker and serves one call at a time. A call takes an idle slot under
one lock and talks to its worker from its own thread: no thread hop when a worker is free. Only
when every slot is busy does a call wait in a queue; `release` puts the slot back and wakes the
oldest waiter (a thread blocked on its own lock, or an asyncio future resolved on its loop). A call
arriving meanwhile may take the slot first (a thread making call after call keeps its worker
without a thread switch each time); the woken waiter then waits again at the front, and once it has
waited HANDOFF_AFTER the next freed slot is handed to it directly, so nobody starves. At most
`max_pending` calls wait; one more raises Overloaded.

A slot whose worker crashed stays in the pool without a worker; the next call that takes it starts a
new one (`worker`). A call whose deadline passed raises at once, but its slot comes back only once the
call is settled: its worker answered the cancel (and stays), or was killed, and then a new worker is
started in the background before the slot takes calls again. Each new worker in place of a dead one
is counted (`restarts`, by cause in `restart_causes`) and logged (logger "satchel.runtime.workers",
WARNING) with why the old one ended; so one bad call costs no other call anything.

Resizing. `resize(n)` changes the number of slots while calls run. Growing starts the new slots'
workers on background threads; each slot joins the pool (taken by the oldest waiting call, or idle)
once its worker is up, so no caller blocks on a start. Shrinking retires slots whose worker is still
starting first, then idle ones (the longest idle first), then, if it must, busy ones: a busy slot
leaves the pool at once but its worker stops only when its call ends. A pool of zero slots is
allowed: a call arriving then grows it to one (a cold start) and waits for that worker.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from collections.abc import Callable

from satchel.core.errors import CallTimeout, FunctionClosed, Overloaded
from satchel.runtime.process import WorkerProcess

log = logging.getLogger("satchel.runtime.workers")

DEFAULT_MAX_PENDING = 1024
HANDOFF_AFTER = 0.001  # seconds a call may wait before a freed slot is handed to it, not up for grabs


class Slot:
    """One place in the pool: its index and its worker (None before it starts, or once it died)."""

    __slots__ = ("index", "process", "idle_since", "retired")

    def __init__(self, index: int) -> None:
        self.index = index
        self.process: WorkerProcess | None = None
        self.idle_since = time.monotonic()  # when it last became idle (time.monotonic())
        self.retired = False  # taken out by resize(): its worker stops once its call ends


class _Waiter:
    """A call waiting for a slot: woken by releasing `lock` (threads) or resolving `future` (asyncio)."""

    __slots__ = ("queued", "since", "slot", "error", "lock", "future", "loop", "thread")

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.queued = True  # in the pool's queue (under the pool lock); false once woken or gone
        self.since = time.monotonic()
        self.slot: Slot | None = None  # a slot handed to it directly (see WorkerPool.release)
        self.error: BaseException | None = None  # set when the pool closes
        self.loop = loop
        self.lock: threading.Lock | None = None
        self.future: asyncio.Future | None = None
        if loop is None:
            self.lock = threading.Lock()
            self.lock.acquire()
        else:
            self.future = loop.create_future()
        self.thread = threading.get_ident()  # where it waits: its loop's thread, for an asyncio waiter

    def rearm(self) -> None:
        """Ready to wait again (a thread's lock is held again already: it woke by acquiring it)."""
        if self.loop is not None:
            self.future = self.loop.create_future()

    def wake(self) -> None:
        if self.lock is not None:
            self.lock.release()
            return
        assert self.loop is not None and self.future is not None
        future = self.future
        if threading.get_ident() == self.thread:  # released on its own loop (an awaited call ended)
            if not future.done():
                future.set_result(None)
            return
        try:
            self.loop.call_soon_threadsafe(lambda: future.done() or future.set_result(None))
        except RuntimeError:  # its loop is closed: nobody waits any more
            pass


class WorkerPool:
    """`size` slots of workers made by `start_worker(index)`; calls wait (at most `max_pending`) for one."""

    def __init__(
        self,
        start_worker: Callable[[int], WorkerProcess],
        *,
        size: int = 1,
        max_pending: int = DEFAULT_MAX_PENDING,
        name: str = "function",
        on_restart: Callable[[], None] | None = None,
    ) -> None:
        if size < 0:
            raise ValueError(f"workers must be 0 or more, not {size}")
        if max_pending < 0:
            raise ValueError(f"max_pending must be 0 or more, not {max_pending}")
        self._start_worker = start_worker
        self.max_pending = max_pending
        self.name = name
        self.on_restart = on_restart
        #: Workers started in place of ones that died (crashed, or were killed after a timeout).
        self.restarts = 0
        #: The same, by cause: "timeout", "cancel" (a call that would not stop was killed), "crash".
        self.restart_causes: collections.Counter[str] = collections.Counter()
        self.slots = [Slot(i) for i in range(size)]
        self._starting: list[Slot] = []  # grown slots whose worker is starting (not yet in `slots`)
        self._helpers: list[threading.Thread] = []  # starting grown slots' workers, stopping retired ones
        self._lock = threading.Lock()
        self._idle: list[Slot] = list(reversed(self.slots))  # a stack: the most recently used first
        self._waiters: collections.deque[_Waiter] = collections.deque()
        self._busy = 0
        self._all_back = threading.Condition(self._lock)
        self._closed = False

    # -- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> None:
        """Start every slot's worker (in parallel); if one fails, stop the others and raise its error."""
        if not self.slots:
            return
        if len(self.slots) == 1:
            self.worker(self.slots[0])
            return
        errors: list[BaseException] = []

        def start(slot: Slot) -> None:
            try:
                self.worker(slot)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=start, args=(slot,), daemon=True) for slot in self.slots]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            self.close()
            raise errors[0]

    def close(self, *, wait: bool = True) -> None:
        """Refuse new calls, fail the waiting ones (FunctionClosed), stop the idle workers and, as each
        running call ends, its worker. With `wait`, return once all have stopped; else kill the busy
        workers now (used when the caller goes away)."""
        with self._lock:
            first = not self._closed
            self._closed = True
            waiters = list(self._waiters)
            self._waiters.clear()
            idle = list(self._idle)
            self._idle.clear()
            self._starting.clear()  # their threads stop their workers once up
            for waiter in waiters:
                waiter.queued = False
                waiter.error = FunctionClosed(f"{self.name} was closed while this call waited for a worker")
        for waiter in waiters:
            waiter.wake()
        _stop([slot.process for slot in idle if slot.process is not None])
        for slot in idle:
            slot.process = None
        if not wait:
            for slot in self.slots:
                if slot.process is not None:
                    slot.process.kill_now()
            return
        if first:
            with self._lock:
                self._all_back.wait_for(lambda: self._busy == 0)
                helpers = list(self._helpers)
            for helper in helpers:
                if helper is not threading.current_thread():
                    helper.join()

    @property
    def pending(self) -> int:
        """How many calls are waiting for a free worker."""
        return len(self._waiters)

    @property
    def closed(self) -> bool:
        """Whether `close` was called: no call is taken any more."""
        return self._closed

    @property
    def size(self) -> int:
        """How many slots the pool has (`resize`), counting those whose worker is still starting."""
        return len(self.slots) + len(self._starting)

    @property
    def busy(self) -> int:
        """How many calls hold a slot now."""
        return self._busy

    def idle_seconds(self, now: float | None = None) -> list[float]:
        """For each idle slot, how long it has been idle (seconds, by time.monotonic()), longest first."""
        now = time.monotonic() if now is None else now
        with self._lock:
            return sorted((now - slot.idle_since for slot in self._idle), reverse=True)

    # -- resizing -----------------------------------------------------------------------------------

    def resize(self, size: int, *, only_idle: bool = False) -> None:
        """Grow or shrink to `size` slots without blocking callers (see the module doc). `only_idle`:
        shrink by idle slots (and starting ones) only, leaving busy ones be (the pool may stay larger)."""
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ValueError(f"workers must be an int, 0 or more, not {size!r}")
        stopping: list[WorkerProcess] = []
        with self._lock:
            if self._closed:
                raise FunctionClosed(f"{self.name} was closed; load it again")
            new = self._grow(size - self.size) if size > self.size else []
            excess = self.size - size
            while excess > 0 and self._starting:  # not up yet: its thread stops it once it is
                self._starting.pop().retired = True
                excess -= 1
            while excess > 0 and self._idle:  # the bottom of the stack has been idle longest
                slot = self._idle.pop(0)
                self._retire(slot)
                if slot.process is not None:
                    stopping.append(slot.process)
                    slot.process = None
                excess -= 1
            for slot in reversed(self.slots[:]):  # busy: it stops when its call ends (release)
                if excess <= 0 or only_idle:
                    break
                self._retire(slot)
                excess -= 1
            if self._waiters and self.size == 0:  # calls still wait: one worker must serve them
                new += self._grow(1)
            self._launch(new)
        if stopping:  # on a thread of their own: stopping a worker may take its grace period
            stopper = threading.Thread(
                target=_stop, args=(stopping,), name=f"satchel-stop-{self.name}", daemon=True
            )
            stopper.start()
            with self._lock:
                self._helpers = [t for t in self._helpers if t.is_alive()] + [stopper]

    def _retire(self, slot: Slot) -> None:
        """Under the lock: take `slot` out of the pool."""
        slot.retired = True
        self.slots.remove(slot)

    def _grow(self, count: int) -> list[Slot]:
        """Under the lock: `count` new slots (the lowest free indices), starting."""
        used = {slot.index for slot in self.slots} | {slot.index for slot in self._starting}
        free = (i for i in range(len(used) + count) if i not in used)
        new = [Slot(next(free)) for _ in range(count)]
        self._starting.extend(new)
        return new

    def _launch(self, slots: list[Slot]) -> None:
        """Under the lock: start the workers of `slots` on threads of their own (`close` waits for them)."""
        for slot in slots:
            starter = threading.Thread(
                target=self._bring_up, args=(slot,), name=f"satchel-start-{self.name}", daemon=True
            )
            starter.start()
            self._helpers = [t for t in self._helpers if t.is_alive()] + [starter]

    def _bring_up(self, slot: Slot) -> None:
        """On its own thread: start the worker of a grown slot, then let the slot join the pool. If the
        start fails, the slot joins without a worker: the call that takes it tries again (and gets the
        error)."""
        try:
            slot.process = self._start_worker(slot.index)
        except BaseException:
            slot.process = None
        with self._lock:
            joins = not self._closed and not slot.retired
            if joins:
                self._starting.remove(slot)
                self.slots.append(slot)
                self._busy += 1  # as if taken: release() hands it to the oldest waiter, or makes it idle
        if joins:
            self.release(slot)
        elif slot.process is not None:
            _stop([slot.process])
            slot.process = None

    @property
    def pids(self) -> list[int | None]:
        """The process id of each slot's worker (None where it has none running)."""
        out: list[int | None] = []
        for slot in self.slots:
            process = slot.process
            out.append(process.pid if process is not None and process.alive else None)
        return out

    # -- taking and giving back slots ---------------------------------------------------------------

    def acquire(self, deadline: float | None = None) -> Slot:
        """A free slot, waiting for one until `deadline` (time.monotonic()) if none is.

        Raises FunctionClosed, Overloaded (`max_pending` calls already wait) or CallTimeout.
        """
        with self._lock:
            if self._idle and not self._closed:
                self._busy += 1
                return self._idle.pop()
            waiter = self._enqueue(None)
        assert waiter.lock is not None
        while True:
            timeout = -1 if deadline is None else max(0.0, deadline - time.monotonic())
            woken = waiter.lock.acquire(timeout=timeout)
            slot = self._after_wait(waiter, woken)
            if slot is not None:
                return slot

    async def acquire_async(self, deadline: float | None = None) -> Slot:
        """`acquire` for asyncio: waits on the event loop, without blocking it (or a thread)."""
        with self._lock:
            if self._idle and not self._closed:
                self._busy += 1
                return self._idle.pop()
            waiter = self._enqueue(asyncio.get_running_loop())
        while True:
            assert waiter.future is not None
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                if timeout is None:  # cancelling this task cancels the future: wake() checks done()
                    await waiter.future
                else:
                    await asyncio.wait_for(asyncio.shield(waiter.future), timeout)
                woken = True
            except asyncio.TimeoutError:
                woken = False
            except BaseException:  # cancelled: leave the queue, passing on what was meant for it
                with self._lock:
                    slot, passed_on = self._leave(waiter)
                if slot is not None:
                    self.release(slot)
                elif passed_on is not None:
                    passed_on.wake()
                raise
            slot = self._after_wait(waiter, woken)
            if slot is not None:
                return slot

    def _enqueue(self, loop: asyncio.AbstractEventLoop | None) -> _Waiter:
        """Under the lock: a new waiter at the end of the queue (growing an empty pool to one slot)."""
        if self._closed:
            raise FunctionClosed(f"{self.name} was closed; load it again")
        if self.size == 0:  # a cold start: the first slot's worker starts, this call waits for it
            self._launch(self._grow(1))
            waiter = _Waiter(loop)
            self._waiters.append(waiter)
            return waiter
        if len(self._waiters) >= self.max_pending:
            raise Overloaded(
                f"{self.name}: {len(self._waiters)} calls are already waiting for one of its "
                f"{self.size} worker{'s' if self.size != 1 else ''} (max_pending={self.max_pending}); "
                "pass a larger max_pending= (or more workers=) to satchel.load(), or send fewer calls at once"
            )
        waiter = _Waiter(loop)
        self._waiters.append(waiter)
        return waiter

    def _after_wait(self, waiter: _Waiter, woken: bool) -> Slot | None:
        """A waiter woke (or timed out): a free slot, or None to wait again, first in the queue.

        A call that finds a free slot takes it even when others wait (it saves a thread switch per
        call under contention); a woken waiter that lost the slot that way goes back to the front.
        """
        with self._lock:
            if waiter.slot is not None:
                slot, waiter.slot = waiter.slot, None
                return slot
            if waiter.error is not None:
                raise waiter.error
            if self._closed:  # closed while this waiter was on its way back to the queue
                raise FunctionClosed(f"{self.name} was closed while this call waited for a worker")
            if self._idle:
                if waiter.queued:
                    self._waiters.remove(waiter)
                    waiter.queued = False
                self._busy += 1
                return self._idle.pop()
            if woken:
                waiter.rearm()
                waiter.queued = True
                self._waiters.appendleft(waiter)
                return None
            if waiter.queued:
                self._waiters.remove(waiter)
                waiter.queued = False
            waiting = len(self._waiters)
        raise CallTimeout(
            f"{self.name}: no worker became free before the call's timeout ({self.size} busy, "
            f"{waiting} other calls waiting); it did not run"
        )

    def _leave(self, waiter: _Waiter) -> tuple[Slot | None, _Waiter | None]:
        """Under the lock: take `waiter` out. The slot it was handed, to release; or, if it had been
        woken for a free slot, the waiter to wake instead."""
        if waiter.queued:
            self._waiters.remove(waiter)
            waiter.queued = False
            return None, None
        if waiter.slot is not None:
            slot, waiter.slot = waiter.slot, None
            return slot, None
        if self._idle and self._waiters and not self._closed:
            successor = self._waiters.popleft()
            successor.queued = False
            return None, successor
        return None, None

    def release(self, slot: Slot) -> None:
        """Give `slot` back to the idle ones and wake the oldest waiting call (or, closed or retired, stop
        its worker). A slot whose call timed out comes back once the call is settled; one whose worker
        was killed for a call that would not stop, once a new worker is up (see the module doc)."""
        process = slot.process
        if process is not None and (process.unsettled or process.end_cause is not None):
            if process.hold(lambda: self.release(slot)):
                return
            if process.end_cause is not None and not self._closed and not slot.retired:
                self._replace_in_background(slot)
                return
        with self._lock:
            slot.idle_since = time.monotonic()
            if not self._closed and not slot.retired:
                if not self._waiters:
                    self._busy -= 1
                    self._idle.append(slot)
                    return
                waiter = self._waiters.popleft()
                waiter.queued = False
                if time.monotonic() - waiter.since > HANDOFF_AFTER:
                    waiter.slot = slot  # it has waited long enough: no other call may take this slot
                else:
                    self._busy -= 1
                    self._idle.append(slot)
            else:
                waiter = None
                process, slot.process = slot.process, None
        if waiter is not None:
            waiter.wake()
            return
        if process is not None:
            _stop([process])
        with self._lock:
            self._busy -= 1
            self._all_back.notify_all()

    def _replace_in_background(self, slot: Slot) -> None:
        """Start a new worker in `slot` (still taken) on a thread of its own, then release the slot. If
        the start fails, the slot comes back without a worker: the next call tries again (and gets the
        error)."""

        process = slot.process

        def replace() -> None:
            try:
                if process is not None:
                    process.kill()  # it was killed: wait until it is gone, so that `worker` replaces it
                self.worker(slot)
            except BaseException:
                slot.process = None
            finally:
                self.release(slot)

        replacer = threading.Thread(target=replace, name=f"satchel-replace-{self.name}", daemon=True)
        with self._lock:
            self._helpers = [t for t in self._helpers if t.is_alive()] + [replacer]
        replacer.start()

    def worker(self, slot: Slot) -> WorkerProcess:
        """The live worker of `slot` (taken by this caller), starting a new one if it has none."""
        process = slot.process
        # `probably_alive` costs no system call (a waitpid per call did); a worker that died a moment
        # ago fails its call as WorkerCrashed, as one dying during the call does
        if process is not None and (process.probably_alive or process.alive):
            return process
        if process is not None:
            process.kill()  # reap what is left of the old one
            slot.process = None
            cause, what = process.why_ended()
            with self._lock:
                self.restarts += 1
                self.restart_causes[cause] += 1
            log.warning(
                "%s: starting a new worker in place of %s (pid %s, cause=%s): %s",
                self.name,
                process.label,
                process.pid,
                cause,
                what,
            )
            if self.on_restart is not None:
                self.on_restart()
        process = self._start_worker(slot.index)
        slot.process = process
        return process


def _stop(processes: list[WorkerProcess], timeout: float = 2.0) -> None:
    """Ask every worker to stop, then wait for each (killing those that linger)."""
    for process in processes:
        process.ask_to_stop()
    for process in processes:
        process.stop(timeout)
