"""`satchel.flows.gc` and `satchel runs`: which runs go, which blobs go, and the race with concurrent runs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from satchel.flows import Flow, gc
from satchel.flows.datastore import FlowDatastore
from satchel.flows.gc import PENDING_PREFIX, parse_age
from satchel.flows.records import RunRecord
from satchel.packager.stores import Store, open_store
from tests.flows.helpers import FLOWDEFS, run_flow
from tests.flows.recorded_runs import digest_of, fake_run, run_ids
from tests.test_cli import satchel_cli

VALUE = {"model": list(range(5_000))}


def backdate(store: Store, digest: str, seconds: float = 3600) -> None:
    """Make a file-store blob look stored `seconds` ago."""
    path = Path(store.root) / "blobs" / "sha256" / digest[:2] / digest  # type: ignore[attr-defined]
    then = time.time() - seconds
    os.utime(path, (then, then))


# -- the store primitives ----------------------------------------------------------------------------


@pytest.fixture(params=["file", "s3"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "file":
        return open_store((tmp_path / "store").as_uri())
    return open_store(request.getfixturevalue("s3_store_url"))


def test_blob_timestamps_touch_and_conditional_delete(any_store: Store) -> None:
    before = time.time()
    digest = any_store.put_blob_bytes(b"x" * 1000)
    stat = any_store.stat_blob(digest)
    assert stat is not None and stat.size == 1000
    assert before - 2 <= stat.modified <= time.time() + 2
    assert any_store.touch_blob(digest)
    assert not any_store.delete_blob(digest, unless_touched_since=time.time() - 30)  # touched since: kept
    assert any_store.has_blob(digest)
    assert any_store.delete_blob(digest, unless_touched_since=time.time() + 30)
    assert not any_store.has_blob(digest) and any_store.stat_blob(digest) is None
    assert not any_store.touch_blob(digest)  # absent: nothing created
    assert not any_store.has_blob(digest)
    assert not any_store.delete_blob(digest)


def test_touching_refreshes_the_timestamp(any_store: Store) -> None:
    digest = any_store.put_blob_bytes(b"z" * 100)
    if any_store.scheme == "file":
        backdate(any_store, digest)
        assert any_store.stat_blob(digest).modified < time.time() - 3000
    else:  # S3 timestamps cannot be set back: the touch leaves its mark in the object's metadata
        key = any_store._key(f"blobs/sha256/{digest[:2]}/{digest}")  # type: ignore[attr-defined]
        head = any_store.client.head_object(Bucket=any_store.bucket, Key=key)  # type: ignore[attr-defined]
        assert "satchel-touched" not in head["Metadata"]
    before = time.time()
    assert any_store.touch_blob(digest)
    assert any_store.stat_blob(digest).modified >= before - 1
    if any_store.scheme == "s3":
        head = any_store.client.head_object(Bucket=any_store.bucket, Key=key)  # type: ignore[attr-defined]
        assert float(head["Metadata"]["satchel-touched"]) >= before
    with any_store.open_blob(digest) as fh:
        assert fh.read() == b"z" * 100


def test_file_store_delete_leaves_no_scratch(tmp_path: Path) -> None:
    store = open_store((tmp_path / "store").as_uri())
    digest = store.put_blob_bytes(b"y" * 10)
    assert not store.delete_blob(digest, unless_touched_since=0)
    assert store.delete_blob(digest)
    assert list((tmp_path / "store" / ".tmp").iterdir()) == []


# -- which runs go -----------------------------------------------------------------------------------


def test_keep_deletes_older_runs_and_only_their_blobs(store_url: str) -> None:
    a = run_flow("runner", "linear", "LinearFlow", label="a")
    b = run_flow("runner", "linear", "LinearFlow", label="b")
    c = run_flow("runner", "linear", "LinearFlow", label="c")
    gone = {a.data.summary, b.data.summary}
    only_old = {a["end"].task.artifacts["summary"], b["end"].task.artifacts["summary"]}
    shared = c["start"].task.artifacts["values"]
    assert shared == a["start"].task.artifacts["values"]
    summary = gc(keep=1, grace=0)
    assert summary.runs_deleted == [a.pathspec, b.pathspec]
    assert [r.id for r in Flow("LinearFlow").runs()] == [c.id]
    store = open_store(store_url)
    assert only_old <= set(summary.blobs_deleted)
    assert not any(store.has_blob(d) for d in only_old)
    assert store.has_blob(shared)
    assert summary.bytes_freed > 0
    assert "deleted 2 runs" in summary.line()
    for step in c:  # everything the remaining run references still loads
        for task in step:
            assert {name: getattr(task.data, name) for name in task.data}
    assert c.data.summary not in gone


def test_running_runs_and_the_latest_successful_run_are_never_deleted(store_url: str) -> None:
    ds = FlowDatastore("StatusFlow")
    running = fake_run(ds, "running", {"x": 1})
    old_ok = fake_run(ds, "successful", {"x": 2})
    failed = fake_run(ds, "failed", {"x": 3})
    latest_ok = fake_run(ds, "successful", {"x": 4})
    newest_failed = fake_run(ds, "failed", {"x": 5})
    summary = gc(keep=0, grace=0)
    assert summary.runs_deleted == [f"StatusFlow/{r}" for r in (old_ok, failed, newest_failed)]
    assert run_ids(ds) == [running, latest_ok]
    assert ds.store.has_blob(digest_of(ds, running, "x"))


def test_older_than_and_keep(store_url: str) -> None:
    ds = FlowDatastore("AgeFlow")
    now = time.time()
    ancient = fake_run(ds, "failed", {"v": 1}, finished=now - 10 * 86400)
    old = fake_run(ds, "failed", {"v": 2}, finished=now - 3 * 86400)
    recent = fake_run(ds, "failed", {"v": 3}, finished=now - 3600)
    latest = fake_run(ds, "successful", {"v": 4}, finished=now - 60)
    assert gc(older_than="7d", grace=0).runs_deleted == [f"AgeFlow/{ancient}"]
    # both: older than 2 days AND beyond the newest 3 finished runs
    assert gc(older_than="2d", keep=3, grace=0).runs_deleted == []
    assert gc(older_than="2d", keep=2, grace=0).runs_deleted == [f"AgeFlow/{old}"]
    assert run_ids(ds) == [recent, latest]


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="keep= .* or older_than="):
        gc()
    with pytest.raises(ValueError, match="older_than must be an age like 7d"):
        gc(older_than="7 weeks")
    with pytest.raises(ValueError, match="keep must be a whole number"):
        gc(keep=-1)
    assert parse_age("90m") == 5400 and parse_age("1.5h") == 5400 and parse_age(12) == 12


def test_flow_filter_and_dry_run(store_url: str) -> None:
    a, b = FlowDatastore("AFlow"), FlowDatastore("BFlow")
    a_old, b_old = fake_run(a, "failed", {"v": "a"}), fake_run(b, "failed", {"v": "b"})
    fake_run(a), fake_run(b)
    a_blob = digest_of(a, a_old, "v")
    with pytest.raises(ValueError, match="flow 'Nope' has no runs"):
        gc(keep=0, flow="Nope")
    dry = gc(keep=0, flow="AFlow", grace=0, dry_run=True)
    assert dry.runs_deleted == [f"AFlow/{a_old}"] and dry.blobs_deleted == [a_blob]
    assert "would delete 1 run and 1 artifact blob" in dry.line()
    assert a_old in run_ids(a) and a.store.has_blob(a_blob)
    real = gc(keep=0, flow="AFlow", grace=0)
    assert real.blobs_deleted == [a_blob] and real.bytes_freed == dry.bytes_freed > 0
    assert a_old not in run_ids(a) and b_old in run_ids(b)


def test_blobs_of_bundles_and_unknown_blobs_are_never_deleted(store_url: str) -> None:
    ds = FlowDatastore("BundleFlow")
    doomed = fake_run(ds, "failed", {"model": VALUE, "scratch": "temporary"})
    fake_run(ds)
    model = digest_of(ds, doomed, "model")
    scratch = digest_of(ds, doomed, "scratch")
    # A bundle that bound the model blob (its metadata names the digest), and a blob no run knows.
    ds.store.write_document("bundles/iris/1.json", f'{{"artifacts": {{"model": "{model}"}}}}'.encode())
    unknown = ds.store.put_blob_bytes(b"a bundle's code archive")
    summary = gc(keep=0, grace=0)
    assert summary.runs_deleted == [f"BundleFlow/{doomed}"]
    assert summary.blobs_deleted == [scratch]
    assert ds.store.has_blob(model) and ds.store.has_blob(unknown)


# -- the race with concurrent runs -------------------------------------------------------------------


def _race(store_url: str, during: Callable[[FlowDatastore], None], phase: str) -> tuple[str, object]:
    """A failed run holding VALUE's blob (stored long ago) and a newer successful run; `during` runs at
    `phase` of a gc that deletes the failed run. Returns VALUE's digest and the gc summary."""
    ds = FlowDatastore("RaceFlow")
    doomed = fake_run(ds, "failed", {"model": VALUE})
    fake_run(ds, "successful", {"other": 1})
    digest = digest_of(ds, doomed, "model")
    backdate(ds.store, digest)

    def hook(name: str) -> None:
        if name == phase:
            during(FlowDatastore("RaceFlow"))

    summary = gc(keep=0, grace=10, on_phase=hook)
    assert summary.runs_deleted == [f"RaceFlow/{doomed}"]
    return digest, summary


