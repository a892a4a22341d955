"""Progress of a run: per step, how many tasks are done, running and failed, counted from the driver's
task events (`started`, `done`, `failed`, `retried`, `cloned`).

`ProgressModel` is the model (counts only); `LiveProgress` draws it as a rich table that updates while the
run goes (for a terminal), `PlainProgress` prints one summary line per step when the run ends.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

EVENTS = ("started", "done", "failed", "retried", "cloned")


@dataclass
class StepCounts:
    """Tasks of one step. `done` counts cloned tasks too; `retried` counts failed attempts retried."""

    done: int = 0
    running: int = 0
    failed: int = 0
    retried: int = 0
    cloned: int = 0


class ProgressModel:
    """Counts per step, in graph order, updated by the driver (`start`, `task`, `stop`)."""

    def __init__(self) -> None:
        self.run: str | None = None
        self.status = "running"
        self.steps: dict[str, StepCounts] = {}

    def start(self, run: str, steps: list[str]) -> None:
        self.run = run
        for name in steps:
            self.steps.setdefault(name, StepCounts())

    def task(self, step: str, event: str) -> None:
        counts = self.steps.setdefault(step, StepCounts())
        if event == "started":
            counts.running += 1
        elif event == "done":
            counts.running -= 1
            counts.done += 1
        elif event == "failed":
            counts.running -= 1
            counts.failed += 1
        elif event == "retried":
            counts.running -= 1
            counts.retried += 1
        elif event == "cloned":
            counts.done += 1
            counts.cloned += 1
        else:
            raise ValueError(f"unknown task event {event!r} (known: {', '.join(EVENTS)})")

    def stop(self, status: str) -> None:
        """The run ended: tasks still running were stopped with it."""
        self.status = status
        for counts in self.steps.values():
            counts.running = 0

    def summary(self, step: str) -> str:
        c = self.steps[step]
        extra = [f"{n} {what}" for n, what in ((c.cloned, "cloned"), (c.retried, "retried")) if n]
        return f"{step}: {c.done} done, {c.failed} failed" + (f" ({', '.join(extra)})" if extra else "")


class PlainProgress(ProgressModel):
    """For a pipe or a log file: one summary line per step when the run ends."""

    def __init__(self, write: Callable[[str], None] = print) -> None:
        super().__init__()
        self.write = write

    def stop(self, status: str) -> None:
        super().stop(status)
        for step in self.steps:
            self.write(f"  {self.summary(step)}")


class LiveProgress(ProgressModel):
    """A rich table of the counts, redrawn as tasks start and end (at most `fps` times a second, and
    always at the end). Lines printed through `console` while it runs appear above it."""

    def __init__(self, console: Any = None, fps: float = 10) -> None:
        from rich.console import Console

        super().__init__()
        self.console = console if console is not None else Console()
        self._interval = 1 / fps
        self._drawn = 0.0
        self._live: Any = None

    def start(self, run: str, steps: list[str]) -> None:
        from rich.live import Live

        super().start(run, steps)
        self._live = Live(
            self.render(),
            console=self.console,
            auto_refresh=False,
            transient=False,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._live.start(refresh=True)

    def task(self, step: str, event: str) -> None:
        super().task(step, event)
        now = time.monotonic()
        if self._live is not None and now - self._drawn >= self._interval:
            self._drawn = now
            self._live.update(self.render(), refresh=True)

    def stop(self, status: str) -> None:
        super().stop(status)
        if self._live is not None:
            self._live.update(self.render(), refresh=True)
            self._live.stop()
            self._live = None
            if not self.console.is_terminal:
                self.console.line()

    def render(self) -> Any:
        from rich.table import Table

        table = Table(title=f"{self.run or ''} {self.status}".strip(), title_justify="left")
        table.add_column("step")
        for column in ("done", "running", "failed", "retried", "cloned"):
            table.add_column(column, justify="right")
        for name, c in self.steps.items():
            failed = f"[red]{c.failed}[/red]" if c.failed else "0"
            table.add_row(name, str(c.done), str(c.running), failed, str(c.retried), str(c.cloned))
        return table


def for_command_line(*, quiet: bool, force: bool, console: Any = None) -> ProgressModel | None:
    """What `python flow.py run` shows: nothing with --quiet, a live table on a terminal (or with
    --progress), summary lines otherwise."""
    if quiet:
        return None
    if force or sys.stdout.isatty():
        return LiveProgress(console)
    return PlainProgress()
