"""What only the S3 store does: endpoints, conditional writes, pagination, botocore errors."""

from __future__ import annotations

import hashlib
import io
import pickle
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from satchel.core.errors import BlobNotFound, StoreError
from satchel.packager.stores import open_store
from satchel.packager.stores import s3 as s3_module
from satchel.packager.stores.s3 import S3Store

pytest.importorskip("boto3")

from botocore.stub import Stubber  # noqa: E402


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def calls(store: S3Store, operation: str) -> list[dict[str, Any]]:
    """Record the parameters of every `operation` call the store's client makes."""
    seen: list[dict[str, Any]] = []
    store.client.meta.events.register(
        f"provide-client-params.s3.{operation}", lambda params, **_: seen.append(dict(params))
    )
    return seen


@pytest.fixture
def s3_store(s3_store_url: str) -> S3Store:
    store = open_store(s3_store_url)
    assert isinstance(store, S3Store)
    return store


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound (so nothing else takes it), not listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


# -- endpoint and environment -----------------------------------------------------------------------


def test_aws_endpoint_url_is_honoured(s3_store: S3Store, s3_server: str) -> None:
    assert s3_store.client.meta.endpoint_url == s3_server
    s3_store.write_document("a", b"1")
    assert s3_store.read_document("a") == b"1"


