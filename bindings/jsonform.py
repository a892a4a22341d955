"""The JSON form of Avro datums: the one mapping the CLI, REST and people use.

| Avro                                   | JSON                                                         |
|----------------------------------------|--------------------------------------------------------------|
| null, boolean, string                  | null, true/false, string                                     |
| int, long                              | integer (an integral number such as 3.0 is accepted on input)|
| float, double                          | number; NaN and infinities as the strings "NaN", "Infinity", |
|                                        | "-Infinity"                                                  |
| bytes, fixed (incl. satchel.ndarray,   | string: standard base64 (RFC 4648 alphabet, with padding)    |
| satchel.arrow, satchel.pickle)         |                                                              |
| enum                                   | the symbol, a string                                         |
| array                                  | array                                                        |
| map                                    | object                                                       |
| record                                 | object with one member per field (on input a missing member  |
|                                        | takes the field's default; unknown members are an error)     |
| union                                  | the bare value of the branch: **not** Avro's {"type": value} |
|                                        | wrapping. On input the branch is the *first one, in schema   |
|                                        | order, whose JSON form accepts the value* (so in             |
|                                        | ["null", "string"] `null` is null; in ["string", "bytes"] a  |
|                                        | string is always the string branch)                          |
| long / timestamp-micros (and -millis)  | RFC 3339 date-time in UTC: "2024-05-01T12:30:00Z", with      |
|                                        | ".ffffff" when there are microseconds; input accepts any     |
|                                        | offset ("+02:00"), and takes a time without offset as UTC    |
| int / date                             | "YYYY-MM-DD"                                                 |
| string / satchel.decimal               | the decimal as a string ("1.10"; exact)                      |

On input, a satchel.ndarray also accepts a JSON array of numbers (nested for more dimensions), and a
satchel.arrow table (a pyarrow.Table or pandas.DataFrame) the two forms MLflow users send: records,
`[{"a": 1, "b": "x"}, ...]`, and split orient, `{"columns": ["a", "b"], "data": [[1, "x"]]}` (a
DataFrame may add `"index"`). Output is always the base64 string.

`json_schema(avro_schema)` gives the JSON Schema (draft 2020-12) of that JSON form: named types
(records, enums) go in "$defs" under their full names and are referred to with "$ref", unions
become "anyOf".

Errors are ArgumentErrors naming the JSON path ("$.rows[2].price: expected a number, ...").
"""

from __future__ import annotations

import base64
import binascii
import datetime
import decimal
import math
import re
from collections.abc import Callable
from typing import Any

from . import _avro, convert, logical
from ._avro import Converter, Node
from .convert import EPOCH, EPOCH_ORDINAL, UTC
from .mismatch import Mismatch, describe_value, fail, segment_for_field, wrap
from .walker import SchemaWalker

__all__ = [
    "JsonForm",
    "datum_to_json",
    "json_to_datum",
    "value_to_json",
    "json_to_value",
    "json_schema",
    "JSON_SCHEMA_DIALECT",
]

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

_SPECIAL_FLOATS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_DATETIME_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})?\Z"
)
_DATE_RE = re.compile(r"(\d{4})-(\d{2})-(\d{2})\Z")
_BASE64_PATTERN = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
_DECIMAL_PATTERN = r"^\s*[+-]?((\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?|[Ii]nf(inity)?|s?[Nn]a[Nn]\d*)\s*$"
_MEDIA_TYPES = {
    _avro.NDARRAY: "application/x-npy",
    _avro.ARROW: "application/vnd.apache.arrow.stream",
    _avro.PICKLE: "application/x-python-pickle",
}


def _json_describe(value: Any) -> str:
    if value is None:
        return "null"
    if value is True or value is False:
        return f"boolean {'true' if value else 'false'}"
    if isinstance(value, (int, float)):
        return f"number {value!r:.40}"
    if isinstance(value, str):
        text = repr(value)
        return f"string {text[:40] + '...' if len(text) > 43 else text}"
    if isinstance(value, list):
        return f"array of {len(value)} item(s)"
    if isinstance(value, dict):
        return "object"
    return describe_value(value)


