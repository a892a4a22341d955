"""The client API: read runs, steps, tasks and artifacts back from the store.

Flow("TrainFlow").latest_successful_run["fit"].tasks
task.data.model          run.data.models          Flow("TrainFlow").runs("nightly")

Namespaces: a Flow shows the current user's runs (`user:<name>`; SATCHEL_USER sets the user) unless told
otherwise: `namespace("user:alice")`, `namespace("production")` (runs tagged so), `namespace(None)` (all
runs), or per flow `Flow("TrainFlow", namespace=None)`.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Iterator
from functools import cached_property
from typing import TYPE_CHECKING, Any, BinaryIO

from satchel.core import settings
from satchel.core.summary import Content, card, items
from satchel.flows import task as _task
from satchel.flows.datastore import FlowDatastore
from satchel.flows.records import RunRecord, TaskRecord
from satchel.flows.status import FINISHED, run_status
from satchel.packager.stores import Store

if TYPE_CHECKING:
    from satchel.packager.resolvers.base import Lock

_UNSET: Any = object()
_namespace: Any = _UNSET


def current_user() -> str:
    """The user runs are recorded under: SATCHEL_USER, else the login name."""
    return settings.user()


def default_namespace() -> str:
    """`user:<current user>`: the namespace a process starts in."""
    return f"user:{current_user()}"


def _check_namespace(value: Any) -> str | None:
    if value is not None and (not isinstance(value, str) or not value or value == "user:"):
        raise ValueError(f"namespace must be 'user:<name>', a tag, or None (every run); got {value!r}")
    return value


def _check_tags(tags: Iterable[Any], what: str) -> list[str]:
    tags = list(tags)
    for t in tags:
        if not isinstance(t, str):
            raise TypeError(f"{what} must be strings (run tags), got {type(t).__name__} {t!r}")
    return tags


def namespace(ns: str | None) -> str | None:
    """Set the namespace `Flow` shows runs from, for this process: `user:<name>` (the runs of that user),
    any other string (the runs carrying that tag), or None (every run). Returns it."""
    global _namespace
    _namespace = _check_namespace(ns)
    return _namespace


def get_namespace() -> str | None:
    """The current namespace (by default `user:<current user>`; SATCHEL_USER sets the user)."""
    return default_namespace() if _namespace is _UNSET else _namespace


class DataArtifacts:
    """A task's artifacts by attribute (`data.model`), each loaded from the store on first access."""

    def __init__(self, ds: FlowDatastore, artifacts: dict[str, str], pathspec: str) -> None:
        self._ds = ds
        self._artifacts = artifacts
        self._pathspec = pathspec
        self._cache: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name not in self._artifacts:
            raise AttributeError(
                f"{self._pathspec} has no artifact {name!r} (it has: {', '.join(sorted(self._artifacts)) or 'none'})"
            )
        if name not in self._cache:
            self._cache[name] = self._ds.load_artifact(self._artifacts[name], name, self._pathspec)
        return self._cache[name]

    def __contains__(self, name: str) -> bool:
        return name in self._artifacts

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._artifacts))

    def __dir__(self) -> list[str]:
        return sorted(self._artifacts)

    def __repr__(self) -> str:
        return f"<artifacts of {self._pathspec}: {', '.join(sorted(self._artifacts))}>"


