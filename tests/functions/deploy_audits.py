"""Audits for the deployment tests: each gets the loaded candidate and judges it."""

from __future__ import annotations

from typing import Any


def answers(candidate: Any) -> bool:
    """Passes when the candidate answers a call at all."""
    return isinstance(candidate(1.0), str)


def not_v3(candidate: Any) -> tuple[bool, str]:
    """Fails version 3, with a reason naming what it saw."""
    answer = candidate(2.0)
    if answer.startswith("v3"):
        return False, f"regression: the candidate answered {answer!r}"
    return True, f"answered {answer!r}"


def raises(candidate: Any) -> bool:
    raise AssertionError("accuracy 0.41 is below 0.9")


def returns_none(candidate: Any) -> None:
    return None


def blocks(candidate: Any) -> bool:
    """Waits for `candidate` (a threading.Event here) to be set: an audit that hangs."""
    candidate.wait()
    return True
