"""Avro binary codecs for one schema: Python value <-> bytes (schemaless, as in the payload of a message).

`Codec(schema)` parses the schema once (fastavro.parse_schema) and builds its converters once;
`encode`/`decode` then cost one conversion and one fastavro call. `RequestCodec` is the codec of a
function's request record: it encodes already-bound keyword arguments and decodes them back, naming
parameters in its errors.

A schema that is a plain `bytes` (e.g. an ndarray return value) skips fastavro: its Avro encoding is
a length prefix followed by the bytes, and `decode` hands the converter a zero-copy slice of the
message.

Who copies what when a large value travels (`encode_parts`, `RequestCodec.encode_call_parts`,
`decode`, `RequestCodec.decode_call`), over the shm ring:

- Sending side: never joins a large bytes-like or contiguous ndarray value into a new buffer. The
  parts it returns are the small Avro bytes around the value (length prefixes, the `.npy` header,
  the other fields) and the value's own memory, which the transport writes out part by part
  (`Transport.send` takes the parts as they are); so the one copy is the transport's own write into
  its channel (the ring's copy into shared memory, the pipe's `writev`). Values of other types (and
  arrays that are not contiguous, Arrow tables, pickles) are encoded into a new buffer first, as
  `encode` does; only the final join is avoided.
- Receiving side: the transport reads each message into one buffer (the ring's copy out of shared
  memory; a large message goes into a bytearray that is not zero-filled, backed by huge pages, and
  is received into again once nothing refers to it any more: see `ring.Ring.recv`). Decoding then
  copies nothing for raw bytes fields: `decode` of a plain bytes schema and `decode_call` of a
  request whose fields are raw bytes and plain scalars (the common shapes; other requests go through
  fastavro, which copies) slice the buffer, and the converters make the values: an ndarray is
  `np.frombuffer` over it (writable, as the received bytearray is ours alone; read-only when decoded
  from `bytes`), an Arrow table references it. A `bytes` value must be a bytes object, so it costs
  one copy (`convert.copy_to_bytes`: into a bytes object that is not zero-filled first and is
  backed by huge pages, so a large value costs few page faults).

So a 100 MB ndarray echoed through a worker is copied four times in all (into the ring and out of it,
each way), a 100 MB `bytes` six times; and a decoded ndarray keeps its whole message alive.
"""

from __future__ import annotations

import copy
import io
import struct
from typing import Any

import fastavro

from satchel.core.errors import ArgumentError, ProtocolError, SchemaError

from . import _avro, arguments, convert, logical
from .fingerprint import fingerprint64

__all__ = ["Codec", "RequestCodec", "ZERO_COPY_MIN"]

ZERO_COPY_MIN = 64 * 1024
"""`RequestCodec.encode_call_parts` sends raw-bytes arguments by reference once they total this many
bytes; below it one buffer costs less than the extra parts."""


def _write_long(value: int) -> bytes:
    n = (value << 1) ^ (value >> 63)
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _read_long(view: memoryview, pos: int) -> tuple[int, int]:
    shift = 0
    n = 0
    while True:
        if pos >= len(view):
            raise ProtocolError("truncated Avro data")
        byte = view[pos]
        pos += 1
        n |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return (n >> 1) ^ -(n & 1), pos
        shift += 7
        if shift > 63:
            raise ProtocolError("malformed Avro long (more than 10 bytes)")