_Fail = Callable[..., Mismatch]  # fail or _jfail: (expected, value, detail=None) -> Mismatch


def _jfail(expected: str, value: Any, detail: str | None = None) -> Mismatch:
    return fail(expected, value, detail, _json_describe)


def json_type_name(node: Node) -> str:
    """What the JSON form of a node looks like, for messages."""
    kind, special = node.type, _avro.logical_kind(node)
    if special in (_avro.TIMESTAMP_MICROS, _avro.TIMESTAMP_MILLIS):
        return "an RFC 3339 date-time string"
    if special == _avro.DATE:
        return 'a "YYYY-MM-DD" date string'
    if special == _avro.DECIMAL:
        return "a decimal number in a string"
    if kind == "null":
        return "null"
    if kind == "boolean":
        return "true or false"
    if kind in ("int", "long"):
        return "an integer"
    if kind in ("float", "double"):
        return 'a number (or "NaN", "Infinity", "-Infinity")'
    if kind == "string":
        return "a string"
    if special == _avro.NDARRAY:
        return "a JSON array of numbers, or a base64 .npy string"
    if special in (_avro.ARROW, _avro.PANDAS_PYTHON):
        return 'an array of records, a {"columns", "data"} object, or a base64 Arrow IPC stream'
    if kind in ("bytes", "fixed"):
        return "a base64 string"
    if kind == "enum":
        return (
            "one of "
            + ", ".join(f'"{s}"' for s in node.symbols[:10])
            + (", ..." if len(node.symbols) > 10 else "")
        )
    if kind == "array":
        return "an array"
    if kind in ("map", "record"):
        return "an object" if kind == "map" else f"an object ({_avro.python_type_name(node)})"
    if kind == "union":
        return " or ".join(json_type_name(b) for b in node.branches)
    return kind


def _array(item: Converter, accepts: type | tuple[type, ...], fail: _Fail, expected: str) -> Converter:
    """Converts each item of a list with `item`; a mismatch names the index."""

    def array(value: Any) -> Any:
        if not isinstance(value, accepts):
            raise fail(expected, value)
        out = []
        for index, x in enumerate(value):
            try:
                out.append(item(x))
            except Mismatch as exc:
                exc.segments.append(f"[{index}]")
                raise
        return out

    return array


def _mapping(val: Converter, fail: _Fail, expected: str) -> Converter:
    """Converts each value of a dict with `val`; a mismatch names the key."""

    def mapping(value: Any) -> Any:
        if not isinstance(value, dict):
            raise fail(expected, value)
        out = {}
        for key, x in value.items():
            try:
                out[key] = val(x)
            except Mismatch as exc:
                exc.segments.append(f"[{key!r}]")
                raise
        return out

    return mapping


# --- datetime text ----------------------------------------------------------------------------------


def format_timestamp(micros: int) -> str:
    """RFC 3339 in UTC ("Z"), with microseconds only when there are some."""
    moment = EPOCH + datetime.timedelta(microseconds=micros)
    text = (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T"
        f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
    )
    if moment.microsecond:
        text += f".{moment.microsecond:06d}"
    return text + "Z"


def parse_timestamp(text: str) -> int:
    """Microseconds since the epoch of an RFC 3339 date-time (no offset: UTC). ValueError if malformed."""
    match = _DATETIME_RE.match(text)
    if not match:
        raise ValueError("not an RFC 3339 date-time")
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    micros = int((fraction or "").ljust(6, "0")[:6])
    tz: datetime.tzinfo = UTC
    if offset and offset not in ("Z", "z"):
        sign = -1 if offset[0] == "-" else 1
        hours, minutes = int(offset[1:3]), int(offset[4:6])
        if hours > 23 or minutes > 59:
            raise ValueError("bad UTC offset")
        tz = datetime.timezone(sign * datetime.timedelta(hours=hours, minutes=minutes))
    moment = datetime.datetime(
        int(year), int(month), int(day), int(hour), int(minute), int(second), micros, tzinfo=tz
    )
    delta = moment - EPOCH
    return (delta.days * 86400 + delta.seconds) * 1000000 + delta.microseconds


