"""Avro schema fingerprints: the Parsing Canonical Form and CRC-64-AVRO (the spec's Rabin fingerprint).

Implemented from the Avro specification ("Parsing Canonical Form for Schemas", "Schema
Fingerprints") rather than taken from fastavro, so the result does not depend on its version:

- PRIMITIVES: {"type": "int"} becomes "int"; FULLNAMES: names are replaced by full names;
  STRIP: only name, type, fields, symbols, items, values and size are kept (so logicalType, doc,
  aliases, defaults and custom attributes like "python" do not change a fingerprint); ORDER: in
  that order; STRINGS: escapes replaced by the UTF-8 characters; WHITESPACE: none outside strings.
  A named type already written is written again as its quoted full name.
- `fingerprint64` is CRC-64-AVRO of the UTF-8 canonical form, returned as an unsigned int
  (the Avro spec's test values are signed Java longs: `value & 0xFFFF_FFFF_FFFF_FFFF`).

A schema may be given as the JSON-able Python value or as JSON text (a str starting with `{`, `[`
or `"`; a str such as `int` is the primitive name).
"""

from __future__ import annotations

import json
from typing import Any

from satchel.core.errors import SchemaError

from ._avro import NAMED_TYPES, PRIMITIVES, named_fullname, namespace_of
from ._avro import fullname as _fullname

__all__ = [
    "parsing_canonical_form",
    "fingerprint64",
    "fingerprint_hex",
    "crc64_avro",
    "to_signed64",
    "to_unsigned64",
]

EMPTY64 = 0xC15D213AA4D7A795
_MASK = 0xFFFFFFFFFFFFFFFF


def _make_table() -> list[int]:
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (EMPTY64 & -(fp & 1))
        table.append(fp)
    return table


_TABLE = _make_table()


def crc64_avro(data: bytes) -> int:
    """CRC-64-AVRO of `data` (unsigned)."""
    fp = EMPTY64
    table = _TABLE
    for byte in data:
        fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
    return fp


def to_signed64(value: int) -> int:
    """An unsigned 64-bit value as the signed long Avro (and Java) carry it."""
    value &= _MASK
    return value - (1 << 64) if value >= (1 << 63) else value


def to_unsigned64(value: int) -> int:
    return value & _MASK


def _load(schema: Any) -> Any:
    if isinstance(schema, str) and schema[:1] in ("{", "[", '"'):
        try:
            return json.loads(schema)
        except ValueError as exc:
            raise SchemaError(f"not a JSON Avro schema: {exc}") from None
    if isinstance(schema, str) and schema.strip()[:1] in ("{", "[", '"'):
        return _load(schema.strip())
    return schema


def _quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def parsing_canonical_form(schema: Any) -> str:
    """The Parsing Canonical Form of `schema` (a JSON-able schema or its JSON text)."""
    out: list[str] = []
    _canonical(_load(schema), "", set(), out)
    return "".join(out)


def _canonical(schema: Any, namespace: str, seen: set[str], out: list[str]) -> None:
    if isinstance(schema, str):
        out.append(_quote(schema if schema in PRIMITIVES else _fullname(schema, namespace)))
        return
    if isinstance(schema, list):
        out.append("[")
        for index, branch in enumerate(schema):
            if index:
                out.append(",")
            _canonical(branch, namespace, seen, out)
        out.append("]")
        return
    if not isinstance(schema, dict):
        raise SchemaError(f"not an Avro schema: {schema!r:.100}")
    kind = schema.get("type")
    if isinstance(kind, (dict, list)):
        _canonical(kind, namespace, seen, out)
        return
    if not isinstance(kind, str):
        raise SchemaError(f"not an Avro schema: {schema!r:.100}")
    if kind in PRIMITIVES:
        out.append(_quote(kind))
        return
    if kind in NAMED_TYPES:
        full = named_fullname(schema, namespace)
        if full in seen:
            out.append(_quote(full))
            return
        seen.add(full)
        out.append('{"name":' + _quote(full) + ',"type":' + _quote(kind))
        if kind in ("record", "error"):
            inner = namespace_of(full)
            out.append(',"fields":[')
            for index, field in enumerate(schema.get("fields") or ()):
                if index:
                    out.append(",")
                out.append('{"name":' + _quote(field["name"]) + ',"type":')
                _canonical(field["type"], inner, seen, out)
                out.append("}")
            out.append("]")
        elif kind == "enum":
            out.append(',"symbols":[' + ",".join(_quote(s) for s in schema.get("symbols") or ()) + "]")
        else:
            out.append(',"size":' + str(int(schema["size"])))
        out.append("}")
        return
    if kind == "array":
        out.append('{"type":"array","items":')
        _canonical(schema["items"], namespace, seen, out)
        out.append("}")
        return
    if kind == "map":
        out.append('{"type":"map","values":')
        _canonical(schema["values"], namespace, seen, out)
        out.append("}")
        return
    # {"type": "SomeName"}: a reference to a named type
    out.append(_quote(_fullname(kind, namespace)))


def fingerprint64(schema: Any) -> int:
    """CRC-64-AVRO of the schema's Parsing Canonical Form, as an unsigned 64-bit int."""
    return crc64_avro(parsing_canonical_form(schema).encode("utf-8"))


def fingerprint_hex(schema: Any) -> str:
    """`fingerprint64` as 16 lowercase hex digits (big-endian: the number as written)."""
    return f"{fingerprint64(schema):016x}"
