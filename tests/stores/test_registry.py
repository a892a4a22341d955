"""open_store: URL -> backend, canonical URLs, and the errors for URLs no backend handles."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from satchel.core.errors import MissingExtra, StoreError, UnknownStoreScheme
from satchel.packager import stores
from satchel.packager.stores import registry
from satchel.packager.stores.file import FileStore
from satchel.packager.stores.registry import open_store
from satchel.packager.stores.s3 import S3Store


def test_every_scheme_is_registered() -> None:
    assert set(registry.BACKENDS.names()) == {"file", "s3"}
    assert registry.backend_for("file") is FileStore
    assert registry.backend_for("S3") is S3Store
    assert FileStore.scheme == "file" and S3Store.scheme == "s3"


def test_package_level_open_store(tmp_path: Path) -> None:
    store = stores.open_store(str(tmp_path))
    assert isinstance(store, stores.Store)
    assert store.url == tmp_path.as_uri()


# -- file -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spelling",
    [
        "file://{p}",
        "file://{p}/",
        "file://{p}//",
        "file://localhost{p}",
        "file:{p}",
        "FILE://{p}",
        "{p}",
        "{p}/",
    ],
)
def test_file_urls_are_canonical(tmp_path: Path, spelling: str) -> None:
    path = tmp_path / "my store"  # a space: percent-encoded in the URL
    store = open_store(spelling.format(p=path))
    assert isinstance(store, FileStore)
    assert store.url == path.as_uri()
    assert store.url.startswith("file:///") and store.url.endswith("/my%20store")
    assert store.root == path


def test_percent_encoded_file_url(tmp_path: Path) -> None:
    store = open_store(f"file://{tmp_path}/my%20store")
    assert store.root == tmp_path / "my store"  # type: ignore[attr-defined]


def test_store_on_a_plain_relative_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_store("stores/local")
    assert store.url == (tmp_path / "stores" / "local").as_uri()
    assert not (tmp_path / "stores").exists()  # nothing is created until the first write

    digest = store.put_blob_bytes(b"relative")
    store.write_document("bundles/a/1.json", b"{}")
    assert (tmp_path / "stores" / "local" / "bundles" / "a" / "1.json").read_bytes() == b"{}"
    assert (tmp_path / "stores" / "local" / "blobs" / "sha256" / digest[:2] / digest).is_file()

    # The store keeps its absolute root when the working directory changes.
    monkeypatch.chdir(tmp_path / "stores")
    assert store.read_document("bundles/a/1.json") == b"{}"
    assert open_store("local").url == store.url


def test_store_on_a_home_relative_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert open_store("~/bundles").url == (tmp_path / "bundles").as_uri()


def test_default_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SATCHEL_STORE", str(tmp_path / "from-env"))
    assert open_store(None).url == (tmp_path / "from-env").as_uri()
    assert stores.open_store().url == (tmp_path / "from-env").as_uri()

    monkeypatch.delenv("SATCHEL_STORE")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert open_store(None).url == (tmp_path / ".satchel" / "store").as_uri()


def test_file_url_with_a_host_is_refused() -> None:
    with pytest.raises(StoreError) as info:
        open_store("file://relative/path")
    assert "'relative'" in str(info.value)
    assert "file:///" in str(info.value)


def test_empty_url_is_refused() -> None:
    with pytest.raises(StoreError, match="empty store URL"):
        open_store("  ")


# -- s3 (no server needed: opening a store does not contact it) -------------------------------------


@pytest.mark.parametrize(
    ("spelling", "bucket", "prefix", "canonical"),
    [
        ("s3://bucket/some/prefix", "bucket", "some/prefix", "s3://bucket/some/prefix"),
        ("s3://bucket/some/prefix/", "bucket", "some/prefix", "s3://bucket/some/prefix"),
        ("S3://bucket/p", "bucket", "p", "s3://bucket/p"),
        ("s3://bucket", "bucket", "", "s3://bucket"),
        ("s3://bucket/", "bucket", "", "s3://bucket"),
        ("s3://my.bucket-1//x//", "my.bucket-1", "x", "s3://my.bucket-1/x"),
    ],
)
def test_s3_urls_are_canonical(spelling: str, bucket: str, prefix: str, canonical: str) -> None:
    store = open_store(spelling)
    assert isinstance(store, S3Store)
    assert (store.bucket, store.prefix, store.url) == (bucket, prefix, canonical)
    assert open_store(store.url).url == canonical


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("s3:///prefix", "names no bucket"),
        ("s3:/bucket", "names no bucket"),
        ("s3://bucket/p?endpoint=x", "s3://bucket/prefix"),
        ("s3://key:secret@bucket/p", "s3://bucket/prefix"),
        ("s3://bucket:9000/p", "AWS_ENDPOINT_URL"),
    ],
)
def test_malformed_s3_urls(url: str, fragment: str) -> None:
    with pytest.raises(StoreError) as info:
        open_store(url)
    assert fragment in str(info.value)
    assert url in str(info.value)


def test_s3_without_boto3_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)  # makes `import boto3` raise ImportError
    with pytest.raises(MissingExtra) as info:
        open_store("s3://bucket/prefix")
    assert "pip install 'satchel[s3]'" in str(info.value)
    assert "boto3" in str(info.value)


# -- unknown schemes --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["gs://bucket/prefix", "https://example.com/store", "ftp://host/x", "hdfs:/x"]
)
def test_unknown_scheme(url: str) -> None:
    scheme = url.split(":")[0]
    with pytest.raises(UnknownStoreScheme) as info:
        open_store(url)
    message = str(info.value)
    assert repr(scheme) in message
    assert "file://" in message and "s3://" in message  # the supported ones
    assert isinstance(info.value, StoreError) and isinstance(info.value, ValueError)


def test_a_new_backend_is_one_registry_entry(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    class MemStore(FileStore):
        scheme = "mem"

        @classmethod
        def from_url(cls, url: str) -> MemStore:
            return cls(tmp_path / url.split("://", 1)[1])

    module = type(sys)("satchel_test_memstore")
    module.MemStore = MemStore  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "satchel_test_memstore", module)
    registry.BACKENDS.register("mem", "satchel_test_memstore:MemStore")
    try:
        store = open_store("mem://x")
        assert isinstance(store, MemStore)
        with pytest.raises(UnknownStoreScheme, match="mem://"):
            open_store("nope://x")
    finally:
        registry.BACKENDS.unregister("mem")
