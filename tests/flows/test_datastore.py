"""Artifacts: content-addressed compressed pickles in the store, streamed, deduplicated across runs."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
import zstandard

from satchel.flows import ArtifactError, Flow
from satchel.flows.datastore import FlowDatastore, parse_key
from satchel.flows.records import AttemptRecord, RunRecord, TaskRecord
from satchel.packager.stores import open_store
from tests.flows.helpers import run_flow


def _blobs(store_url: str) -> set[str]:
    root = Path(open_store(store_url).url.removeprefix("file://"))
    return {p.name for p in (root / "blobs").rglob("*") if p.is_file()}


def test_round_trip_is_compressed_and_content_addressed(store_url: str) -> None:
    ds = FlowDatastore("SomeFlow")
    value = {"numbers": list(range(100_000)), "text": "x" * 1_000_000}
    digest = ds.save_artifact(value, "value", "start")
    assert ds.save_artifact(value, "value", "start") == digest
    assert ds.load_artifact(digest) == value
    with ds.store.open_blob(digest) as fh:
        stored = fh.read()
    assert len(stored) < 1_000_000
    assert stored[:4] == b"\x28\xb5\x2f\xfd"  # a zstd frame
    assert zstandard.ZstdDecompressor().decompressobj().decompress(stored)


def test_large_value_streams_through_small_chunks(store_url: str) -> None:
    ds = FlowDatastore("SomeFlow")
    value = bytes(range(256)) * 40_000  # ~10 MB, incompressible-ish pattern across chunk borders
    assert ds.load_artifact(ds.save_artifact(value, "big", "start")) == value


def test_unpicklable_value_names_artifact_and_step(store_url: str) -> None:
    with pytest.raises(ArtifactError, match=r"artifact 'lock' of step 'train' cannot be stored: TypeError"):
        FlowDatastore("SomeFlow").save_artifact(threading.Lock(), "lock", "train")


def test_artifacts_are_deduplicated_across_runs(store_url: str) -> None:
    first = run_flow("runner", "bigartifact", "BigArtifactFlow")
    after_first = _blobs(store_url)
    second = run_flow("cli", "bigartifact", "BigArtifactFlow")
    assert _blobs(store_url) == after_first
    assert first.id != second.id
    digest = first["start"].task.artifacts["blob"]
    assert second["start"].task.artifacts["blob"] == digest
    assert second["end"].task.artifacts["blob"] == digest  # inherited by reference, not stored again
    assert second.data.size == 200_000
    third = run_flow("runner", "bigartifact", "BigArtifactFlow", seed=11)
    assert third["start"].task.artifacts["blob"] != digest
    assert len(_blobs(store_url)) > len(after_first)


def test_run_layout_in_the_store(store_url: str) -> None:
    run = run_flow("runner", "linear", "LinearFlow")
    keys = open_store(store_url).list_documents(f"flows/LinearFlow/runs/{run.id}/")
    assert f"flows/LinearFlow/runs/{run.id}/run.json" in keys
    start = run["start"].task
    base = f"flows/LinearFlow/runs/{run.id}/start/{start.id}/"
    assert {base + "task.json", base + "0/attempt.json", base + "0/stdout.log", base + "0/stderr.log"} <= set(
        keys
    )


def test_records_read_back_exactly_as_stored(store_url: str) -> None:
    """Every run, task and attempt document of a run (foreach, switch, join) is the stored form of its
    record: reading it as a record and writing it again changes nothing."""
    run = run_flow("runner", "switch_foreach", "SwitchForeachFlow")
    store = open_store(store_url)
    kinds = {"run": RunRecord, "task": TaskRecord, "attempt": AttemptRecord}
    seen = {kind: 0 for kind in kinds}
    for key in store.list_documents(f"flows/SwitchForeachFlow/runs/{run.id}/"):
        document = parse_key(key)
        assert document is not None and document.run_id == run.id, key
        if document.kind in kinds:
            stored = json.loads(store.read_document(key))
            assert kinds[document.kind].from_dict(stored).to_dict() == stored, key
            seen[document.kind] += 1
    assert seen == {"run": 1, "task": 15, "attempt": 15}
    chosen = [t.record["switch"]["step"] for t in run["classify"].tasks]
    assert chosen == ["collect", "halve", "collect", "halve", "collect"]


def test_a_record_keeps_the_fields_it_does_not_know(store_url: str) -> None:
    """A record written by another version of Satchel is read, and written back, without losing fields."""
    ds = FlowDatastore("SomeFlow")
    stored = {
        "status": "ok",
        "run_id": "7",
        "step": "start",
        "task_id": "1",
        "pathspec": "SomeFlow/7/start/1",
        "artifacts": {},
        "resources": None,
        "lineage": {"from": "elsewhere"},
    }
    ds.write_json(ds.task_key("7", "start", "1"), stored)
    record = ds.read_task("7", "start", "1")
    assert record.extra == {"lineage": {"from": "elsewhere"}} and record.ok
    ds.write_task(record)
    again = ds.read_json(ds.task_key("7", "start", "1"))
    assert again["lineage"] == {"from": "elsewhere"} and again["resources"] is None


@pytest.mark.parametrize("content", [b"[1, 2]", b"{not json"])
def test_a_task_document_that_is_no_record_is_refused_naming_it(store_url: str, content: bytes) -> None:
    ds = FlowDatastore("SomeFlow")
    run_id = ds.new_run(RunRecord(flow="SomeFlow", status="successful", graph={"start": {}}, steps=["start"]))
    ds.store.write_document(ds.task_key(run_id, "start", "1"), content)
    with pytest.raises(ValueError, match=rf"flows/SomeFlow/runs/{run_id}/start/1/task.json is not"):
        _ = Flow("SomeFlow", namespace=None)[run_id]["start"].tasks
