"""The store interface: content-addressed blobs plus small named documents.

Layout every backend keeps under its root (see docs/bundle-format.md):

    blobs/sha256/<first two hex digits>/<sha256 hex>   immutable, content-addressed
    bundles/<name>/<version>.json                       bundle metadata documents
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, ClassVar

CHUNK = 1 << 20

_DIGEST = re.compile(r"[0-9a-f]{64}")

#: Top-level names under a store's root that are not documents: the blob area, and the file
#: store's scratch directory for atomic writes. Document keys may not start with them.
RESERVED_TOP_LEVEL = frozenset({"blobs", ".tmp"})


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def create_unique_file(directory: Path, prefix: str, suffix: str = "") -> tuple[int, Path]:
    """Create a new, empty file with a unique name in `directory`; return its open fd and path.

    Like `tempfile.mkstemp`, but the file gets the usual umask-derived permissions rather than
    0o600, so whatever it is renamed to is readable like any other file the user creates.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        path = Path(directory) / f"{prefix}{os.urandom(8).hex()}{suffix}"
        try:
            return os.open(path, flags, 0o666), path
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a unique file in {directory}")  # pragma: no cover


def check_digest(digest: str) -> str:
    """`digest` if it is a sha256 hex digest (64 lowercase hex digits); ValueError otherwise."""
    if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
        raise ValueError(f"not a sha256 hex digest (64 lowercase hex digits): {digest!r}")
    return digest


def is_digest(text: str) -> bool:
    """Whether `text` is a sha256 hex digest (64 lowercase hex digits)."""
    return _DIGEST.fullmatch(text) is not None


def blob_key(digest: str) -> str:
    """The key of a blob under a store's root. ValueError if `digest` is not a sha256 hex digest."""
    check_digest(digest)
    return f"blobs/sha256/{digest[:2]}/{digest}"


def check_document_key(key: str) -> str:
    """`key` if it is a valid document key; ValueError otherwise.

    A document key is a relative POSIX path (`bundles/name/1.0.json`): not absolute, no empty,
    `.` or `..` components, no backslashes or NUL, and not under a reserved top-level name
    (`blobs/`, `.tmp/`).
    """
    if not isinstance(key, str) or not key:
        raise ValueError(f"document key must be a non-empty string, got {key!r}")
    if key.startswith("/"):
        raise ValueError(f"document key must be a relative path, got absolute {key!r}")
    if "\\" in key or "\0" in key:
        raise ValueError(f"document key must be a POSIX path without backslashes or NUL: {key!r}")
    parts = key.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"document key must not contain empty, '.' or '..' components: {key!r}")
    if parts[0] in RESERVED_TOP_LEVEL:
        raise ValueError(f"document key must not be under the reserved {parts[0]!r}/ area: {key!r}")
    return key


def check_document_prefix(prefix: str) -> str:
    """`prefix` if it can prefix document keys (`""`, `bundles/`, `bundles/na`); ValueError otherwise."""
    if not isinstance(prefix, str):
        raise ValueError(f"document prefix must be a string, got {prefix!r}")
    if prefix.startswith("/") or "\\" in prefix or "\0" in prefix:
        raise ValueError(f"document prefix must be a relative POSIX path: {prefix!r}")
    # Every component but the last (which may be a partial name, like `.` of `.hidden`) must be
    # one a document key could have.
    if any(part in ("", ".", "..") for part in prefix.split("/")[:-1]):
        raise ValueError(f"document prefix must not contain '.', '..' or empty components: {prefix!r}")
    return prefix


@dataclass(frozen=True)
class BlobStat:
    """A stored blob's size in bytes and timestamp (POSIX seconds)."""

    size: int
    modified: float


