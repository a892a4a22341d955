"""Functions run in child processes by the store tests (importable, so `spawn` can find them)."""

from __future__ import annotations

from typing import Any


def exclusive_create(url: str, key: str, data: bytes, barrier: Any, results: Any) -> None:
    """Open the store, wait until every racer is ready, then try to create `key` exclusively."""
    from satchel.packager.stores import open_store

    store = open_store(url)
    store.list_documents("")  # warm up (imports, S3 client) before the start line
    barrier.wait(timeout=60)
    results.put((data, store.write_document(key, data, exclusive=True)))