class Codec:
    """Encode Python values of `schema` to Avro binary and back.

    `path` starts the messages of the ArgumentErrors `encode` raises ("return value: expected int, ...").
    """

    def __init__(self, schema: Any, *, path: str = "value") -> None:
        self.schema = schema
        try:
            self._parsed = fastavro.parse_schema(schema)
        except Exception as exc:  # fastavro raises SchemaParseException, UnknownType, ValueError...
            raise SchemaError(f"invalid Avro schema: {exc}") from exc
        self._path = path
        self._to_datum = convert.to_datum_converter(schema, path=path)
        self._from_datum = convert.from_datum_converter(schema, path=path)
        node = _avro.parse(schema)
        self._raw_bytes = node.type == "bytes"
        self._raw_ndarray = self._raw_bytes and node.logical == _avro.NDARRAY
        self.fingerprint: int = fingerprint64(schema)

    @property
    def fingerprint_hex(self) -> str:
        return f"{self.fingerprint:016x}"

    def encode(self, value: Any) -> bytes:
        """The Avro binary encoding of `value`; ArgumentError when it does not fit the schema."""
        return self.encode_datum(self._to_datum(value))

    def encode_parts(self, value: Any) -> list[Any]:
        """`encode(value)` as parts whose concatenation is the encoding (for a transport's send).

        For a schema that is a plain satchel.ndarray this avoids copying the array: the parts are
        the Avro length prefix, the .npy header and a view of the array's memory (so do not modify
        the array until the parts are sent). Otherwise a single part.
        """
        if self._raw_ndarray and logical.is_ndarray(value):
            try:
                parts = logical.ndarray_parts(value)
            except ValueError as exc:
                raise ArgumentError(f"{self._path}: {exc}") from None
            size = sum(len(memoryview(p)) for p in parts)
            return [_write_long(size), *parts]
        if self._raw_bytes:  # the value itself (bytes, bytearray, memoryview) or its encoding, unjoined
            datum = self._to_datum(value)
            return [_write_long(_nbytes(datum)), datum]
        return [self.encode(value)]

    def decode(self, data: bytes | bytearray | memoryview) -> Any:
        """The Python value encoded in `data` (all of it); ProtocolError when malformed."""
        datum = self.decode_datum(data)
        try:
            return self._from_datum(datum)
        except ArgumentError as exc:  # bytes that are not what their logical type says
            raise ProtocolError(f"malformed Avro data for this schema: {exc}") from None

    def encode_datum(self, datum: Any) -> bytes:
        if self._raw_bytes:
            return b"".join((_write_long(len(datum)), datum))
        out = io.BytesIO()
        fastavro.schemaless_writer(out, self._parsed, datum)
        return out.getvalue()

    def decode_datum(self, data: bytes | bytearray | memoryview) -> Any:
        if self._raw_bytes:
            view = memoryview(data)
            if view.ndim != 1 or view.format != "B":
                view = view.cast("B")
            length, pos = _read_long(view, 0)
            if length < 0 or pos + length != len(view):
                raise ProtocolError(f"Avro bytes of length {length} in a message of {len(view) - pos} bytes")
            return view[pos:]
        source = io.BytesIO(data)
        try:
            datum = fastavro.schemaless_reader(source, self._parsed, None, return_named_type=True)
        except Exception as exc:  # EOFError, StopIteration, UnicodeDecodeError, IndexError...
            raise ProtocolError(f"malformed Avro data for this schema: {type(exc).__name__}: {exc}") from exc
        if source.tell() != len(source.getbuffer()):
            raise ProtocolError(
                f"{len(source.getbuffer()) - source.tell()} unexpected trailing bytes after the Avro datum"
            )
        return datum


