"""The runtime: schedules the tasks of one run over an executor, and runs one task inside its process.

The parent (this module's `FlowRun`) decides what runs next from each finished task's record; a task
(`execute_task`, in a child process) loads its inputs lazily from the datastore, runs the step, and
writes its artifacts, its attempt record and its stdout/stderr back to the datastore.

A task of a plain step is forked from this process; a task of an `@environment` step is a fresh
interpreter of the step's environment (see `flows/environments.py`) that runs `task_main`, which imports
the flow file and then runs the same `execute_task`. An executor whose tasks run elsewhere (Ray:
`Executor.portable`) gets each attempt as a picklable description (`Job.task`) and runs it with
`run_task_description`, the same path.

A run is one of three modes: `run` (from start), `resume` (a new run that clones the successful tasks of
an origin run before a step, then runs the rest; see `flows/origin.py`) and `spin` (re-execute one step's
tasks against the inputs recorded in an origin run, recorded as a separate run marked as a spin).
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import pickle
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from satchel.core import identity as _holders
from satchel.core import settings
from satchel.flows import lifeline
from satchel.flows.current import current
from satchel.flows.datastore import FlowDatastore
from satchel.flows.decorators import CaughtException
from satchel.flows.errors import FlowError, RunFailed
from satchel.flows.executors import Executor, Job, get_executor
from satchel.flows.graph import FlowGraph, StepNode
from satchel.flows.origin import ResumePlan, plan_resume, plan_spin
from satchel.flows.spec import FlowSpec, Inputs, InputView, TaskContext


@dataclass
class TaskSpec:
    """A task to run: its step, id, inputs (finished task records) and foreach frames."""

    step: str
    task_id: str
    inputs: list[dict]
    foreach_stack: list[dict]
    attempt: int = 0

    def pathspec(self, flow: str, run_id: str) -> str:
        return f"{flow}/{run_id}/{self.step}/{self.task_id}"


def _user() -> str:
    return settings.user()


@dataclass
class FlowRun:
    """One run of a flow: `start()` it, or `run()` it to the end."""

    flow_cls: type[FlowSpec]
    parameters: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    store: Any = None
    executor: str = "local"
    max_workers: int | None = None
    echo: Callable[[str], None] | None = None
    executor_options: dict[str, Any] = field(default_factory=dict)  # e.g. {"address": ...} for ray
    #: "run", "resume" (from `step`, default the first failed one) or "spin" (re-execute `step`)
    mode: str = "run"
    step: str | None = None
    origin_run_id: str | None = None
    #: spin only this task id of the step (default: every task of the step)
    task: str | None = None
    #: receives task events: `start(run, steps)`, `task(step, event)`, `stop(status)` (flows/progress.py)
    progress: Any = None

    def __post_init__(self) -> None:
        self.graph = FlowGraph(self.flow_cls)
        self.flow_name = self.flow_cls.__name__
        self.ds = FlowDatastore(self.flow_name, self.store)
        self.resume_plan: ResumePlan | None = None
        self.spin_tasks: list[TaskSpec] = []
        given = self.parameters
        if self.mode not in ("run", "resume", "spin"):
            raise ValueError(f"mode must be 'run', 'resume' or 'spin', got {self.mode!r}")
        if self.mode != "run":
            if self.parameters:
                raise FlowError(
                    f"{self.mode} reuses the parameters of the origin run; it takes none "
                    f"(given: {', '.join(sorted(self.parameters))})"
                )
            origin = self._plan_origin()
            self.origin_run_id = origin["run_id"]
            given = origin.get("parameters", {})
        self.params = _resolve_parameters(self.flow_cls, given)
        self.user = _user()
        self.run_id: str | None = None
        self._step_envs: dict[str, Any] = {}  # step name -> StepEnvironment, for @environment steps
        self._jobs_dir: Path | None = None

    # -- the parent: scheduling -----------------------------------------------------------------------

    def _plan_origin(self) -> dict:
        """Read the origin run (for resume or spin); its record."""
        if self.mode == "resume":
            self.resume_plan = plan_resume(self.ds, self.graph, self.step, self.origin_run_id)
            self.step = self.resume_plan.step
            return self.resume_plan.origin
        if not self.step:
            raise FlowError("spin needs the STEP to re-execute")
        origin, tasks = plan_spin(self.ds, self.graph, self.step, self.origin_run_id, self.task)
        self.spin_tasks = [TaskSpec(self.step, t.task_id, t.inputs, t.foreach_stack) for t in tasks]
        return origin

    def _run_record(self) -> dict:
        record = {
            "flow": self.flow_name,
            "status": "running",
            "driver": _holders.this_process(),  # a reader tells a crashed run by it (flows/status.py)
            "tags": sorted(set(self.tags)),
            "user": self.user,
            "parameters": self.params,
            "started": time.time(),
            "graph": self.graph.to_dict(),
            "steps": [n.name for n in self.graph.sorted_steps()],
            "executor": self.executor,
            "metadata": self.graph.flow_decos,
        }
        if self.mode == "resume":
            record.update(origin_run_id=self.origin_run_id, resume_step=self.step)
        elif self.mode == "spin":
            record.update(origin_run_id=self.origin_run_id, spin={"step": self.step, "task": self.task})
        return record

    def run(self) -> str:
        """Run to the end; return the run id. RunFailed (with the run id) if a task fails."""
        record = self._run_record()
        self.run_id = self.ds.new_run(record)
        self.ds.run_id = self.run_id  # artifacts saved here (e.g. @catch's) are journaled to this run
        record["run_id"] = self.run_id
        what = self.mode
        origin = (
            f" of {self.flow_name}/{self.origin_run_id} at step {self.step!r}" if self.mode != "run" else ""
        )
        self._say(f"{self.flow_name}/{self.run_id}: {what}{origin} started by {self.user}")
        if self.progress is not None:
            self.progress.start(
                f"{self.flow_name}/{self.run_id}", [n.name for n in self.graph.sorted_steps()]
            )
        executor = get_executor(self.executor, max_workers=self.max_workers, **self.executor_options)
        self._next_id = 0
        self._joins: dict[tuple, list[tuple[Any, dict]]] = {}
        self._end_done = False
        queue: deque[TaskSpec] = deque(self.spin_tasks or [self._new_task("start", [], [])])
        failure: str | None = None
        try:
            failure = self._prepare_environments()
            while failure is None:
                self._dispatch(queue, executor)
                if not executor.running:
                    break
                for finished in executor.wait():
                    spec: TaskSpec = finished.job.key
                    outcome = self._finish(spec, finished.exitcode, finished.timed_out)
                    if isinstance(outcome, TaskSpec):
                        queue.append(outcome)  # a retry
                    elif isinstance(outcome, str):
                        failure = outcome
                        break
                    else:
                        self._succeeded(outcome, queue)
            if failure is None and not self._end_done and self.mode != "spin":
                failure = "the run stopped before its end step ran (a join never received all its inputs)"
        except BaseException as exc:
            failure = failure or f"the run was interrupted: {type(exc).__name__}: {exc}"
            raise
        finally:
            executor.shutdown()
            if self._jobs_dir is not None:
                shutil.rmtree(self._jobs_dir, ignore_errors=True)
                self._jobs_dir = None
            record.update(status="failed" if failure else "successful", finished=time.time())
            if failure:
                record["error"] = failure
            self.ds.write_json(self.ds.run_key(self.run_id), record)
            if self.progress is not None:
                self.progress.stop(record["status"])
        if failure:
            self._say(f"{self.flow_name}/{self.run_id}: {what} failed: {failure}")
            raise RunFailed(f"run {self.flow_name}/{self.run_id} failed: {failure}", self.run_id)
        self._say(f"{self.flow_name}/{self.run_id}: {what} successful")
        return self.run_id

    def _dispatch(self, queue: deque[TaskSpec], executor: Executor) -> None:
        """Clone what a resume can clone, and start what the executor has room for."""
        while queue:
            spec = queue[0]
            cloned = self._clone(spec)
            if cloned is not None:
                queue.popleft()
                self._succeeded(cloned, queue)
                continue
            if not executor.can_accept(self._cpu(spec.step)):
                return
            queue.popleft()
            self._submit(executor, spec)

    def _succeeded(self, record: dict, queue: deque[TaskSpec]) -> None:
        self._end_done = self._end_done or record["step"] == "end"
        if self.mode == "spin":
            produced = ", ".join(record.get("produced", [])) or "none"
            self._say(f"[{record['pathspec']}] artifacts produced: {produced}")
            return
        queue.extend(self._successors(record))

    def _clone(self, spec: TaskSpec) -> dict | None:
        """In a resume, the record of `spec` cloned from the origin run's successful task (its artifacts by
        digest, its logs copied), or None when the task must run."""
        if self.resume_plan is None:
            return None
        origin = self.resume_plan.source(spec.step, spec.foreach_stack)
        if origin is None:
            return None
        pathspec = spec.pathspec(self.flow_name, self.run_id)
        missing = self.ds.adopt_artifacts(self.run_id, origin.get("artifacts", {}).values())
        if missing:  # collected since the origin ran: run this task again instead of cloning it
            self._say(f"[{pathspec}] not cloned: {len(missing)} of its artifacts are gone from the store")
            return None
        attempt = origin.get("attempt", 0)
        source = self.ds.attempt_prefix(origin["run_id"], spec.step, origin["task_id"], attempt)
        target = self.ds.attempt_prefix(self.run_id, spec.step, spec.task_id, attempt)
        for name in ("stdout.log", "stderr.log"):
            try:
                self.ds.store.write_document(target + name, self.ds.store.read_document(source + name))
            except KeyError:
                continue
        record = {
            **origin,
            "run_id": self.run_id,
            "task_id": spec.task_id,
            "pathspec": pathspec,
            "cloned_from": origin["pathspec"],
            "inputs": [i["pathspec"] for i in spec.inputs],
            "foreach_stack": spec.foreach_stack,
            "finished": time.time(),
        }
        self.ds.write_json(self.ds.task_prefix(self.run_id, spec.step, spec.task_id) + "task.json", record)
        self._event(spec.step, "cloned")
        self._say(f"[{pathspec}] cloned from {origin['pathspec']}")
        return record

    def _event(self, step: str, event: str) -> None:
        if self.progress is not None:
            self.progress.task(step, event)

    def _prepare_environments(self) -> str | None:
        """Resolve and materialize the environments of the `@environment` steps (once per distinct
        environment); a failure message naming the step, or None."""
        nodes = [
            node
            for node in self.graph.sorted_steps()
            if "environment" in node.decos and (self.mode != "spin" or node.name == self.step)
        ]
        if not nodes:
            return None
        from satchel.flows.environments import Environments

        if "<locals>" in self.flow_cls.__qualname__:
            return (
                f"step {nodes[0].name!r} ({nodes[0].where()}): an @environment step runs in a fresh "
                f"interpreter that imports the flow from its file, so {self.flow_name} must be defined at "
                "the top level of its module, not inside a function"
            )
        envs = Environments(progress=self._say)
        try:
            for node in nodes:
                self._step_envs[node.name] = envs.for_step(node, self.ds.store)
        except FlowError as exc:
            return str(exc)
        return None

    def _say(self, line: str) -> None:
        if self.echo:
            self.echo(line)

    def _cpu(self, step: str) -> float:
        return float(self.graph[step].decos.get("resources", {}).get("cpu", 1))

    def _new_task(self, step: str, inputs: list[dict], stack: list[dict]) -> TaskSpec:
        self._next_id += 1
        return TaskSpec(step, str(self._next_id), inputs, stack)

    def _submit(self, executor: Executor, spec: TaskSpec) -> None:
        self._event(spec.step, "started")
        node = self.graph[spec.step]
        timeout = node.decos.get("timeout", {}).get("seconds")
        resources = node.decos.get("resources") or {}
        job = Job(
            spec,
            cpu=self._cpu(spec.step),
            timeout=timeout,
            gpu=float(resources.get("gpu") or 0),
            memory_mb=resources.get("memory"),
        )
        if executor.portable:
            job.task = self._task_description(spec)
        if spec.step in self._step_envs:
            job.command = self._env_command(spec)
        elif not executor.portable:
            job.target = lambda: execute_task(self, spec)
        executor.submit(job)

    def _env_command(self, spec: TaskSpec) -> list[str]:
        """The command running one attempt of an `@environment` step's task in its environment's
        interpreter: the flows kit's launcher and a job file (everything `task_main` needs)."""
        from satchel.flows.environments import KIT_LAUNCHER, flow_kit

        if self._jobs_dir is None:
            self._jobs_dir = Path(tempfile.mkdtemp(prefix="satchel-flow-jobs-"))
        job = self._task_description(spec)
        path = self._jobs_dir / f"{spec.step}-{spec.task_id}-{spec.attempt}.pickle"
        path.write_bytes(pickle.dumps(job, protocol=4))
        interpreter = self._step_envs[spec.step].interpreter
        return [str(interpreter), "-s", str(flow_kit() / KIT_LAUNCHER), str(path)]

    def _task_description(self, spec: TaskSpec) -> dict[str, Any]:
        """One attempt of a task as plain picklable data: everything `run_task_description` needs to
        run it in another interpreter (which imports the flow from its file)."""
        if "<locals>" in self.flow_cls.__qualname__:
            raise FlowError(
                f"step {spec.step!r}: this task runs in another interpreter that imports the flow from "
                f"its file, so {self.flow_name} must be defined at the top level of its module"
            )
        try:
            flow_file = inspect.getsourcefile(self.flow_cls) or inspect.getfile(self.flow_cls)
        except TypeError as exc:
            raise FlowError(
                f"step {spec.step!r}: this task runs in another interpreter, so the flow must be "
                f"defined in a file ({exc})"
            ) from None
        return {
            "flow_file": str(Path(flow_file).resolve()),
            "flow_module": self.flow_cls.__module__,
            "flow_qualname": self.flow_cls.__qualname__,
            "flow_name": self.flow_name,
            "run_id": self.run_id,
            "params": self.params,
            "user": self.user,
            "store": _portable_store(self.ds.store),
            "task": asdict(spec),
        }

    def _finish(self, spec: TaskSpec, exitcode: int | None, timed_out: bool) -> dict | TaskSpec | str:
        """A finished attempt: its task record, a TaskSpec to retry, or a failure message."""
        node = self.graph[spec.step]
        pathspec = spec.pathspec(self.flow_name, self.run_id)
        prefix = self.ds.attempt_prefix(self.run_id, spec.step, spec.task_id, spec.attempt)
        try:
            attempt = self.ds.read_json(prefix + "attempt.json")
        except KeyError:
            attempt = {"status": "failed"}
            if timed_out:
                attempt["error"] = (
                    f"timed out after {node.decos['timeout']['seconds']:g} s (@timeout); the task was killed"
                )
                attempt["error_type"] = "TimeoutError"
            elif exitcode is not None and exitcode < 0:
                attempt["error"] = (
                    f"the task process was killed by signal {_signal_name(-exitcode)} before recording a result"
                )
                attempt["error_type"] = "TaskKilled"
            else:
                attempt["error"] = f"the task process died (exit status {exitcode}) before recording a result"
                attempt["error_type"] = "TaskCrashed"
            attempt["traceback"] = ""
            self.ds.write_json(prefix + "attempt.json", attempt)
        self._echo_logs(spec, pathspec)
        if attempt["status"] == "ok" and exitcode == 0:
            record = self._task_record(spec, attempt)
            self.ds.write_json(
                self.ds.task_prefix(self.run_id, spec.step, spec.task_id) + "task.json", record
            )
            self._event(spec.step, "done")
            self._say(f"[{pathspec}] done")
            return record
        error = f"{attempt.get('error_type', 'Error')}: {attempt.get('error', 'unknown error')}"
        retries = node.decos.get("retry", {}).get("times", 0)
        if spec.attempt < retries:
            self._event(spec.step, "retried")
            self._say(f"[{pathspec}] attempt {spec.attempt} failed ({error}); retrying")
            return TaskSpec(spec.step, spec.task_id, spec.inputs, spec.foreach_stack, spec.attempt + 1)
        if "catch" in node.decos and node.kind not in ("foreach", "switch"):
            caught = CaughtException(
                attempt.get("error_type", "Error"), attempt.get("error", ""), attempt.get("traceback", "")
            )
            artifacts = _inherited(self.graph, node, spec, self.params)
            var = node.decos["catch"]["var"]
            if var:
                artifacts[var] = self.ds.save_artifact(caught, var, spec.step)
            record = self._task_record(spec, {"status": "ok", "artifacts": artifacts, "caught": str(caught)})
            self.ds.write_json(
                self.ds.task_prefix(self.run_id, spec.step, spec.task_id) + "task.json", record
            )
            self._event(spec.step, "done")
            self._say(f"[{pathspec}] failed ({error}); caught by @catch, going on")
            return record
        record = self._task_record(spec, {**attempt, "status": "failed"})
        self.ds.write_json(self.ds.task_prefix(self.run_id, spec.step, spec.task_id) + "task.json", record)
        self._event(spec.step, "failed")
        self._say(f"[{pathspec}] failed: {error}\n{attempt.get('traceback', '')}".rstrip())
        return f"step {spec.step!r} (task {pathspec}) failed: {error}"

    def _task_record(self, spec: TaskSpec, attempt: dict) -> dict:
        node = self.graph[spec.step]
        return {
            **attempt,
            "flow": self.flow_name,
            "run_id": self.run_id,
            "step": spec.step,
            "task_id": spec.task_id,
            "attempt": spec.attempt,
            "user": self.user,
            "foreach_stack": spec.foreach_stack,
            "inputs": [i["pathspec"] for i in spec.inputs],
            "resources": node.decos.get("resources"),
            **(
                {"environment": self._step_envs[spec.step].describe()} if spec.step in self._step_envs else {}
            ),
            "pathspec": spec.pathspec(self.flow_name, self.run_id),
            "finished": time.time(),
        }

    def _echo_logs(self, spec: TaskSpec, pathspec: str) -> None:
        if not self.echo:
            return
        prefix = self.ds.attempt_prefix(self.run_id, spec.step, spec.task_id, spec.attempt)
        for stream in ("stdout", "stderr"):
            try:
                text = self.ds.store.read_document(f"{prefix}{stream}.log").decode(errors="replace")
            except KeyError:
                continue
            for line in text.splitlines():
                self._say(f"[{pathspec}] {line}")

    def _successors(self, record: dict) -> list[TaskSpec]:
        node = self.graph[record["step"]]
        stack = record["foreach_stack"]
        spec_inputs = [record]
        out: list[TaskSpec] = []
        if node.kind == "foreach":
            split = record["foreach"]
            for index in range(split["num_splits"]):
                frame = {
                    "split_step": node.name,
                    "split_task": record["task_id"],
                    "split_pathspec": record["pathspec"],
                    "index": index,
                    "num_splits": split["num_splits"],
                    "var": node.foreach,
                    "digest": split["digest"],
                }
                out.append(self._new_task(node.out[0], spec_inputs, stack + [frame]))
            return out
        targets = [record["switch"]["step"]] if node.kind == "switch" else node.out
        for target in targets:
            tnode = self.graph[target]
            if not tnode.is_join:
                out.append(self._new_task(target, spec_inputs, stack))
                continue
            split = self.graph[tnode.matching_split]
            if split.kind == "foreach":
                outer = stack[:-1]
                expected, order = stack[-1]["num_splits"], stack[-1]["index"]
            else:
                outer, expected, order = stack, len(tnode.in_steps), node.name
            key = (target, tuple((f["split_task"], f["index"]) for f in outer))
            arrived = self._joins.setdefault(key, [])
            arrived.append((order, record))
            if len(arrived) == expected:
                del self._joins[key]
                out.append(self._new_task(target, [r for _, r in sorted(arrived, key=lambda a: a[0])], outer))
        return out


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _resolve_parameters(flow_cls: type[FlowSpec], given: dict[str, Any]) -> dict[str, Any]:
    params = flow_cls._parameters()
    by_name = {p.name: attr for attr, p in params.items()}
    unknown = set(given) - set(by_name) - set(params)
    if unknown:
        raise FlowError(
            f"{flow_cls.__name__} has no parameter {', '.join(sorted(unknown))} (parameters: {', '.join(sorted(by_name)) or 'none'})"
        )
    values = {}
    for attr, param in params.items():
        if param.name in given:
            values[attr] = param.convert(given[param.name])
        elif attr in given:
            values[attr] = param.convert(given[attr])
        elif param.required:
            raise FlowError(
                f"{flow_cls.__name__} needs parameter {param.name!r} (--{param.name.replace('_', '-')})"
            )
        else:
            values[attr] = param.default
    return values


