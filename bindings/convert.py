"""Schema-driven conversion between Python values and Avro datums (what fastavro writes and reads).

`to_datum_converter(schema, path=...)` validates while it converts and raises `ArgumentError` naming
where the value went wrong ("parameter 'rows'[2].price: expected float, got str 'x'").
`from_datum_converter(schema)` turns a datum back into Python values. Both walk the schema once and
return a closure; call that closure per value.

Python values accepted for each Avro type (to_datum):

- null: None. boolean: bool (and numpy.bool_). int/long: int and other integral numbers (numpy
  integers, IntEnum) but never bool; range-checked. float/double: float, int, numpy floating
  (anything `numbers.Real` except bool). string: str. bytes: bytes, bytearray, memoryview.
- enum: a member of the Enum class, or a symbol (its member name) as str.
- array: list, tuple or any other sequence (not str/bytes), 1-d+ numpy arrays.
- map: any mapping with str keys.
- record standing for a class (attribute "python"): an instance of the class, any object with
  attributes of those names, or a dict with those keys (unknown keys are an error, missing keys take
  the field's Avro default if it has one). A tuple record (`"python": "builtins:tuple"`): a
  tuple or list of the right length.
- union: the branch is chosen from the value's Python type (exact type first, then the lenient
  conversions above; for equally good matches the first branch in the schema wins); the datum is in
  fastavro's tuple notation `(branch_name, datum)` so the branch written is exactly the one chosen.
- timestamp-micros (long): datetime; aware datetimes are converted to UTC, naive ones are taken to
  be UTC already. date (int): date (not datetime). satchel.decimal: Decimal, int, or str of a decimal.
- satchel.ndarray: numpy.ndarray. satchel.arrow: pyarrow.Table/RecordBatch, or pandas.DataFrame when
  the schema says `"python": "pandas.DataFrame"`. satchel.pickle: anything picklable.

from_datum returns: records as an instance of the class named by "python" when its module is
already imported (modules are never imported here), else a plain dict; tuple records as tuples;
enums as members (or the symbol string when the class is not loaded); timestamps as aware UTC
datetimes; dates; Decimals; numpy arrays viewing the received bytes (read-only when those are
`bytes`), pyarrow Tables and DataFrames; unpickled values. A datum read by fastavro with
`return_named_type=True` (as codec.py does) or produced by to_datum both work.

Also here: Avro's JSON encoding of field defaults (`datum_to_avro_default`, `avro_default_to_datum`).
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import math
import numbers
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from satchel.core.errors import ProtocolError, SchemaError

from . import _avro, logical
from ._avro import Converter, Node
from .mismatch import Mismatch, at, describe_value, fail, segment_for_field, wrap
from .walker import SchemaWalker

__all__ = [
    "to_datum_converter",
    "from_datum_converter",
    "datum_to_avro_default",
    "avro_default_to_datum",
    "describe_value",
]

UTC = datetime.timezone.utc
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=UTC)
EPOCH_ORDINAL = 719163  # datetime.date(1970, 1, 1).toordinal()
LONG_RANGE = (-(1 << 63), (1 << 63) - 1)
INT_RANGE = (-(1 << 31), (1 << 31) - 1)

MISSING = object()  # what field_default gives for a field without a default
_NOT_RECORDS = (str, bytes, bytearray, memoryview, int, float, complex, list, tuple, set, frozenset)


def _is_numpy_bool(value: Any) -> bool:
    cls = type(value)
    return cls.__module__ == "numpy" and cls.__name__ in ("bool_", "bool")


def _is_integral(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_sequence(value: Any) -> bool:
    if isinstance(value, (str, bytes, bytearray, memoryview, Mapping)):
        return False
    if isinstance(value, Sequence):
        return True
    return logical.is_ndarray(value) and value.ndim >= 1


def field_default(record: Node, field: _avro.Field) -> Any:
    """The datum of a record field's default, or MISSING when it has none."""
    if not field.has_default:
        return MISSING
    try:
        return default_datum(field.node, field.default)
    except ValueError as exc:
        raise SchemaError(f"bad default of field {field.name!r} of {record.name}: {exc}") from None


