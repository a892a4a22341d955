"""`satchel.escape("module:function")`: call a function in the caller's own (base) environment.

Inside a worker, the runtime that started it says which interpreter, flags and import path it runs with
(the worker spec's `base`, set by `main`). A proxy's first call starts a child process with them
(`escaped.py`, one per target, shared by every proxy of it) that imports the target and serves calls
over the worker's own transport (shm ring or pipe) with the envelope and call loop every worker uses;
arguments and results travel pickled (protocol 5), since the escaped function's types live in the base
environment. The child dies with the worker: SHUTDOWN at exit, and a lifeline pipe if it is killed.

Calls to one target are serialized (one in flight per child). A call's `timeout` sends CANCEL and
raises CallTimeout; a child still busy `GRACE` seconds later is killed before the next call. A call
whose worker call is cancelled (the caller's timeout) forwards the CANCEL: the wait for the reply is
sliced so that the worker's interruption lands there.

Outside a worker there is no other environment to reach: the target is imported and called in-process.

Python 3.9+, standard library and the kit only.
"""

from __future__ import annotations

import atexit
import collections
import importlib
import itertools
import json
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from satchel.bindings import envelope as env
from satchel.bindings.fingerprint import fingerprint64
from satchel.bindings.transports import get_transport
from satchel.core.errors import (
    ArgumentError,
    BadResult,
    CallTimeout,
    EscapeImportError,
    ProtocolError,
    RemoteError,
    SatchelError,
    TransportClosed,
    TransportTimeout,
    WorkerCrashed,
    WorkerStartupError,
)

PICKLE_PROTOCOL = 5
#: The `fingerprint` of an escaped call's payloads: opaque bytes (a pickle), not an Avro record.
PICKLED = fingerprint64("bytes")
#: The error type `escaped.py` reports when the base environment cannot unpickle the arguments.
UNPICKLABLE_ARGUMENTS = "satchel.runtime.worker.escaped.UnpicklableArguments"
GRACE = 2.0  # seconds a cancelled call has to stop before its child is killed
START_TIMEOUT = 300.0
STDERR_TAIL_LINES = 40
_SLICE = 0.1  # seconds per wait, so that the worker's own cancellation can interrupt it

_BOOT = (
    "import json, sys; spec = json.loads(sys.argv[1]); sys.path[:] = spec['path']; "
    "from satchel.runtime.worker.escaped import main; main(spec)"
)

_in_worker = False
_base: dict | None = None
_transport = "pipe"
_children: dict = {}  # target -> _Child
_children_lock = threading.Lock()


def configure(base: dict | None, transport: str) -> None:
    """Called by the worker's `main`: where escaped functions run, and over which transport."""
    global _in_worker, _base, _transport
    _in_worker, _base, _transport = True, base, transport


def escape(target: str, *, timeout: float | None = None) -> Escaped:
    """A proxy calling `target` ("module:function", or "module:Class.method") in the caller's own
    environment: the interpreter and import path of the process that loaded this function. Its errors
    are a loaded function's: RemoteError (remote type and traceback), WorkerCrashed (the next call starts
    a new process), CallTimeout (past `timeout` seconds), ArgumentError, and EscapeImportError when the
    caller's environment cannot import `target`. Outside a worker it is called in this process."""
    module, qualname = _parse(target)
    if timeout is not None:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0:
            raise ValueError(f"satchel.escape(timeout=): expected 0 or more seconds, got {timeout!r}")
        timeout = float(timeout)
    return Escaped(target, module, qualname, timeout)


def _parse(target: Any) -> tuple:
    if not isinstance(target, str):
        raise TypeError(
            f"satchel.escape(target): expected a 'module:function' string, got {type(target).__name__}"
        )
    module, sep, qualname = target.partition(":")
    names = module.split(".") + qualname.split(".")
    if not sep or not all(name.isidentifier() for name in names):
        raise ValueError(f"satchel.escape(target): expected 'module:function', got {target!r}")
    return module, qualname


