"""The `satchel.v1.Functions` servicer over a Hosting: Invoke, Submit/GetJob/Cancel, Describe, List."""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING, Any

import grpc

from satchel.bindings.proto.satchel.v1 import functions_pb2 as pb
from satchel.bindings.proto.satchel.v1 import functions_pb2_grpc as pb_grpc
from satchel.core.errors import ArgumentError

from ..hosted import HostedFunction
from ..hosting import Hosting
from ..jobs import Job, JobState
from ..problems import RETRY_AFTER_SECONDS
from ..tracing import call_spans, new_request_id, start_server_span
from .errors import RETRY_AFTER_KEY, GrpcError, from_exception
from .payload import decode_arguments

if TYPE_CHECKING:
    from ..drain import Drain

REQUEST_ID_KEY = "x-request-id"

_STATES = {
    JobState.QUEUED: pb.Job.QUEUED,
    JobState.RUNNING: pb.Job.RUNNING,
    JobState.SUCCEEDED: pb.Job.SUCCEEDED,
    JobState.FAILED: pb.Job.FAILED,
    JobState.CANCELLED: pb.Job.CANCELLED,
}


class FunctionsService(pb_grpc.FunctionsServicer):
    """Each RPC looks its function up by name (a promoted deployment takes effect at the next call),
    echoes (or makes) the `x-request-id` metadata in its initial metadata and ends a failure with the
    status the .proto documents, plus trailing metadata `x-satchel-error-kind`."""

    def __init__(self, hosting: Hosting, drain: Drain | None = None) -> None:
        self.hosting = hosting
        #: The REST app's drain state (serving/drain.py), shared: while it drains, new calls are refused
        #: (UNAVAILABLE, kind "draining"), and the calls in flight count among the ones it waits for.
        self.drain = drain

    # -- calls --------------------------------------------------------------------------------------

    async def Invoke(self, request: pb.InvokeRequest, context: grpc.aio.ServicerContext) -> pb.InvokeResponse:
        request_id = await _request_id(context)
        name = request.function
        metrics = self.hosting.metrics
        hosted = self.hosting.get(name)
        if hosted is None:
            return await self._fail(context, self._unknown_function(name), name, request_id, count=False)
        if self.drain is not None and self.drain.draining:
            return await self._fail(context, _draining(), name, request_id)
        started = time.perf_counter()
        counted = metrics.of(name)
        counted.in_flight.inc()
        if self.drain is not None:
            self.drain.in_flight += 1  # one event loop (the app's): no lock needed
        code = grpc.StatusCode.OK
        try:
            with start_server_span("grpc Invoke", context.invocation_metadata(), attributes=_attrs(name)):
                try:
                    args, kwargs = hosted.split(
                        decode_arguments(hosted, request.payload, request.request_fingerprint)
                    )
                    remaining = context.time_remaining()
                    if remaining is not None:
                        kwargs["timeout"] = max(remaining, 0.001)
                    with call_spans(name):
                        result = await hosted.fn.acall(*args, **kwargs)
                    return pb.InvokeResponse(
                        payload=_encode_result(hosted, result),
                        response_fingerprint=hosted.response_fingerprint,
                    )
                except asyncio.CancelledError:  # the client went away, or grpc enforced the deadline
                    expired = (context.time_remaining() or 1.0) <= 0
                    code = grpc.StatusCode.DEADLINE_EXCEEDED if expired else grpc.StatusCode.CANCELLED
                    raise
                except Exception as exc:
                    error = from_exception(exc, name, debug=self.hosting.debug, request_id=request_id)
                    code = error.code
                    return await self._fail(context, error, name, request_id)
        finally:
            if self.drain is not None:
                self.drain.in_flight -= 1
            counted.in_flight.dec()
            counted.grpc_request(code.name)
            counted.latency.observe(time.perf_counter() - started)

    async def Submit(self, request: pb.InvokeRequest, context: grpc.aio.ServicerContext) -> pb.Job:
        request_id = await _request_id(context)
        name = request.function
        hosted = self.hosting.get(name)
        if hosted is None:
            return await self._fail(context, self._unknown_function(name), name, request_id, count=False)
        if self.drain is not None and self.drain.draining:
            return await self._fail(context, _draining(), name, request_id)
        try:
            with start_server_span("grpc Submit", context.invocation_metadata(), attributes=_attrs(name)):
                args, kwargs = hosted.split(
                    decode_arguments(hosted, request.payload, request.request_fingerprint)
                )
                job = await self.hosting.jobs.submit(hosted, args, kwargs, request_id=request_id)
        except Exception as exc:
            error = from_exception(exc, name, debug=self.hosting.debug, request_id=request_id)
            self.hosting.metrics.of(name).grpc_request(error.code.name)
            return await self._fail(context, error, name, request_id)
        self.hosting.metrics.of(name).grpc_request(grpc.StatusCode.OK.name)
        return self._job(job)

    # -- jobs ---------------------------------------------------------------------------------------

    async def GetJob(self, request: pb.GetJobRequest, context: grpc.aio.ServicerContext) -> pb.Job:
        request_id = await _request_id(context)
        job = self.hosting.jobs.get(request.id)
        if job is None:
            return await self._fail(context, _unknown_job(request.id), "", request_id, count=False)
        return self._job(job)

    async def Cancel(self, request: pb.CancelRequest, context: grpc.aio.ServicerContext) -> pb.Job:
        request_id = await _request_id(context)
        job = await self.hosting.jobs.cancel(request.id)
        if job is None:
            return await self._fail(context, _unknown_job(request.id), "", request_id, count=False)
        return self._job(job)

    # -- descriptions -------------------------------------------------------------------------------

    async def Describe(
        self, request: pb.DescribeRequest, context: grpc.aio.ServicerContext
    ) -> pb.FunctionDescription:
        request_id = await _request_id(context)
        hosted = self.hosting.get(request.function)
        if hosted is None:
            error = self._unknown_function(request.function)
            return await self._fail(context, error, request.function, request_id, count=False)
        return describe(hosted)

    async def List(self, request: pb.ListRequest, context: grpc.aio.ServicerContext) -> pb.ListResponse:
        await _request_id(context)
        hosted = sorted(list(self.hosting.functions.items()), key=lambda item: item[0])
        return pb.ListResponse(functions=[describe(h) for _, h in hosted])

    # -- helpers ------------------------------------------------------------------------------------

    def _unknown_function(self, name: str) -> GrpcError:
        known = ", ".join(sorted(self.hosting.functions)) or "none"
        return GrpcError(
            grpc.StatusCode.NOT_FOUND, "unknown-function", f"no function named {name!r} (hosted: {known})"
        )

    async def _fail(
        self,
        context: grpc.aio.ServicerContext,
        error: GrpcError,
        function: str,
        request_id: str,
        *,
        count: bool = True,
    ) -> Any:
        if count and function:
            self.hosting.metrics.of(function).error(error.kind)
        await context.abort(error.code, error.message, trailing_metadata=error.metadata())

    def _job(self, job: Job) -> pb.Job:
        out = pb.Job(
            id=job.id,
            function=job.function,
            state=_STATES[job.state],
            created_at=job.created_at,
            finished_at=job.finished_at or 0.0,
        )
        hosted = job.hosted
        if job.state is JobState.SUCCEEDED and hosted is not None:
            try:
                out.payload = _encode_result(hosted, job.result)
                out.response_fingerprint = hosted.response_fingerprint
            except GrpcError as error:
                out.state = pb.Job.FAILED
                out.error.CopyFrom(pb.Error(kind=error.kind, message=error.message))
        elif job.state is JobState.FAILED and job.error is not None:
            out.error.CopyFrom(self._job_error(job))
        return out

    def _job_error(self, job: Job) -> pb.Error:
        cached = getattr(job, "_grpc_error", None)  # built (and its traceback logged) once per job
        if cached is None:
            assert job.error is not None
            error = from_exception(
                job.error, job.function, debug=self.hosting.debug, request_id=job.request_id
            )
            cached = pb.Error(kind=error.kind, message=error.message)
            job._grpc_error = cached  # type: ignore[attr-defined]
        return cached


