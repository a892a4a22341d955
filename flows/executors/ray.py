"""The Ray executor: each task attempt is one Ray task, sized by the step's `@resources`.

A closure does not travel to a Ray worker, so a job carries a portable description of its attempt
(`Job.task`: the flow's file and class, the run, the store, the TaskSpec) and the Ray task runs it with
`task_runner.run_task_description`, the same `execute_task` path a forked local task runs. Artifacts, logs
and attempt records go through the run's store (never Ray's object store), so resume and the client
read a Ray run as they read a local one. The Ray task returns only the attempt's exit status.

An `@environment` step's attempt is its environment's interpreter, started by the Ray task as a
subprocess (it dies with the Ray worker, so a cancelled task leaves nothing behind); the interpreter
path is the one materialized by the driver, so on a multi-node cluster the nodes need the driver's
`SATCHEL_HOME` (a shared filesystem), as they need the flow's file at the path the driver has (tasks
import it from there). `@timeout` force-cancels the Ray task (which kills its worker);
`@retry` stays the driver's (Ray's own retries are off).
"""

from __future__ import annotations

import ctypes
import math
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any

from satchel.core.extras import needs_extra
from satchel.flows.errors import FlowError
from satchel.flows.executors.base import Executor, Finished, Job

with needs_extra("ray", "the ray executor"):
    import ray
    from ray.exceptions import RayError

_MB = 1024 * 1024


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: SIGKILL this process when the Ray worker that started it dies (a force-cancel)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def run_attempt(task: dict[str, Any], command: list[str] | None) -> int:
    """In a Ray worker: run one task attempt from its description; its exit status. With `command`
    (an `@environment` step: interpreter, flags, launcher, job file), the description is written to a
    job file on this node and the command runs with it in place of the driver's."""
    if command is None:
        from satchel.flows.task_runner import run_task_description

        return run_task_description(task)
    fd, job_file = tempfile.mkstemp(prefix="satchel-ray-job-", suffix=".pickle")
    try:
        with os.fdopen(fd, "wb") as fh:
            pickle.dump(task, fh, protocol=4)
        return subprocess.call([*command[:-1], job_file], preexec_fn=_die_with_parent)  # noqa: PLW1509
    finally:
        os.unlink(job_file)


def _options(job: Job) -> dict[str, Any]:
    """The Ray task options of a job: its resources; Ray retries an attempt only when the worker under it
    died (once: a worker killed by a neighbour's force-cancel, a lost node), never a failure of the task's
    own (`@retry` is Satchel's)."""
    step = getattr(job.key, "step", job.key)
    if job.cpu > 1 and job.cpu != math.floor(job.cpu):
        raise FlowError(f"step {step!r}: Ray needs @resources(cpu=) above 1 to be whole, got {job.cpu:g}")
    options: dict[str, Any] = {
        "num_cpus": job.cpu,
        "num_gpus": job.gpu,
        "max_retries": 1,
        "retry_exceptions": False,
        "name": f"satchel-flow:{step}/{getattr(job.key, 'task_id', '')}",
    }
    if job.memory_mb:
        options["memory"] = int(job.memory_mb * _MB)
    return options


class RayExecutor(Executor):
    """Runs each job as a Ray task on the cluster at `address` (default: `RAY_ADDRESS`, else a local
    Ray started here and stopped at shutdown; a Ray this process already initialized is used as is).
    At most `max_workers` cpu units at once (default: the cluster's CPUs), so Ray queues little and a
    task's timeout counts from about when it starts."""

    portable = True

    def __init__(self, max_workers: int | None = None, address: str | None = None) -> None:
        if max_workers is not None and max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, got {max_workers}")
        self._started_ray = False
        if not ray.is_initialized():
            ray.init(
                address=address or os.environ.get("RAY_ADDRESS") or "local",
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
            )
            self._started_ray = True
        self.max_workers = max_workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        self._remote = ray.remote(run_attempt)
        self._tasks: dict[Any, tuple[Job, float | None, float]] = {}  # ObjectRef -> job, deadline, cpu
        self._used = 0.0

    def can_accept(self, cpu: float) -> bool:
        return self._used <= 1e-9 or self._used + cpu <= self.max_workers + 1e-9

    @property
    def running(self) -> int:
        return len(self._tasks)

    def submit(self, job: Job) -> None:
        if job.task is None:
            raise ValueError(f"job {job.key!r} has no portable task description (Job.task)")
        ref = self._remote.options(**_options(job)).remote(job.task, job.command)
        deadline = time.monotonic() + job.timeout if job.timeout else None
        self._used += job.cpu
        self._tasks[ref] = (job, deadline, job.cpu)

    def wait(self) -> list[Finished]:
        if not self._tasks:
            return []
        while True:
            deadlines = [d for (_, d, _) in self._tasks.values() if d is not None]
            timeout = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
            ready, _ = ray.wait(list(self._tasks), num_returns=1, timeout=timeout)
            if ready:  # and whatever else has finished meanwhile
                ready, _ = ray.wait(list(self._tasks), num_returns=len(self._tasks), timeout=0)
            done = [Finished(self._release(ref), self._exit_status(ref)) for ref in ready]
            now = time.monotonic()
            for ref, (_, deadline, _) in list(self._tasks.items()):
                if deadline is not None and now >= deadline:
                    ray.cancel(ref, force=True)
                    done.append(Finished(self._release(ref), None, timed_out=True))
            if done:
                return done

    @staticmethod
    def _exit_status(ref: Any) -> int | None:
        """The attempt's exit status; None when its worker died (crashed, killed, cancelled)."""
        try:
            return int(ray.get(ref))
        except RayError:
            return None

    def _release(self, ref: Any) -> Job:
        job, _, cpu = self._tasks.pop(ref)
        self._used -= cpu
        return job

    def shutdown(self) -> None:
        for ref in list(self._tasks):
            ray.cancel(ref, force=True)
            self._release(ref)
        if self._started_ray:
            ray.shutdown()
            self._started_ray = False
