"""Satchel flows beside Metaflow, on this machine, in the same run, on equivalent flows (benchmarks/flows/).

    .venv/bin/python benchmarks/flows_vs_metaflow.py [--repeats 3] [--max-workers N] [--only linear,foreach,client]

Sections (all by default):
  linear     `python flow.py run` of a five-step linear flow, end to end wall time (target: Satchel < 1 s);
  foreach    the same for a 50-way foreach of trivial tasks and its join (target: Satchel >= 5x faster);
  client     reading the artifact of all 50 foreach tasks of the latest successful run through each
             client API, timed inside a fresh interpreter after its imports.

Metaflow (pinned: METAFLOW_VERSION) is installed by this script into its own virtual environment
(`uv venv` + `uv pip install`) under $XDG_CACHE_HOME/satchel-bench (default ~/.cache/satchel-bench), with
the Python version of this interpreter, and runs with its local datastore and metadata in a temporary
directory. Each tool runs with its own default parallelism unless --max-workers is given. Every flow is
run once untimed (warming the file cache and bytecode), then --repeats times; figures are medians.
"""

from __future__ import annotations

import argparse
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

from benchmarks.sections import chosen_sections  # noqa: E402

FLOWS = REPO / "benchmarks" / "flows"
METAFLOW_VERSION = "2.19.39"
SECTIONS = ("linear", "foreach", "client")
TARGETS = {"linear": "satchel < 1 s", "foreach": "metaflow / satchel >= 5", "client": ""}

console = Console(stderr=True)
Row = tuple[str, str, str, str, str]


# -- the two tools ------------------------------------------------------------------------------------


