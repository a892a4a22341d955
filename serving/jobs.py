"""Async jobs: calls submitted now, polled for later (`POST /v1/functions/{name}/jobs`, gRPC Submit).

One `Jobs` per Hosting (`hosting.jobs`). Each job runs its call as an asyncio task on the server's event
loop (through `LoadedFunction.acall`, so it queues for a worker like any call); cancelling the job cancels
the task, which cancels the call in its worker. Finished jobs are kept `keep_seconds`, then forgotten.
"""

from __future__ import annotations

import asyncio
import enum
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from satchel.core.errors import FunctionClosed, Overloaded
from satchel.runtime.proxy import call_started

from .options import DEFAULT_JOB_TTL

if TYPE_CHECKING:
    from .hosted import HostedFunction


class JobState(str, enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


@dataclass
class Job:
    id: str
    function: str
    state: JobState
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    result: Any = None
    error: BaseException | None = None
    request_id: str | None = None
    #: The hosted function the job called (its codecs render the result, even after a redeployment).
    hosted: HostedFunction | None = field(default=None, repr=False, compare=False)
    task: asyncio.Task | None = field(default=None, repr=False, compare=False)


class Jobs:
    """The jobs of one server process. `clock` (wall-clock seconds) is injectable for expiry tests."""

    def __init__(
        self,
        *,
        keep_seconds: float = DEFAULT_JOB_TTL,
        max_jobs: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not keep_seconds >= 0:
            raise ValueError(f"keep_seconds must be 0 or more, not {keep_seconds!r}")
        if max_jobs < 1:
            raise ValueError(f"max_jobs must be at least 1, not {max_jobs!r}")
        self.keep_seconds = float(keep_seconds)
        self.max_jobs = max_jobs
        self.clock = clock
        self._jobs: dict[str, Job] = {}
        self._unfinished = 0
        self._closed = False

    # -- submitting ---------------------------------------------------------------------------------

    async def submit(
        self, hosted: HostedFunction, args: tuple, kwargs: dict, *, request_id: str | None = None
    ) -> Job:
        """Start `hosted.fn(*args, **kwargs)` as a job; Overloaded when `max_jobs` are unfinished,
        FunctionClosed once closed.

        Must run on the server's event loop (the job's task runs there)."""
        self._sweep()
        if self._closed:
            raise FunctionClosed("the server is shutting down: it takes no new jobs")
        if self._unfinished >= self.max_jobs:
            raise Overloaded(
                f"{self._unfinished} jobs are unfinished (max_jobs={self.max_jobs}); "
                "poll or cancel some, or submit again later"
            )
        job = Job(
            id=uuid.uuid4().hex,
            function=hosted.name,
            state=JobState.QUEUED,
            created_at=self.clock(),
            request_id=request_id,
            hosted=hosted,
        )
        self._jobs[job.id] = job
        self._unfinished += 1
        task = asyncio.get_running_loop().create_task(
            self._run(job, hosted, args, kwargs), name=f"satchel-job-{job.id}"
        )
        # a task cancelled before its first step never enters _run's handlers
        task.add_done_callback(lambda t: t.cancelled() and self._finish(job, JobState.CANCELLED))
        job.task = task
        return job

    async def _run(self, job: Job, hosted: HostedFunction, args: tuple, kwargs: dict) -> None:
        call_started.set(lambda: self._started(job))  # this task's own context: queued -> running
        try:
            result = await hosted.fn.acall(*args, **kwargs)
        except asyncio.CancelledError:
            self._finish(job, JobState.CANCELLED)
            raise
        except Exception as exc:
            job.error = exc
            self._finish(job, JobState.FAILED)
        else:
            job.result = result
            self._finish(job, JobState.SUCCEEDED)

    def _started(self, job: Job) -> None:
        if job.state is JobState.QUEUED:
            job.state = JobState.RUNNING
            job.started_at = self.clock()

    def _finish(self, job: Job, state: JobState) -> None:
        if job.state.finished:
            return
        job.state = state
        job.finished_at = self.clock()
        self._unfinished -= 1

    # -- looking and cancelling ---------------------------------------------------------------------

    def get(self, job_id: str) -> Job | None:
        """The job, or None if there is none by that id (or it finished more than keep_seconds ago)."""
        job = self._jobs.get(job_id)
        if job is not None and self._expired(job, self.clock()):
            del self._jobs[job_id]
            return None
        return job

    async def cancel(self, job_id: str) -> Job | None:
        """Cancel the job (its call is interrupted in its worker) and return it; a finished job is
        returned as it is. None if there is no such job."""
        job = self.get(job_id)
        if job is None:
            return None
        task = job.task
        if task is not None and not task.done():
            task.cancel()
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                if not task.done():  # this coroutine itself was cancelled, not the job's task
                    raise
            except Exception:
                pass
        return job

    def __len__(self) -> int:
        return len(self._jobs)

    @property
    def unfinished(self) -> int:
        """How many jobs are queued or running."""
        return self._unfinished

    def _expired(self, job: Job, now: float) -> bool:
        return job.finished_at is not None and now - job.finished_at > self.keep_seconds

    def _sweep(self) -> None:
        now = self.clock()
        for job_id in [j.id for j in self._jobs.values() if self._expired(j, now)]:
            del self._jobs[job_id]

    # -- lifecycle ----------------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Cancel every unfinished job and wait for their tasks (their calls are cancelled in the workers)."""
        self._closed = True
        tasks = [j.task for j in self._jobs.values() if j.task is not None and not j.task.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def close(self) -> None:
        """Refuse new jobs and cancel the unfinished ones (their tasks end when their loop next runs)."""
        self._closed = True
        for job in self._jobs.values():
            if job.task is not None and not job.task.done():
                try:
                    job.task.cancel()
                except RuntimeError:  # its loop is closed already
                    pass
                self._finish(job, JobState.CANCELLED)
