"""The records a run leaves in the datastore, as dataclasses: a run (`run.json`), a finished task
(`task.json`) and one attempt of a task (`attempt.json`). `FlowDatastore` reads and writes them; only it
knows where they live.

`to_dict()` is the stored JSON form and `from_dict()` reads it back: a field left at None is not stored
(except those marked `stored_null`), and fields this version does not know are kept in `extra` and
stored again as they were, so a record written by an older or newer Satchel round-trips unchanged.

Runs inside a task too (forked, or in an `@environment` step's interpreter): standard library only,
Python 3.9 compatible.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

R = TypeVar("R", bound="_Record")

_NULL = {"stored_null": True}  # field metadata: stored even when None


class _Record:
    extra: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.extra)
        for name, stored_null in _layout(type(self)):
            value = getattr(self, name)
            if value is not None or stored_null:
                out[name] = value
        return out

    @classmethod
    def from_dict(cls: type[R], data: Any, where: str = "") -> R:
        if not isinstance(data, dict):
            raise ValueError(
                f"{where or cls.__name__} is not a record (expected a JSON object, got {type(data).__name__})"
            )
        known = _names(cls)
        given = {k: v for k, v in data.items() if k in known}
        return cls(**given, extra={k: v for k, v in data.items() if k not in known})  # type: ignore[call-arg]


@functools.cache
def _layout(cls: type) -> tuple[tuple[str, bool], ...]:
    """A record class's stored fields, with whether each is stored even when None."""
    return tuple((f.name, bool(f.metadata.get("stored_null"))) for f in fields(cls) if f.name != "extra")


@functools.cache
def _names(cls: type) -> frozenset[str]:
    return frozenset(name for name, _ in _layout(cls))


@dataclass
class RunRecord(_Record):
    """A run (`run.json`): written "running" when it starts, rewritten when it ends."""

    flow: str = ""
    run_id: str = ""
    status: str = "unknown"  # running, successful, failed (a reader may see "crashed": flows/status.py)
    driver: dict[str, Any] | None = None  # the driver process, so a reader tells a crashed run
    tags: list[str] = field(default_factory=list)
    user: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    started: float | None = None
    finished: float | None = None
    graph: dict[str, Any] = field(default_factory=dict)
    steps: list[str] = field(default_factory=list)
    executor: str | None = None
    metadata: dict[str, Any] | None = None  # the flow's decorators (schedule, trigger_on_finish)
    error: str | None = None
    origin_run_id: str | None = None  # of a resume or a spin
    resume_step: str | None = None
    spin: dict[str, Any] | None = None  # {"step": ..., "task": ...}
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class AttemptRecord(_Record):
    """One attempt of a task (`attempt.json`), written by the task; by the driver when the task died
    before writing it."""

    status: str = "failed"  # ok or failed
    started: float | None = None
    finished: float | None = None
    artifacts: dict[str, str] | None = None  # name -> digest, of an ok attempt
    produced: list[str] | None = None  # the artifacts the step itself set
    switch: dict[str, Any] | None = None  # the case a switch step chose
    foreach: dict[str, Any] | None = None  # a foreach step's split: num_splits, digest
    error_type: str | None = None
    error: str | None = None
    traceback: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class TaskRecord(AttemptRecord):
    """A finished task (`task.json`): the attempt that decided it, and where the task stands in its run."""

    flow: str = ""
    run_id: str = ""
    step: str = ""
    task_id: str = ""
    attempt: int = 0
    user: str | None = None
    foreach_stack: list[dict[str, Any]] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)  # pathspecs of the input tasks
    resources: dict[str, Any] | None = field(default=None, metadata=_NULL)
    environment: dict[str, Any] | None = None  # of an @environment step
    pathspec: str = ""
    cloned_from: str | None = None  # a resume's clone: the origin task's pathspec
    caught: str | None = None  # the failure @catch caught

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @classmethod
    def of_attempt(cls, decided_by: AttemptRecord, **task: Any) -> TaskRecord:
        """The task record an attempt decides, with the task's own fields (they win over the attempt's)."""
        values = {f.name: getattr(decided_by, f.name) for f in fields(AttemptRecord)}
        values["extra"] = dict(decided_by.extra)
        return cls(**{**values, **task})
