"""`remove` (satchel rm) and bundle `gc` (satchel gc): what goes, what stays, and safety under exports
and loads running at the same time. Real exports into real stores; gc runs against them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import satchel
from satchel.core import identity as _holders
from satchel.flows.datastore import FlowDatastore
from satchel.packager.bundle import list_versions, read_bundle
from satchel.packager.gc import INTENT_PREFIX, gc, remove, tombstone_key
from satchel.packager.stores import Store, open_store
from tests.functions import sized, textutil
from tests.waiting import wait_until

MIB = 1 << 20
REPO = Path(__file__).resolve().parent.parent


def blobs_of(ref: object) -> set[str]:
    bundle, _ = read_bundle(str(ref))
    return {blob.digest for blob in bundle.blobs()}


def stored(store: Store) -> set[str]:
    return {digest for digest, _ in store.list_blobs()}


def age_blobs(store: Store, seconds: float) -> None:
    """Date every blob of a file store `seconds` back (as if stored that long ago)."""
    for digest, stat in store.list_blobs():
        path = store.root / "blobs" / "sha256" / digest[:2] / digest  # type: ignore[attr-defined]
        os.utime(path, (stat.modified - seconds, stat.modified - seconds))


@pytest.fixture(params=["file", "s3"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "s3":
        return open_store(request.getfixturevalue("s3_store_url"))
    return open_store((tmp_path / "store").as_uri())


def test_rm_removes_a_version_and_its_number_is_never_given_again(store_url: str) -> None:
    store = open_store(store_url)
    textutil.add.export(name="add", store=store_url, progress=False)
    textutil.add.export(name="add", store=store_url, progress=False)
    assert remove(store, "add", 2) == [2]
    assert list_versions(store, "add") == [1]
    assert json.loads(store.read_document(tombstone_key("add", 2)))["version"] == 2
    with pytest.raises(satchel.BundleNotFound, match=r"add:2 not found .*versions there: 1"):
        read_bundle(f"{store_url}#add:2")
    assert textutil.add.export(name="add", store=store_url, progress=False).version == 3
    assert remove(store, "add") == [1, 3]
    assert list_versions(store, "add") == []
    with pytest.raises(satchel.BundleNotFound, match="no bundle named 'add'"):
        remove(store, "add")
    assert textutil.add.export(name="add", store=store_url, progress=False).version == 4


def test_gc_deletes_only_what_nothing_names(any_store: Store) -> None:
    url = any_store.url
    sized.digest_of.bind(data=os.urandom(MIB)).export(name="doomed", store=url, progress=False)
    kept = textutil.add.export(name="add", store=url, progress=False)
    flow_digest = FlowDatastore("Train", any_store, run_id="1").save_artifact({"w": [1.0]}, "model", "start")
    orphan = any_store.put_blob_bytes(b"named by nothing")
    remove(any_store, "doomed")
    tombstone = json.loads(any_store.read_document(tombstone_key("doomed", 1)))
    only_doomed = digests_in(tombstone["document"]) - blobs_of(kept)
    assert len(only_doomed) == 2  # its code and its artifact; the wheels are shared with `add`

    # Everything is younger than the default grace period: nothing goes.
    assert gc(any_store).blobs_deleted == []
    later = time.time() + 5  # S3 timestamps have whole seconds: a little later, everything is older
    preview = gc(any_store, grace=0, dry_run=True, now=later)
    assert set(preview.blobs_deleted) == only_doomed | {orphan}
    assert stored(any_store) >= only_doomed | {orphan}  # a dry run deletes nothing

    summary = gc(any_store, grace=0, now=later)
    assert set(summary.blobs_deleted) == only_doomed | {orphan}
    left = stored(any_store)
    assert not left & (only_doomed | {orphan})
    assert blobs_of(kept) | {flow_digest} <= left
    with satchel.load(str(kept)) as fn:
        assert fn(20.0, 22.0) == 42.0
    # The expired tombstone is shrunk to its date: it keeps the version number, no longer the blobs.
    assert "document" not in json.loads(any_store.read_document(tombstone_key("doomed", 1)))


def digests_in(text: str) -> set[str]:
    import re

    return set(re.findall(r"(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])", text))


def test_a_removed_version_keeps_its_blobs_for_the_grace_period(store_url: str) -> None:
    """A load that read the document just before `rm` can still fetch its blobs, for `grace`."""
    store = open_store(store_url)
    ref = sized.digest_of.bind(data=os.urandom(MIB)).export(name="late", store=store_url, progress=False)
    blobs = blobs_of(ref)
    bundle, _ = read_bundle(str(ref))  # a load has read the document...
    remove(store, "late", 1)
    age_blobs(store, 7200)  # ...of blobs stored long ago
    assert gc(store, grace=3600).blobs_deleted == []
    assert stored(store) >= blobs
    summary = gc(store, grace=3600, now=time.time() + 3601)  # the tombstone has expired
    assert blobs <= set(summary.blobs_deleted)
    assert bundle.name == "late"


class Stall:
    """Pickling it waits until `go` is set: an export held halfway, its first blobs already stored."""

    reached = threading.Event()
    go = threading.Event()

    def __reduce__(self) -> tuple:
        Stall.reached.set()
        assert Stall.go.wait(120), "the test never released the export"
        return (str, ("stalled",))


def test_gc_keeps_the_blobs_of_an_export_in_flight(store_url: str) -> None:
    store = open_store(store_url)
    fn = textutil.scale.bind(values=[1.0, 2.0], factor=Stall())
    result: dict = {}
    Stall.reached.clear()
    Stall.go.clear()
    thread = threading.Thread(
        target=lambda: result.setdefault("ref", fn.export(name="inflight", store=store_url, progress=False))
    )
    thread.start()
    try:
        assert Stall.reached.wait(300), "the export never reached its second artifact"
        in_flight = stored(store)
        assert in_flight  # the wheels and the code: named by no bundle document yet
        intents = store.list_documents(INTENT_PREFIX)
        assert len(intents) == 1
        # Even treating every blob as old (no grace), the export's journal keeps them.
        summary = gc(store, grace=0, now=time.time() + 60)
        assert summary.blobs_deleted == []
        assert stored(store) == in_flight
    finally:
        Stall.go.set()
        thread.join(300)
    ref = result["ref"]
    assert blobs_of(ref) <= stored(store)
    assert store.list_documents(INTENT_PREFIX) == []  # the journal goes with a finished export


def test_an_export_that_reuses_blobs_while_gc_runs_keeps_them(store_url: str) -> None:
    """gc has read the documents (the removed bundle's blobs look unreferenced) when an export of the
    same content dedups on those blobs: the export's touch makes them young, and gc keeps them."""
    store = open_store(store_url)
    data = os.urandom(MIB)
    first = blobs_of(sized.digest_of.bind(data=data).export(name="again", store=store_url, progress=False))
    remove(store, "again")
    age_blobs(store, 7200)
    refs = []

    def export_meanwhile(phase: str) -> None:
        assert phase == "listed"
        refs.append(sized.digest_of.bind(data=data).export(name="again", store=store_url, progress=False))

    summary = gc(store, grace=0, on_phase=export_meanwhile)
    assert blobs_of(refs[0]) == first  # the same content: every blob a dedup hit
    assert not set(summary.blobs_deleted) & blobs_of(refs[0])
    assert blobs_of(refs[0]) <= stored(store)


def test_a_dead_exports_journal_is_ignored_and_removed(store_url: str) -> None:
    store = open_store(store_url)
    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    holder = _holders.of_process(proc.pid)
    proc.communicate(b"")
    digest = store.put_blob_bytes(b"uploaded by an export that was killed")
    key = f"{INTENT_PREFIX}dead"
    store.write_document(
        key, json.dumps({"holder": holder, "started": time.time(), "digests": [digest]}).encode()
    )
    live = store.put_blob_bytes(b"journalled by a live export")
    live_key = f"{INTENT_PREFIX}live"
    record = {"holder": _holders.this_process(), "started": time.time(), "digests": [live]}
    store.write_document(live_key, json.dumps(record).encode())
    summary = gc(store, grace=0, now=time.time() + 5)
    assert summary.blobs_deleted == [digest]
    assert summary.stale_intents == [key]
    assert store.list_documents(INTENT_PREFIX) == [live_key]
    assert stored(store) == {live}


def test_rm_refuses_a_deployed_version(store_url: str) -> None:
    from satchel.serving.deploy.api import deploy

    store = open_store(store_url)
    ref = textutil.add.export(name="add", store=store_url, progress=False)
    textutil.add.export(name="add", store=store_url, progress=False)
    deploy(str(ref), "adder")
    with pytest.raises(ValueError, match=r"bundle add:1 is deployed \(deployments/adder/"):
        remove(store, "add", 1)
    with pytest.raises(ValueError, match="add:1 is deployed"):
        remove(store, "add")
    assert list_versions(store, "add") == [1, 2]
    assert remove(store, "add", 2) == [2]
    assert remove(store, "add", 1, force=True) == [1]


def satchel_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "satchel", *args], capture_output=True, text=True, timeout=600, cwd=REPO
    )


