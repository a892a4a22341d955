"""The driver: runs one flow run, scheduling its tasks over an executor.

`FlowRun` decides what runs next from each finished task's record: it starts each task attempt on the
executor (the attempt itself is `flows/task_runner.py`), reads the attempt record it left, and writes the
task record (`TaskRecord`), retries it (`@retry`), or records the failure caught (`@catch`); then it
starts the successors (foreach splits, joins once all their inputs are in, a switch's chosen case).

A task of a plain step is forked from this process; a task of an `@environment` step is a fresh
interpreter of the step's environment (see `flows/environments.py`) started with a job file. An executor
whose tasks run elsewhere (Ray: `Executor.portable`) gets each attempt as a picklable description
(`Job.task`).

A run is one of three modes: `run` (from start), `resume` (a new run that clones the successful tasks of
an origin run before a step, then runs the rest; see `flows/origin.py`) and `spin` (re-execute one step's
tasks against the inputs recorded in an origin run, recorded as a separate run marked as a spin).
"""

from __future__ import annotations

import dataclasses
import pickle
import shutil
import signal
import tempfile
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from satchel.core import identity as _holders
from satchel.flows.client import current_user
from satchel.flows.datastore import FlowDatastore
from satchel.flows.decorators import CaughtException
from satchel.flows.errors import FlowError, RunFailed
from satchel.flows.executors import Executor, Job, get_executor
from satchel.flows.graph import FlowGraph
from satchel.flows.origin import ResumePlan, plan_resume, plan_spin
from satchel.flows.records import AttemptRecord, RunRecord, TaskRecord
from satchel.flows.spec import FlowSpec
from satchel.flows.task_runner import (
    RunContext,
    TaskSpec,
    execute_task,
    inherited_artifacts,
    task_description,
)


