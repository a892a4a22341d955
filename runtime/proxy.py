"""The proxy a caller holds: looks like the function, runs it in an isolated worker process."""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextvars
import functools
import inspect
import itertools
import numbers
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from satchel.bindings import arguments
from satchel.bindings import envelope as env
from satchel.bindings.codec import Codec, RequestCodec
from satchel.bindings.transports import default_transport
from satchel.core.errors import ArgumentError, BadResult, CallTimeout, ProtocolError, RemoteError
from satchel.packager.bundle import Bundle
from satchel.runtime.fetch import LocalBundle
from satchel.runtime.pool import DEFAULT_MAX_PENDING, Slot, WorkerPool
from satchel.runtime.process import DEFAULT_GRACE, WorkerProcess
from satchel.runtime.worker.context import outgoing as outgoing_context

_KINDS = {
    "positional_or_keyword": inspect.Parameter.POSITIONAL_OR_KEYWORD,
    "keyword_only": inspect.Parameter.KEYWORD_ONLY,
    "positional_only": inspect.Parameter.POSITIONAL_ONLY,
}


class _Annotation(str):
    """An annotation known only by its text: shows as `int`, not `'int'`, in signatures and help()."""

    def __repr__(self) -> str:
        return str(self)


def _annotation(text: str | None):
    return inspect.Parameter.empty if text is None else _Annotation(text)


def build_signature(bundle: Bundle, defaults: dict[str, Any]) -> inspect.Signature:
    params = []
    for p in bundle.function["parameters"]:
        kind = _KINDS.get(p.get("kind", "positional_or_keyword"), inspect.Parameter.POSITIONAL_OR_KEYWORD)
        default = (
            defaults.get(p["name"], inspect.Parameter.empty) if p.get("default") else inspect.Parameter.empty
        )
        params.append(
            inspect.Parameter(p["name"], kind, default=default, annotation=_annotation(p.get("annotation")))
        )
    ret = bundle.function.get("return_annotation")
    return inspect.Signature(params, return_annotation=_annotation(ret))


#: Set in a task to have `acall` call it once the call got a worker, right before it is sent.
call_started: contextvars.ContextVar[Callable[[], None] | None] = contextvars.ContextVar(
    "satchel_call_started", default=None
)


class _Ticket:
    """An asyncio call's link to its worker, so that cancelling the task can cancel the call."""

    __slots__ = ("cancelled", "process")

    def __init__(self) -> None:
        self.cancelled = False
        self.process: WorkerProcess | None = None


