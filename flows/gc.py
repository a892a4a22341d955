"""Garbage collection of flow runs: delete old finished runs, then the artifact blobs no run uses any more.

`gc(keep=5)` keeps each flow's five newest finished runs; `gc(older_than="7d")` deletes finished runs that
finished over a week ago (both: only runs matching both). Running runs are never deleted (a crashed one
is finished: see flows/status.py), nor the latest successful run of a flow. The store's blob area is shared with bundles, so gc only ever deletes a blob
that a deleted run referenced and that no remaining run and no other document (bundle metadata, ...)
names.

The protocol, safe under concurrent runs
-----------------------------------------
A run that uses an artifact blob (stores a value, or reuses an earlier run's) does, in this order:

  W1. journal the digest under the run: the empty document `flows/<F>/runs/<R>/_artifacts/<digest>`;
  W2. refresh the blob's timestamp (`Store.touch_blob`), or upload the blob if it is absent.

gc does, in this order:

  G1. t0 = now; threshold = t0 - grace;
  G2. list every document, and read each run's record, journal and task records;
  G3. delete the chosen runs' documents (run.json last);
  G4. for each digest those runs referenced that no remaining run (journal or record) and no other
      document names: delete the blob unless its timestamp is at or after the threshold.

The race: a run dedups on blob X (X exists, so it is not uploaded) while gc decides X is unreferenced.
If W1 happened before G2's listing, gc sees the journal entry and keeps X. Otherwise W2 happened after
G2, so after t0: the blob's timestamp is at or after the threshold when G4 looks at it, and G4 keeps it;
or W2 finds X already deleted and uploads it again. G4's "delete unless touched" is atomic on the file
store (the blob is renamed aside first, then its timestamp read, then it is put back or removed); on S3
it is a HEAD then a DELETE, and a touch in the milliseconds between the two is not seen. `grace`
(default 5 minutes) covers clock differences between the machines writing and the store, and the
timestamp granularity (S3 LastModified has whole seconds).

Candidates kept because they are younger than the grace period, and everything chosen when a gc is
interrupted, are remembered in `flows/.gc/pending/*.json` and reconsidered by the next gc.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from satchel.flows.datastore import LOG_SUFFIX, parse_key, run_key
from satchel.flows.status import FINISHED, run_status
from satchel.packager.stores import Store, open_store

DEFAULT_GRACE = 300.0
PENDING_PREFIX = "flows/.gc/pending/"

_AGE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhd])\s*")
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DIGEST = re.compile(rb"(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])")


def parse_age(value: str | float | int | timedelta, what: str = "older_than") -> float:
    """Seconds from `7d`, `12h`, `30m`, `45s`, a number of seconds, or a timedelta."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (match := _AGE.fullmatch(value)):
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    else:
        raise ValueError(
            f"{what} must be an age like 7d, 12h, 30m or 45s (units s/m/h/d), seconds or a timedelta; "
            f"got {value!r}"
        )
    if seconds < 0:
        raise ValueError(f"{what} must not be negative, got {value!r}")
    return seconds


def format_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")  # pragma: no cover


@dataclass
class GcSummary:
    """What a gc deleted (or, with `dry_run`, would delete)."""

    runs_deleted: list[str] = field(default_factory=list)  # pathspecs, Flow/run_id
    blobs_deleted: list[str] = field(default_factory=list)  # digests
    bytes_freed: int = 0
    blobs_kept_recent: int = 0  # unreferenced, but touched within the grace period: left for a later gc
    dry_run: bool = False

    def line(self) -> str:
        verb = "would delete" if self.dry_run else "deleted"
        text = (
            f"{verb} {len(self.runs_deleted)} run{'s' * (len(self.runs_deleted) != 1)} and "
            f"{len(self.blobs_deleted)} artifact blob{'s' * (len(self.blobs_deleted) != 1)}, "
            f"{format_bytes(self.bytes_freed)} {'to free' if self.dry_run else 'freed'}"
        )
        if self.blobs_kept_recent:
            text += f"; {self.blobs_kept_recent} unreferenced blob(s) younger than the grace period left for a later gc"
        return text

    def __str__(self) -> str:
        return self.line()


@dataclass
class _Run:
    flow: str
    run_id: str
    keys: list[str] = field(default_factory=list)
    record: dict | None = None
    digests: set[str] = field(default_factory=set)

    @property
    def pathspec(self) -> str:
        return f"{self.flow}/{self.run_id}"

    @property
    def status(self) -> str:
        return run_status(self.record)

    @property
    def finished_at(self) -> float:
        record = self.record or {}
        return float(record.get("finished") or record.get("started") or 0.0)


