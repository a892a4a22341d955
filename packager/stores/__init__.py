"""Stores: where bundles live. `open_store(url)` picks the backend by URL scheme."""

from __future__ import annotations

from satchel.packager.stores.base import Store

__all__ = ["Store", "open_store"]


def open_store(url: str | None = None) -> Store:
    """Open the store at `url` (`file://...`, a plain path, `s3://bucket/prefix`); default: SATCHEL_STORE."""
    from satchel.packager.stores.registry import open_store as _open

    return _open(url)
