"""Waiting on conditions in tests: poll a predicate until it holds or a deadline passes (never a bare sleep)."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(predicate: Callable[[], object], timeout: float = 10.0, what: str = "condition") -> object:
    """The predicate's first truthy value; AssertionError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.002)


def pid_gone(pid: int) -> bool:
    """True once `pid` no longer runs (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1].startswith("Z")
    except (FileNotFoundError, ProcessLookupError):  # ESRCH: it went while the file was read
        return True


def wait_gone(pid: int, timeout: float = 10.0) -> bool:
    """True if `pid` stops running within `timeout` seconds."""
    try:
        wait_until(lambda: pid_gone(pid), timeout, f"process {pid} to exit")
    except AssertionError:
        return False
    return True