class LoadedFunction:
    """A function loaded from a bundle. Call it like the original; it runs in its own worker processes.

    Thread-safe: calls from many threads (or asyncio tasks, `await fn.acall(...)`) go to idle workers
    of its pool (`workers=`), and wait for one when all are busy, at most `max_pending` of them
    (then Overloaded). `fn.map(items)` streams many calls through the pool. `fn.close()` (or `with`)
    stops the workers; pickles to its reference.

    Per call, `timeout=` (seconds, unless the function has a parameter of that name) bounds the whole
    call, waiting for a worker included; it travels to the worker as the call's deadline. When it
    passes, the caller gets CallTimeout at once, and the worker is told to cancel the call, which
    interrupts Python code (the worker stays up); a worker that does not answer within `cancel_grace`
    seconds (stuck in C code, say) is killed and a new one started in its slot in the background (the
    slot takes no call until then). Cancelling an asyncio task awaiting `acall` cancels its call the
    same way. Each replaced worker is logged ("satchel.runtime.workers") and counted (`restarts`).
    """

    def __init__(
        self,
        bundle: Bundle,
        local: LocalBundle,
        *,
        transport: str | None = None,
        workers: int = 1,
        max_pending: int = DEFAULT_MAX_PENDING,
        cancel_grace: float = DEFAULT_GRACE,
        start: bool = True,
    ) -> None:
        self._bundle = bundle
        self._local = local
        self._transport = transport = transport or default_transport()
        self._request = RequestCodec(bundle.request_schema)
        self._response = Codec(bundle.response_schema)
        self._signature = build_signature(bundle, self._request.defaults())
        # what a function has, for help() and pydoc (which take an instance's own __doc__)
        self.__name__ = self.__qualname__ = bundle.name
        self.__doc__ = bundle.function.get("doc") or None
        self._param_names = set(self._signature.parameters)
        params = self._signature.parameters.values()
        self._positional = [p.name for p in params if p.kind != inspect.Parameter.KEYWORD_ONLY]
        self._by_keyword = {p.name for p in params if p.kind != inspect.Parameter.POSITIONAL_ONLY}
        self._required = [p.name for p in params if p.default is inspect.Parameter.empty]
        self._large_args = self._request.has_raw_fields
        self._ids = itertools.count(1)
        self._grace = float(cancel_grace)
        self._options = {"workers": workers, "max_pending": max_pending, "cancel_grace": cancel_grace}
        self._spec = {
            "code_dir": str(local.code_dir),
            "module": bundle.function["module"],
            "qualname": bundle.function["qualname"],
            "main_alias": bundle.function["module"]
            if bundle.function.get("source_module") == "__main__"
            else None,
            "artifacts": {name: str(path) for name, path in local.artifacts.items()},
            "request_schema": bundle.request_schema,
            "response_schema": bundle.response_schema,
        }
        # the pool (kept by the finalizer) must not refer to this proxy, or it would never be collected
        self._size_box = [workers]  # the pool's size, for the workers' labels ("worker 2/4 of ...")
        start_worker = functools.partial(
            _start_worker, local.python, self._spec, transport, bundle.name, self._size_box
        )
        self._pool = WorkerPool(start_worker, size=workers, max_pending=max_pending, name=bundle.name)
        self._executor_box: list[concurrent.futures.ThreadPoolExecutor | None] = [None]  # acall's threads
        self._executor_lock = threading.Lock()
        self._finalizer = weakref.finalize(self, _shutdown, self._pool, self._executor_box)
        if start:
            self._pool.start()

    # -- what it looks like -------------------------------------------------------------------------

    @property
    def __signature__(self) -> inspect.Signature:
        return self._signature

    def __get__(self, instance: Any, owner: Any = None) -> LoadedFunction:
        # A non-data descriptor, like a function, so that help() and pydoc document the proxy as the
        # function it stands for (signature and docstring) rather than as an instance of this class;
        # kept in a class, it stays unbound (as a staticmethod would).
        return self

    @property
    def ref(self):
        return self._bundle.ref

    @property
    def metadata(self) -> dict:
        return self._bundle.doc

    @property
    def schema(self) -> dict:
        return {"request": self._bundle.request_schema, "response": self._bundle.response_schema}

    @property
    def defaults(self) -> dict[str, Any]:
        """The default value of each parameter that has one."""
        return self._request.defaults()

    @property
    def workers(self) -> int:
        """How many worker processes serve calls (`workers=` of satchel.load, or the last `scale`)."""
        return self._pool.size

    def scale(self, workers: int, *, only_idle: bool = False) -> None:
        """Serve calls with `workers` worker processes from now on, without blocking callers: new ones
        start in the background and take calls once up; surplus ones stop, idle ones first, busy ones
        when their call ends (`only_idle`: busy ones stay). With 0, the next call starts one again (and
        waits for it)."""
        previous, self._size_box[0] = self._size_box[0], workers
        try:
            self._pool.resize(workers, only_idle=only_idle)
        except BaseException:
            self._size_box[0] = previous
            raise

    @property
    def closed(self) -> bool:
        """Whether `close` was called (its workers are stopped; load it again to call it)."""
        return self._pool.closed

    @property
    def warm(self) -> bool:
        """Whether a worker is up to take a call (no system call: cheap enough for every request)."""
        return any(slot.process is not None and slot.process.probably_alive for slot in self._pool.slots)

    @property
    def live_workers(self) -> int:
        """How many worker processes run now (starting and dead ones not counted)."""
        return sum(pid is not None for pid in self._pool.pids)

    @property
    def busy(self) -> int:
        """How many calls hold a worker now."""
        return self._pool.busy

    @property
    def restarts(self) -> int:
        """How many workers were started in place of ones that died (crashed, or killed after a timeout)."""
        return self._pool.restarts

    @property
    def restart_causes(self) -> dict[str, int]:
        """`restarts` by cause: "timeout" or "cancel" (a call that would not stop was killed), "crash"."""
        return dict(self._pool.restart_causes)

    def idle_seconds(self) -> list[float]:
        """How long each idle worker has been idle (seconds), longest first."""
        return self._pool.idle_seconds()

    @property
    def worker_pids(self) -> list[int | None]:
        """The process id of each worker (None for one not running: it starts on the next call it takes)."""
        return self._pool.pids

    @property
    def worker_pid(self) -> int | None:
        """The process id of the (first) worker, if it runs."""
        return self._pool.pids[0]

    @property
    def pending(self) -> int:
        """How many calls are waiting for a free worker now."""
        return self._pool.pending

    def __repr__(self) -> str:
        ref = self._bundle.ref
        where = f" from {ref.store}#{ref.name}:{ref.version}" if ref is not None else ""
        return f"<satchel.LoadedFunction {self._bundle.name}{self._signature}{where}>"

    def _repr_html_(self) -> str:
        """The bundle's summary (core/summary.py) and the state of its workers."""
        from satchel.packager.summary import bundle_html

        pids = [pid for pid in self.worker_pids if pid is not None]
        size = self.workers
        if self.closed:
            state = "closed"
        elif size == 0:
            state = "none yet: the first call starts one"
        else:
            state = f"{len(pids)} of {size} running" + (
                f" (pids {', '.join(map(str, pids))})" if pids else ""
            )
        rows = [
            ("workers", state),
            ("calls", f"{self.busy} running, {self.pending} waiting" if self.busy or self.pending else None),
            ("restarts", self._restarts_text() if self.restarts else None),
            ("transport", self._transport),
        ]
        return bundle_html(self._bundle, rows, kind="satchel loaded function")

    def _restarts_text(self) -> str:
        causes = ", ".join(f"{cause} {n}" for cause, n in sorted(self.restart_causes.items()))
        return f"{self.restarts} ({causes})" if causes else str(self.restarts)

    def __reduce__(self):
        from satchel.runtime.load import load

        options = {k: v for k, v in self._options.items() if v != _DEFAULTS[k]}
        if options:
            return (functools.partial(load, **options), (str(self._bundle.ref),))
        return (load, (str(self._bundle.ref),))

    # -- lifecycle ----------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the workers: calls waiting for one fail (FunctionClosed), running calls finish first.

        On a thread running an event loop, calls awaited on that loop could not finish while this waits,
        so there the busy workers are killed instead (their callers get WorkerCrashed); `await
        fn.aclose()` lets them finish."""
        self._finalizer.detach()
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            _shutdown(self._pool, self._executor_box, wait=True)
        else:
            _shutdown(self._pool, self._executor_box, wait=False)

    async def aclose(self) -> None:
        """`close` from asyncio: waits for running calls (on a thread) while the loop keeps serving them."""
        await asyncio.to_thread(self.close)

    def __enter__(self) -> LoadedFunction:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- calling ------------------------------------------------------------------------------------

    def _encode(self, args: tuple, kwargs: dict) -> list[Any]:
        arguments = self._bind(args, kwargs)
        if self._large_args:  # the request has bytes or ndarray parameters: they may go unjoined
            return self._request.encode_call_parts(arguments)
        return [self._request.encode_call(arguments)]

    def _bind(self, args: tuple, kwargs: dict) -> dict[str, Any]:
        """The arguments by parameter name, as `Signature.bind` gives them (it is slow: it runs only
        for calls this cannot bind plainly, and for the error message of a wrong one)."""
        if len(args) <= len(self._positional):
            arguments = dict(zip(self._positional, args))
            plain = True
            for name in kwargs:
                if name in arguments or name not in self._by_keyword:
                    plain = False
                    break
            if plain:
                arguments.update(kwargs)
                if len(arguments) == len(self._param_names) or all(n in arguments for n in self._required):
                    return arguments
        try:
            return dict(self._signature.bind(*args, **kwargs).arguments)
        except TypeError as exc:
            raise self._bind_error(args, kwargs, exc) from None

    def _bind_error(self, args: tuple, kwargs: dict, exc: TypeError) -> ArgumentError:
        """The error of a call that does not bind, in the words REST and `satchel call` use too."""
        unknown = [k for k in kwargs if k not in self._param_names]
        if unknown:
            return arguments.unknown(unknown, list(self._signature.parameters))
        positional = self._positional[: len(args)]
        twice = set(positional) & set(kwargs)
        by_keyword_only = [k for k in kwargs if k not in self._by_keyword]  # positional-only by keyword
        if len(args) <= len(self._positional) and not twice and not by_keyword_only:
            missing = [n for n in self._required if n not in positional and n not in kwargs]
            if missing:
                return arguments.missing(missing)
        return arguments.argument_error(str(exc))  # too many positional, one given twice, ...

    def _split_timeout(self, kwargs: dict) -> float | None:
        if "timeout" in self._param_names:
            return None
        timeout = kwargs.pop("timeout", None)
        return timeout if timeout is None else check_timeout(timeout)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        timeout = kwargs.pop("timeout", None) if "timeout" not in self._param_names else None
        if timeout is not None:
            timeout = check_timeout(timeout)
        return self._call(args, kwargs, timeout)

    def _call(self, args: tuple, kwargs: dict, timeout: float | None) -> Any:
        payload = self._encode(args, kwargs)
        call_id = next(self._ids)
        deadline = None if timeout is None else time.monotonic() + timeout
        slot = self._pool.acquire(deadline)
        try:
            reply = self._on(slot, call_id, payload, deadline, timeout, None, outgoing_context())
        finally:
            self._pool.release(slot)
        return self._result(reply, call_id)

    def _on(
        self,
        slot: Slot,
        call_id: int,
        payload: list[Any],
        deadline: float | None,
        timeout: float | None,
        ticket: _Ticket | None = None,
        context: Any = None,
    ) -> env.Envelope:
        """Run one call on the worker of `slot` (taken by the caller); `context`: its trace context."""
        worker = self._pool.worker(slot)
        if ticket is not None:
            ticket.process = worker
            if ticket.cancelled:
                raise CallTimeout(f"the call to {self._bundle.name} was cancelled before it was sent")
        if deadline is not None and deadline <= time.monotonic():
            raise CallTimeout(
                f"{self._bundle.name}: the call's timeout ({timeout:g}s) passed before it could be sent; "
                "it did not run"
            )
        return worker.call(
            call_id,
            self._request.fingerprint,
            payload,
            deadline=deadline,
            timeout=timeout,
            grace=self._grace,
            context=context,
        )

    def _result(self, reply: env.Envelope, call_id: int) -> Any:
        if reply.call_id != call_id:
            raise ProtocolError(f"reply to call {reply.call_id} arrived for call {call_id}")
        if reply.kind == env.Kind.RESULT:
            return self._response.decode(reply.payload)
        if reply.kind == env.Kind.ERROR:
            error = env.decode_error(reply.payload)
            if error.type == env.TIMEOUT_ERROR_TYPE:
                raise CallTimeout(f"{self._bundle.name}: the call {error.message}")
            if error.type == env.BAD_RESULT_ERROR_TYPE:
                raise BadResult(error.type, f"{self._bundle.name}: {error.message}", error.traceback)
            raise RemoteError(error.type, error.message, error.traceback)
        raise ProtocolError(f"unexpected reply kind {reply.kind!r}")

    async def acall(self, *args: Any, **kwargs: Any) -> Any:
        """Call from asyncio without blocking the event loop.

        Waiting for a free worker happens on the loop; the call itself runs on one of `workers`
        threads. Cancelling the awaiting task cancels the call in its worker (see the class doc).
        """
        timeout = self._split_timeout(kwargs)
        payload = self._encode(args, kwargs)
        call_id = next(self._ids)
        deadline = None if timeout is None else time.monotonic() + timeout
        slot = await self._pool.acquire_async(deadline)
        started = call_started.get()
        if started is not None:  # the caller asked to know when its call got a worker (an async job)
            started()
        context = outgoing_context()  # the caller's trace context (the executor's threads do not have it)
        worker = slot.process
        if worker is not None and worker.awaitable and worker.probably_alive and _small(payload):
            return await self._acall_on_loop(slot, worker, call_id, payload, deadline, timeout, context)
        ticket = _Ticket()
        try:
            future = asyncio.get_running_loop().run_in_executor(
                self._thread_pool(),
                self._run_and_release,
                slot,
                call_id,
                payload,
                deadline,
                timeout,
                ticket,
                context,
            )
        except BaseException:
            self._pool.release(slot)
            raise
        # shielded: the executor must run the call even if this task is cancelled first (it gives
        # the slot back); its outcome is then nobody's, so it is fetched here to keep asyncio quiet
        future.add_done_callback(lambda f: f.cancelled() or f.exception())
        try:
            reply = await asyncio.shield(future)
        except asyncio.CancelledError:
            ticket.cancelled = True
            worker = ticket.process
            if worker is not None:
                worker.cancel(call_id, self._grace)
            raise
        return self._result(reply, call_id)

    async def _acall_on_loop(
        self, slot: Slot, worker: WorkerProcess, call_id: int, payload: list, deadline, timeout, context=None
    ) -> Any:
        """The call awaited on the event loop itself (a transport that reads without a thread, a small
        request, a started worker): no thread hop. The worker gives the slot back once its reply is read,
        so cancelling the caller cancels the call in the worker but never leaves its reply unread."""
        pool = self._pool
        reply = await worker.acall(
            call_id,
            self._request.fingerprint,
            payload,
            deadline=deadline,
            timeout=timeout,
            grace=self._grace,
            context=context,
            release=lambda: pool.release(slot),
        )
        return self._result(reply, call_id)

    def _run_and_release(self, slot: Slot, *args: Any) -> env.Envelope:
        try:
            return self._on(slot, *args)
        finally:
            self._pool.release(slot)

    def _thread_pool(self) -> concurrent.futures.ThreadPoolExecutor:
        box = self._executor_box
        executor = box[0]
        if executor is None or executor._max_workers < self._pool.size:  # first call, or scaled up since
            with self._executor_lock:
                executor = box[0]
                if executor is None or executor._max_workers < self._pool.size:
                    box[0] = concurrent.futures.ThreadPoolExecutor(
                        max_workers=max(self._pool.size, 4), thread_name_prefix=f"satchel-{self._bundle.name}"
                    )
                    if executor is not None:
                        executor.shutdown(wait=False)  # its running calls finish on its threads
                executor = box[0]
        return executor

    def map(
        self, items: Iterable[Any], *, ordered: bool = True, timeout: float | None = None
    ) -> Iterator[Any]:
        """Call the function on each item, through the pool; yield the results lazily.

        An item is the argument itself for a function of one parameter (whatever its type); for
        other functions a tuple holds positional arguments, a dict keyword arguments, and any other
        value is the first positional argument. At most twice as many calls as there are workers
        are in flight, and items are taken from `items` only as results are consumed. Results come
        in the order of the items (`ordered=False`: as they complete). A call that fails raises its
        error where its result would have come; the calls after it are then abandoned (queued ones
        never start, running ones finish). `timeout` applies to each call, as `timeout=` does. Each
        call carries the trace context current when `map` was called, as `fn(...)` would.
        """
        if timeout is not None:
            timeout = check_timeout(timeout)
        single = len(self._signature.parameters) == 1
        window = 2 * max(self._pool.size, 1)
        caller = contextvars.copy_context()  # the calls run on the executor's threads, in copies of it

        def submit(executor: concurrent.futures.ThreadPoolExecutor, item: Any) -> concurrent.futures.Future:
            if single:
                args, kwargs = (item,), {}
            elif isinstance(item, tuple):
                args, kwargs = item, {}
            elif isinstance(item, dict):
                args, kwargs = (), item
            else:
                args, kwargs = (item,), {}
            return executor.submit(caller.copy().run, self._call, args, dict(kwargs), timeout)

        def results() -> Iterator[Any]:
            source = iter(items)
            executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=max(self._pool.size, 1), thread_name_prefix=f"satchel-map-{self._bundle.name}"
            )
            running: collections.deque[concurrent.futures.Future] = collections.deque()
            try:
                for item in itertools.islice(source, window):
                    running.append(submit(executor, item))
                while running:
                    if ordered:
                        future = running.popleft()
                        future.result()  # wait (raising its error here) before taking another item
                    else:
                        done, _ = concurrent.futures.wait(
                            running, return_when=concurrent.futures.FIRST_COMPLETED
                        )
                        future = next(f for f in running if f in done)
                        running.remove(future)
                    for item in itertools.islice(source, 1):
                        running.append(submit(executor, item))
                    yield future.result()
            finally:
                for future in running:
                    future.cancel()
                executor.shutdown(wait=False)

        return results()


def check_timeout(timeout: Any) -> float:
    """A call's `timeout=` as seconds; ArgumentError (naming it, like any argument) unless a number >= 0."""
    if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real):
        raise arguments.argument_error(
            f"option timeout=: expected seconds as a number, got {type(timeout).__name__} {timeout!r}",
            "timeout",
        )
    if not timeout >= 0:  # also NaN
        raise arguments.argument_error(
            f"option timeout=: expected 0 or more seconds, got {timeout!r}", "timeout"
        )
    return float(timeout)