@pytest.mark.parametrize("phase", ["listed", "runs-deleted"])
def test_a_dedup_hit_while_gc_runs_keeps_the_blob(store_url: str, phase: str) -> None:
    made: dict[str, str] = {}

    def concurrent_run(ds: FlowDatastore) -> None:  # a run gc has not seen, storing the same value
        made["run"] = ds.new_run(RunRecord(flow="RaceFlow", status="running"))
        made["digest"] = ds.save_artifact(VALUE, "model", "start", run_id=made["run"])

    digest, summary = _race(store_url, concurrent_run, phase)
    assert made["digest"] == digest  # it was a dedup hit: nothing uploaded
    assert digest not in summary.blobs_deleted  # type: ignore[attr-defined]
    assert FlowDatastore("RaceFlow").load_artifact(digest) == VALUE


def test_a_reference_without_journal_or_touch_is_not_protected(store_url: str) -> None:
    """The control for the test above: a run that records the digest without the protocol loses the blob."""
    value_digest = FlowDatastore("RaceFlow").save_artifact(VALUE, "model", "start")  # no run: no journal

    def careless_run(ds: FlowDatastore) -> None:
        run = ds.new_run(RunRecord(flow="RaceFlow", status="running"))
        ds.write_json(ds.task_key(run, "start", "1"), {"artifacts": {"model": value_digest}})

    digest, summary = _race(store_url, careless_run, "listed")
    assert digest == value_digest
    assert summary.blobs_deleted == [digest]  # type: ignore[attr-defined]
    assert not FlowDatastore("RaceFlow").store.has_blob(digest)


