"""The proxy a caller holds: looks like the function, runs it in an isolated worker process."""

from __future__ import annotations

import asyncio
import functools
import inspect
import itertools
import threading
import weakref
from typing import Any

from satchel.bindings import envelope as env
from satchel.bindings.codec import Codec, RequestCodec
from satchel.errors import ArgumentError, FunctionClosed, ProtocolError, RemoteError
from satchel.packager.bundle import Bundle
from satchel.runtime.fetch import LocalBundle
from satchel.runtime.process import WorkerProcess

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


def _shutdown(slot: list) -> None:
    worker = slot[0]
    slot[0] = None
    if worker is not None:
        worker.stop(timeout=2.0)


class LoadedFunction:
    """A function loaded from a bundle. Call it like the original; it runs in its own worker.

    Thread-safe; `await fn.acall(...)` from asyncio; `fn.close()` (or `with`) stops the worker;
    pickles to its reference. Per call, `timeout=` (seconds) bounds the wait unless the function
    has a parameter of that name.
    """

    def __init__(
        self, bundle: Bundle, local: LocalBundle, *, transport: str = "pipe", start: bool = True
    ) -> None:
        self._bundle = bundle
        self._local = local
        self._transport = transport
        self._request = RequestCodec(bundle.request_schema)
        self._response = Codec(bundle.response_schema)
        self._signature = build_signature(bundle, self._request.defaults())
        self._param_names = set(self._signature.parameters)
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._closed = False
        self._slot: list[WorkerProcess | None] = [None]
        self._finalizer = weakref.finalize(self, _shutdown, self._slot)
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
        if start:
            with self._lock:
                self._worker()

    # -- what it looks like -------------------------------------------------------------------------

    @property
    def __signature__(self) -> inspect.Signature:
        return self._signature

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
    def worker_pid(self) -> int | None:
        worker = self._slot[0]
        return worker.pid if worker is not None and worker.alive else None

    def __repr__(self) -> str:
        return f"<satchel.LoadedFunction {self._bundle.name}{self._signature} from {self._bundle.ref}>"

    def __reduce__(self):
        from satchel.runtime.load import load

        return (load, (str(self._bundle.ref),))

    # -- lifecycle ----------------------------------------------------------------------------------

    def _worker(self) -> WorkerProcess:
        worker = self._slot[0]
        if worker is not None and worker.alive:
            return worker
        if worker is not None:
            worker.kill()
        worker = WorkerProcess(
            self._local.python, self._spec, transport=self._transport, label=f"worker of {self._bundle.name}"
        )
        worker.start()
        self._slot[0] = worker
        return worker

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._finalizer()

    def __enter__(self) -> LoadedFunction:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- calling ------------------------------------------------------------------------------------

    def _encode(self, args: tuple, kwargs: dict) -> bytes:
        try:
            bound = self._signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise ArgumentError(f"{self._bundle.name}(): {exc}") from None
        return self._request.encode_call(bound.arguments)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        timeout = kwargs.pop("timeout", None) if "timeout" not in self._param_names else None
        payload = self._encode(args, kwargs)
        call_id = next(self._ids)
        header = env.encode_header(env.Kind.CALL, call_id, self._request.fingerprint, 0, len(payload))
        with self._lock:
            if self._closed:
                raise FunctionClosed(f"{self._bundle.name} was closed; load it again")
            reply = self._worker().request([header, payload], timeout)
        if reply.call_id != call_id:
            raise ProtocolError(f"reply to call {reply.call_id} arrived for call {call_id}")
        if reply.kind == env.Kind.RESULT:
            return self._response.decode(reply.payload)
        if reply.kind == env.Kind.ERROR:
            error = env.decode_error(reply.payload)
            raise RemoteError(error.type, error.message, error.traceback)
        raise ProtocolError(f"unexpected reply kind {reply.kind!r}")

    async def acall(self, *args: Any, **kwargs: Any) -> Any:
        """Call from asyncio without blocking the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, functools.partial(self.__call__, *args, **kwargs))


def make_proxy(bundle: Bundle, local: LocalBundle, *, transport: str = "pipe") -> LoadedFunction:
    """A LoadedFunction whose class carries the function's name and docstring (for help())."""
    cls = type(
        bundle.name.replace("-", "_").replace(".", "_"),
        (LoadedFunction,),
        {"__doc__": bundle.function.get("doc") or LoadedFunction.__doc__, "__module__": "satchel.loaded"},
    )
    proxy = cls(bundle, local, transport=transport)
    return proxy
