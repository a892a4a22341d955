"""Three versions of one model, exported under one bundle name to test deployments: each answers differently."""

from __future__ import annotations

import pathlib
import time

import satchel

PLAIN = satchel.Environment(python="3.11")


@satchel.function(environment=PLAIN)
def score_v1(x: float) -> str:
    """Version 1 of the scorer."""
    return f"v1:{x}"


@satchel.function(environment=PLAIN)
def score_v2(x: float) -> str:
    """Version 2 of the scorer."""
    return f"v2:{x}"


@satchel.function(environment=PLAIN)
def score_v3(x: float) -> str:
    """Version 3 of the scorer: the one that regressed."""
    return f"v3:{x}"


@satchel.function(environment=PLAIN)
def score_blocking(x: float, started: str = "", release: str = "") -> str:
    """Version 0: touches the file `started`, then answers once the file `release` exists."""
    if started:
        pathlib.Path(started).touch()
    while release and not pathlib.Path(release).exists():
        time.sleep(0.005)
    return f"v0:{x}"