def _inherited(graph: FlowGraph, node: StepNode, spec: TaskSpec, params: dict) -> dict[str, str]:
    """Artifacts a task starts with: its single input's (a join gets only the parameters)."""
    if not spec.inputs:
        return {}
    if node.is_join:
        first = spec.inputs[0]["artifacts"]
        return {name: first[name] for name in params if name in first}
    return dict(spec.inputs[0]["artifacts"])


# -- the child: one task attempt ----------------------------------------------------------------------


def execute_task(run: FlowRun, spec: TaskSpec) -> int:
    """Run one attempt of a task in this (forked, or for `@environment` steps fresh) process; record everything in the datastore. Exit status."""
    run.ds.store = _fresh_store(run.ds.store)
    ds, node = run.ds, run.graph[spec.step]
    pathspec = spec.pathspec(run.flow_name, run.run_id)
    prefix = ds.attempt_prefix(run.run_id, spec.step, spec.task_id, spec.attempt)
    logs = Path(tempfile.mkdtemp(prefix="satchel-task-"))
    saved = _capture_output(logs)
    status = 1
    record: dict[str, Any] = {"started": time.time()}
    try:
        current._set(
            flow_name=run.flow_name,
            run_id=run.run_id,
            step_name=spec.step,
            task_id=spec.task_id,
            retry_count=spec.attempt,
            username=run.user,
        )
        artifacts = _run_step(run, node, spec, pathspec, record)
        record.update(status="ok", artifacts=artifacts)
        status = 0
    except BaseException as exc:  # noqa: BLE001 - every failure is recorded, then the process exits
        traceback.print_exc()
        record.update(
            status="failed", error_type=type(exc).__name__, error=str(exc), traceback=traceback.format_exc()
        )
    finally:
        _restore_output(saved)
        try:
            for stream in ("stdout", "stderr"):
                ds.write_log(run.run_id, spec.step, spec.task_id, spec.attempt, stream, logs / stream)
            record["finished"] = time.time()
            ds.write_json(prefix + "attempt.json", record)
        except BaseException:  # noqa: BLE001
            traceback.print_exc()
            status = 1
        for stream in ("stdout", "stderr"):
            (logs / stream).unlink(missing_ok=True)
        logs.rmdir()
    return status


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


