"""The worker: imports the function, restores its artifacts, answers calls until told to stop.

Runs with the bundle environment's interpreter. Imports only the standard library, `satchel.errors`,
`satchel.bindings` and the worker's runtime requirements (fastavro). Python 3.9+.
"""

from __future__ import annotations

import importlib
import json
import os
import pickle
import sys
import threading
import traceback
from collections.abc import Callable
from typing import Any

from satchel._version import __version__
from satchel.bindings import envelope as env
from satchel.bindings.codec import Codec, RequestCodec
from satchel.bindings.transports import get_transport
from satchel.errors import TransportClosed


def _watch_lifeline(fd: int) -> None:
    """Exit when the caller goes away: its end of the lifeline pipe closes and this read returns."""

    def watch() -> None:
        try:
            while os.read(fd, 1):
                pass
        except OSError:
            pass
        os._exit(0)

    threading.Thread(target=watch, name="satchel-lifeline", daemon=True).start()


def _resolve(module_name: str, qualname: str) -> Callable[..., Any]:
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return getattr(obj, "func", obj)  # a (shimmed) satchel.Function wraps the plain function


class _Unpickler(pickle.Unpickler):
    """Finds classes a script defined in `__main__` in the module the script is shipped as."""

    def __init__(self, fh: Any, main_alias: str | None) -> None:
        super().__init__(fh)
        self.main_alias = main_alias

    def find_class(self, module: str, name: str) -> Any:
        if module == "__main__" and self.main_alias:
            module = self.main_alias
        return super().find_class(module, name)


def _error_payload(exc: BaseException) -> bytes:
    kind = type(exc)
    name = kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
    tb = "".join(traceback.format_exception(kind, exc, exc.__traceback__))
    return env.encode_error(name, str(exc), tb)


def _send(transport, kind: int, call_id: int, payload: bytes | memoryview, fingerprint: int = 0) -> None:
    header = env.encode_header(kind, call_id, fingerprint, 0, len(payload))
    transport.send([header, payload])


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    spec = json.loads(argv[0])
    # Anything the function prints goes to stderr, which the caller reads and keeps the tail of.
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    if spec.get("lifeline_fd") is not None:
        _watch_lifeline(int(spec["lifeline_fd"]))
    transport = get_transport(spec["transport"]).attach(spec["endpoint"])

    try:
        from satchel.runtime.worker import shims

        shims.install()
        sys.path.insert(0, spec["code_dir"])
        func = _resolve(spec["module"], spec["qualname"])
        bound = {}
        for name, path in spec["artifacts"].items():
            with open(path, "rb") as fh:
                bound[name] = _Unpickler(fh, spec.get("main_alias")).load()
        request = RequestCodec(spec["request_schema"])
        response = Codec(spec["response_schema"])
    except BaseException as exc:  # report why we could not start, then exit
        _send(transport, env.Kind.STARTUP_ERROR, 0, _error_payload(exc))
        transport.close()
        sys.exit(3)

    _send(transport, env.Kind.READY, 0, env.encode_ready(os.getpid(), sys.version.split()[0], __version__))
    while True:
        try:
            message = transport.recv()
        except TransportClosed:
            break
        msg = env.decode(message)
        if msg.kind == env.Kind.SHUTDOWN:
            break
        if msg.kind != env.Kind.CALL:
            continue
        try:
            kwargs = request.decode_call(msg.payload)
            if bound:
                kwargs.update(bound)
            result = func(**kwargs)
            payload = response.encode(result)
        except Exception as exc:
            _send(transport, env.Kind.ERROR, msg.call_id, _error_payload(exc))
            continue
        _send(transport, env.Kind.RESULT, msg.call_id, payload, response.fingerprint)
    transport.close()
