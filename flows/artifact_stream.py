"""Read an artifact blob back as its plain pickle bytes, streaming, whatever codec wrote it.

Artifact blobs are compressed pickles. The codec is told by the blob's first bytes: zstd frames start
with 28 B5 2F FD, zlib streams with 78, and an uncompressed pickle (protocol 2+) with 80. Binding a
function to a task copies each artifact through this stream into the bundle as a plain pickle, so the
function's worker needs no decompressor.
"""

from __future__ import annotations

import io
import zlib
from typing import Any, BinaryIO

from satchel.core.extras import needs_extra

CHUNK = 1 << 20
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class _Prefixed(io.RawIOBase):
    """`head`, then the rest of `src`."""

    def __init__(self, head: bytes, src: BinaryIO) -> None:
        self.head = head
        self.src = src

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self.head:
            n = min(len(view), len(self.head))
            view[:n] = self.head[:n]
            self.head = self.head[n:]
            return n
        readinto = getattr(self.src, "readinto", None)
        if readinto is not None:  # straight into the caller's buffer: a large read is never copied
            return readinto(view) or 0
        data = self.src.read(min(len(view), CHUNK))
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self.src.close()
        super().close()


class _ZlibReader(io.RawIOBase):
    """The decompressed content of the zlib stream `src`, never more than one read's size at a time."""

    def __init__(self, src: io.RawIOBase) -> None:
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
                raise EOFError("artifact blob ends before its compressed stream does")
            self.pending = self.zip.decompress(chunk, len(view))
        n = min(len(view), len(self.pending))
        view[:n] = self.pending[:n]
        self.pending = self.pending[n:]
        return n

    def close(self) -> None:
        self.src.close()
        super().close()


def open_plain(src: BinaryIO, what: str) -> BinaryIO:
    """A buffered reader of the pickle bytes in blob stream `src` (zstd, zlib or uncompressed).

    `what` names the blob in errors, e.g. "artifact 'model' of TrainFlow/12/fit/3".
    """
    head = src.read(4)
    prefixed = _Prefixed(head, src)
    if head.startswith(ZSTD_MAGIC):
        try:
            with needs_extra("flows", f"reading {what} (zstd-compressed)"):
                import zstandard
        except BaseException:
            src.close()
            raise
        reader = zstandard.ZstdDecompressor().stream_reader(prefixed, read_size=CHUNK, closefd=True)
        return io.BufferedReader(reader, CHUNK)  # type: ignore[arg-type]
    if head[:1] == b"\x78":
        return io.BufferedReader(_ZlibReader(prefixed), CHUNK)
    if head[:1] == b"\x80":
        return io.BufferedReader(prefixed, CHUNK)
    src.close()
    raise ValueError(f"{what} is neither a zstd, a zlib nor a plain pickle stream (starts {head.hex()})")
