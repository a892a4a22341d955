"""Build, start and stop the grpc.aio server of a Hosting: the Functions service, the standard health service
(SERVING overall and per function name; NOT_SERVING once draining) and server reflection."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from satchel.bindings.proto.satchel.v1 import functions_pb2 as pb
from satchel.bindings.proto.satchel.v1 import functions_pb2_grpc as pb_grpc

from ..hosting import Hosting
from ..options import DEFAULT_DRAIN_TIMEOUT, DEFAULT_HOST
from .auth import BearerAuthInterceptor
from .service import FunctionsService

if TYPE_CHECKING:
    from ..drain import Drain

log = logging.getLogger("satchel.serving.grpc")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Functions"].full_name  # "satchel.v1.Functions"
HEALTH_SERVICE_NAME = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name


class FunctionHealth(HealthServicer):
    """Health by service name: "" (the server), "satchel.v1.Functions" and each hosted function's name,
    kept in step with `hosting.functions` (a deployment may add one) at every check."""

    def __init__(self, hosting: Hosting, drain: Drain | None = None) -> None:
        super().__init__()
        self.hosting = hosting
        self.drain = drain
        self._functions: set[str] = set()

    async def sync(self) -> None:
        names = set(self.hosting.functions)
        for name in names - self._functions:
            await self.set(name, health_pb2.HealthCheckResponse.SERVING)
        for name in self._functions - names:
            self._server_status.pop(name, None)
        self._functions = names

    async def Check(self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext):
        if self.drain is not None and self.drain.draining:  # the REST side began draining: so do we
            await self.enter_graceful_shutdown()
        await self.sync()
        return await super().Check(request, context)


class GrpcServer:
    """A started gRPC server; `port` is the bound port (useful when asked for 0)."""

    def __init__(self, server: grpc.aio.Server, health: FunctionHealth, host: str, port: int) -> None:
        self.server, self.health, self.host, self.port = server, health, host, port

    @property
    def address(self) -> str:
        return _address(self.host, self.port)

    async def stop(self, grace: float | None = DEFAULT_DRAIN_TIMEOUT) -> None:
        """Drain: health turns NOT_SERVING, new RPCs are refused, in-flight ones get `grace` seconds."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)


async def start_grpc_server(
    hosting: Hosting, *, host: str = DEFAULT_HOST, port: int = 0, drain: Drain | None = None
) -> GrpcServer:
    """Start serving `hosting` over gRPC on the running event loop, at host:port (0 picks a free port).
    `drain`: the REST app's drain state (serving/drain.py), which gRPC calls then join (see FunctionsService)."""
    interceptors = [BearerAuthInterceptor(hosting.token)] if hosting.token is not None else []
    # no SO_REUSEPORT: a port already taken must fail here, not be silently shared
    server = grpc.aio.server(interceptors=interceptors, options=[("grpc.so_reuseport", 0)])
    pb_grpc.add_FunctionsServicer_to_server(FunctionsService(hosting, drain), server)
    health = FunctionHealth(hosting, drain)
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    reflection.enable_server_reflection((SERVICE_NAME, HEALTH_SERVICE_NAME, reflection.SERVICE_NAME), server)
    try:
        bound = server.add_insecure_port(_address(host, port))
    except RuntimeError as exc:
        raise OSError(f"gRPC: cannot listen on {_address(host, port)}: {exc}") from None
    if not bound:
        raise OSError(f"gRPC: cannot listen on {_address(host, port)}")
    await server.start()
    await health.set(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
    await health.sync()
    log.info("gRPC server listening on %s", _address(host, bound))
    return GrpcServer(server, health, host, bound)


def _address(host: str, port: int) -> str:
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{port}"
