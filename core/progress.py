"""Progress of long stages (resolving an environment, mirroring packages, materializing, starting a
worker), reported wherever the caller is. Standard library only.

Lower layers report stages: `with stage("materializing environment 3f2a… (41 packages)", total=41) as s:
s.advance(detail="numpy 2.1.3")`. Where they go is the caller's choice, made at an entry point with
`with reporting(reporter_for(progress)):`, where `progress=` is the caller's argument. How stages are drawn
is the face's to decide: it registers a display with `use_display` (satchel/_ui.py draws with rich on a
terminal or in Jupyter); without one, and where nobody watches, they are `LogReporter` lines. Outside any
`reporting` block nothing is reported (`Reporter`, the no-op). Work that finds
everything cached opens no stage, so a warm cache hit reports nothing.
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

__all__ = [
    "LOGGER",
    "QUIET_UNDER",
    "LogReporter",
    "Reporter",
    "Stage",
    "current",
    "reporter_for",
    "reporting",
    "stage",
    "use_display",
]

#: A `quiet` stage (one that is usually quick, like a worker's start) is shown only when it takes at least
#: this many seconds; quicker, it is a debug line at most.
QUIET_UNDER = 1.0
#: Where `LogReporter` writes: a child of the `satchel` logger, so configuring either shows the stages.
LOGGER = "satchel.progress"


@dataclass
class Stage:
    """One stage of work: `title` says what, on what ("materializing environment 3f2a… (41 packages)")."""

    title: str
    total: int | None = None
    quiet: bool = False
    done: int = 0
    detail: str = ""  # the item in hand ("numpy 2.1.3")
    started: float = field(default_factory=time.monotonic)
    reporter: Reporter | None = field(default=None, repr=False)

    def advance(self, n: int = 1, detail: str = "") -> None:
        """`n` more items done; `detail` names the next (or last) one."""
        self.done += n
        self.detail = detail
        if self.reporter is not None:
            self.reporter.advance(self)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def notable(self) -> bool:
        """Whether its end is worth a line of its own (not a quiet stage that was quick)."""
        return not self.quiet or self.elapsed >= QUIET_UNDER


class Reporter:
    """Receives stages as they start, advance and finish. This base class ignores them all."""

    def start(self, stage: Stage) -> None:
        pass

    def advance(self, stage: Stage) -> None:
        pass

    def finish(self, stage: Stage, error: BaseException | None) -> None:
        """`error`: what ended the stage early, or None when it completed."""

    def note(self, text: str) -> None:
        """A one-off line: an outcome ("exported describe:3")."""


class LogReporter(Reporter):
    """One INFO line per stage on the `satchel.progress` logger when it ends, with its duration:
    "materializing environment 3f2a… (41 packages) done in 12.3 s". Its start and each item are debug
    lines; a quick quiet stage is a debug line only; one that failed is a warning."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger(LOGGER)

    def start(self, stage: Stage) -> None:
        self.logger.debug("%s ...", stage.title)

    def advance(self, stage: Stage) -> None:
        if self.logger.isEnabledFor(logging.DEBUG):
            count = f"{stage.done}/{stage.total}" if stage.total is not None else str(stage.done)
            self.logger.debug("%s: %s %s", stage.title, count, stage.detail)

    def finish(self, stage: Stage, error: BaseException | None) -> None:
        if error is not None:
            self.logger.warning("%s failed after %.1f s: %s", stage.title, stage.elapsed, _one_line(error))
            return
        level = logging.INFO if stage.notable() else logging.DEBUG
        self.logger.log(level, "%s done in %.1f s", stage.title, stage.elapsed)

    def note(self, text: str) -> None:
        self.logger.info("%s", text)


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


_NOTHING = Reporter()
_current: contextvars.ContextVar[Reporter] = contextvars.ContextVar("satchel_reporter", default=_NOTHING)


def current() -> Reporter:
    """The reporter of the innermost `reporting` block around this code (a no-op outside any)."""
    return _current.get()


@contextmanager
def reporting(reporter: Reporter) -> Iterator[Reporter]:
    """Report the stages run inside the block (in this thread or task) to `reporter`."""
    token = _current.set(reporter)
    try:
        yield reporter
    finally:
        _current.reset(token)


@contextmanager
def stage(title: str, *, total: int | None = None, quiet: bool = False) -> Iterator[Stage]:
    """A stage of work, reported to `current()` as it starts, advances and ends (failed or not).

    `quiet`: usually quick (a worker's start, a check that finds everything in place); its end is shown
    only when it took at least QUIET_UNDER seconds, or when the work sets `stage.quiet = False` (it found
    something to do after all).
    """
    reporter = current()
    st = Stage(title, total=total, quiet=quiet, reporter=reporter)
    reporter.start(st)
    try:
        yield st
    except BaseException as exc:
        reporter.finish(st, exc)
        raise
    reporter.finish(st, None)


#: progress= (None or True) -> a Reporter that draws for a person, or None where nobody watches.
Display = Callable[["bool | None"], "Reporter | None"]
_display: Display | None = None


def use_display(display: Display | None) -> None:
    """Register how stages are drawn for a person (the face does, with rich)."""
    global _display
    _display = display


def reporter_for(progress: bool | Reporter | None) -> Reporter:
    """The reporter of an entry point's `progress=`: a Reporter, as it is; False: log lines only; None or
    True: the registered display where a person watches (None: a terminal or a notebook; True: always),
    else log lines on the `satchel.progress` logger."""
    if isinstance(progress, Reporter):
        return progress
    if progress is not False and _display is not None:
        drawn = _display(progress)
        if drawn is not None:
            return drawn
    return LogReporter()
