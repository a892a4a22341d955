"""The message envelope: every message between a caller and a worker is one Avro `Envelope` record.

Fields (in order, Avro binary, no framing of its own — the transport delimits messages):

- `version` (int): the envelope format, 1 or 2. A reader rejects versions it does not know. A
  writer sends 1 unless the message carries a `context` (then 2), so a call without one costs
  exactly what it did before version 2 existed.
- `kind` (enum Kind): CALL (caller -> worker: run the function; payload = request record),
  RESULT (worker -> caller: payload = the return value in the response schema), ERROR (worker ->
  caller: the call raised; payload = ERROR_SCHEMA record), READY (worker -> caller once started;
  payload = READY_SCHEMA record), STARTUP_ERROR (worker -> caller: it could not start or import the
  code; payload = ERROR_SCHEMA record), SHUTDOWN (caller -> worker: exit cleanly; empty payload),
  CANCEL (caller -> worker: abandon call `call_id`; empty payload). A worker answers every CALL
  exactly once, with RESULT or ERROR, even a cancelled one; it ignores a CANCEL for a call it has
  already answered. A call it interrupts, or drops because its deadline passed before it started,
  is answered with an ERROR of type TIMEOUT_ERROR_TYPE; one whose return value does not fit the
  response schema, with an ERROR of type BAD_RESULT_ERROR_TYPE. A worker may stop only Python code this
  way; the caller decides how long to wait for that answer before it gives up on the worker.
- `call_id` (long): chosen by the caller, echoed in the RESULT/ERROR of that call; 0 for messages
  about no call (READY, STARTUP_ERROR, SHUTDOWN).
- `fingerprint` (long): CRC-64-AVRO of the payload's schema (fingerprint.fingerprint64), carried as
  a signed 64-bit two's-complement long on the wire and exposed here as the unsigned value; 0 when
  the payload has no schema (empty payloads). A receiver compares it with the schema it expects.
- `deadline_ms` (long): absolute wall-clock time, in milliseconds since the Unix epoch (UTC), after
  which the caller no longer wants the result; 0 means no deadline. Set on CALL only (0 on every
  other kind). Absolute rather than relative so that time spent queued or in transit counts; a
  worker that picks up a CALL whose deadline has passed answers ERROR (TIMEOUT_ERROR_TYPE) without
  running it. Caller and worker read the same clock (one machine); across machines the caller
  must allow for clock skew.
- `context` (map<string>, version 2 only, absent from version 1): what the call carries besides its
  arguments, as W3C Trace Context headers: `traceparent`, and `tracestate` when there is one. A
  worker exposes it to the function (runtime.worker.context) and starts a child span of it when
  OpenTelemetry is importable there. Its encoding takes at most CONTEXT_MAX_BYTES.
- `payload` (bytes): the Avro binary encoding of the message's content (schemaless).

Encoding never copies the payload: `encode_header` produces the bytes of every field up to and
including the payload's length prefix, so a transport sends `[header, payload]` as two parts whose
concatenation is exactly the Avro encoding of the record. `decode` returns the payload as a
memoryview slice of the message (no copy). Both are hand-rolled zig-zag varints (no fastavro call).
"""

from __future__ import annotations

import enum
import functools
import os
import platform
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

from satchel.core.errors import ProtocolError, RemoteError

from .fingerprint import fingerprint64, to_signed64, to_unsigned64

__all__ = [
    "VERSION",
    "VERSIONS",
    "CONTEXT_MAX_BYTES",
    "Kind",
    "Envelope",
    "ENVELOPE_SCHEMA",
    "ENVELOPE_SCHEMA_V2",
    "ERROR_SCHEMA",
    "READY_SCHEMA",
    "ERROR_FINGERPRINT",
    "READY_FINGERPRINT",
    "TIMEOUT_ERROR_TYPE",
    "BAD_RESULT_ERROR_TYPE",
    "encode_header",
    "encode_parts",
    "encode",
    "decode",
    "ErrorInfo",
    "encode_error",
    "encode_exception",
    "decode_error",
    "ReadyInfo",
    "encode_ready",
    "decode_ready",
]

VERSION = 2
"""The newest envelope version this Satchel reads and writes."""
VERSIONS = (1, 2)
"""Every version this Satchel reads."""
CONTEXT_MAX_BYTES = 8192
"""Most bytes the Avro encoding of a `context` map may take."""


