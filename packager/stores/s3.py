"""The `s3` store: a bucket and key prefix in S3, or any S3-compatible service (boto3).

    s3://bucket/prefix  ->  s3://bucket/prefix/blobs/sha256/ab/abcd...   blobs
                            s3://bucket/prefix/bundles/...               documents

The endpoint is AWS unless `endpoint_url=` or AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL says
otherwise (MinIO, moto, ...). Credentials and region come from the usual boto3 chain.

S3 makes every PUT (and completed multipart upload) visible atomically, so no temp objects are
needed; exclusive creates use conditional writes (`If-None-Match: *`).
"""

from __future__ import annotations

import contextlib
import io
import itertools
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from satchel.core.errors import BlobCorrupted, BlobNotFound, StoreError
from satchel.core.extras import needs_extra
from satchel.packager.stores.base import (
    CHUNK,
    RESERVED_TOP_LEVEL,
    BlobStat,
    Store,
    blob_key,
    check_digest,
    check_document_key,
    check_document_prefix,
    is_digest,
    sha256_file,
)

_ACCESS_CODES = {
    "AccessDenied",
    "AllAccessDisabled",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "TokenRefreshRequired",
    "AccountProblem",
    "403",
}
# Attempts at an exclusive create that S3 answers with 409 ConditionalRequestConflict (another
# conditional write of the key is in flight); AWS documents retrying these.
_CONFLICT_ATTEMPTS = 8


def _require_boto3() -> Any:
    with needs_extra("s3", "the s3 store"):
        import boto3
    return boto3


def _env_endpoint_url() -> str | None:
    """The endpoint the AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL variables name, as botocore reads them.

    Recent botocore honours these by itself; reading them here as well makes them work with older
    versions too (and lets error messages name the endpoint).
    """
    if os.environ.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "").lower() == "true":
        return None
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def _botocore_cause(exc: BaseException) -> BaseException | None:
    """`exc`, or the botocore error it wraps (boto3's S3UploadFailedError only keeps it as context)."""
    import botocore.exceptions

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError)):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _error_code(exc: BaseException) -> tuple[str, int | None]:
    response = getattr(exc, "response", None) or {}
    code = str(response.get("Error", {}).get("Code", ""))
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code, status


# A blob read whose connection breaks mid-body resumes with a ranged GET from the byte it reached;
# it gives up after this many attempts in a row that brought no new byte.
_READ_ATTEMPTS = 5


def _transport_errors() -> tuple[type[BaseException], ...]:
    """The errors of a response body that broke in transit (as opposed to an answer from S3)."""
    import botocore.exceptions as bce
    import urllib3.exceptions

    return (
        bce.IncompleteReadError,
        bce.ResponseStreamingError,
        bce.ReadTimeoutError,
        bce.ConnectionClosedError,
        urllib3.exceptions.HTTPError,
        ConnectionError,
        TimeoutError,
    )


def _pause(failures: int) -> None:
    """Back off before attempt `failures` + 1 (exponential, jittered, at most 2 s)."""
    time.sleep(min(2.0, 0.05 * 2 ** (failures - 1)) * random.uniform(0.5, 1.0))


