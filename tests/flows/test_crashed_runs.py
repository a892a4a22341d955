"""A run whose driver died while it ran (SIGKILL, say) stays recorded as "running"; readers on the same
machine see it as "crashed" (flows/status.py), `satchel runs ls` says so, and gc collects it. Its tasks
die with the driver (flows/lifeline.py)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from satchel.core import identity as _holders
from satchel.flows import Flow, gc
from satchel.flows.datastore import FlowDatastore
from tests.flows.helpers import FLOWDEFS
from tests.flows.recorded_runs import digest_of, fake_run, run_ids
from tests.test_cli import satchel_cli
from tests.waiting import pid_gone, wait_gone, wait_until


def dead_process() -> dict:
    """The holder record of a process of this machine that has exited."""
    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    holder = _holders.of_process(proc.pid)
    proc.communicate(b"")
    return holder


def test_a_run_whose_driver_is_gone_is_crashed_and_collected(store_url: str) -> None:
    ds = FlowDatastore("DriverFlow")
    crashed = fake_run(ds, "running", {"x": 1}, driver=dead_process())
    alive = fake_run(ds, "running", {"x": 2}, driver=_holders.this_process())
    elsewhere = fake_run(ds, "running", {"x": 3}, driver={**_holders.this_process(), "host": "another-host"})
    legacy = fake_run(ds, "running", {"x": 4})  # recorded before runs named their driver
    runs = {run.id: run for run in Flow("DriverFlow")}
    assert runs[crashed].status == "crashed" and runs[crashed].finished
    assert all(runs[r].status == "running" and not runs[r].finished for r in (alive, elsewhere, legacy))
    crashed_blob = digest_of(ds, crashed, "x")
    summary = gc(keep=0, grace=0)
    assert not ds.store.has_blob(crashed_blob)
    assert summary.runs_deleted == [f"DriverFlow/{crashed}"]
    assert run_ids(ds) == [alive, elsewhere, legacy]
    assert ds.store.has_blob(digest_of(ds, alive, "x"))


@pytest.fixture
def stalled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    pids = tmp_path / "pids"
    monkeypatch.setenv("STALLED_FIFO", str(fifo))
    monkeypatch.setenv("STALLED_PIDS", str(pids))
    yield pids
    if pids.exists() and pids.read_text():  # never leave the blocked task behind
        pid = int(pids.read_text())
        if not pid_gone(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize(
    "flow", ["StalledFlow", pytest.param("StalledEnvFlow", marks=pytest.mark.slow, id="environment-step")]
)
def test_a_killed_driver_leaves_a_crashed_run_and_no_task(store_url: str, stalled: Path, flow: str) -> None:
    driver = subprocess.Popen(
        [sys.executable, str(FLOWDEFS / "stalled.py"), "run", "--quiet"],
        env={**os.environ, "STALLED_FLOW": flow},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:  # an environment step's first run builds its environment (uv, from PyPI): a generous wait
        wait_until(lambda: stalled.exists() and stalled.read_text(), timeout=300, what="the start task")
        run = Flow(flow).latest_run
        assert run is not None and run.status == "running"
        assert (
            run.record["driver"]["pid"] == driver.pid and run.record["driver"]["host"] == socket.gethostname()
        )
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=60)
    assert wait_gone(int(stalled.read_text()))  # the task died with its driver (flows/lifeline.py)
    assert Flow(flow)[run.id].status == "crashed"
    listing = satchel_cli("runs", "ls", "--flow", flow)
    assert listing.returncode == 0 and "crashed" in listing.stdout, listing.stdout + listing.stderr
    assert gc(keep=0, grace=0).runs_deleted == [f"{flow}/{run.id}"]