class Kind(enum.IntEnum):
    """The kind of a message; the value is the Avro enum symbol's index."""

    CALL = 0
    RESULT = 1
    ERROR = 2
    READY = 3
    STARTUP_ERROR = 4
    SHUTDOWN = 5
    CANCEL = 6


ENVELOPE_SCHEMA: dict = {
    "type": "record",
    "name": "Envelope",
    "namespace": "satchel.wire",
    "fields": [
        {"name": "version", "type": "int"},
        {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": [k.name for k in Kind]}},
        {"name": "call_id", "type": "long"},
        {"name": "fingerprint", "type": "long"},
        {"name": "deadline_ms", "type": "long"},
        {"name": "payload", "type": "bytes"},
    ],
}
"""Version 1: what every message without a context is."""

ENVELOPE_SCHEMA_V2: dict = {
    **ENVELOPE_SCHEMA,
    "fields": [
        *ENVELOPE_SCHEMA["fields"][:5],
        {"name": "context", "type": {"type": "map", "values": "string"}},
        ENVELOPE_SCHEMA["fields"][5],
    ],
}
"""Version 2: version 1 plus the `context` map, placed before the payload so that the header (every
field up to the payload's length prefix) still precedes the payload bytes."""

ERROR_SCHEMA: dict = {
    "type": "record",
    "name": "Error",
    "namespace": "satchel.wire",
    "fields": [
        {"name": "type", "type": "string"},
        {"name": "message", "type": "string"},
        {"name": "traceback", "type": "string"},
    ],
}
"""Payload of ERROR and STARTUP_ERROR: the exception's type name (qualified, e.g. `ValueError`,
`mypkg.errors.Invalid`), its message (`str(exc)`) and the formatted traceback ("" if none)."""

READY_SCHEMA: dict = {
    "type": "record",
    "name": "Ready",
    "namespace": "satchel.wire",
    "fields": [
        {"name": "pid", "type": "long"},
        {"name": "python", "type": "string"},
        {"name": "satchel", "type": "string"},
    ],
}
"""Payload of READY: the worker's process id, its Python version ("3.11.7") and Satchel version."""

TIMEOUT_ERROR_TYPE = "satchel.core.errors.CallTimeout"
"""The `type` of the ERROR answering a call that the worker interrupted after a CANCEL, or did not
start because its `deadline_ms` had passed; the message says which."""

BAD_RESULT_ERROR_TYPE = "satchel.core.errors.BadResult"
"""The `type` of the ERROR answering a call whose function returned a value that does not fit the
response schema (so it cannot be encoded): the result, not the call's arguments, is at fault; the
message says where it does not fit."""

ERROR_FINGERPRINT = fingerprint64(ERROR_SCHEMA)
READY_FINGERPRINT = fingerprint64(READY_SCHEMA)

_KINDS = tuple(Kind)
_LONG_MIN = -(1 << 63)
_LONG_MAX = (1 << 63) - 1
_ULONG_MAX = (1 << 64) - 1


_NO_CONTEXT: Mapping[str, str] = MappingProxyType({})


class Envelope(NamedTuple):
    """A decoded message. `payload` is a memoryview slice of the message it was decoded from;
    `context` is empty for version 1 (the last field, so that code unpacking six fields still works
    through `[:6]`)."""

    version: int
    kind: Kind
    call_id: int
    fingerprint: int
    deadline_ms: int
    payload: Any
    context: Mapping[str, str] = _NO_CONTEXT


def _put_long(out: bytearray, value: int, what: str) -> None:
    if not _LONG_MIN <= value <= _LONG_MAX:
        raise ValueError(f"{what} {value} does not fit an Avro long")
    n = (value << 1) ^ (value >> 63)
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def encode_header(
    kind: Kind | int,
    call_id: int,
    fingerprint: int,
    deadline_ms: int,
    payload_len: int,
    *,
    version: int | None = None,
    context: Mapping[str, str] | None = None,
) -> bytes:
    """The Avro bytes of an Envelope up to and including the payload's length prefix.

    `version` None means 1 without a `context` (or an empty one), 2 with one.
    """
    if version is None:
        version = 2 if context else 1
    elif version == 1 and context:
        raise ValueError("a version 1 envelope cannot carry a context")
    elif version not in (1, 2):
        raise ValueError(f"envelope version {version}: this Satchel writes versions 1 and 2")
    kind = int(kind)
    if not 0 <= kind < len(_KINDS):
        raise ValueError(f"unknown message kind {kind}")
    if payload_len < 0:
        raise ValueError("negative payload length")
    if not _LONG_MIN <= fingerprint <= _ULONG_MAX:
        raise ValueError(f"fingerprint {fingerprint} is not a 64-bit value")
    out = bytearray()
    out.append(version << 1)  # 1 or 2 (anything else is refused when read): one byte
    out.append(kind << 1)  # zig-zag of a small non-negative int: one byte
    _put_long(out, call_id, "call_id")
    out += _fingerprint_bytes(fingerprint)
    if deadline_ms == 0:
        out.append(0)
    else:
        _put_long(out, deadline_ms, "deadline_ms")
    if version >= 2:
        _put_context(out, context or {})
    _put_long(out, payload_len, "payload length")
    return bytes(out)


@functools.lru_cache(maxsize=256)
def _fingerprint_bytes(fingerprint: int) -> bytes:
    """The varint of a fingerprint (a schema's: the same few, message after message)."""
    out = bytearray()
    _put_long(out, to_signed64(fingerprint) if fingerprint >= 0 else fingerprint, "fingerprint")
    return bytes(out)


def _put_context(out: bytearray, context: Mapping[str, str]) -> None:
    """An Avro map<string>: one block of `len(context)` pairs, then the empty block (none if empty)."""
    start = len(out)
    if context:
        _put_long(out, len(context), "context size")
        for key, value in context.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise ValueError(f"context entry {key!r}: keys and values must be strings")
            _put_string(out, key)
            _put_string(out, value)
    out.append(0)
    if len(out) - start > CONTEXT_MAX_BYTES:
        raise ValueError(f"the context takes {len(out) - start} bytes, more than {CONTEXT_MAX_BYTES}")


def encode_parts(
    kind: Kind | int,
    call_id: int = 0,
    payload: Any = b"",
    *,
    fingerprint: int = 0,
    deadline_ms: int = 0,
    context: Mapping[str, str] | None = None,
) -> list[Any]:
    """[header, payload]: the two parts a transport sends (their concatenation is the record)."""
    size = payload.nbytes if isinstance(payload, memoryview) else len(payload)
    return [encode_header(kind, call_id, fingerprint, deadline_ms, size, context=context), payload]


def encode(
    kind: Kind | int,
    call_id: int = 0,
    payload: Any = b"",
    *,
    fingerprint: int = 0,
    deadline_ms: int = 0,
    context: Mapping[str, str] | None = None,
) -> bytes:
    """The whole Avro encoding of one Envelope, as one bytes object (copies the payload once)."""
    parts = encode_parts(
        kind, call_id, payload, fingerprint=fingerprint, deadline_ms=deadline_ms, context=context
    )
    return b"".join(parts)


def _get_long(head: bytes, pos: int) -> tuple[int, int]:
    (value,), pos = _get_longs(head, pos, 1)
    return value, pos


def _get_longs(head: bytes, pos: int, count: int) -> tuple[list[int], int]:
    """`count` varints from `pos` (`_get_long` in one loop: the header's fields, read at once)."""
    values = []
    try:
        for _ in range(count):
            n = shift = 0
            while True:
                byte = head[pos]
                pos += 1
                n |= (byte & 0x7F) << shift
                if not byte & 0x80:
                    break
                shift += 7
                if shift > 63:
                    raise ProtocolError("malformed envelope: a varint longer than 10 bytes")
            values.append((n >> 1) ^ -(n & 1))
    except IndexError:
        raise ProtocolError("truncated envelope") from None
    return values, pos


def decode(message: bytes | bytearray | memoryview) -> Envelope:
    """The Envelope in `message` (the whole of it); the payload is a memoryview slice, not a copy."""
    view = memoryview(message)
    if view.ndim != 1 or view.format != "B":
        view = view.cast("B")
    head = bytes(view[:64])  # 6 varints of at most 10 bytes each
    (version, kind, call_id, fingerprint, deadline_ms), pos = _get_longs(head, 0, 5)
    if version != 1 and version != 2:
        raise ProtocolError(f"envelope version {version}, this Satchel reads versions 1 and 2")
    if not 0 <= kind < len(_KINDS):
        raise ProtocolError(f"unknown message kind {kind}")
    context: Mapping[str, str] = _NO_CONTEXT
    if version == 2:
        context, pos = _get_context(view, pos)
        head = bytes(view[pos : pos + 10])
        size, end = _get_long(head, 0)
        pos += end
    else:
        size, pos = _get_long(head, pos)
    if size < 0 or pos + size != len(view):
        raise ProtocolError(
            f"malformed envelope: payload of {size} bytes announced, {len(view) - pos} bytes present"
        )
    return Envelope(
        version, _KINDS[kind], call_id, to_unsigned64(fingerprint), deadline_ms, view[pos:], context
    )


def _get_context(view: memoryview, pos: int) -> tuple[dict[str, str], int]:
    """The map<string> at `pos` (blocks of pairs, a negative count followed by the block's size)."""
    context: dict[str, str] = {}
    start = pos
    while True:
        count, used = _get_long(bytes(view[pos : pos + 10]), 0)
        pos += used
        if count == 0:
            return context, pos
        if count < 0:  # a block size follows, which we do not need
            count = -count
            _, used = _get_long(bytes(view[pos : pos + 10]), 0)
            pos += used
        for _ in range(count):
            key, pos = _get_string(view, pos)
            value, pos = _get_string(view, pos)
            context[key] = value
            if pos - start > CONTEXT_MAX_BYTES:
                raise ProtocolError(f"malformed envelope: a context of more than {CONTEXT_MAX_BYTES} bytes")


# --- string records (ERROR, READY) ----------------------------------------------------------------


def _put_string(out: bytearray, text: str) -> None:
    data = text.encode("utf-8", "backslashreplace")
    _put_long(out, len(data), "string length")
    out += data


def _get_string(view: memoryview, head_pos: int) -> tuple[str, int]:
    length, pos = _get_long(bytes(view[head_pos : head_pos + 10]), 0)
    pos += head_pos
    if length < 0 or pos + length > len(view):
        raise ProtocolError("truncated string in payload")
    try:
        return str(view[pos : pos + length], "utf-8"), pos + length
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"invalid UTF-8 in payload: {exc}") from None


