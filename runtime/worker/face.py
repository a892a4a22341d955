"""`satchel` as a function's own module sees it inside a worker (the kit ships this as `satchel/__init__.py`).

A function's module runs `@satchel.function(environment=satchel.Environment(...))` when the worker imports
it; here those names are the no-op stand-ins of `shims.py`, Satchel's errors are the real ones, and `escape`
calls a function in the caller's own environment (`escape.py`). Anything else of the public face is an
ImportError saying it is not available inside a worker.
"""

from __future__ import annotations

from typing import Any

from satchel.core.version import __version__
from satchel.runtime.worker.escape import escape
from satchel.runtime.worker.shims import Environment, Function, function

__all__ = ["Environment", "Function", "__version__", "escape", "function"]


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    from satchel.core import errors

    if isinstance(getattr(errors, name, None), type):
        return getattr(errors, name)
    raise ImportError(f"satchel.{name} is not available inside a Satchel worker")