def test_explicit_endpoint_url(s3_store_url: str, s3_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    open_store(s3_store_url).write_document("a", b"written via the environment")
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    store = S3Store.from_url(s3_store_url, endpoint_url=s3_server)
    assert store.client.meta.endpoint_url == s3_server
    assert store.read_document("a") == b"written via the environment"


def test_default_endpoint_is_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    store = S3Store("some-bucket", region_name="eu-west-1")
    assert "amazonaws.com" in store.client.meta.endpoint_url  # no request made


def test_a_ca_bundle_does_not_affect_plain_http(s3_store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_CA_BUNDLE", "/nonexistent/ca-bundle.pem")
    store = open_store(s3_store_url)
    store.put_blob_bytes(b"over http")
    assert store.has_blob(sha(b"over http"))


def test_subprocesses_reach_the_server(s3_store_url: str) -> None:
    code = (
        "import sys; from satchel.packager.stores import open_store; "
        "open_store(sys.argv[1]).write_document('from/child', b'hello from a child')"
    )
    subprocess.run([sys.executable, "-c", code, s3_store_url], check=True, timeout=120)
    assert open_store(s3_store_url).read_document("from/child") == b"hello from a child"


def test_objects_live_under_the_prefix(s3_store: S3Store, s3_admin_client: Any) -> None:
    digest = s3_store.put_blob_bytes(b"blob")
    s3_store.write_document("bundles/a/1.json", b"{}")
    listed = s3_admin_client.list_objects_v2(Bucket=s3_store.bucket)
    assert sorted(obj["Key"] for obj in listed["Contents"]) == [
        f"some/prefix/blobs/sha256/{digest[:2]}/{digest}",
        "some/prefix/bundles/a/1.json",
    ]


def test_a_store_at_the_bucket_root(s3_store_url: str, s3_admin_client: Any) -> None:
    bucket = s3_store_url.split("/")[2]
    store = open_store(f"s3://{bucket}")
    store.write_document("bundles/a/1.json", b"{}")
    store.put_blob_bytes(b"root blob")
    assert store.list_documents() == ["bundles/a/1.json"]
    keys = [obj["Key"] for obj in s3_admin_client.list_objects_v2(Bucket=bucket)["Contents"]]
    assert "bundles/a/1.json" in keys


def test_sibling_prefixes_do_not_leak(s3_store_url: str) -> None:
    bucket = s3_store_url.split("/")[2]
    open_store(f"s3://{bucket}/some/prefix2").write_document("bundles/x", b"other store")
    assert open_store(s3_store_url).list_documents() == []


def test_stores_pickle(s3_store: S3Store) -> None:
    s3_store.write_document("a", b"1")
    clone = pickle.loads(pickle.dumps(s3_store))
    assert clone.url == s3_store.url
    assert clone.read_document("a") == b"1"


# -- conditional writes and listing -----------------------------------------------------------------


def test_moto_honours_if_none_match(s3_store: S3Store, s3_admin_client: Any) -> None:
    key = "some/prefix/direct"
    s3_admin_client.put_object(Bucket=s3_store.bucket, Key=key, Body=b"1", IfNoneMatch="*")
    with pytest.raises(s3_admin_client.exceptions.ClientError) as info:
        s3_admin_client.put_object(Bucket=s3_store.bucket, Key=key, Body=b"2", IfNoneMatch="*")
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412


def test_exclusive_writes_are_conditional(s3_store: S3Store) -> None:
    puts = calls(s3_store, "PutObject")
    assert s3_store.write_document("bundles/a/1.json", b"{}", exclusive=True)
    assert not s3_store.write_document("bundles/a/1.json", b"{}", exclusive=True)
    s3_store.write_document("bundles/a/1.json", b"{}")
    assert [p.get("IfNoneMatch") for p in puts] == ["*", "*", None]
    assert puts[0]["ContentType"] == "application/json"


def test_a_conflicting_conditional_write_is_retried(s3_store: S3Store) -> None:
    with Stubber(s3_store.client) as stub:
        stub.add_client_error("put_object", "ConditionalRequestConflict", http_status_code=409)
        stub.add_response("put_object", {})
        assert s3_store.write_document("k", b"x", exclusive=True) is True
        stub.add_client_error("put_object", "ConditionalRequestConflict", http_status_code=409)
        stub.add_client_error("put_object", "PreconditionFailed", http_status_code=412)
        assert s3_store.write_document("k", b"x", exclusive=True) is False
        stub.assert_no_pending_responses()


def test_an_endpoint_without_conditional_writes(s3_store: S3Store) -> None:
    with Stubber(s3_store.client) as stub:
        stub.add_client_error("put_object", "NotImplemented", http_status_code=501)
        with pytest.raises(StoreError, match="does not support conditional writes"):
            s3_store.write_document("k", b"x", exclusive=True)


def test_listing_paginates(s3_store: S3Store) -> None:
    s3_store._page_size = 2
    keys = [f"bundles/b{i}/1.json" for i in range(7)] + ["tags/t1", "tags/t2", "top"]
    for key in keys:
        s3_store.write_document(key, b"x")
    s3_store.put_blob_bytes(b"not a document")
    lists = calls(s3_store, "ListObjectsV2")
    assert s3_store.list_documents("bundles/") == sorted(keys[:7])
    assert len(lists) == 4  # 7 keys, 2 a page
    assert s3_store.list_documents() == sorted(keys)
    assert s3_store.list_documents("t") == ["tags/t1", "tags/t2", "top"]


def test_top_level_listing_skips_the_blob_area(s3_store: S3Store) -> None:
    for i in range(5):
        s3_store.put_blob_bytes(f"blob {i}".encode())
    s3_store.write_document("bundles/a/1.json", b"{}")
    lists = calls(s3_store, "ListObjectsV2")
    assert s3_store.list_documents() == ["bundles/a/1.json"]
    assert not any(p["Prefix"].startswith("some/prefix/blobs") for p in lists)


def test_foreign_objects_that_are_not_document_keys_are_skipped(
    s3_store: S3Store, s3_admin_client: Any
) -> None:
    for key in ("some/prefix/dir/", "some/prefix/a//b", "some/prefix/ok"):
        s3_admin_client.put_object(Bucket=s3_store.bucket, Key=key, Body=b"")
    assert s3_store.list_documents() == ["ok"]


# -- blobs ------------------------------------------------------------------------------------------


def test_open_blob_is_a_streaming_context_manager(s3_store: S3Store) -> None:
    data = bytes(range(256)) * 5000
    digest = s3_store.put_blob_bytes(data)
    with s3_store.open_blob(digest) as stream:
        assert isinstance(stream, io.IOBase)
        assert stream.readable()
        assert stream.read(1000) == data[:1000]
        assert stream.read() == data[1000:]
        assert stream.read(10) == b""
    assert stream.closed


def test_put_blob_skips_the_upload_when_present(s3_store: S3Store, tmp_path: Path, monkeypatch) -> None:
    src = tmp_path / "x"
    src.write_bytes(b"present")
    digest = s3_store.put_blob(src)
    uploads: list[Any] = []
    monkeypatch.setattr(s3_store.client, "upload_file", lambda *a, **k: uploads.append(a))
    assert s3_store.put_blob(src) == digest
    assert s3_store.put_blob(src, digest) == digest
    assert uploads == []


def test_a_source_that_vanishes_after_hashing(s3_store: S3Store, tmp_path: Path, monkeypatch) -> None:
    src = tmp_path / "vanishing"
    src.write_bytes(b"here, then gone")
    real = s3_module.sha256_file

    def hash_then_delete(path: Path) -> str:
        digest = real(path)
        Path(path).unlink()
        return digest

    monkeypatch.setattr(s3_module, "sha256_file", hash_then_delete)
    with pytest.raises(FileNotFoundError):  # the caller's error, as with the file store
        s3_store.put_blob(src)
    assert not s3_store.has_blob(sha(b"here, then gone"))
    assert s3_store.list_documents() == []


def test_a_failed_upload_is_a_store_error(s3_store: S3Store, tmp_path: Path) -> None:
    src = tmp_path / "x"
    src.write_bytes(b"x" * 100)
    with Stubber(s3_store.client) as stub:
        stub.add_client_error("head_object", "404", http_status_code=404)
        stub.add_client_error("put_object", "InternalError", "We encountered an internal error", 500)
        with pytest.raises(StoreError) as info:
            s3_store.put_blob(src)
    message = str(info.value)
    assert "InternalError" in message
    assert f"s3://{s3_store.bucket}/some/prefix/blobs/sha256/" in message


# -- errors -----------------------------------------------------------------------------------------


def test_no_such_bucket(s3_env: str, tmp_path: Path) -> None:
    bucket = f"missing-{uuid.uuid4().hex[:12]}"
    store = open_store(f"s3://{bucket}/p")
    for operation in (
        lambda: store.list_documents(),
        lambda: store.read_document("a"),
        lambda: store.write_document("a", b"x"),
        lambda: store.write_document("a", b"x", exclusive=True),
        lambda: store.put_blob_bytes(b"x"),
        lambda: store.open_blob(sha(b"x")),
    ):
        with pytest.raises(StoreError) as info:
            operation()
        assert not isinstance(info.value, (KeyError, BlobNotFound))
        assert f"bucket '{bucket}' does not exist" in str(info.value)
        assert s3_env in str(info.value)  # the endpoint


def test_missing_keys(s3_store: S3Store) -> None:
    with pytest.raises(KeyError):
        s3_store.read_document("nope")
    with pytest.raises(BlobNotFound) as info:
        s3_store.open_blob(sha(b"nope"))
    assert sha(b"nope") in str(info.value) and s3_store.url in str(info.value)
    assert not s3_store.has_blob(sha(b"nope"))
    s3_store.delete_document("nope")


def test_unreachable_endpoint(s3_env: str, refused_port: int) -> None:
    endpoint = f"http://127.0.0.1:{refused_port}"
    store = S3Store("some-bucket", "p", endpoint_url=endpoint)
    with pytest.raises(StoreError) as info:
        store.has_blob(sha(b"x"))
    message = str(info.value)
    assert "cannot reach the S3 endpoint" in message
    assert endpoint in message
    assert "s3://some-bucket/p/blobs/sha256/" in message


def test_no_credentials(s3_store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", raising=False)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)
    monkeypatch.delenv("AWS_WEB_IDENTITY_TOKEN_FILE", raising=False)
    store = open_store(s3_store_url)
    with pytest.raises(StoreError) as info:
        store.read_document("bundles/a/1.json")
    message = str(info.value)
    assert "no AWS credentials" in message
    assert "AWS_ACCESS_KEY_ID" in message
    assert f"{s3_store_url}/bundles/a/1.json" in message


@pytest.mark.parametrize("code", ["AccessDenied", "InvalidAccessKeyId"])
def test_access_denied(s3_store: S3Store, code: str) -> None:
    with Stubber(s3_store.client) as stub:
        stub.add_client_error("list_objects_v2", code, "Access Denied", http_status_code=403)
        with pytest.raises(StoreError) as info:
            s3_store.list_documents("bundles/")
    message = str(info.value)
    assert "access denied" in message and code in message
    assert f"s3://{s3_store.bucket}/some/prefix/bundles/" in message
    assert "credentials" in message


def test_access_denied_on_head_is_not_absence(s3_store: S3Store) -> None:
    with Stubber(s3_store.client) as stub:
        stub.add_client_error("head_object", "403", "Forbidden", http_status_code=403)
        with pytest.raises(StoreError, match="access denied"):
            s3_store.has_blob(sha(b"x"))


def test_other_errors_name_the_object_code_and_message(s3_store: S3Store) -> None:
    with Stubber(s3_store.client) as stub:
        stub.add_client_error("get_object", "SlowDown", "Please reduce your request rate.", 503)
        with pytest.raises(StoreError) as info:
            s3_store.read_document("a")
    assert str(info.value) == (
        f"cannot read document s3://{s3_store.bucket}/some/prefix/a: SlowDown: Please reduce your request rate."
    )
