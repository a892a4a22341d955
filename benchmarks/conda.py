"""Conda environments: solve, materialize and extend through Satchel, against py-rattler's own `solve` and
`install` called directly (the floor) on the same channel, specs and virtual packages, in the same run.

    .venv/bin/python benchmarks/conda.py [--repeats 5] [--only solve,materialize,extend] [--wheels DIR]

The channel is the suite's (tests/fixtures/conda_channel.py: PyPI wheels converted to conda packages and a
`python` stand-in around this machine's interpreter), built in a temporary SATCHEL_HOME; its wheels are
downloaded once into --wheels (default: the suite's own wheel cache). Sections:
  solve        11 specs -> 20 packages from the channel's directory (read in place: rattler caches no
               repodata for it), then from the same channel over loopback HTTP with an empty repodata
               cache (cold) and a warm one: Satchel's `lock_environment` against `rattler.solve` with a
               new Gateway on a cache directory of its own, as Satchel makes one per solve;
  materialize  that lock into an environment from an empty cache (files from a store, as after a load)
               and from a warm one (blob and rattler package caches), with EnvironmentCache.ensure,
               against `rattler.install` of the same records (and that plus compileall, the same work);
  extend       a resolved 18-package base extended by one conda package (`markupsafe`: solve, mirror,
               materialize, warm caches) against rattler solving with the base pinned and installing;
               and by a PyPI requirement the base already meets (`six`: no solve, no build).
Every figure is the median over --repeats runs (4x that for the solves), Satchel's and the floor's runs
interleaved; the counters under the table say what each side built and where Satchel's time went.
Targets (issue 13): within 1.2x of bare rattler, solve < 100 ms warm, materialize < 1 s warm, extend < 2 s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.sections import chosen_sections  # noqa: E402

SECTIONS = ("solve", "materialize", "extend")
BASE_SPECS = [
    "rich",
    "requests",
    "click",
    "attrs",
    "packaging",
    "humanize=4.12",
    "six",
    "fastavro",
    "tomli",
    "typing-extensions",
]
SPECS = [*BASE_SPECS, "jinja2"]  # + jinja2 and markupsafe: 20 packages with their dependencies
console = Console(stderr=True)


@dataclass
class Row:
    what: str
    satchel: float  # seconds
    floor: float | None
    floor_what: str
    target: float | None = None  # seconds
    note: str = ""


@dataclass
class Phases:
    """Seconds spent in named phases of Satchel's code, per run (see `timing`)."""

    runs: list[dict[str, float]] = field(default_factory=list)

    def median(self, name: str) -> float:
        return statistics.median(r.get(name, 0.0) for r in self.runs)

    def line(self) -> str:
        names = [name for name in SPY if any(name in r for r in self.runs)]
        return ", ".join(f"{name} {self.median(name) * 1e3:.0f}" for name in names)


def spied() -> dict[str, tuple[object, str]]:
    """Satchel's phases the counters break a run into: (module or class, attribute) each."""
    import satchel.packager.locking as locking
    import satchel.packager.resolvers.rattler as rattler_resolver
    from satchel.packager.blobcache import BlobCache

    return {
        "solve": (locking, "lock_environment"),
        "mirror": (locking, "mirror"),
        "fetch": (BlobCache, "get"),
        "one-off channel": (rattler_resolver, "_mirror_channel"),
        "rattler install": (rattler_resolver, "run"),
        "wheels": (rattler_resolver, "install_wheels"),
        "bytecode": (rattler_resolver, "_compile_bytecode"),
        "marker fsync": (os, "fsync"),
    }


SPY = ("solve", "mirror", "fetch", "one-off channel", "rattler install", "wheels", "bytecode", "marker fsync")


@contextmanager
def timing(phases: Phases, targets: dict[str, tuple[object, str]]) -> Iterator[None]:
    """Time calls of module-level functions (name -> (module, attribute)) into a new run of `phases`."""
    run: dict[str, float] = {}
    saved = []
    for name, (module, attr) in targets.items():
        original = getattr(module, attr)

        def timed(*a, _f=original, _n=name, **kw):  # noqa: ANN002, ANN003, ANN202
            t0 = time.perf_counter()
            try:
                return _f(*a, **kw)
            finally:
                run[_n] = run.get(_n, 0.0) + time.perf_counter() - t0

        saved.append((module, attr, original))
        setattr(module, attr, timed)
    try:
        yield
    finally:
        for module, attr, original in saved:
            setattr(module, attr, original)
        phases.runs.append(run)