def task_main(job_file: str) -> int:
    """One attempt of an `@environment` step's task, in a fresh interpreter of its environment (the
    flows kit's launcher calls this). Exit status."""
    lifeline.hold_from_environment()  # a local driver's task: die with it
    with open(job_file, "rb") as fh:
        job = pickle.load(fh)
    return run_task_description(job)


def run_task_description(job: dict[str, Any]) -> int:
    """One attempt of a task from its description (`FlowRun._task_description`), in an interpreter
    that has not imported the flow (an environment's, or a Ray worker). Exit status."""
    spec = TaskSpec(**job["task"])
    ds = FlowDatastore(job["flow_name"], job["store"])
    try:
        flow_cls = _import_flow(job["flow_file"], job["flow_module"], job["flow_qualname"])
        graph = FlowGraph(flow_cls)
    except BaseException as exc:  # noqa: BLE001 - recorded like any task failure
        text = traceback.format_exc()
        sys.stderr.write(text)
        prefix = ds.attempt_prefix(job["run_id"], spec.step, spec.task_id, spec.attempt)
        ds.store.write_document(prefix + "stderr.log", text.encode())
        ds.write_json(
            prefix + "attempt.json",
            {
                "status": "failed",
                "error_type": type(exc).__name__,
                "error": f"importing the flow in the task's interpreter ({sys.executable}) failed: {exc}",
                "traceback": text,
                "finished": time.time(),
            },
        )
        return 1
    run = SimpleNamespace(
        flow_cls=flow_cls,
        graph=graph,
        ds=ds,
        flow_name=job["flow_name"],
        run_id=job["run_id"],
        params=job["params"],
        user=job["user"],
    )
    return execute_task(run, spec)  # type: ignore[arg-type]


