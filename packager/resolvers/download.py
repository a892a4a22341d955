"""Fetching one locked package file (a wheel or a conda package) from where its index or channel serves
it: http(s):// or file:// (a local channel), verified by sha256 before it is put in place."""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from satchel.core.errors import BlobCorrupted, EnvironmentBuildError
from satchel.packager.resolvers.base import LockedPackage

CHUNK = 1 << 20


def download(package: LockedPackage, dest: Path, *, timeout: float = 60.0, attempts: int = 3) -> Path:
    """`package` at `dest` (a file path), its sha256 checked; retried on network errors, not on a 4xx."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    last_error: Exception | None = None
    for attempt in range(attempts):
        if attempt:
            time.sleep(0.5 * 2**attempt)  # backoff between retries of a failed download, not synchronisation
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{package.filename}.", suffix=".part")
        tmp = Path(tmp_name)
        try:
            digest = hashlib.sha256()
            size = 0
            request = urllib.request.Request(package.url, headers={"User-Agent": "satchel (urllib)"})
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(request, timeout=timeout) as response:
                while chunk := response.read(CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
            actual = digest.hexdigest()
            if actual != package.sha256:
                raise BlobCorrupted(
                    f"{package.name} {package.version}: {package.filename} downloaded from {package.url} "
                    f"hashes to sha256:{actual} ({size} bytes), but the lock expects sha256:{package.sha256}"
                )
            os.replace(tmp, dest)
            return dest
        except BlobCorrupted:
            raise
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            last_error = exc
            if isinstance(exc, urllib.error.HTTPError) and 400 <= exc.code < 500 and exc.code != 429:
                break
            if package.url.startswith("file:"):
                break  # a missing local file does not come back
        finally:
            if tmp.exists():
                tmp.unlink()
    raise EnvironmentBuildError(
        f"could not download {package.name} {package.version} ({package.filename}) from {package.url}: "
        f"{last_error}. Check your network connection (the file is needed once; it is cached afterwards)."
    )
