"""A short self-test of the ring on this machine: small round trips with a peer process, and what the
waits did on both ends (`satchel doctor`, `benchmarks/run.py`). Python 3.9+, standard library only.

    python -m satchel.bindings.ring_probe <segment name>   # the echo peer (started by `round_trips`)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from satchel.bindings import _native
from satchel.bindings.ring import Ring

STAT_NAMES = ("waits", "spins", "spin_successes", "sleeps", "wakes")


def wait_tuning() -> dict:
    """The wake-up latency this process measured and the spin budget derived from it (µs); `override`:
    SATCHEL_RING_SPIN_US when set, else None."""
    lib = _native.load()
    override = lib.sr_get_spin_ns()
    return {
        "wake_us": lib.sr_wake_ns() / 1000.0,
        "budget_us": lib.sr_spin_budget_ns() / 1000.0,
        "override_us": None if override < 0 else override / 1000.0,
    }


def describe_stats(stats: dict, calls: int | None = None) -> str:
    """`stats` (Ring.stats(), or a difference of two) in one line."""
    per = f" over {calls} calls" if calls else ""
    return (
        f"waits {stats['waits']}, spins {stats['spins']} (ended the wait: {stats['spin_successes']}), "
        f"sleeps {stats['sleeps']}, wakes {stats['wakes']}{per}"
    )


def describe_tuning(tuning: dict) -> str:
    fixed = (
        f" (fixed by SATCHEL_RING_SPIN_US={tuning['override_us']:g})"
        if tuning["override_us"] is not None
        else ""
    )
    fixed = fixed or " to start with (each ring learns its own)"
    return f"wake-up latency {tuning['wake_us']:.1f} µs, spin budget {tuning['budget_us']:.1f} µs{fixed}"


def diff(after: dict, before: dict) -> dict:
    return {name: after[name] - before.get(name, 0) for name in STAT_NAMES}


def round_trips(count: int = 2000, size: int = 64, timeout: float = 30.0) -> dict:
    """`count` round trips of `size` bytes with an echo peer process: p50 and p99 (µs), both ends'
    counters (`caller`, `peer`) and this process's `tuning`."""
    ring = Ring.create(4096 * 16)
    peer = subprocess.Popen(
        [sys.executable, "-m", "satchel.bindings.ring_probe", ring.name],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
    )
    try:
        message = b"x" * size
        for _ in range(min(200, count)):  # warm up: the peer's first waits measure its wake-up latency
            ring.send([message])
            ring.recv(timeout)
        before = ring.stats()
        samples = []
        for _ in range(count):
            t0 = time.perf_counter()
            ring.send([message])
            ring.recv(timeout)
            samples.append(time.perf_counter() - t0)
        caller = diff(ring.stats(), before)
        ring.send([b""])  # the end: the peer reports its counters
        ring.recv(timeout)
        peer_report = json.loads(peer.communicate(timeout=timeout)[0] or b"{}")
    finally:
        ring.close()
        if peer.poll() is None:
            peer.kill()
            peer.wait()
    samples.sort()
    return {
        "p50_us": samples[len(samples) // 2] * 1e6,
        "p99_us": samples[min(len(samples) - 1, int(len(samples) * 0.99))] * 1e6,
        "caller": caller,
        "peer": peer_report.get("stats"),
        "peer_tuning": peer_report.get("tuning"),
        "tuning": wait_tuning(),
    }


def _echo(name: str) -> None:
    ring = Ring.attach(name)
    before = None
    try:
        while True:
            message = ring.recv()
            if before is None:
                before = ring.stats()
            ring.send([message])
            if not message:
                break
        stats = diff(ring.stats(), before or {})
        sys.stdout.write(json.dumps({"stats": stats, "tuning": wait_tuning()}))
    finally:
        ring.close()


if __name__ == "__main__":
    _echo(sys.argv[1])
    os._exit(0)
