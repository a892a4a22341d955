"""Functions for the notebook face's tests: an example given at export, and a hostile docstring."""

from __future__ import annotations

import datetime

import satchel

PLAIN = satchel.Environment(python="3.11")


@satchel.function(environment=PLAIN, example={"n": 3, "label": "ho"})
def shout(n: int, label: str = "hey") -> str:
    """Repeat a label <script>alert("x")</script> & <b>shout</b> it."""
    return " ".join([label.upper()] * n)


@satchel.function(environment=PLAIN)
def stamp(when: datetime.date, scores: list[float], weight: float = 1.0) -> str:
    """Say when and how much."""
    return f"{when.isoformat()}: {sum(scores) * weight:g}"


@satchel.function(environment=PLAIN)
def weigh(model: dict, x: float) -> float:
    return model["a"] * x


@satchel.function(environment=PLAIN)
def die(code: int) -> int:
    """Exit the worker with `code` (0: return it)."""
    import os

    if code:
        os._exit(code)
    return code