class Escaped:
    """Calls one function in the caller's environment (see `escape`). Thread-safe; calls serialize."""

    def __init__(self, target: str, module: str, qualname: str, timeout: float | None) -> None:
        self.target = target
        self.timeout = timeout
        self._module = module
        self._qualname = qualname
        self._local: Callable[..., Any] | None = None

    def __repr__(self) -> str:
        return f"<satchel.escape {self.target!r}>"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not _in_worker:
            return self._in_process()(*args, **kwargs)
        if _base is None:
            raise SatchelError(
                f"satchel.escape({self.target!r}): the process that started this worker did not say which "
                "interpreter it runs (an embedded Python), so there is no environment to escape to"
            )
        payload = _dumps_call(self.target, args, kwargs)
        return _child(self.target, self._module, self._qualname).call(payload, self.timeout)

    def _in_process(self) -> Callable[..., Any]:
        if self._local is None:
            try:
                self._local = resolve(self._module, self._qualname)
            except Exception as exc:
                raise import_error(self.target, sys.executable, type(exc).__name__, str(exc), "") from exc
        return self._local


def resolve(module: str, qualname: str) -> Callable[..., Any]:
    """Import `module` and walk `qualname` in it; TypeError if that is not callable."""
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"{module}:{qualname} is {type(obj).__name__}, not a function")
    return obj


def import_error(target: str, python: str, type_name: str, message: str, traceback: str) -> EscapeImportError:
    text = f"satchel.escape({target!r}): the caller's environment ({python}) cannot import it: {type_name}: {message}"
    if type_name not in ("ModuleNotFoundError", "ImportError", "AttributeError", "TypeError") and traceback:
        text += "\n\n" + traceback.rstrip()  # an error raised by the module's own code: show where
    return EscapeImportError(text)


def _dumps_call(target: str, args: tuple, kwargs: dict) -> bytes:
    try:
        return pickle.dumps((args, kwargs), protocol=PICKLE_PROTOCOL)
    except Exception as exc:
        culprit = "the arguments"
        named = [(f"argument {i + 1}", value) for i, value in enumerate(args)]
        named += [(f"argument {name!r}", value) for name, value in kwargs.items()]
        for name, value in named:
            try:
                pickle.dumps(value, protocol=PICKLE_PROTOCOL)
            except Exception:
                culprit = f"{name} ({type(value).__name__})"
                break
        raise ArgumentError(
            f"satchel.escape({target!r}): {culprit} cannot be pickled to send to the caller's environment: {exc}"
        ) from None


def _child(target: str, module: str, qualname: str) -> _Child:
    with _children_lock:
        child = _children.get(target)
        if child is None:
            if not _children:
                atexit.register(close_all)
            child = _children[target] = _Child(target, module, qualname, _base or {}, _transport)
        return child


def close_all() -> None:
    """Stop every escaped child (the worker is exiting)."""
    with _children_lock:
        children = list(_children.values())
    for child in children:
        child.close()


