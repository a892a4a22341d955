"""The server's logs: access and error lines on stderr (access lines are JSON documents).

Access lines are written once per event-loop iteration, not once per request: under load, the lines of
the requests answered in one iteration leave in one write. Off an event loop a line is written at once.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
from typing import TextIO

LOGGERS = (
    "satchel.serving.access",
    "satchel.serving.errors",
    "satchel.serving.deployments",
    "satchel.serving.autoscale",
    "satchel.serving.grpc",
    "satchel.runtime.workers",  # a worker replaced, and why
    "satchel.progress",  # the stages of loading the served functions (satchel/_progress.py)
)


class AccessLines(logging.Handler):
    """Writes each record's message as a line to `stream`, batched per event-loop iteration."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self.stream = stream
        self._lines: list[str] = []
        self._pending = threading.Lock()  # servers on other threads (other loops) may share the handler

    def emit(self, record: logging.LogRecord) -> None:
        self.write_line(record.getMessage())

    def write_line(self, line: str) -> None:
        """Queue `line` (a message without its newline) for the end of this loop iteration."""
        with self._pending:
            self._lines.append(line)
            if len(self._lines) > 1:
                return  # a flush is already scheduled
        try:
            asyncio.get_running_loop().call_soon(self.flush)
        except RuntimeError:  # not on an event loop
            self.flush()

    def flush(self) -> None:
        with self._pending:
            lines, self._lines = self._lines, []
        if not lines:
            return
        try:
            self.stream.write("\n".join(lines) + "\n")
            self.stream.flush()
        except (ValueError, OSError):  # stderr is closed: nothing to write to
            pass


def direct_writer(logger: logging.Logger) -> AccessLines | None:
    """The AccessLines handler `logger` writes to, when it is its only destination (no filters, no
    propagation): a caller may then hand it the line without making a LogRecord."""
    handlers = logger.handlers
    if len(handlers) == 1 and not logger.filters and not logger.propagate:
        handler = handlers[0]
        if type(handler) is AccessLines and not handler.filters:
            return handler
    return None


def configure_logging(debug: bool = False) -> None:
    """Access and error logs as lines on stderr (access lines are JSON documents)."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if not logger.handlers:
            if name == "satchel.serving.access":
                handler: logging.Handler = AccessLines(sys.stderr)
            else:
                handler = logging.StreamHandler(sys.stderr)
                handler.setFormatter(logging.Formatter("%(message)s"))
            logger.addHandler(handler)
        logger.setLevel(logging.DEBUG if debug else logging.INFO)
        logger.propagate = False