class _ClassRef:
    """The class a "python" attribute names, found only if its module is already imported."""

    __slots__ = ("module", "qualname", "cls")

    def __init__(self, attr: str | None) -> None:
        self.module, self.qualname = _avro.split_python(attr) if attr else ("", "")
        self.cls: type | None = None

    def get(self) -> type | None:
        if self.cls is not None:
            return self.cls
        if not self.module:
            return None
        obj: Any = sys.modules.get(self.module)
        if obj is None:
            return None
        for part in self.qualname.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                return None
        if isinstance(obj, type):
            self.cls = obj
            return obj
        return None


def to_datum_converter(schema: Any, *, path: str = "value", named: dict[str, Any] | None = None) -> Converter:
    """A function turning Python values into datums of `schema`, raising ArgumentError on a mismatch.

    `path` starts every error message ("parameter 'n'", "return value"). `named` holds definitions of
    named types `schema` refers to but does not define (when converting a part of a larger schema).
    """
    node = _avro.parse(schema, named=named)
    return wrap(_ToDatum().build(node), path)


def from_datum_converter(
    schema: Any, *, path: str = "value", named: dict[str, Any] | None = None
) -> Converter:
    """A function turning datums of `schema` (from fastavro or from to_datum) into Python values.

    Bytes that do not decode as their logical type (an Arrow stream, .npy data, a pickle, a decimal)
    raise ArgumentError naming where they are, starting with `path` ("parameter 'df': not an Arrow
    IPC stream: ...").
    """
    node = _avro.parse(schema, named=named)
    return wrap(_FromDatum().build(node), path)


# --- Python -> datum ------------------------------------------------------------------------------


class _ToDatum(SchemaWalker):
    def on_null(self, node: Node) -> Converter:
        return to_null

    def on_boolean(self, node: Node) -> Converter:
        return to_boolean

    def on_int(self, node: Node) -> Converter:
        return _integer(*INT_RANGE, 32)

    def on_long(self, node: Node) -> Converter:
        return _integer(*LONG_RANGE, 64)

    def on_number(self, node: Node) -> Converter:
        return _float

    def on_string(self, node: Node) -> Converter:
        return to_string

    def on_bytes(self, node: Node) -> Converter:
        return _bytes

    def on_fixed(self, node: Node) -> Converter:
        return _fixed(node)

    def on_enum(self, node: Node) -> Converter:
        return _enum(node)

    def on_timestamp(self, node: Node, unit: int) -> Converter:
        return to_timestamp(unit)

    def on_date(self, node: Node) -> Converter:
        return _date

    def on_decimal(self, node: Node) -> Converter:
        return _decimal

    def on_ndarray(self, node: Node) -> Converter:
        return _ndarray

    def on_arrow(self, node: Node) -> Converter:
        return _arrow

    def on_dataframe(self, node: Node) -> Converter:
        return _dataframe

    def on_pickle(self, node: Node) -> Converter:
        return _pickle

    def on_array(self, node: Node) -> Converter:
        assert node.items is not None
        item = self.build(node.items)
        expected = _avro.python_type_name(node)

        def convert(value: Any) -> Any:
            cls = type(value)
            if cls is not list and cls is not tuple and not _is_sequence(value):
                raise fail(expected, value)
            try:
                return [item(x) for x in value]
            except Mismatch:  # convert again, item by item, to say which one
                for index, x in enumerate(value):
                    at(f"[{index}]", item, x)
                raise

        return convert

    def on_map(self, node: Node) -> Converter:
        assert node.values is not None
        val = self.build(node.values)
        expected = _avro.python_type_name(node)

        def convert(value: Any) -> Any:
            if not isinstance(value, Mapping):
                raise fail(expected, value)
            try:
                return {_map_key(key, value, expected): val(x) for key, x in value.items()}
            except Mismatch:  # convert again, value by value, to say which one
                for key, x in value.items():
                    _map_key(key, value, expected)
                    at(f"[{key!r}]", val, x)
                raise

        return convert

    def on_record(self, node: Node) -> Converter:
        expected = _avro.python_type_name(node)
        specs = [
            (field.name, self.build(field.node), field_default(node, field), segment_for_field(field.name))
            for field in node.fields
        ]
        if node.python == _avro.TUPLE_PYTHON:
            return _tuple_record(specs, expected)
        names = frozenset(spec[0] for spec in specs)

        def convert(value: Any) -> Any:
            out = {}
            if isinstance(value, Mapping):
                used = 0
                for name, conv, default, segment in specs:
                    if name in value:
                        x = value[name]
                        used += 1
                    elif default is not MISSING:
                        out[name] = default
                        continue
                    else:
                        raise fail(expected, value, f"missing key {name!r}")
                    try:
                        out[name] = conv(x)
                    except Mismatch as exc:
                        exc.segments.append(segment)
                        raise
                if used != len(value):
                    unknown = ", ".join(repr(k) for k in value if k not in names)
                    raise fail(expected, value, f"unknown key(s) {unknown}")
                return out
            if value is None or (isinstance(value, _NOT_RECORDS) and not hasattr(value, "_fields")):
                raise fail(expected, value)
            for name, conv, default, segment in specs:
                x = getattr(value, name, MISSING)
                if x is MISSING:
                    if default is MISSING:
                        raise fail(expected, value, f"no attribute {name!r}")
                    out[name] = default
                    continue
                try:
                    out[name] = conv(x)
                except Mismatch as exc:
                    exc.segments.append(segment)
                    raise
            return out

        return convert

    def on_union(self, node: Node) -> Converter:
        branches = node.branches
        convs = [self.build(b) for b in branches]
        scorers = [_scorer(b) for b in branches]
        names = [b.branch_name for b in branches]
        expected = _avro.python_type_name(node)
        null_name = "null" if any(b.type == "null" for b in branches) else None
        count = len(branches)

        def convert(value: Any) -> Any:
            if value is None and null_name is not None:
                return (null_name, None)
            ranked = []
            for i in range(count):
                score = scorers[i](value)
                if score:
                    ranked.append((-score, i))
            if not ranked:
                raise fail(expected, value)
            ranked.sort()
            first: Mismatch | None = None
            for _, i in ranked:
                try:
                    return (names[i], convs[i](value))
                except Mismatch as exc:
                    if first is None:
                        first = exc
            assert first is not None
            if len(ranked) == 1 and first.segments:
                raise first
            raise fail(expected, value, first.detail if len(ranked) == 1 else None)

        return convert