class Task(_task.Task):
    """One finished task: `data`, `artifacts` (name -> digest), `successful`, `stdout`, `stderr`, `attempt`.

    Bindable: `fn.bind(task=t)` reads `pathspec`, `finished`, `successful`, `artifact_names()` and
    `open_artifact(name)` (the protocol in satchel.packager.task_binding).
    """

    def __init__(self, ds: FlowDatastore, record: TaskRecord | dict) -> None:
        self._ds = ds
        self._record = record if isinstance(record, TaskRecord) else TaskRecord.from_dict(record)
        self.id: str = self._record.task_id
        self.pathspec: str = self._record.pathspec
        self.step_name: str = self._record.step
        self.run_id: str = self._record.run_id
        self.flow_name: str = ds.flow_name
        self.attempt: int = self._record.attempt
        self.user: str | None = self._record.user
        self.artifacts: dict[str, str] = self._record.artifacts or {}
        self.data = DataArtifacts(ds, self.artifacts, self.pathspec)

    @cached_property
    def record(self) -> dict[str, Any]:
        """The task.json document."""
        return self._record.to_dict()

    @property
    def store_url(self) -> str:
        """The store the task is recorded in."""
        return self._ds.store.url

    @property
    def successful(self) -> bool:
        return self._record.ok

    @property
    def finished(self) -> bool:
        return self._record.status in ("ok", "failed")

    def open_artifact(self, name: str) -> BinaryIO:
        """A stream of artifact `name` as plain pickle bytes (decompressed as read)."""
        from satchel.flows.artifact_stream import open_plain

        if name not in self.artifacts:
            raise KeyError(f"{self.pathspec} has no artifact {name!r}")
        blob = self._ds.store.open_blob(self.artifacts[name])
        return open_plain(blob, f"artifact {name!r} of {self.pathspec}")

    def environment_lock(self) -> Lock:
        """The full lock of the environment this task ran in (an `@environment` step's), checked; what
        `satchel.Environment.of(task)` extends."""
        from satchel.core.errors import EnvironmentResolutionError
        from satchel.packager.locking import parse_lock

        recorded = self._record.environment
        if not recorded:
            raise EnvironmentResolutionError(
                f"flow task {self.pathspec} ran in the flow's own interpreter, not in an environment of its "
                "own: only the tasks of @environment steps have an environment to reuse"
            )
        if not isinstance(recorded.get("lock"), dict):
            raise EnvironmentResolutionError(
                f"flow task {self.pathspec} has no recorded lock (it was run by a Satchel that did not "
                "record one); run its step again to reuse its environment"
            )
        lock = parse_lock(recorded["lock"], f"the environment lock of flow task {self.pathspec}")
        if recorded.get("env_id") not in (None, lock.env_id):
            from satchel.core.errors import BundleFormatError

            raise BundleFormatError(
                f"the environment lock of flow task {self.pathspec} hashes to {lock.env_id}, but the task "
                f"records env_id {recorded.get('env_id')!r}; the record was changed, so it is not used"
            )
        return lock

    @property
    def index(self) -> int | None:
        stack = self._record.foreach_stack or []
        return stack[-1]["index"] if stack else None

    @property
    def exception(self) -> str | None:
        record = self._record
        return record.caught or (f"{record.error_type}: {record.error}" if not self.successful else None)

    def _log(self, stream: str, attempt: int | None = None) -> str:
        n = self.attempt if attempt is None else attempt
        try:
            return self._ds.read_log(self.run_id, self.step_name, self.id, n, stream).decode(errors="replace")
        except KeyError:
            return ""

    @property
    def stdout(self) -> str:
        return self._log("stdout")

    @property
    def stderr(self) -> str:
        return self._log("stderr")

    def __repr__(self) -> str:
        return f"Task({self.pathspec!r})"


class Step:
    """The tasks of one step of a run."""

    def __init__(self, run: Run, name: str) -> None:
        self.run = run
        self.name = name
        self.pathspec = f"{run.pathspec}/{name}"

    @cached_property
    def tasks(self) -> list[Task]:
        """Finished tasks (successful or failed), in foreach order, then by id."""
        ds = self.run._ds
        tasks = [Task(ds, r) for r in ds.task_records(self.run.id, self.name)]
        return sorted(tasks, key=lambda t: ([f["index"] for f in t._record.foreach_stack or []], int(t.id)))

    @property
    def task(self) -> Task:
        """The step's one task (the first, for a foreach step)."""
        if not self.tasks:
            raise KeyError(f"{self.pathspec} has no finished task")
        return self.tasks[0]

    def __iter__(self) -> Iterator[Task]:
        return iter(self.tasks)

    def __len__(self) -> int:
        return len(self.tasks)

    def __repr__(self) -> str:
        return f"Step({self.pathspec!r})"


class Run:
    """One run: `status`, `successful`, `tags`, `user`, `parameters`, steps by name (`run["fit"]`), `data`."""

    def __init__(self, ds: FlowDatastore, record: RunRecord | dict) -> None:
        self._ds = ds
        self._record = record if isinstance(record, RunRecord) else RunRecord.from_dict(record)
        self.id: str = self._record.run_id
        self.flow_name = ds.flow_name
        self.pathspec = f"{ds.flow_name}/{self.id}"
        self.tags: set[str] = set(self._record.tags)
        self.user: str | None = self._record.user
        self.parameters: dict[str, Any] = self._record.parameters

    @cached_property
    def record(self) -> dict[str, Any]:
        """The run.json document."""
        return self._record.to_dict()

    @property
    def status(self) -> str:
        """running, successful, failed, or crashed (its driver died while it ran; see flows/status.py)."""
        return run_status(self.record)

    @property
    def successful(self) -> bool:
        return self.status == "successful"

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def metadata(self) -> dict[str, Any]:
        """The flow's decorators when it ran: `{"schedule": {"cron": ..., "timezone": ...}, "trigger_on_finish": {"flows": [...]}}`."""
        return self._record.metadata or {}

    @property
    def is_spin(self) -> bool:
        """Whether this run re-executed one step of an earlier run (`spin`); `origin_run_id` names that run."""
        return bool(self._record.spin)

    @property
    def origin_run_id(self) -> str | None:
        """For a resumed or spun run, the run it started from."""
        return self._record.origin_run_id

    @property
    def steps(self) -> list[str]:
        return list(self._record.steps or self._record.graph)

    def __getitem__(self, step: str) -> Step:
        if step not in self._record.graph:
            raise KeyError(f"{self.pathspec} has no step {step!r} (steps: {', '.join(self.steps)})")
        return Step(self, step)

    def __iter__(self) -> Iterator[Step]:
        return (Step(self, s) for s in self.steps)

    @property
    def end_task(self) -> Task | None:
        tasks = self["end"].tasks
        return tasks[0] if tasks else None

    @property
    def data(self) -> DataArtifacts:
        """The artifacts of the end task."""
        task = self.end_task
        if task is None:
            raise KeyError(f"{self.pathspec} has no finished end task (status: {self.status})")
        return task.data

    def in_namespace(self, namespace: str | None) -> bool:
        """Whether the run shows in `namespace`: None (all), `user:<name>` (its user), or a tag it carries."""
        if namespace is None:
            return True
        if namespace.startswith("user:"):
            return self.user == namespace[len("user:") :]
        return namespace in self.tags

    def __repr__(self) -> str:
        return f"Run({self.pathspec!r}, {self.status})"

    def _repr_html_(self) -> str:
        return run_html(self)