_SMALL_REQUEST = 48 * 1024  # awaited on the loop only if it fits a pipe's buffer (64 KiB) with room to spare


def _small(payload: list) -> bool:
    size = 0
    for part in payload:
        size += part.nbytes if isinstance(part, memoryview) else len(part)
    return size <= _SMALL_REQUEST


def _start_worker(
    python: Any, spec: dict, transport: str, name: str, size_box: list[int], index: int
) -> WorkerProcess:
    size = max(size_box[0], index + 1)
    label = f"worker {index + 1}/{size} of {name}" if size > 1 else f"worker of {name}"
    worker = WorkerProcess(python, spec, transport=transport, label=label)
    worker.start()
    return worker


_DEFAULTS = {"workers": 1, "max_pending": DEFAULT_MAX_PENDING, "cancel_grace": DEFAULT_GRACE}


def _shutdown(pool: WorkerPool, executor_box: list, wait: bool = False) -> None:
    executor = executor_box[0]
    if executor is not None:
        executor.shutdown(wait=False)
    pool.close(wait=wait)


def make_proxy(
    bundle: Bundle, local: LocalBundle, *, transport: str | None = None, **options: Any
) -> LoadedFunction:
    """A LoadedFunction whose class carries the function's name (its repr, `type(fn)`).

    `options`: workers, max_pending, cancel_grace (see LoadedFunction).
    """
    cls = type(
        bundle.name.replace("-", "_").replace(".", "_"),
        (LoadedFunction,),
        {"__module__": "satchel.loaded"},
    )
    proxy = cls(bundle, local, transport=transport, **options)
    return proxy
