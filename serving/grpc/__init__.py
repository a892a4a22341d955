"""The gRPC gateway: `satchel.v1.Functions` (bindings/proto/satchel/v1/functions.proto) over a Hosting, with
the standard health service and server reflection, in a grpc.aio server on the REST app's event loop."""

from .server import GrpcServer, start_grpc_server

__all__ = ["GrpcServer", "start_grpc_server"]
