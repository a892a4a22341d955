"""The client API: read runs, steps, tasks and artifacts back from the store.

Flow("TrainFlow").latest_successful_run["fit"].tasks
task.data.model          run.data.models          Flow("TrainFlow").runs("nightly")
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cached_property
from typing import Any

from satchel.flows.datastore import FlowDatastore
from satchel.packager.stores import Store


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


class Task:
    """One finished task: `data`, `artifacts` (name -> digest), `successful`, `stdout`, `stderr`, `attempt`."""

    def __init__(self, ds: FlowDatastore, record: dict) -> None:
        self._ds = ds
        self.record = record
        self.id: str = record["task_id"]
        self.pathspec: str = record["pathspec"]
        self.step_name: str = record["step"]
        self.run_id: str = record["run_id"]
        self.attempt: int = record.get("attempt", 0)
        self.user: str | None = record.get("user")
        self.artifacts: dict[str, str] = record.get("artifacts", {})
        self.data = DataArtifacts(ds, self.artifacts, self.pathspec)

    @property
    def successful(self) -> bool:
        return self.record.get("status") == "ok"

    @property
    def index(self) -> int | None:
        stack = self.record.get("foreach_stack") or []
        return stack[-1]["index"] if stack else None

    @property
    def exception(self) -> str | None:
        return self.record.get("caught") or (
            f"{self.record.get('error_type')}: {self.record.get('error')}" if not self.successful else None
        )

    def _log(self, stream: str, attempt: int | None = None) -> str:
        n = self.attempt if attempt is None else attempt
        key = self._ds.attempt_prefix(self.run_id, self.step_name, self.id, n) + f"{stream}.log"
        try:
            return self._ds.store.read_document(key).decode(errors="replace")
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
        prefix = f"{ds.runs_prefix}{self.run.id}/{self.name}/"
        records = [ds.read_json(k) for k in ds.store.list_documents(prefix) if k.endswith("/task.json")]
        tasks = [Task(ds, r) for r in records]
        return sorted(
            tasks, key=lambda t: ([f["index"] for f in t.record.get("foreach_stack") or []], int(t.id))
        )

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

    def __init__(self, ds: FlowDatastore, record: dict) -> None:
        self._ds = ds
        self.record = record
        self.id: str = record["run_id"]
        self.flow_name = ds.flow_name
        self.pathspec = f"{ds.flow_name}/{self.id}"
        self.tags: set[str] = set(record.get("tags", []))
        self.user: str | None = record.get("user")
        self.parameters: dict[str, Any] = record.get("parameters", {})

    @property
    def status(self) -> str:
        return self.record.get("status", "unknown")

    @property
    def successful(self) -> bool:
        return self.status == "successful"

    @property
    def finished(self) -> bool:
        return self.status in ("successful", "failed")

    @property
    def steps(self) -> list[str]:
        return list(self.record.get("steps") or self.record.get("graph", {}))

    def __getitem__(self, step: str) -> Step:
        if step not in self.record.get("graph", {}):
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

    def __repr__(self) -> str:
        return f"Run({self.pathspec!r}, {self.status})"


class Flow:
    """A flow's runs in a store (default: SATCHEL_STORE)."""

    def __init__(self, name: str, store: Store | str | None = None) -> None:
        self.name = name
        self._ds = FlowDatastore(name, store)

    def runs(self, *tags: str, user: str | None = None) -> list[Run]:
        """Runs, newest first, that carry all `tags` (and were started by `user`, if given)."""
        out = []
        for run_id in reversed(self._ds.run_ids()):
            run = self[run_id]
            if set(tags) <= run.tags and (user is None or run.user == user):
                out.append(run)
        return out

    def __iter__(self) -> Iterator[Run]:
        return iter(self.runs())

    def __getitem__(self, run_id: str) -> Run:
        try:
            return Run(self._ds, self._ds.read_json(self._ds.run_key(str(run_id))))
        except KeyError:
            raise KeyError(f"flow {self.name} has no run {run_id!r} in {self._ds.store.url}") from None

    @property
    def latest_run(self) -> Run | None:
        ids = self._ds.run_ids()
        return self[ids[-1]] if ids else None

    @property
    def latest_successful_run(self) -> Run | None:
        for run in self.runs():
            if run.successful:
                return run
        return None

    def __repr__(self) -> str:
        return f"Flow({self.name!r})"