def parse_date(text: str) -> int:
    match = _DATE_RE.match(text)
    if not match:
        raise ValueError("not a YYYY-MM-DD date")
    return datetime.date(int(match[1]), int(match[2]), int(match[3])).toordinal() - EPOCH_ORDINAL


# --- datum -> JSON ----------------------------------------------------------------------------------


class _ToJson(SchemaWalker):
    """Datum -> JSON form. Datums that do not fit fail with Python descriptions (`fail`)."""

    def on_null(self, node: Node) -> Converter:
        return convert.to_null

    def on_boolean(self, node: Node) -> Converter:
        return convert.to_boolean

    def on_integer(self, node: Node) -> Converter:
        expected = _datum_of(node)

        def integer(d: Any) -> Any:
            if type(d) is int:
                return d
            raise fail(expected, d)

        return integer

    def on_number(self, node: Node) -> Converter:
        expected = _datum_of(node)

        def number(d: Any) -> Any:
            if type(d) is not float:
                if isinstance(d, bool) or not isinstance(d, (int, float)):
                    raise fail(expected, d)
                d = float(d)
            if math.isfinite(d):
                return d
            return "NaN" if d != d else ("Infinity" if d > 0 else "-Infinity")

        return number

    def on_string(self, node: Node) -> Converter:
        return convert.to_string

    def on_bytes(self, node: Node) -> Converter:
        expected = _datum_of(node)

        def b64(d: Any) -> Any:
            if not isinstance(d, (bytes, bytearray, memoryview)):
                raise fail(expected, d)
            return base64.b64encode(d).decode("ascii")

        return b64

    on_fixed = on_bytes

    def on_enum(self, node: Node) -> Converter:
        expected = _datum_of(node)
        symbols = frozenset(node.symbols)

        def symbol(d: Any) -> Any:
            if isinstance(d, str) and d in symbols:
                return str(d)
            raise fail(expected, d)

        return symbol

    def on_array(self, node: Node) -> Converter:
        assert node.items is not None
        return _array(self.build(node.items), (list, tuple), fail, _datum_of(node))

    def on_map(self, node: Node) -> Converter:
        assert node.values is not None
        return _mapping(self.build(node.values), fail, _datum_of(node))

    def on_record(self, node: Node) -> Converter:
        expected = _datum_of(node)
        fields = [(f.name, self.build(f.node), segment_for_field(f.name)) for f in node.fields]

        def record(d: Any) -> Any:
            if not isinstance(d, dict):
                raise fail(expected, d)
            out = {}
            for name, conv, segment in fields:
                if name not in d:
                    raise fail(expected, d, f"missing field {name!r}")
                try:
                    out[name] = conv(d[name])
                except Mismatch as exc:
                    exc.segments.append(segment)
                    raise
            return out

        return record

    def on_union(self, node: Node) -> Converter:
        expected = _datum_of(node)
        branches = [(b.branch_name, self.build(b), convert.datum_classes(b)) for b in node.branches]
        by_name = {name: conv for name, conv, _ in branches}

        def union(d: Any) -> Any:
            if type(d) is tuple and len(d) == 2 and type(d[0]) is str and d[0] in by_name:
                return by_name[d[0]](d[1])
            first: Mismatch | None = None
            for _, conv, classes in branches:
                if classes and not isinstance(d, classes):
                    continue
                try:
                    return conv(d)
                except Mismatch as exc:
                    first = first or exc
            if first is not None and first.segments:
                raise first
            raise fail(expected, d)

        return union

    def on_timestamp(self, node: Node, unit: int) -> Converter:
        expected = _datum_of(node)
        from_datetime = convert.to_timestamp(unit)

        def timestamp(d: Any) -> Any:
            if isinstance(d, datetime.datetime):
                d = from_datetime(d)
            if type(d) is not int:
                raise fail(expected, d)
            try:
                return format_timestamp(d * unit)
            except OverflowError:
                raise fail(expected, d, "out of the range of datetime") from None

        return timestamp

    def on_date(self, node: Node) -> Converter:
        expected = _datum_of(node)

        def date(d: Any) -> Any:
            if isinstance(d, datetime.date) and not isinstance(d, datetime.datetime):
                return d.isoformat()
            if type(d) is not int:
                raise fail(expected, d)
            try:
                return datetime.date.fromordinal(EPOCH_ORDINAL + d).isoformat()
            except (OverflowError, ValueError):
                raise fail(expected, d, "out of the range of date") from None

        return date

    def on_decimal(self, node: Node) -> Converter:
        to_string = convert.to_string
        return lambda d: str(d) if isinstance(d, decimal.Decimal) else to_string(d)


