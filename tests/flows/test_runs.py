"""Every graph shape, run both as `python flow.py run` (a real subprocess) and through Runner."""

from __future__ import annotations

import pytest

from satchel.flows import CaughtException, Flow
from tests.flows.helpers import run_cli, run_flow

MODES = ["cli", "runner"]


@pytest.mark.parametrize("mode", MODES)
def test_linear(mode: str, store_url: str) -> None:
    run = run_flow(mode, "linear", "LinearFlow", alpha=0.7)
    assert run.successful
    assert run.parameters == {"alpha": 0.7, "label": "x"}
    assert run["a"].task.data.total == pytest.approx(6 * 0.7)
    assert run.data.doubled == pytest.approx((6 * 0.7 + 1) * 2)
    assert run.data.summary == f"x:{(6 * 0.7 + 1) * 2}"
    assert run["end"].task.data.alpha == 0.7
    assert "starting with 0.7" in run["start"].task.stdout
    assert [s.name for s in run] == ["start", "a", "b", "c", "end"]


def test_parameter_default_and_type_from_the_cli(store_url: str) -> None:
    run = run_flow("cli", "linear", "LinearFlow")
    assert run.parameters == {"alpha": 0.5, "label": "x"}
    proc = run_cli("linear", "--alpha", "lots")
    assert proc.returncode == 1
    assert "parameter 'alpha' expects float, got 'lots'" in proc.stderr


def test_usage_errors_exit_2_naming_what_is_wrong(store_url: str) -> None:
    """A command line the flow cannot take is a usage error (exit status 2), unlike a failed run (1)."""
    import subprocess
    import sys

    from tests.flows.helpers import FLOWDEFS

    script = str(FLOWDEFS / "linear.py")
    for args, named in (([], "command"), (["run", "--executor", "nope"], "--executor"), (["spin"], "STEP")):
        proc = subprocess.run([sys.executable, script, *args], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2 and named.lower() in proc.stderr.lower(), (args, proc.stderr)
    assert Flow("LinearFlow").latest_run is None


def test_runner_refuses_unknown_parameters(store_url: str) -> None:
    from satchel.flows import FlowError, Runner
    from tests.flows.helpers import flow_class

    with pytest.raises(FlowError, match="has no parameter beta"):
        Runner(flow_class("linear", "LinearFlow")).run(beta=1)


@pytest.mark.parametrize("mode", MODES)
def test_branch_and_join(mode: str, store_url: str) -> None:
    run = run_flow(mode, "branch", "BranchFlow")
    assert run.data.result == (10, [11, 12], 11)
    assert run["join"].task.record["inputs"] == [
        run["left"].task.pathspec,
        run["right"].task.pathspec,
    ]


@pytest.mark.parametrize("mode", MODES)
def test_foreach_of_fifty(mode: str, store_url: str) -> None:
    run = run_flow(mode, "foreach", "ForeachFlow", width=50)
    tasks = run["square"].tasks
    assert len(tasks) == 50
    assert all(t.successful for t in tasks)
    assert [t.data.square_value for t in tasks] == [i * i for i in range(50)]
    assert [t.data.position for t in tasks] == list(range(50))
    assert [t.index for t in tasks] == list(range(50))
    assert run.data.squares == [i * i for i in range(50)]
    assert run.data.total == sum(i * i for i in range(50))


@pytest.mark.parametrize("mode", MODES)
def test_nested_foreach_with_a_branch_inside(mode: str, store_url: str) -> None:
    run = run_flow(mode, "nested", "NestedFlow")
    assert run["end"].task.data.all_pairs == ["A1a1", "A2a2", "B1b1", "B2b2", "C1c1", "C2c2"]
    assert len(run["inner"].tasks) == 6
    assert len(run["both"].tasks) == 6
    assert len(run["inner_join"].tasks) == 3


@pytest.mark.parametrize("mode", MODES)
def test_a_failing_step_fails_the_run(mode: str, store_url: str) -> None:
    run = run_flow(mode, "failing", "FailingFlow", expect_ok=False)
    assert run.status == "failed"
    assert "step 'boom'" in run.record["error"] and "the middle step broke" in run.record["error"]
    (task,) = run["boom"].tasks
    assert not task.successful
    assert "ValueError: the middle step broke" in task.exception
    assert "about to fail" in task.stdout
    assert "Traceback" in task.stderr
    assert run["end"].tasks == []
    assert Flow("FailingFlow").latest_successful_run is None


def test_failing_step_message_on_the_command_line(store_url: str) -> None:
    proc = run_cli("failing")
    assert proc.returncode == 1
    assert "step 'boom'" in proc.stderr and "ValueError: the middle step broke" in proc.stderr


@pytest.mark.parametrize("mode", MODES)
def test_retry_catch_and_timeout(mode: str, store_url: str) -> None:
    run = run_flow(mode, "resilient", "ResilientFlow")
    assert run.successful
    flaky = run["flaky"].task
    assert flaky.attempt == 2 and flaky.data.attempts == 3
    assert flaky.record["resources"] == {"cpu": 1, "memory": 512, "gpu": 0}
    broken = run["join"].task.data.broken_error
    assert (
        isinstance(broken, CaughtException) and broken.type == "KeyError" and "never works" in broken.message
    )
    stuck = run["join"].task.data.stuck_error
    assert stuck.type == "TimeoutError" and "@timeout" in stuck.message
    assert run["stuck"].task.record["caught"].startswith("TimeoutError")


@pytest.mark.parametrize("mode", MODES)
def test_unpicklable_artifact_names_artifact_and_step(mode: str, store_url: str) -> None:
    run = run_flow(mode, "unpicklable", "UnpicklableFlow", expect_ok=False)
    assert "artifact 'lock' of step 'start' cannot be stored" in run.record["error"]


def test_show(store_url: str) -> None:
    import subprocess
    import sys

    from tests.flows.helpers import FLOWDEFS

    proc = subprocess.run(
        [sys.executable, str(FLOWDEFS / "branch.py"), "show"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0
    assert "Step start (split)" in proc.stdout and "=> left, right" in proc.stdout


def test_max_workers_one_still_runs_everything(store_url: str) -> None:
    run = run_flow("cli", "foreach", "ForeachFlow", width=5, max_workers=1)
    assert run.data.squares == [0, 1, 4, 9, 16]


def test_logs_command(store_url: str) -> None:
    import subprocess
    import sys

    from tests.flows.helpers import FLOWDEFS

    run = run_flow("cli", "failing", "FailingFlow", expect_ok=False)
    script = str(FLOWDEFS / "failing.py")
    task = run["boom"].task
    out = subprocess.run(
        [sys.executable, script, "logs", f"{run.id}/boom/{task.id}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0 and out.stdout == "about to fail\n"
    err = subprocess.run(
        [sys.executable, script, "logs", f"FailingFlow/{run.id}/boom", "--stderr"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert err.returncode == 0 and "ValueError: the middle step broke" in err.stdout
    missing = subprocess.run(
        [sys.executable, script, "logs", f"{run.id}/boom/999"], capture_output=True, text=True, timeout=60
    )
    assert missing.returncode == 1 and "no finished task" in missing.stderr
