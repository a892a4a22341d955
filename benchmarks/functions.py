"""Functions the benchmarks call (exported into a temporary store by run.py). Standard library only."""

from __future__ import annotations

import satchel

PLAIN = satchel.Environment(python="3.11")


@satchel.function(environment=PLAIN)
def add(a: float, b: float) -> float:
    return a + b


@satchel.function(environment=PLAIN)
def echo_bytes(data: bytes) -> bytes:
    return data