def nothing() -> None:
    pass


def paired(
    runs: dict[str, tuple[Callable[[], object], Callable[[], object]]], repeats: int
) -> dict[str, float]:
    """The median seconds of each `fn` of `name: (before, fn)` (`before` untimed), their runs interleaved
    so that the machine's load swings reach Satchel and the floor alike."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for i in range(repeats):
        order = list(runs.items())
        for name, (before, fn) in order[::-1] if i % 2 else order:  # neither always runs first
            before()
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def tree_counts(prefix: Path) -> tuple[int, int, int]:
    """(files, bytes, .pyc files) under `prefix`, each hard-linked file counted once."""
    files = size = pyc = 0
    seen: set[tuple[int, int]] = set()
    for dirpath, _, names in os.walk(prefix):
        for name in names:
            st = os.lstat(os.path.join(dirpath, name))
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            files += 1
            size += st.st_size
            pyc += name.endswith(".pyc")
    return files, size, pyc


class Bench:
    """The channel, a store, and the floor's own caches, under one temporary directory."""

    def __init__(self, work: Path, wheels: Path, repeats: int) -> None:
        from satchel.packager.export import WORKER_REQUIREMENTS
        from satchel.packager.stores import open_store
        from tests.fixtures.conda_channel import build_channel

        self.work = work
        self.home = work / "home"
        self.repeats = repeats
        os.environ["SATCHEL_HOME"] = str(self.home)
        with console.status("building the conda channel"):
            self.channel = build_channel(work / "channel", wheels)
        self.runtime = list(WORKER_REQUIREMENTS)
        self.store = open_store((work / "store").as_uri())
        self.counters: list[str] = []

    # -- the floor: py-rattler directly ------------------------------------------------------------

    def rattler_solve(
        self, specs: list[str], cache: Path, pinned: list | None = None, url: str | None = None
    ) -> list:
        import rattler

        async def solve() -> list:
            return await rattler.solve(
                sources=[rattler.Channel(url or self.channel.url)],
                specs=specs,
                gateway=rattler.Gateway(cache_dir=cache),
                platforms=["linux-64", "noarch"],
                virtual_packages=rattler.VirtualPackage.detect(),
                pinned_packages=pinned,
            )

        return asyncio.run(solve())

    def rattler_install(self, records: list, prefix: Path, cache: Path) -> None:
        import rattler

        asyncio.run(
            rattler.install(
                records,
                target_prefix=prefix,
                cache_dir=cache,
                show_progress=False,
                execute_link_scripts=False,
            )
        )

    @staticmethod
    def compileall(prefix: Path) -> None:
        site = next((prefix / "lib").glob("python*/site-packages"))
        subprocess.run([str(prefix / "bin" / "python"), "-m", "compileall", "-q", "-j", "0", str(site)])

    # -- Satchel ------------------------------------------------------------------------------------

    def environment(self, specs: list[str], channel: str | None = None):  # noqa: ANN201
        from satchel.packager.environment import Environment

        return Environment(conda=specs, channels=[channel or str(self.channel.path)])

    def lock(self, env):  # noqa: ANN001, ANN201
        from satchel.packager.locking import lock_environment

        return lock_environment(env, self.runtime)

    def mirror(self, lock) -> None:  # noqa: ANN001
        from satchel.packager.locking import mirror

        mirror(lock, self.store)

    def ensure(self, lock, mirror: bool = True) -> Path:  # noqa: ANN001
        from satchel.packager.locking import package_fetcher
        from satchel.runtime.environments import EnvironmentCache

        if mirror:
            self.mirror(lock)
        return EnvironmentCache().ensure(lock, package_fetcher(self.store))

    def drop(self, *names: str) -> None:
        for name in names:
            shutil.rmtree(self.home / name, ignore_errors=True)

    # -- sections -----------------------------------------------------------------------------------

    def solve(self) -> list[Row]:
        from tests.fixtures.conda_channel import PY, served

        repeats = self.repeats * 4  # milliseconds each: more runs for a steadier median
        floor_specs = [*SPECS, f"python {PY}.*"]
        cache = self.work / "floor-repodata"
        no_cache = lambda: shutil.rmtree(cache, ignore_errors=True)  # noqa: E731
        local = self.environment(SPECS)
        t = paired(
            {
                "satchel": (nothing, lambda: self.lock(local)),
                "floor": (nothing, lambda: self.rattler_solve(floor_specs, cache)),
            },
            repeats,
        )
        n = len(self.lock(local).packages)
        rows = [
            Row(
                f"solve {len(SPECS)} specs -> {n} packages, channel directory",
                t["satchel"],
                t["floor"],
                "rattler.solve",
                target=0.100,
                note="read in place: rattler keeps no repodata cache for a local channel",
            )
        ]
        with served(self.channel.path) as server:
            env = self.environment(SPECS, channel=server.url)
            over_http = lambda: self.rattler_solve(floor_specs, cache, url=server.url)  # noqa: E731
            cold = paired(
                {
                    "satchel": (lambda: self.drop("conda/repodata"), lambda: self.lock(env)),
                    "floor": (no_cache, over_http),
                },
                repeats,
            )
            warm = paired(
                {"satchel": (nothing, lambda: self.lock(env)), "floor": (nothing, over_http)}, repeats
            )
        http = "solve, the channel over loopback HTTP"
        return [
            *rows,
            Row(f"{http}, cold repodata cache", cold["satchel"], cold["floor"], "rattler.solve"),
            Row(
                f"{http}, warm repodata cache", warm["satchel"], warm["floor"], "rattler.solve", target=0.100
            ),
        ]

    def materialize(self) -> list[Row]:
        lock = self.lock(self.environment(SPECS))
        self.mirror(lock)  # done by export: a load finds the files in the store
        records = self.rattler_solve([*SPECS, f"python {lock.python}.*"], self.work / "floor-repodata")
        pkgs, prefix = self.work / "floor-pkgs", self.work / "floor-prefix"
        phases = {"empty": Phases(), "warm": Phases()}
        spy = spied()

        def satchel_run(kind: str) -> Callable[[], object]:
            def once() -> None:
                with timing(phases[kind], spy):
                    self.ensure(lock, mirror=False)

            return once

        no_pkgs = lambda: (shutil.rmtree(pkgs, ignore_errors=True), no_prefix())  # noqa: E731
        no_prefix = lambda: shutil.rmtree(prefix, ignore_errors=True)  # noqa: E731
        install = lambda: self.rattler_install(records, prefix, pkgs)  # noqa: E731
        empty = paired(
            {
                "satchel": (
                    lambda: self.drop("envs", "conda/pkgs", "conda/pyc", "blobs"),
                    satchel_run("empty"),
                ),
                "floor": (no_pkgs, install),
                "floor+bytecode": (no_pkgs, lambda: (install(), self.compileall(prefix))),
            },
            self.repeats,
        )
        warm = paired(
            {"satchel": (lambda: self.drop("envs"), satchel_run("warm")), "floor": (no_prefix, install)},
            self.repeats,
        )
        env_dir = self.ensure(lock, mirror=False)
        no_prefix()
        install()
        floor_counts = tree_counts(prefix)
        for side, (files, size, pyc) in (
            ("satchel", tree_counts(env_dir)),
            ("rattler.install", floor_counts),
        ):
            self.counters.append(
                f"materialize, {side}: {len(lock.packages)} packages, {files} files ({pyc} .pyc), "
                f"{size / 1e6:.1f} MB"
            )
        for kind, p in phases.items():
            how = "compiled" if kind == "empty" else "linked from its cache"
            self.counters.append(
                f"materialize {kind}, satchel phases (median ms): {p.line()} (bytecode {how})"
            )
        n = len(lock.packages)
        return [
            Row(
                f"materialize {n} packages, empty caches", empty["satchel"], empty["floor"], "rattler.install"
            ),
            Row(
                "  the same, both with bytecode",
                empty["satchel"],
                empty["floor+bytecode"],
                "rattler.install + compileall",
            ),
            Row(
                f"materialize {n} packages, warm caches",
                warm["satchel"],
                warm["floor"],
                "rattler.install",
                target=1.0,
            ),
        ]

    def extend(self) -> list[Row]:
        from satchel.packager.environment import Environment

        base = self.lock(self.environment(BASE_SPECS))
        self.ensure(base)
        cache, pkgs, prefix = (
            self.work / "floor-repodata",
            self.work / "floor-pkgs",
            self.work / "floor-prefix",
        )
        base_records = self.rattler_solve([*BASE_SPECS, f"python {base.python}.*"], cache)
        floor_specs = [r.name.normalized for r in base_records] + ["markupsafe"]

        phases, spy = Phases(), spied()

        def satchel_conda() -> None:
            with timing(phases, spy):
                lock = self.lock(Environment.resolved(base).extend(conda=["markupsafe"]))
                self.ensure(lock)

        def floor_conda() -> None:
            records = self.rattler_solve(floor_specs, cache, pinned=base_records)
            self.rattler_install(records, prefix, pkgs)

        extended = self.lock(Environment.resolved(base).extend(conda=["markupsafe"]))
        drop = lambda: self.drop(f"envs/{extended.env_id}")  # noqa: E731
        no_prefix = lambda: shutil.rmtree(prefix, ignore_errors=True)  # noqa: E731
        for before, warm_up in ((drop, satchel_conda), (no_prefix, floor_conda)):
            before()
            warm_up()  # markupsafe into the blob and package caches (a warm cache, as the target says)

        def satchel_pypi() -> None:
            self.ensure(self.lock(Environment.resolved(base).extend(pypi=["six"])))

        t = paired(
            {
                "satchel": (drop, satchel_conda),
                "floor": (no_prefix, floor_conda),
                "satchel pypi": (nothing, satchel_pypi),
            },
            self.repeats,
        )
        conda, floor, pypi = t["satchel"], t["floor"], t["satchel pypi"]
        same = self.lock(Environment.resolved(base).extend(pypi=["six"])).env_id == base.env_id
        self.counters.append(
            f"extend: base {len(base.packages)} packages -> {len(extended.packages)}; "
            f"pypi=['six'] met by the base: {'same environment, nothing built' if same else 'a new environment'}"
        )
        phases.runs = phases.runs[1:]  # not the warm-up's
        self.counters.append(f"extend by markupsafe, satchel phases (median ms): {phases.line()}")
        return [
            Row(
                f"extend {len(base.packages)}-package base by conda markupsafe",
                conda,
                floor,
                "rattler.solve (base pinned) + install",
                target=2.0,
            ),
            Row("extend by pypi six (met by the base)", pypi, None, "no rattler equivalent", target=2.0),
        ]


