"""Progress and messages for people: short lines on stderr, a spinner while long work runs (rich)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

_console = None


def console():
    global _console
    if _console is None:
        from rich.console import Console

        _console = Console(stderr=True, highlight=False)
    return _console


@contextmanager
def step(message: str, enabled: bool = True) -> Iterator[None]:
    """Show `message` with a spinner while the block runs, then a one-line result with its duration."""
    if not enabled:
        yield
        return
    con = console()
    started = time.perf_counter()
    try:
        with con.status(message, spinner="dots"):
            yield
    except BaseException:
        con.print(f"[red]✗[/red] {message}")
        raise
    con.print(f"[green]✓[/green] {message} [dim]({time.perf_counter() - started:.1f}s)[/dim]")
