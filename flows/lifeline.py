"""A task's lifeline to its driver: the driver holds the write end of a pipe, each task process the read
end. A thread in the task blocks reading it; when the driver dies (SIGKILL, out of memory) the kernel
closes its end, the read returns, and the task kills its own process group: itself and whatever it
started. A driver that dies leaves no task behind; its run is then `crashed` (flows/status.py)."""

from __future__ import annotations

import os
import signal
import threading

ENV = "SATCHEL_FLOW_LIFELINE"  # a fresh task interpreter (an @environment step) finds the read end here


class Lifeline:
    """The driver's side: one pipe for all of a run's local tasks."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()

    def close(self) -> None:
        for fd in (self.read_fd, self.write_fd):
            try:
                os.close(fd)
            except OSError:
                pass


def hold(read_fd: int, write_fd: int | None = None) -> None:
    """In a task process that leads its own process group: die with the driver. `write_fd`: the driver's
    end, inherited by a fork, closed here first (else this process would keep its own lifeline alive)."""
    if write_fd is not None:
        os.close(write_fd)

    def watch() -> None:
        try:
            while os.read(read_fd, 1):
                pass
        except OSError:
            pass
        os.killpg(0, signal.SIGKILL)  # the driver is gone: nobody will read this task's outcome

    threading.Thread(target=watch, name="satchel-lifeline", daemon=True).start()


def hold_from_environment() -> None:
    """`hold` the read end named by $SATCHEL_FLOW_LIFELINE, if this task was started with one."""
    fd = os.environ.pop(ENV, None)
    if fd is not None and fd.isdigit():
        hold(int(fd))