def _datum_of(node: Node) -> str:
    return "a datum of " + _avro.python_type_name(node)


# --- JSON -> datum ----------------------------------------------------------------------------------


class _FromJson(SchemaWalker):
    """JSON form -> datum. Values that do not fit fail with JSON descriptions (`_jfail`)."""

    def on_null(self, node: Node) -> Converter:
        expected = json_type_name(node)

        def null(j: Any) -> Any:
            if j is None:
                return None
            raise _jfail(expected, j)

        return null

    def on_boolean(self, node: Node) -> Converter:
        expected = json_type_name(node)

        def boolean(j: Any) -> Any:
            if j is True or j is False:
                return j
            raise _jfail(expected, j)

        return boolean

    def on_integer(self, node: Node) -> Converter:
        expected, kind = json_type_name(node), node.type
        low, high = convert.LONG_RANGE if kind == "long" else convert.INT_RANGE

        def integer(j: Any) -> Any:
            if type(j) is not int:
                if type(j) is float and j.is_integer():
                    j = int(j)
                else:
                    raise _jfail(expected, j)
            if low <= j <= high:
                return j
            raise _jfail(expected, j, f"out of range for a {kind}")

        return integer

    def on_number(self, node: Node) -> Converter:
        expected = json_type_name(node)

        def number(j: Any) -> Any:
            if type(j) is float:
                return j
            if type(j) is int:
                try:
                    return float(j)
                except OverflowError:
                    raise _jfail(expected, j, "too large") from None
            if isinstance(j, str) and j in _SPECIAL_FLOATS:
                return _SPECIAL_FLOATS[j]
            raise _jfail(expected, j)

        return number

    def on_string(self, node: Node) -> Converter:
        expected = json_type_name(node)

        def string(j: Any) -> Any:
            if isinstance(j, str):
                return j
            raise _jfail(expected, j)

        return string

    def on_bytes(self, node: Node) -> Converter:
        expected = json_type_name(node)
        size = node.size if node.type == "fixed" else None

        def b64(j: Any) -> Any:
            if not isinstance(j, str):
                raise _jfail(expected, j)
            try:
                data = base64.b64decode(j, validate=True)
            except (binascii.Error, ValueError):
                raise _jfail(expected, j, "invalid base64") from None
            if size is not None and len(data) != size:
                raise _jfail(expected, j, f"{len(data)} bytes, not {size}")
            return data

        return b64

    on_fixed = on_bytes

    def on_enum(self, node: Node) -> Converter:
        expected = json_type_name(node)
        symbols = frozenset(node.symbols)

        def symbol(j: Any) -> Any:
            if isinstance(j, str) and j in symbols:
                return j
            raise _jfail(expected, j)

        return symbol

    def on_array(self, node: Node) -> Converter:
        assert node.items is not None
        return _array(self.build(node.items), list, _jfail, json_type_name(node))

    def on_map(self, node: Node) -> Converter:
        assert node.values is not None
        return _mapping(self.build(node.values), _jfail, json_type_name(node))

    def on_record(self, node: Node) -> Converter:
        expected = json_type_name(node)
        specs = [
            (f.name, self.build(f.node), convert.field_default(node, f), segment_for_field(f.name))
            for f in node.fields
        ]
        names = frozenset(f.name for f in node.fields)
        missing = convert.MISSING

        def record(j: Any) -> Any:
            if not isinstance(j, dict):
                raise _jfail(expected, j)
            out = {}
            for name, conv, default, segment in specs:
                if name in j:
                    try:
                        out[name] = conv(j[name])
                    except Mismatch as exc:
                        exc.segments.append(segment)
                        raise
                elif default is not missing:
                    out[name] = default
                else:
                    raise _jfail(expected, j, f"missing member {name!r}")
            unknown = [k for k in j if k not in names]
            if unknown:
                raise _jfail(expected, j, "unknown member(s) " + ", ".join(repr(k) for k in unknown))
            return out

        return record

    def on_union(self, node: Node) -> Converter:
        expected = json_type_name(node)
        branches = [(b.branch_name, self.build(b)) for b in node.branches]

        def union(j: Any) -> Any:
            deepest: Mismatch | None = None
            for name, conv in branches:
                try:
                    return (name, conv(j))
                except Mismatch as exc:
                    if exc.segments and (deepest is None or len(exc.segments) > len(deepest.segments)):
                        deepest = exc
            if deepest is not None:
                raise deepest
            raise _jfail(expected, j)

        return union

    def on_timestamp(self, node: Node, unit: int) -> Converter:
        expected = json_type_name(node)

        def timestamp(j: Any) -> Any:
            if not isinstance(j, str):
                raise _jfail(expected, j)
            try:
                micros = parse_timestamp(j)
            except (ValueError, OverflowError) as exc:
                raise _jfail(expected, j, str(exc)) from None
            return micros // unit

        return timestamp

    def on_date(self, node: Node) -> Converter:
        expected = json_type_name(node)

        def date(j: Any) -> Any:
            if not isinstance(j, str):
                raise _jfail(expected, j)
            try:
                return parse_date(j)
            except ValueError as exc:
                raise _jfail(expected, j, str(exc)) from None

        return date

    def on_decimal(self, node: Node) -> Converter:
        expected = json_type_name(node)

        def dec(j: Any) -> Any:
            if isinstance(j, bool) or not isinstance(j, (str, int)):
                raise _jfail(expected, j)
            try:
                return logical.encode_decimal(j)
            except ValueError:
                raise _jfail(expected, j, "not a decimal number") from None

        return dec

    def on_ndarray(self, node: Node) -> Converter:
        return _tabular(_avro.NDARRAY, self.on_bytes(node), json_type_name(node))

    def on_arrow(self, node: Node) -> Converter:
        return _tabular(_avro.ARROW, self.on_bytes(node), json_type_name(node))

    def on_dataframe(self, node: Node) -> Converter:
        return _tabular(_avro.PANDAS_PYTHON, self.on_bytes(node), json_type_name(node))


