"""The local blob cache under SATCHEL_HOME: verified copies of blobs, keyed by sha256."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from satchel.core import settings as config
from satchel.packager.stores.base import Store, sha256_file


class BlobCache:
    """Blobs fetched from stores (or downloaded from package indexes), each verified once on entry."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else config.blob_cache_dir()

    def path(self, digest: str) -> Path:
        return self.root / digest[:2] / digest

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def get(self, store: Store, digest: str, *, what: str = "") -> Path:
        """The cached path of a blob, fetching (and verifying) it from `store` when absent."""
        target = self.path(digest)
        if target.is_file():
            return target
        return store.fetch_blob(digest, target, what=what)

    def add_file(self, path: Path, digest: str | None = None) -> Path:
        """Copy a local file into the cache (verifying `digest` when given); return the cached path."""
        from satchel.core.errors import BlobCorrupted

        actual = sha256_file(path)
        if digest is not None and actual != digest:
            raise BlobCorrupted(f"{path} hashes to sha256:{actual}, expected sha256:{digest}")
        target = self.path(actual)
        if target.is_file():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{actual[:12]}-")
        os.close(fd)
        try:
            shutil.copyfile(path, tmp)
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return target
