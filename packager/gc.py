"""Removing bundle versions (`satchel rm`), and collecting the blobs nothing references (`satchel gc`).

`remove(store, name, version)` writes a tombstone, `bundles/<name>/<version>.removed` (when, and the
removed document), then deletes the document. The tombstone keeps the version number from being given
again, and keeps the removed document's blobs for the grace period: a load that read the document just
before can still fetch them.

`gc(store)` deletes every blob that no document in the store names and that is older than the grace
period. A blob is named by a document when its digest appears in the document's key or content: bundle
documents (code, artifacts, environment wheels), named environment versions (`environments/`: every
package file of the lock, for as long as the version exists; packager/named_environments.py publishes
under an export journal), flow runs' records and journals, deployments, a fresh tombstone, an export in
progress. A resolved request's record (`locks/`, packager/locking.py) is a cache and keeps nothing. Flows and bundles share the blob area, so this is the one rule both
keep: nothing any document names is collected.

The protocol, safe under concurrent exports
-------------------------------------------
An export uploads its blobs before it writes its document, so a gc in between would see them
unreferenced. An export does, for each blob, in this order:

  E1. journal the digest in its intent document, `bundles/.exporting/<id>` (holder, start, digests);
  E2. refresh the blob's timestamp (`Store.touch_blob`), or upload it if absent;

and deletes its intent document once its bundle document is written. gc does:

  G1. t0 = now; threshold = t0 - grace;
  G2. list every document and read each, collecting the digests they name;
  G3. list the blobs; delete each one not named, unless its timestamp is at or after the threshold
      (checked again as the blob is deleted: `Store.delete_blob(unless_touched_since=)`).

If E1 happened before G2's listing, gc sees the digest and keeps the blob. Otherwise E2 happened after
G2 began, so after t0: the blob's timestamp is at or after the threshold, and G3 keeps it (or E2 finds
it deleted and uploads it again). This is the argument of flows/gc.py, with the same caveat on S3 (the
timestamp check and the delete are two requests). `grace` (default 1 hour) also covers the clocks of
the machines and the store differing, and loads that read a document just before it was removed.

Temporary files a killed writer left in a file store's `.tmp/` go too, once untouched for the grace
period (and at least 10 minutes).

An intent document whose export has died (its process is gone, per satchel.core.identity) or that is older
than a week is not honoured, and gc deletes it. A tombstone older than the grace period no longer
keeps its blobs; gc shrinks it to its date.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from satchel.core import identity as _holders
from satchel.core.errors import BundleNotFound, StoreError
from satchel.packager.bundle import REMOVED_SUFFIX, document_key, list_names, list_versions
from satchel.packager.locking import LOCKS_PREFIX
from satchel.packager.refs import check_name
from satchel.packager.stores import Store

DEFAULT_GRACE = 3600.0
#: An intent document older than this is a dead export's, wherever it ran.
INTENT_MAX_AGE = 7 * 86400.0
INTENT_PREFIX = "bundles/.exporting/"
#: Seconds a store's temporary file must be untouched before gc takes it for a killed writer's.
SCRATCH_MIN_AGE = 600.0

_DIGEST = re.compile(rb"(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])")


def _digests(data: bytes | str) -> set[str]:
    raw = data.encode() if isinstance(data, str) else data
    return {m.decode() for m in _DIGEST.findall(raw)}


def _seconds(value: float | int | timedelta, what: str) -> float:
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if not seconds >= 0:
        raise ValueError(f"{what} must be a number of seconds >= 0 or a timedelta, not {value!r}")
    return seconds


# -- the export side --------------------------------------------------------------------------------


class ExportJournal:
    """An export's intent document: the digests it is about to rely on, written before it relies on them."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.key = f"{INTENT_PREFIX}{time.time_ns()}-{os.getpid()}-{os.urandom(4).hex()}"
        self._record: dict[str, Any] = {
            "holder": _holders.this_process(),
            "started": time.time(),
            "digests": [],
        }
        self._digests: set[str] = set()
        self._written = False

    def keep(self, digests: list[str] | set[str] | tuple[str, ...]) -> list[str]:
        """Journal `digests` (E1); return those not journalled before."""
        new = [d for d in dict.fromkeys(digests) if d not in self._digests]
        if new:
            self._digests.update(new)
            self._record["digests"].extend(new)
            self.store.write_document(self.key, json.dumps(self._record).encode())
            self._written = True
        return new

    def close(self) -> None:
        """Delete the intent document. Best effort: one left behind is removed by a gc once this
        process has ended, and a failure here must not hide the export's own outcome."""
        if self._written:
            with contextlib.suppress(StoreError):
                self.store.delete_document(self.key)
            self._written = False


