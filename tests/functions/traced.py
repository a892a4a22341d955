"""A function that reports the W3C trace context its worker received (tests/serving/test_tracing.py)."""

from __future__ import annotations

import satchel

PLAIN = satchel.Environment(python="3.11")


@satchel.function(environment=PLAIN)
def seen_traceparent(tag: str = "") -> str:
    """The `traceparent` this call arrived with in its worker ("" without one)."""
    from satchel.runtime.worker.context import traceparent

    return traceparent() or ""
