"""Fixtures for the store tests: `backend`, one of each store kind, with a raw view of its contents.

(The S3 fixtures come from tests/fixtures/s3.py, registered by the root conftest's pytest_plugins.)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from satchel.packager.stores import open_store
from satchel.packager.stores.base import Store, blob_key


class Backend:
    """A store plus a look behind its back: the raw objects it holds, and a way to damage them."""

    kind: str
    store: Store

    def raw_keys(self) -> list[str]:
        """Every object/file under the store's root (temp files included), relative to it."""
        raise NotImplementedError

    def blob_keys(self) -> list[str]:
        return [k for k in self.raw_keys() if k.startswith("blobs/")]

    def overwrite_raw(self, key: str, data: bytes) -> None:
        raise NotImplementedError

    def corrupt_blob(self, digest: str, data: bytes) -> None:
        self.overwrite_raw(blob_key(digest), data)


class FileBackend(Backend):
    kind = "file"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.store = open_store(root.as_uri())

    def raw_keys(self) -> list[str]:
        if not self.root.exists():
            return []
        return sorted(p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file())

    def overwrite_raw(self, key: str, data: bytes) -> None:
        path = self.root / key
        os.chmod(path, 0o644)
        path.write_bytes(data)


class S3Backend(Backend):
    kind = "s3"

    def __init__(self, url: str, client: Any) -> None:
        self.store = open_store(url)
        self.bucket = self.store.bucket  # type: ignore[attr-defined]
        self.prefix = self.store.prefix + "/"  # type: ignore[attr-defined]
        self.client = client

    def raw_keys(self) -> list[str]:
        keys: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
            keys.extend(obj["Key"] for obj in page.get("Contents", ()))
        assert all(k.startswith(self.prefix) for k in keys), keys
        return sorted(k[len(self.prefix) :] for k in keys)

    def overwrite_raw(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self.prefix + key, Body=data)


@pytest.fixture(params=["file", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "file":
        return FileBackend(tmp_path / "store")
    return S3Backend(request.getfixturevalue("s3_store_url"), request.getfixturevalue("s3_admin_client"))


@pytest.fixture
def store(backend: Backend) -> Store:
    return backend.store
