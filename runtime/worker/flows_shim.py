"""`satchel.flows` inside a Satchel worker: only `Task`.

A function bound to a flow task is written `def predict(x: float, task: Task)` after
`from satchel.flows import Task`. The flow engine is not in the worker's kit (it needs the packager and
its dependencies, and a worker has no use for it), so the worker kit ships this file as
`satchel/flows/__init__.py`, beside the engine's dependency-free `satchel/flows/task.py`. Importing any
other name from `satchel.flows` in a worker is an ImportError that says why.
"""

from __future__ import annotations

from typing import Any

from satchel.flows.task import Task, TaskData

__all__ = ["Task", "TaskData"]


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    raise ImportError(
        f"satchel.flows.{name} is not available inside a Satchel worker: a function's worker has only "
        "satchel.flows.Task (the flow engine runs flows, not functions)"
    )