class _S3Reader(io.RawIOBase):
    """A blob's body as a raw stream that resumes where it broke; other errors are StoreError.

    `open_body(start)` returns (body, bytes it will deliver) for the object from byte `start`: a
    plain GET for 0, a ranged GET after that. Nothing here is verified: `fetch_blob` checks the
    sha256 of the whole, so a resume that splices wrong bytes cannot go unnoticed.
    """

    def __init__(
        self, open_body: Callable[[int], tuple[Any, int]], store: S3Store, key: str, what: str
    ) -> None:
        self._open_body = open_body
        self._store = store
        self._key = key
        self._what = what
        self._body, self._size = open_body(0)
        self._position = 0
        self._failures = 0  # breaks in a row at the same byte
        self._broke_at = -1

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while True:
            try:
                if self._body is None:
                    self._body, _ = self._open_body(self._position)
                data = self._body.read(len(buffer))
                if not data and self._position < self._size:  # ended early without a word
                    raise ConnectionError("the response body ended early")
            except StoreError:  # an answer from S3 on a resume (the blob is gone, access denied, ...)
                raise
            except _transport_errors() as exc:
                self._broken(exc)
                continue
            except Exception as exc:
                raise self._store._translate(exc, "read", self._key) from exc
            n = len(data)
            buffer[:n] = data
            self._position += n
            return n

    def _broken(self, exc: BaseException) -> None:
        """Drop the broken connection; raise StoreError if too many attempts in a row got nowhere."""
        if self._body is not None:
            with contextlib.suppress(Exception):
                self._body.close()
            self._body = None
        self._failures = self._failures + 1 if self._broke_at == self._position else 1
        self._broke_at = self._position
        if self._failures >= _READ_ATTEMPTS:
            where = f" at byte {self._position} of {self._size}"
            raise self._store._gave_up(self._what, self._key, self._failures, exc, where) from exc
        _pause(self._failures)

    def close(self) -> None:
        if not self.closed and self._body is not None:
            with contextlib.suppress(Exception):
                self._body.close()
        super().close()


