"""The worker's call loop: run calls on the main thread, honour deadlines, and interrupt on CANCEL.

Runs with the bundle environment's interpreter (Python 3.9+, standard library + bindings only).

Who reads the transport. A caller has at most one call in flight per worker, so between calls the
main thread reads the next message itself (no thread hop on the call path). While a call runs, a
helper thread ("satchel-watch") takes over reading once the call has run for WATCH_INTERVAL (it ticks
only while calls come; an idle worker's helper is parked on an event, so it never wakes): it
answers CANCEL by raising `Cancelled` in the main thread (PyThreadState_SetAsyncExc: this stops
Python code at its next bytecode, but not a C call such as time.sleep, which ends first; the
caller kills a worker that does not answer within its grace period). Any other message it reads
(the next CALL, SHUTDOWN) it hands to the main thread, then gives reading back. So short calls cost
nothing extra, and a CANCEL is acted on within about two WATCH_INTERVALs.

Deadlines: a CALL whose `deadline_ms` (absolute, ms since the Unix epoch) has passed when the main
thread picks it up is answered at once with an ERROR of type `satchel.core.errors.CallTimeout`, without
running. A cancelled call is answered with an ERROR of the same type saying it was interrupted.
"""

from __future__ import annotations

import collections
import ctypes
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from satchel.bindings import envelope as env
from satchel.core.errors import ProtocolError, TransportClosed
from satchel.runtime.worker import context as call_context

WATCH_INTERVAL = 0.02  # seconds a call runs before the helper thread starts reading for a CANCEL


class Cancelled(BaseException):
    """Raised inside the running function when the caller cancels its call.

    A BaseException (like KeyboardInterrupt), so that `except Exception` in the function does not
    swallow it.
    """


