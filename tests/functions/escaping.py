"""A function that calls out of its locked environment with `satchel.escape` (tests/test_escape.py)."""

from __future__ import annotations

import satchel

PLAIN = satchel.Environment(python="3.11")


@satchel.function(environment=PLAIN)
def probe(target: str, arguments: list[str], timeouts: list[float]) -> list[dict[str, str]]:
    """Call `target` in the caller's environment once per argument (timeout 0: none); report each
    outcome: its result, as JSON, or the error the function saw."""
    import importlib.util
    import json
    import os
    import sys

    proxy = satchel.escape(target)
    outcomes = []
    for argument, timeout in zip(arguments, timeouts):
        if timeout:
            proxy = satchel.escape(target, timeout=timeout)
        value: object = (lambda: None) if argument == "!unpicklable" else argument  # noqa: E731
        try:
            outcomes.append({"result": json.dumps(proxy(value))})
        except satchel.SatchelError as exc:
            outcomes.append(
                {
                    "error": type(exc).__name__,
                    "type_name": str(getattr(exc, "type_name", "")),
                    "message": str(exc),
                    "exit_status": str(getattr(exc, "exit_status", "")),
                    "import_error": str(isinstance(exc, ImportError)),
                }
            )
    outcomes.append(
        {
            "worker": str(os.getpid()),
            "executable": sys.executable,
            "thickclient_here": str(importlib.util.find_spec("thickclient") is not None),
        }
    )
    return outcomes
