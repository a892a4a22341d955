"""Behaviour every store backend shares, run against each (`file`, and `s3` on a moto server)."""

from __future__ import annotations

import hashlib
import multiprocessing
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from satchel.core.errors import BlobCorrupted, BlobNotFound, StoreError
from satchel.packager.stores import open_store
from satchel.packager.stores.base import Store, blob_key
from tests.stores import _workers
from tests.stores.conftest import Backend

pytestmark = pytest.mark.timeout(120)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# -- blobs ----------------------------------------------------------------------------------------


def test_put_has_fetch_round_trip(store: Store, tmp_path: Path) -> None:
    data = b"model weights \x00\x01\x02" * 1000
    src = write(tmp_path / "src" / "weights.bin", data)

    assert not store.has_blob(sha(data))
    assert store.put_blob(src) == sha(data)
    assert store.has_blob(sha(data))
    assert not store.has_blob(sha(b"something else"))

    dest = store.fetch_blob(sha(data), tmp_path / "out" / "weights.bin")
    assert dest == tmp_path / "out" / "weights.bin"
    assert dest.read_bytes() == data
    assert sorted(p.name for p in dest.parent.iterdir()) == ["weights.bin"]  # no partial files

    with store.open_blob(sha(data)) as stream:
        assert stream.read(10) == data[:10]
        assert stream.read() == data[10:]


def test_put_blob_with_the_right_digest(store: Store, tmp_path: Path) -> None:
    data = b"x" * 3_000_000  # several read chunks
    assert store.put_blob(write(tmp_path / "a", data), sha(data)) == sha(data)
    assert store.fetch_blob(sha(data), tmp_path / "b").read_bytes() == data


def test_put_blob_bytes_and_empty_blob(store: Store, tmp_path: Path) -> None:
    assert store.put_blob_bytes(b"hello") == sha(b"hello")
    assert store.put_blob_bytes(b"") == sha(b"")
    assert store.fetch_blob(sha(b"hello"), tmp_path / "h").read_bytes() == b"hello"
    assert store.fetch_blob(sha(b""), tmp_path / "e").read_bytes() == b""


def test_identical_content_is_stored_once(backend: Backend, tmp_path: Path) -> None:
    store = backend.store
    data = b"the same bytes"
    first = store.put_blob(write(tmp_path / "one.bin", data))
    second = store.put_blob(write(tmp_path / "two" / "other-name.bin", data))
    third = store.put_blob(write(tmp_path / "three.bin", data), sha(data))
    fourth = store.put_blob_bytes(data)
    assert first == second == third == fourth == sha(data)
    assert backend.blob_keys() == [blob_key(sha(data))]

    store.put_blob_bytes(b"different bytes")
    assert len(backend.blob_keys()) == 2


def test_concurrent_puts_of_one_blob(backend: Backend, tmp_path: Path) -> None:
    data = b"racing content" * 10_000
    sources = [write(tmp_path / f"src{i}", data) for i in range(8)]
    barrier = threading.Barrier(len(sources))

    def put(src: Path) -> str:
        barrier.wait(timeout=30)
        return backend.store.put_blob(src)

    with ThreadPoolExecutor(len(sources)) as pool:
        assert set(pool.map(put, sources)) == {sha(data)}
    assert backend.blob_keys() == [blob_key(sha(data))]
    assert backend.store.fetch_blob(sha(data), tmp_path / "out").read_bytes() == data


def test_fetch_detects_a_corrupted_blob(backend: Backend, tmp_path: Path) -> None:
    store = backend.store
    digest = store.put_blob_bytes(b"good bytes")
    backend.corrupt_blob(digest, b"evil bytes")

    dest = tmp_path / "out" / "model.bin"
    with pytest.raises(BlobCorrupted) as info:
        store.fetch_blob(digest, dest, what="artifact 'model'")
    message = str(info.value)
    assert digest in message
    assert sha(b"evil bytes") in message
    assert "artifact 'model'" in message
    assert store.url in message
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == []  # no partial file either


def test_fetch_does_not_replace_a_good_destination_with_corrupt_bytes(
    backend: Backend, tmp_path: Path
) -> None:
    digest = backend.store.put_blob_bytes(b"good bytes")
    backend.corrupt_blob(digest, b"bad")
    dest = write(tmp_path / "dest", b"previous content")
    with pytest.raises(BlobCorrupted):
        backend.store.fetch_blob(digest, dest)
    assert dest.read_bytes() == b"previous content"


