"""Binding a function to a flow task: checks at bind time, the bundle, a lazy Task in the worker."""

from __future__ import annotations

import pytest

import satchel
from satchel.flows import Flow, Run
from satchel.flows.client import Task
from satchel.packager.bundle import read_bundle
from satchel.packager.task_binding import TaskBindError
from tests.flows.helpers import run_flow
from tests.functions import flowtask


@pytest.fixture
def trained(store_url: str) -> Run:
    return run_flow("runner", "trainer", "TinyTrainFlow", weight=3.0)


def test_bound_locally_reads_the_store(trained: Run) -> None:
    task = trained["fit"].task
    bound = flowtask.predict.bind(task=task)
    assert list(bound.signature.parameters) == ["x"]
    assert bound(2.0) == 7.0
    assert task.pathspec in repr(bound)


def test_unfinished_or_failed_task_is_refused(trained: Run) -> None:
    failed_run = run_flow("runner", "failing", "FailingFlow", expect_ok=False)
    failed = failed_run["boom"].task
    with pytest.raises(TaskBindError, match=f"flow task {failed.pathspec} failed"):
        flowtask.predict.bind(task=failed)
    done = trained["fit"].task
    running = Task(done._ds, {**done.record, "status": "running"})
    with pytest.raises(TaskBindError, match=f"flow task {done.pathspec} has not finished"):
        flowtask.predict.bind(task=running)


def test_missing_artifacts_are_named(trained: Run) -> None:
    task = trained["fit"].task
    with pytest.raises(TaskBindError, match=rf"{task.pathspec} has no artifact 'nope' \(artifacts= names"):
        flowtask.task_info.bind(task=task, artifacts=["meta", "nope"])
    with pytest.raises(
        TaskBindError, match=rf"{task.pathspec} has no artifact 'weights' \('read_missing' reads"
    ):
        flowtask.read_missing.bind(task=task)
    with pytest.raises(TaskBindError, match=r"reads task.data.model, which is not among artifacts= \(meta\)"):
        flowtask.predict.bind(task=task, artifacts=["meta"])
    with pytest.raises(TaskBindError, match="takes a list of artifact names"):
        flowtask.predict.bind(task=task, artifacts="model")


def test_annotation_and_value_must_agree(trained: Run) -> None:
    task = trained["fit"].task
    with pytest.raises(TaskBindError, match="annotate it satchel.flows.Task"):
        flowtask.untyped_task.bind(task=task)
    with pytest.raises(TaskBindError, match="is annotated satchel.flows.Task: bind a finished flow task"):
        flowtask.predict.bind(task={"model": 1})
    with pytest.raises(TypeError, match="artifacts= chooses the artifacts of the one flow task"):
        flowtask.predict.bind(x=1.0, artifacts=["model"])


@pytest.mark.slow
def test_worker_sees_a_lazy_task(trained: Run, store_url: str) -> None:
    task = Flow("TinyTrainFlow").latest_successful_run["fit"].tasks[0]
    ref = flowtask.task_info.bind(task=task).export(name="task-info", store=store_url)
    bundle, _ = read_bundle(ref)
    assert bundle.doc["format_version"] == 2
    assert bundle.function["bound"] == ["task"]
    names = {a["name"]: a for a in bundle.artifacts}
    assert names["task"]["serializer"] == "satchel-task-1" and names["task"]["pathspec"] == task.pathspec
    assert {"task.data.model", "task.data.meta", "task.data.tripwire"} <= names.keys()
    with satchel.load(ref) as fn:
        seen = fn()
    assert seen == {
        "pathspec": task.pathspec,
        "id": task.id,
        "step": "fit",
        "names": "meta,model,points,tripwire,weight",  # inherited ones too
        "loaded_before": "",
        "loaded_after": "meta",  # model and the tripwire (whose unpickling raises) never loaded
        "kind": "tiny",
        "type": "satchel.flows.task.Task",
    }


@pytest.mark.slow
def test_chosen_artifacts_only_and_tripwire_fires_when_read(trained: Run, store_url: str) -> None:
    task = trained["fit"].task
    ref = flowtask.predict.bind(task=task, artifacts=["model"]).export(name="predict", store=store_url)
    bundle, _ = read_bundle(ref)
    assert sorted(a["name"] for a in bundle.artifacts) == ["task", "task.data.model"]
    with satchel.load(ref) as fn:
        assert fn(2.0) == 7.0
    tripped = flowtask.touch_tripwire.bind(task=task).export(name="tripwire", store=store_url)
    with (
        satchel.load(tripped) as fn,
        pytest.raises(satchel.RemoteError, match="tripwire artifact was unpickled"),
    ):
        fn()


def test_worker_kit_has_only_task_of_satchel_flows() -> None:
    """In the worker's kit `satchel.flows` is a stand-in: Task imports (without the engine), nothing else."""
    import subprocess
    import sys

    from satchel.runtime.kit import worker_kit

    probe = (
        "import sys\n"
        "from satchel.flows import Task\n"
        "assert Task('F/1/s/2', {}).id == '2'\n"
        "assert not {'satchel.flows.driver', 'satchel.flows.task_runner'} & set(sys.modules)\n"
        "from satchel.flows import FlowSpec\n"
    )
    proc = subprocess.run(
        [sys.executable, "-I", "-S", "-c", f"import sys; sys.path.insert(0, {str(worker_kit())!r})\n{probe}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1, proc.stderr
    assert "ImportError: satchel.flows.FlowSpec is not available inside a Satchel worker" in proc.stderr


@pytest.mark.parametrize("codec", ["zstd", "zlib", "plain"])
def test_artifact_stream_reads_every_codec(codec: str, tmp_path) -> None:
    import io
    import pickle
    import zlib

    import zstandard

    from satchel.flows.artifact_stream import open_plain

    raw = pickle.dumps({"big": b"x" * 3_000_000, "n": 7}, protocol=5)
    data = {
        "zstd": zstandard.ZstdCompressor().compress(raw),
        "zlib": zlib.compress(raw, 3),
        "plain": raw,
    }[codec]
    with open_plain(io.BytesIO(data), "artifact 'x'") as stream:
        assert stream.read() == raw
    with pytest.raises(ValueError, match="artifact 'x' is neither"):
        open_plain(io.BytesIO(b"nonsense"), "artifact 'x'")


@pytest.mark.slow
def test_task_in_a_python_39_worker(trained: Run, store_url: str) -> None:
    """The worker's Task (and the kit's `satchel.flows` stand-in) run on the oldest Python workers support."""
    task = trained["fit"].task
    old = satchel.function(flowtask.task_info.func, environment=satchel.Environment(python="3.9"))
    with satchel.load(old.bind(task=task).export(name="task-info-39", store=store_url)) as fn:
        seen = fn()
    assert seen["pathspec"] == task.pathspec and seen["kind"] == "tiny" and seen["loaded_after"] == "meta"
