"""The `file` store: a directory on a local (or shared) filesystem.

    <root>/blobs/sha256/ab/abcd...   blobs, read-only (0o444)
    <root>/bundles/...               documents
    <root>/.tmp/                     scratch: every write lands here first, then is renamed into
                                     place (same filesystem, so the rename is atomic)

Nothing is created until the first write; reading a store that does not exist yet finds nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

from satchel.core.errors import BlobCorrupted, BlobNotFound, StoreError
from satchel.packager.stores.base import (
    CHUNK,
    RESERVED_TOP_LEVEL,
    BlobStat,
    Store,
    blob_key,
    check_digest,
    check_document_key,
    check_document_prefix,
    create_unique_file,
    is_digest,
    sha256_file,
)

TMP_DIR = ".tmp"


def _fsync_dir(path: Path) -> None:
    """Make a rename in `path` durable. Best effort: not every platform can open a directory."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def path_from_file_url(url: str) -> Path:
    """The local path a `file:` URL names (`file:///abs/path`, `file://localhost/abs/path`, `file:/abs`)."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "file":
        raise ValueError(f"not a file: URL: {url!r}")
    if parts.netloc not in ("", "localhost"):
        raise StoreError(
            f"file store URL {url!r} names host {parts.netloc!r}; file URLs must be local and "
            f"absolute: file:///absolute/path (three slashes), or give a plain path instead."
        )
    path = unquote(parts.path)
    if not path.startswith("/"):
        raise StoreError(f"file store URL {url!r} must name an absolute path: file:///absolute/path")
    return Path(path)


class FileStore(Store):
    """A store in a local directory. Safe for concurrent use by threads and processes."""

    scheme = "file"

    def __init__(self, root: str | os.PathLike[str]) -> None:
        # abspath, not resolve(): the URL should name the directory the way the user did, without
        # touching the filesystem (which may not have the directory yet).
        self.root = Path(os.path.abspath(os.path.expanduser(os.fspath(root))))

    @classmethod
    def from_url(cls, url: str) -> FileStore:
        """A `file:` URL or a plain path (relative to the working directory, `~` expanded)."""
        if urlsplit(url).scheme.lower() == "file":
            return cls(path_from_file_url(url))
        return cls(url)

    @property
    def url(self) -> str:
        return self.root.as_uri()

    # -- paths ------------------------------------------------------------------------------------

    def _blob_path(self, digest: str) -> Path:
        return self.root / blob_key(digest)

    def _document_path(self, key: str) -> Path:
        return self.root / check_document_key(key)

    @contextlib.contextmanager
    def _writing(self, what: str) -> Iterator[None]:
        """Turn the store's own I/O failures (permissions, full disk, ...) into StoreError."""
        try:
            yield
        except OSError as exc:
            raise StoreError(f"cannot write {what} to the file store {self.url}: {exc}") from exc

    def _scratch(self, prefix: str) -> tuple[int, Path]:
        """A new empty temp file in `<root>/.tmp/`, on the same filesystem as its destination."""
        tmp_dir = self.root / TMP_DIR
        tmp_dir.mkdir(parents=True, exist_ok=True)
        return create_unique_file(tmp_dir, prefix)

    # -- blobs ------------------------------------------------------------------------------------

    def has_blob(self, digest: str) -> bool:
        return self._blob_path(digest).is_file()

    def put_blob(self, path: Path, digest: str | None = None) -> str:
        if digest is not None:
            check_digest(digest)
            if self.has_blob(digest):
                return digest
        # Opening the source first: a missing source is the caller's error (FileNotFoundError)
        # and must not leave anything behind in the store.
        with open(path, "rb") as src:
            tmp: Path | None = None
            try:
                with self._writing(f"blob from {path}"):
                    fd, tmp = self._scratch("blob-")
                hasher = hashlib.sha256()
                with os.fdopen(fd, "wb") as out:
                    # Reading errors are the source's (plain OSError); writing errors the store's.
                    for chunk in iter(lambda: src.read(CHUNK), b""):
                        hasher.update(chunk)
                        with self._writing(f"blob from {path}"):
                            out.write(chunk)
                    actual = hasher.hexdigest()
                    if digest is not None and actual != digest:
                        raise BlobCorrupted(
                            f"{path} hashes to sha256:{actual}, not the sha256:{digest} it was "
                            f"to be stored as; nothing was written to {self.url}"
                        )
                    with self._writing(f"blob sha256:{actual}"):
                        out.flush()
                        os.fsync(out.fileno())
                final = self._blob_path(actual)
                if final.is_file():  # stored meanwhile (or `digest` was not given)
                    return actual
                with self._writing(f"blob sha256:{actual}"):
                    os.chmod(tmp, 0o444)
                    final.parent.mkdir(parents=True, exist_ok=True)
                    # Identical content under an identical name: whoever renames last wins, harmlessly.
                    os.replace(tmp, final)
                    tmp = None
                    _fsync_dir(final.parent)
                return actual
            finally:
                if tmp is not None:
                    tmp.unlink(missing_ok=True)

    def open_blob(self, digest: str) -> BinaryIO:
        path = self._blob_path(digest)
        try:
            return open(path, "rb")
        except (FileNotFoundError, NotADirectoryError):
            raise BlobNotFound(f"blob sha256:{digest} not found in {self.url}") from None
        except OSError as exc:
            raise StoreError(f"cannot read blob sha256:{digest} from {self.url}: {exc}") from exc

    def fetch_blob(self, digest: str, dest: Path, *, what: str = "") -> Path:
        """`Store.fetch_blob`, but `dest` is a hard link to the store's file when the filesystem
        allows it: the blob is read once, to verify it, and never copied. (Blobs are immutable and
        read-only, and a link outlives the store's name being deleted.) Elsewhere, a verified copy."""
        dest = Path(dest)
        source = self._blob_path(digest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        link = dest.with_name(f".{dest.name}.{os.urandom(8).hex()}.link")
        try:
            os.link(source, link)
        except (FileNotFoundError, NotADirectoryError):
            if not source.is_file():
                raise BlobNotFound(f"blob sha256:{digest} not found in {self.url}") from None
            return super().fetch_blob(digest, dest, what=what)
        except OSError:  # another filesystem, or another user's file (protected hard links)
            return super().fetch_blob(digest, dest, what=what)
        try:
            try:
                actual = sha256_file(link)
            except OSError as exc:
                raise StoreError(f"cannot read blob sha256:{digest} from {self.url}: {exc}") from exc
            return self._settle(link, dest, digest, actual, what)
        finally:
            link.unlink(missing_ok=True)

    def stat_blob(self, digest: str) -> BlobStat | None:
        try:
            st = self._blob_path(digest).stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return BlobStat(size=st.st_size, modified=st.st_mtime)

    def touch_blob(self, digest: str) -> bool:
        path = self._blob_path(digest)
        try:
            os.utime(path)
            return True
        except (FileNotFoundError, NotADirectoryError):
            return False
        except PermissionError:
            pass
        # Another user's blob (read-only, so only its owner may set its time): replace it with our own
        # copy of the same content, which is new, so dated now.
        try:
            src = open(path, "rb")  # noqa: SIM115 - closed below
        except (FileNotFoundError, NotADirectoryError):
            return False
        tmp: Path | None = None
        try:
            with src, self._writing(f"blob sha256:{digest}"):
                fd, tmp = self._scratch("blob-")
                with os.fdopen(fd, "wb") as out:
                    for chunk in iter(lambda: src.read(CHUNK), b""):
                        out.write(chunk)
                    out.flush()
                    os.fsync(out.fileno())
                os.chmod(tmp, 0o444)
                os.replace(tmp, path)
                tmp = None
            return True
        finally:
            if tmp is not None:
                tmp.unlink(missing_ok=True)

    def list_blobs(self) -> Iterator[tuple[str, BlobStat]]:
        area = self.root / "blobs" / "sha256"
        for shard in sorted(area.iterdir()) if area.is_dir() else ():
            for entry in sorted(shard.iterdir()) if shard.is_dir() else ():
                if is_digest(entry.name) and entry.name[:2] == shard.name:
                    stat = self.stat_blob(entry.name)
                    if stat is not None:  # deleted since listed
                        yield entry.name, stat

    def sweep_scratch(self, before: float) -> int:
        freed = 0
        tmp_dir = self.root / TMP_DIR
        for entry in tmp_dir.iterdir() if tmp_dir.is_dir() else ():
            try:
                st = entry.lstat()
                if st.st_mtime < before and entry.is_file():
                    entry.unlink()
                    freed += st.st_size
            except FileNotFoundError:  # finished meanwhile
                continue
        return freed

    def delete_blob(self, digest: str, *, unless_touched_since: float | None = None) -> bool:
        # Atomic against touch_blob: the blob is first renamed out of place, then its timestamp is
        # read. A touch before the rename shows in that timestamp (the blob is put back); a touch
        # after it finds no blob (and the toucher stores the blob again).
        path = self._blob_path(digest)
        with self._writing(f"blob sha256:{digest} (deleting)"):
            fd, aside = self._scratch("deleting-")
            os.close(fd)
            try:
                try:
                    os.replace(path, aside)
                except (FileNotFoundError, NotADirectoryError):
                    return False
                if unless_touched_since is not None and aside.stat().st_mtime >= unless_touched_since:
                    try:
                        os.link(aside, path)
                    except FileExistsError:  # stored again meanwhile: the same content
                        pass
                    return False
                _fsync_dir(path.parent)
                return True
            finally:
                aside.unlink(missing_ok=True)

    # -- documents --------------------------------------------------------------------------------

    def read_document(self, key: str) -> bytes:
        path = self._document_path(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise KeyError(key) from None
        except OSError as exc:
            raise StoreError(f"cannot read document {key!r} from {self.url}: {exc}") from exc

    def write_document(self, key: str, data: bytes, *, exclusive: bool = False) -> bool:
        final = self._document_path(key)
        data = bytes(data)
        tmp: Path | None = None
        try:
            with self._writing(f"document {key!r}"):
                fd, tmp = self._scratch("doc-")
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
                    out.flush()
                    os.fsync(out.fileno())
                final.parent.mkdir(parents=True, exist_ok=True)
                if exclusive:
                    # link(2) fails if `final` exists, atomically: of any number of racing
                    # writers (threads, processes, even hosts on most network filesystems)
                    # exactly one succeeds, and readers never see a partial document.
                    try:
                        os.link(tmp, final)
                    except FileExistsError:
                        return False
                else:
                    os.replace(tmp, final)
                    tmp = None
                _fsync_dir(final.parent)
                return True
        finally:
            if tmp is not None:
                tmp.unlink(missing_ok=True)

    def list_documents(self, prefix: str = "") -> list[str]:
        check_document_prefix(prefix)
        # Walk only the deepest directory the prefix pins down, then filter by the full prefix.
        base = prefix.rpartition("/")[0]
        if base and base.split("/")[0] in RESERVED_TOP_LEVEL:
            return []
        start = self.root / base if base else self.root
        keys: list[str] = []
        for dirpath, dirnames, filenames in os.walk(start):
            rel_dir = Path(dirpath).relative_to(self.root).as_posix()
            if rel_dir == ".":
                rel_dir = ""
                dirnames[:] = [d for d in dirnames if d not in RESERVED_TOP_LEVEL]
            for name in filenames:
                key = f"{rel_dir}/{name}" if rel_dir else name
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)

    def delete_document(self, key: str) -> None:
        path = self._document_path(key)
        if path.is_dir():  # not a document: nothing to delete
            return
        try:
            path.unlink()
        except (FileNotFoundError, NotADirectoryError):
            pass
        except OSError as exc:
            raise StoreError(f"cannot delete document {key!r} from {self.url}: {exc}") from exc
        # Empty directories are left alone: removing them could race with a concurrent writer
        # that has just created one. They are invisible to list_documents.