def _when(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _step_line(step: Step) -> str:
    tasks = step.tasks
    if not tasks:
        return f"{step.name}: no finished task"
    ok = sum(t.successful for t in tasks)
    failed = f", {len(tasks) - ok} failed" if ok != len(tasks) else ""
    noun = "task" if len(tasks) == 1 else "tasks"
    return f"{step.name}: {len(tasks)} {noun}{failed}"


def run_html(run: Run) -> str:
    """A run's summary for Jupyter: flow, id, status, who and when, parameters, and its steps' tasks."""
    record = run._record
    took = None
    if record.started is not None and record.finished is not None:
        took = f"{record.finished - record.started:.1f}s"
    origin = None
    if run.origin_run_id:
        origin = f"{'spin' if run.is_spin else 'resume'} of run {run.origin_run_id}"
    rows: list[tuple[str, Content]] = [
        ("flow", run.flow_name),
        ("run", run.id),
        ("status", run.status),
        ("error", record.error),
        ("user", run.user),
        ("tags", ", ".join(sorted(run.tags)) or None),
        ("started", _when(record.started)),
        ("took", took),
        ("origin", origin),
        (
            "parameters",
            items([f"{k} = {v!r}" for k, v in sorted(run.parameters.items())], what="parameters")
            if run.parameters
            else None,
        ),
        ("steps", items([_step_line(step) for step in run], what="steps")),
    ]
    return card("satchel flow run", run.pathspec, rows)


class Flow:
    """A flow's runs in a store (default: SATCHEL_STORE), as seen from a namespace.

    `namespace`: whose runs `runs()`, `latest_run` and `latest_successful_run` show; default: the
    process-wide one (`namespace()`, initially `user:<you>`); None shows every run. `flow[run_id]`
    reaches any run, whatever the namespace.
    """

    def __init__(self, name: str, store: Store | str | None = None, namespace: Any = _UNSET) -> None:
        self.name = name
        self._ds = FlowDatastore(name, store)
        self._namespace = _UNSET if namespace is _UNSET else _check_namespace(namespace)

    @property
    def namespace(self) -> str | None:
        return get_namespace() if self._namespace is _UNSET else self._namespace  # type: ignore[return-value]

    def runs(self, *tags: str, tag: str | Iterable[str] | None = None, user: str | None = None) -> list[Run]:
        """Runs in the namespace, newest first, that carry all `tags` (and `tag`: one tag or several) and
        were started by `user`, if given."""
        wanted = set(_check_tags(tags, "tags"))
        if tag is not None:
            wanted |= set(_check_tags([tag] if isinstance(tag, str) else tag, "tag"))
        ns = self.namespace
        out = []
        for run_id in reversed(self._ds.run_ids()):
            try:
                run = self[run_id]
            except KeyError:  # deleted (by gc) since listed
                continue
            if wanted <= run.tags and (user is None or run.user == user) and run.in_namespace(ns):
                out.append(run)
        return out

    def __iter__(self) -> Iterator[Run]:
        return iter(self.runs())

    def __getitem__(self, run_id: str) -> Run:
        try:
            return Run(self._ds, self._ds.read_run(str(run_id)))
        except KeyError:
            raise KeyError(f"flow {self.name} has no run {run_id!r} in {self._ds.store.url}") from None

    @property
    def latest_run(self) -> Run | None:
        """The newest run in the namespace."""
        runs = self.runs()
        return runs[0] if runs else None

    @property
    def latest_successful_run(self) -> Run | None:
        """The newest successful run that is not a spin."""
        for run in self.runs():
            if run.successful and not run.is_spin:
                return run
        return None

    def __repr__(self) -> str:
        return f"Flow({self.name!r})"


def task_at(pathspec: str, store: Store | str | None = None) -> Task:
    """The finished task `Flow/run_id/step/task_id` in `store` (default: SATCHEL_STORE), whatever the
    namespace; KeyError naming what is missing."""
    parts = pathspec.strip("/").split("/")
    if len(parts) != 4 or not all(parts):
        raise ValueError(f"a task pathspec is Flow/run_id/step/task_id, got {pathspec!r}")
    flow_name, run_id, step, task_id = parts
    run = Flow(flow_name, store, namespace=None)[run_id]
    step_ = run[step]
    try:
        return Task(run._ds, run._ds.read_task(run_id, step, task_id))
    except KeyError:
        raise KeyError(f"{step_.pathspec} has no finished task {task_id!r}") from None
