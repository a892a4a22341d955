"""Sample functions for the pool tests: calls that meet, block, spin, sleep in C, crash, or echo bytes.

Synchronisation between calls goes through files (a call creates one and waits for another), so
tests never sleep to make things happen at the same time.
"""

from __future__ import annotations

import os
import time

import satchel

PLAIN = satchel.Environment(python="3.11")


@satchel.function(environment=PLAIN)
def work(action: str, mine: str = "", other: str = "", seconds: float = 30.0, after: str = "") -> int:
    """Create the file `mine` (if named), then do `action`, then create the file `after` (if named, even
    if the action raised), and return the worker's pid.

    meet: wait until the file `other` exists (TimeoutError after `seconds`); spin: run a pure-Python
    loop for `seconds`; sleep: time.sleep(seconds), which Python cannot interrupt; crash: SIGKILL
    itself; pid: nothing.
    """
    if mine:  # written aside and renamed: the file appears with its content
        with open(mine + ".tmp", "w") as fh:
            fh.write(str(os.getpid()))
        os.replace(mine + ".tmp", mine)
    try:
        if action == "meet":
            deadline = time.monotonic() + seconds
            while not os.path.exists(other):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{other} did not appear within {seconds}s")
                time.sleep(0.005)
        elif action == "spin":
            end = time.monotonic() + seconds
            n = 0
            while time.monotonic() < end:
                n += 1
        elif action == "sleep":
            time.sleep(seconds)
        elif action == "crash":
            import signal

            os.kill(os.getpid(), signal.SIGKILL)
        elif action != "pid":
            raise ValueError(f"unknown action {action!r}")
    finally:  # however the action ended (an interrupted sleep raises once it is over)
        if after:
            open(after, "w").close()
    return os.getpid()


@satchel.function(environment=PLAIN)
def nap(seconds: float) -> float:
    """Sleep, then return the seconds slept (map tests: calls that finish out of order)."""
    time.sleep(seconds)
    return seconds


@satchel.function(environment=PLAIN)
def divide(a: float, b: float = 1.0) -> float:
    return a / b


@satchel.function(environment=PLAIN)
def echo(data: bytes) -> bytes:
    return data


@satchel.function(environment=PLAIN)
def blob(size: int) -> bytes:
    """`size` bytes counting up (mod 251): a large answer to a small request."""
    return bytes(i % 251 for i in range(size))