def keep_blob(store: Store, journal: ExportJournal, path: Path, digest: str) -> str:
    """Store the file at `path` as blob `digest` the gc-safe way: journal it, then touch it or upload it."""
    journal.keep([digest])
    if store.touch_blob(digest):
        return digest
    return store.put_blob(path, digest)


# -- rm ---------------------------------------------------------------------------------------------


def tombstone_key(name: str, version: int) -> str:
    return f"bundles/{name}/{version}{REMOVED_SUFFIX}"


def remove(store: Store, name: str, version: int | None = None, *, force: bool = False) -> list[int]:
    """Remove version `version` of bundle `name` (every version when None); return the versions removed.

    Refuses (ValueError) a version a deployment in this store names, unless `force`. Its blobs stay
    until a `gc` finds nothing else naming them, and not before the grace period has passed.
    """
    check_name(name)
    versions = list_versions(store, name)
    if version is not None:
        if version not in versions:
            have = f"versions there: {', '.join(map(str, versions))}" if versions else "no such name there"
            raise BundleNotFound(f"bundle {name}:{version} not found in {store.url} ({have})")
        versions = [version]
    elif not versions:
        names = list_names(store)
        hint = f" Bundles there: {', '.join(names[:10])}." if names else " The store holds no bundles."
        raise BundleNotFound(f"no bundle named {name!r} in {store.url}.{hint}")
    documents = {}
    for v in versions:
        try:
            documents[v] = store.read_document(document_key(name, v))
        except KeyError:  # removed meanwhile
            continue
    if not force:
        _refuse_deployed(store, name, documents)
    removed = []
    for v, data in documents.items():
        tombstone = {"name": name, "version": v, "removed": time.time(), "document": data.decode()}
        store.write_document(tombstone_key(name, v), json.dumps(tombstone).encode())
        store.delete_document(document_key(name, v))  # after the tombstone: gc always sees one of them
        removed.append(v)
    return removed


def _refuse_deployed(store: Store, name: str, documents: dict[int, bytes]) -> None:
    """ValueError if a deployment document of `store` names one of `documents` (by its pinned digest)."""
    import hashlib

    pinned = {hashlib.sha256(data).hexdigest(): v for v, data in documents.items()}
    for key in store.list_documents("deployments/"):
        try:
            named = _digests(store.read_document(key)) & pinned.keys()
        except KeyError:
            continue
        if named:
            version = pinned[min(named)]
            raise ValueError(
                f"bundle {name}:{version} is deployed ({key} in {store.url} names it); roll the "
                f"deployment forward first, or remove it anyway with force (satchel rm --force)"
            )


# -- gc ---------------------------------------------------------------------------------------------


@dataclass
class GcSummary:
    """What a gc deleted (or, with `dry_run`, would delete)."""

    blobs_deleted: list[str] = field(default_factory=list)
    bytes_freed: int = 0
    blobs_kept_recent: int = 0  # unreferenced, but younger than the grace period: left for a later gc
    blobs_referenced: int = 0
    stale_intents: list[str] = field(default_factory=list)  # intent documents of dead exports
    dry_run: bool = False


