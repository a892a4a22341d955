"""Flow artifacts: write and read a float64 array through the datastore (zstd level 3, streaming, into a
local file store), against plain pickle.dump / pickle.load of the same array to a local file, in this run.

    python benchmarks/flows_artifacts.py [--sizes 256,1024] [--repeats 1]

Each measurement runs in its own subprocess, so its peak RSS (ru_maxrss) is its own. The array is
half random (standard normal), half a repeating ramp, so the compressor has work of both kinds.
Columns: size (MB), case, write s, write GB/s, read s, read GB/s, stored MB, peak RSS (MB).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _array(mb: int):  # noqa: ANN202 - numpy is imported here only
    import numpy as np

    n = mb * (1 << 20) // 8
    array = np.empty(n, dtype=np.float64)
    half = n // 2
    np.random.default_rng(0).standard_normal(out=array[:half])  # filled in place: no temporaries
    ramp = np.arange(1 << 20, dtype=np.float64) % 1000
    for start in range(half, n, len(ramp)):
        piece = array[start : start + len(ramp)]
        piece[:] = ramp[: len(piece)]
    return array


def _measure(case: str, mb: int, workdir: Path) -> dict[str, float]:
    array = _array(mb)
    if case == "pickle file":
        path = workdir / "value.pickle"
        start = time.perf_counter()
        with open(path, "wb") as fh:
            pickle.dump(array, fh, protocol=5)
            fh.flush()
            os.fsync(fh.fileno())
        written = time.perf_counter() - start
        stored = path.stat().st_size
        del array
        start = time.perf_counter()
        with open(path, "rb") as fh:
            back = pickle.load(fh)
        read = time.perf_counter() - start
    else:
        from satchel.flows.datastore import FlowDatastore

        ds = FlowDatastore("BenchFlow", (workdir / "store").as_uri())
        start = time.perf_counter()
        digest = ds.save_artifact(array, "array", "start")
        written = time.perf_counter() - start
        stat = ds.store.stat_blob(digest)
        stored = stat.size if stat else 0
        del array
        start = time.perf_counter()
        back = ds.load_artifact(digest, "array", "bench")
        read = time.perf_counter() - start
    assert back.nbytes == mb * (1 << 20)
    return {
        "write_s": written,
        "read_s": read,
        "stored_mb": stored / (1 << 20),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _run_case(case: str, mb: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="satchel-bench-artifacts-") as tmp:
        proc = subprocess.run(
            [sys.executable, __file__, "--child", case, str(mb), tmp],
            capture_output=True,
            text=True,
            check=False,
        )
    if proc.returncode != 0:
        raise SystemExit(f"{case} at {mb} MB failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="256,1024", help="array sizes in MB, comma-separated")
    parser.add_argument("--repeats", type=int, default=1, help="median over this many runs of each case")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        case, mb, workdir = args.child
        print(json.dumps(_measure(case, int(mb), Path(workdir))))
        return
    header = f"{'MB':>6}  {'case':<22}{'write s':>9}{'GB/s':>7}{'read s':>9}{'GB/s':>7}{'stored MB':>11}{'peak RSS MB':>13}"
    print(header)
    print("-" * len(header))
    for mb in (int(s) for s in args.sizes.split(",")):
        gb = mb / 1024
        for case in ("pickle file", "datastore (zstd, file)"):
            runs = [_run_case(case, mb) for _ in range(args.repeats)]
            m = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            print(
                f"{mb:>6}  {case:<22}{m['write_s']:>9.2f}{gb / m['write_s']:>7.2f}{m['read_s']:>9.2f}"
                f"{gb / m['read_s']:>7.2f}{m['stored_mb']:>11.0f}{m['peak_rss_mb']:>13.0f}"
            )
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
