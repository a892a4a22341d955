"""Where Satchel keeps things: the default store and the local cache (`SATCHEL_HOME`)."""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """Local cache root: fetched blobs, materialized environments, worker kits."""
    value = os.environ.get("SATCHEL_HOME")
    path = Path(value).expanduser() if value else Path.home() / ".satchel"
    return path


def default_store_url() -> str:
    """The store used when a reference names none: `SATCHEL_STORE`, else a directory under the home."""
    value = os.environ.get("SATCHEL_STORE")
    if value:
        return value
    return (Path.home() / ".satchel" / "store").as_uri()


def blob_cache_dir() -> Path:
    return home() / "blobs"


def environments_dir() -> Path:
    return home() / "envs"


def kits_dir() -> Path:
    return home() / "kits"
