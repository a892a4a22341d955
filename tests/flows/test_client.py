"""The client API: runs, steps, tasks, data, tags, users."""

from __future__ import annotations

import getpass

import pytest

from satchel.flows import Flow
from tests.flows.helpers import run_flow


def test_latest_successful_run_tasks_and_data(store_url: str) -> None:
    run = run_flow("runner", "foreach", "ForeachFlow", width=4)
    run_flow("runner", "failing", "FailingFlow", expect_ok=False)
    flow = Flow("ForeachFlow")
    latest = flow.latest_successful_run
    assert latest.id == run.id
    tasks = latest["square"].tasks
    assert [t.data.square_value for t in tasks] == [0, 1, 4, 9]
    assert latest.data.squares == [0, 1, 4, 9]
    assert "square_value" in tasks[0].data and "nothing" not in tasks[0].data
    with pytest.raises(AttributeError, match="has no artifact 'nothing'"):
        _ = tasks[0].data.nothing
    with pytest.raises(KeyError, match="no step 'fit'"):
        _ = latest["fit"]
    assert Flow("FailingFlow").latest_run.status == "failed"
    assert Flow("FailingFlow").latest_successful_run is None


def test_runs_by_tag_newest_first(store_url: str) -> None:
    a = run_flow("runner", "linear", "LinearFlow", tags=("nightly",))
    b = run_flow("cli", "linear", "LinearFlow", tags=("nightly", "big"), alpha=2.0)
    c = run_flow("runner", "linear", "LinearFlow")
    flow = Flow("LinearFlow")
    assert [r.id for r in flow.runs()] == [c.id, b.id, a.id]
    assert [r.id for r in flow.runs("nightly")] == [b.id, a.id]
    assert [r.id for r in flow.runs("nightly", "big")] == [b.id]
    assert flow[b.id].tags == {"nightly", "big"}
    assert flow[b.id].parameters["alpha"] == 2.0


def test_ids_user_and_attempt_recorded(store_url: str) -> None:
    run = run_flow("runner", "linear", "LinearFlow")
    user = getpass.getuser()
    assert run.user == user
    assert [r.id for r in Flow("LinearFlow").runs(user=user)] == [run.id]
    assert Flow("LinearFlow").runs(user="someone-else") == []
    task = run["b"].task
    assert task.pathspec == f"LinearFlow/{run.id}/b/{task.id}"
    assert task.attempt == 0 and task.user == user and task.successful
    assert task.record["inputs"] == [run["a"].task.pathspec]


def test_unknown_run(store_url: str) -> None:
    with pytest.raises(KeyError, match="no run '123'"):
        _ = Flow("LinearFlow")["123"]
    assert Flow("Nothing").latest_run is None
