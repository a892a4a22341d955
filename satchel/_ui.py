"""Progress and messages for people: short lines on stderr, a spinner while long work runs (rich), or
cells' output in Jupyter: how the stages of core/progress.py are drawn (`display`)."""

from __future__ import annotations

import importlib.util
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from satchel.core.progress import Reporter, Stage, reporting, stage

_console = None


def console():
    global _console
    if _console is None:
        from rich.console import Console

        _console = Console(stderr=True, highlight=False)
    return _console


@contextmanager
def step(message: str, enabled: bool = True) -> Iterator[None]:
    """Show `message` with a spinner while the block runs, then a one-line result with its duration
    (a stage drawn on stderr, whoever reports the stages around it)."""
    if not enabled:
        yield
        return
    with reporting(RichReporter(console())), stage(message):
        yield


# --- where stages are shown (core/progress.py reports them) ----------------------------------------


def escape(text: str) -> str:
    """`text` as literal rich markup (a title may hold brackets: `satchel[serve]`)."""
    from rich.markup import escape as _escape

    return _escape(text)


def in_jupyter() -> bool:
    """Whether this process is a Jupyter kernel (a notebook, JupyterLab, Colab): output goes to cells."""
    if "ipykernel" not in sys.modules:
        return False
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ != "TerminalInteractiveShell"


def display(progress: bool | None) -> Reporter | None:
    """How stages are drawn for a person (registered with core.progress.use_display by the face): rich
    in a Jupyter kernel's cells, or on stderr when it is a terminal (or when `progress` is True, plain
    lines then); None where nobody watches (the caller then logs)."""
    if in_jupyter():
        from rich.console import Console

        return RichReporter(
            Console(force_jupyter=True, highlight=False),
            live=importlib.util.find_spec("ipywidgets") is not None,
        )
    if progress is None and not sys.stderr.isatty():
        return None
    return RichReporter(console())


class RichReporter(Reporter):
    """Stages drawn by rich: a spinner with the stage's count and item while it runs (when the console
    can redraw: a terminal, or Jupyter with ipywidgets; else a line as it starts), then ✓ and its
    duration (✗ if it failed). A quick quiet stage leaves nothing behind."""

    def __init__(self, console: Any, *, live: bool = True) -> None:
        self.console = console
        self.live = live and (console.is_terminal or console.is_jupyter)
        self._lock = threading.Lock()
        self._open: list[Stage] = []
        self._status: Any = None

    @staticmethod
    def _text(stage: Stage) -> str:
        text = escape(stage.title)
        if stage.total is not None:
            text += f" [dim]{stage.done}/{stage.total}[/dim]"
        if stage.detail:
            text += f" [dim]{escape(stage.detail)}[/dim]"
        return text

    def start(self, stage: Stage) -> None:
        with self._lock:
            self._open.append(stage)
            if not self.live:
                if not stage.quiet:
                    self._print(f"[dim]…[/dim] {escape(stage.title)}")
            elif self._status is None:
                self._status = self.console.status(self._text(stage), spinner="dots")
                self._status.start()
            else:  # a stage inside another: one spinner, showing the innermost
                self._status.update(self._text(stage))

    def advance(self, stage: Stage) -> None:
        with self._lock:
            if self._status is not None and self._open and self._open[-1] is stage:
                self._status.update(self._text(stage))

    def finish(self, stage: Stage, error: BaseException | None) -> None:
        with self._lock:
            if stage in self._open:
                self._open.remove(stage)
            if self._status is not None:
                if self._open:
                    self._status.update(self._text(self._open[-1]))
                else:
                    self._status.stop()
                    self._status = None
            if error is not None:
                self._print(f"[red]✗[/red] {escape(stage.title)}")
            elif stage.notable():
                self._print(f"[green]✓[/green] {escape(stage.title)} [dim]({stage.elapsed:.1f}s)[/dim]")

    def note(self, text: str) -> None:
        self._print(f"[green]✓[/green] {escape(text)}")

    def _print(self, line: str) -> None:
        # Wrapped only on a terminal: a log file or a pipe gets each line whole.
        self.console.print(line, soft_wrap=not self.console.is_terminal)
