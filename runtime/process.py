"""One worker process: spawn it with its environment's interpreter, talk to it, notice when it dies."""

from __future__ import annotations

import asyncio
import collections
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import NoReturn

from satchel.bindings import envelope as env
from satchel.bindings.transports import get_transport
from satchel.core.errors import (
    CallTimeout,
    ProtocolError,
    TransportClosed,
    TransportTimeout,
    WorkerCrashed,
    WorkerStartupError,
)
from satchel.runtime.kit import LAUNCHER, worker_kit

STDERR_TAIL_LINES = 40
DEFAULT_GRACE = 2.0  # seconds a cancelled call has to stop before its worker is killed

#: Why a worker was killed by its caller (`WorkerProcess.end_cause`): its call's deadline passed, or its
#: call was cancelled, and the call did not stop within the grace period.
TIMEOUT, CANCEL, CRASH = "timeout", "cancel", "crash"


def describe_exit(returncode: int | None) -> str:
    if returncode is None:
        return "still running"
    if returncode < 0:
        try:
            return f"killed by signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit status {returncode}"


def base_environment() -> dict | None:
    """This process's interpreter, its flags and import path: where `satchel.escape` in a worker runs a
    function (runtime/worker/escape.py). None when there is no interpreter to start (an embedded Python)."""
    if not sys.executable:
        return None
    flags = sys.flags
    options = [opt for opt, on in (("-E", flags.ignore_environment), ("-s", flags.no_user_site)) if on]
    try:
        cwd = os.getcwd()
    except OSError:  # removed: an entry "" means nothing then
        cwd = ""
    path = [entry or cwd for entry in sys.path if entry or cwd]
    return {"python": sys.executable, "flags": options, "path": path}


