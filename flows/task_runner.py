"""What runs inside a task's process: one attempt of one task.

`execute_task` loads the task's inputs lazily from the datastore, runs the step, and writes its artifacts,
its attempt record (`AttemptRecord`) and its stdout/stderr back to the datastore. The driver
(`flows/driver.py`) forks it for a plain step; a task of an `@environment` step is a fresh interpreter of
the step's environment that runs `task_main` (the flows kit's launcher calls it, see
`flows/environments.py`), and a task on an executor whose tasks run elsewhere (Ray) runs
`run_task_description`: both import the flow from its file, then run the same `execute_task`.

Runs in the task's interpreter: imports only the flows kit (the flow engine's modules, the stores and
satchel's floor), never the driver.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import pickle
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from satchel.flows import lifeline
from satchel.flows.current import current
from satchel.flows.datastore import FlowDatastore
from satchel.flows.errors import FlowError
from satchel.flows.graph import FlowGraph, StepNode
from satchel.flows.records import AttemptRecord, TaskRecord
from satchel.flows.spec import FlowSpec, Inputs, InputView, TaskContext


@dataclass
class TaskSpec:
    """A task to run: its step, id, inputs (finished task records) and foreach frames."""

    step: str
    task_id: str
    inputs: list[TaskRecord]
    foreach_stack: list[dict]
    attempt: int = 0

    def pathspec(self, flow: str, run_id: str) -> str:
        return f"{flow}/{run_id}/{self.step}/{self.task_id}"

    def to_dict(self) -> dict[str, Any]:
        """Plain data (the inputs as their stored form), for a task description."""
        return {
            "step": self.step,
            "task_id": self.task_id,
            "inputs": [i.to_dict() for i in self.inputs],
            "foreach_stack": self.foreach_stack,
            "attempt": self.attempt,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskSpec:
        return cls(**{**data, "inputs": [TaskRecord.from_dict(i) for i in data["inputs"]]})


@dataclass
class RunContext:
    """What a task needs of its run."""

    flow_cls: type[FlowSpec]
    graph: FlowGraph
    ds: FlowDatastore
    flow_name: str
    run_id: str
    params: dict[str, Any]
    user: str


def inherited_artifacts(node: StepNode, spec: TaskSpec, params: dict) -> dict[str, str]:
    """Artifacts a task starts with: its single input's (a join gets only the parameters)."""
    if not spec.inputs:
        return {}
    first = spec.inputs[0].artifacts or {}
    if node.is_join:
        return {name: first[name] for name in params if name in first}
    return dict(first)


# -- one attempt --------------------------------------------------------------------------------------


def execute_task(run: RunContext, spec: TaskSpec) -> int:
    """Run one attempt of a task in this (forked, or for `@environment` steps fresh) process; record
    everything in the datastore. Exit status."""
    run.ds.store = _fresh_store(run.ds.store)
    ds, node = run.ds, run.graph[spec.step]
    pathspec = spec.pathspec(run.flow_name, run.run_id)
    logs = Path(tempfile.mkdtemp(prefix="satchel-task-"))
    saved = _capture_output(logs)
    status = 1
    record = AttemptRecord(started=time.time())
    try:
        current._set(
            flow_name=run.flow_name,
            run_id=run.run_id,
            step_name=spec.step,
            task_id=spec.task_id,
            retry_count=spec.attempt,
            username=run.user,
        )
        record.artifacts = _run_step(run, node, spec, pathspec, record)
        record.status = "ok"
        status = 0
    except BaseException as exc:  # noqa: BLE001 - every failure is recorded, then the process exits
        traceback.print_exc()
        record.status = "failed"
        record.error_type, record.error = type(exc).__name__, str(exc)
        record.traceback = traceback.format_exc()
    finally:
        _restore_output(saved)
        try:
            for stream in ("stdout", "stderr"):
                ds.write_log(run.run_id, spec.step, spec.task_id, spec.attempt, stream, logs / stream)
            record.finished = time.time()
            ds.write_attempt(run.run_id, spec.step, spec.task_id, spec.attempt, record)
        except BaseException:  # noqa: BLE001
            traceback.print_exc()
            status = 1
        for stream in ("stdout", "stderr"):
            (logs / stream).unlink(missing_ok=True)
        logs.rmdir()
    return status


