"""The local executor: every task is its own process, forked from the runner; the pool is bounded."""

from __future__ import annotations

import os

import pytest

from satchel.flows import FlowSpec, RunFailed, Runner, environment, step
from satchel.flows.executors.local import LocalExecutor
from tests.flows.helpers import flow_class


def test_each_task_is_a_separate_forked_process(store_url: str) -> None:
    run = Runner(flow_class("pids", "PidFlow"), max_workers=3).run()
    pids = run["join"].task.data.pids
    assert len(set(pids)) == 6
    assert os.getpid() not in pids
    assert run["start"].task.data.pid not in pids
    assert run["each"].tasks[0].record["resources"]["cpu"] == 2


def test_pool_capacity_counts_cpu() -> None:
    executor = LocalExecutor(max_workers=3)
    assert executor.can_accept(2)
    executor._used = 2
    assert executor.can_accept(1) and not executor.can_accept(2)
    executor._used = 0
    assert executor.can_accept(10)  # a task bigger than the pool still runs, alone
    with pytest.raises(ValueError, match="at least 1"):
        LocalExecutor(max_workers=0)


def test_environment_steps_need_a_flow_importable_from_its_file(store_url: str) -> None:
    class EnvFlow(FlowSpec):
        @step
        def start(self):
            self.next(self.fit)

        @environment(pypi=["humanize==4.12.1"])
        @step
        def fit(self):
            self.next(self.end)

        @step
        def end(self):
            pass

    with pytest.raises(RunFailed, match="step 'fit'.*must be defined at the top level of its module"):
        Runner(EnvFlow).run()