def fmt(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return f"{seconds * 1e3:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections")
    default_wheels = (
        Path(os.environ.get("TMPDIR", "/tmp")) / f"satchel-test-home-{os.getuid()}" / "test-wheels"
    )
    parser.add_argument("--wheels", type=Path, default=default_wheels, help="wheel cache for the channel")
    args = parser.parse_args()
    only = chosen_sections(parser, args.only, SECTIONS)

    work = Path(tempfile.mkdtemp(prefix="satchel-conda-bench-"))
    try:
        bench = Bench(work, args.wheels, args.repeats)
        load_before = os.getloadavg()
        rows: list[Row] = []
        for section in only:
            with console.status(f"measuring: {section}"):
                rows += getattr(bench, section)()
        load_after = os.getloadavg()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    table = Table(
        title=f"Satchel conda environments — median of {args.repeats}; {os.cpu_count()} CPUs; "
        f"load avg (1 min) {load_before[0]:.2f} before, {load_after[0]:.2f} after"
    )
    for column in ("what", "satchel", "floor (same run)", "ratio", "target"):
        table.add_column(column)
    for row in rows:
        ratio = f"{row.satchel / row.floor:.2f}x" if row.floor else "—"
        target = "—" if row.target is None else f"< {fmt(row.target)}"
        if row.target is not None:
            target += " ok" if row.satchel < row.target else " MISSED"
        floor = f"{fmt(row.floor)} ({row.floor_what})" if row.floor is not None else row.floor_what
        table.add_row(row.what, fmt(row.satchel), floor, ratio, target)
    out = Console(width=200)
    out.print(table)
    for row in rows:
        if row.note:
            bench.counters.insert(0, f"{row.what.split(',')[0]}: {row.note}")
    for line in bench.counters:
        out.print(line)


if __name__ == "__main__":
    main()
