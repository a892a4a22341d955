"""Satchel benchmarks: each figure beside a baseline measured in the same run, on this machine.

    .venv/bin/python benchmarks/run.py [--calls 10000] [--repeats 3] [--only calls,payloads,...]

Sections (all by default):
  calls      small typed call `add(a, b)` over the shm ring and the pipe transport, against a bare
             multiprocessing.Pipe 64 B echo and a bare grpcio unary echo on loopback (p50, p99), with
             the caller's ring counters (waits, spins, sleeps, wakes), the wake-up latency measured and
             the spin budget derived from it, and a raw ring round trip (satchel.bindings.ring_probe);
  payloads   1 / 10 / 100 MB bytes and float64 arrays echoed, and a 1M x 10 Arrow table, in GB/s,
             against a memoryview copy of the same size in this process;
  pool       4 threads calling a pool of 2 workers, calls/s, against 4 threads on 1 worker;
  idle       CPU used by a loaded proxy and its worker over 10 s of idleness;
  start      cold start (load -> first result, environment cached) against a bare interpreter of the
             same environment importing the same packages;
  envs       environment materialization from an empty and a warm cache, against uv venv + uv pip
             install of the same packages from the index (empty and warm uv cache).
Every figure is the median over --repeats runs; the machine's load average is printed with the table.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import satchel  # noqa: E402
from benchmarks import data_functions, functions  # noqa: E402
from benchmarks.baselines import percentiles, pipe_echo  # noqa: E402
from benchmarks.sections import chosen_sections  # noqa: E402
from satchel.bindings import ring_probe  # noqa: E402
from tests.functions import textutil  # noqa: E402

console = Console(stderr=True)
SECTIONS = ("calls", "payloads", "pool", "idle", "start", "envs")
Row = tuple[str, str, str]


def median_pcts(runs: list[list[float]]) -> tuple[float, float]:
    pairs = [percentiles(r) for r in runs]
    return statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs)


def us(p: tuple[float, float]) -> str:
    return f"p50 {p[0] * 1e6:.1f} µs, p99 {p[1] * 1e6:.1f} µs"


def median_of(fn: Callable[[], float], repeats: int) -> float:
    return statistics.median(fn() for _ in range(repeats))


# -- baselines ----------------------------------------------------------------------------------------


def grpc_echo(calls: int) -> list[float]:
    import grpc

    server = subprocess.Popen(
        [sys.executable, str(REPO / "benchmarks" / "grpc_echo.py")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        port = int(server.stdout.readline())
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            echo = channel.unary_unary("/bench.Echo/Echo")
            payload = b"x" * 64
            for _ in range(300):
                echo(payload)
            samples = []
            for _ in range(calls):
                t0 = time.perf_counter()
                echo(payload)
                samples.append(time.perf_counter() - t0)
        return samples
    finally:
        server.stdin.close()
        server.wait(10)


def memcopy_gbps(nbytes: int, repeats: int) -> float:
    src = np.ones(nbytes, dtype=np.uint8)
    dst = np.empty_like(src)
    times = []
    for _ in range(max(3, repeats)):
        t0 = time.perf_counter()
        memoryview(dst)[:] = memoryview(src)
        times.append(time.perf_counter() - t0)
    return nbytes / statistics.median(times) / 1e9


# -- sections -----------------------------------------------------------------------------------------


def calls_section(refs: dict, args) -> list[Row]:
    ring_runs = [timed_calls(refs["add"], args.calls, "shm") for _ in range(args.repeats)]
    ring = [samples for samples, _ in ring_runs]
    pipe = [timed_calls(refs["add"], args.calls, "pipe")[0] for _ in range(args.repeats)]
    bare = [pipe_echo(args.calls) for _ in range(args.repeats)]
    grpc_runs = [grpc_echo(max(2000, args.calls // 5)) for _ in range(args.repeats)]
    probe = ring_probe.round_trips(max(2000, args.calls // 5))
    base = f"mp.Pipe 64 B echo: {us(median_pcts(bare))}; grpcio unary echo: {us(median_pcts(grpc_runs))}"
    counters = "; ".join(ring_probe.describe_stats(stats) for _, stats in ring_runs)
    tuning = ring_probe.describe_tuning(ring_probe.wait_tuning())
    return [
        ("small call add(a, b), shm ring", us(median_pcts(ring)), base),
        (f"  caller's ring, per run of {args.calls} calls", counters, tuning),
        ("small call add(a, b), pipe transport", us(median_pcts(pipe)), "(same baselines)"),
        (
            "raw ring 64 B round trip (ring_probe)",
            us((probe["p50_us"] / 1e6, probe["p99_us"] / 1e6)),
            f"caller: {ring_probe.describe_stats(probe['caller'])}; "
            f"echo peer: {ring_probe.describe_stats(probe['peer'])}",
        ),
    ]


def timed_calls(ref, calls: int, transport: str) -> tuple[list[float], dict | None]:
    """Per-call times; and for shm, what the caller's ring did meanwhile (its counters' difference)."""
    with satchel.load(ref, transport=transport) as fn:
        for _ in range(500):
            fn(1.0, 2.0)
        ring = getattr(fn._pool.slots[0].process.transport, "ring", None)  # the one worker's transport
        before = ring.stats() if ring is not None else None
        samples = []
        for i in range(calls):
            t0 = time.perf_counter()
            fn(1.0, float(i))
            samples.append(time.perf_counter() - t0)
        stats = ring_probe.diff(ring.stats(), before) if ring is not None else None
    return samples, stats


def _round_trip_gbps(fn, value, nbytes: int, repeats: int) -> float:
    fn(value)  # warm: page faults of the first large buffers
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(value)
        times.append(time.perf_counter() - t0)
    return 2 * nbytes / statistics.median(times) / 1e9  # the payload crosses twice


def payloads_section(refs: dict, args) -> list[Row]:
    rows = []
    with satchel.load(refs["echo_bytes"]) as eb, satchel.load(refs["echo_array"]) as ea:
        for mb in (1, 10, 100):
            n = mb * 1_000_000
            data = os.urandom(n)
            arr = np.random.default_rng(0).standard_normal(n // 8)
            ceiling = memcopy_gbps(n, args.repeats)
            rows.append(
                (
                    f"{mb} MB bytes / float64 array echoed (shm)",
                    f"{_round_trip_gbps(eb, data, n, args.repeats):.2f} / "
                    f"{_round_trip_gbps(ea, arr, n, args.repeats):.2f} GB/s",
                    f"in-process memoryview copy: {ceiling:.2f} GB/s",
                )
            )
    table = pa.table({f"c{i}": np.arange(1_000_000, dtype=np.float64) + i for i in range(10)})
    with satchel.load(refs["echo_table"]) as et:
        nbytes = table.nbytes
        gbps = _round_trip_gbps(et, table, nbytes, args.repeats)
        seconds = 2 * nbytes / gbps / 1e9
    rows.append(
        (
            "Arrow table 1M rows x 10 float64 echoed",
            f"{seconds * 1e3:.0f} ms ({gbps:.2f} GB/s)",
            f"in-process memoryview copy: {memcopy_gbps(nbytes, args.repeats):.2f} GB/s",
        )
    )
    return rows


def _threads_rate(fn, threads: int, seconds: float) -> float:
    stop = time.perf_counter() + seconds
    counts = [0] * threads

    def work(i: int) -> None:
        while time.perf_counter() < stop:
            fn(1.0, 2.0)
            counts[i] += 1

    ts = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return sum(counts) / seconds


def pool_section(refs: dict, args) -> list[Row]:
    with satchel.load(refs["add"], workers=2) as two, satchel.load(refs["add"], workers=1) as one:
        pooled = median_of(lambda: _threads_rate(two, 4, 2.0), args.repeats)
        single = median_of(lambda: _threads_rate(one, 4, 2.0), args.repeats)
    return [
        (
            "4 threads -> pool of 2 workers, add()",
            f"{pooled:,.0f} calls/s",
            f"4 threads -> 1 worker: {single:,.0f} calls/s",
        )
    ]


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def idle_section(refs: dict, args) -> list[Row]:
    with satchel.load(refs["add"]) as fn:
        fn(1.0, 2.0)
        worker = fn.worker_pid
        c0, w0 = _cpu_seconds(os.getpid()), _cpu_seconds(worker)
        time.sleep(10.0)
        c1, w1 = _cpu_seconds(os.getpid()), _cpu_seconds(worker)
    return [
        (
            "idle CPU over 10 s: proxy / worker",
            f"{(c1 - c0) / 10 * 100:.2f}% / {(w1 - w0) / 10 * 100:.2f}%",
            "target < 1%",
        )
    ]


def start_section(refs: dict, args) -> list[Row]:
    def cold() -> float:
        t0 = time.perf_counter()
        with satchel.load(refs["describe"]) as fn:
            fn(1_200_000)
            return time.perf_counter() - t0

    with satchel.load(refs["describe"]) as fn:
        python = Path(fn._local.python)

    def bare() -> float:
        t0 = time.perf_counter()
        subprocess.run([str(python), "-c", "import humanize, fastavro"], check=True)
        return time.perf_counter() - t0

    return [
        (
            "cold start: load -> first result (env cached)",
            f"{median_of(cold, args.repeats) * 1e3:.0f} ms",
            f"bare `import humanize, fastavro` in that env: {median_of(bare, args.repeats) * 1e3:.0f} ms",
        )
    ]


def _uv_install(packages: list[str], cache: Path) -> float:
    from uv import find_uv_bin

    uv = find_uv_bin()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "UV_CACHE_DIR": str(cache)}
        t0 = time.perf_counter()
        subprocess.run([uv, "venv", "-q", "--python", "3.11", f"{tmp}/v"], check=True, env=env)
        subprocess.run(
            [uv, "pip", "install", "-q", "--compile-bytecode", "--python", f"{tmp}/v/bin/python", *packages],
            check=True,
            env=env,
        )
        return time.perf_counter() - t0


def envs_section(refs: dict, args, work: Path) -> list[Row]:
    home = os.environ["SATCHEL_HOME"]
    mat = work / "mat-home"

    def materialize(keep_caches: bool) -> float:
        shutil.rmtree(mat / "envs" if keep_caches else mat, ignore_errors=True)
        os.environ["SATCHEL_HOME"] = str(mat)
        try:
            t0 = time.perf_counter()
            with satchel.load(refs["describe"]) as fn:
                fn(5)
            return time.perf_counter() - t0
        finally:
            os.environ["SATCHEL_HOME"] = home

    empty = median_of(lambda: materialize(False), args.repeats)
    warm = median_of(lambda: materialize(True), args.repeats)
    pkgs = ["humanize==4.12.1", "fastavro"]
    uv_empty = median_of(lambda: _uv_install(pkgs, Path(tempfile.mkdtemp(dir=work))), args.repeats)
    warm_cache = work / "uv-warm"
    _uv_install(pkgs, warm_cache)
    uv_warm = median_of(lambda: _uv_install(pkgs, warm_cache), args.repeats)
    return [
        (
            "materialize env (humanize + fastavro), empty cache",
            f"{empty:.2f} s (load + first call)",
            f"uv venv + pip install from the index, empty uv cache: {uv_empty:.2f} s",
        ),
        (
            "materialize env, warm blob + uv cache",
            f"{warm:.2f} s (load + first call)",
            f"uv venv + pip install, warm uv cache: {uv_warm:.2f} s",
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections")
    args = parser.parse_args()
    only = chosen_sections(parser, args.only, SECTIONS)

    work = Path(tempfile.mkdtemp(prefix="satchel-bench-"))
    os.environ.setdefault("SATCHEL_HOME", str(work / "home"))
    store = (work / "store").as_uri()
    load_before = os.getloadavg()
    with console.status("exporting bundles"):
        refs = {
            name: getattr(module, name).export(name=name.replace("_", "-"), store=store)
            for module, names in (
                (functions, ("add", "echo_bytes")),
                (data_functions, ("echo_array", "echo_table")),
            )
            for name in names
        }
        refs["describe"] = textutil.describe.export(name="describe", store=store)
    with console.status("materializing environments"):
        for ref in refs.values():
            satchel.load(ref).close()

    rows: list[Row] = []
    for section in only:
        with console.status(f"measuring: {section}"):
            if section == "envs":
                rows += envs_section(refs, args, work)
            else:
                rows += globals()[f"{section}_section"](refs, args)

    load_after = os.getloadavg()
    table = Table(
        title=f"Satchel benchmarks — median of {args.repeats}; {os.cpu_count()} CPUs; "
        f"load avg (1 min) {load_before[0]:.2f} before, {load_after[0]:.2f} after"
    )
    table.add_column("what")
    table.add_column("satchel")
    table.add_column("baseline (same run)")
    for row in rows:
        table.add_row(*row)
    Console(width=200).print(table)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