@dataclass
class FlowRun:
    """One run of a flow: `run()` it to the end."""

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
            self.origin_run_id = origin.run_id
            given = origin.parameters
        self.params = _resolve_parameters(self.flow_cls, given)
        self.user = current_user()
        self.run_id: str | None = None
        self._step_envs: dict[str, Any] = {}  # step name -> StepEnvironment, for @environment steps
        self._jobs_dir: Path | None = None

    # -- scheduling -----------------------------------------------------------------------------------

    def _plan_origin(self) -> RunRecord:
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

    def _run_record(self) -> RunRecord:
        record = RunRecord(
            flow=self.flow_name,
            status="running",
            driver=_holders.this_process(),  # a reader tells a crashed run by it (flows/status.py)
            tags=sorted(set(self.tags)),
            user=self.user,
            parameters=self.params,
            started=time.time(),
            graph=self.graph.to_dict(),
            steps=[n.name for n in self.graph.sorted_steps()],
            executor=self.executor,
            metadata=self.graph.flow_decos,
        )
        if self.mode != "run":
            record.origin_run_id = self.origin_run_id
        if self.mode == "resume":
            record.resume_step = self.step
        elif self.mode == "spin":
            record.spin = {"step": self.step, "task": self.task}
        return record

    def run(self) -> str:
        """Run to the end; return the run id. RunFailed (with the run id) if a task fails."""
        record = self._run_record()
        self.run_id = self.ds.new_run(record)
        self.ds.run_id = self.run_id  # artifacts saved here (e.g. @catch's) are journaled to this run
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
        self._joins: dict[tuple, list[tuple[Any, TaskRecord]]] = {}
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
            record.status, record.finished = "failed" if failure else "successful", time.time()
            record.error = failure
            self.ds.write_run(record)
            if self.progress is not None:
                self.progress.stop(record.status)
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

    def _succeeded(self, record: TaskRecord, queue: deque[TaskSpec]) -> None:
        self._end_done = self._end_done or record.step == "end"
        if self.mode == "spin":
            produced = ", ".join(record.produced or []) or "none"
            self._say(f"[{record.pathspec}] artifacts produced: {produced}")
            return
        queue.extend(self._successors(record))

    def _clone(self, spec: TaskSpec) -> TaskRecord | None:
        """In a resume, the record of `spec` cloned from the origin run's successful task (its artifacts by
        digest, its logs copied), or None when the task must run."""
        if self.resume_plan is None:
            return None
        origin = self.resume_plan.source(spec.step, spec.foreach_stack)
        if origin is None:
            return None
        pathspec = spec.pathspec(self.flow_name, self.run_id)
        missing = self.ds.adopt_artifacts(self.run_id, (origin.artifacts or {}).values())
        if missing:  # collected since the origin ran: run this task again instead of cloning it
            self._say(f"[{pathspec}] not cloned: {len(missing)} of its artifacts are gone from the store")
            return None
        self.ds.copy_logs(
            spec.step, origin.attempt, (origin.run_id, origin.task_id), (self.run_id, spec.task_id)
        )
        record = dataclasses.replace(
            origin,
            run_id=self.run_id,
            task_id=spec.task_id,
            pathspec=pathspec,
            cloned_from=origin.pathspec,
            inputs=[i.pathspec for i in spec.inputs],
            foreach_stack=spec.foreach_stack,
            finished=time.time(),
        )
        self.ds.write_task(record)
        self._event(spec.step, "cloned")
        self._say(f"[{pathspec}] cloned from {origin.pathspec}")
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

    def _new_task(self, step: str, inputs: list[TaskRecord], stack: list[dict]) -> TaskSpec:
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
            job.task = task_description(self._context(), spec)
        if spec.step in self._step_envs:
            job.command = self._env_command(spec)
        elif not executor.portable:
            context = self._context()
            job.target = lambda: execute_task(context, spec)
        executor.submit(job)

    def _env_command(self, spec: TaskSpec) -> list[str]:
        """The command running one attempt of an `@environment` step's task in its environment's
        interpreter: the flows kit's launcher and a job file (everything `task_main` needs)."""
        from satchel.flows.environments import KIT_LAUNCHER, flow_kit

        if self._jobs_dir is None:
            self._jobs_dir = Path(tempfile.mkdtemp(prefix="satchel-flow-jobs-"))
        job = task_description(self._context(), spec)
        path = self._jobs_dir / f"{spec.step}-{spec.task_id}-{spec.attempt}.pickle"
        path.write_bytes(pickle.dumps(job, protocol=4))
        interpreter = self._step_envs[spec.step].interpreter
        return [str(interpreter), "-s", str(flow_kit() / KIT_LAUNCHER), str(path)]

    def _context(self) -> RunContext:
        """What this run's tasks need of it."""
        assert self.run_id is not None, "the run has no id before it starts"
        return RunContext(
            self.flow_cls, self.graph, self.ds, self.flow_name, self.run_id, self.params, self.user
        )

    def _finish(self, spec: TaskSpec, exitcode: int | None, timed_out: bool) -> TaskRecord | TaskSpec | str:
        """A finished attempt: its task record, a TaskSpec to retry, or a failure message."""
        node = self.graph[spec.step]
        pathspec = spec.pathspec(self.flow_name, self.run_id)
        try:
            attempt = self.ds.read_attempt(self.run_id, spec.step, spec.task_id, spec.attempt)
        except KeyError:
            attempt = self._unrecorded(node.decos, exitcode, timed_out)
            self.ds.write_attempt(self.run_id, spec.step, spec.task_id, spec.attempt, attempt)
        self._echo_logs(spec, pathspec)
        if attempt.status == "ok" and exitcode == 0:
            record = self._task_record(spec, attempt)
            self.ds.write_task(record)
            self._event(spec.step, "done")
            self._say(f"[{pathspec}] done")
            return record
        error = f"{attempt.error_type or 'Error'}: {attempt.error or 'unknown error'}"
        retries = node.decos.get("retry", {}).get("times", 0)
        if spec.attempt < retries:
            self._event(spec.step, "retried")
            self._say(f"[{pathspec}] attempt {spec.attempt} failed ({error}); retrying")
            return TaskSpec(spec.step, spec.task_id, spec.inputs, spec.foreach_stack, spec.attempt + 1)
        if "catch" in node.decos and node.kind not in ("foreach", "switch"):
            caught = CaughtException(
                attempt.error_type or "Error", attempt.error or "", attempt.traceback or ""
            )
            artifacts = inherited_artifacts(node, spec, self.params)
            var = node.decos["catch"]["var"]
            if var:
                artifacts[var] = self.ds.save_artifact(caught, var, spec.step)
            record = self._task_record(
                spec, AttemptRecord(status="ok", artifacts=artifacts), caught=str(caught)
            )
            self.ds.write_task(record)
            self._event(spec.step, "done")
            self._say(f"[{pathspec}] failed ({error}); caught by @catch, going on")
            return record
        record = self._task_record(spec, dataclasses.replace(attempt, status="failed"))
        self.ds.write_task(record)
        self._event(spec.step, "failed")
        self._say(f"[{pathspec}] failed: {error}\n{attempt.traceback or ''}".rstrip())
        return f"step {spec.step!r} (task {pathspec}) failed: {error}"

    @staticmethod
    def _unrecorded(decos: dict, exitcode: int | None, timed_out: bool) -> AttemptRecord:
        """The record of an attempt that died before writing its own."""
        if timed_out:
            seconds = decos["timeout"]["seconds"]
            error = f"timed out after {seconds:g} s (@timeout); the task was killed"
            error_type = "TimeoutError"
        elif exitcode is not None and exitcode < 0:
            error = (
                f"the task process was killed by signal {_signal_name(-exitcode)} before recording a result"
            )
            error_type = "TaskKilled"
        else:
            error = f"the task process died (exit status {exitcode}) before recording a result"
            error_type = "TaskCrashed"
        return AttemptRecord(status="failed", error=error, error_type=error_type, traceback="")

    def _task_record(self, spec: TaskSpec, attempt: AttemptRecord, caught: str | None = None) -> TaskRecord:
        node = self.graph[spec.step]
        env = self._step_envs.get(spec.step)
        return TaskRecord.of_attempt(
            attempt,
            flow=self.flow_name,
            run_id=self.run_id,
            step=spec.step,
            task_id=spec.task_id,
            attempt=spec.attempt,
            user=self.user,
            foreach_stack=spec.foreach_stack,
            inputs=[i.pathspec for i in spec.inputs],
            resources=node.decos.get("resources"),
            environment=env.describe() if env is not None else None,
            pathspec=spec.pathspec(self.flow_name, self.run_id),
            finished=time.time(),
            caught=caught,
        )

    def _echo_logs(self, spec: TaskSpec, pathspec: str) -> None:
        if not self.echo:
            return
        for stream in ("stdout", "stderr"):
            try:
                log = self.ds.read_log(self.run_id, spec.step, spec.task_id, spec.attempt, stream)
            except KeyError:
                continue
            text = log.decode(errors="replace")
            for line in text.splitlines():
                self._say(f"[{pathspec}] {line}")

    def _successors(self, record: TaskRecord) -> list[TaskSpec]:
        node = self.graph[record.step]
        stack = record.foreach_stack
        spec_inputs = [record]
        out: list[TaskSpec] = []
        if node.kind == "foreach":
            split = record.foreach or {}
            for index in range(split["num_splits"]):
                frame = {
                    "split_step": node.name,
                    "split_task": record.task_id,
                    "split_pathspec": record.pathspec,
                    "index": index,
                    "num_splits": split["num_splits"],
                    "var": node.foreach,
                    "digest": split["digest"],
                }
                out.append(self._new_task(node.out[0], spec_inputs, stack + [frame]))
            return out
        targets = [(record.switch or {})["step"]] if node.kind == "switch" else node.out
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
