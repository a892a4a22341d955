"""Runs recorded straight into a store, the way the driver records them (for gc and status tests)."""

from __future__ import annotations

import time

from satchel.flows.client import current_user
from satchel.flows.datastore import FlowDatastore
from satchel.flows.records import RunRecord, TaskRecord


def fake_run(
    ds: FlowDatastore,
    status: str = "successful",
    values: dict | None = None,
    *,
    finished: float | None = None,
    driver: dict | None = None,
) -> str:
    """A run recorded the way the driver records one: run.json, then artifacts (journaled), a task record."""
    when = time.time() if finished is None else finished
    record = {"flow": ds.flow_name, "status": status, "tags": [], "user": current_user(), "started": when}
    if driver is not None:
        record["driver"] = driver
    if status != "running":
        record["finished"] = when
    run_id = ds.new_run(RunRecord.from_dict({**record, "graph": {"start": {}}, "steps": ["start"]}))
    artifacts = {
        name: ds.save_artifact(v, name, "start", run_id=run_id) for name, v in (values or {}).items()
    }
    ds.write_task(TaskRecord(status="ok", artifacts=artifacts, run_id=run_id, step="start", task_id="1"))
    return run_id


def digest_of(ds: FlowDatastore, run_id: str, name: str) -> str:
    return ds.read_task(run_id, "start", "1").artifacts[name]


def run_ids(ds: FlowDatastore) -> list[str]:
    return ds.run_ids()