class Store(ABC):
    """One place bundles live. Backends: `file` (a local directory) and `s3`."""

    scheme: ClassVar[str]

    @classmethod
    def from_url(cls, url: str) -> Store:
        """Open the store a URL of this backend's scheme names (used by `open_store`)."""
        raise NotImplementedError(f"{cls.__name__} cannot be opened from a URL")

    @property
    @abstractmethod
    def url(self) -> str:
        """Canonical URL of the store's root (`file:///...`, `s3://bucket/prefix`)."""

    # -- blobs ------------------------------------------------------------------------------------

    # Every method taking a digest raises ValueError when it is not 64 lowercase hex digits.

    @abstractmethod
    def has_blob(self, digest: str) -> bool: ...

    @abstractmethod
    def put_blob(self, path: Path, digest: str | None = None) -> str:
        """Store a file's content; return its sha256. A no-op when present; atomic otherwise.

        With `digest`, the file is checked against it before it becomes visible: on a mismatch
        BlobCorrupted is raised and the store is left unchanged. (When a blob with that digest is
        already present nothing is read at all.)
        """

    @abstractmethod
    def open_blob(self, digest: str) -> BinaryIO:
        """A readable stream of the blob (a context manager), unverified. Raises BlobNotFound."""

    # Timestamps, for garbage collection (satchel.flows.gc): a blob's timestamp is when it was stored
    # or last touched, on the store's clock.

    @abstractmethod
    def stat_blob(self, digest: str) -> BlobStat | None:
        """The blob's size and timestamp, or None when it is absent."""

    @abstractmethod
    def touch_blob(self, digest: str) -> bool:
        """Set the blob's timestamp to now; False (and nothing stored) when it is absent."""

    def list_blobs(self) -> Iterator[tuple[str, BlobStat]]:
        """Every stored blob's digest and stat, in no particular order (for garbage collection)."""
        raise NotImplementedError(f"the {self.scheme} store cannot list its blobs")

    def sweep_scratch(self, before: float) -> int:
        """Remove the backend's own temporary files not written since `before` (POSIX time), left by
        killed writers; return the bytes freed. Backends without temporary files have nothing to do."""
        return 0

    @abstractmethod
    def delete_blob(self, digest: str, *, unless_touched_since: float | None = None) -> bool:
        """Delete the blob; whether it was deleted. With `unless_touched_since` (a POSIX time) a blob
        whose timestamp is at or after it is kept, checked as atomically as the backend allows."""

    # -- documents --------------------------------------------------------------------------------

    # Document keys are relative POSIX paths (see `check_document_key`); invalid ones raise
    # ValueError. Documents and blobs share the root, but `blobs/` is never a document.

    @abstractmethod
    def read_document(self, key: str) -> bytes:
        """Raises KeyError when the document does not exist."""

    @abstractmethod
    def write_document(self, key: str, data: bytes, *, exclusive: bool = False) -> bool:
        """Write atomically; return True. With `exclusive`, create only: return False if the key
        exists. Concurrent exclusive writers of one key (threads or processes) get exactly one True."""

    @abstractmethod
    def list_documents(self, prefix: str = "") -> list[str]:
        """Keys (relative to the root) of the documents whose key starts with `prefix`, sorted.

        `prefix` is a plain string prefix, as in S3: `bundles/` lists every bundle document,
        `bundles/na` also matches `bundles/name/...`.
        """

    @abstractmethod
    def delete_document(self, key: str) -> None:
        """Remove a document. Deleting one that does not exist is not an error."""

    # -- shared behaviour -------------------------------------------------------------------------

    def put_blob_bytes(self, data: bytes) -> str:
        """Store bytes; return their sha256."""
        with tempfile.NamedTemporaryFile(prefix="satchel-blob-", delete=False) as fh:
            fh.write(data)
            tmp = Path(fh.name)
        try:
            return self.put_blob(tmp, hashlib.sha256(data).hexdigest())
        finally:
            tmp.unlink(missing_ok=True)

    def fetch_blob(self, digest: str, dest: Path, *, what: str = "") -> Path:
        """Copy a blob to `dest`, verifying its sha256 on the way. Atomic: `dest` is whole or absent.

        Raises BlobNotFound, or BlobCorrupted naming the blob (and `what` it is) on a mismatch.
        This is the one way a blob is read and verified: the blob cache and `satchel verify` use it.
        """
        check_digest(digest)
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        # A unique sibling, so concurrent fetches to one destination (threads or processes) never
        # write into each other's partial file.
        fd, tmp = create_unique_file(dest.parent, f".{dest.name}.", ".part")
        hasher = hashlib.sha256()
        try:
            with os.fdopen(fd, "wb") as out, self.open_blob(digest) as src:
                for chunk in iter(lambda: src.read(CHUNK), b""):
                    hasher.update(chunk)
                    out.write(chunk)
            return self._settle(tmp, dest, digest, hasher.hexdigest(), what)
        finally:
            tmp.unlink(missing_ok=True)

    def _settle(self, part: Path, dest: Path, digest: str, actual: str, what: str) -> Path:
        """Put a fetched `part` in place as `dest` if it hashed to `digest`; else BlobCorrupted."""
        if actual != digest:
            raise self._corrupted(digest, actual, what)
        part.replace(dest)
        return dest

    def _corrupted(self, digest: str, actual: str, what: str) -> Exception:
        """The BlobCorrupted error for blob `digest` (`what` it is) found to hash to `actual`."""
        from satchel.core.errors import BlobCorrupted

        label = f" ({what})" if what else ""
        return BlobCorrupted(
            f"blob sha256:{digest}{label} in {self.url} is corrupt: its content hashes to "
            f"sha256:{actual}. Re-export the bundle, or restore the blob from a good copy.",
            actual=actual,
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url}>"