class RequestCodec(Codec):
    """The codec of a request record: one field per parameter.

    `encode_call(kwargs)` takes every parameter by name (already bound; a missing one with a default
    takes the default), `decode_call(data)` returns a dict of Python values, `defaults()` the
    defaults of the parameters that have one.
    """

    def __init__(self, request_schema: dict) -> None:
        if not isinstance(request_schema, dict) or request_schema.get("type") not in ("record", "error"):
            raise SchemaError("a request schema is an Avro record")
        super().__init__(request_schema, path="arguments")
        named = _avro.collect_named(request_schema)
        node = _avro.parse(request_schema)
        self._fields = []
        self._default_datums: dict[str, Any] = {}
        self._field_from: dict[str, Any] = {}
        for field in node.fields:
            json_type = field.json["type"]
            to = convert.to_datum_converter(json_type, path=arguments.path_of(field.name), named=named)
            self._fields.append((field.name, to))
            self._field_from[field.name] = convert.from_datum_converter(
                json_type, path=f"parameter {field.name!r}", named=named
            )
            if field.has_default:
                try:
                    self._default_datums[field.name] = convert.avro_default_to_datum(
                        field.default, json_type, named=named
                    )
                except ValueError as exc:
                    raise SchemaError(f"bad default of parameter {field.name!r}: {exc}") from None
        self._names = frozenset(name for name, _ in self._fields)
        self.parameters = [name for name, _ in self._fields]
        # raw-bytes fields (value: is it a satchel.ndarray), and the split of the record around them
        self._raw_fields = {
            f.name: f.node.logical == _avro.NDARRAY for f in node.fields if f.node.type == "bytes"
        }
        self._segments: list[tuple[Any, list[tuple[str, Any]]]] | None = None
        # the hand-rolled decoder of requests with raw-bytes fields whose fields are all flat (see _decode_flat)
        self._flat = _flat_fields(node) if self._raw_fields else None

    @property
    def has_raw_fields(self) -> bool:
        """Whether some parameter is raw bytes (bytes, ndarray, ...): `encode_call_parts` may split."""
        return bool(self._raw_fields)

    def encode_call(self, kwargs: dict[str, Any]) -> bytes:
        """The request bytes of a call; ArgumentError naming the parameter when an argument does not fit."""
        datum = {}
        used = 0
        for name, to in self._fields:
            if name in kwargs:
                datum[name] = to(kwargs[name])
                used += 1
            elif name in self._default_datums:
                datum[name] = self._default_datums[name]
            else:
                raise arguments.missing([name])
        if used != len(kwargs):
            raise arguments.unknown([k for k in kwargs if k not in self._names], self.parameters)
        return self.encode_datum(datum)

    def encode_call_parts(self, kwargs: dict[str, Any]) -> list[Any]:
        """`encode_call(kwargs)` as parts whose concatenation is the request bytes (for `Transport.send`).

        When the arguments of the request's raw-bytes fields (bytes, satchel.ndarray, Arrow, pickle)
        total at least ZERO_COPY_MIN bytes, each such argument travels as its own part: a bytes-like
        value as itself, a contiguous ndarray as its `.npy` header and a view of its memory (do not
        modify it until the call returns); the fields between them are encoded into small buffers.
        Otherwise, and for requests without such fields, a single part (`encode_call`).
        """
        if not self._raw_fields or _raw_size(kwargs, self._raw_fields) < ZERO_COPY_MIN:
            return [self.encode_call(kwargs)]
        unknown = [k for k in kwargs if k not in self._names]
        if unknown:
            raise arguments.unknown(unknown, self.parameters)
        if self._segments is None:
            self._segments = _segments(self.schema, self._fields, self._raw_fields)
        parts: list[Any] = []
        head = bytearray()  # small bytes waiting to be sent before the next large part
        for parsed, fields in self._segments:
            if parsed is not None:  # a run of ordinary fields, encoded as one record of them
                datum = {name: self._field_datum(name, to, kwargs) for name, to in fields}
                out = io.BytesIO()
                fastavro.schemaless_writer(out, parsed, datum)
                head += out.getbuffer()
                continue
            ((name, to),) = fields
            value = kwargs.get(name)
            pieces = None
            if self._raw_fields[name] and logical.is_ndarray(value):
                try:
                    pieces = logical.ndarray_parts(value)
                except ValueError as exc:
                    raise ArgumentError(f"{arguments.path_of(name)}: {exc}") from None
            if pieces is None:
                pieces = [self._field_datum(name, to, kwargs)]
            head += _write_long(sum(_nbytes(p) for p in pieces))
            for piece in pieces:
                if _nbytes(piece) < ZERO_COPY_MIN:
                    head += piece
                else:
                    if head:
                        parts.append(head)
                        head = bytearray()
                    parts.append(piece)
        if head:
            parts.append(head)
        return parts

    def _field_datum(self, name: str, to: Any, kwargs: dict[str, Any]) -> Any:
        if name in kwargs:
            return to(kwargs[name])
        if name in self._default_datums:
            return self._default_datums[name]
        raise arguments.missing([name])

    def decode_call(self, data: bytes | bytearray | memoryview) -> dict[str, Any]:
        """The keyword arguments encoded in `data`, as Python values.

        A request with raw-bytes fields whose other fields are plain scalars is decoded here, without
        fastavro: each raw-bytes field is a memoryview slice of `data` (no copy), which its converter
        turns into the parameter's value (an ndarray viewing `data`, a `bytes` copy of it, ...).
        A value that does not decode as its parameter's type (bytes that are not an Arrow stream, a
        .npy array, ...) raises ArgumentError naming the parameter (also as `.parameter`).
        """
        if self._flat is not None:
            datum = _decode_flat(self._flat, data)
        else:
            datum = self.decode_datum(data)
        out = {}
        for name, _ in self._fields:
            try:
                out[name] = self._field_from[name](datum[name])
            except ArgumentError as exc:
                exc.parameter = name  # type: ignore[attr-defined]
                raise
        return out

    def defaults(self) -> dict[str, Any]:
        """Each defaulted parameter's default as a (fresh) Python value."""
        return {
            name: self._field_from[name](copy.deepcopy(datum)) for name, datum in self._default_datums.items()
        }