def _map_key(key: Any, mapping: Any, expected: str) -> str:
    if type(key) is str:
        return key
    if isinstance(key, str):
        return str.__str__(key)
    raise fail(expected, mapping, f"key {key!r:.40} is not a str")


def _tuple_record(specs: list, expected: str) -> Converter:
    size = len(specs)

    def convert(value: Any) -> Any:
        if not isinstance(value, (tuple, list)):
            raise fail(expected, value)
        if len(value) != size:
            raise fail(expected, value, f"length {len(value)}, not {size}")
        out = {}
        for index in range(size):
            name, conv, _default, _segment = specs[index]
            try:
                out[name] = conv(value[index])
            except Mismatch as exc:
                exc.segments.append(f"[{index}]")
                raise
        return out

    return convert


def to_null(value: Any) -> Any:
    """The null datum of None (the converter of "null"; jsonform checks null datums with it too)."""
    if value is None:
        return None
    raise fail("None", value)


def to_boolean(value: Any) -> Any:
    """The boolean datum of a bool or numpy.bool_."""
    if value is True or value is False:
        return value
    if _is_numpy_bool(value):
        return bool(value)
    raise fail("bool", value)


def _integer(low: int, high: int, bits: int) -> Converter:
    def convert(value: Any) -> Any:
        if type(value) is not int:
            if not _is_integral(value) or _is_numpy_bool(value):
                raise fail("int", value)
            value = int(value)
        if low <= value <= high:
            return value
        raise fail("int", value, f"out of range for a {bits}-bit integer")

    return convert


def _float(value: Any) -> Any:
    if type(value) is float:
        return value
    if _is_real(value) and not _is_numpy_bool(value):
        try:
            return float(value)
        except OverflowError:
            raise fail("float", value, "too large for a float") from None
    raise fail("float", value)


def to_string(value: Any) -> Any:
    """The string datum of a str (a str subclass becomes a plain str)."""
    if type(value) is str:
        return value
    if isinstance(value, str):
        return str.__str__(value)
    raise fail("str", value)


def _bytes(value: Any) -> Any:
    if type(value) is bytes or type(value) is bytearray:
        return value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, memoryview):
        if value.c_contiguous:
            return value if (value.ndim == 1 and value.format == "B") else value.cast("B")
        return value.tobytes()
    raise fail("bytes", value)


