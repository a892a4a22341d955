"""The process behind `satchel.escape`: serves one function in the caller's own (base) environment.

Started by a worker (`escape.py`) with the caller's interpreter and import path, so it imports the
caller's Satchel, not the worker's kit. Like a worker, it says READY (or STARTUP_ERROR when the target
cannot be imported), runs calls with `server.Server` (deadlines, CANCEL) and exits when its worker goes
away (the lifeline). Arguments and results are pickles (protocol 5), not Avro records.
"""

from __future__ import annotations

import faulthandler
import os
import pickle
import sys
from collections.abc import Callable
from typing import Any

from satchel.bindings import envelope as env
from satchel.bindings.transports import get_transport
from satchel.core.version import __version__
from satchel.runtime.worker.escape import PICKLE_PROTOCOL, PICKLED, resolve
from satchel.runtime.worker.main import _watch_lifeline
from satchel.runtime.worker.server import Server


class _Arguments:
    """`Server`'s request codec for pickled `(args, kwargs)`."""

    @staticmethod
    def decode_call(payload: Any) -> dict:
        try:
            args, kwargs = pickle.loads(payload)
        except Exception as exc:
            raise UnpicklableArguments(
                f"the arguments cannot be unpickled in the caller's environment: {type(exc).__name__}: {exc}"
            ) from None
        return {"args": args, "kwargs": kwargs}


class UnpicklableArguments(Exception):
    """Its type name (UNPICKLABLE_ARGUMENTS) is what the worker raises as ArgumentError."""


class _Result:
    """`Server`'s response codec: the return value, pickled."""

    fingerprint = PICKLED

    @staticmethod
    def encode_parts(value: Any) -> list:
        try:
            return [pickle.dumps(value, protocol=PICKLE_PROTOCOL)]
        except Exception as exc:
            raise TypeError(f"cannot be pickled to send back: {type(exc).__name__}: {exc}") from None


def _calling(func: Callable[..., Any]) -> Callable[..., Any]:
    def call(args: tuple, kwargs: dict) -> Any:
        return func(*args, **kwargs)

    call.__qualname__ = getattr(func, "__qualname__", "call")
    return call


def main(spec: dict) -> None:
    # What the function prints goes to stderr, which the worker passes on to its caller.
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    faulthandler.enable(sys.stderr, all_threads=False)
    # attached first: a worker already gone leaves no shm segment behind (attaching unlinks its name)
    transport = get_transport(spec["transport"]).attach(spec["endpoint"])
    _watch_lifeline(int(spec["lifeline_fd"]))
    try:
        func = resolve(spec["module"], spec["qualname"])
    except BaseException as exc:
        transport.send(env.encode_parts(env.Kind.STARTUP_ERROR, 0, env.encode_exception(exc)))
        transport.close()
        sys.exit(3)
    transport.send(env.encode_parts(env.Kind.READY, 0, env.encode_ready(os.getpid(), None, __version__)))
    Server(transport, _calling(func), {}, _Arguments(), _Result()).serve()
    transport.close()
