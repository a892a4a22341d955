"""The runtime: schedules the tasks of one run over an executor, and runs one task inside its process.

The parent (this module's `FlowRun`) decides what runs next from each finished task's record; a task
(`execute_task`, in a child process) loads its inputs lazily from the datastore, runs the step, and
writes its artifacts, its attempt record and its stdout/stderr back to the datastore.

A task of a plain step is forked from this process; a task of an `@environment` step is a fresh
interpreter of the step's environment (see `flows/environments.py`) that runs `task_main`, which imports
the flow file and then runs the same `execute_task`.
"""

from __future__ import annotations

import getpass
import importlib.util
import inspect
import os
import pickle
import shutil
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

from satchel.flows.current import current
from satchel.flows.datastore import FlowDatastore
from satchel.flows.decorators import CaughtException
from satchel.flows.errors import FlowError, RunFailed
from satchel.flows.executors import Executor, Job, get_executor
from satchel.flows.graph import FlowGraph, StepNode
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
    try:
        return os.environ.get("SATCHEL_USER") or getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in some containers
        return "unknown"


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

    def __post_init__(self) -> None:
        self.graph = FlowGraph(self.flow_cls)
        self.flow_name = self.flow_cls.__name__
        self.ds = FlowDatastore(self.flow_name, self.store)
        self.params = _resolve_parameters(self.flow_cls, self.parameters)
        self.user = _user()
        self.run_id: str | None = None
        self._step_envs: dict[str, Any] = {}  # step name -> StepEnvironment, for @environment steps
        self._jobs_dir: Path | None = None

    # -- the parent: scheduling -----------------------------------------------------------------------

    def run(self) -> str:
        """Run to the end; return the run id. RunFailed (with the run id) if a task fails."""
        record = {
            "flow": self.flow_name,
            "status": "running",
            "tags": sorted(set(self.tags)),
            "user": self.user,
            "parameters": self.params,
            "started": time.time(),
            "graph": self.graph.to_dict(),
            "steps": [n.name for n in self.graph.sorted_steps()],
            "executor": self.executor,
        }
        self.run_id = self.ds.new_run(record)
        record["run_id"] = self.run_id
        self._say(f"{self.flow_name}/{self.run_id}: run started by {self.user}")
        executor = get_executor(self.executor, max_workers=self.max_workers)
        self._next_id = 0
        self._joins: dict[tuple, list[tuple[Any, dict]]] = {}
        queue: deque[TaskSpec] = deque([self._new_task("start", [], [])])
        failure: str | None = None
        end_done = False
        try:
            failure = self._prepare_environments()
            while (queue or executor.running) and failure is None:
                while queue and executor.can_accept(self._cpu(queue[0].step)):
                    self._submit(executor, queue.popleft())
                for finished in executor.wait():
                    spec: TaskSpec = finished.job.key
                    outcome = self._finish(spec, finished.exitcode, finished.timed_out)
                    if isinstance(outcome, TaskSpec):
                        queue.append(outcome)  # a retry
                    elif isinstance(outcome, str):
                        failure = outcome
                        break
                    else:
                        end_done = end_done or spec.step == "end"
                        queue.extend(self._successors(outcome))
            if failure is None and not end_done:
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
        if failure:
            self._say(f"{self.flow_name}/{self.run_id}: run failed: {failure}")
            raise RunFailed(f"run {self.flow_name}/{self.run_id} failed: {failure}", self.run_id)
        self._say(f"{self.flow_name}/{self.run_id}: run successful")
        return self.run_id

    def _prepare_environments(self) -> str | None:
        """Resolve and materialize the environments of the `@environment` steps (once per distinct
        environment); a failure message naming the step, or None."""
        nodes = [node for node in self.graph.sorted_steps() if "environment" in node.decos]
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
        node = self.graph[spec.step]
        timeout = node.decos.get("timeout", {}).get("seconds")
        if spec.step in self._step_envs:
            command = self._env_command(spec)
            executor.submit(Job(spec, command=command, cpu=self._cpu(spec.step), timeout=timeout))
            return
        executor.submit(
            Job(spec, lambda: execute_task(self, spec), cpu=self._cpu(spec.step), timeout=timeout)
        )

    def _env_command(self, spec: TaskSpec) -> list[str]:
        """The command running one attempt of an `@environment` step's task in its environment's
        interpreter: the flows kit's launcher and a job file (everything `task_main` needs)."""
        from satchel.flows.environments import KIT_LAUNCHER, flow_kit

        if self._jobs_dir is None:
            self._jobs_dir = Path(tempfile.mkdtemp(prefix="satchel-flow-jobs-"))
        try:
            flow_file = inspect.getsourcefile(self.flow_cls) or inspect.getfile(self.flow_cls)
        except TypeError as exc:
            raise FlowError(
                f"step {spec.step!r}: @environment steps need the flow defined in a file ({exc})"
            ) from None
        job = {
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
        path = self._jobs_dir / f"{spec.step}-{spec.task_id}-{spec.attempt}.pickle"
        path.write_bytes(pickle.dumps(job, protocol=4))
        interpreter = self._step_envs[spec.step].interpreter
        return [str(interpreter), "-s", str(flow_kit() / KIT_LAUNCHER), str(path)]

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
            self._say(f"[{pathspec}] done")
            return record
        error = f"{attempt.get('error_type', 'Error')}: {attempt.get('error', 'unknown error')}"
        retries = node.decos.get("retry", {}).get("times", 0)
        if spec.attempt < retries:
            self._say(f"[{pathspec}] attempt {spec.attempt} failed ({error}); retrying")
            return TaskSpec(spec.step, spec.task_id, spec.inputs, spec.foreach_stack, spec.attempt + 1)
        if "catch" in node.decos and node.kind != "foreach":
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
            self._say(f"[{pathspec}] failed ({error}); caught by @catch, going on")
            return record
        record = self._task_record(spec, {**attempt, "status": "failed"})
        self.ds.write_json(self.ds.task_prefix(self.run_id, spec.step, spec.task_id) + "task.json", record)
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
        for target in node.out:
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
    with open(job_file, "rb") as fh:
        job = pickle.load(fh)
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
                "error": f"importing the flow in the step's environment ({sys.executable}) failed: {exc}",
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
        expected_next=(list(node.out), node.foreach) if node.out else None,
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
    for name, value in flow._set_artifacts().items():
        artifacts[name] = ds.save_artifact(value, name, node.name)
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