def _run_step(
    run: RunContext, node: StepNode, spec: TaskSpec, pathspec: str, record: AttemptRecord
) -> dict[str, str]:
    ds = run.ds
    load = ds.load_artifact
    flow = run.flow_cls.__new__(run.flow_cls)
    ctx = TaskContext(
        step=node.name,
        pathspec=pathspec,
        load=load,
        inherited=inherited_artifacts(node, spec, run.params),
        foreach_frame=spec.foreach_stack[-1] if spec.foreach_stack else None,
        expected_next=_expected_next(node),
    )
    flow.__dict__["_ctx"] = ctx
    if node.name == "start":
        for attr, value in run.params.items():
            ctx.inherited[attr] = ds.save_artifact(value, attr, node.name)
    func = getattr(run.flow_cls, node.name)
    if node.is_join:
        views = [InputView(i.step, i.pathspec, i.artifacts or {}, load) for i in spec.inputs]
        func(flow, Inputs(views))
    else:
        func(flow)
    if node.out and ctx.next_called is None:
        raise FlowError(f"step {node.name!r} ({node.where()}) returned without calling self.next()")
    artifacts = dict(ctx.inherited)
    produced = flow._set_artifacts()
    for name, value in produced.items():
        artifacts[name] = ds.save_artifact(value, name, node.name)
    record.produced = sorted(produced)
    if node.switch is not None:
        record.switch = _choose_case(flow, node)
    if node.foreach:
        if node.foreach not in artifacts:
            raise FlowError(
                f"step {node.name!r} ({node.where(node.next_line)}): foreach={node.foreach!r} but self.{node.foreach} was never set"
            )
        values = getattr(flow, node.foreach)
        try:
            count = len(values)
        except TypeError:
            raise FlowError(
                f"step {node.name!r}: foreach={node.foreach!r} needs a sized iterable (list, tuple, range...), got {type(values).__name__}"
            ) from None
        if count == 0:
            raise FlowError(
                f"step {node.name!r}: foreach={node.foreach!r} is empty, so there is nothing to run"
            )
        if not hasattr(values, "__getitem__"):
            values = list(values)
            artifacts[node.foreach] = ds.save_artifact(values, node.foreach, node.name)
        record.foreach = {"num_splits": count, "digest": artifacts[node.foreach]}
    return artifacts


def _expected_next(node: StepNode) -> dict | None:
    if node.switch is not None:
        return {"switch": dict(node.switch), "condition": node.condition}
    return {"steps": list(node.out), "foreach": node.foreach} if node.out else None


def _choose_case(flow: FlowSpec, node: StepNode) -> dict:
    """The switch case the condition artifact's value picks (a non-string value is matched as str())."""
    try:
        value = getattr(flow, node.condition)
    except AttributeError:
        raise FlowError(
            f"step {node.name!r} ({node.where(node.next_line)}): the switch's condition artifact "
            f"{node.condition!r} is not set (assign self.{node.condition} in this step or an earlier one)"
        ) from None
    case = value if isinstance(value, str) else str(value)
    if case not in node.switch:
        allowed = ", ".join(repr(c) for c in node.switch)
        raise FlowError(
            f"step {node.name!r} ({node.where(node.next_line)}): the switch's condition artifact "
            f"{node.condition!r} is {value!r}, which is not one of its cases: {allowed}"
        )
    return {"condition": node.condition, "value": case, "step": node.switch[case]}


# -- a task in another interpreter --------------------------------------------------------------------


def task_description(run: RunContext, spec: TaskSpec) -> dict[str, Any]:
    """One attempt of a task as plain picklable data: everything `run_task_description` needs to run it
    in another interpreter (which imports the flow from its file)."""
    flow_cls = run.flow_cls
    if "<locals>" in flow_cls.__qualname__:
        raise FlowError(
            f"step {spec.step!r}: this task runs in another interpreter that imports the flow from "
            f"its file, so {run.flow_name} must be defined at the top level of its module"
        )
    try:
        flow_file = inspect.getsourcefile(flow_cls) or inspect.getfile(flow_cls)
    except TypeError as exc:
        raise FlowError(
            f"step {spec.step!r}: this task runs in another interpreter, so the flow must be "
            f"defined in a file ({exc})"
        ) from None
    return {
        "flow_file": str(Path(flow_file).resolve()),
        "flow_module": flow_cls.__module__,
        "flow_qualname": flow_cls.__qualname__,
        "flow_name": run.flow_name,
        "run_id": run.run_id,
        "params": run.params,
        "user": run.user,
        "store": _portable_store(run.ds.store),
        "task": spec.to_dict(),
    }


