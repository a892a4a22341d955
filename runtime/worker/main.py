"""The worker: imports the function, restores its artifacts, answers calls until told to stop.

The call loop (deadlines, cancellation) is `server.Server`.

Runs with the bundle environment's interpreter. Imports only the standard library, the floor
(`satchel.core`), `satchel.bindings` and the worker's runtime requirements (fastavro); and `satchel.flows.task` (through the
kit's `satchel.flows` stand-in, `flows_shim`) when a parameter is bound to a flow task. Python 3.9+.
"""

from __future__ import annotations

import faulthandler
import importlib
import json
import os
import pickle
import sys
import threading
from collections.abc import Callable
from typing import Any

from satchel.bindings import envelope as env
from satchel.bindings.codec import Codec, RequestCodec
from satchel.bindings.transports import get_transport
from satchel.core.version import __version__
from satchel.runtime.worker import escape
from satchel.runtime.worker.artifacts import restore
from satchel.runtime.worker.server import Server


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


def _send(transport, kind: int, payload: bytes) -> None:
    transport.send(env.encode_parts(kind, 0, payload))


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    spec = json.loads(argv[0])
    # Anything the function prints goes to stderr, which the caller reads and keeps the tail of.
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    # A worker killed by a signal (SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGILL) prints the Python stack of
    # the crash there too: it ends up in WorkerCrashed.stderr_tail.
    faulthandler.enable(sys.stderr, all_threads=False)
    if spec.get("lifeline_fd") is not None:
        _watch_lifeline(int(spec["lifeline_fd"]))
    transport = get_transport(spec["transport"]).attach(spec["endpoint"])
    escape.configure(spec.get("base"), spec["transport"])

    try:
        sys.path.insert(0, spec["code_dir"])
        func = _resolve(spec["module"], spec["qualname"])
        main_alias = spec.get("main_alias")
        bound = restore(spec["artifacts"], lambda fh: _Unpickler(fh, main_alias).load())
        request = RequestCodec(spec["request_schema"])
        response = Codec(spec["response_schema"], path="return value")
    except BaseException as exc:  # report why we could not start, then exit
        _send(transport, env.Kind.STARTUP_ERROR, env.encode_exception(exc))
        transport.close()
        sys.exit(3)

    _send(transport, env.Kind.READY, env.encode_ready(os.getpid(), sys.version.split()[0], __version__))
    Server(transport, func, bound, request, response).serve()
    transport.close()
