"""Bearer-token auth for the gRPC server: every RPC but the health service's needs metadata
`authorization: Bearer <token>` (compared in constant time), else UNAUTHENTICATED."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

import grpc

from .errors import KIND_KEY

OPEN_PREFIXES = ("/grpc.health.v1.Health/",)


class BearerAuthInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, token: str, open_prefixes: tuple[str, ...] = OPEN_PREFIXES) -> None:
        if not token:
            raise ValueError("an empty token would let anyone in")
        self.expected = ("Bearer " + token).encode()
        self.open_prefixes = open_prefixes

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None or details.method.startswith(self.open_prefixes):
            return handler
        given = b""
        for key, value in details.invocation_metadata or ():
            if key == "authorization":
                given = value.encode("latin-1", "replace") if isinstance(value, str) else value
                break
        if hmac.compare_digest(given, self.expected):
            return handler
        return _refusal(handler)


async def _deny(request_or_iterator: object, context: grpc.aio.ServicerContext) -> None:
    await context.abort(
        grpc.StatusCode.UNAUTHENTICATED,
        "this server needs metadata 'authorization: Bearer <token>'",
        trailing_metadata=((KIND_KEY, "unauthorized"),),
    )


async def _deny_stream(request_or_iterator: object, context: grpc.aio.ServicerContext):
    await _deny(request_or_iterator, context)
    yield  # pragma: no cover - never reached; makes this an async generator


def _refusal(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """A handler of the same shape as `handler` that refuses the call."""
    common = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(_deny_stream, **common)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(_deny, **common)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(_deny_stream, **common)
    return grpc.unary_unary_rpc_method_handler(_deny, **common)
