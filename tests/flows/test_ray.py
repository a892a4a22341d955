"""The Ray executor, on a local Ray started once for the test process (`ray.init(num_cpus=2)`): the
same flows give the same artifacts as on the local executor, and @resources, @retry, @timeout and
failures behave the same."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from satchel.flows import Flow, FlowError, FlowSpec, RunFailed, Runner, step
from tests.flows.helpers import FLOWDEFS, flow_class
from tests.ray_session import ray_session  # noqa: F401 - the shared local Ray


@pytest.fixture
def ray_store(store_url: str, ray_session: str) -> str:  # noqa: F811
    """A fresh default store, with the shared local Ray up."""
    return store_url


def _both(module: str, name: str, **params: object) -> tuple:
    cls = flow_class(module, name)
    return Runner(cls).run(**params), Runner(cls, executor="ray").run(**params)


def _artifacts(run: object) -> dict[str, dict[str, object]]:
    """Every task's artifacts by step and foreach position (task ids may differ between executors)."""
    out = {}
    for step_ in run:
        for task in step_.tasks:
            frames = tuple(f["index"] for f in task.record["foreach_stack"])
            out[f"{step_.name}{frames}"] = {
                name: getattr(task.data, name) for name in task.record["artifacts"]
            }
    return out


@pytest.mark.parametrize(
    ("module", "name", "params"),
    [
        ("linear", "LinearFlow", {"alpha": 0.7}),
        ("branch", "BranchFlow", {}),
        ("foreach", "ForeachFlow", {"width": 6}),
    ],
)
def test_same_artifacts_as_local(ray_store: str, module: str, name: str, params: dict) -> None:
    local, remote = _both(module, name, **params)
    assert remote.successful and remote.record["executor"] == "ray"
    assert _artifacts(remote) == _artifacts(local)


def test_foreach_results_read_by_the_client(ray_store: str) -> None:
    run = Runner(flow_class("foreach", "ForeachFlow"), executor="ray").run(width=5)
    latest = Flow("ForeachFlow").latest_successful_run
    assert latest.id == run.id
    assert [t.data.square_value for t in latest["square"].tasks] == [0, 1, 4, 9, 16]
    assert latest.data.total == 30


def test_resources_become_the_ray_tasks_resources(ray_store: str) -> None:
    run = Runner(flow_class("raytasks", "RayResourcesFlow"), executor="ray").run()
    start, big = run["start"].task.data, run["big"].task.data
    assert start.start_resources == {"CPU": 1.0}
    assert big.big_resources == {"CPU": 2.0, "memory": 64 * 1024 * 1024}
    assert os.getpid() not in (start.start_pid, big.big_pid)  # ran in Ray workers, not here
    assert run["big"].task.record["resources"] == {"cpu": 2, "memory": 64, "gpu": 0}


def test_a_failing_task_fails_the_run_naming_it(ray_store: str) -> None:
    with pytest.raises(RunFailed, match=r"step 'boom' \(task FailingFlow/.*/boom/2\).*the middle step broke"):
        Runner(flow_class("failing", "FailingFlow"), executor="ray").run()
    run = Flow("FailingFlow").latest_run
    assert run.status == "failed"
    (task,) = run["boom"].tasks
    assert "about to fail" in task.stdout and "ValueError: the middle step broke" in task.stderr


def test_retry_catch_and_timeout(ray_store: str) -> None:
    run = Runner(flow_class("resilient", "ResilientFlow"), executor="ray").run()
    assert run["flaky"].task.attempt == 2 and run.data.attempts == 3
    assert run.data.broken_error.type == "KeyError"
    assert run.data.stuck_error.type == "TimeoutError" and "@timeout" in run.data.stuck_error.message


def test_a_task_past_its_timeout_is_reported_timed_out(ray_store: str) -> None:
    with pytest.raises(RunFailed, match=r"step 'stuck'.*TimeoutError: timed out after 2 s \(@timeout\)"):
        Runner(flow_class("raytasks", "RayTimeoutFlow"), executor="ray").run()
    (task,) = Flow("RayTimeoutFlow").latest_run["stuck"].tasks
    assert task.record["error_type"] == "TimeoutError"


def test_a_task_killing_its_worker_fails_the_run(ray_store: str) -> None:
    with pytest.raises(RunFailed, match=r"step 'crash'.*TaskCrashed: the task process died"):
        Runner(flow_class("raytasks", "RayCrashFlow"), executor="ray").run()


def test_resume_on_ray_reuses_the_successful_tasks(ray_store: str, tmp_path: Path) -> None:
    flag = tmp_path / "fail"
    flag.touch()
    flow = flow_class("raytasks", "RayResumeFlow")
    with pytest.raises(RunFailed, match="middle fails") as info:
        Runner(flow, executor="ray").run(flag=str(flag))
    failed = Flow("RayResumeFlow")[info.value.run_id]
    flag.unlink()
    run = Runner(flow, executor="ray").resume()
    assert run.successful and run.origin_run_id == failed.id and run.data.total == 42
    assert run["start"].task.data.start_pid == failed["start"].task.data.start_pid  # cloned, not rerun


def test_a_missing_ray_is_a_clear_error() -> None:
    code = "import sys; sys.modules['ray'] = None\nfrom satchel.flows.executors import get_executor\nget_executor('ray')"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "the ray executor needs ray" in proc.stderr and "pip install 'satchel[ray]'" in proc.stderr


def test_the_command_line_on_a_given_ray_address(ray_store: str, ray_session: str) -> None:  # noqa: F811
    proc = subprocess.run(
        [
            sys.executable,
            str(FLOWDEFS / "raytasks.py"),
            "run",
            "--executor",
            "ray",
            "--ray-address",
            ray_session,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run = Flow("RayResourcesFlow").latest_run
    assert run.successful and run.record["executor"] == "ray"
    assert run["big"].task.data.big_resources["CPU"] == 2.0


def test_flows_defined_in_a_function_are_refused(ray_store: str) -> None:
    class LocalFlow(FlowSpec):
        @step
        def start(self):
            self.next(self.end)

        @step
        def end(self):
            pass

    with pytest.raises(FlowError, match="step 'start'.*must be defined at the top level of its module"):
        Runner(LocalFlow, executor="ray").run()


def test_ray_address_needs_the_ray_executor() -> None:  # no Ray needed
    with pytest.raises(ValueError, match="ray_address is for executor='ray'"):
        Runner(flow_class("linear", "LinearFlow"), ray_address="127.0.0.1:6379")


@pytest.mark.slow
def test_environment_steps_on_ray(ray_store: str) -> None:
    run = Runner(flow_class("envstep", "EnvFlow"), executor="ray").run(shards=2)
    assert run.data.models == ["1,000", "2,000"]
    (executable,) = run["join"].task.data.executables
    assert executable != sys.executable
    slow = Runner(flow_class("envstep", "SlowEnvFlow"), executor="ray").run()
    assert slow.data.stuck_error.type == "TimeoutError"
    assert slow.data.broken_error.type == "ValueError"