# field kinds of the hand-rolled request decoder
_F_BYTES, _F_LONG, _F_DOUBLE, _F_FLOAT, _F_BOOLEAN, _F_STRING, _F_NULL = range(7)
_FLAT_KINDS = {
    "int": _F_LONG,
    "long": _F_LONG,
    "double": _F_DOUBLE,
    "float": _F_FLOAT,
    "boolean": _F_BOOLEAN,
    "string": _F_STRING,
    "null": _F_NULL,
}
_RAW_LOGICALS = (None, _avro.NDARRAY, _avro.ARROW, _avro.PICKLE)
_DOUBLE = struct.Struct("<d")
_FLOAT = struct.Struct("<f")


def _flat_fields(node: Any) -> list[tuple[str, int]] | None:
    """[(field name, kind)] when every field of the record `node` is raw bytes (no logical type, or one
    of Satchel's bytes types) or a primitive scalar without a logical type; else None (fastavro
    decodes it, applying whatever logical types it knows)."""
    fields = []
    for field in node.fields:
        kind = field.node.type
        if kind == "bytes" and field.node.logical in _RAW_LOGICALS:
            fields.append((field.name, _F_BYTES))
        elif kind in _FLAT_KINDS and field.node.logical is None:
            fields.append((field.name, _FLAT_KINDS[kind]))
        else:
            return None
    return fields