# --- arrays and tables as JSON (the forms MLflow users send) ---------------------------------------

_TABULAR = (_avro.NDARRAY, _avro.ARROW, _avro.PANDAS_PYTHON)
_SPLIT_KEYS = frozenset(("columns", "data", "index"))


def _tabular(special: str, b64: Converter, expected: str) -> Converter:
    """The JSON input of an ndarray or table: base64 bytes (`b64`), or its JSON form encoded to those bytes."""
    from_json = _ndarray_from_json if special == _avro.NDARRAY else _table_from_json

    def convert(j: Any) -> Any:
        if isinstance(j, str):
            return b64(j)
        return from_json(j, special, expected)

    return convert


def _ndarray_from_json(j: Any, special: str, expected: str) -> bytes:
    if not isinstance(j, list):
        raise _jfail(expected, j)
    np = logical.require("numpy")
    try:
        array = np.array(j)
    except (ValueError, TypeError, OverflowError) as exc:  # ragged, or too large an integer
        raise _jfail(expected, j, f"not a rectangular array of numbers: {exc}") from None
    if array.dtype.kind not in "biuf":
        raise _jfail(expected, j, "its items are not all numbers (or all booleans)")
    return logical.encode_ndarray(array)


def _table_from_json(j: Any, special: str, expected: str) -> Any:
    """The Arrow IPC stream of records (a list of objects) or a split-orient object."""
    if isinstance(j, list):
        bad = next((i for i, row in enumerate(j) if not isinstance(row, dict)), None)
        if bad is not None:
            raise _jfail(expected, j, f"record [{bad}] is not an object")
        columns, rows, index = None, j, None
    elif isinstance(j, dict):
        unknown = sorted(set(j) - _SPLIT_KEYS)
        if unknown or "data" not in j:
            what = f"unknown member(s) {', '.join(map(repr, unknown))}" if unknown else "no member 'data'"
            raise _jfail(expected, j, f"split orient takes columns, data and index: {what}")
        columns, rows, index = j.get("columns"), j["data"], j.get("index")
        if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
            raise _jfail(expected, j, "'data' must be an array of rows (arrays)")
        if columns is not None and not (
            isinstance(columns, list) and all(isinstance(c, str) for c in columns)
        ):
            raise _jfail(expected, j, "'columns' must be an array of strings")
        if index is not None and special != _avro.PANDAS_PYTHON:
            raise _jfail(expected, j, "a pyarrow.Table has no index")
    else:
        raise _jfail(expected, j)
    pa = logical.require("pyarrow")  # both need it: a DataFrame travels as Arrow
    try:
        if special == _avro.PANDAS_PYTHON:
            pd = logical.require("pandas")
            if columns is None and index is None and isinstance(j, list):
                frame = pd.DataFrame.from_records(rows) if rows else pd.DataFrame()
            else:
                frame = pd.DataFrame(rows, columns=columns, index=index)
            return logical.encode_dataframe(frame)
        if columns is None and isinstance(j, list):
            table = pa.Table.from_pylist(rows)
        else:
            names = columns if columns is not None else [f"f{i}" for i in range(len(rows[0]) if rows else 0)]
            if any(len(row) != len(names) for row in rows):
                raise ValueError(f"every row must have {len(names)} values, one per column")
            table = pa.table({name: [row[i] for row in rows] for i, name in enumerate(names)})
        return logical.encode_arrow(table)
    except (ValueError, TypeError, pa.ArrowException) as exc:
        raise _jfail(expected, j, str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None


# --- JSON Schema ------------------------------------------------------------------------------------


_RECORDS_SCHEMA = {
    "title": "records",
    "type": "array",
    "items": {"type": "object"},
    "examples": [[{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]],
}
_SPLIT_SCHEMA = {
    "title": "split orient",
    "type": "object",
    "properties": {
        "columns": {"type": "array", "items": {"type": "string"}},
        "data": {"type": "array", "items": {"type": "array"}},
        "index": {"type": "array"},
    },
    "required": ["data"],
    "additionalProperties": False,
    "examples": [{"columns": ["a", "b"], "data": [[1, "x"], [2, "y"]]}],
}
_NDARRAY_JSON_SCHEMA = {
    "title": "nested arrays of numbers",
    "type": "array",
    "examples": [[[1.0, 2.0], [3.0, 4.0]]],
}


def _tabular_schemas(special: str) -> list[dict]:
    """The JSON forms an ndarray or table parameter accepts besides base64 (see _tabular)."""
    if special == _avro.NDARRAY:
        return [_NDARRAY_JSON_SCHEMA]
    split = _SPLIT_SCHEMA
    if special == _avro.ARROW:  # a pyarrow.Table has no index
        split = dict(split, properties={k: v for k, v in split["properties"].items() if k != "index"})
    return [_RECORDS_SCHEMA, split]


class _JsonSchema(SchemaWalker):
    """The JSON Schema of each node; named types go in `defs`, referred to by "$ref"."""

    def __init__(self, ref_prefix: str, inputs: bool = True) -> None:
        super().__init__()
        self.ref_prefix = ref_prefix
        self.inputs = inputs
        self.defs: dict[str, Any] = {}
        self.done: set[str] = set()

    def build(self, node: Node) -> dict:
        if node.name is None:
            return self.walk(node)
        if node.name not in self.done:
            self.done.add(node.name)
            self.defs[node.name] = self.walk(node)
        return {"$ref": self.ref_prefix + node.name}

    def on_null(self, node: Node) -> dict:
        return {"type": "null"}

    def on_boolean(self, node: Node) -> dict:
        return {"type": "boolean"}

    def on_integer(self, node: Node) -> dict:
        low, high = convert.LONG_RANGE if node.type == "long" else convert.INT_RANGE
        return {"type": "integer", "minimum": low, "maximum": high}

    def on_number(self, node: Node) -> dict:
        return {"anyOf": [{"type": "number"}, {"enum": list(_SPECIAL_FLOATS)}]}

    def on_string(self, node: Node) -> dict:
        return {"type": "string"}

    def on_bytes(self, node: Node) -> dict:
        schema = {"type": "string", "contentEncoding": "base64", "pattern": _BASE64_PATTERN}
        media = _MEDIA_TYPES.get(node.logical or "")
        if media:
            schema["contentMediaType"] = media
        return schema

    def on_array(self, node: Node) -> dict:
        assert node.items is not None
        return {"type": "array", "items": self.build(node.items)}

    def on_map(self, node: Node) -> dict:
        assert node.values is not None
        return {"type": "object", "additionalProperties": self.build(node.values)}

    def on_union(self, node: Node) -> dict:
        return {"anyOf": [self.build(b) for b in node.branches]}

    def on_timestamp(self, node: Node, unit: int) -> dict:
        return {"type": "string", "format": "date-time"}

    def on_date(self, node: Node) -> dict:
        return {"type": "string", "format": "date"}

    def on_decimal(self, node: Node) -> dict:
        return {"type": "string", "pattern": _DECIMAL_PATTERN}

    def on_ndarray(self, node: Node) -> dict:
        return self._tabular(node, _avro.NDARRAY)

    def on_arrow(self, node: Node) -> dict:
        return self._tabular(node, _avro.ARROW)

    def on_dataframe(self, node: Node) -> dict:
        return self._tabular(node, _avro.PANDAS_PYTHON)

    def _tabular(self, node: Node, special: str) -> dict:
        schema = self.on_bytes(node)
        if not self.inputs:
            return schema
        schema["title"] = "base64 " + ("of .npy bytes" if special == _avro.NDARRAY else "Arrow IPC stream")
        return {"anyOf": [*_tabular_schemas(special), schema]}

    # the named types: their definitions, under "$defs" (see build)
    def on_enum(self, node: Node) -> dict:
        return {"title": _avro.python_type_name(node), "type": "string", "enum": list(node.symbols)}

    def on_fixed(self, node: Node) -> dict:
        length = 4 * ((node.size + 2) // 3)
        return {
            "title": _avro.python_type_name(node),
            "type": "string",
            "contentEncoding": "base64",
            "pattern": _BASE64_PATTERN,
            "minLength": length,
            "maxLength": length,
        }

    def on_record(self, node: Node) -> dict:
        properties = {}
        required = []
        to_json = _ToJson()
        for f in node.fields:
            prop = self.build(f.node)
            if f.has_default:
                try:
                    default = to_json.build(f.node)(convert.default_datum(f.node, f.default))
                except (ValueError, Mismatch):
                    pass
                else:
                    prop = dict(prop, default=default)
            else:
                required.append(f.name)
            properties[f.name] = prop
        schema: dict = {"title": _avro.python_type_name(node), "type": "object", "properties": properties}
        if required:
            schema["required"] = required
        schema["additionalProperties"] = False
        return schema


# --- the API ----------------------------------------------------------------------------------------


class JsonForm:
    """The JSON form of one schema, with its converters built once."""

    def __init__(self, schema: Any, *, named: dict[str, Any] | None = None, path: str = "$") -> None:
        """`path` starts every error message: "$" (the default) for a whole document, "parameter 'n'"..."""
        self.schema = schema
        self._named = named
        self._path = path
        node = _avro.parse(schema, named=named)
        self._node = node
        self._to_json = wrap(_ToJson().build(node), path)
        self._from_json = wrap(_FromJson().build(node), path)
        self._to_datum: Converter | None = None
        self._from_datum: Converter | None = None

    def datum_to_json(self, datum: Any) -> Any:
        return self._to_json(datum)

    def json_to_datum(self, obj: Any) -> Any:
        return self._from_json(obj)

    def value_to_json(self, value: Any) -> Any:
        if self._to_datum is None:
            self._to_datum = convert.to_datum_converter(self.schema, path="value", named=self._named)
        return self._to_json(self._to_datum(value))

    def json_to_value(self, obj: Any) -> Any:
        if self._from_datum is None:
            self._from_datum = convert.from_datum_converter(self.schema, path=self._path, named=self._named)
        return self._from_datum(self._from_json(obj))

    def json_schema(self, *, ref_prefix: str = "#/$defs/", inputs: bool = True) -> dict:
        return json_schema(self.schema, ref_prefix=ref_prefix, named=self._named, inputs=inputs)


def datum_to_json(datum: Any, schema: Any, *, named: dict[str, Any] | None = None) -> Any:
    """The JSON form (JSON-able Python value) of an Avro datum of `schema`.

    `named` (see schema.named_types) defines named types `schema` refers to without defining them,
    e.g. when `schema` is one field's type taken out of a request record.
    """
    return JsonForm(schema, named=named).datum_to_json(datum)


def json_to_datum(obj: Any, schema: Any, *, named: dict[str, Any] | None = None) -> Any:
    """The Avro datum (unions in fastavro's tuple notation) of a JSON-form value; ArgumentError if it does not fit."""
    return JsonForm(schema, named=named).json_to_datum(obj)


def value_to_json(value: Any, schema: Any, *, named: dict[str, Any] | None = None) -> Any:
    """A Python value of `schema` in JSON form (convert.to_datum then datum_to_json)."""
    return JsonForm(schema, named=named).value_to_json(value)


def json_to_value(obj: Any, schema: Any, *, named: dict[str, Any] | None = None) -> Any:
    """The Python value of a JSON-form value (json_to_datum then convert.from_datum)."""
    return JsonForm(schema, named=named).json_to_value(obj)


def json_schema(
    avro_schema: Any,
    *,
    ref_prefix: str = "#/$defs/",
    named: dict[str, Any] | None = None,
    inputs: bool = True,
) -> dict:
    """The JSON Schema (draft 2020-12) of the JSON form of `avro_schema`.

    Named types are defined under "$defs" by full name and referred to as `ref_prefix + fullname`
    (pass e.g. "#/components/schemas/" and move "$defs" there to embed the result in OpenAPI).
    `inputs`: include the forms only accepted on input (ndarrays and tables as JSON, each with an
    example); False for what is written (always base64).
    """
    builder = _JsonSchema(ref_prefix, inputs)
    root = builder.build(_avro.parse(avro_schema, named=named))
    result: dict = {"$schema": JSON_SCHEMA_DIALECT}
    result.update(root)
    if builder.defs:
        result["$defs"] = builder.defs
    return result
