"""Avro binary codecs for one schema: Python value <-> bytes (schemaless, as in the payload of a message).

`Codec(schema)` parses the schema once (fastavro.parse_schema) and builds its converters once;
`encode`/`decode` then cost one conversion and one fastavro call. `RequestCodec` is the codec of a
function's request record: it encodes already-bound keyword arguments and decodes them back, naming
parameters in its errors.

A schema that is a plain `bytes` (e.g. an ndarray return value) skips fastavro: its Avro encoding is
a length prefix followed by the bytes, and `decode` hands the converter a zero-copy slice of the
message.
"""

from __future__ import annotations

import copy
import io
from typing import Any

import fastavro

from satchel.errors import ArgumentError, ProtocolError, SchemaError

from . import _avro, convert, logical
from .fingerprint import fingerprint64

__all__ = ["Codec", "RequestCodec"]


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

    def decode_call(self, data: bytes | bytearray | memoryview) -> dict[str, Any]:
        """The keyword arguments encoded in `data`, as Python values."""
        datum = self.decode_datum(data)
        return {name: self._field_from[name](datum[name]) for name, _ in self._fields}

    def defaults(self) -> dict[str, Any]:
        """Each defaulted parameter's default as a (fresh) Python value."""
        return {
            name: self._field_from[name](copy.deepcopy(datum)) for name, datum in self._default_datums.items()
        }
