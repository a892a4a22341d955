"""The local executor: a bounded pool of processes, each task attempt forked from the warm parent
(which has already imported the flow and everything it imports), so a task starts in milliseconds;
a job with a `command` (an `@environment` step) is started as that fresh process instead."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import time
from multiprocessing.connection import wait as wait_any

from satchel.flows import lifeline
from satchel.flows.executors.base import Executor, Finished, Job

_FORK = multiprocessing.get_context("fork")


def _child(job: Job, read_fd: int, write_fd: int) -> None:
    os.setpgid(0, 0)  # its own process group, so whatever the task starts goes with it (see _kill_group)
    lifeline.hold(read_fd, write_fd)  # and it all goes if the driver dies
    os._exit(job.target())


def _kill_group(pid: int | None) -> None:
    """Kill what is left of a task's process group (processes the task started and left behind, or all of
    it on a timeout). Called before the task process is reaped, so its id cannot have been reused."""
    if pid is None:
        return
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class _CommandProcess:
    """A job's command as a child process, with the `Process` methods the pool uses. Its sentinel is the
    read end of a pipe whose write end only the child holds, so it becomes readable when the child exits."""

    def __init__(self, command: list[str], lifeline_fd: int) -> None:
        read, write = os.pipe()
        try:
            self._popen = subprocess.Popen(
                command,
                pass_fds=(write, lifeline_fd),
                close_fds=True,
                start_new_session=True,
                env={**os.environ, lifeline.ENV: str(lifeline_fd)},
            )
        except BaseException:
            os.close(read)
            raise
        finally:
            os.close(write)
        self.sentinel = read

    @property
    def pid(self) -> int:
        return self._popen.pid

    @property
    def exitcode(self) -> int | None:
        return self._popen.returncode

    def kill(self) -> None:
        if self._popen.poll() is None:
            self._popen.kill()

    def join(self) -> None:
        self._popen.wait()
        if self.sentinel >= 0:
            os.close(self.sentinel)
            self.sentinel = -1


class LocalExecutor(Executor):
    """Up to `max_workers` cpu units of tasks at once (a task counts its `@resources(cpu=)`, capped at
    the pool size); a task past its timeout is killed."""

    def __init__(self, max_workers: int | None = None) -> None:
        if max_workers is not None and max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, got {max_workers}")
        self.max_workers = max_workers or os.cpu_count() or 1
        self._procs: dict[int, tuple[Job, multiprocessing.process.BaseProcess, float | None, float]] = {}
        self._used = 0.0
        self._lifeline: lifeline.Lifeline | None = None

    def _cost(self, cpu: float) -> float:
        return min(max(cpu, 0), self.max_workers)

    def can_accept(self, cpu: float) -> bool:
        return self._used <= 1e-9 or self._used + self._cost(cpu) <= self.max_workers + 1e-9

    @property
    def running(self) -> int:
        return len(self._procs)

    def submit(self, job: Job) -> None:
        if self._lifeline is None:
            self._lifeline = lifeline.Lifeline()
        line = self._lifeline
        if job.command is not None:
            proc = _CommandProcess(job.command, line.read_fd)
        else:
            proc = _FORK.Process(target=_child, args=(job, line.read_fd, line.write_fd), daemon=False)
            proc.start()
        deadline = time.monotonic() + job.timeout if job.timeout else None
        cost = self._cost(job.cpu)
        self._used += cost
        self._procs[proc.sentinel] = (job, proc, deadline, cost)

    def wait(self) -> list[Finished]:
        if not self._procs:
            return []
        while True:
            deadlines = [d for (_, _, d, _) in self._procs.values() if d is not None]
            timeout = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
            ready = wait_any(list(self._procs), timeout)
            done: list[Finished] = []
            for sentinel in ready:
                job, proc, _, _ = self._release(sentinel)
                _kill_group(proc.pid)
                proc.join()
                done.append(Finished(job, proc.exitcode))
            now = time.monotonic()
            for sentinel, (job, proc, deadline, _) in list(self._procs.items()):
                if deadline is not None and now >= deadline:
                    _kill_group(proc.pid)
                    proc.kill()
                    proc.join()
                    self._release(sentinel)
                    done.append(Finished(job, None, timed_out=True))
            if done:
                return done

    def _release(self, sentinel: int) -> tuple:
        entry = self._procs.pop(sentinel)
        self._used -= entry[3]
        return entry

    def shutdown(self) -> None:
        for sentinel, (_, proc, _, _) in list(self._procs.items()):
            _kill_group(proc.pid)
            proc.kill()
            proc.join()
            self._release(sentinel)
        if self._lifeline is not None:
            self._lifeline.close()
            self._lifeline = None
