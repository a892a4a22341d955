"""`satchel.flows.Task`: a finished flow task as a function bound to it sees it.

A function declares `def predict(rows: list[float], task: Task) -> float` and is bound to a task with
`predict.bind(task=Flow("TrainFlow").latest_successful_run["fit"].task)`. Wherever the function runs, its
`task` argument has `pathspec`, `id`, `flow_name`, `run_id`, `step_name`, `artifact_names()` and
`data.<artifact>`, each artifact unpickled on first access and then kept.

This module is the whole of `satchel.flows` inside a Satchel worker (whose kit ships it with a small
`satchel/flows/__init__.py` exporting only `Task`), so it imports nothing but the standard library and
runs on Python 3.9. The client's task (`satchel.flows.client.Task`) is a subclass that reads the store.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

Loader = Callable[[], Any]


class TaskData:
    """A task's artifacts by attribute (`data.model`), each loaded by its loader on first access."""

    def __init__(self, pathspec: str, loaders: dict[str, Loader]) -> None:
        self._pathspec = pathspec
        self._loaders = loaders
        self._cache: dict[str, Any] = {}
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name not in self._loaders:
            have = ", ".join(sorted(self._loaders)) or "none"
            raise AttributeError(f"{self._pathspec} has no artifact {name!r} (it has: {have})")
        with self._lock:
            if name not in self._cache:
                self._cache[name] = self._loaders[name]()
            return self._cache[name]

    def __contains__(self, name: object) -> bool:
        return name in self._loaders

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._loaders))

    def __dir__(self) -> list[str]:
        return sorted(self._loaders)

    def __repr__(self) -> str:
        return f"<artifacts of {self._pathspec}: {', '.join(sorted(self._loaders))}>"


class Task:
    """One finished task of a flow run: `pathspec` (`Flow/run_id/step/task_id`), `id`, `data`."""

    __satchel_task__ = True  # how the packager recognises a Task annotation without importing flows

    def __init__(self, pathspec: str, loaders: dict[str, Loader]) -> None:
        self.pathspec = pathspec
        parts = pathspec.split("/")
        if len(parts) != 4 or not all(parts):
            raise ValueError(f"a task pathspec is Flow/run_id/step/task_id, got {pathspec!r}")
        self.flow_name, self.run_id, self.step_name, self.id = parts
        self.data = TaskData(pathspec, loaders)

    def artifact_names(self) -> list[str]:
        """The names of the task's artifacts."""
        return list(self.data)

    def loaded_artifacts(self) -> list[str]:
        """The names of the artifacts loaded so far (each is loaded on first access)."""
        return sorted(self.data._cache)

    def __repr__(self) -> str:
        return f"Task({self.pathspec!r})"
