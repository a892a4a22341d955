"""Artifacts: content-addressed compressed pickles in the store, streamed, deduplicated across runs."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import zstandard

from satchel.flows import ArtifactError
from satchel.flows.datastore import FlowDatastore
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