def test_a_journal_written_before_gc_lists_protects_an_untouched_blob(store_url: str) -> None:
    ds = FlowDatastore("RaceFlow")
    running = ds.new_run(RunRecord(flow="RaceFlow", status="running"))
    digest = ds.save_artifact(VALUE, "model", "start", run_id=running)  # journaled, record not yet written
    doomed = fake_run(ds, "failed", {"model": VALUE})
    fake_run(ds, "successful")
    backdate(ds.store, digest)  # as if the running run had touched it long ago
    summary = gc(keep=0, grace=10)
    assert summary.runs_deleted == [f"RaceFlow/{doomed}"]
    assert summary.blobs_deleted == [] and ds.store.has_blob(digest)


def test_recent_unreferenced_blobs_wait_for_the_next_gc(store_url: str) -> None:
    ds = FlowDatastore("GraceFlow")
    doomed = fake_run(ds, "failed", {"model": VALUE})
    fake_run(ds)
    digest = digest_of(ds, doomed, "model")
    first = gc(keep=0, grace=3600)
    assert first.runs_deleted == [f"GraceFlow/{doomed}"] and first.blobs_deleted == []
    assert first.blobs_kept_recent == 1 and ds.store.has_blob(digest)
    assert len(ds.store.list_documents(PENDING_PREFIX)) == 1
    second = gc(keep=0, grace=0)
    assert second.runs_deleted == [] and second.blobs_deleted == [digest]
    assert not ds.store.has_blob(digest)
    assert ds.store.list_documents(PENDING_PREFIX) == []