def _fixed(node: Node) -> Converter:
    size = node.size
    expected = _avro.python_type_name(node)

    def convert(value: Any) -> Any:
        if isinstance(value, memoryview):
            data = value.tobytes()
        elif isinstance(value, (bytes, bytearray)):
            data = bytes(value)
        else:
            raise fail(expected, value)
        if len(data) != size:
            raise fail(expected, value, f"length {len(data)}")
        return data

    return convert


def _enum(node: Node) -> Converter:
    symbols = frozenset(node.symbols)
    ref = _ClassRef(node.python)
    expected = _avro.python_type_name(node)
    listing = ", ".join(repr(s) for s in node.symbols[:10]) + (", ..." if len(node.symbols) > 10 else "")

    def convert(value: Any) -> Any:
        if isinstance(value, enum.Enum):
            cls = ref.get()
            if cls is not None and not isinstance(value, cls):
                raise fail(expected, value)
            name = value.name
            if name in symbols:
                return name
            raise fail(expected, value, f"not one of {listing}")
        if isinstance(value, str):
            if value in symbols:
                return str.__str__(value)
            raise fail(expected, value, f"not one of {listing}")
        raise fail(expected, value)

    return convert


def to_timestamp(unit: int) -> Converter:
    """The converter of datetimes to timestamp-micros (`unit` 1) or -millis (1000) longs."""

    def convert(value: Any) -> Any:
        if not isinstance(value, datetime.datetime):
            raise fail("datetime", value)
        if value.tzinfo is None or value.utcoffset() is None:
            value = value.replace(tzinfo=UTC)
        delta = value - EPOCH
        micros = (delta.days * 86400 + delta.seconds) * 1000000 + delta.microseconds
        return micros if unit == 1 else micros // unit

    return convert


def _date(value: Any) -> Any:
    if isinstance(value, datetime.date) and not isinstance(value, datetime.datetime):
        return value.toordinal() - EPOCH_ORDINAL
    if isinstance(value, datetime.datetime):
        raise fail("date", value, "a datetime is not a date: pass .date()")
    raise fail("date", value)


def _decimal(value: Any) -> Any:
    try:
        return logical.encode_decimal(value)
    except TypeError:
        hint = "floats are inexact: pass Decimal(str(x))" if isinstance(value, float) else None
        raise fail("Decimal", value, hint) from None
    except ValueError:
        raise fail("Decimal", value, "not a decimal number") from None


def _checked_encoder(accepts: Callable[[Any], bool], encode: Converter, expected: str) -> Converter:
    """A converter of the values `accepts` recognises, by `encode`; its ValueError is a mismatch."""

    def convert(value: Any) -> Any:
        if not accepts(value):
            raise fail(expected, value)
        try:
            return encode(value)
        except ValueError as exc:
            raise Mismatch(str(exc), str(exc)) from None

    return convert


_ndarray = _checked_encoder(logical.is_ndarray, logical.encode_ndarray, "numpy.ndarray")
_dataframe = _checked_encoder(logical.is_dataframe, logical.encode_dataframe, "pandas.DataFrame")


def _arrow(value: Any) -> Any:
    if not logical.is_arrow_table(value):
        raise fail("pyarrow.Table", value)
    return logical.encode_arrow(value)  # (its errors are not turned into mismatches)


def _pickle(value: Any) -> Any:
    try:
        return logical.encode_pickle(value)
    except ValueError as exc:
        raise fail("a picklable value", value, str(exc)) from None


