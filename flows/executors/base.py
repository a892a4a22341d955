"""The executor interface: run jobs (one task attempt each), report when they finish."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Job:
    """One attempt of one task. `target()` runs it where the executor puts it and returns an exit status;
    or, when `command` is given (an `@environment` step), the attempt is that fresh process, whose exit
    status is the attempt's."""

    key: Any
    target: Callable[[], int] | None = field(repr=False, default=None)
    cpu: float = 1
    timeout: float | None = None
    command: list[str] | None = None
    gpu: float = 0
    memory_mb: float | None = None
    #: for executors whose jobs run away from this process (`Executor.portable`): a picklable
    #: description of the attempt, run there by `task_runner.run_task_description`
    task: dict[str, Any] | None = field(repr=False, default=None)


@dataclass
class Finished:
    """A job that ended: its exit code (None if it was killed), and whether its timeout killed it."""

    job: Job
    exitcode: int | None
    timed_out: bool = False


class Executor(ABC):
    """Runs jobs concurrently within a capacity; the driver schedules, the executor only executes."""

    #: True when jobs run in other processes than forks of this one (e.g. Ray workers): the driver
    #: then gives each job a portable `task` description instead of a `target` closure
    portable: bool = False

    @abstractmethod
    def can_accept(self, cpu: float) -> bool:
        """Whether a job needing `cpu` can start now."""

    @abstractmethod
    def submit(self, job: Job) -> None: ...

    @abstractmethod
    def wait(self) -> list[Finished]:
        """Block until at least one running job ends (or is killed by its timeout); return those."""

    @property
    @abstractmethod
    def running(self) -> int: ...

    @abstractmethod
    def shutdown(self) -> None:
        """Kill every running job."""