def task_main(job_file: str) -> int:
    """One attempt of an `@environment` step's task, in a fresh interpreter of its environment (the
    flows kit's launcher calls this). Exit status."""
    lifeline.hold_from_environment()  # a local driver's task: die with it
    with open(job_file, "rb") as fh:
        job = pickle.load(fh)
    return run_task_description(job)


def run_task_description(job: dict[str, Any]) -> int:
    """One attempt of a task from its description (`task_description`), in an interpreter that has not
    imported the flow (an environment's, or a Ray worker). Exit status."""
    spec = TaskSpec.from_dict(job["task"])
    ds = FlowDatastore(job["flow_name"], job["store"])
    try:
        flow_cls = _import_flow(job["flow_file"], job["flow_module"], job["flow_qualname"])
        graph = FlowGraph(flow_cls)
    except BaseException as exc:  # noqa: BLE001 - recorded like any task failure
        text = traceback.format_exc()
        sys.stderr.write(text)
        ds.write_log(job["run_id"], spec.step, spec.task_id, spec.attempt, "stderr", text.encode())
        failed = AttemptRecord(
            status="failed",
            error_type=type(exc).__name__,
            error=f"importing the flow in the task's interpreter ({sys.executable}) failed: {exc}",
            traceback=text,
            finished=time.time(),
        )
        ds.write_attempt(job["run_id"], spec.step, spec.task_id, spec.attempt, failed)
        return 1
    run = RunContext(
        flow_cls=flow_cls,
        graph=graph,
        ds=ds,
        flow_name=job["flow_name"],
        run_id=job["run_id"],
        params=job["params"],
        user=job["user"],
    )
    return execute_task(run, spec)


def _portable_store(store: Any) -> Any:
    """The store as a task in another interpreter gets it: the object itself when it pickles (stores
    pickle without their clients), else its URL."""
    try:
        pickle.dumps(store, protocol=4)
        return store
    except Exception:  # noqa: BLE001
        return store.url


def _import_flow(flow_file: str, module_name: str, qualname: str) -> type:
    """The flow class, from its file, in a fresh interpreter (a flow run as a script is `__main__`
    in the parent: here it is imported under another name, without running its main block)."""
    path = Path(flow_file)
    name = module_name if module_name != "__main__" else "__satchel_flow__"
    roots = [path.parent]
    if module_name != "__main__":  # the directory its top-level package lives in, for its own imports
        root = path.parent
        for _ in range(module_name.count(".")):
            root = root.parent
        roots.append(root)
    for root in roots:
        if str(root) not in sys.path:
            sys.path.append(str(root))
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise FlowError(f"cannot import the flow file {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    if module_name == "__main__":
        sys.modules["__main__"] = module  # so artifacts pickled as __main__.X load
    obj: Any = module
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _fresh_store(store: Any) -> Any:
    """A copy of the store with no connections shared with the parent (a forked S3 client is not safe):
    stores pickle without their clients."""
    try:
        return pickle.loads(pickle.dumps(store))
    except Exception:  # noqa: BLE001 - a store that cannot be copied is used as it is
        return store


def _capture_output(directory: Path) -> tuple:
    """Send fds 1 and 2 (and sys.stdout/stderr, which a host like pytest may have replaced) to files."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001
            pass
    saved = (os.dup(1), os.dup(2), sys.stdout, sys.stderr)
    for fd, name in ((1, "stdout"), (2, "stderr")):
        target = os.open(directory / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(target, fd)
        os.close(target)
    sys.stdout = open(1, "w", buffering=1, closefd=False, errors="backslashreplace")  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, closefd=False, errors="backslashreplace")  # noqa: SIM115
    return saved


def _restore_output(saved: tuple) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    out, err, sys.stdout, sys.stderr = saved
    for fd, old in ((1, out), (2, err)):
        os.dup2(old, fd)
        os.close(old)