def _scorer(node: Node) -> Callable[[Any], int]:
    """How well a Python value fits a union branch: 3 exact type, 2 close, 1 convertible, 0 not."""
    kind, special = node.type, _avro.logical_kind(node)
    if kind == "null":
        return lambda v: 3 if v is None else 0
    if special in (_avro.TIMESTAMP_MICROS, _avro.TIMESTAMP_MILLIS):
        return lambda v: 3 if isinstance(v, datetime.datetime) else 0
    if special == _avro.DATE:
        return lambda v: 3 if isinstance(v, datetime.date) and not isinstance(v, datetime.datetime) else 0
    if special == _avro.DECIMAL:
        return lambda v: (
            3 if isinstance(v, decimal.Decimal) else (1 if _is_integral(v) or isinstance(v, str) else 0)
        )
    if special == _avro.NDARRAY:
        return lambda v: 3 if logical.is_ndarray(v) else 0
    if special == _avro.PANDAS_PYTHON:
        return lambda v: 3 if logical.is_dataframe(v) else 0
    if special == _avro.ARROW:
        return lambda v: 3 if logical.is_arrow_table(v) else 0
    if special == _avro.PICKLE:
        return lambda v: 1
    if kind == "boolean":
        return lambda v: 3 if (v is True or v is False) else (2 if _is_numpy_bool(v) else 0)
    if kind in ("int", "long"):
        return lambda v: 3 if type(v) is int else (2 if _is_integral(v) else 0)
    if kind in ("float", "double"):
        return lambda v: (
            3
            if type(v) is float
            else (2 if _is_real(v) and not _is_integral(v) else (1 if _is_integral(v) else 0))
        )
    if kind == "string":
        return lambda v: 3 if type(v) is str else (1 if isinstance(v, str) else 0)
    if kind in ("bytes", "fixed"):
        return lambda v: (
            3 if type(v) is bytes else (2 if isinstance(v, (bytes, bytearray, memoryview)) else 0)
        )
    if kind == "enum":
        symbols = frozenset(node.symbols)
        ref = _ClassRef(node.python)

        def enum_score(v: Any) -> int:
            if isinstance(v, enum.Enum):
                cls = ref.get()
                return 3 if (cls is None or isinstance(v, cls)) and v.name in symbols else 0
            return 1 if isinstance(v, str) and v in symbols else 0

        return enum_score
    if kind == "array":
        return lambda v: 3 if type(v) is list else (2 if type(v) is tuple else (1 if _is_sequence(v) else 0))
    if kind == "map":
        return lambda v: 2 if isinstance(v, Mapping) else 0
    if kind == "record":
        if node.python == _avro.TUPLE_PYTHON:
            size = len(node.fields)
            return lambda v: (
                (3 if isinstance(v, tuple) else 2) if isinstance(v, (tuple, list)) and len(v) == size else 0
            )
        names = frozenset(f.name for f in node.fields)
        required = frozenset(f.name for f in node.fields if not f.has_default)
        ref = _ClassRef(node.python)

        def record_score(v: Any) -> int:
            if isinstance(v, Mapping):
                keys = set(v)
                return 2 if keys <= names and required <= keys else 0
            if v is None or (isinstance(v, _NOT_RECORDS) and not hasattr(v, "_fields")):
                return 0
            cls = ref.get()
            if cls is not None and not issubclass(cls, dict) and isinstance(v, cls):
                return 3
            return 1 if all(hasattr(v, name) for name in required) else 0

        return record_score
    return lambda v: 0


# --- datum -> Python ------------------------------------------------------------------------------


def _identity(datum: Any) -> Any:
    return datum


