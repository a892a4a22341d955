"""What only the file store does: lazy creation, read-only blobs, temp files, failed writes."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from satchel.core.errors import BlobNotFound, StoreError
from satchel.packager.stores import file as file_module
from satchel.packager.stores.file import FileStore


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def all_files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if not p.is_dir())


def test_reading_a_store_that_does_not_exist(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "nowhere")
    assert store.list_documents() == []
    assert store.list_documents("bundles/") == []
    assert not store.has_blob(sha(b"x"))
    with pytest.raises(KeyError):
        store.read_document("bundles/a/1.json")
    with pytest.raises(BlobNotFound):
        store.open_blob(sha(b"x"))
    store.delete_document("bundles/a/1.json")
    assert not (tmp_path / "nowhere").exists()


def test_layout_and_permissions(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "store")
    digest = store.put_blob_bytes(b"blob")
    store.write_document("bundles/a/1.json", b"{}")
    blob = tmp_path / "store" / "blobs" / "sha256" / digest[:2] / digest
    assert blob.read_bytes() == b"blob"
    assert stat.S_IMODE(blob.stat().st_mode) == 0o444
    document = tmp_path / "store" / "bundles" / "a" / "1.json"
    mode = stat.S_IMODE(document.stat().st_mode)
    assert mode & 0o600 == 0o600  # the usual umask-derived mode, not mkstemp's 0o600-only
    assert all_files(tmp_path / "store") == [f"blobs/sha256/{digest[:2]}/{digest}", "bundles/a/1.json"]
    assert list((tmp_path / "store" / ".tmp").iterdir()) == []  # no temp files left behind


def test_exclusive_create_leaves_no_temp_files(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    assert store.write_document("k", b"1", exclusive=True)
    assert not store.write_document("k", b"2", exclusive=True)
    assert list((tmp_path / ".tmp").iterdir()) == []


def test_temp_files_are_not_documents(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    store.write_document("bundles/a/1.json", b"{}")
    (tmp_path / ".tmp" / "doc-leftover-from-a-crash").write_bytes(b"partial")
    assert store.list_documents() == ["bundles/a/1.json"]
    assert store.list_documents(".") == []


def test_a_failed_blob_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = FileStore(tmp_path / "store")
    store.put_blob_bytes(b"existing")
    before = all_files(tmp_path / "store")

    def failing_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(file_module.os, "fsync", failing_fsync)
    src = tmp_path / "new.bin"
    src.write_bytes(b"new content")
    with pytest.raises(StoreError) as info:
        store.put_blob(src)
    assert "No space left on device" in str(info.value)
    assert store.url in str(info.value)
    assert all_files(tmp_path / "store") == before
    assert not store.has_blob(sha(b"new content"))


def test_a_failed_document_write_keeps_the_old_document(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileStore(tmp_path / "store")
    store.write_document("bundles/a/1.json", b"old")
    before = all_files(tmp_path / "store")

    def failing_replace(src: str, dst: str) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(file_module.os, "replace", failing_replace)
    with pytest.raises(StoreError):
        store.write_document("bundles/a/1.json", b"new")
    assert store.read_document("bundles/a/1.json") == b"old"
    assert all_files(tmp_path / "store") == before


def test_a_source_that_fails_mid_read_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = FileStore(tmp_path / "store")
    store.write_document("bundles/a/1.json", b"{}")
    before = all_files(tmp_path / "store")
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(3 * file_module.CHUNK))

    real_open = open
    reads = 0

    class FlakySource:
        def __init__(self, fh):
            self.fh = fh

        def read(self, n: int) -> bytes:
            nonlocal reads
            reads += 1
            if reads == 2:
                raise OSError(5, "Input/output error")
            return self.fh.read(n)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

    def flaky_open(path, mode="r", *args, **kwargs):
        fh = real_open(path, mode, *args, **kwargs)
        return FlakySource(fh) if Path(path) == src else fh

    monkeypatch.setattr(file_module, "open", flaky_open, raising=False)
    with pytest.raises(OSError, match="Input/output error"):
        store.put_blob(src)
    assert all_files(tmp_path / "store") == before


def test_documents_that_are_directories(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    store.write_document("bundles/a/1.json", b"{}")
    with pytest.raises(KeyError):
        store.read_document("bundles/a")
    store.delete_document("bundles/a")  # not a document: nothing happens
    assert store.read_document("bundles/a/1.json") == b"{}"
    # a document can't be created where a directory is
    assert store.write_document("bundles/a", b"x", exclusive=True) is False
    with pytest.raises(StoreError):
        store.write_document("bundles/a", b"x")


def test_put_blob_is_a_no_op_when_present(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = FileStore(tmp_path / "store")
    digest = store.put_blob_bytes(b"content")
    blob = tmp_path / "store" / "blobs" / "sha256" / digest[:2] / digest
    mtime = blob.stat().st_mtime_ns
    # With the digest given the source is not even read: it need not exist.
    assert store.put_blob(tmp_path / "does-not-exist", digest) == digest
    assert blob.stat().st_mtime_ns == mtime