def test_rm_and_gc_commands(store_url: str) -> None:
    store = open_store(store_url)
    ref = sized.digest_of.bind(data=os.urandom(MIB)).export(name="cli-gc", store=store_url, progress=False)
    textutil.add.export(name="add", store=store_url, progress=False)
    own = blobs_of(ref) - blobs_of(f"{store_url}#add:1")
    age_blobs(store, 7200)

    out = satchel_cli("rm", "cli-gc:latest", "--store", store_url)
    assert out.returncode == 2 and "name a version number" in out.stderr
    out = satchel_cli("rm", "cli-gc:1", "--store", store_url)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "removed cli-gc:1\n"
    out = satchel_cli("rm", f"{store_url}#cli-gc:1")
    assert out.returncode == 1 and "cli-gc:1 not found" in out.stderr

    # Just removed: the tombstone keeps its blobs for the grace period.
    out = satchel_cli("gc", "--store", store_url, "--dry-run")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("would delete 0 blobs, 0 B from ")
    out = satchel_cli("gc", "--store", store_url, "--grace", "0s", "--dry-run")
    assert out.stdout.splitlines()[0].startswith(f"would delete {len(own)} blobs, ")
    assert sorted(line.strip() for line in out.stdout.splitlines()[1:]) == sorted(f"sha256:{d}" for d in own)
    assert own <= stored(store)
    out = satchel_cli("gc", "--store", store_url, "--grace", "0s")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"deleted {len(own)} blobs, ")
    assert not own & stored(store)
    out = satchel_cli("gc", "--store", store_url, "--grace", "soon")
    assert out.returncode == 1 and "--grace must be an age like 7d" in out.stderr