class _FromDatum(SchemaWalker):
    def on_null(self, node: Node) -> Converter:
        return _identity

    on_boolean = on_integer = on_number = on_string = on_null

    def on_bytes(self, node: Node) -> Converter:
        return _from_bytes

    on_fixed = on_bytes

    def on_enum(self, node: Node) -> Converter:
        return _from_enum(node)

    def on_timestamp(self, node: Node, unit: int) -> Converter:
        return _from_timestamp(unit)

    def on_date(self, node: Node) -> Converter:
        return _from_date

    def on_decimal(self, node: Node) -> Converter:
        return _decoder(_from_decimal)

    def on_ndarray(self, node: Node) -> Converter:
        return _decoder(logical.decode_ndarray)

    def on_arrow(self, node: Node) -> Converter:
        return _decoder(logical.decode_arrow)

    def on_dataframe(self, node: Node) -> Converter:
        return _decoder(logical.decode_dataframe)

    def on_pickle(self, node: Node) -> Converter:
        return _decoder(logical.decode_pickle)

    def on_array(self, node: Node) -> Converter:
        assert node.items is not None
        item = self.build(node.items)
        if item is _identity:
            return lambda datum: datum if type(datum) is list else list(datum)

        def array(datum: Any) -> Any:
            try:
                return [item(x) for x in datum]
            except Mismatch:  # decode again, item by item, to say which one
                for index, x in enumerate(datum):
                    at(f"[{index}]", item, x)
                raise

        return array

    def on_map(self, node: Node) -> Converter:
        assert node.values is not None
        val = self.build(node.values)
        if val is _identity:
            return lambda datum: datum if type(datum) is dict else dict(datum)

        def mapping(datum: Any) -> Any:
            try:
                return {k: val(x) for k, x in datum.items()}
            except Mismatch:  # decode again, value by value, to say which one
                for k, x in datum.items():
                    at(f"[{k!r}]", val, x)
                raise

        return mapping

    def on_record(self, node: Node) -> Converter:
        fields = [(f.name, self.build(f.node)) for f in node.fields]

        def locate(datum: Any) -> None:  # decode again, field by field, to say which one fails
            for index, (name, conv) in enumerate(fields):
                segment = f"[{index}]" if node.python == _avro.TUPLE_PYTHON else segment_for_field(name)
                at(segment, conv, datum[name])

        if node.python == _avro.TUPLE_PYTHON:

            def make_tuple(datum: Any) -> Any:
                try:
                    return tuple([conv(datum[name]) for name, conv in fields])
                except Mismatch:
                    locate(datum)
                    raise

            return make_tuple
        ref = _ClassRef(node.python)
        makers: dict[type, Callable[[dict], Any]] = {}

        def convert(datum: Any) -> Any:
            try:
                values = {name: conv(datum[name]) for name, conv in fields}
            except Mismatch:
                locate(datum)
                raise
            cls = ref.get()
            if cls is None:
                return values
            make = makers.get(cls)
            if make is None:
                make = makers[cls] = _maker(cls)
            return make(values)

        return convert

    def on_union(self, node: Node) -> Converter:
        by_name: dict[str, Converter] = {}
        by_class: dict[type, Converter] = {}
        for branch in node.branches:
            conv = self.build(branch)
            by_name[branch.branch_name] = conv
            for cls in datum_classes(branch):
                by_class.setdefault(cls, conv)
        description = _avro.python_type_name(node)

        def convert(datum: Any) -> Any:
            if type(datum) is tuple and len(datum) == 2 and type(datum[0]) is str:
                conv = by_name.get(datum[0])
                if conv is not None:
                    return conv(datum[1])
            conv = by_class.get(type(datum))
            if conv is not None:
                return conv(datum)
            for cls, conv in by_class.items():
                if isinstance(datum, cls):
                    return conv(datum)
            raise ProtocolError(f"datum {describe_value(datum)} fits no branch of {description}")

        return convert


def datum_classes(node: Node) -> tuple[type, ...]:
    """Python classes a bare datum of this union branch can arrive as (from fastavro or to_datum)."""
    kind, special = node.type, _avro.logical_kind(node)
    if kind == "null":
        return (type(None),)
    if kind == "boolean":
        return (bool,)
    if special in (_avro.TIMESTAMP_MICROS, _avro.TIMESTAMP_MILLIS):
        return (datetime.datetime, int)
    if special == _avro.DATE:
        return (datetime.date, int)
    if kind in ("int", "long"):
        return (int,)
    if kind in ("float", "double"):
        return (float,)
    if kind in ("string", "enum"):
        return (str,)
    if kind in ("bytes", "fixed"):
        return (bytes, bytearray, memoryview)
    if kind == "array":
        return (list,)
    if kind in ("map", "record"):
        return (dict,)
    return ()


def _from_bytes(datum: Any) -> Any:
    return datum if type(datum) is bytes else copy_to_bytes(datum)


_LARGE_COPY = 4 << 20  # bytes: from here on copy_to_bytes avoids zero-filling and small page faults
_HUGE = 2 << 20
_bytes_api: Any = None


def copy_to_bytes(data: Any) -> bytes:
    """`bytes(data)`: the one copy a `bytes` value decoded from a received message costs.

    A large one (>= 4 MiB) is copied into a new bytes object that is not zero-filled first, whose
    memory is advised to be backed by transparent huge pages (madvise MADV_HUGEPAGE, on Linux) so it
    faults in 2 MiB at a time instead of 4 KiB, which would cost several times the copy itself.
    Elsewhere (not CPython, small values, non-contiguous buffers), `bytes(data)`.
    """
    view = data if isinstance(data, memoryview) else memoryview(data)
    size = view.nbytes
    if size < _LARGE_COPY or not view.c_contiguous:
        return bytes(view)
    api = _setup_bytes_api()
    if api is None:
        return bytes(view)
    new, madvise, ctypes = api
    if not view.readonly:
        source = ctypes.addressof((ctypes.c_char * size).from_buffer(view))
    elif type(view.obj) is bytes and size == len(view.obj):
        source = ctypes.cast(ctypes.c_char_p(view.obj), ctypes.c_void_p).value
    else:  # a read-only slice: no address to be had without the buffer API
        return bytes(view)
    out = new(None, size)
    address = ctypes.cast(ctypes.c_char_p(out), ctypes.c_void_p).value
    if madvise is not None:
        start = (address + _HUGE - 1) & ~(_HUGE - 1)
        end = (address + size) & ~(_HUGE - 1)
        if end > start:
            madvise(start, end - start, 14)  # MADV_HUGEPAGE
    ctypes.memmove(address, source, size)
    return out


