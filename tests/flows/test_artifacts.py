"""Artifact codecs (zstd, old zlib blobs, no zstandard at all), streaming at 1 GB, the artifact journal."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import numpy as np
import pytest

from satchel.flows import ArtifactError
from satchel.flows.datastore import FlowDatastore
from satchel.packager.stores import open_store

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
NO_ZSTANDARD = "import sys\nsys.modules['zstandard'] = None  # as if not installed\n"


def _stored(ds: FlowDatastore, digest: str) -> bytes:
    with ds.store.open_blob(digest) as fh:
        return fh.read()


def _python(code: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


def test_artifacts_are_zstd_frames(store_url: str) -> None:
    ds = FlowDatastore("SomeFlow")
    value = {"weights": np.arange(300_000, dtype=np.float64), "name": "m" * 10_000}
    digest = ds.save_artifact(value, "model", "fit")
    stored = _stored(ds, digest)
    assert stored[:4] == ZSTD_MAGIC
    assert len(stored) < value["weights"].nbytes
    loaded = ds.load_artifact(digest, "model", "SomeFlow/1/fit/1")
    assert np.array_equal(loaded["weights"], value["weights"]) and loaded["name"] == value["name"]


def test_old_zlib_blobs_still_load(store_url: str) -> None:
    ds = FlowDatastore("SomeFlow")
    value = list(range(50_000))
    digest = ds.store.put_blob_bytes(zlib.compress(pickle.dumps(value, protocol=5), 3))
    assert _stored(ds, digest)[:1] == b"\x78"
    assert ds.load_artifact(digest, "numbers", "SomeFlow/1/start/1") == value


def test_without_zstandard_artifacts_are_zlib_and_zstd_ones_fail_clearly(store_url: str) -> None:
    ds = FlowDatastore("SomeFlow")
    zstd_digest = ds.save_artifact({"from": "parent"}, "config", "start")
    proc = _python(
        NO_ZSTANDARD
        + """
        import json
        from satchel.core.errors import MissingExtra
        from satchel.flows.datastore import FlowDatastore, artifact_codec
        ds = FlowDatastore("SomeFlow")
        digest = ds.save_artifact({"from": "child"}, "config", "start")
        try:
            ds.load_artifact(sys.argv[1], "config", "SomeFlow/1/start/1")
            error = None
        except MissingExtra as exc:
            error = str(exc)
        print(json.dumps({"codec": artifact_codec(), "digest": digest, "error": error}))
        """.replace("\n        ", "\n"),
        zstd_digest,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["codec"] == "zlib"
    assert _stored(ds, out["digest"])[:1] == b"\x78"
    assert ds.load_artifact(out["digest"]) == {"from": "child"}  # readable here, with zstandard
    assert "artifact 'config'" in out["error"] and "needs zstandard" in out["error"]
    assert out["error"].endswith("pip install 'satchel[flows]'")


def test_large_buffers_stream_through(store_url: str) -> None:
    ds = FlowDatastore("SomeFlow")
    array = np.random.default_rng(3).integers(0, 7, size=(3_000, 2_000), dtype=np.int16)  # 12 MB
    digest = ds.save_artifact(array, "array", "start")
    back = ds.load_artifact(digest)
    assert back.dtype == array.dtype and np.array_equal(back, array)


def test_save_journals_the_digest_under_the_run(store_url: str) -> None:
    ds = FlowDatastore("SomeFlow", run_id="42")
    digest = ds.save_artifact("value", "x", "start")
    assert ds.store.list_documents(ds.journal_prefix("42")) == [ds.journal_prefix("42") + digest]
    other = FlowDatastore("SomeFlow")
    other.save_artifact("value", "x", "start", run_id="43")
    assert ds.store.list_documents(ds.journal_prefix("43")) == [ds.journal_prefix("43") + digest]


def test_a_dedup_hit_refreshes_the_blob_timestamp(store_url: str) -> None:
    ds = FlowDatastore("SomeFlow")
    digest = ds.save_artifact("same value", "x", "start")
    path = Path(ds.store.root) / "blobs" / "sha256" / digest[:2] / digest  # type: ignore[attr-defined]
    os.utime(path, (1_000_000, 1_000_000))
    assert ds.store.stat_blob(digest).modified == 1_000_000
    assert ds.save_artifact("same value", "x", "start") == digest
    assert ds.store.stat_blob(digest).modified > 1_000_000


def test_adopting_artifacts_journals_and_reports_missing(store_url: str) -> None:
    ds = FlowDatastore("SomeFlow")
    present = ds.save_artifact(1, "x", "start")
    absent = "0" * 64
    assert ds.adopt_artifacts("7", [present, absent]) == [absent]
    assert set(ds.store.list_documents(ds.journal_prefix("7"))) == {
        ds.journal_prefix("7") + present,
        ds.journal_prefix("7") + absent,
    }


def test_unreadable_blob_names_the_artifact(store_url: str) -> None:
    ds = FlowDatastore("SomeFlow")
    digest = ds.store.put_blob_bytes(b"not a pickle at all")
    with pytest.raises(ArtifactError, match=r"artifact 'model' of SomeFlow/1/fit/2 could not be loaded"):
        ds.load_artifact(digest, "model", "SomeFlow/1/fit/2")


ROUND_TRIP_1GB = """
import hashlib, json, resource, sys
import numpy as np
from satchel.flows.datastore import FlowDatastore

ds = FlowDatastore("BigFlow", sys.argv[1])
array = np.random.default_rng(0).standard_normal(1 << 27)  # 2**27 float64: 1 GiB
assert array.nbytes == 1 << 30
before = hashlib.sha256(memoryview(array).cast("B")).hexdigest()
digest = ds.save_artifact(array, "array", "start")
del array
back = ds.load_artifact(digest, "array", "BigFlow/1/start/1")
after = hashlib.sha256(memoryview(back).cast("B")).hexdigest()
print(json.dumps({"equal": before == after, "nbytes": back.nbytes, "digest": digest,
                  "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""


@pytest.mark.slow
def test_one_gigabyte_artifact_round_trips_in_bounded_memory(tmp_path: Path) -> None:
    store = (tmp_path / "store").as_uri()
    proc = _python(ROUND_TRIP_1GB, store)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["equal"] and out["nbytes"] == 1 << 30
    assert out["peak_rss"] < 1.5e9, f"peak RSS {out['peak_rss'] / 1e9:.2f} GB"
    assert open_store(store).stat_blob(out["digest"]).size < 1 << 30  # stored compressed