def test_gc_removes_what_a_killed_writer_left_in_a_file_store(tmp_path: Path) -> None:
    root = tmp_path / "store"
    store = open_store(root.as_uri())
    fifo = tmp_path / "source"
    os.mkfifo(fifo)
    code = "import sys; from satchel.packager.stores import open_store; open_store(sys.argv[1]).put_blob(sys.argv[2])"
    proc = subprocess.Popen([sys.executable, "-c", code, root.as_uri(), str(fifo)], cwd=REPO)
    try:
        with open(fifo, "wb") as writer:  # the writer stalls mid-blob: we never close its source
            writer.write(os.urandom(MIB))
            writer.flush()
            wait_until(
                lambda: any(p.stat().st_size for p in (root / ".tmp").glob("blob-*")), 60, "a partial blob"
            )
            proc.kill()
            proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    (partial,) = (root / ".tmp").glob("blob-*")
    fresh = root / ".tmp" / "blob-in-progress"
    fresh.write_bytes(b"a live writer's")
    assert gc(store, grace=0).bytes_freed == 0  # younger than the 10 minutes a scratch file is given
    size = partial.stat().st_size
    old = time.time() - 3601
    os.utime(partial, (old, old))
    assert gc(store).bytes_freed == size
    assert list((root / ".tmp").iterdir()) == [fresh]