def _set_async_exc(thread_id: int, exc: type[BaseException] | None) -> None:
    """Raise `exc` in thread `thread_id` at its next bytecode; None clears one not yet raised."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exc) if exc is not None else None
    )


class Server:
    """Serves calls of `func` over `transport` until SHUTDOWN or the transport closes."""

    def __init__(
        self, transport: Any, func: Callable[..., Any], bound: dict[str, Any], request: Any, response: Any
    ) -> None:
        self.transport = transport
        self.func = func
        self.bound = bound
        self.request = request
        self.response = response
        self._lock = threading.Lock()  # guards everything below
        self._running: int | None = None  # call id the main thread is running
        self._started = 0.0  # time.monotonic() when it started
        self._interrupting = False  # a Cancelled was raised (or is pending) in the main thread
        self._watching = False  # the helper thread holds the reading role
        self._handed: collections.deque = collections.deque()  # messages the helper read for main
        self._handed_ready = threading.Semaphore(0)
        self._waiting: set[int] = set()  # ids of handed CALLs not yet started
        self._cancelled: set[int] = set()  # of those, the ones a CANCEL came for
        self._main = threading.get_ident()
        self._parked = False  # the helper waits on `_unpark` (no call started for a whole interval)
        self._unpark = threading.Event()

    # -- main thread --------------------------------------------------------------------------------

    def serve(self) -> None:
        self._main = threading.get_ident()
        threading.Thread(target=self._watch, name="satchel-watch", daemon=True).start()
        while True:
            msg = self._next()
            if msg is None or msg.kind == env.Kind.SHUTDOWN:
                return
            if msg.kind == env.Kind.CALL:
                self._run(msg)
            # a CANCEL read here is for a call already answered: nothing to do
            msg = None  # let go of the message buffer before the next receive (the ring reuses it)

    def _next(self) -> env.Envelope | None:
        # Only the helper changes these, and only while a call runs: between calls they are stable
        # (or about to turn false, once it has handed over what it read). No lock needed.
        if self._watching or self._handed:  # the helper reads until it has a message for us
            self._handed_ready.acquire()
            return self._handed.popleft()
        try:
            return env.decode(self.transport.recv())
        except TransportClosed:
            return None

    def _run(self, msg: env.Envelope) -> None:
        call_id = msg.call_id
        if msg.deadline_ms or self._waiting:
            refused = self._admit(msg)
            if refused is not None:
                self._send_error(call_id, env.encode_error(env.TIMEOUT_ERROR_TYPE, refused))
                return
        else:  # the helper has handed no call over: none can have been cancelled, no lock needed
            self._started = time.monotonic()
            self._running = call_id
        if self._parked:  # the first call after an idle spell: the helper watches again
            self._parked = False
            self._unpark.set()
        try:
            try:
                kwargs = self.request.decode_call(msg.payload)
                if self.bound:
                    kwargs.update(self.bound)
                if msg.context:  # a traced call (envelope version 2): see worker/context.py
                    with call_context.running(msg.context, getattr(self.func, "__qualname__", "call")):
                        result = self.func(**kwargs)
                else:
                    result = self.func(**kwargs)
            finally:
                self._finish()
            try:
                parts = self.response.encode_parts(result)
            except Exception as exc:  # the result is at fault, not the call: say so (not its traceback)
                self._send_error(call_id, env.encode_error(env.BAD_RESULT_ERROR_TYPE, str(exc)))
                return
        except Cancelled as exc:
            self._finish()
            elapsed = time.monotonic() - self._started
            message = f"interrupted in its worker after {elapsed:.3g}s, as the caller cancelled it"
            where = "".join(traceback.format_exception(Cancelled, exc, exc.__traceback__))
            self._send_error(call_id, env.encode_error(env.TIMEOUT_ERROR_TYPE, message, where))
            return
        except Exception as exc:
            self._send_error(call_id, env.encode_exception(exc))
            return
        size = 0
        for part in parts:
            size += part.nbytes if isinstance(part, memoryview) else len(part)
        header = env.encode_header(env.Kind.RESULT, call_id, self.response.fingerprint, 0, size)
        self.transport.send([header, *parts])

    def _admit(self, msg: env.Envelope) -> str | None:
        """Mark call `msg` running; or why it is not to run (cancelled before it started, too late)."""
        late = time.time() * 1000.0 - msg.deadline_ms
        with self._lock:
            self._waiting.discard(msg.call_id)
            if msg.call_id in self._cancelled:
                self._cancelled.discard(msg.call_id)
                return "it was cancelled before it started; it did not run"
            if msg.deadline_ms and late >= 0:
                return (
                    f"its deadline had passed {late:.0f} ms before the worker could start it; it did not run"
                )
            self._started = time.monotonic()
            self._running = msg.call_id
        return None

    def _finish(self) -> None:
        """The call is over: no Cancelled may be raised for it from now on (a pending one is cleared)."""
        with self._lock:
            self._running = None
            if self._interrupting:
                self._interrupting = False
                _set_async_exc(self._main, None)

    def _send_error(self, call_id: int, payload: bytes) -> None:
        self.transport.send(env.encode_parts(env.Kind.ERROR, call_id, payload))

    # -- helper thread ------------------------------------------------------------------------------

    def _watch(self) -> None:
        seen = self._started
        while True:
            time.sleep(WATCH_INTERVAL)
            if self._running is None and self._started == seen:
                self._park()  # no call for a whole interval: wait for the next one without a timer
            seen = self._started
            with self._lock:
                if self._running is None or time.monotonic() - self._started < WATCH_INTERVAL:
                    continue
                self._watching = True
            if not self._read_while_running():
                return

    def _park(self) -> None:
        """Sleep until `_run` starts a call. Either it sees `_parked` set and sets the event, or this sees
        the call it started (the GIL orders the two threads' steps)."""
        self._unpark.clear()
        self._parked = True
        if self._running is None:
            self._unpark.wait()
        self._parked = False

    def _read_while_running(self) -> bool:
        """Read for the main thread until it is between calls and has a message; False at the end."""
        while True:
            try:
                msg: env.Envelope | None = env.decode(self.transport.recv())
            except (TransportClosed, ProtocolError):
                msg = None
            if msg is not None and msg.kind == env.Kind.CANCEL:
                self._cancel(msg.call_id)
                continue
            with self._lock:
                if msg is not None and msg.kind == env.Kind.CALL:
                    self._waiting.add(msg.call_id)
                self._handed.append(msg)
                self._handed_ready.release()
                if msg is None:
                    return False
                if self._running is None:  # the main thread will take this one and read again itself
                    self._watching = False
                    return True

    def _cancel(self, call_id: int) -> None:
        with self._lock:
            if call_id == self._running and not self._interrupting:
                self._interrupting = True
                _set_async_exc(self._main, Cancelled)
            elif call_id in self._waiting:
                self._cancelled.add(call_id)
