"""gRPC pieces of benchmarks/serving.py, each run as its own process.

python benchmarks/grpc_bench.py bare PORT
    a bare grpc.aio server whose satchel.v1.Functions/Invoke decodes the Avro request of add(a, b) and
    answers the sum in-process (the baseline: same messages, no worker); serves until killed.
python benchmarks/grpc_bench.py load PORT CONCURRENCY SECONDS
    a grpc.aio client keeping CONCURRENCY Invoke calls of add(1.5, 2.25) in flight for SECONDS; prints
    {"rate", "p50", "p99", "errors"} as JSON.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from satchel.bindings.codec import Codec, RequestCodec  # noqa: E402
from satchel.bindings.proto.satchel.v1 import functions_pb2 as pb  # noqa: E402
from satchel.bindings.proto.satchel.v1 import functions_pb2_grpc as pb_grpc  # noqa: E402

REQUEST = {
    "type": "record",
    "name": "add_request",
    "fields": [{"name": "a", "type": "double"}, {"name": "b", "type": "double"}],
}
RESPONSE = "double"


class BareFunctions(pb_grpc.FunctionsServicer):
    def __init__(self) -> None:
        self.request, self.response = RequestCodec(REQUEST), Codec(RESPONSE)

    async def Invoke(self, request: pb.InvokeRequest, context) -> pb.InvokeResponse:
        args = self.request.decode_call(request.payload)
        return pb.InvokeResponse(
            payload=self.response.encode(args["a"] + args["b"]),
            response_fingerprint=self.response.fingerprint_hex,
        )


async def serve(port: int) -> None:
    server = grpc.aio.server()
    pb_grpc.add_FunctionsServicer_to_server(BareFunctions(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


async def load(port: int, concurrency: int, seconds: float) -> dict:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.FunctionsStub(channel)
        codec = RequestCodec(REQUEST)
        request = pb.InvokeRequest(
            function="add",
            payload=codec.encode_call({"a": 1.5, "b": 2.25}),
            request_fingerprint=codec.fingerprint_hex,
        )
        for _ in range(200):  # warm-up
            await stub.Invoke(request)
        latencies: list[float] = []
        errors = 0
        end = time.perf_counter() + seconds

        async def caller() -> None:
            nonlocal errors
            while time.perf_counter() < end:
                t0 = time.perf_counter()
                try:
                    await stub.Invoke(request)
                except grpc.aio.AioRpcError:
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - t0)

        started = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    n = len(latencies)
    return {
        "rate": n / elapsed,
        "p50": latencies[n // 2] if n else 0.0,
        "p99": latencies[min(n - 1, int(n * 0.99))] if n else 0.0,
        "errors": errors,
    }


if __name__ == "__main__":
    if sys.argv[1] == "bare":
        asyncio.run(serve(int(sys.argv[2])))
    else:
        print(json.dumps(asyncio.run(load(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])))))
