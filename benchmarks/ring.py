"""Measure the ring against the pipe transport and a bare multiprocessing.Pipe, between two processes.

    python benchmarks/ring.py [--count 20000] [--size 64] [--big-mb 100]

Rows: small-message round trip (p50/p99, microseconds) for shm, pipe, multiprocessing.Pipe; one large
message one way (GB/s) for shm and pipe, beside an in-process memcpy of the same size into a fresh
buffer (bytearray + slice copy, i.e. the same page faults) and into a reused one. Not a test.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.baselines import percentiles, pipe_echo  # noqa: E402


def _percentiles(samples: list[float]) -> tuple[float, float]:
    p50, p99 = percentiles(samples)
    return p50 * 1e6, p99 * 1e6


def _echo_transport(kind: str, endpoint: dict) -> None:
    from satchel.bindings.transports import get_transport

    transport = get_transport(kind).attach(endpoint)
    try:
        while True:
            message = transport.recv()
            if len(message) == 0:
                break
            if len(message) > 1_000_000:  # a large one: answer with its length only
                transport.send([len(message).to_bytes(8, "little")])
            else:
                transport.send([message])
    finally:
        if hasattr(transport, "ring"):
            print(f"  worker side: {transport.ring.stats()}")
        transport.close()


def transport_round_trips(kind: str, count: int, size: int, big: int) -> tuple[list[float], float]:
    from satchel.bindings.transports import get_transport

    channel = get_transport(kind).create()
    ctx = mp.get_context("fork")  # keep pass_fds semantics simple: the child inherits the descriptors
    proc = ctx.Process(target=_echo_transport, args=(kind, channel.endpoint), daemon=True)
    proc.start()
    channel.after_spawn()
    transport = channel.transport
    payload = b"x" * size
    for _ in range(500):
        transport.send([payload])
        transport.recv()
    samples = []
    for _ in range(count):
        t0 = time.perf_counter()
        transport.send([payload])
        transport.recv()
        samples.append(time.perf_counter() - t0)
    rate = 0.0
    if big:
        data = os.urandom(1 << 20) * (big >> 20)
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            transport.send([memoryview(data)])
            transport.recv()
            best = min(best, time.perf_counter() - t0)
        rate = len(data) / best / 1e9
    if hasattr(transport, "ring"):
        print(f"  caller side: {transport.ring.stats()}")
    transport.send([b""])
    proc.join(10)
    transport.close()
    return samples, rate


def memcpy_rates(big: int) -> tuple[float, float]:
    """memcpy (ctypes.memmove) of `big` bytes in this process: into a buffer made the way the ring's
    receiver makes one (uninitialized bytearray, huge-page advice), and into a reused, faulted-in one."""
    import ctypes

    from satchel.bindings import _native
    from satchel.bindings.ring import _new_buffer

    lib = _native.load()
    data = os.urandom(1 << 20) * (big >> 20)
    fresh = reused = float("inf")
    target = bytearray(len(data))
    for _ in range(3):
        t0 = time.perf_counter()
        out = _new_buffer(len(data))
        address = ctypes.addressof((ctypes.c_char * len(out)).from_buffer(out))
        lib.sr_advise_buffer(address, len(out))
        ctypes.memmove(address, data, len(data))
        fresh = min(fresh, time.perf_counter() - t0)
        t0 = time.perf_counter()
        ctypes.memmove((ctypes.c_char * len(target)).from_buffer(target), data, len(data))
        reused = min(reused, time.perf_counter() - t0)
        del out
    return len(data) / fresh / 1e9, len(data) / reused / 1e9


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--big-mb", type=int, default=100)
    parser.add_argument("--only", choices=["shm", "pipe", "mp", "memcpy"], action="append")
    args = parser.parse_args()
    only = set(args.only or ["shm", "pipe", "mp", "memcpy"])
    big = args.big_mb << 20
    print(f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}; {args.count} round trips of {args.size} B")
    for kind in ("shm", "pipe"):
        if kind in only:
            samples, rate = transport_round_trips(kind, args.count, args.size, big)
            p50, p99 = _percentiles(samples)
            print(
                f"{kind:>6} transport: p50 {p50:6.1f} us  p99 {p99:7.1f} us   {args.big_mb} MB one way: {rate:5.2f} GB/s"
            )
    if "mp" in only:
        p50, p99 = _percentiles(pipe_echo(args.count, args.size))
        print(f"mp.Pipe echo    : p50 {p50:6.1f} us  p99 {p99:7.1f} us")
    if "memcpy" in only:
        fresh, reused = memcpy_rates(big)
        print(
            f"in-process memcpy {args.big_mb} MB: {fresh:5.2f} GB/s into a new buffer, {reused:5.2f} GB/s reused"
        )


if __name__ == "__main__":
    main()