def test_gc_on_s3(s3_store_url: str) -> None:
    ds = FlowDatastore("S3Flow", s3_store_url)
    doomed = fake_run(ds, "failed", {"model": VALUE, "shared": "both"})
    kept = fake_run(ds, "successful", {"shared": "both"})
    model, shared = digest_of(ds, doomed, "model"), digest_of(ds, kept, "shared")
    # S3 timestamps are whole seconds, stamped by the server: gc as if a minute later.
    summary = gc(s3_store_url, keep=0, grace=0, now=time.time() + 60)
    assert summary.runs_deleted == [f"S3Flow/{doomed}"] and summary.blobs_deleted == [model]
    assert not ds.store.has_blob(model) and ds.store.has_blob(shared)
    assert ds.run_ids() == [kept]


@pytest.mark.slow
def test_gc_never_deletes_artifacts_of_a_concurrent_run(store_url: str) -> None:
    """A real run in another process stores the same values as runs gc keeps deleting under it."""
    from tests.flows.flowdefs.sharedart import table

    ds = FlowDatastore("SharedArtifactFlow")
    fake_run(ds, "successful", {"other": "latest successful, protected"})
    shared = {"table": table(1), **{f"part{i}": (1, i) for i in range(6)}}

    def decoy() -> str:  # a failed run holding the concurrent run's values, and one of its own
        run = fake_run(ds, "failed", {**shared, "own": os.urandom(16)})
        backdate(ds.store, digest_of(ds, run, "own"))
        return run

    decoy()
    proc = subprocess.Popen(
        [sys.executable, str(FLOWDEFS / "sharedart.py"), "run", "--seed=1", "--rounds=6"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    summaries = []
    try:
        while proc.poll() is None:
            summaries.append(gc(keep=0, grace=0.05, flow="SharedArtifactFlow"))
            decoy()
        out = proc.communicate(timeout=120)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out
    assert len(summaries) >= 2  # gc ran (repeatedly) while the run was going on
    assert sum(len(s.runs_deleted) for s in summaries) >= len(summaries)
    assert sum(len(s.blobs_deleted) for s in summaries) >= len(summaries)
    run = Flow("SharedArtifactFlow").latest_successful_run
    assert run is not None and run.data.count == 6
    for step in run:  # every artifact of the concurrent run is still there and loads
        for task in step:
            for name in task.data:
                getattr(task.data, name)
    assert [t.data.table for t in run["work"]] == [table(1)] * 6


# -- the command line --------------------------------------------------------------------------------


def test_runs_command(store_url: str) -> None:
    ds = FlowDatastore("CliFlow")
    doomed = fake_run(ds, "failed", {"model": VALUE})
    kept = fake_run(ds)
    listing = satchel_cli("runs", "ls", "--store", store_url).stdout
    assert "CliFlow" in listing and doomed in listing and kept in listing and "failed" in listing
    dry = satchel_cli("runs", "gc", "--keep", "0", "--grace", "0s", "--dry-run", "--store", store_url).stdout
    assert f"would delete run CliFlow/{doomed}" in dry
    assert "would delete 1 run and 1 artifact blob" in dry
    assert doomed in ds.run_ids()
    done = satchel_cli("runs", "gc", "--keep", "0", "--grace", "0s", "--store", store_url).stdout
    assert "deleted 1 run and 1 artifact blob" in done and "freed" in done
    assert ds.run_ids() == [kept]
    missing = satchel_cli("runs", "gc", "--store", store_url, check=False)
    assert missing.returncode == 2 and "--keep N, --older-than AGE" in missing.stderr
    bad = satchel_cli("runs", "gc", "--older-than", "7 weeks", "--store", store_url, check=False)
    assert bad.returncode == 1 and "older_than must be an age like 7d" in bad.stderr