def describe(hosted: HostedFunction) -> pb.FunctionDescription:
    """A hosted function's description: its Avro schemas (JSON), their fingerprints, doc and bundle."""
    return pb.FunctionDescription(
        name=hosted.name,
        doc=hosted.doc,
        request_schema=json.dumps(hosted.request_schema),
        response_schema=json.dumps(hosted.response_schema),
        request_fingerprint=hosted.request_fingerprint,
        response_fingerprint=hosted.response_fingerprint,
        bundle=str(hosted.fn.ref),
    )


def _encode_result(hosted: HostedFunction, result: Any) -> bytes:
    try:
        return hosted.response_codec.encode(result)
    except ArgumentError as exc:
        raise GrpcError(
            grpc.StatusCode.INTERNAL,
            "bad-result",
            f"the result of {hosted.name!r} does not fit its response schema: {exc}",
        ) from None


def _draining() -> GrpcError:
    return GrpcError(
        grpc.StatusCode.UNAVAILABLE,
        "draining",
        "this server is draining its in-flight calls before it stops; retry (another instance)",
        [(RETRY_AFTER_KEY, str(RETRY_AFTER_SECONDS))],
    )


def _unknown_job(job_id: str) -> GrpcError:
    return GrpcError(
        grpc.StatusCode.NOT_FOUND,
        "unknown-job",
        f"no job with id {job_id!r} (it never existed, or finished longer ago than results are kept)",
    )


async def _request_id(context: grpc.aio.ServicerContext) -> str:
    """The caller's `x-request-id` (or a new one), sent back in the initial metadata."""
    request_id = ""
    for key, value in context.invocation_metadata() or ():
        if key == REQUEST_ID_KEY and isinstance(value, str):
            request_id = value[:200]
            break
    request_id = request_id or new_request_id()
    await context.send_initial_metadata(((REQUEST_ID_KEY, request_id),))
    return request_id


def _attrs(function: str) -> dict[str, str]:
    return {"satchel.function": function, "rpc.system": "grpc"}
