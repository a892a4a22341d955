"""A bare grpcio unary echo server (generic bytes handler), the baseline for a small call."""

from __future__ import annotations

import sys
from concurrent import futures

import grpc


def _echo(request: bytes, context) -> bytes:
    return request


def main() -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    handler = grpc.method_handlers_generic_handler(
        "bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(_echo)}
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(port, flush=True)
    sys.stdin.read()  # until the parent closes stdin
    server.stop(0)


if __name__ == "__main__":
    main()
