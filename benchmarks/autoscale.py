"""Autoscaling benchmark: `satchel serve --workers 1:4` under a steady load of slow calls.

    .venv/bin/python benchmarks/autoscale.py [--duration 60] [--concurrency 8] [--nap 0.05]

The server hosts `nap(seconds)` (tests/functions/textutil.py) in its own process, starting with one worker;
an asyncio httpx client in this process keeps `--concurrency` calls of `nap(--nap)` in flight for
`--duration` seconds. Reported: time from the first request until /metrics shows 4 workers (target: within
5 s), requests/s, p50/p99 latency, errors (anything but 200), and after the load stops, the time until the
server is back to 1 worker (`--scale-down-after`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.serving import Server, free_port  # noqa: E402
from tests.functions import textutil  # noqa: E402

console = Console(stderr=True)


async def workers(client: httpx.AsyncClient) -> int:
    text = (await client.get("/metrics")).text
    m = re.search(r'^satchel_workers\{function="nap"\} (\S+)$', text, re.M)
    return int(float(m.group(1))) if m else 0


async def watch(client: httpx.AsyncClient, target: int, since: float) -> float:
    """Seconds from `since` until the server runs `target` workers of nap."""
    while await workers(client) != target:
        await asyncio.sleep(0.05)  # polling a server: a benchmark, not a test
    return time.monotonic() - since


async def run(url: str, args) -> dict:
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=args.concurrency + 2)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        stop_at = time.monotonic() + args.duration

        async def caller() -> None:
            nonlocal errors
            while time.monotonic() < stop_at:
                t0 = time.perf_counter()
                try:
                    r = await client.post("/v1/functions/nap:invoke", json={"seconds": args.nap})
                    ok = r.status_code == 200
                except httpx.HTTPError:
                    ok = False
                if ok:
                    latencies.append(time.perf_counter() - t0)
                else:
                    errors += 1

        started = time.monotonic()
        scale_up = asyncio.ensure_future(watch(client, 4, started))
        await asyncio.gather(*(caller() for _ in range(args.concurrency)))
        elapsed = time.monotonic() - started
        up = scale_up.result() if scale_up.done() else None
        scale_up.cancel()
        load_end = time.monotonic()
        down = await asyncio.wait_for(watch(client, 1, load_end), args.scale_down_after + 60)
    latencies.sort()
    return {
        "up": up,
        "down": down,
        "rate": len(latencies) / elapsed,
        "p50": statistics.median(latencies),
        "p99": latencies[int(0.99 * (len(latencies) - 1))],
        "errors": errors,
        "requests": len(latencies) + errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument("--concurrency", type=int, default=8, help="calls kept in flight")
    parser.add_argument("--nap", type=float, default=0.05, help="seconds each call sleeps in its worker")
    parser.add_argument(
        "--scale-down-after", type=float, default=5.0, help="satchel serve --scale-down-after"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="satchel-bench-autoscale-") as tmp:
        ref = textutil.nap.export(name="nap", store=(Path(tmp) / "store").as_uri(), progress=False)
        port = free_port()
        command = [sys.executable, "-m", "satchel", "serve", str(ref), "--port", str(port)]
        command += ["--workers", "1:4", "--scale-down-after", str(args.scale_down_after)]
        with Server(command, port) as server:
            result = asyncio.run(run(server.url, args))
    table = Table(title=f"Satchel autoscaling 1:4 (load avg {os.getloadavg()[0]:.1f}, {os.cpu_count()} CPUs)")
    for col in ("what", "measured", "target"):
        table.add_column(col)
    up = "never" if result["up"] is None else f"{result['up']:.2f} s"
    table.add_row("scale-up to 4 workers (from the first request)", up, "within 5 s")
    table.add_row(
        f"{args.duration:.0f} s of nap({args.nap}) at concurrency {args.concurrency}",
        f"{result['requests']} requests, {result['rate']:.0f} req/s, p50 {result['p50'] * 1e3:.1f} ms, "
        f"p99 {result['p99'] * 1e3:.1f} ms, {result['errors']} errors",
        "zero errors",
    )
    table.add_row(
        f"back to 1 worker after the load (--scale-down-after {args.scale_down_after:g})",
        f"{result['down']:.2f} s",
        "",
    )
    Console().print(table)


if __name__ == "__main__":
    main()