@dataclass
class _Inventory:
    named: set[str] = field(default_factory=set)
    stale_intents: list[str] = field(default_factory=list)
    expired_tombstones: dict[str, dict] = field(default_factory=dict)  # key -> tombstone


def _inventory(store: Store, t0: float, threshold: float) -> _Inventory:
    found = _Inventory()
    for key in store.list_documents(""):
        if key.endswith(".log"):  # captured output: never a reference
            continue
        if key.startswith(LOCKS_PREFIX):
            # A resolved request's record is a cache of the solve, not a use of its packages: what uses
            # them (a bundle, a named environment) names them itself, and an export that reuses the
            # record mirrors them again under its journal (re-fetched if a gc took them).
            continue
        found.named |= _digests(key)  # flow runs journal a digest as an empty document's name
        try:
            data = store.read_document(key)
        except KeyError:
            if not (key.startswith("bundles/") and key.endswith(".json")):
                continue
            # Removed since listed: its tombstone was written first, and says what it named.
            key = key.removesuffix(".json") + REMOVED_SUFFIX
            try:
                data = store.read_document(key)
            except KeyError:
                continue
        if key.startswith(INTENT_PREFIX):
            if _intent_is_stale(data, t0):
                found.stale_intents.append(key)
                continue
        elif key.startswith("bundles/") and key.endswith(REMOVED_SUFFIX):
            tombstone = _json(data)
            if isinstance(tombstone, dict) and isinstance(tombstone.get("removed"), (int, float)):
                if tombstone["removed"] < threshold:
                    if "document" in tombstone:
                        found.expired_tombstones[key] = tombstone
                    continue
        found.named |= _digests(data)
    return found


def _json(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return None


def _intent_is_stale(data: bytes, t0: float) -> bool:
    record = _json(data)
    if not isinstance(record, dict):
        return False  # not ours to judge: honoured
    holder, started = record.get("holder"), record.get("started")
    if isinstance(started, (int, float)) and started < t0 - INTENT_MAX_AGE:
        return True
    return isinstance(holder, dict) and _holders.is_running(holder) is False


def gc(
    store: Store,
    *,
    grace: float | int | timedelta = DEFAULT_GRACE,
    dry_run: bool = False,
    now: float | None = None,
    on_phase: Any = None,
) -> GcSummary:
    """Delete the blobs no document of `store` names and that are older than `grace` (seconds or a
    timedelta); with `dry_run`, only say what would go. `now` (POSIX time) and `on_phase` (called with
    "listed" once the documents are read) are for tests."""
    grace_s = _seconds(grace, "grace")
    t0 = time.time() if now is None else float(now)
    threshold = t0 - grace_s
    inventory = _inventory(store, t0, threshold)
    if on_phase is not None:
        on_phase("listed")
    summary = GcSummary(stale_intents=list(inventory.stale_intents), dry_run=dry_run)
    for digest, stat in store.list_blobs():
        if digest in inventory.named:
            summary.blobs_referenced += 1
        elif stat.modified >= threshold:
            summary.blobs_kept_recent += 1
        elif dry_run or store.delete_blob(digest, unless_touched_since=threshold):
            summary.blobs_deleted.append(digest)
            summary.bytes_freed += stat.size
        else:
            summary.blobs_kept_recent += 1
    if not dry_run:
        # Temporary files of killed writers (a file store's `.tmp/`): a live writer keeps writing its
        # file, so one untouched for the grace period (and never less than SCRATCH_MIN_AGE) is dead.
        summary.bytes_freed += store.sweep_scratch(t0 - max(grace_s, SCRATCH_MIN_AGE))
        for key in inventory.stale_intents:
            store.delete_document(key)
        for key, tombstone in inventory.expired_tombstones.items():
            # Its blobs are fair game now; what is left only keeps the version number from reuse.
            shrunk = {k: v for k, v in tombstone.items() if k != "document"}
            store.write_document(key, json.dumps(shrunk).encode())
    summary.blobs_deleted.sort()
    return summary