def _fresh_store(store: Any) -> Any:
    """A copy of the store with no connections shared with the parent (a forked S3 client is not safe):
    stores pickle without their clients."""
    try:
        return pickle.loads(pickle.dumps(store))
    except Exception:  # noqa: BLE001 - a store that cannot be copied is used as it is
        return store


def _run_step(run: FlowRun, node: StepNode, spec: TaskSpec, pathspec: str, record: dict) -> dict[str, str]:
    ds = run.ds
    load = ds.load_artifact
    flow = run.flow_cls.__new__(run.flow_cls)
    ctx = TaskContext(
        step=node.name,
        pathspec=pathspec,
        load=load,
        inherited=_inherited(run.graph, node, spec, run.params),
        foreach_frame=spec.foreach_stack[-1] if spec.foreach_stack else None,
        expected_next=_expected_next(node),
    )
    flow.__dict__["_ctx"] = ctx
    if node.name == "start":
        for attr, value in run.params.items():
            ctx.inherited[attr] = ds.save_artifact(value, attr, node.name)
    func = getattr(run.flow_cls, node.name)
    if node.is_join:
        views = [InputView(i["step"], i["pathspec"], i["artifacts"], load) for i in spec.inputs]
        func(flow, Inputs(views))
    else:
        func(flow)
    if node.out and ctx.next_called is None:
        raise FlowError(f"step {node.name!r} ({node.where()}) returned without calling self.next()")
    artifacts = dict(ctx.inherited)
    produced = flow._set_artifacts()
    for name, value in produced.items():
        artifacts[name] = ds.save_artifact(value, name, node.name)
    record["produced"] = sorted(produced)
    if node.switch is not None:
        record["switch"] = _choose_case(flow, node)
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
        record["foreach"] = {"num_splits": count, "digest": artifacts[node.foreach]}
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
