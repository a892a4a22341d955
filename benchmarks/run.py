"""Satchel benchmarks: each figure beside a baseline measured in the same run, on this machine.

    .venv/bin/python benchmarks/run.py [--calls 10000] [--repeats 3]

Rows:
- small call round trip (`add(a: float, b: float) -> float`) vs a bare multiprocessing.Pipe echo of 64 B;
- cold start (load -> first result, environment already materialized) vs a bare interpreter of the same
  environment importing the same packages;
- environment materialization from an empty and from a warm cache vs `uv venv` + `uv pip install` of the
  same packages from the index (empty and warm uv cache).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import satchel  # noqa: E402
from tests.functions import textutil  # noqa: E402

console = Console(stderr=True)


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return ordered[len(ordered) // 2], ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def _echo(conn) -> None:
    while True:
        data = conn.recv_bytes()
        if not data:
            break
        conn.send_bytes(data)


def pipe_echo(calls: int) -> list[float]:
    parent, child = mp.Pipe()
    proc = mp.get_context("spawn").Process(target=_echo, args=(child,), daemon=True)
    proc.start()
    payload = b"x" * 64
    for _ in range(200):
        parent.send_bytes(payload)
        parent.recv_bytes()
    samples = []
    for _ in range(calls):
        t0 = time.perf_counter()
        parent.send_bytes(payload)
        parent.recv_bytes()
        samples.append(time.perf_counter() - t0)
    parent.send_bytes(b"")
    proc.join(5)
    return samples


def satchel_calls(ref, calls: int) -> list[float]:
    with satchel.load(ref) as fn:
        for _ in range(200):
            fn(1.0, 2.0)
        samples = []
        for i in range(calls):
            t0 = time.perf_counter()
            fn(1.0, float(i))
            samples.append(time.perf_counter() - t0)
    return samples


def cold_start(ref) -> float:
    t0 = time.perf_counter()
    with satchel.load(ref) as fn:
        fn(1_200_000)
        elapsed = time.perf_counter() - t0
    return elapsed


def bare_import(python: Path, modules: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([str(python), "-c", f"import {modules}"], check=True)
    return time.perf_counter() - t0


def median_of(fn, repeats: int) -> float:
    return statistics.median(fn() for _ in range(repeats))


def uv_install_baseline(packages: list[str], cache: Path, python_version: str) -> float:
    from uv import find_uv_bin

    uv = find_uv_bin()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "UV_CACHE_DIR": str(cache)}
        t0 = time.perf_counter()
        subprocess.run([uv, "venv", "-q", "--python", python_version, f"{tmp}/v"], check=True, env=env)
        subprocess.run(
            [uv, "pip", "install", "-q", "--compile-bytecode", "--python", f"{tmp}/v/bin/python", *packages],
            check=True,
            env=env,
        )
        return time.perf_counter() - t0


def materialize(ref, home: Path, keep_caches: bool) -> float:
    """Time load() when the environment is absent; with keep_caches the blob and uv caches stay."""
    envs = home / "envs"
    if keep_caches:
        shutil.rmtree(envs, ignore_errors=True)
    else:
        shutil.rmtree(home, ignore_errors=True)
    os.environ["SATCHEL_HOME"] = str(home)
    t0 = time.perf_counter()
    with satchel.load(ref) as fn:
        fn(5)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="satchel-bench-"))
    home = Path(os.environ.get("SATCHEL_HOME", work / "home"))
    os.environ["SATCHEL_HOME"] = str(home)
    store = (work / "store").as_uri()
    load1 = os.getloadavg()[0]
    rows: list[tuple[str, str, str]] = []

    with console.status("exporting bundles"):
        add_ref = textutil.add.export(name="add", store=store)
        describe_ref = textutil.describe.export(name="describe", store=store)
    with satchel.load(describe_ref) as fn:  # materialize once
        env_python = Path(fn._local.python)

    with console.status(f"small calls ({args.calls} x {args.repeats})"):
        ours = [percentiles(satchel_calls(add_ref, args.calls)) for _ in range(args.repeats)]
        base = [percentiles(pipe_echo(args.calls)) for _ in range(args.repeats)]
    p50, p99 = statistics.median(x[0] for x in ours), statistics.median(x[1] for x in ours)
    b50, b99 = statistics.median(x[0] for x in base), statistics.median(x[1] for x in base)
    rows.append(
        (
            "small call add(a, b), pipe transport",
            f"p50 {p50 * 1e6:.0f} µs, p99 {p99 * 1e6:.0f} µs",
            f"mp.Pipe 64 B echo: p50 {b50 * 1e6:.0f} µs, p99 {b99 * 1e6:.0f} µs",
        )
    )

    with console.status("cold starts"):
        cold = median_of(lambda: cold_start(describe_ref), args.repeats)
        bare = median_of(lambda: bare_import(env_python, "humanize, fastavro"), args.repeats)
    rows.append(
        (
            "cold start: load -> first result (env cached)",
            f"{cold * 1e3:.0f} ms",
            f"bare `import humanize, fastavro`: {bare * 1e3:.0f} ms",
        )
    )

    with console.status("environment materialization"):
        mat_home = work / "mat-home"
        empty = median_of(lambda: materialize(describe_ref, mat_home, keep_caches=False), args.repeats)
        warm = median_of(lambda: materialize(describe_ref, mat_home, keep_caches=True), args.repeats)
        os.environ["SATCHEL_HOME"] = str(home)
        pkgs = ["humanize==4.12.1", "fastavro"]
        uv_empty = median_of(
            lambda: uv_install_baseline(pkgs, Path(tempfile.mkdtemp(dir=work)), "3.11"), args.repeats
        )
        uv_cache = work / "uv-warm"
        uv_install_baseline(pkgs, uv_cache, "3.11")
        uv_warm = median_of(lambda: uv_install_baseline(pkgs, uv_cache, "3.11"), args.repeats)
    rows.append(
        (
            "materialize env (humanize + fastavro), empty cache",
            f"{empty:.2f} s (load + first call)",
            f"uv venv + pip install from index, empty uv cache: {uv_empty:.2f} s",
        )
    )
    rows.append(
        (
            "materialize env, warm blob + uv cache",
            f"{warm:.2f} s (load + first call)",
            f"uv venv + pip install, warm uv cache: {uv_warm:.2f} s",
        )
    )

    table = Table(
        title=f"Satchel benchmarks (median of {args.repeats}; load avg {load1:.2f} → {os.getloadavg()[0]:.2f}; {os.cpu_count()} CPUs)"
    )
    table.add_column("what")
    table.add_column("satchel")
    table.add_column("baseline (same run)")
    for row in rows:
        table.add_row(*row)
    Console(width=160).print(table)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
