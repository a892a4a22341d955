"""Where runs live, on the same Store abstraction bundles use.

Layout under the store's root:

    flows/<Flow>/runs/<run_id>/run.json                          the run: status, tags, user, parameters
    flows/<Flow>/runs/<run_id>/<step>/<task_id>/task.json        a finished task: artifacts by name -> digest
    flows/<Flow>/runs/<run_id>/<step>/<task_id>/<attempt>/attempt.json, stdout.log, stderr.log
    blobs/sha256/..                                              artifacts: zlib-compressed pickles (protocol 5),
                                                                 content-addressed, so deduplicated across runs and flows

Artifacts are written and read streaming: pickled straight into a compressing temporary file (hashed on the
way), and unpickled straight from the decompressed blob stream, so a value is never held twice in memory.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any, BinaryIO

from satchel.flows.errors import ArtifactError
from satchel.packager.stores import Store, open_store

LEVEL = 3
CHUNK = 1 << 20


class _CompressingWriter:
    """A write-only file object: bytes in are zlib-compressed to `out` and hashed as stored."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.zip = zlib.compressobj(LEVEL)
        self.hash = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self._emit(self.zip.compress(data))
        return len(data)

    def close(self) -> str:
        self._emit(self.zip.flush())
        return self.hash.hexdigest()

    def _emit(self, chunk: bytes) -> None:
        if chunk:
            self.hash.update(chunk)
            self.out.write(chunk)


class _DecompressingReader(io.RawIOBase):
    """A readable raw stream of the decompressed content of `src`."""

    def __init__(self, src: BinaryIO) -> None:
        self.src = src
        self.zip = zlib.decompressobj()
        self.pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        while not self.pending:
            if self.zip.eof:
                return 0
            chunk = self.zip.unconsumed_tail or self.src.read(CHUNK)
            if not chunk:
                if not self.zip.eof:
                    raise EOFError("artifact blob ends before its compressed stream does")
                return 0
            self.pending = self.zip.decompress(chunk, len(view))
        n = min(len(view), len(self.pending))
        view[:n] = self.pending[:n]
        self.pending = self.pending[n:]
        return n


class FlowDatastore:
    """Runs, tasks, logs and artifacts of one flow in a store."""

    def __init__(self, flow_name: str, store: Store | str | None = None) -> None:
        self.flow_name = flow_name
        self.store = store if isinstance(store, Store) else open_store(store)

    # -- keys ---------------------------------------------------------------------------------------

    @property
    def runs_prefix(self) -> str:
        return f"flows/{self.flow_name}/runs/"

    def run_key(self, run_id: str) -> str:
        return f"{self.runs_prefix}{run_id}/run.json"

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

    def save_artifact(self, value: Any, name: str, step: str) -> str:
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
            return self.store.put_blob(Path(tmp), digest)
        finally:
            Path(tmp).unlink(missing_ok=True)

    def load_artifact(self, digest: str, name: str = "", where: str = "") -> Any:
        try:
            with self.store.open_blob(digest) as src:
                return pickle.load(io.BufferedReader(_DecompressingReader(src), CHUNK))
        except Exception as exc:
            raise ArtifactError(
                f"artifact {name!r} of {where} could not be loaded: {type(exc).__name__}: {exc}"
            ) from exc

    # -- logs ---------------------------------------------------------------------------------------

    def write_log(self, run_id: str, step: str, task_id: str, attempt: int, stream: str, path: Path) -> None:
        data = Path(path).read_bytes() if Path(path).exists() else b""
        self.store.write_document(f"{self.attempt_prefix(run_id, step, task_id, attempt)}{stream}.log", data)