class _Child:
    """The process serving one target; started on first call, and again after it died."""

    def __init__(self, target: str, module: str, qualname: str, base: dict, transport: str) -> None:
        self.target = target
        self.label = f"satchel.escape({target!r})"
        self.module = module
        self.qualname = qualname
        self.python = str(base.get("python") or "")
        self.flags = list(base.get("flags") or [])
        self.path = list(base.get("path") or [])
        self.transport_name = transport
        self.proc: subprocess.Popen | None = None
        self.transport: Any = None
        self._lifeline_w: int | None = None
        self._tail: collections.deque = collections.deque(maxlen=STDERR_TAIL_LINES)
        self._stderr_thread: threading.Thread | None = None
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._unsettled: tuple | None = None  # (call id, monotonic time by which it must answer)

    # -- lifecycle ----------------------------------------------------------------------------------

    def _start(self, deadline: float | None) -> None:
        channel = get_transport(self.transport_name).create()
        lifeline_r, lifeline_w = os.pipe()
        spec = {
            "module": self.module,
            "qualname": self.qualname,
            "path": self.path,
            "transport": self.transport_name,
            "endpoint": channel.endpoint,
            "lifeline_fd": lifeline_r,
        }
        self._tail.clear()
        try:
            self.proc = subprocess.Popen(
                [self.python, *self.flags, "-c", _BOOT, json.dumps(spec)],
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
            raise WorkerStartupError(
                f"{self.label}: cannot start the caller's interpreter {self.python}: {exc}"
            ) from None
        channel.after_spawn()
        os.close(lifeline_r)
        self._lifeline_w = lifeline_w
        self.transport = channel.transport
        self._stderr_thread = threading.Thread(
            target=self._pump_stderr, name="satchel-escape-stderr", daemon=True
        )
        self._stderr_thread.start()
        started = time.monotonic() + START_TIMEOUT
        try:
            message = env.decode(self._recv(started if deadline is None else min(started, deadline)))
        except TransportTimeout:
            self._kill()
            if deadline is not None and deadline <= started:
                raise CallTimeout(
                    f"{self.label}: its process did not start within the call's timeout"
                ) from None
            raise WorkerStartupError(
                f"{self.label}: its process did not start within {START_TIMEOUT:.0f}s" + self._tail_text()
            ) from None
        except TransportClosed:
            status = self._reap()
            raise WorkerStartupError(
                f"{self.label}: its process exited while starting ({status})" + self._tail_text()
            ) from None
        except BaseException:  # the worker's call was cancelled meanwhile
            self._kill()
            raise
        if message.kind == env.Kind.STARTUP_ERROR:
            error = env.decode_error(message.payload)
            self._reap()
            raise import_error(self.target, self.python, error.type, error.message, error.traceback)
        if message.kind != env.Kind.READY:
            self._kill()
            raise WorkerStartupError(f"{self.label}: its process sent {message.kind!r} instead of READY")

    def _pump_stderr(self) -> None:
        proc = self.proc
        assert proc is not None and proc.stderr is not None
        for raw in iter(proc.stderr.readline, b""):
            line = raw.decode("utf-8", "replace")
            self._tail.append(line)
            try:  # the worker's stderr: its caller keeps the tail
                sys.stderr.write(line)
                sys.stderr.flush()
            except (ValueError, OSError):
                pass
        proc.stderr.close()

    def _tail_text(self) -> str:
        if self._stderr_thread is not None:
            self._stderr_thread.join(timeout=2.0)
        tail = "".join(self._tail).rstrip()
        return f"\n\nLast lines of its stderr:\n{tail}" if tail else ""

    def _alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None and self.transport is not None

    def _reap(self, timeout: float = 10.0) -> str:
        """Wait for the process to end (killing it if it lingers), release its channel, describe its end."""
        proc = self.proc
        if proc is None:
            return "never started"
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if self._stderr_thread is not None:
            self._stderr_thread.join(timeout=2.0)
        if self.transport is not None:
            self.transport.close()
            self.transport = None
        if self._lifeline_w is not None:
            os.close(self._lifeline_w)
            self._lifeline_w = None
        self._unsettled = None
        code = proc.returncode
        if code >= 0:
            return f"exit status {code}"
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"

    def _kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        self._reap()

    def close(self) -> None:
        """SHUTDOWN, then wait for the process to exit (killed if it does not within GRACE)."""
        if not self._lock.acquire(timeout=GRACE):  # a thread of the function is still in a call
            if self.proc is not None and self.proc.poll() is None:
                self.proc.kill()
            return
        try:
            if self.proc is None or self.transport is None:
                return
            try:
                self.transport.send([env.encode_header(env.Kind.SHUTDOWN, 0, 0, 0, 0)])
            except (TransportClosed, OSError):
                pass
            self._reap(GRACE)
        finally:
            self._lock.release()

    # -- calls --------------------------------------------------------------------------------------

    def _recv(self, deadline: float | None) -> bytes:
        while True:
            wait = _SLICE if deadline is None else min(_SLICE, max(0.0, deadline - time.monotonic()))
            try:
                return self.transport.recv(wait)
            except TransportTimeout:
                if deadline is not None and time.monotonic() >= deadline:
                    raise

    def _settle(self) -> None:
        """Read the answer of a call abandoned earlier; kill the process if it has none by its grace."""
        if self._unsettled is None:
            return
        call_id, by = self._unsettled
        try:
            while env.decode(self._recv(by)).call_id != call_id:
                pass
            self._unsettled = None
        except (TransportTimeout, ProtocolError):
            self._kill()
        except TransportClosed:
            self._reap()

    def call(self, payload: bytes, timeout: float | None) -> Any:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            self._settle()
            if not self._alive():
                if self.proc is not None:
                    self._reap()
                self._start(deadline)
            call_id = next(self._ids)
            deadline_ms = 0 if deadline is None else int((time.time() + deadline - time.monotonic()) * 1000.0)
            header = env.encode_header(env.Kind.CALL, call_id, PICKLED, deadline_ms, len(payload))
            sent = False
            try:
                self.transport.send([header, payload])
                sent = True
                while True:
                    reply = env.decode(self._recv(deadline))
                    if reply.call_id == call_id:
                        break
            except TransportClosed:
                raise self._died() from None
            except ProtocolError:
                self._kill()
                raise
            except TransportTimeout:
                self._abandon(call_id)
                raise CallTimeout(
                    f"{self.label} did not answer within {timeout:g}s: the call is cancelled in its process "
                    f"(Python code stops at once; a process still busy {GRACE:g}s later is killed and the "
                    "next call starts a new one)"
                ) from None
            except BaseException:  # the worker's own call was cancelled (or the stream is broken)
                if sent and self.transport is not None:
                    self._abandon(call_id)
                else:  # interrupted while sending: what reached the process cannot be trusted
                    self._kill()
                raise
            return self._result(reply)  # before the next call may reuse the message's buffer

    def _abandon(self, call_id: int) -> None:
        try:
            self.transport.send([env.encode_header(env.Kind.CANCEL, call_id, 0, 0, 0)])
            self._unsettled = (call_id, time.monotonic() + GRACE)
        except (TransportClosed, OSError):
            self._kill()

    def _died(self) -> WorkerCrashed:
        status = self._reap()
        return WorkerCrashed(
            f"{self.label}: its process died during the call ({status}); the next call starts a new one",
            exit_status=self.proc.returncode if self.proc is not None else None,
            stderr_tail="".join(self._tail),
        )

    def _result(self, reply: env.Envelope) -> Any:
        if reply.kind == env.Kind.RESULT:
            try:
                return pickle.loads(reply.payload)
            except Exception as exc:
                raise BadResult(
                    env.BAD_RESULT_ERROR_TYPE,
                    f"{self.label}: its return value cannot be unpickled in the function's environment: "
                    f"{type(exc).__name__}: {exc}",
                ) from None
        if reply.kind == env.Kind.ERROR:
            error = env.decode_error(reply.payload)
            if error.type == env.TIMEOUT_ERROR_TYPE:
                raise CallTimeout(f"{self.label}: the call {error.message}")
            if error.type == env.BAD_RESULT_ERROR_TYPE:
                raise BadResult(
                    error.type, f"{self.label}: its return value {error.message}", error.traceback
                )
            if error.type == UNPICKLABLE_ARGUMENTS:
                raise ArgumentError(f"{self.label}: {error.message}")
            raise RemoteError(error.type, error.message, error.traceback)
        raise ProtocolError(f"{self.label}: unexpected reply kind {reply.kind!r}")