class S3Store(Store):
    """A store under `s3://bucket/prefix`. Safe for concurrent use by threads and processes."""

    scheme = "s3"

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        client: Any = None,
        region_name: str | None = None,
    ) -> None:
        if not bucket or "/" in bucket:
            raise StoreError(f"invalid S3 bucket name {bucket!r}: expected s3://bucket/prefix")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self._endpoint_url = endpoint_url or _env_endpoint_url()
        self._region_name = region_name
        self._page_size = 1000
        self._lock = threading.Lock()
        self._client = client
        if client is None:
            _require_boto3()  # fail now, naming the fix, rather than at the first operation

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> S3Store:
        parts = urlsplit(url)
        if parts.scheme.lower() != "s3":
            raise ValueError(f"not an s3:// URL: {url!r}")
        if not parts.netloc:
            raise StoreError(f"S3 store URL {url!r} names no bucket: expected s3://bucket/prefix")
        if parts.query or parts.fragment or "@" in parts.netloc or ":" in parts.netloc:
            raise StoreError(
                f"S3 store URL {url!r} is not of the form s3://bucket/prefix (no credentials, port, "
                f"query or fragment; set the endpoint with AWS_ENDPOINT_URL)"
            )
        return cls(parts.netloc, parts.path, **kwargs)

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    @property
    def client(self) -> Any:
        """The boto3 S3 client, created on first use (boto3 clients are thread-safe)."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._make_client()
        return self._client

    def _make_client(self) -> Any:
        boto3 = _require_boto3()
        from botocore.config import Config

        options: dict[str, Any] = {"connect_timeout": 10, "read_timeout": 60}
        if not (os.environ.get("AWS_MAX_ATTEMPTS") or os.environ.get("AWS_RETRY_MODE")):
            options["retries"] = {"max_attempts": 3, "mode": "standard"}
        # A session per store: boto3's default session is not thread-safe to create clients from.
        session = boto3.session.Session()
        return session.client(
            "s3",
            endpoint_url=self._endpoint_url,
            region_name=self._region_name,
            config=Config(**options),
        )

    def __getstate__(self) -> dict[str, Any]:  # picklable: the client is recreated on arrival
        state = self.__dict__.copy()
        state["_client"] = None
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    # -- keys and errors --------------------------------------------------------------------------

    def _key(self, relative: str) -> str:
        return f"{self.prefix}/{relative}" if self.prefix else relative

    def _describe_endpoint(self) -> str:
        if self._client is not None:
            return self._client.meta.endpoint_url
        return self._endpoint_url or "AWS"

    def _translate(self, exc: BaseException, action: str, key: str | None) -> StoreError:
        import botocore.exceptions as bce

        where = f"s3://{self.bucket}/{key}" if key else self.url
        cause = _botocore_cause(exc) or exc
        endpoint = self._describe_endpoint()
        if isinstance(cause, bce.ClientError):
            code, status = _error_code(cause)
            message = cause.response.get("Error", {}).get("Message", "") or str(cause)
            if code == "NoSuchBucket":
                return StoreError(
                    f"cannot {action} {where}: bucket {self.bucket!r} does not exist at {endpoint}. "
                    f"Create it, or fix the store URL / AWS_ENDPOINT_URL."
                )
            if code in _ACCESS_CODES or status == 403:
                return StoreError(
                    f"cannot {action} {where}: access denied by {endpoint} ({code}: {message}). "
                    f"Check the AWS credentials in use and the bucket's policy."
                )
            return StoreError(f"cannot {action} {where}: {code or status}: {message}")
        if isinstance(cause, (bce.NoCredentialsError, bce.PartialCredentialsError)):
            return StoreError(
                f"cannot {action} {where}: no AWS credentials found ({cause}). Set "
                f"AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE."
            )
        if isinstance(cause, (bce.EndpointConnectionError, bce.ConnectionError, bce.HTTPClientError)):
            return StoreError(
                f"cannot {action} {where}: cannot reach the S3 endpoint {endpoint} ({cause}). "
                f"Check the network, and AWS_ENDPOINT_URL if you use an S3-compatible service."
            )
        return StoreError(f"cannot {action} {where}: {type(cause).__name__}: {cause}")

    @contextlib.contextmanager
    def _errors(self, action: str, key: str | None = None) -> Iterator[None]:
        """Turn botocore's (and boto3's) errors into StoreError naming the object and the cause."""
        import botocore.exceptions as bce
        from boto3.exceptions import Boto3Error

        try:
            yield
        except (bce.BotoCoreError, bce.ClientError, Boto3Error) as exc:
            raise self._translate(exc, action, key) from exc

    # -- blobs ------------------------------------------------------------------------------------

    def has_blob(self, digest: str) -> bool:
        return self._exists(self._key(blob_key(digest)))

    def _exists(self, key: str) -> bool:
        import botocore.exceptions as bce

        with self._errors("look up", key):
            try:
                self.client.head_object(Bucket=self.bucket, Key=key)
            except bce.ClientError as exc:
                code, status = _error_code(exc)
                if status == 404 or code in ("404", "NoSuchKey", "NotFound"):
                    return False
                raise
        return True

    def put_blob(self, path: Path, digest: str | None = None) -> str:
        if digest is not None:
            check_digest(digest)
            if self.has_blob(digest):
                return digest
        # Verify before anything is sent: S3 never sees a blob under the wrong name (unless the
        # file changes between here and the upload; fetch_blob's verification catches that).
        actual = sha256_file(path)
        if digest is not None and actual != digest:
            raise BlobCorrupted(
                f"{path} hashes to sha256:{actual}, not the sha256:{digest} it was to be stored "
                f"as; nothing was uploaded to {self.url}"
            )
        if digest is None and self.has_blob(actual):
            return actual
        key = self._key(blob_key(actual))
        with self._errors("upload blob to", key):
            # Multipart above boto3's threshold; a failed multipart upload is aborted, and S3
            # makes the object visible only once complete.
            self.client.upload_file(
                str(path), self.bucket, key, ExtraArgs={"ContentType": "application/octet-stream"}
            )
        return actual

    def open_blob(self, digest: str) -> BinaryIO:
        key = self._key(blob_key(digest))
        missing = BlobNotFound(f"blob sha256:{digest} not found in {self.url}")
        # No If-Match on a resume: a blob's content is its name (a touch may change its ETag, not its
        # bytes), and fetch_blob verifies the whole.
        reader = _S3Reader(
            lambda start: self._get(key, "blob", missing, start), self, key, f"blob sha256:{digest}"
        )
        return io.BufferedReader(reader, CHUNK)  # type: ignore[return-value]

    def _get(self, key: str, kind: str, missing: Exception, start: int = 0) -> tuple[Any, int]:
        """GET object `key` from byte `start`: its streaming body and its size."""
        import botocore.exceptions as bce

        args: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if start:
            args["Range"] = f"bytes={start}-"
        with self._errors(f"read {kind}", key):
            try:
                response = self.client.get_object(**args)
            except bce.ClientError as exc:
                code, status = _error_code(exc)
                if code in ("NoSuchKey", "404") or (status == 404 and code != "NoSuchBucket"):
                    raise missing from None
                raise
        return response["Body"], start + int(response["ContentLength"])

    def _gave_up(self, what: str, key: str, failures: int, exc: BaseException, where: str = "") -> StoreError:
        return StoreError(
            f"cannot read {what} (s3://{self.bucket}/{key}): the connection broke {failures} times in a "
            f"row{where} ({type(exc).__name__}: {exc}). Check the network to {self._describe_endpoint()}, "
            f"then try again."
        )

    def _head(self, key: str) -> dict[str, Any] | None:
        import botocore.exceptions as bce

        with self._errors("look up", key):
            try:
                return self.client.head_object(Bucket=self.bucket, Key=key)
            except bce.ClientError as exc:
                code, status = _error_code(exc)
                if status == 404 or code in ("404", "NoSuchKey", "NotFound"):
                    return None
                raise

    def stat_blob(self, digest: str) -> BlobStat | None:
        head = self._head(self._key(blob_key(digest)))
        if head is None:
            return None
        return BlobStat(size=int(head["ContentLength"]), modified=head["LastModified"].timestamp())

    def touch_blob(self, digest: str) -> bool:
        import botocore.exceptions as bce

        key = self._key(blob_key(digest))
        source = {"Bucket": self.bucket, "Key": key}
        extra = {
            "MetadataDirective": "REPLACE",
            "Metadata": {"satchel-touched": f"{time.time():.6f}"},
            "ContentType": "application/octet-stream",
        }
        with self._errors("touch blob", key):
            for failures in itertools.count(1):
                try:
                    # A copy onto itself with new metadata: a new LastModified, no data through us.
                    self.client.copy(source, self.bucket, key, ExtraArgs=extra)
                    return True
                except bce.ClientError as exc:
                    code, status = _error_code(exc)
                    if code in ("NoSuchKey", "404", "NotFound") or (status == 404 and code != "NoSuchBucket"):
                        return False
                    # botocore reports a copy's answer that broke in transit as a 500, after its own
                    # retries; a touch is idempotent, so a few more rounds.
                    if not (isinstance(status, int) and status >= 500) or failures >= _READ_ATTEMPTS:
                        raise
                except _transport_errors():
                    if failures >= _READ_ATTEMPTS:
                        raise
                _pause(failures)
        raise AssertionError("unreachable")  # pragma: no cover

    def list_blobs(self) -> Iterator[tuple[str, BlobStat]]:
        full_prefix = self._key("blobs/sha256/")
        with self._errors("list", full_prefix):
            paginator = self.client.get_paginator("list_objects_v2")
            pages = paginator.paginate(
                Bucket=self.bucket, Prefix=full_prefix, PaginationConfig={"PageSize": self._page_size}
            )
            for page in pages:
                for obj in page.get("Contents", ()):
                    shard, _, digest = obj["Key"][len(full_prefix) :].partition("/")
                    if is_digest(digest) and shard == digest[:2]:
                        yield (
                            digest,
                            BlobStat(size=int(obj["Size"]), modified=obj["LastModified"].timestamp()),
                        )

    def delete_blob(self, digest: str, *, unless_touched_since: float | None = None) -> bool:
        # S3 has no atomic "delete if not modified since": the timestamp is read, then the object
        # deleted; a touch in the milliseconds between the two is lost (see satchel.flows.gc).
        key = self._key(blob_key(digest))
        head = self._head(key)
        if head is None:
            return False
        # LastModified has whole seconds: a touch within the second before `unless_touched_since`
        # may be stamped earlier than it happened, so a second's margin.
        if unless_touched_since is not None and head["LastModified"].timestamp() >= unless_touched_since - 1:
            return False
        with self._errors("delete blob", key):
            self.client.delete_object(Bucket=self.bucket, Key=key)
        return True

    # -- documents --------------------------------------------------------------------------------

    def read_document(self, key: str) -> bytes:
        full = self._key(check_document_key(key))
        # Documents may be rewritten, so a read that breaks starts over rather than resuming (which
        # could splice two versions); they are small.
        for failures in itertools.count(1):
            body, _ = self._get(full, "document", KeyError(key))
            try:
                with contextlib.closing(body):
                    return body.read()
            except _transport_errors() as exc:
                if failures >= _READ_ATTEMPTS:
                    raise self._gave_up(f"document {key!r}", full, failures, exc) from exc
                _pause(failures)
        raise AssertionError("unreachable")  # pragma: no cover

    def write_document(self, key: str, data: bytes, *, exclusive: bool = False) -> bool:
        import botocore.exceptions as bce

        full = self._key(check_document_key(key))
        content_type = "application/json" if key.endswith(".json") else "application/octet-stream"
        args = {"Bucket": self.bucket, "Key": full, "Body": bytes(data), "ContentType": content_type}
        if not exclusive:
            with self._errors("write document", full):
                self.client.put_object(**args)
            return True
        # A conditional write: S3 creates the object only if no object has the key, atomically,
        # so of any number of racing writers exactly one gets True. (S3-compatible services that
        # ignore If-None-Match would silently overwrite; AWS S3, MinIO and moto honour it.)
        with self._errors("create document", full):
            for attempt in range(_CONFLICT_ATTEMPTS):
                try:
                    self.client.put_object(**args, IfNoneMatch="*")
                    return True
                except bce.ClientError as exc:
                    code, status = _error_code(exc)
                    if code == "PreconditionFailed" or status == 412:
                        return False
                    if code == "NotImplemented" or status == 501:
                        raise StoreError(
                            f"cannot create s3://{self.bucket}/{full} exclusively: the endpoint "
                            f"{self._describe_endpoint()} does not support conditional writes "
                            f"(If-None-Match)"
                        ) from exc
                    if code != "ConditionalRequestConflict" and status != 409:
                        raise
                    if attempt == _CONFLICT_ATTEMPTS - 1:
                        raise
                    time.sleep(min(2.0, 0.05 * 2**attempt) * random.uniform(0.5, 1.0))
        raise AssertionError("unreachable")  # pragma: no cover

    def list_documents(self, prefix: str = "") -> list[str]:
        check_document_prefix(prefix)
        first, sep, _ = prefix.partition("/")
        if sep and first in RESERVED_TOP_LEVEL:
            return []
        root = self._key("")  # "" or "prefix/"
        if sep:
            full_keys = self._list(root + prefix)
        else:
            # A top-level prefix: list the top level by "directory", so the (big) blob area is
            # never enumerated, then each matching top-level directory in full.
            full_keys, directories = self._list_level(root + prefix)
            for directory in directories:
                if directory[len(root) :].rstrip("/") not in RESERVED_TOP_LEVEL:
                    full_keys.extend(self._list(directory))
        keys = []
        for full in full_keys:
            relative = full[len(root) :]
            try:
                keys.append(check_document_key(relative))
            except ValueError:  # a "directory" marker, or an object we could not read by name
                continue
        return sorted(keys)

    def _list(self, full_prefix: str) -> list[str]:
        keys, _ = self._paginate(full_prefix, delimiter=None)
        return keys

    def _list_level(self, full_prefix: str) -> tuple[list[str], list[str]]:
        return self._paginate(full_prefix, delimiter="/")

    def _paginate(self, full_prefix: str, delimiter: str | None) -> tuple[list[str], list[str]]:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": full_prefix}
        if delimiter:
            kwargs["Delimiter"] = delimiter
        keys: list[str] = []
        directories: list[str] = []
        with self._errors("list", full_prefix):
            paginator = self.client.get_paginator("list_objects_v2")
            pages = paginator.paginate(**kwargs, PaginationConfig={"PageSize": self._page_size})
            for page in pages:
                keys.extend(obj["Key"] for obj in page.get("Contents", ()))
                directories.extend(cp["Prefix"] for cp in page.get("CommonPrefixes", ()))
        return keys, directories

    def delete_document(self, key: str) -> None:
        full = self._key(check_document_key(key))
        with self._errors("delete document", full):
            self.client.delete_object(Bucket=self.bucket, Key=full)  # no error when absent
