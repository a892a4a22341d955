"""Where runs live, on the same Store abstraction bundles use.

Layout under the store's root:

    flows/<Flow>/runs/<run_id>/run.json                          the run: status, tags, user, parameters
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
from pathlib import Path
from typing import Any, BinaryIO

from satchel.errors import MissingExtra
from satchel.flows.current import current
from satchel.flows.errors import ArtifactError
from satchel.packager.stores import Store, open_store
from satchel.packager.stores.base import check_digest

LEVEL = 3
CHUNK = 1 << 20
JOURNAL = "_artifacts"


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
        return f"flows/{self.flow_name}/runs/"

    def run_key(self, run_id: str) -> str:
        return f"{self.runs_prefix}{run_id}/run.json"

    def journal_prefix(self, run_id: str) -> str:
        return f"{self.runs_prefix}{run_id}/{JOURNAL}/"

    def task_prefix(self, run_id: str, step: str, task_id: str) -> str:
        return f"{self.runs_prefix}{run_id}/{step}/{task_id}/"

    def attempt_prefix(self, run_id: str, step: str, task_id: str, attempt: int) -> str:
        return f"{self.task_prefix(run_id, step, task_id)}{attempt}/"

    # -- documents ----------------------------------------------------------------------------------

    def write_json(self, key: str, obj: Any, *, exclusive: bool = False) -> bool:
        return self.store.write_document(
            key, json.dumps(obj, sort_keys=True, default=str).encode(), exclusive=exclusive
        )

    def read_json(self, key: str) -> Any:
        return json.loads(self.store.read_document(key))

    def new_run(self, record: dict) -> str:
        """Claim a fresh run id (time-ordered) and write its run.json."""
        while True:
            run_id = str(time.time_ns() // 1000)
            if self.write_json(self.run_key(run_id), {**record, "run_id": run_id}, exclusive=True):
                return run_id

    def run_ids(self) -> list[str]:
        """Every run id of the flow, oldest first."""
        ids = {
            k[len(self.runs_prefix) :].split("/", 1)[0]
            for k in self.store.list_documents(self.runs_prefix)
            if k.endswith("/run.json")
        }
        return sorted(ids, key=lambda r: (len(r), r))

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

    def write_log(self, run_id: str, step: str, task_id: str, attempt: int, stream: str, path: Path) -> None:
        data = Path(path).read_bytes() if Path(path).exists() else b""
        self.store.write_document(f"{self.attempt_prefix(run_id, step, task_id, attempt)}{stream}.log", data)
