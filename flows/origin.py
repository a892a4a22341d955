"""What a resumed or spun run takes from an earlier run of the flow (its origin): which tasks a resume
clones, and the recorded inputs a spin re-executes a step against."""

from __future__ import annotations

from dataclasses import dataclass, field

from satchel.flows.datastore import FlowDatastore
from satchel.flows.errors import FlowError
from satchel.flows.graph import FlowGraph
from satchel.flows.records import RunRecord, TaskRecord

TaskKey = tuple[str, tuple[tuple[str, int], ...]]


def task_key(step: str, foreach_stack: list[dict]) -> TaskKey:
    """What identifies a task across runs: its step and its position in each enclosing foreach (task ids
    are handed out in scheduling order, so they differ between runs)."""
    return step, tuple((frame["split_step"], frame["index"]) for frame in foreach_stack)


def origin_run(ds: FlowDatastore, run_id: str | None = None, *, successful: bool = False) -> RunRecord:
    """The record of run `run_id`, or of the latest run (the latest successful one if `successful`) that
    is not a spin."""
    if run_id is not None:
        try:
            return ds.read_run(str(run_id))
        except KeyError:
            raise FlowError(f"flow {ds.flow_name} has no run {run_id!r} in {ds.store.url}") from None
    for candidate in reversed(ds.run_ids()):
        record = ds.read_run(candidate)
        if record.spin:
            continue
        if not successful or record.status == "successful":
            return record
    kind = "successful run" if successful else "run"
    raise FlowError(f"flow {ds.flow_name} has no {kind} in {ds.store.url} to start from; run it first")


def read_task(ds: FlowDatastore, pathspec: str) -> TaskRecord:
    """A task record by its pathspec `Flow/run/step/task`."""
    _, run_id, step, task_id = pathspec.split("/")
    try:
        return ds.read_task(run_id, step, task_id)
    except KeyError:
        raise FlowError(f"task {pathspec} has no record in {ds.store.url}") from None


@dataclass
class ResumePlan:
    """A resume: the origin run, the step it restarts at, and the successful origin tasks of the steps
    before it (by task key), which the new run clones instead of running; when the step was found (not
    named), also that step's own successful tasks, so only a foreach's failed splits run again."""

    origin: RunRecord
    step: str
    clones: dict[TaskKey, TaskRecord] = field(default_factory=dict)

    def source(self, step: str, foreach_stack: list[dict]) -> TaskRecord | None:
        return self.clones.get(task_key(step, foreach_stack))


def plan_resume(
    ds: FlowDatastore, graph: FlowGraph, step: str | None = None, origin_run_id: str | None = None
) -> ResumePlan:
    origin = origin_run(ds, origin_run_id)
    records = ds.task_records(origin.run_id)
    found = step is None
    if step is None:
        step = _first_unfinished_step(graph, origin, records)
    elif step not in graph.nodes:
        raise FlowError(
            f"cannot resume {ds.flow_name} at {step!r}: no such step (steps: {', '.join(graph.nodes)})"
        )
    rerun = graph.descendants(step)
    # The step found to resume at keeps its own successful tasks too (the splits of a foreach that did not
    # fail, or that finished before the driver died); a step the user names runs again whole.
    clones = {
        task_key(r.step, r.foreach_stack or []): r
        for r in records
        if r.ok and r.step in graph.nodes and (r.step not in rerun or (found and r.step == step))
    }
    return ResumePlan(origin, step, clones)


def _first_unfinished_step(graph: FlowGraph, origin: RunRecord, records: list[TaskRecord]) -> str:
    """The first step (in graph order) with a failed task; else the first step that should have run next."""
    order = [n.name for n in graph.sorted_steps()]
    failed = {r.step for r in records if not r.ok}
    for name in order:
        if name in failed:
            return name
    if origin.status == "successful":
        raise FlowError(
            f"run {origin.flow}/{origin.run_id} succeeded, so there is no failed step to resume from: "
            "name the STEP to resume at"
        )
    ok = [r for r in records if r.ok]
    leads: dict[str, set[str]] = {}
    for r in ok:
        chosen = (r.switch or {}).get("step")
        leads.setdefault(r.step, set()).update([chosen] if chosen else graph[r.step].out)
    done = set(leads)
    for name in order:
        if name not in done and (
            name == "start" or any(name in leads.get(p, ()) for p in graph[name].in_steps)
        ):
            return name
    return "start"


@dataclass
class SpinTask:
    """A task to re-execute: its id in the origin run, its recorded input records and foreach frames."""

    task_id: str
    inputs: list[TaskRecord]
    foreach_stack: list[dict]
    origin_pathspec: str


def plan_spin(
    ds: FlowDatastore, graph: FlowGraph, step: str, run_id: str | None = None, task_id: str | None = None
) -> tuple[RunRecord, list[SpinTask]]:
    """The origin run (default: the latest successful run) and the tasks of `step` to re-execute."""
    if step not in graph.nodes:
        raise FlowError(
            f"cannot spin {ds.flow_name} step {step!r}: no such step (steps: {', '.join(graph.nodes)})"
        )
    origin = origin_run(ds, run_id, successful=run_id is None)
    where = f"{ds.flow_name}/{origin.run_id}"
    records = ds.task_records(origin.run_id, step)
    if task_id is not None:
        records = [r for r in records if r.task_id == str(task_id)]
        if not records:
            raise FlowError(f"run {where} has no task {task_id!r} of step {step!r}")
    if not records:
        raise FlowError(f"run {where} has no task of step {step!r} to spin (the step did not run)")
    records.sort(key=lambda r: ([f["index"] for f in r.foreach_stack or []], int(r.task_id)))
    tasks = [
        SpinTask(r.task_id, [read_task(ds, p) for p in r.inputs or []], r.foreach_stack or [], r.pathspec)
        for r in records
    ]
    return origin, tasks
