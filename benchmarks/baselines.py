"""Baselines the benchmark scripts measure beside Satchel, in the same run."""

from __future__ import annotations

import multiprocessing as mp
import time


def percentiles(samples: list[float]) -> tuple[float, float]:
    """(p50, p99) of `samples`."""
    ordered = sorted(samples)
    return ordered[len(ordered) // 2], ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def _echo(conn) -> None:
    while True:
        data = conn.recv_bytes()
        if not data:
            break
        conn.send_bytes(data)


def pipe_echo(calls: int, size: int = 64) -> list[float]:
    """Round-trip times of a bare multiprocessing.Pipe echo of `size` bytes to a spawned process."""
    parent, child = mp.Pipe()
    proc = mp.get_context("spawn").Process(target=_echo, args=(child,), daemon=True)
    proc.start()
    payload = b"x" * size
    for _ in range(500):
        parent.send_bytes(payload)
        parent.recv_bytes()
    samples = []
    for _ in range(calls):
        t0 = time.perf_counter()
        parent.send_bytes(payload)
        parent.recv_bytes()
        samples.append(time.perf_counter() - t0)
    parent.send_bytes(b"")
    proc.join(10)
    return samples
