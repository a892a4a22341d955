"""Async jobs over REST: POST /v1/functions/{name}/jobs, GET and DELETE /v1/jobs/{id}.

A job document: `{"id", "function", "state", "created_at", "started_at", "finished_at", "request_id"}`
(times in RFC 3339, UTC), plus `"result"` (the JSON form `:invoke` answers) once it succeeded, or
`"error"` (the problem document `:invoke` would have answered, with its `kind`) once it failed.
"""

from __future__ import annotations

import datetime
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ..hosting import Hosting
from ..jobs import Job, JobState
from ..problems import HttpProblem, from_call_error, problem_response
from .invoke import call_arguments, result_json, unknown_function

SUBMIT_PATH = "/v1/functions/{name}/jobs"
JOB_PATH = "/v1/jobs/{id}"


def make_submit(hosting: Hosting):
    async def submit(request: Request) -> Response:
        name = request.path_params["name"]
        request_id = request.scope.get("state", {}).get("request_id")
        hosted = hosting.functions.get(name)
        if hosted is None:
            return problem_response(unknown_function(name, hosting.functions), request_id)
        try:
            args, kwargs = call_arguments(hosted, await request.body(), request.headers)
            job = await hosting.jobs.submit(hosted, args, kwargs, request_id=request_id)
        except HttpProblem as p:
            hosting.metrics.of(name).error(p.kind)
            return problem_response(p, request_id)
        except Exception as exc:
            p = from_call_error(exc, name, debug=hosting.debug, request_id=request_id)
            hosting.metrics.of(name).error(p.kind)
            return problem_response(p, request_id)
        return _job_response(job, hosting, status=202, headers={"Location": JOB_PATH.format(id=job.id)})

    return submit


def make_status(hosting: Hosting):
    async def status(request: Request) -> Response:
        job_id = request.path_params["id"]
        job = hosting.jobs.get(job_id)
        if job is None:
            return _unknown_job(job_id, request)
        return _job_response(job, hosting)

    return status


def make_cancel(hosting: Hosting):
    async def cancel(request: Request) -> Response:
        job_id = request.path_params["id"]
        job = await hosting.jobs.cancel(job_id)
        if job is None:
            return _unknown_job(job_id, request)
        return _job_response(job, hosting)

    return cancel


JOB_METHODS = ("GET", "HEAD", "DELETE", "OPTIONS")


def make_job(hosting: Hosting):
    """GET (and HEAD), DELETE and OPTIONS of /v1/jobs/{id}: one route, so every method is in `Allow`."""
    status, cancel = make_status(hosting), make_cancel(hosting)

    async def job(request: Request) -> Response:
        if request.method == "DELETE":
            return await cancel(request)
        if request.method == "OPTIONS":
            return Response(status_code=204, headers={"Allow": ", ".join(JOB_METHODS)})
        return await status(request)

    return job


def job_document(job: Job, hosting: Hosting) -> dict[str, Any]:
    """The JSON document of a job (see the module doc)."""
    doc: dict[str, Any] = {
        "id": job.id,
        "function": job.function,
        "state": job.state.value,
        "created_at": _time(job.created_at),
        "started_at": _time(job.started_at),
        "finished_at": _time(job.finished_at),
        "request_id": job.request_id,
    }
    if job.state is JobState.SUCCEEDED and job.hosted is not None:
        try:
            doc["result"] = result_json(job.hosted, job.result)
        except HttpProblem as p:
            doc["state"] = JobState.FAILED.value
            doc["error"] = _problem_document(p)
    elif job.state is JobState.FAILED and job.error is not None:
        doc["error"] = _error_document(job, hosting)
    return doc


def _error_document(job: Job, hosting: Hosting) -> dict[str, Any]:
    cached = getattr(job, "_problem", None)  # built (and its traceback logged) once per job
    if cached is None:
        assert job.error is not None
        p = from_call_error(job.error, job.function, debug=hosting.debug, request_id=job.request_id)
        cached = _problem_document(p)
        job._problem = cached  # type: ignore[attr-defined]
    return cached


def _problem_document(p: HttpProblem) -> dict[str, Any]:
    return {"kind": p.kind, "title": p.title, "status": p.status, "detail": p.detail, **p.extra}


def _job_response(
    job: Job, hosting: Hosting, *, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    body = json.dumps(job_document(job, hosting), allow_nan=False)
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def _unknown_job(job_id: str, request: Request) -> Response:
    p = HttpProblem(
        404,
        "unknown-job",
        "Unknown job",
        f"no job with id {job_id!r} (it never existed, or finished longer ago than results are kept)",
        job=job_id,
    )
    return problem_response(p, request.scope.get("state", {}).get("request_id"))


def _time(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).isoformat(timespec="milliseconds")