def _read_json(store: Store, key: str) -> dict | None:
    try:
        value = json.loads(store.read_document(key))
    except (KeyError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _record_digests(record: dict) -> set[str]:
    found = {d for d in (record.get("artifacts") or {}).values() if isinstance(d, str)}
    foreach = record.get("foreach") or {}
    if isinstance(foreach, dict) and isinstance(foreach.get("digest"), str):
        found.add(foreach["digest"])
    return found


class _Inventory:
    """Every run (with the digests it references), the digests other documents name, and pending ones."""

    def __init__(self, store: Store) -> None:
        self.runs: dict[tuple[str, str], _Run] = {}
        self.named_elsewhere: set[str] = set()
        self.pending: dict[str, set[str]] = {}  # pending document key -> digests
        for key in store.list_documents(""):
            document = parse_key(key)
            if key.startswith(PENDING_PREFIX):
                doc = _read_json(store, key) or {}
                self.pending[key] = {d for d in doc.get("digests", []) if isinstance(d, str)}
            elif document is not None:
                run = self.runs.setdefault(
                    (document.flow, document.run_id), _Run(document.flow, document.run_id)
                )
                run.keys.append(key)
                if document.kind == "run":
                    run.record = _read_json(store, key)
                elif document.kind == "journal":
                    run.digests.add(document.name)
                elif document.kind in ("task", "attempt"):
                    run.digests |= _record_digests(_read_json(store, key) or {})
            elif not key.endswith(LOG_SUFFIX):
                try:
                    data = store.read_document(key)
                except KeyError:  # deleted since listed
                    continue
                self.named_elsewhere |= {m.decode() for m in _DIGEST.findall(data)}


def _choose(runs: list[_Run], keep: int | None, older_than: float | None, now: float) -> list[_Run]:
    """The runs of one flow to delete."""
    ordered = sorted(runs, key=lambda r: (len(r.run_id), r.run_id))
    finished = [r for r in ordered if r.record is not None and r.status in FINISHED]
    successful = [r for r in finished if r.status == "successful"]
    # The latest successful run, and the latest that is not a spin (what latest_successful_run shows).
    protected = {r[-1].run_id for r in (successful, [s for s in successful if not s.record.get("spin")]) if r}
    kept_newest = {r.run_id for r in finished[len(finished) - keep :]} if keep else set()
    chosen = []
    for run in finished:
        if run.run_id in protected or run.run_id in kept_newest:
            continue
        if older_than is not None and run.finished_at > now - older_than:
            continue
        chosen.append(run)
    return chosen


def _delete_run(store: Store, run: _Run) -> None:
    run_json = run_key(run.flow, run.run_id)
    for key in run.keys:
        if key != run_json:
            store.delete_document(key)
    store.delete_document(run_json)  # last: a run interrupted halfway is still listed, and deleted next time


def gc(
    store: Store | str | None = None,
    keep: int | None = None,
    older_than: str | float | timedelta | None = None,
    flow: str | None = None,
    dry_run: bool = False,
    *,
    grace: str | float | timedelta = DEFAULT_GRACE,
    now: float | None = None,
    on_phase: Callable[[str], None] | None = None,
) -> GcSummary:
    """Delete old finished runs and then the artifact blobs no remaining run or bundle references.

    `keep`: keep each flow's N newest finished runs. `older_than`: delete only runs finished longer ago
    than this (`7d`, `12h`, `30m`, `45s`, seconds or a timedelta). `flow`: only this flow's runs.
    `grace`: unreferenced blobs touched more recently than this are left for a later gc. `now` (POSIX
    time) and `on_phase` (called with "listed", then "runs-deleted") are for tests.
    """
    if keep is None and older_than is None:
        raise ValueError("gc needs keep= (runs to keep per flow) or older_than= (an age like 7d), or both")
    if keep is not None and (isinstance(keep, bool) or not isinstance(keep, int) or keep < 0):
        raise ValueError(f"keep must be a whole number of runs, 0 or more; got {keep!r}")
    age = parse_age(older_than) if older_than is not None else None
    grace_s = parse_age(grace, "grace")
    store = store if isinstance(store, Store) else open_store(store)
    t0 = time.time() if now is None else float(now)
    threshold = t0 - grace_s
    phase = on_phase or (lambda _name: None)

    inventory = _Inventory(store)
    phase("listed")
    by_flow: dict[str, list[_Run]] = {}
    for run in inventory.runs.values():
        by_flow.setdefault(run.flow, []).append(run)
    if flow is not None and flow not in by_flow:
        raise ValueError(f"flow {flow!r} has no runs in {store.url}")
    doomed = [
        r for name in sorted(by_flow) if flow in (None, name) for r in _choose(by_flow[name], keep, age, t0)
    ]
    doomed_ids = {(r.flow, r.run_id) for r in doomed}
    live = set(inventory.named_elsewhere)
    for key, run in inventory.runs.items():
        if key not in doomed_ids:
            live |= run.digests
    candidates = set().union(*(r.digests for r in doomed), *inventory.pending.values())
    sweep = sorted(candidates - live)

    summary = GcSummary(runs_deleted=[r.pathspec for r in doomed], dry_run=dry_run)
    if dry_run:
        for digest in sweep:
            stat = store.stat_blob(digest)
            if stat is None:
                continue
            if stat.modified >= threshold:
                summary.blobs_kept_recent += 1
            else:
                summary.blobs_deleted.append(digest)
                summary.bytes_freed += stat.size
        return summary

    ours = f"{PENDING_PREFIX}{time.time_ns()}-{os.getpid()}-{os.urandom(4).hex()}.json"
    if sweep:  # remembered first, so an interrupted gc's blobs are swept by the next one
        store.write_document(ours, json.dumps({"digests": sweep}).encode())
    for run in doomed:
        _delete_run(store, run)
    phase("runs-deleted")
    recent = []
    for digest in sweep:
        stat = store.stat_blob(digest)
        if stat is None:
            continue
        if stat.modified < threshold and store.delete_blob(digest, unless_touched_since=threshold):
            summary.blobs_deleted.append(digest)
            summary.bytes_freed += stat.size
        elif store.has_blob(digest):
            recent.append(digest)
    summary.blobs_kept_recent = len(recent)
    if recent:  # unreferenced now, maybe referenced again by then: the next gc decides
        store.write_document(ours, json.dumps({"digests": recent}).encode())
    else:
        store.delete_document(ours)
    for key in inventory.pending:
        store.delete_document(key)
    return summary
