"""Where runs live, on the same Store abstraction bundles use.

Layout under the store's root:

    flows/<Flow>/runs/<run_id>/run.json                          the run: status, tags, user, parameters
                                                                 (records: `satchel.flows.records`)
    flows/<Flow>/runs/<run_id>/_artifacts/<sha256>               the run's artifact journal (empty documents)
    flows/<Flow>/runs/<run_id>/<step>/<task_id>/task.json        a finished task: artifacts by name -> digest
    flows/<Flow>/runs/<run_id>/<step>/<task_id>/<attempt>/attempt.json, stdout.log, stderr.log
    blobs/sha256/..                                              artifacts: compressed pickles (protocol 5),
                                                                 content-addressed, so deduplicated across runs and flows

Codec: artifacts are written as one zstd frame (level 3) when the `zstandard` package is importable, else
as a zlib stream. The blob says which: a zstd frame starts with the magic number 28 B5 2F FD, a zlib stream
with 78 (see `satchel.flows.artifact_stream`), so readers need no record of the codec, old zlib blobs stay
readable without zstandard, and a digest means the same bytes whatever reads it.

Artifacts are written and read streaming: pickled straight into a compressing temporary file (hashed on the
way), and unpickled straight from the decompressing blob stream, so a value is never held twice in memory.

Garbage collection (`satchel.flows.gc`): before a run uses an artifact blob it journals the digest under
the run (`_artifacts/<digest>`), then refreshes the blob's timestamp (`Store.touch_blob`) or uploads it.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import tempfile
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from satchel.core.errors import MissingExtra
from satchel.flows.current import current
from satchel.flows.errors import ArtifactError
from satchel.flows.records import AttemptRecord, RunRecord, TaskRecord
from satchel.packager.stores import Store, open_store
from satchel.packager.stores.base import check_digest

LEVEL = 3
CHUNK = 1 << 20

# Key names: only this module spells them (the layout in the docstring above).
RUN_RECORD = "run.json"
TASK_RECORD = "task.json"
ATTEMPT_RECORD = "attempt.json"
JOURNAL = "_artifacts"
LOG_STREAMS = ("stdout", "stderr")
LOG_SUFFIX = ".log"

R = TypeVar("R", RunRecord, TaskRecord, AttemptRecord)


def runs_prefix(flow_name: str) -> str:
    return f"flows/{flow_name}/runs/"


def run_key(flow_name: str, run_id: str) -> str:
    return f"{runs_prefix(flow_name)}{run_id}/{RUN_RECORD}"


@dataclass(frozen=True)
class RunDocument:
    """What a document key under a run is: `kind` is "run" (its run.json), "journal" (`name` is the
    digest), "task" (a task.json), "attempt" (an attempt.json), "log" or "other"."""

    flow: str
    run_id: str
    kind: str
    name: str


def parse_key(key: str) -> RunDocument | None:
    """The run document `key` is, or None for a key outside every flow's runs."""
    parts = key.split("/")
    if len(parts) < 5 or parts[0] != "flows" or parts[2] != "runs":
        return None
    flow, run_id, last = parts[1], parts[3], parts[-1]
    if len(parts) == 5 and last == RUN_RECORD:
        kind = "run"
    elif len(parts) == 6 and parts[4] == JOURNAL:
        kind = "journal"
    elif last == TASK_RECORD:
        kind = "task"
    elif last == ATTEMPT_RECORD:
        kind = "attempt"
    elif last.endswith(LOG_SUFFIX):
        kind = "log"
    else:
        kind = "other"
    return RunDocument(flow, run_id, kind, last)


def flow_names(store: Store) -> list[str]:
    """The flows with at least one run in `store`."""
    found = (parse_key(k) for k in store.list_documents("flows/"))
    return sorted({d.flow for d in found if d is not None and d.kind == "run"})


def _zstandard() -> Any:
    try:
        import zstandard
    except ImportError:
        return None
    return zstandard


def artifact_codec() -> str:
    """The codec new artifacts are written with here: "zstd", or "zlib" when zstandard is missing."""
    return "zstd" if _zstandard() is not None else "zlib"


class _HashingSink:
    """Writes compressed chunks to `out`, hashing them as stored."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.hash = hashlib.sha256()

    def write(self, chunk: Any) -> int:
        self.hash.update(chunk)
        self.out.write(chunk)
        return len(chunk)

    def flush(self) -> None:
        self.out.flush()


class _ZlibWriter:
    """A zlib compressor with the write/close interface of zstandard's stream writer."""

    def __init__(self, sink: _HashingSink) -> None:
        self.sink = sink
        self.zip = zlib.compressobj(LEVEL)

    def write(self, data: Any) -> int:
        out = self.zip.compress(data)
        if out:
            self.sink.write(out)
        return len(data)

    def close(self) -> None:
        self.sink.write(self.zip.flush())


