"""Avro binary codecs for one schema: Python value <-> bytes (schemaless, as in the payload of a message).

`Codec(schema)` parses the schema once (fastavro.parse_schema) and builds its converters once;
`encode`/`decode` then cost one conversion and one fastavro call. `RequestCodec` is the codec of a
function's request record: it encodes already-bound keyword arguments and decodes them back, naming
parameters in its errors.

A schema that is a plain `bytes` (e.g. an ndarray return value) skips fastavro: its Avro encoding is
a length prefix followed by the bytes, and `decode` hands the converter a zero-copy slice of the
message.

Who copies what when a large value travels (`encode_parts`, `RequestCodec.encode_call_parts`): the
sending side never joins a large bytes-like or contiguous ndarray value into a new buffer. The parts
it returns are the small Avro bytes around the value (length prefixes, the `.npy` header, the other
fields) and the value's own memory, which the transport writes out part by part (`Transport.send`
takes the parts as they are); so the one copy on the sending side is the transport's own write into
its channel (the pipe's `writev`, the ring's copy into shared memory). The receiving side reads each
message into one buffer and decodes raw bytes and ndarrays as views of it (see `decode`). Values of
other types (and arrays that are not contiguous, Arrow tables, pickles) are encoded into a new
buffer first, as `encode` does; only the final join is avoided.
"""

from __future__ import annotations

import copy
import io
from typing import Any

import fastavro

from satchel.errors import ArgumentError, ProtocolError, SchemaError

from . import _avro, convert, logical
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
        self._from_datum = convert.from_datum_converter(schema)
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
        return self._from_datum(self.decode_datum(data))

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
            to = convert.to_datum_converter(json_type, path=f"parameter {field.name!r}", named=named)
            self._fields.append((field.name, to))
            self._field_from[field.name] = convert.from_datum_converter(json_type, named=named)
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
                raise ArgumentError(f"missing argument for parameter {name!r}")
        if used != len(kwargs):
            unknown = ", ".join(repr(k) for k in kwargs if k not in self._names)
            raise ArgumentError(f"unexpected argument(s) {unknown}")
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
            raise ArgumentError(f"unexpected argument(s) {', '.join(repr(k) for k in unknown)}")
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
                    raise ArgumentError(f"parameter {name!r}: {exc}") from None
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
        raise ArgumentError(f"missing argument for parameter {name!r}")

    def decode_call(self, data: bytes | bytearray | memoryview) -> dict[str, Any]:
        """The keyword arguments encoded in `data`, as Python values."""
        datum = self.decode_datum(data)
        return {name: self._field_from[name](datum[name]) for name, _ in self._fields}

    def defaults(self) -> dict[str, Any]:
        """Each defaulted parameter's default as a (fresh) Python value."""
        return {
            name: self._field_from[name](copy.deepcopy(datum)) for name, datum in self._default_datums.items()
        }


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
