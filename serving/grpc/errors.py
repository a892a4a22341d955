"""Failures as gRPC statuses: the problem REST would answer (serving/problems.py decides the kind and logs
the details once), carried as a status code, a message for people and trailing metadata."""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc

from ..problems import RETRY_AFTER_SECONDS, HttpProblem, from_call_error

#: Trailing metadata naming the machine-readable kind (the `kind` of REST's problem documents).
KIND_KEY = "x-satchel-error-kind"
#: Trailing metadata naming the parameter at fault, when there is one.
PARAMETER_KEY = "x-satchel-parameter"
RETRY_AFTER_KEY = "retry-after"

CODES: dict[str, grpc.StatusCode] = {
    "invalid-argument": grpc.StatusCode.INVALID_ARGUMENT,
    "malformed-body": grpc.StatusCode.INVALID_ARGUMENT,
    "fingerprint-mismatch": grpc.StatusCode.INVALID_ARGUMENT,
    "unknown-function": grpc.StatusCode.NOT_FOUND,
    "unknown-job": grpc.StatusCode.NOT_FOUND,
    "overloaded": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "timeout": grpc.StatusCode.DEADLINE_EXCEEDED,
    "worker-crashed": grpc.StatusCode.UNAVAILABLE,
    "unavailable": grpc.StatusCode.UNAVAILABLE,
    "draining": grpc.StatusCode.UNAVAILABLE,
    "remote-error": grpc.StatusCode.UNKNOWN,
    "bad-result": grpc.StatusCode.INTERNAL,
    "internal": grpc.StatusCode.INTERNAL,
    "unauthorized": grpc.StatusCode.UNAUTHENTICATED,
}


@dataclass
class GrpcError(Exception):
    """A status to end an RPC with."""

    code: grpc.StatusCode
    kind: str
    message: str
    trailers: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def metadata(self) -> tuple[tuple[str, str], ...]:
        return ((KIND_KEY, self.kind), *self.trailers)


def from_problem(p: HttpProblem) -> GrpcError:
    """The status of a problem document: its kind's code, its detail (the exception type and text for
    an error the function raised; its traceback only when the problem carries one, in debug mode)."""
    message = p.detail
    if p.kind == "remote-error":
        message = f"{p.extra.get('remote_type', 'Exception')}: {p.detail}"
    if p.extra.get("traceback"):
        message += "\n" + str(p.extra["traceback"])
    trailers: list[tuple[str, str]] = []
    if p.extra.get("parameter"):
        trailers.append((PARAMETER_KEY, str(p.extra["parameter"])))
    if p.kind == "overloaded":
        trailers.append((RETRY_AFTER_KEY, p.headers.get("Retry-After", str(RETRY_AFTER_SECONDS))))
    return GrpcError(CODES.get(p.kind, grpc.StatusCode.UNKNOWN), p.kind, message, trailers)


def from_exception(exc: BaseException, function: str, *, debug: bool, request_id: str | None) -> GrpcError:
    """The status of a failed call (logged as REST logs it)."""
    if isinstance(exc, GrpcError):
        return exc
    if isinstance(exc, HttpProblem):
        return from_problem(exc)
    return from_problem(from_call_error(exc, function, debug=debug, request_id=request_id))
