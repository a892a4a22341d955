"""The local blob cache under SATCHEL_HOME: verified copies of blobs, keyed by sha256.

    <root>/<hh>/<sha256>            a blob, read-only, verified when it entered the cache
    <root>/<hh>/<sha256>.verified   the identity (inode, size, mtime, ctime) of that file when verified

Why a hit is trusted by its identity rather than re-hashed: hashing runs at about 1 GB/s, so a large
artifact would cost seconds on every load. A file whose inode, size, mtime and ctime are unchanged
since the cache verified it has not been written to since (ctime cannot be set back by a user; to the
filesystem's timestamp granularity), so the check catches every ordinary change: a process writing to an artifact path, a partial copy,
another tool. A file that fails it is hashed again; if its content is wrong it is removed and fetched
again from the store, verified. What it does not stop is someone who can write SATCHEL_HOME at will
and forges the stamp too; such a person can equally rewrite the environments under it, so no check
in the cache could. The digest itself is validated before it becomes a path (`path`): a name the
cache did not write can never be looked up.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from satchel.core import settings as config
from satchel.packager.stores.base import Store, check_digest, create_unique_file, sha256_file

STAMP_SUFFIX = ".verified"


def _identity(st: os.stat_result) -> str:
    return f"{st.st_ino} {st.st_size} {st.st_mtime_ns} {st.st_ctime_ns}"


class BlobCache:
    """Blobs fetched from stores (or downloaded from package indexes), each verified on entry."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else config.blob_cache_dir()

    def path(self, digest: str) -> Path:
        """Where the blob `digest` lives in the cache. ValueError unless it is 64 lowercase hex digits."""
        check_digest(digest)
        return self.root / digest[:2] / digest

    def lookup(self, digest: str) -> Path | None:
        """The cached blob, if present and unchanged since verified (re-hashed when it may have changed)."""
        target = self.path(digest)
        try:
            st = target.stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        try:
            if target.with_name(target.name + STAMP_SUFFIX).read_text() == _identity(st):
                return target
        except (OSError, UnicodeDecodeError):
            pass
        # Not stamped (cached by an older Satchel, or a crash between the rename and the stamp) or
        # changed since: verify it now.
        if sha256_file(target) == digest:
            self._stamp(target)
            return target
        try:
            if target.stat().st_ino == st.st_ino:  # not already replaced by a good copy meanwhile
                target.unlink()
        except FileNotFoundError:
            pass
        return None

    def has(self, digest: str) -> bool:
        return self.lookup(digest) is not None

    def get(self, store: Store, digest: str, *, what: str = "") -> Path:
        """The cached path of a blob, fetching (and verifying) it from `store` when absent."""
        found = self.lookup(digest)
        if found is not None:
            return found
        target = self.path(digest)
        fetched = store.fetch_blob(digest, self._scratch_name(target), what=what)
        return self._enter(fetched, target)

    def add_file(self, path: Path, digest: str | None = None) -> Path:
        """Copy a local file into the cache (verifying `digest` when given); return the cached path."""
        from satchel.core.errors import BlobCorrupted

        actual = sha256_file(path)
        if digest is not None and actual != digest:
            raise BlobCorrupted(f"{path} hashes to sha256:{actual}, expected sha256:{digest}", actual=actual)
        found = self.lookup(actual)
        if found is not None:
            return found
        target = self.path(actual)
        tmp = self._scratch_name(target)
        try:
            shutil.copyfile(path, tmp)
            if sha256_file(tmp) != actual:  # the source changed while we copied it
                raise BlobCorrupted(f"{path} changed while it was copied into the blob cache")
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return self._enter(tmp, target)

    # -- internals --------------------------------------------------------------------------------

    @staticmethod
    def _scratch_name(target: Path) -> Path:
        target.parent.mkdir(parents=True, exist_ok=True)
        return target.with_name(f".{target.name[:12]}-{os.urandom(6).hex()}.part")

    def _enter(self, verified: Path, target: Path) -> Path:
        """Put a verified file in place, read-only, and stamp it."""
        try:
            mode = verified.stat().st_mode
            if mode & 0o222:
                # A hard link to a file store's blob is that blob: skip when it is already read-only
                # (it may not be ours to chmod).
                os.chmod(verified, stat.S_IMODE(mode) & ~0o222)
        except OSError:
            pass
        try:
            os.replace(verified, target)
        finally:
            # Also when `target` was already another link to the same file: rename(2) then does nothing.
            verified.unlink(missing_ok=True)
        self._stamp(target)
        return target

    @staticmethod
    def _stamp(target: Path) -> None:
        """Record the identity of `target`, verified by the caller. Best effort: unstamped means re-hashed."""
        tmp: Path | None = None
        try:
            identity = _identity(target.stat())
            fd, tmp = create_unique_file(target.parent, f".{target.name[:12]}-", ".stamp")
            with os.fdopen(fd, "w") as fh:
                fh.write(identity)
            os.replace(tmp, target.with_name(target.name + STAMP_SUFFIX))
            tmp = None
        except OSError:
            pass
        finally:
            if tmp is not None:
                tmp.unlink(missing_ok=True)
