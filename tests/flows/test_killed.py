"""A task killed by a signal: the run fails naming the task and the signal; @retry runs it again; nothing
it started is left running."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from satchel.flows import Flow, RunFailed, Runner
from tests.flows.helpers import flow_class
from tests.waiting import pid_gone, wait_gone


@pytest.fixture
def pids_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "pids"
    monkeypatch.setenv("KILLED_PIDS", str(path))
    yield path
    for line in path.read_text().splitlines() if path.exists() else []:  # never leave a sleeper behind
        for pid in map(int, line.split()):
            if not pid_gone(pid):
                os.kill(pid, signal.SIGKILL)


def _recorded_pids(path: Path) -> list[int]:
    return [int(p) for line in path.read_text().splitlines() for p in line.split()]


def test_a_killed_task_fails_the_run_naming_task_and_signal(store_url: str, pids_file: Path) -> None:
    with pytest.raises(RunFailed) as info:
        Runner(flow_class("killed", "KilledFlow")).run()
    run = Flow("KilledFlow")[info.value.run_id]
    (task,) = run["victim"].tasks
    assert task.pathspec in str(info.value) and "killed by signal SIGKILL" in str(info.value)
    assert task.record["error_type"] == "TaskKilled"
    assert run.status == "failed" and "killed by signal SIGKILL" in run.record["error"]
    task_pid, sleeper_pid = _recorded_pids(pids_file)
    assert wait_gone(task_pid) and wait_gone(sleeper_pid)  # the sleeper it started went with it


def test_retry_after_a_kill_succeeds(store_url: str, pids_file: Path) -> None:
    run = Runner(flow_class("killed", "KilledOnceFlow")).run()
    assert run.successful
    victim = run["victim"].task
    assert victim.attempt == 1 and victim.data.survived_attempt == 1
    assert all(wait_gone(pid) for pid in _recorded_pids(pids_file))
