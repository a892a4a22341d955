"""Serving benchmarks: a trivial function over REST (and gRPC), each beside its baseline in the same run.

    .venv/bin/python benchmarks/serving.py [--duration 10] [--concurrency 1,16,64] [--only rest,grpc]

rest  `add(a, b)` hosted by `satchel serve` (one uvicorn process, workers in their own environment) against a
      bare FastAPI endpoint computing the same sum in-process under the same uvicorn settings; the load comes
      from `wrk` (Debian's package) in its own process, one thread, at each concurrency: requests/s, p50, p99,
      errors (non-2xx answers and socket errors).
grpc  the same function over satchel.v1.Functions/Invoke (`satchel serve --grpc-port`) against a bare grpc.aio
      server decoding the same Avro request and answering the sum in-process; the load comes from a grpc.aio
      client in its own process (benchmarks/grpc_bench.py) at each concurrency.
Both servers run with stdout/stderr discarded (Satchel's JSON access log is on, as by default).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.sections import chosen_sections  # noqa: E402
from tests.functions import textutil  # noqa: E402

console = Console(stderr=True)
SECTIONS = ("rest", "grpc")
BODY = '{"a": 1.5, "b": 2.25}'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before answering {url}/healthz")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)  # polling a server that is starting up: a benchmark, not a test
    raise TimeoutError(f"{url}/healthz did not answer in {timeout:.0f} s")


class Server:
    def __init__(self, command: list[str], port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )

    def __enter__(self) -> Server:
        wait_healthy(self.url, self.proc)
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


_WRK_SCRIPT = f"""
wrk.method = "POST"
wrk.body   = '{BODY}'
wrk.headers["Content-Type"] = "application/json"
"""


def _seconds(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(value) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[unit]


def wrk(url: str, connections: int, duration: int, script: Path) -> dict:
    """requests/s, p50/p99 latency (s) and errors of one wrk run against `url`."""
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = _seconds(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
    p99 = _seconds(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
    errors = 0
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        errors += int(m.group(1))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        errors += sum(int(g) for g in m.groups())
    return {"rate": rate, "p50": p50, "p99": p99, "errors": errors}


def _check_answer(url: str) -> None:
    reply = httpx.post(
        url + "/v1/functions/add:invoke", content=BODY, headers={"content-type": "application/json"}
    )
    reply.raise_for_status()
    if reply.json()["result"] != 3.75:
        raise AssertionError(f"{url} answered {reply.text}")


def rest_section(ref: str, args, work: Path) -> list[tuple[str, str, str]]:
    script = work / "post.lua"
    script.write_text(_WRK_SCRIPT)
    results: dict[str, dict[int, dict]] = {"satchel": {}, "bare": {}}
    port = free_port()
    satchel_cmd = [
        sys.executable,
        "-m",
        "satchel",
        "serve",
        ref,
        "--port",
        str(port),
        "--workers",
        args.workers,
    ]
    bare_port = free_port()
    bare_cmd = [sys.executable, str(REPO / "benchmarks" / "bare_fastapi.py"), str(bare_port)]
    for label, command, p in (("satchel", satchel_cmd, port), ("bare", bare_cmd, bare_port)):
        with Server(command, p) as server:
            _check_answer(server.url)
            target = server.url + "/v1/functions/add:invoke"
            wrk(target, 16, 2, script)  # warm-up
            for c in args.concurrency:
                results[label][c] = wrk(target, c, args.duration, script)
                console.log(f"{label} c={c}: {results[label][c]['rate']:.0f} req/s")
    return [
        _row(f"REST add(), concurrency {c}", results["satchel"][c], results["bare"][c], "bare FastAPI")
        for c in args.concurrency
    ]


def grpc_load(port: int, connections: int, duration: int) -> dict:
    out = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "grpc_bench.py"),
            "load",
            str(port),
            str(connections),
            str(duration),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out)


def grpc_section(ref: str, args, work: Path) -> list[tuple[str, str, str]]:
    results: dict[str, dict[int, dict]] = {"satchel": {}, "bare": {}}
    port, grpc_port, bare_port = free_port(), free_port(), free_port()
    satchel_cmd = [
        sys.executable, "-m", "satchel", "serve", ref, "--port", str(port),
        "--grpc-port", str(grpc_port), "--workers", args.workers,
    ]  # fmt: skip
    bare_cmd = [sys.executable, str(REPO / "benchmarks" / "grpc_bench.py"), "bare", str(bare_port)]
    with Server(satchel_cmd, port):
        for c in args.concurrency:
            results["satchel"][c] = grpc_load(grpc_port, c, args.duration)
            console.log(f"satchel gRPC c={c}: {results['satchel'][c]['rate']:.0f} req/s")
    bare = subprocess.Popen(bare_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:  # the bare server answers once it listens: the first load run retries its warm-up
            try:
                grpc_load(bare_port, 1, 1)
                break
            except subprocess.CalledProcessError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        for c in args.concurrency:
            results["bare"][c] = grpc_load(bare_port, c, args.duration)
            console.log(f"bare gRPC c={c}: {results['bare'][c]['rate']:.0f} req/s")
    finally:
        bare.terminate()
        bare.wait()
    return [_row(f"gRPC Invoke add(), concurrency {c}", results["satchel"][c], results["bare"][c], "bare grpc.aio")
            for c in args.concurrency]  # fmt: skip


def _row(what: str, s: dict, b: dict, baseline: str) -> tuple[str, str, str]:
    return (
        what,
        f"{s['rate']:,.0f} req/s, p50 {s['p50'] * 1e3:.2f} ms, p99 {s['p99'] * 1e3:.2f} ms, "
        f"{s['errors']} errors ({s['rate'] / b['rate']:.0%} of bare)",
        f"{baseline}: {b['rate']:,.0f} req/s, p50 {b['p50'] * 1e3:.2f} ms, p99 {b['p99'] * 1e3:.2f} ms, "
        f"{b['errors']} errors",
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--concurrency", default="1,16,64", help="comma-separated connection counts")
    parser.add_argument("--workers", default="2", help="satchel serve --workers")
    parser.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections")
    args = parser.parse_args()
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    only = chosen_sections(parser, args.only, SECTIONS)
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk)")
    with tempfile.TemporaryDirectory(prefix="satchel-bench-serving-") as tmp:
        work = Path(tmp)
        ref = textutil.add.export(name="add", store=(work / "store").as_uri(), progress=False)
        rows = []
        if "rest" in only:
            rows += rest_section(str(ref), args, work)
        if "grpc" in only:
            rows += grpc_section(str(ref), args, work)
    table = Table(
        title=f"Satchel serving benchmarks (load avg {os.getloadavg()[0]:.1f}, {os.cpu_count()} CPUs)"
    )
    for col in ("what", "satchel", "baseline (same run)"):
        table.add_column(col)
    for row in rows:
        table.add_row(*row)
    Console().print(table)


if __name__ == "__main__":
    main()