def _setup_bytes_api() -> Any:
    """(PyBytes_FromStringAndSize, libc madvise or None, ctypes), or None where unavailable (not CPython)."""
    global _bytes_api
    if _bytes_api is None:
        _bytes_api = False
        try:
            import ctypes

            if sys.implementation.name != "cpython":
                return None
            new = ctypes.pythonapi.PyBytes_FromStringAndSize
            new.argtypes = [ctypes.c_void_p, ctypes.c_ssize_t]
            new.restype = ctypes.py_object
            madvise = None
            if sys.platform.startswith("linux"):
                try:
                    madvise = ctypes.CDLL(None, use_errno=True).madvise
                    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
                    madvise.restype = ctypes.c_int
                except (OSError, AttributeError):
                    madvise = None
            _bytes_api = (new, madvise, ctypes)
        except (ImportError, AttributeError, ValueError):
            pass
    return _bytes_api or None


def _from_timestamp(unit: int) -> Converter:
    def convert(datum: Any) -> Any:
        if isinstance(datum, datetime.datetime):
            return datum if datum.tzinfo is not None else datum.replace(tzinfo=UTC)
        return EPOCH + datetime.timedelta(microseconds=datum * unit)

    return convert


def _from_date(datum: Any) -> Any:
    if isinstance(datum, datetime.date):
        return datum
    return datetime.date.fromordinal(EPOCH_ORDINAL + datum)


def _from_decimal(datum: Any) -> Any:
    if isinstance(datum, decimal.Decimal):
        return datum
    return logical.decode_decimal(datum)


def _from_enum(node: Node) -> Converter:
    ref = _ClassRef(node.python)

    def convert(datum: Any) -> Any:
        cls = ref.get()
        if cls is not None and issubclass(cls, enum.Enum):
            try:
                return cls[datum]
            except KeyError:
                return datum
        return datum

    return convert


def _decoder(decode: Converter) -> Converter:
    """A logical type's decoder whose ValueError (bytes that are not what they should be) is a mismatch."""

    def convert(datum: Any) -> Any:
        try:
            return decode(datum)
        except ValueError as exc:
            raise Mismatch(str(exc), str(exc)) from None

    return convert


def _maker(cls: type) -> Callable[[dict], Any]:
    """How to build an instance of `cls` from a dict of its fields."""
    if dataclasses.is_dataclass(cls):
        init_names = frozenset(f.name for f in dataclasses.fields(cls) if f.init)

        def make_dataclass(values: dict) -> Any:
            init = {k: v for k, v in values.items() if k in init_names}
            try:
                obj = cls(**init)
            except TypeError:  # e.g. a required InitVar: fill the fields directly
                obj = cls.__new__(cls)
                init = {}
            for key, value in values.items():
                if key not in init:
                    object.__setattr__(obj, key, value)
            return obj

        return make_dataclass
    if issubclass(cls, tuple) and hasattr(cls, "_fields"):
        return lambda values: cls(**values)
    if issubclass(cls, dict) and hasattr(cls, "__total__"):  # TypedDict: plain dicts
        optional = _avro.typeddict_optional_keys(cls)
        if not optional:
            return lambda values: values
        return lambda values: {k: v for k, v in values.items() if not (v is None and k in optional)}
    return lambda values: values


# --- Avro JSON encoding of defaults ---------------------------------------------------------------


def datum_to_avro_default(datum: Any, schema: Any, *, named: dict[str, Any] | None = None) -> Any:
    """The Avro JSON encoding of `datum` as a field default (a union's default is its first branch).

    Raises ValueError when the datum cannot be a default (another union branch, a NaN, ...).
    """
    return _default_json(_avro.parse(schema, named=named), datum)


def avro_default_to_datum(value: Any, schema: Any, *, named: dict[str, Any] | None = None) -> Any:
    """The datum a field default in Avro's JSON encoding stands for. Raises ValueError if malformed."""
    return default_datum(_avro.parse(schema, named=named), value)