def test_missing_blob(store: Store, tmp_path: Path) -> None:
    digest = sha(b"never stored")
    with pytest.raises(BlobNotFound) as info:
        store.open_blob(digest)
    assert digest in str(info.value)
    assert store.url in str(info.value)
    assert isinstance(info.value, LookupError) and isinstance(info.value, StoreError)

    dest = tmp_path / "out" / "x"
    with pytest.raises(BlobNotFound):
        store.fetch_blob(digest, dest)
    assert list(dest.parent.iterdir()) == []


def test_concurrent_fetches_to_one_destination(store: Store, tmp_path: Path) -> None:
    data = b"fetched by many" * 50_000
    digest = store.put_blob_bytes(data)
    dest = tmp_path / "cache" / digest
    barrier = threading.Barrier(8)

    def fetch(_: int) -> bytes:
        barrier.wait(timeout=30)
        return store.fetch_blob(digest, dest).read_bytes()

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(fetch, range(8))) == {data}
    assert [p.name for p in dest.parent.iterdir()] == [digest]


@pytest.mark.parametrize("bad", ["", "abc", "A" * 64, "g" * 64, "../" + "a" * 61, "a" * 65])
def test_invalid_digests_are_rejected(store: Store, bad: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        store.has_blob(bad)
    with pytest.raises(ValueError):
        store.open_blob(bad)
    with pytest.raises(ValueError):
        store.put_blob(write(tmp_path / "f", b"data"), bad)


# -- failed writes leave the store as it was --------------------------------------------------------


def test_put_blob_with_a_wrong_digest_changes_nothing(backend: Backend, tmp_path: Path) -> None:
    store = backend.store
    store.put_blob_bytes(b"already there")
    store.write_document("bundles/a/1.json", b"{}")
    before = backend.raw_keys()

    wrong = sha(b"what the caller thinks it is")
    with pytest.raises(BlobCorrupted) as info:
        store.put_blob(write(tmp_path / "actual", b"what it really is"), wrong)
    assert wrong in str(info.value)
    assert sha(b"what it really is") in str(info.value)

    assert backend.raw_keys() == before
    assert not store.has_blob(wrong)
    assert not store.has_blob(sha(b"what it really is"))


def test_put_blob_of_a_vanished_source_changes_nothing(backend: Backend, tmp_path: Path) -> None:
    store = backend.store
    store.put_blob_bytes(b"already there")
    before = backend.raw_keys()
    gone = write(tmp_path / "gone", b"soon gone")
    gone.unlink()
    with pytest.raises(FileNotFoundError):
        store.put_blob(gone)
    with pytest.raises(FileNotFoundError):
        store.put_blob(gone, sha(b"soon gone"))
    assert backend.raw_keys() == before


# -- documents --------------------------------------------------------------------------------------


def test_documents(store: Store) -> None:
    assert store.list_documents("bundles/") == []
    with pytest.raises(KeyError):
        store.read_document("bundles/fit/1.0.json")

    assert store.write_document("bundles/fit/1.0.json", b'{"v": 1}') is True
    assert store.write_document("bundles/fit/2.0.json", b'{"v": 2}') is True
    assert store.write_document("bundles/fitter/1.0.json", b"x") is True
    assert store.write_document("tags/latest", b"2.0") is True
    assert store.read_document("bundles/fit/1.0.json") == b'{"v": 1}'

    assert store.list_documents("bundles/fit/") == ["bundles/fit/1.0.json", "bundles/fit/2.0.json"]
    assert store.list_documents("bundles/fit") == [  # a string prefix, as in S3
        "bundles/fit/1.0.json",
        "bundles/fit/2.0.json",
        "bundles/fitter/1.0.json",
    ]
    assert store.list_documents("bundles/") == store.list_documents("bundles")
    assert store.list_documents("t") == ["tags/latest"]
    assert store.list_documents("nothing/") == []

    # overwrite
    assert store.write_document("bundles/fit/1.0.json", b'{"v": "1b"}') is True
    assert store.read_document("bundles/fit/1.0.json") == b'{"v": "1b"}'

    # delete (twice: deleting a missing document is fine)
    store.delete_document("bundles/fit/1.0.json")
    store.delete_document("bundles/fit/1.0.json")
    with pytest.raises(KeyError):
        store.read_document("bundles/fit/1.0.json")
    assert store.list_documents("bundles/fit/") == ["bundles/fit/2.0.json"]


def test_blobs_are_not_documents(store: Store) -> None:
    store.put_blob_bytes(b"a blob")
    store.write_document("bundles/a/1.json", b"{}")
    assert store.list_documents("") == ["bundles/a/1.json"]
    assert store.list_documents("b") == ["bundles/a/1.json"]
    assert store.list_documents("blobs/") == []


def test_documents_can_be_empty_and_binary(store: Store) -> None:
    store.write_document("empty", b"")
    store.write_document("binary", bytes(range(256)))
    assert store.read_document("empty") == b""
    assert store.read_document("binary") == bytes(range(256))
    assert store.list_documents() == ["binary", "empty"]


@pytest.mark.parametrize(
    "key",
    [
        "",
        "/etc/passwd",
        "../escape",
        "bundles/../../escape",
        "a//b",
        "a/./b",
        "a/",
        "blobs/sha256/x",
        ".tmp/x",
        "a\\b",
    ],
)
def test_invalid_document_keys_are_rejected(store: Store, key: str) -> None:
    with pytest.raises(ValueError):
        store.write_document(key, b"x")
    with pytest.raises(ValueError):
        store.read_document(key)
    with pytest.raises(ValueError):
        store.delete_document(key)


@pytest.mark.parametrize("prefix", ["/abs", "../", "a/../b", "a//"])
def test_invalid_document_prefixes_are_rejected(store: Store, prefix: str) -> None:
    with pytest.raises(ValueError):
        store.list_documents(prefix)


def test_exclusive_create(store: Store) -> None:
    assert store.write_document("bundles/x/1.json", b"first", exclusive=True) is True
    assert store.write_document("bundles/x/1.json", b"second", exclusive=True) is False
    assert store.read_document("bundles/x/1.json") == b"first"
    # a plain write still overwrites
    assert store.write_document("bundles/x/1.json", b"third") is True
    assert store.read_document("bundles/x/1.json") == b"third"
    # after a delete the key can be created again
    store.delete_document("bundles/x/1.json")
    assert store.write_document("bundles/x/1.json", b"fourth", exclusive=True) is True


@pytest.mark.parametrize("round_", range(3))
def test_exclusive_create_race_between_threads(store: Store, round_: int) -> None:
    key = f"bundles/race/{round_}.json"
    racers = 8
    barrier = threading.Barrier(racers)

    def attempt(i: int) -> tuple[bytes, bool]:
        data = f"writer {i}".encode()
        barrier.wait(timeout=30)
        return data, store.write_document(key, data, exclusive=True)

    with ThreadPoolExecutor(racers) as pool:
        results = list(pool.map(attempt, range(racers)))
    winners = [data for data, won in results if won]
    assert len(winners) == 1, results
    assert store.read_document(key) == winners[0]
    assert store.list_documents("bundles/race/") == [key]


def test_exclusive_create_race_between_processes(backend: Backend) -> None:
    ctx = multiprocessing.get_context("spawn")
    racers = 3
    barrier = ctx.Barrier(racers)
    results = ctx.Queue()
    key = "bundles/proc-race/1.json"
    procs = [
        ctx.Process(
            target=_workers.exclusive_create,
            args=(backend.store.url, key, f"process {i}".encode(), barrier, results),
        )
        for i in range(racers)
    ]
    for proc in procs:
        proc.start()
    outcomes = [results.get(timeout=90) for _ in procs]
    for proc in procs:
        proc.join(timeout=30)
        assert proc.exitcode == 0
    winners = [data for data, won in outcomes if won]
    assert len(winners) == 1, outcomes
    assert backend.store.read_document(key) == winners[0]


# -- URLs -------------------------------------------------------------------------------------------


def test_url_is_canonical_and_reopens_the_same_store(backend: Backend) -> None:
    store = backend.store
    assert not store.url.endswith("/")
    assert store.url.startswith(f"{backend.kind}://")
    store.write_document("bundles/a/1.json", b"hello")
    again = open_store(store.url)
    assert type(again) is type(store)
    assert again.url == store.url
    assert again.read_document("bundles/a/1.json") == b"hello"
    assert open_store(store.url + "/").url == store.url
    assert repr(store) == f"<{type(store).__name__} {store.url}>"
