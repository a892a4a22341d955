"""Progress: the per-step counts from task events, the live rich table, plain lines, and --quiet."""

from __future__ import annotations

import io
import re
import subprocess
import sys

import pytest
from rich.console import Console

from satchel.flows import Runner
from satchel.flows.progress import PlainProgress, ProgressModel, StepCounts
from tests.flows.helpers import FLOWDEFS, flow_class

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def test_counts_follow_task_events() -> None:
    model = ProgressModel()
    model.start("F/1", ["start", "fit", "end"])
    for event in ["started", "done"]:
        model.task("start", event)
    for _ in range(3):
        model.task("fit", "started")
    model.task("fit", "done")
    model.task("fit", "retried")
    model.task("fit", "failed")
    assert model.steps["fit"] == StepCounts(done=1, running=0, failed=1, retried=1, cloned=0)
    model.task("fit", "started")
    assert model.steps["fit"].running == 1
    model.task("end", "cloned")
    assert model.steps["end"] == StepCounts(done=1, cloned=1)
    model.stop("failed")
    assert model.steps["fit"].running == 0 and model.status == "failed"
    assert model.summary("fit") == "fit: 1 done, 1 failed (1 retried)"
    assert list(model.steps) == ["start", "fit", "end"]
    with pytest.raises(ValueError, match="unknown task event 'paused'"):
        model.task("fit", "paused")


def test_plain_progress_prints_a_line_per_step_at_the_end() -> None:
    lines: list[str] = []
    plain = PlainProgress(lines.append)
    plain.start("F/1", ["start", "end"])
    plain.task("start", "started")
    assert lines == []
    plain.task("start", "done")
    plain.stop("successful")
    assert lines == ["  start: 1 done, 0 failed", "  end: 0 done, 0 failed"]


def test_live_table_renders_every_step_and_the_final_counts(store_url: str) -> None:
    out = io.StringIO()
    run = Runner(
        flow_class("foreach", "ForeachFlow"), progress=Console(file=out, force_terminal=True, width=100)
    ).run(width=7)
    text = ANSI.sub("", out.getvalue())
    final = text[text.rindex(f"ForeachFlow/{run.id} successful") :]
    for step, done in (("start", 1), ("square", 7), ("join", 1), ("end", 1)):
        assert re.search(rf"│ {step}\s+│\s+{done} │\s+0 │\s+0 │\s+0 │\s+0 │", final), final


def test_command_line_modes(store_url: str) -> None:
    script = str(FLOWDEFS / "foreach.py")

    def run(*flags: str) -> str:
        proc = subprocess.run(
            [sys.executable, script, "run", "--width", "3", *flags],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    plain = run()  # stdout is a pipe: plain lines
    assert "  square: 3 done, 0 failed" in plain and "┃" not in plain
    forced = run("--progress")
    assert "┃ step" in forced and re.search(r"│ square\s+│\s+3 │", forced)
    quiet = run("--quiet").splitlines()
    assert len(quiet) == 1 and quiet[0].endswith(": run successful")