def metaflow_python() -> Path:
    """The Metaflow venv's interpreter; the venv is created (or repaired) when it lacks the pinned version."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "satchel-bench"
    venv = cache / "metaflow-venv"
    python = venv / "bin" / "python"
    check = [str(python), "-c", "import metaflow; print(metaflow.__version__)"]
    if python.exists():
        found = subprocess.run(check, capture_output=True, text=True)
        if found.returncode == 0 and found.stdout.strip() == METAFLOW_VERSION:
            return python
    uv = shutil.which("uv")
    if uv is None:
        sys.exit("this benchmark installs Metaflow with uv: install uv (https://docs.astral.sh/uv/) first")
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    with console.status(f"installing metaflow=={METAFLOW_VERSION} into {venv}"):
        subprocess.run([uv, "venv", "--quiet", "--clear", "--python", version, str(venv)], check=True)
        subprocess.run(
            [uv, "pip", "install", "--quiet", "--python", str(python), f"metaflow=={METAFLOW_VERSION}"],
            check=True,
        )
    subprocess.run(check, check=True, capture_output=True)
    return python


class Tool:
    """How to run one tool's flows and client in subprocesses: its interpreter, environment, files."""

    def __init__(self, name: str, python: Path, env: dict[str, str], run_args: list[str]) -> None:
        self.name = name
        self.python = python
        self.env = env
        self.run_args = run_args

    def run_flow(self, flow: str, max_workers: int | None) -> float:
        """Wall time of `python <name>_<flow>.py run` (exits 0 or this benchmark stops)."""
        args = [str(self.python), str(FLOWS / f"{self.name}_{flow}.py"), *self.run_args, "run"]
        if max_workers:
            args += ["--max-workers", str(max_workers)]
        t0 = time.perf_counter()
        proc = subprocess.run(args, env=self.env, capture_output=True, text=True)
        elapsed = time.perf_counter() - t0
        if proc.returncode != 0:
            sys.exit(
                f"{self.name} {flow} flow failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
            )
        return elapsed

    def read_foreach(self) -> float:
        """Seconds the client takes to read all 50 foreach artifacts (timed in the child, after imports)."""
        proc = subprocess.run(
            [str(self.python), str(FLOWS / f"{self.name}_read.py")],
            env=self.env,
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            sys.exit(f"{self.name} client read failed:\n{proc.stdout}\n{proc.stderr}")
        elapsed, total = proc.stdout.split()
        if int(total) != sum(i * i for i in range(50)):
            sys.exit(f"{self.name} client read the wrong values (sum {total})")
        return float(elapsed)


def tools(work: Path) -> tuple[Tool, Tool]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SATCHEL_", "METAFLOW_"))}
    base["USERNAME"] = base["USER"] = "bench"
    satchel_env = {
        **base,
        "SATCHEL_STORE": (work / "satchel-store").as_uri(),
        "SATCHEL_HOME": str(work / "satchel-home"),
    }
    metaflow_env = {
        **base,
        "METAFLOW_HOME": str(work / "metaflow-home"),
        "METAFLOW_DEFAULT_DATASTORE": "local",
        "METAFLOW_DEFAULT_METADATA": "local",
        "METAFLOW_DATASTORE_SYSROOT_LOCAL": str(work / "metaflow-store"),
    }
    satchel = Tool("satchel", Path(sys.executable), satchel_env, [])
    metaflow = Tool("metaflow", metaflow_python(), metaflow_env, ["--no-pylint"])
    return satchel, metaflow


# -- measuring ----------------------------------------------------------------------------------------


def median_runs(fn, repeats: int) -> float:
    fn()  # warm-up, untimed
    return statistics.median(fn() for _ in range(repeats))


def seconds(t: float) -> str:
    return f"{t:.2f} s" if t >= 1 else f"{t * 1000:.0f} ms"


def row(what: str, satchel_s: float, metaflow_s: float, target: str) -> Row:
    return (what, seconds(satchel_s), seconds(metaflow_s), f"{metaflow_s / satchel_s:.1f}x", target)


def flow_row(section: str, label: str, satchel, metaflow, args) -> Row:
    s = median_runs(lambda: satchel.run_flow(section, args.max_workers), args.repeats)
    m = median_runs(lambda: metaflow.run_flow(section, args.max_workers), args.repeats)
    return row(label, s, m, TARGETS[section])


def client_row(satchel: Tool, metaflow: Tool, args) -> Row:
    s = median_runs(satchel.read_foreach, args.repeats)
    m = median_runs(metaflow.read_foreach, args.repeats)
    return row("client: read the 50 foreach artifacts", s, m, TARGETS["client"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--max-workers", type=int, default=None, help="tasks at once, for both (default: each tool's own)"
    )
    parser.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections")
    args = parser.parse_args()
    only = chosen_sections(parser, args.only, SECTIONS)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")

    work = Path(tempfile.mkdtemp(prefix="satchel-bench-flows-"))
    try:
        satchel, metaflow = tools(work)
        load_before = os.getloadavg()
        rows: list[Row] = []
        for section in only:
            with console.status(f"measuring: {section}"):
                if section == "linear":
                    rows.append(
                        flow_row(
                            "linear", "linear flow, 5 steps: `python flow.py run`", satchel, metaflow, args
                        )
                    )
                elif section == "foreach":
                    rows.append(
                        flow_row(
                            "foreach", "50-way foreach + join: `python flow.py run`", satchel, metaflow, args
                        )
                    )
                else:
                    if "foreach" not in only:  # the client reads a foreach run
                        satchel.run_flow("foreach", args.max_workers)
                        metaflow.run_flow("foreach", args.max_workers)
                    rows.append(client_row(satchel, metaflow, args))
        load_after = os.getloadavg()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    workers = f"--max-workers {args.max_workers}" if args.max_workers else "each tool's default parallelism"
    table = Table(
        title=f"Satchel flows vs Metaflow {METAFLOW_VERSION} — median of {args.repeats} (after one warm-up); "
        f"{os.cpu_count()} CPUs; {workers}; load avg (1 min) {load_before[0]:.2f} before, {load_after[0]:.2f} after"
    )
    for col in ("what", "satchel", f"metaflow {METAFLOW_VERSION}", "metaflow / satchel", "target"):
        table.add_column(col)
    for r in rows:
        table.add_row(*r)
    Console(width=200).print(table)


if __name__ == "__main__":
    main()
