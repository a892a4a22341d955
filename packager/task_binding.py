"""Binding a function parameter to a finished flow task, through a small protocol.

The packager never imports the flow engine. A parameter is a *task parameter* when its annotation is a
class marked `__satchel_task__` (`satchel.flows.Task` is); the value bound to it is any object with:

    pathspec: str                      "Flow/run_id/step/task_id"
    finished: bool                     the task has ended (successfully or not)
    successful: bool
    artifact_names() -> list[str]
    open_artifact(name) -> BinaryIO    the artifact's plain pickle bytes, streamed

The flows client's Task is one. At export each chosen artifact is copied, streaming, into a bundle blob.

Which artifacts travel: those named by `bind(task=t, artifacts=[...])`, else all of the task's. Checked at
bind time, each an error naming the task's pathspec and the artifact: the task has finished and succeeded;
every chosen artifact exists; and every `<param>.data.<name>` the function's source reads is one of them
(names reached dynamically, as by `getattr(task.data, name)`, are not seen; a missing one is an
AttributeError naming the task when the function reads it).
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol, runtime_checkable

from satchel.core.errors import SatchelError


class TaskBindError(SatchelError, TypeError):
    """A flow task cannot be bound to a function parameter (not finished, an artifact missing, ...)."""


@runtime_checkable
class BindableTask(Protocol):
    pathspec: str

    @property
    def finished(self) -> bool: ...

    @property
    def successful(self) -> bool: ...

    def artifact_names(self) -> list[str]: ...

    def open_artifact(self, name: str) -> BinaryIO: ...


@dataclass(frozen=True)
class TaskBinding:
    """A task bound to parameter `parameter`, with the names of the artifacts that go into the bundle."""

    parameter: str
    task: Any
    artifacts: tuple[str, ...]
    all_names: tuple[str, ...]

    @property
    def pathspec(self) -> str:
        return self.task.pathspec


def is_task_annotation(annotation: Any) -> bool:
    return isinstance(annotation, type) and bool(getattr(annotation, "__satchel_task__", False))


def is_task(value: Any) -> bool:
    return isinstance(value, BindableTask)


def bind_task(
    func: Callable[..., Any],
    parameter: str,
    annotation: Any,
    task: Any,
    artifacts: Iterable[str] | None,
) -> TaskBinding:
    """Check that `task` can be bound to `parameter` of `func`; return the binding (or TaskBindError)."""
    where = f"parameter {parameter!r} of {func.__name__!r}"
    if not is_task(task):
        raise TaskBindError(
            f"{where} is annotated satchel.flows.Task: bind a finished flow task "
            f"(e.g. Flow('TrainFlow').latest_successful_run['fit'].task), not {type(task).__name__}"
        )
    if not is_task_annotation(annotation):
        raise TaskBindError(
            f"{where} is bound to flow task {task.pathspec}: annotate it satchel.flows.Task "
            f"(from satchel.flows import Task), so the worker knows to pass it a task"
        )
    if not task.finished:
        raise TaskBindError(f"flow task {task.pathspec} has not finished; bind a finished task to {where}")
    if not task.successful:
        raise TaskBindError(f"flow task {task.pathspec} failed; bind a successful task to {where}")
    names = tuple(sorted(task.artifact_names()))
    if artifacts is None:
        chosen = names
    else:
        if isinstance(artifacts, str):
            raise TaskBindError(f"artifacts= takes a list of artifact names, got the string {artifacts!r}")
        chosen = tuple(sorted(set(artifacts)))
        missing = [a for a in chosen if a not in names]
        if missing:
            raise TaskBindError(_missing(task.pathspec, missing[0], names, "artifacts= names"))
    read = sorted(data_names_read(func, parameter))
    for name in read:
        if name not in chosen:
            if name in names:
                raise TaskBindError(
                    f"{func.__name__!r} reads {parameter}.data.{name}, which is not among artifacts= "
                    f"({', '.join(chosen)}) for flow task {task.pathspec}"
                )
            raise TaskBindError(_missing(task.pathspec, name, names, f"{func.__name__!r} reads it"))
    return TaskBinding(parameter, task, chosen, names)


def _missing(pathspec: str, name: str, names: tuple[str, ...], why: str) -> str:
    return f"flow task {pathspec} has no artifact {name!r} ({why}); it has: {', '.join(names) or 'none'}"


def data_names_read(func: Callable[..., Any], parameter: str) -> set[str]:
    """The names `X` in every `<parameter>.data.X` in the source of `func` (empty if it has none)."""
    try:
        source = textwrap.dedent(inspect.getsource(func))
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError):
        return set()
    found = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Attribute)
            and node.value.attr == "data"
            and isinstance(node.value.value, ast.Name)
            and node.value.value.id == parameter
        ):
            found.add(node.attr)
    return found