def _default_json(node: Node, datum: Any) -> Any:
    kind = node.type
    if kind == "union":
        first = node.branches[0] if node.branches else None
        if first is None:
            raise ValueError("an empty union has no values")
        if type(datum) is tuple and len(datum) == 2 and type(datum[0]) is str:
            name, datum = datum
            if name != first.branch_name:
                raise ValueError(
                    f"a union's default must be of its first type ({_avro.python_type_name(first)}), "
                    f"not {_avro.python_type_name(next(b for b in node.branches if b.branch_name == name))}"
                    if any(b.branch_name == name for b in node.branches)
                    else f"unknown union branch {name!r}"
                )
        return _default_json(first, datum)
    if kind == "null":
        if datum is not None:
            raise ValueError(f"expected None, got {describe_value(datum)}")
        return None
    if kind == "boolean":
        return bool(datum)
    if kind in ("int", "long"):
        if isinstance(datum, datetime.datetime):
            datum = to_timestamp(1000 if node.logical == _avro.TIMESTAMP_MILLIS else 1)(datum)
        elif isinstance(datum, datetime.date):
            datum = _date(datum)
        return int(datum)
    if kind in ("float", "double"):
        number = float(datum)
        if not math.isfinite(number):
            raise ValueError(f"{number} has no JSON form")
        return number
    if kind in ("string", "enum"):
        return str(datum)
    if kind in ("bytes", "fixed"):
        return bytes(datum).decode("latin-1")
    if kind == "array":
        assert node.items is not None
        return [_default_json(node.items, x) for x in datum]
    if kind == "map":
        assert node.values is not None
        return {k: _default_json(node.values, x) for k, x in datum.items()}
    if kind == "record":
        return {f.name: _default_json(f.node, datum[f.name]) for f in node.fields}
    raise ValueError(f"unsupported Avro type {kind!r}")  # pragma: no cover


def default_datum(node: Node, value: Any) -> Any:
    """The datum of `value`, a default of `node` in Avro's JSON encoding. ValueError if malformed."""
    kind = node.type
    if kind == "union":
        if not node.branches:
            raise ValueError("an empty union has no values")
        first = node.branches[0]
        return (first.branch_name, default_datum(first, value))
    if kind == "null":
        if value is not None:
            raise ValueError(f"default {value!r:.40} for null")
        return None
    if kind == "boolean":
        if not isinstance(value, bool):
            raise ValueError(f"default {value!r:.40} is not a boolean")
        return value
    if kind in ("int", "long"):
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"default {value!r:.40} is not an integer")
        return value
    if kind in ("float", "double"):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            if value in ("NaN", "Infinity", "-Infinity"):
                return float(value.replace("Infinity", "inf"))
            raise ValueError(f"default {value!r:.40} is not a number")
        return float(value)
    if kind == "string":
        if not isinstance(value, str):
            raise ValueError(f"default {value!r:.40} is not a string")
        return value
    if kind == "enum":
        if value not in node.symbols:
            raise ValueError(f"default {value!r:.40} is not a symbol of {node.name}")
        return value
    if kind in ("bytes", "fixed"):
        if not isinstance(value, str):
            raise ValueError(f"default {value!r:.40} is not a string of bytes")
        try:
            return value.encode("latin-1")
        except UnicodeEncodeError:
            raise ValueError("a bytes default may only hold characters U+0000 to U+00FF") from None
    if kind == "array":
        assert node.items is not None
        if not isinstance(value, list):
            raise ValueError(f"default {value!r:.40} is not an array")
        return [default_datum(node.items, x) for x in value]
    if kind == "map":
        assert node.values is not None
        if not isinstance(value, dict):
            raise ValueError(f"default {value!r:.40} is not an object")
        return {k: default_datum(node.values, x) for k, x in value.items()}
    if kind == "record":
        if not isinstance(value, dict):
            raise ValueError(f"default {value!r:.40} is not an object")
        out = {}
        for f in node.fields:
            if f.name in value:
                out[f.name] = default_datum(f.node, value[f.name])
            elif f.has_default:
                out[f.name] = default_datum(f.node, f.default)
            else:
                raise ValueError(f"default lacks field {f.name!r}")
        return out
    raise ValueError(f"unsupported Avro type {kind!r}")  # pragma: no cover