def _decode_flat(fields: list[tuple[str, int]], data: Any) -> dict[str, Any]:
    """The datum of a record of flat fields (`_flat_fields`) as fastavro would decode it, except that
    bytes fields are memoryview slices of `data` rather than copies."""
    view = memoryview(data)
    if view.ndim != 1 or view.format != "B":
        view = view.cast("B")
    size = len(view)
    pos = 0
    datum: dict[str, Any] = {}
    try:
        for name, kind in fields:
            if kind == _F_BYTES or kind == _F_STRING:
                length, pos = _read_long(view, pos)
                end = pos + length
                if length < 0 or end > size:
                    raise ProtocolError(f"field {name!r}: {length} bytes announced, {size - pos} present")
                datum[name] = view[pos:end] if kind == _F_BYTES else str(view[pos:end], "utf-8")
                pos = end
            elif kind == _F_LONG:
                datum[name], pos = _read_long(view, pos)
            elif kind == _F_DOUBLE:
                (datum[name],) = _DOUBLE.unpack_from(view, pos)
                pos += 8
            elif kind == _F_FLOAT:
                (datum[name],) = _FLOAT.unpack_from(view, pos)
                pos += 4
            elif kind == _F_BOOLEAN:
                if pos >= size:
                    raise ProtocolError("truncated Avro data")
                datum[name] = view[pos] != 0
                pos += 1
            else:
                datum[name] = None
    except ProtocolError as exc:
        raise ProtocolError(f"malformed Avro data for this schema: {exc}") from None
    except (struct.error, UnicodeDecodeError) as exc:
        raise ProtocolError(f"malformed Avro data for this schema: {type(exc).__name__}: {exc}") from None
    if pos != size:
        raise ProtocolError(f"{size - pos} unexpected trailing bytes after the Avro datum")
    return datum


def _nbytes(data: Any) -> int:
    return data.nbytes if isinstance(data, memoryview) else len(data)


def _raw_size(kwargs: dict[str, Any], raw_fields: dict[str, bool]) -> int:
    """The size in bytes of the arguments of raw-bytes fields (what an ndarray or a table reports)."""
    total = 0
    for name in raw_fields:
        value = kwargs.get(name)
        if isinstance(value, (bytes, bytearray)):
            total += len(value)
        else:
            size = getattr(value, "nbytes", 0)
            total += size if isinstance(size, int) else 0
    return total


def _segments(
    request_schema: dict, fields: list[tuple[str, Any]], raw_fields: dict[str, bool]
) -> list[tuple[Any, list[tuple[str, Any]]]]:
    """The request record cut into runs: (parsed record of ordinary fields, fields) or (None, [raw field]).

    Each run of ordinary fields becomes a record of its own whose encoding is the concatenation of
    those fields' encodings (Avro records have no framing), so the runs and the raw fields, in order,
    encode the whole request. Named types a run uses are referred to by full name, all of them known
    from parsing the whole request first.
    """
    named: dict[str, Any] = {}
    fastavro.parse_schema(request_schema, named)
    namespace = _avro.namespace_of(_avro.named_fullname(request_schema, ""))
    types = {f["name"]: f["type"] for f in request_schema["fields"]}
    runs: list[tuple[Any, list[tuple[str, Any]]]] = []
    pending: list[tuple[str, Any]] = []

    def flush() -> None:
        if pending:
            schema = {
                "type": "record",
                "name": f"satchel.segment.Run{len(runs)}",
                "fields": [
                    {"name": name, "type": _by_reference(types[name], namespace)} for name, _ in pending
                ],
            }
            runs.append((fastavro.parse_schema(schema, dict(named)), list(pending)))
            pending.clear()

    for name, to in fields:
        if name in raw_fields:
            flush()
            runs.append((None, [(name, to)]))
        else:
            pending.append((name, to))
    flush()
    return runs


def _by_reference(schema: Any, namespace: str) -> Any:
    """`schema` with every named type, defined or referred to, replaced by a reference by full name."""
    if isinstance(schema, str):
        return schema if schema in _avro.PRIMITIVES else _avro.fullname(schema, namespace)
    if isinstance(schema, list):
        return [_by_reference(branch, namespace) for branch in schema]
    if isinstance(schema, dict):
        kind = schema.get("type")
        if isinstance(kind, (dict, list)):
            return _by_reference(kind, namespace)
        if kind in _avro.NAMED_TYPES:
            return _avro.named_fullname(schema, namespace)
        if kind == "array":
            return {**schema, "items": _by_reference(schema["items"], namespace)}
        if kind == "map":
            return {**schema, "values": _by_reference(schema["values"], namespace)}
        if isinstance(kind, str) and kind not in _avro.PRIMITIVES:
            return _avro.fullname(kind, namespace)
    return schema
