"""The store interface: content-addressed blobs plus small named documents.

Layout every backend keeps under its root (see docs/bundle-format.md):

    blobs/sha256/<first two hex digits>/<sha256 hex>   immutable, content-addressed
    bundles/<name>/<version>.json                       bundle metadata documents
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from pathlib import Path
from typing import BinaryIO, ClassVar

CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def blob_key(digest: str) -> str:
    """The key of a blob under a store's root."""
    return f"blobs/sha256/{digest[:2]}/{digest}"


class Store(ABC):
    """One place bundles live. Backends: `file` (a local directory) and `s3`."""

    scheme: ClassVar[str]

    @property
    @abstractmethod
    def url(self) -> str:
        """Canonical URL of the store's root (`file:///...`, `s3://bucket/prefix`)."""

    # -- blobs ------------------------------------------------------------------------------------

    @abstractmethod
    def has_blob(self, digest: str) -> bool: ...

    @abstractmethod
    def put_blob(self, path: Path, digest: str | None = None) -> str:
        """Store a file's content; return its sha256. A no-op when present; atomic otherwise."""

    @abstractmethod
    def open_blob(self, digest: str) -> BinaryIO:
        """A readable stream of the blob, unverified. Raises BlobNotFound."""

    # -- documents --------------------------------------------------------------------------------

    @abstractmethod
    def read_document(self, key: str) -> bytes:
        """Raises KeyError when the document does not exist."""

    @abstractmethod
    def write_document(self, key: str, data: bytes, *, exclusive: bool = False) -> bool:
        """Write atomically. With `exclusive`, create only: return False if the key exists."""

    @abstractmethod
    def list_documents(self, prefix: str) -> list[str]:
        """Keys (relative to the root) of the documents under `prefix`, sorted."""

    @abstractmethod
    def delete_document(self, key: str) -> None: ...

    # -- shared behaviour -------------------------------------------------------------------------

    def put_blob_bytes(self, data: bytes) -> str:
        """Store bytes; return their sha256."""
        import tempfile

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
        """
        from satchel.errors import BlobCorrupted

        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.part-{id(self):x}")
        hasher = hashlib.sha256()
        try:
            with self.open_blob(digest) as src, open(tmp, "wb") as out:
                for chunk in iter(lambda: src.read(CHUNK), b""):
                    hasher.update(chunk)
                    out.write(chunk)
            actual = hasher.hexdigest()
            if actual != digest:
                label = f" ({what})" if what else ""
                raise BlobCorrupted(
                    f"blob sha256:{digest}{label} in {self.url} is corrupt: its content hashes to "
                    f"sha256:{actual}. Re-export the bundle, or restore the blob from a good copy."
                )
            tmp.replace(dest)
        finally:
            tmp.unlink(missing_ok=True)
        return dest

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url}>"
