"""Sample functions for the tests: the module a data scientist would write."""

from __future__ import annotations

import os
import time

import satchel
from tests.functions import helpers

HUMANIZE = satchel.Environment(python="3.11", pypi=["humanize==4.12.1"])
PLAIN = satchel.Environment(python="3.11")


@satchel.function(environment=HUMANIZE)
def describe(n: int, suffix: str = "") -> str:
    """Say a number in words."""
    import humanize

    return humanize.intword(n) + suffix


@satchel.function(environment=PLAIN)
def add(a: float, b: float) -> float:
    """Add two numbers."""
    return a + b


@satchel.function(environment=PLAIN)
def scale(values: list[float], factor: float, offset: float = 0.0) -> list[float]:
    return [helpers.affine(v, factor, offset) for v in values]


@satchel.function(environment=PLAIN)
def fail(message: str) -> str:
    raise ValueError(message)


@satchel.function(environment=PLAIN)
def crash(how: str) -> int:
    """Die in one of several ways, after saying so on stderr."""
    import sys

    print(f"about to crash by {how}", file=sys.stderr, flush=True)
    if how == "exit":
        os._exit(7)
    if how == "kill":
        import signal

        os.kill(os.getpid(), signal.SIGKILL)
    if how == "segfault":
        import ctypes

        ctypes.string_at(0)
    return os.getpid()


@satchel.function(environment=PLAIN)
def pid() -> int:
    return os.getpid()


@satchel.function(environment=PLAIN)
def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@satchel.function(environment=PLAIN)
def whereami() -> dict[str, str]:
    """Report the worker's interpreter and what it can import."""
    import importlib.util
    import sys

    return {
        "executable": sys.executable,
        "version": sys.version.split()[0],
        "pytest": str(importlib.util.find_spec("pytest") is not None),
        "click": str(importlib.util.find_spec("click") is not None),
    }


@satchel.function(environment=PLAIN)
def predict(rows: list[list[float]], weights: list[float], bias: float) -> list[float]:
    """A tiny linear model; `weights` and `bias` are meant to be bound."""
    return [sum(w * x for w, x in zip(weights, row)) + bias for row in rows]


@satchel.function(environment=PLAIN)
def liar(x: float, lie: bool = True) -> float:
    """Return a string where the annotation promises a float (unless told not to lie)."""
    return f"{x}" if lie else x  # type: ignore[return-value]
