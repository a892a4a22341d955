"""`@environment` steps: tasks in fresh interpreters of a materialized environment."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from satchel.flows import Flow, RunFailed, Runner
from tests.flows.helpers import flow_class, run_flow


def test_environment_step_runs_in_its_own_environment(store_url: str) -> None:
    assert importlib.util.find_spec("humanize") is None  # only the step's environment has it
    run = run_flow("runner", "envstep", "EnvFlow", shards=3)
    assert run.successful
    assert run.data.models == ["1,000", "2,000", "3,000"]
    assert run.data.count == 3
    (executable,) = run["join"].task.data.executables
    assert executable != sys.executable
    fits = sorted(run["fit"].tasks, key=lambda t: t.data.shard)
    assert [t.data.model for t in fits] == ["1,000", "2,000", "3,000"]
    assert "fitted shard 1" in fits[1].stdout
    assert all(t.data.pid != run["start"].task.data.parent_pid for t in fits)


def test_environment_step_from_the_cli(store_url: str) -> None:
    run = run_flow("cli", "envstep", "EnvFlow", shards=2)
    assert run.successful
    assert run.data.models == ["1,000", "2,000"]


def test_unresolvable_environment_names_the_step(store_url: str) -> None:
    with pytest.raises(RunFailed) as info:
        Runner(flow_class("envstep", "BadEnvFlow")).run()
    message = str(info.value)
    assert "step 'fit'" in message
    assert "humanize==99.0.0" in message
    run = Flow("BadEnvFlow")[info.value.run_id]
    assert not run.successful


def test_environment_tasks_honour_timeout_and_catch(store_url: str) -> None:
    run = run_flow("runner", "envstep", "SlowEnvFlow")
    assert run.successful
    assert run["stuck"].task.data.stuck_error.type == "TimeoutError"
    assert run["broken"].task.data.broken_error.type == "ValueError"
    assert "no model for you" in run["broken"].task.data.broken_error.message