class _CompressingWriter:
    """A write-only file object for pickle: bytes in are compressed into `out`, at most CHUNK at a time
    (a large buffer pickle hands over whole is sliced, never copied)."""

    def __init__(self, out: BinaryIO, codec: str | None = None) -> None:
        self.sink = _HashingSink(out)
        self.codec = codec or artifact_codec()
        if self.codec == "zstd":
            cctx = _zstandard().ZstdCompressor(level=LEVEL)
            self.stream: Any = cctx.stream_writer(self.sink, write_size=CHUNK, closefd=False)
        else:
            self.stream = _ZlibWriter(self.sink)

    def write(self, data: Any) -> int:
        view = memoryview(data)
        if view.ndim != 1 or view.itemsize != 1:
            view = view.cast("B")
        for start in range(0, len(view), CHUNK):
            self.stream.write(view[start : start + CHUNK])
        return len(view)

    def close(self) -> str:
        """End the compressed stream; return the sha256 of everything written to `out`."""
        self.stream.close()
        return self.sink.hash.hexdigest()


class FlowDatastore:
    """Runs, tasks, logs and artifacts of one flow in a store.

    `run_id`: the run whose journal artifacts saved here are recorded in (default: the running task's,
    from `current`, when it is a task of this flow).
    """

    def __init__(self, flow_name: str, store: Store | str | None = None, run_id: str | None = None) -> None:
        self.flow_name = flow_name
        self.store = store if isinstance(store, Store) else open_store(store)
        self.run_id = run_id
        self._journaled: set[tuple[str, str]] = set()

    # -- keys ---------------------------------------------------------------------------------------

    @property
    def runs_prefix(self) -> str:
        return runs_prefix(self.flow_name)

    def run_key(self, run_id: str) -> str:
        return run_key(self.flow_name, run_id)

    def journal_prefix(self, run_id: str) -> str:
        return f"{self.runs_prefix}{run_id}/{JOURNAL}/"

    def task_prefix(self, run_id: str, step: str, task_id: str) -> str:
        return f"{self.runs_prefix}{run_id}/{step}/{task_id}/"

    def task_key(self, run_id: str, step: str, task_id: str) -> str:
        return self.task_prefix(run_id, step, task_id) + TASK_RECORD

    def attempt_prefix(self, run_id: str, step: str, task_id: str, attempt: int) -> str:
        return f"{self.task_prefix(run_id, step, task_id)}{attempt}/"

    def attempt_key(self, run_id: str, step: str, task_id: str, attempt: int) -> str:
        return self.attempt_prefix(run_id, step, task_id, attempt) + ATTEMPT_RECORD

    def log_key(self, run_id: str, step: str, task_id: str, attempt: int, stream: str) -> str:
        if stream not in LOG_STREAMS:
            raise ValueError(f"a task's log stream is one of {', '.join(LOG_STREAMS)}, got {stream!r}")
        return f"{self.attempt_prefix(run_id, step, task_id, attempt)}{stream}{LOG_SUFFIX}"

    # -- documents ----------------------------------------------------------------------------------

    def write_json(self, key: str, obj: Any, *, exclusive: bool = False) -> bool:
        return self.store.write_document(
            key, json.dumps(obj, sort_keys=True, default=str).encode(), exclusive=exclusive
        )

    def read_json(self, key: str) -> Any:
        return json.loads(self.store.read_document(key))

    def _read_record(self, cls: type[R], key: str) -> R:
        """The record stored at `key` (KeyError when there is none; ValueError naming the key when it is
        not a record)."""
        try:
            data = self.read_json(key)
        except ValueError as exc:
            raise ValueError(f"{self.store.url}/{key} is not valid JSON: {exc}") from None
        return cls.from_dict(data, f"{self.store.url}/{key}")

    # -- records ------------------------------------------------------------------------------------

    def new_run(self, record: RunRecord) -> str:
        """Claim a fresh run id (time-ordered) for `record`, set it there, and write its run.json."""
        while True:
            record.run_id = str(time.time_ns() // 1000)
            if self.write_json(self.run_key(record.run_id), record.to_dict(), exclusive=True):
                return record.run_id

    def write_run(self, record: RunRecord) -> None:
        self.write_json(self.run_key(record.run_id), record.to_dict())

    def read_run(self, run_id: str) -> RunRecord:
        """Run `run_id`'s record; KeyError when the flow has no such run."""
        return self._read_record(RunRecord, self.run_key(run_id))

    def run_ids(self) -> list[str]:
        """Every run id of the flow, oldest first."""
        ids = {
            k[len(self.runs_prefix) :].split("/", 1)[0]
            for k in self.store.list_documents(self.runs_prefix)
            if k.endswith("/" + RUN_RECORD)
        }
        return sorted(ids, key=lambda r: (len(r), r))

    def write_task(self, record: TaskRecord) -> None:
        self.write_json(self.task_key(record.run_id, record.step, record.task_id), record.to_dict())

    def read_task(self, run_id: str, step: str, task_id: str) -> TaskRecord:
        """A finished task's record; KeyError when it has none."""
        return self._read_record(TaskRecord, self.task_key(run_id, step, task_id))

    def task_records(self, run_id: str, step: str | None = None) -> list[TaskRecord]:
        """The finished task records of a run (of one step, if given), in no particular order."""
        prefix = f"{self.runs_prefix}{run_id}/" + (f"{step}/" if step else "")
        return [
            self._read_record(TaskRecord, k)
            for k in self.store.list_documents(prefix)
            if k.endswith("/" + TASK_RECORD)
        ]

    def write_attempt(
        self, run_id: str, step: str, task_id: str, attempt: int, record: AttemptRecord
    ) -> None:
        self.write_json(self.attempt_key(run_id, step, task_id, attempt), record.to_dict())

    def read_attempt(self, run_id: str, step: str, task_id: str, attempt: int) -> AttemptRecord:
        """An attempt's record; KeyError when the attempt wrote none."""
        return self._read_record(AttemptRecord, self.attempt_key(run_id, step, task_id, attempt))

    # -- artifacts ----------------------------------------------------------------------------------

    def _journal_run(self, run_id: str | None) -> str | None:
        if run_id is not None:
            return run_id
        if self.run_id is not None:
            return self.run_id
        if current.flow_name == self.flow_name and current.run_id is not None:
            return current.run_id
        return None

    def journal(self, run_id: str, digests: Iterable[str]) -> None:
        """Record that run `run_id` uses these artifact blobs (before it uses them: see `satchel.flows.gc`)."""
        for digest in digests:
            check_digest(digest)
            if (run_id, digest) not in self._journaled:
                self.store.write_document(self.journal_prefix(run_id) + digest, b"")
                self._journaled.add((run_id, digest))

    def adopt_artifacts(self, run_id: str, digests: Iterable[str]) -> list[str]:
        """Make run `run_id` use existing artifact blobs (e.g. a resumed run reusing an earlier run's):
        journal them, then refresh each blob's timestamp, so a concurrent gc keeps them. The digests whose
        blob is missing (the caller must store those again)."""
        digests = list(dict.fromkeys(digests))
        self.journal(run_id, digests)
        return [d for d in digests if not self.store.touch_blob(d)]

    def save_artifact(self, value: Any, name: str, step: str, run_id: str | None = None) -> str:
        """Store one value; return its digest. ArtifactError naming artifact and step if it cannot be pickled."""
        fd, tmp = tempfile.mkstemp(prefix="satchel-artifact-")
        try:
            with os.fdopen(fd, "wb") as out:
                writer = _CompressingWriter(out)
                try:
                    pickle.dump(value, writer, protocol=5)
                except Exception as exc:  # pickling raises TypeError, PicklingError, AttributeError, ...
                    raise ArtifactError(
                        f"artifact {name!r} of step {step!r} cannot be stored: {type(exc).__name__}: {exc}"
                    ) from exc
                digest = writer.close()
            journal_run = self._journal_run(run_id)
            if journal_run is not None:
                self.journal(journal_run, [digest])
            # A dedup hit refreshes the blob's timestamp, so a gc that did not see the journal entry
            # still keeps it (see satchel.flows.gc).
            if self.store.touch_blob(digest):
                return digest
            return self.store.put_blob(Path(tmp), digest)
        finally:
            Path(tmp).unlink(missing_ok=True)

    def load_artifact(self, digest: str, name: str = "", where: str = "") -> Any:
        from satchel.flows.artifact_stream import open_plain

        try:
            with open_plain(self.store.open_blob(digest), f"artifact {name!r} of {where}") as stream:
                return pickle.load(stream)
        except MissingExtra:  # nothing wrong with the artifact: one line saying what to install
            raise
        except Exception as exc:
            raise ArtifactError(
                f"artifact {name!r} of {where} could not be loaded: {type(exc).__name__}: {exc}"
            ) from exc

    # -- logs ---------------------------------------------------------------------------------------

    def write_log(
        self, run_id: str, step: str, task_id: str, attempt: int, stream: str, data: Path | bytes
    ) -> None:
        """Store an attempt's stdout or stderr: `data`, or the file at that path (empty if it is missing)."""
        if not isinstance(data, bytes):
            data = Path(data).read_bytes() if Path(data).exists() else b""
        self.store.write_document(self.log_key(run_id, step, task_id, attempt, stream), data)

    def read_log(self, run_id: str, step: str, task_id: str, attempt: int, stream: str) -> bytes:
        """An attempt's stdout or stderr; KeyError when it stored none."""
        return self.store.read_document(self.log_key(run_id, step, task_id, attempt, stream))

    def copy_logs(self, step: str, attempt: int, source: tuple[str, str], target: tuple[str, str]) -> None:
        """Copy an attempt's logs from task `source` (run id, task id) to task `target` of the same step."""
        for stream in LOG_STREAMS:
            try:
                data = self.read_log(source[0], step, source[1], attempt, stream)
            except KeyError:
                continue
            self.write_log(target[0], step, target[1], attempt, stream, data)
