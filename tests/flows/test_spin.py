"""spin: re-execute one step's tasks against the inputs recorded in a past run, as a separate run marked
as a spin, leaving the original run as it was."""

from __future__ import annotations

import subprocess
import sys

import pytest

from satchel.flows import Flow, FlowError, Runner
from tests.flows.helpers import FLOWDEFS, flow_class


def test_spin_runs_the_edited_step_on_recorded_inputs(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    flow = flow_class("spinnable", "SpinFlow")
    monkeypatch.setenv("SPIN_FACTOR", "2")
    original = Runner(flow).run()
    assert [t.data.scaled for t in original["scale"].tasks] == [7, 9, 11]

    monkeypatch.setenv("SPIN_FACTOR", "10")  # the "edit"
    lines: list[str] = []
    spun = Runner(flow, echo=lines.append).spin("scale")
    assert spun.is_spin and spun.successful and spun.origin_run_id == original.id
    tasks = spun["scale"].tasks
    assert [t.data.scaled for t in tasks] == [15, 25, 35]
    assert [t.index for t in tasks] == [0, 1, 2]
    assert [t.id for t in tasks] == [t.id for t in original["scale"].tasks]
    assert tasks[1].stdout == "scaling 2 by 10\n"
    assert tasks[0].record["produced"] == ["scaled"]
    assert spun["start"].tasks == [] and spun["join"].tasks == []
    assert any(line.endswith("] scaling 3 by 10") for line in lines)
    assert any(line.endswith("] artifacts produced: scaled") for line in lines)

    again = Flow("SpinFlow")[original.id]  # the original run is unchanged
    assert [t.data.scaled for t in again["scale"].tasks] == [7, 9, 11]
    assert again.data.total == 27
    assert Flow("SpinFlow").latest_successful_run.id == original.id


def test_spin_a_join_and_a_single_task(store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    flow = flow_class("spinnable", "SpinFlow")
    original = Runner(flow).run()
    joined = Runner(flow).spin("join", original.id)
    assert joined["join"].task.data.total == original.data.total  # the inputs recorded in the original
    assert joined["join"].task.record["inputs"] == [t.pathspec for t in original["scale"].tasks]
    second = original["scale"].tasks[1]
    monkeypatch.setenv("SPIN_FACTOR", "3")
    one = Runner(flow).spin("scale", task=second.id)
    assert [t.data.scaled for t in one["scale"].tasks] == [2 * 3 + 5]


def test_spin_refusals(store_url: str) -> None:
    flow = flow_class("spinnable", "SpinFlow")
    with pytest.raises(FlowError, match="has no successful run in .* to start from"):
        Runner(flow).spin("scale")
    original = Runner(flow).run()
    with pytest.raises(FlowError, match="cannot spin SpinFlow step 'scal': no such step"):
        Runner(flow).spin("scal")
    with pytest.raises(FlowError, match=f"run SpinFlow/{original.id} has no task '99' of step 'scale'"):
        Runner(flow).spin("scale", task="99")
    with pytest.raises(FlowError, match="resume reuses the parameters of the origin run"):
        from satchel.flows.driver import FlowRun

        FlowRun(flow, parameters={"x": 1}, mode="resume")


def test_spin_on_the_command_line(store_url: str) -> None:
    script = str(FLOWDEFS / "spinnable.py")
    first = subprocess.run(
        [sys.executable, script, "run", "--quiet"], capture_output=True, text=True, timeout=120
    )
    assert first.returncode == 0, first.stderr
    original = Flow("SpinFlow").latest_run
    task = original["scale"].tasks[2]
    proc = subprocess.run(
        [sys.executable, script, "spin", "scale", "--run-id", original.id, "--task", task.id],
        capture_output=True,
        text=True,
        timeout=120,
        env={**__import__("os").environ, "SPIN_FACTOR": "7"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"/scale/{task.id}] scaling 3 by 7" in proc.stdout
    assert f"/scale/{task.id}] artifacts produced: scaled" in proc.stdout
    spun = Flow("SpinFlow").runs()[0]
    assert spun.is_spin and f"Flow('SpinFlow')['{spun.id}']['scale'].task.data" in proc.stdout
    assert spun["scale"].task.data.scaled == 3 * 7 + 5