def _as_view(payload: Any) -> memoryview:
    view = memoryview(payload)
    return view if view.ndim == 1 and view.format == "B" else view.cast("B")


class ErrorInfo(NamedTuple):
    """The content of an ERROR / STARTUP_ERROR payload."""

    type: str
    message: str
    traceback: str

    def to_exception(self) -> RemoteError:
        return RemoteError(self.type, self.message, self.traceback)


def encode_error(type_name: str, message: str, traceback: str = "") -> bytes:
    """An ERROR_SCHEMA payload."""
    out = bytearray()
    _put_string(out, type_name)
    _put_string(out, message)
    _put_string(out, traceback)
    return bytes(out)


def encode_exception(exc: BaseException, *, with_traceback: bool = True) -> bytes:
    """An ERROR_SCHEMA payload describing `exc` (type qualified by module unless builtin)."""
    import traceback as _traceback

    cls = type(exc)
    name = cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    try:
        message = str(exc)
    except Exception:  # a broken __str__
        message = f"<unprintable {cls.__name__}>"
    text = "".join(_traceback.format_exception(cls, exc, exc.__traceback__)) if with_traceback else ""
    return encode_error(name, message, text)


def decode_error(payload: Any) -> ErrorInfo:
    view = _as_view(payload)
    type_name, pos = _get_string(view, 0)
    message, pos = _get_string(view, pos)
    traceback, pos = _get_string(view, pos)
    if pos != len(view):
        raise ProtocolError("trailing bytes after an error payload")
    return ErrorInfo(type_name, message, traceback)


class ReadyInfo(NamedTuple):
    """The content of a READY payload."""

    pid: int
    python: str
    satchel: str


def encode_ready(pid: int | None = None, python: str | None = None, satchel: str = "") -> bytes:
    """A READY_SCHEMA payload; pid and Python version default to this process's."""
    out = bytearray()
    _put_long(out, os.getpid() if pid is None else pid, "pid")
    _put_string(out, platform.python_version() if python is None else python)
    _put_string(out, satchel)
    return bytes(out)


def decode_ready(payload: Any) -> ReadyInfo:
    view = _as_view(payload)
    pid, pos = _get_long(bytes(view[:10]), 0)
    python, pos = _get_string(view, pos)
    satchel, pos = _get_string(view, pos)
    if pos != len(view):
        raise ProtocolError("trailing bytes after a ready payload")
    return ReadyInfo(pid, python, satchel)