class WorkerProcess:
    """A started worker. Not thread-safe: its owner runs one call at a time (`cancel` may come from any
    thread)."""

    def __init__(self, python: Path, spec: dict, *, transport: str = "pipe", label: str = "worker") -> None:
        self.python = Path(python)
        self.spec = spec
        self.transport_name = transport
        self.label = label
        self.proc: subprocess.Popen | None = None
        self.transport = None
        self._lifeline_w: int | None = None
        self._tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
        self._stderr_thread: threading.Thread | None = None
        self._lock = threading.Lock()  # sending, and the call state below (for `cancel`)
        self._current: int | None = None  # call id in flight
        self._cancelled: int | None = None  # call id a CANCEL was sent for
        self._doomed: int | None = None  # call id cancelled before it was sent
        self._killed = ""  # why the worker was killed while a call ran, if it was
        self._timer: threading.Timer | None = None
        self._stderr_ended = False
        #: (cause, what happened) once the caller killed it for a call that would not stop (TIMEOUT, CANCEL)
        self.end_cause: tuple[str, str] | None = None
        #: A call that timed out is still being settled (its answer awaited, or the worker killed): the
        #: worker takes no other call meanwhile (`hold`).
        self.unsettled = False
        self._then: Callable[[], None] | None = None  # run once settled (`hold`)
        self._drains: set[asyncio.Task] = set()  # tasks reading the answers of abandoned calls

    # -- lifecycle ----------------------------------------------------------------------------------

    def start(self, timeout: float = 300.0) -> None:
        kit = worker_kit()
        channel = get_transport(self.transport_name).create()
        lifeline_r, lifeline_w = os.pipe()
        spec = {
            **self.spec,
            "transport": self.transport_name,
            "endpoint": channel.endpoint,
            "lifeline_fd": lifeline_r,
            "base": base_environment(),
        }
        try:
            self.proc = subprocess.Popen(
                [str(self.python), "-E", "-s", str(kit / LAUNCHER), json.dumps(spec)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                pass_fds=(*channel.pass_fds, lifeline_r),
                close_fds=True,
            )
        except OSError as exc:
            channel.transport.close()
            channel.after_spawn()
            os.close(lifeline_r)
            os.close(lifeline_w)
            raise WorkerStartupError(f"cannot start {self.label} with {self.python}: {exc}") from None
        channel.after_spawn()
        os.close(lifeline_r)
        self._lifeline_w = lifeline_w
        self.transport = channel.transport
        self._stderr_thread = threading.Thread(
            target=self._pump_stderr, name=f"{self.label}-stderr", daemon=True
        )
        self._stderr_thread.start()
        try:
            message = env.decode(self.transport.recv(timeout))
        except TransportTimeout:
            self.kill()
            raise WorkerStartupError(
                f"{self.label} did not become ready within {timeout:.0f}s" + self._tail_text()
            ) from None
        except TransportClosed:
            status = self._reap()
            raise WorkerStartupError(
                f"{self.label} exited while starting ({status})" + self._tail_text()
            ) from None
        if message.kind == env.Kind.STARTUP_ERROR:
            error = env.decode_error(message.payload)
            self._reap()
            hint = ""
            if error.type == "ModuleNotFoundError":
                hint = (
                    "\n\nThe function's code imports a package its environment lacks: add it to "
                    "Environment(pypi=[...]) and export again."
                )
            raise WorkerStartupError(
                f"{self.label} could not start: {error.type}: {error.message}{hint}\n\n{error.traceback.rstrip()}"
            )
        if message.kind != env.Kind.READY:
            self.kill()
            raise WorkerStartupError(f"{self.label} sent {message.kind!r} instead of READY")

    def _pump_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        out = sys.stderr
        for raw in iter(self.proc.stderr.readline, b""):
            line = raw.decode("utf-8", "replace")
            self._tail.append(line)
            try:
                out.write(line)
                out.flush()
            except (ValueError, OSError):  # the caller's stderr is closed: keep the tail only
                pass
        self._stderr_ended = True  # the worker has exited (or closed its stderr)
        self.proc.stderr.close()

    def _tail_text(self) -> str:
        if self._stderr_thread is not None and self.proc is not None and self.proc.poll() is not None:
            self._stderr_thread.join(timeout=2.0)
        tail = "".join(self._tail).rstrip()
        return f"\n\nLast lines of its stderr:\n{tail}" if tail else ""

    def _reap(self, timeout: float = 10.0) -> str:
        """Wait for the process to end (killing it if it lingers); release everything; describe its end."""
        if self.proc is None:
            return "never started"
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self._stderr_thread is not None:
            self._stderr_thread.join(timeout=2.0)
        self._release()
        return describe_exit(self.proc.returncode)

    def _release(self) -> None:
        if self.transport is not None:
            self.transport.close()
        if self._lifeline_w is not None:
            try:
                os.close(self._lifeline_w)
            except OSError:
                pass
            self._lifeline_w = None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def probably_alive(self) -> bool:
        """`alive` without a system call, for the hot path: False once its stderr ended or it was reaped.
        A worker that died a moment ago may still look alive; its next call then fails as WorkerCrashed."""
        return self.proc is not None and self.proc.returncode is None and not self._stderr_ended

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def why_ended(self) -> tuple[str, str]:
        """(cause, what happened) for a worker no longer running: TIMEOUT, CANCEL or CRASH."""
        if self.end_cause is not None:
            return self.end_cause
        return CRASH, f"it died ({describe_exit(self.proc.returncode if self.proc else None)})"

    def hold(self, then: Callable[[], None]) -> bool:
        """If a timed-out call is still being settled, run `then` once it is (the worker answered the
        cancel, or was killed) and return True; else False (nothing to wait for)."""
        with self._lock:
            if not self.unsettled:
                return False
            self._then = then
            return True

    def kill_now(self) -> None:
        """SIGKILL the process, from any thread; the thread running its call sees TransportClosed and
        reaps it (`kill` also reaps, so only the owner of the worker may call that)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        self._reap()

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the worker to exit; kill it if it does not within `timeout`."""
        if self.proc is None:
            return
        self.ask_to_stop()
        self._reap(timeout)

    def ask_to_stop(self) -> None:
        """Send SHUTDOWN (the worker exits once its current call is done); `stop` then waits for it."""
        if self.proc is not None and self.proc.poll() is None and self.transport is not None:
            try:
                with self._lock:
                    self.transport.send([env.encode_header(env.Kind.SHUTDOWN, 0, 0, 0, 0)])
            except (TransportClosed, OSError):
                pass

    # -- calls --------------------------------------------------------------------------------------

    def call(
        self,
        call_id: int,
        fingerprint: int,
        payload: Sequence[bytes | bytearray | memoryview],
        *,
        deadline: float | None = None,
        timeout: float | None = None,
        grace: float = DEFAULT_GRACE,
        context: Mapping[str, str] | None = None,
    ) -> env.Envelope:
        """Run one call: send CALL (header + the payload's parts, unjoined), return the decoded reply.

        `deadline` (time.monotonic()) bounds the wait; it travels to the worker as `deadline_ms`, so a
        worker that gets the call too late drops it. When it passes, CallTimeout is raised at once
        (`timeout` being the figure the caller asked for) and the call is settled in the background:
        the worker is sent CANCEL (it interrupts Python code) and kept if it answers within `grace`
        seconds, else killed (`end_cause`); it is `unsettled` meanwhile (see `hold`).
        Raises WorkerCrashed when the worker dies during the call. Not thread-safe, except that
        `cancel` may be called from another thread meanwhile. `context` (W3C trace headers) travels
        in the envelope (version 2; none: version 1).
        """
        try:
            self._send_call(call_id, fingerprint, payload, deadline, context)
            reply = self.transport.recv(None if deadline is None else max(0.0, deadline - time.monotonic()))
        except TransportTimeout:
            self._abandon(call_id, timeout, grace)
        except TransportClosed:
            raise self._died(call_id) from None
        finally:
            self._current = None  # a `cancel` from now on does nothing (the GIL makes this one step)
            if self._timer is not None:  # a cancelled call that answered in time: no kill
                self._drop_timer()
        return env.decode(reply)

    def _send_call(
        self,
        call_id: int,
        fingerprint: int,
        payload: Sequence[bytes | bytearray | memoryview],
        deadline: float | None,
        context: Mapping[str, str] | None,
    ) -> None:
        """Send CALL (header + the payload's parts, unjoined) and mark the call in flight."""
        assert self.transport is not None
        size = 0
        for part in payload:
            size += part.nbytes if isinstance(part, memoryview) else len(part)
        deadline_ms = 0 if deadline is None else int((time.time() + deadline - time.monotonic()) * 1000.0)
        header = env.encode_header(env.Kind.CALL, call_id, fingerprint, deadline_ms, size, context=context)
        with self._lock:  # a CANCEL from `cancel` goes after the CALL, never inside it
            if self._doomed == call_id:  # cancelled before it could be sent
                raise CallTimeout(f"the call to {self.label} was cancelled before it was sent")
            self._current = call_id
            self.transport.send([header, *payload])

    @property
    def awaitable(self) -> bool:
        """Whether `acall` can await replies on an event loop (the transport reads without a thread)."""
        return self.transport is not None and hasattr(self.transport, "arecv")

    async def acall(
        self,
        call_id: int,
        fingerprint: int,
        payload: Sequence[bytes | bytearray | memoryview],
        *,
        deadline: float | None = None,
        timeout: float | None = None,
        grace: float = DEFAULT_GRACE,
        context: Mapping[str, str] | None = None,
        release: Callable[[], None] | None = None,
    ) -> env.Envelope:
        """`call` on the running event loop (see `awaitable`): the CALL is written at once (keep it small:
        a pipe's buffer holds 64 KiB), the reply awaited without a thread. Same deadlines and errors as
        `call`. `release` is called once the worker is free again: when this returns or raises, or, if the
        awaiting task is cancelled or the deadline passed, once the worker has answered the CANCEL sent
        for it (or was killed `grace` seconds later) — its reply is read in the background, never left
        in the channel."""
        abandoned = False
        try:
            self._send_call(call_id, fingerprint, payload, deadline, context)
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                reply = await self.transport.arecv(wait)
            except asyncio.CancelledError:
                self.cancel(call_id, grace)
                self._drain_in_background(release)
                abandoned = True
                raise
            except TransportTimeout:
                self.cancel(call_id, grace, cause=TIMEOUT, timeout=timeout)
                self._drain_in_background(release)
                abandoned = True
                raise self._timed_out(timeout, grace) from None
        except TransportClosed:
            raise self._died(call_id) from None
        finally:
            if not abandoned:
                self._call_over(release)
        return env.decode(reply)

    def _drain_in_background(self, release: Callable[[], None] | None) -> None:
        task = asyncio.get_running_loop().create_task(self._drain_cancelled(release))
        self._drains.add(task)  # the loop keeps only a weak reference to a task
        task.add_done_callback(self._drains.discard)

    async def _drain_cancelled(self, release: Callable[[], None] | None) -> None:
        """Read the answer of a call whose caller went away (or the end of the channel, once `cancel`'s
        timer killed the worker), then free the worker."""
        try:
            await self.transport.arecv()
        except asyncio.CancelledError:
            # the loop is going away before the worker answered: a thread waits for the answer instead
            # (`cancel`'s timer still runs), and the slot comes back once it has it (`hold`)
            with self._lock:
                self.unsettled = True
            threading.Thread(
                target=self._settle, args=(None, None), name=f"{self.label}-settle", daemon=True
            ).start()
            if release is not None:
                release()
            raise
        except (TransportClosed, ProtocolError, OSError):
            self._reap()
            self._call_over(release)
        else:
            self._call_over(release)

    def _call_over(self, release: Callable[[], None] | None) -> None:
        self._current = None  # a `cancel` from now on does nothing
        if self._timer is not None:  # a cancelled call that answered in time: no kill
            self._drop_timer()
        if release is not None:
            release()

    def cancel(
        self, call_id: int, grace: float = DEFAULT_GRACE, *, cause: str = CANCEL, timeout: float | None = None
    ) -> None:
        """From any thread: send CANCEL for `call_id`, and kill the worker if the call still runs `grace`
        seconds later (its caller then gets CallTimeout). If the call was not sent yet, it never is.
        `cause`: CANCEL, or TIMEOUT when its deadline (`timeout` seconds) passed."""
        with self._lock:
            if self._current != call_id:
                self._doomed = call_id
                return
            self._cancelled = call_id
            try:
                self._send_cancel(call_id)
            except TransportClosed:
                return
            end = (cause, self._stuck(cause, grace, timeout))
            self._timer = threading.Timer(grace, self._kill_if_running, (call_id, grace, end))
            self._timer.daemon = True
            self._timer.start()

    @staticmethod
    def _stuck(cause: str, grace: float, timeout: float | None) -> str:
        """What happened to a worker killed because its call would not stop (for the restart log)."""
        if cause == TIMEOUT:
            after = f"its deadline ({timeout:g}s)" if timeout is not None else "its deadline"
            why = f"its call still ran {grace:g}s after {after}"
        else:
            why = f"its call still ran {grace:g}s after it was cancelled"
        return f"{why}, in code that cannot be interrupted (C code such as time.sleep); it was killed"

    def _send_cancel(self, call_id: int) -> None:
        assert self.transport is not None
        self.transport.send([env.encode_header(env.Kind.CANCEL, call_id, 0, 0, 0)])

    def _kill_if_running(self, call_id: int, grace: float, end: tuple[str, str]) -> None:
        with self._lock:
            if self._current == call_id and self.alive:
                self._killed = f"it did not stop within {grace:g}s of being cancelled, so it was killed"
                self.end_cause = end
                self.kill_now()

    def _drop_timer(self) -> None:
        with self._lock:
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()

    def _abandon(self, call_id: int, timeout: float | None, grace: float) -> NoReturn:
        """The caller's deadline passed: CANCEL, and settle the call on a thread of its own (the worker
        kept if it answers within `grace`, else killed). Raises CallTimeout at once."""
        assert self.transport is not None
        try:
            with self._lock:
                self._cancelled = call_id
                self._send_cancel(call_id)
                self.unsettled = True
        except TransportClosed:
            raise self._died(call_id) from None
        end = (TIMEOUT, self._stuck(TIMEOUT, grace, timeout))
        threading.Thread(
            target=self._settle, args=(grace, end), name=f"{self.label}-settle", daemon=True
        ).start()
        raise self._timed_out(timeout, grace)

    def _settle(self, wait: float | None, end: tuple[str, str] | None) -> None:
        """On its own thread: read the answer of an abandoned call (the worker stays); or, none within
        `wait` seconds, kill the worker for `end` (cause, what happened). Then hand the worker back."""
        assert self.transport is not None
        try:
            env.decode(self.transport.recv(wait))  # its RESULT, or the ERROR saying it was interrupted
        except TransportTimeout:
            self.end_cause = end
            self.kill()
        except TransportClosed:
            self._reap()
        except BaseException as exc:  # ProtocolError: a stream that cannot be trusted any more
            self.end_cause = (CRASH, f"its answer could not be read ({exc}); it was killed")
            self.kill()
        finally:
            self._current = None
            if self._timer is not None:
                self._drop_timer()
            with self._lock:
                self.unsettled = False
                then, self._then = self._then, None
            if then is not None:
                then()

    def _timed_out(self, timeout: float | None, grace: float) -> CallTimeout:
        late = (
            f"{self.label} did not answer within {timeout:g}s"
            if timeout is not None
            else f"{self.label} timed out"
        )
        return CallTimeout(
            f"{late}: the call is cancelled in its worker (Python code stops at once; a worker still busy "
            f"{grace:g}s later, stuck in C code such as time.sleep, is replaced)"
        )

    def _died(self, call_id: int) -> Exception:
        status = self._reap()
        if self._cancelled == call_id and self._killed:
            return CallTimeout(f"the call to {self.label} was cancelled; {self._killed}")
        return WorkerCrashed(
            f"{self.label} died during the call ({status}); the next call starts a new one",
            exit_status=self.proc.returncode if self.proc else None,
            stderr_tail="".join(self._tail),
        )
