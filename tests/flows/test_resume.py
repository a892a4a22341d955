"""resume: a new run that clones the successful tasks of a failed run before a step (without running
them again: every task appends its step and pid to a log file) and runs the rest."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from satchel.flows import Flow, FlowError, RunFailed, Runner
from tests.flows.helpers import FLOWDEFS, flow_class

UPSTREAM = ["start", "each0", "each1", "each2", "each3", "join"]


@pytest.fixture
def marks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """(the task log, the flag file that makes `middle` fail), set in the environment tasks inherit."""
    log, flag = tmp_path / "tasks.log", tmp_path / "fail"
    monkeypatch.setenv("RESUME_LOG", str(log))
    monkeypatch.setenv("RESUME_FAIL_FILE", str(flag))
    flag.touch()
    return log, flag


def _ran(log: Path) -> list[str]:
    return [line.split()[0] for line in log.read_text().splitlines()]


def _failed_run(flow: type) -> str:
    with pytest.raises(RunFailed) as info:
        Runner(flow).run()
    return info.value.run_id


def test_resume_clones_upstream_tasks_and_runs_the_rest(store_url: str, marks: tuple[Path, Path]) -> None:
    log, flag = marks
    flow = flow_class("resumable", "ResumeFlow")
    failed_id = _failed_run(flow)
    assert sorted(_ran(log)) == sorted(UPSTREAM + ["middle"])
    flag.unlink()

    run = Runner(flow).resume()
    assert run.successful and run.id != failed_id
    assert run.origin_run_id == failed_id and run.record["resume_step"] == "middle"
    ran = _ran(log)
    assert ran.count("start") == 1 and ran.count("join") == 1  # upstream not executed again
    assert sorted(ran) == sorted(UPSTREAM + ["middle", "middle", "end"])
    assert run.data.total == sum(100 + i for i in range(4))

    origin = Flow("ResumeFlow")[failed_id]
    start = run["start"].task
    assert start.record["cloned_from"] == origin["start"].task.pathspec
    assert start.artifacts == origin["start"].task.artifacts  # the same blobs, by digest
    each = run["each"].tasks
    assert [t.index for t in each] == [0, 1, 2, 3]
    assert [t.record["cloned_from"] for t in each] == [t.pathspec for t in origin["each"].tasks]
    assert [t.data.value for t in each] == [100, 101, 102, 103]  # artifacts readable from the new run
    assert each[2].stdout == "each 2\n"
    assert run["join"].task.data.values == [100, 101, 102, 103]
    assert "cloned_from" not in run["middle"].task.record
    assert run["middle"].task.record["inputs"] == [run["join"].task.pathspec]


def test_resume_reruns_only_the_failed_splits_of_a_foreach(store_url: str, marks: tuple[Path, Path]) -> None:
    log, flag = marks
    flow = flow_class("resumable", "ResumeEachFlow")
    failed_id = _failed_run(flow)
    origin = Flow("ResumeEachFlow")[failed_id]
    ok_before = {t.index: t.pathspec for t in origin["each"].tasks if t.successful}
    assert ok_before and 2 not in ok_before  # split 2 failed; a later one may not have started
    flag.unlink()
    log.write_text("")

    run = Runner(flow).resume()
    assert run.successful and run.record["resume_step"] == "each"
    each = {t.index: t for t in run["each"].tasks}
    assert sorted(each) == [0, 1, 2, 3]
    for index, task in each.items():  # cloned exactly where the origin split had succeeded
        assert task.record.get("cloned_from") == ok_before.get(index)
    ran = _ran(log)
    assert sorted(ran) == sorted([f"each{i}" for i in range(4) if i not in ok_before] + ["join", "end"])
    assert run.data.values == [0, 10, 20, 30]

    log.write_text("")  # a step named by the user runs again whole
    again = Runner(flow).resume("each", origin_run_id=failed_id)
    assert sorted(_ran(log)) == sorted([f"each{i}" for i in range(4)] + ["join", "end"])
    assert again.data.values == [0, 10, 20, 30]


def test_resume_at_a_named_step_of_a_named_run(store_url: str, marks: tuple[Path, Path]) -> None:
    log, flag = marks
    flow = flow_class("resumable", "ResumeFlow")
    failed_id = _failed_run(flow)
    flag.unlink()
    first = Runner(flow).resume()
    log.write_text("")

    again = Runner(flow).resume("join", origin_run_id=failed_id)
    assert again.successful and again.origin_run_id == failed_id
    assert _ran(log) == ["join", "middle", "end"]
    assert "cloned_from" in again["each"].tasks[0].record and "cloned_from" not in again["join"].task.record
    assert Flow("ResumeFlow").latest_successful_run.id == again.id != first.id


def test_resume_refusals(store_url: str, marks: tuple[Path, Path]) -> None:
    _, flag = marks
    flow = flow_class("resumable", "ResumeFlow")
    with pytest.raises(FlowError, match="has no run in .* to start from"):
        Runner(flow).resume()
    _failed_run(flow)
    with pytest.raises(FlowError, match="cannot resume ResumeFlow at 'nope': no such step"):
        Runner(flow).resume("nope")
    with pytest.raises(FlowError, match="has no run '42'"):
        Runner(flow).resume(origin_run_id="42")
    flag.unlink()
    done = Runner(flow).resume()
    with pytest.raises(FlowError, match=f"run ResumeFlow/{done.id} succeeded, so there is no failed step"):
        Runner(flow).resume()


def test_resume_on_the_command_line(store_url: str, marks: tuple[Path, Path]) -> None:
    log, flag = marks
    script = str(FLOWDEFS / "resumable.py")
    failed = subprocess.run([sys.executable, script, "run"], capture_output=True, text=True, timeout=120)
    assert failed.returncode == 1 and "middle fails while the flag file exists" in failed.stderr
    failed_id = Flow("ResumeFlow").latest_run.id
    flag.unlink()
    proc = subprocess.run(
        [sys.executable, script, "resume", "middle", "--origin-run-id", failed_id],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run = Flow("ResumeFlow").latest_run
    assert run.successful and run.origin_run_id == failed_id
    assert f"cloned from ResumeFlow/{failed_id}/start/1" in proc.stdout
    assert "each: 4 done, 0 failed (4 cloned)" in proc.stdout
    assert _ran(log).count("each0") == 1
