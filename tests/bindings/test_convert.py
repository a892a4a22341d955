"""Python values -> Avro datums -> bytes -> Python values, for every supported type; and the errors."""

# ruff: noqa: UP007, UP045  (typing.Optional/Union spelled out on purpose: they are what is being tested)

from __future__ import annotations

import datetime
import decimal
import sys
import types
from typing import Any, Optional, Union

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from satchel.bindings import convert
from satchel.bindings.codec import Codec, RequestCodec
from satchel.bindings.schema import Param, request_schema, response_schema
from satchel.core.errors import ArgumentError, SatchelError

from .models import Color, Movie, Order, Other, Pair, Point, Row, Size, Tree

UTC = datetime.timezone.utc


def codec(annotation, **kw) -> Codec:
    return Codec(response_schema("f", annotation, **kw), path="return value")


def roundtrip(annotation, value, **kw):
    c = codec(annotation, **kw)
    data = c.encode(value)
    assert isinstance(data, bytes)
    return c.decode(data)


@pytest.mark.parametrize(
    "annotation, value",
    [
        (int, 0),
        (int, -(2**63)),
        (int, 2**63 - 1),
        (float, 1.5),
        (float, -0.0),
        (bool, True),
        (str, "héllo ☃"),
        (bytes, b"\x00\x01\xff"),
        (type(None), None),
        (list[int], [1, 2, 3]),
        (list[str], []),
        (dict[str, float], {"a": 1.0, "b": 2.5}),
        (Optional[int], None),
        (Optional[int], 7),
        (Union[int, str], "x"),
        (Union[int, str], 3),
        (tuple[int, str, float], (1, "a", 2.5)),
        (tuple[int, ...], [1, 2]),
        (list[tuple[int, str]], [(1, "a"), (2, "b")]),
        (Color, Color.BLUE),
        (Size, Size.LARGE),
        (Point, Point(1.0, 2.0, Color.GREEN)),
        (Tree, Tree(1, [Tree(2), Tree(3, [Tree(4)])])),
        (Pair, Pair(1, "x")),
        (Movie, {"title": "Alien", "year": 1979, "rating": 8.5}),
        (Movie, {"title": "Alien", "year": 1979}),
        (datetime.date, datetime.date(2024, 2, 29)),
        (datetime.date, datetime.date(1, 1, 1)),
        (datetime.datetime, datetime.datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)),
        (datetime.datetime, datetime.datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),
        (decimal.Decimal, decimal.Decimal("1.10")),
        (decimal.Decimal, decimal.Decimal("-12345678901234567890.000000000000000000001")),
        (decimal.Decimal, decimal.Decimal("1E+30")),
    ],
)
def test_roundtrip(annotation, value):
    back = roundtrip(annotation, value)
    assert back == value
    expected_type = tuple if isinstance(value, tuple) and not isinstance(value, Pair) else type(value)
    if annotation is tuple[int, ...]:
        expected_type = list
    assert type(back) is expected_type


def test_decimal_stays_exact():
    back = roundtrip(decimal.Decimal, decimal.Decimal("1.10"))
    assert str(back) == "1.10"
    assert back.as_tuple() == decimal.Decimal("1.10").as_tuple()
    assert str(roundtrip(decimal.Decimal, 3)) == "3"
    assert str(roundtrip(decimal.Decimal, "0.300")) == "0.300"


def test_nested_dataclasses_in_lists_in_maps():
    value = {
        "a": [Point(1, 2), Point(3, 4, Color.BLUE)],
        "b": [],
    }
    back = roundtrip(dict[str, list[Point]], value)
    assert back == {"a": [Point(1.0, 2.0), Point(3.0, 4.0, Color.BLUE)], "b": []}
    assert type(back["a"][0]) is Point and type(back["a"][0].x) is float


def test_frozen_dataclass_with_everything():
    order = Order(
        id=7,
        when=datetime.datetime(2024, 5, 1, 12, 30, tzinfo=UTC),
        total=decimal.Decimal("19.90"),
        rows=[Row("pen", 1.5, ["office"]), Row("ink", 18.4)],
        shipped=datetime.date(2024, 5, 2),
    )
    back = roundtrip(Order, order)
    assert back == order
    assert str(back.total) == "19.90"


def test_datetime_with_timezone_becomes_utc():
    paris = datetime.timezone(datetime.timedelta(hours=2))
    moment = datetime.datetime(2024, 6, 1, 14, 0, 0, 5, tzinfo=paris)
    back = roundtrip(datetime.datetime, moment)
    assert back == moment
    assert back.tzinfo == UTC
    assert back.hour == 12 and back.microsecond == 5


def test_naive_datetime_is_taken_as_utc():
    back = roundtrip(datetime.datetime, datetime.datetime(2024, 6, 1, 14, 0))
    assert back == datetime.datetime(2024, 6, 1, 14, 0, tzinfo=UTC)


def test_record_inputs_dict_and_attribute_objects():
    assert roundtrip(Point, {"x": 1, "y": 2}) == Point(1.0, 2.0, Color.RED)
    assert roundtrip(Point, {"x": 1}) == Point(1.0, 0.0, Color.RED)  # defaults fill missing keys
    assert roundtrip(Point, types.SimpleNamespace(x=1.0, y=2.0, color="BLUE")) == Point(1.0, 2.0, Color.BLUE)
    assert roundtrip(Point, {"x": 1, "color": "GREEN"}).color is Color.GREEN


def test_enum_by_member_or_name():
    assert roundtrip(Color, "GREEN") is Color.GREEN
    assert roundtrip(list[Color], [Color.RED, "BLUE"]) == [Color.RED, Color.BLUE]


def test_numpy_scalars_accepted():
    assert roundtrip(int, np.int64(5)) == 5
    assert type(roundtrip(int, np.uint8(5))) is int
    assert roundtrip(float, np.float32(1.5)) == 1.5
    assert roundtrip(float, 3) == 3.0
    assert type(roundtrip(float, 3)) is float
    assert roundtrip(bool, np.bool_(True)) is True
    assert roundtrip(list[float], np.arange(3, dtype=np.float64)) == [0.0, 1.0, 2.0]


def test_union_branch_follows_python_type():
    assert type(roundtrip(Union[int, float], 3)) is int
    assert type(roundtrip(Union[int, float], 3.0)) is float
    assert type(roundtrip(Union[float, int], 3)) is int
    assert roundtrip(Union[Point, Other], Other(1.0, "z")) == Other(1.0, "z")
    assert roundtrip(Union[Point, Other], Point(1.0)) == Point(1.0)
    assert roundtrip(Union[Point, Other], {"x": 1.0, "z": "q"}) == Other(1.0, "q")
    assert roundtrip(Union[str, Color], "RED") == "RED"
    assert roundtrip(Union[str, Color], Color.RED) is Color.RED
    assert roundtrip(Union[bytes, str], b"x") == b"x"
    assert roundtrip(Union[bool, int], True) is True
    assert roundtrip(Union[datetime.date, datetime.datetime], datetime.date(2020, 1, 1)) == datetime.date(
        2020, 1, 1
    )
    assert roundtrip(Optional[dict[str, int]], {"a": 1}) == {"a": 1}
    assert roundtrip(Union[tuple[int, int], list[int]], (1, 2)) == (1, 2)
    assert roundtrip(Union[tuple[int, int], list[int]], [1, 2]) == [1, 2]


# --- ndarray / arrow / pandas / pickle -------------------------------------------------------------


@pytest.mark.parametrize(
    "array",
    [
        np.arange(12, dtype=np.float64).reshape(3, 4),
        np.arange(12, dtype=np.int8).reshape(3, 4),
        np.array([True, False, True]),
        np.array([1 + 2j, 3 - 4j], dtype=np.complex128),
        np.array(["ab", "cdé"], dtype="<U3"),
        np.array(["2024-01-01", "2024-06-01"], dtype="datetime64[ns]"),
        np.arange(6, dtype=">i4").reshape(2, 3),
        np.array(3.5),  # 0-d
        np.zeros((0, 3), dtype=np.float32),
        np.arange(24, dtype=np.uint16).reshape(2, 3, 4),
        np.array([(1, 2.0), (3, 4.0)], dtype=[("a", "<i4"), ("b", "<f8")]),
    ],
    ids=lambda a: f"{a.dtype}-{a.shape}",
)
def test_ndarray_roundtrip(array):
    back = roundtrip(np.ndarray, array)
    assert isinstance(back, np.ndarray)
    assert back.dtype == array.dtype
    assert back.shape == array.shape
    np.testing.assert_array_equal(back, array)


def test_ndarray_fortran_order_and_views():
    fortran = np.asfortranarray(np.arange(12, dtype=np.float32).reshape(3, 4))
    back = roundtrip(np.ndarray, fortran)
    assert back.flags.f_contiguous and not back.flags.c_contiguous
    np.testing.assert_array_equal(back, fortran)
    strided = np.arange(20).reshape(4, 5)[::2, 1::2]
    np.testing.assert_array_equal(roundtrip(np.ndarray, strided), strided)


def test_ndarray_is_npy_and_zero_copy():
    array = np.arange(1000, dtype=np.float64)
    c = codec(np.ndarray)
    data = c.encode(array)
    import io

    buffer = io.BytesIO()
    np.save(buffer, array)
    npy = buffer.getvalue()
    assert data.endswith(npy)  # after the Avro length prefix: plain .npy bytes
    message = bytearray(data)
    back = c.decode(memoryview(message))
    assert np.shares_memory(back, np.frombuffer(message, dtype=np.uint8))


def test_object_arrays_refused():
    with pytest.raises(ArgumentError, match="return value: a numpy array of dtype object"):
        codec(np.ndarray).encode(np.array([{}, []], dtype=object))


def test_arrow_table_roundtrip():
    table = pa.table({"a": [1, 2, None], "b": ["x", "y", "z"], "c": [[1.0], [], [2.0, 3.0]]})
    back = roundtrip(pa.Table, table)
    assert isinstance(back, pa.Table)
    assert back.equals(table)
    assert back.schema == table.schema


def test_arrow_bytes_are_ipc_stream():
    table = pa.table({"a": [1, 2]})
    datum = convert.to_datum_converter({"type": "bytes", "logicalType": "satchel.arrow"})(table)
    assert pa.ipc.open_stream(pa.py_buffer(datum)).read_all().equals(table)


@pytest.mark.parametrize(
    "frame",
    [
        pd.DataFrame({"a": [1.0, 2.0], "b": ["x", "y"]}, index=pd.Index(["r1", "r2"], name="row")),
        pd.DataFrame({"a": [1, 2, 3]}, index=[10, 20, 30]),
        pd.DataFrame({"a": [1, 2]}),
        pd.DataFrame(
            {"v": [1.5, 2.5]},
            index=pd.MultiIndex.from_tuples([("a", 1), ("b", 2)], names=["k", "n"]),
        ),
        pd.DataFrame({"t": pd.to_datetime(["2024-01-01", "2024-01-02"])}, index=pd.RangeIndex(5, 7)),
    ],
)
def test_dataframe_roundtrip(frame):
    back = roundtrip(pd.DataFrame, frame)
    pd.testing.assert_frame_equal(back, frame)


def test_pickle_roundtrip():
    value = {"set": {1, 2}, "complex": 1j, "other": Other(1.0, "z")}
    assert roundtrip(Any, value, allow_pickle=True) == value
    assert roundtrip(Optional[Any], None, allow_pickle=True) is None


def test_missing_package_is_named(monkeypatch):
    data = codec(pa.Table).encode(pa.table({"a": [1]}))
    decode = codec(pa.Table).decode
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(
        SatchelError, match=r"needs pyarrow, which is not installed: pip install 'satchel\[data\]'"
    ):
        decode(data)


def test_unknown_class_module_gives_dict_and_is_not_imported():
    schema = {
        "type": "record",
        "name": "Thing",
        "namespace": "not_loaded_mod",
        "fields": [
            {"name": "a", "type": "long"},
            {
                "name": "e",
                "type": {
                    "type": "enum",
                    "name": "E",
                    "namespace": "not_loaded_mod",
                    "symbols": ["X"],
                    "python": "not_loaded_mod:E",
                },
            },
        ],
        "python": "not_loaded_mod:Thing",
    }
    c = Codec(schema)
    assert c.decode(c.encode({"a": 1, "e": "X"})) == {"a": 1, "e": "X"}
    assert "not_loaded_mod" not in sys.modules


# --- error messages ---------------------------------------------------------------------------------


class Model:
    pass


def f_schema():
    params = [
        Param("n", int),
        Param("rows", list[Row]),
        Param("tags", list[str], default=[]),
        Param("color", Color, default=Color.RED),
        Param("price", Optional[decimal.Decimal], default=None),
        Param("scores", dict[str, float], default={}),
        Param("pair", tuple[int, str], default=(1, "a")),
    ]
    return request_schema("f", params)


def call_error(**kwargs) -> str:
    c = RequestCodec(f_schema())
    arguments = {"n": 1, "rows": []}
    arguments.update(kwargs)
    with pytest.raises(ArgumentError) as info:
        c.encode_call(arguments)
    return str(info.value)


def test_wrong_scalar():
    assert call_error(n="abc") == "parameter 'n': expected int, got str 'abc'"
    assert call_error(n=True) == "parameter 'n': expected int, got bool True"
    assert call_error(n=2.5) == "parameter 'n': expected int, got float 2.5"
    assert call_error(n=2**64) == (
        "parameter 'n': expected int, got int 18446744073709551616 (out of range for a 64-bit integer)"
    )


def test_wrong_nested():
    rows = [Row("a", 1.0), Row("b", 2.0), {"name": "c", "price": "x"}]
    assert call_error(rows=rows) == "parameter 'rows'[2].price: expected float, got str 'x'"
    assert (
        call_error(rows=[Row("a", 1.0, ["t", 3])]) == "parameter 'rows'[0].tags[1]: expected str, got int 3"
    )
    assert call_error(scores={"a": 1.0, "b": None}) == "parameter 'scores'['b']: expected float, got None"
    assert call_error(pair=(1, 2)) == "parameter 'pair'[1]: expected str, got int 2"


def test_wrong_container():
    assert call_error(tags="abc") == "parameter 'tags': expected list[str], got str 'abc'"
    assert call_error(rows={"a": 1}) == "parameter 'rows': expected list[Row], got dict {'a': 1}"
    assert call_error(scores={1: 2.0}) == (
        "parameter 'scores': expected dict[str, float], got dict {1: 2.0} (key 1 is not a str)"
    )
    assert call_error(pair=(1, "a", 2)) == (
        "parameter 'pair': expected tuple[int, str], got tuple (1, 'a', 2) (length 3, not 2)"
    )


def test_wrong_record():
    assert call_error(rows=[{"name": "a", "price": 1.0, "colour": "red"}]) == (
        "parameter 'rows'[0]: expected Row, got dict {'colour': 'red', 'name': 'a', 'price': 1.0} "
        "(unknown key(s) 'colour')"
    )
    assert call_error(rows=[{"price": 1.0}]) == (
        "parameter 'rows'[0]: expected Row, got dict {'price': 1.0} (missing key 'name')"
    )
    message = call_error(rows=[Model()])
    assert message.startswith("parameter 'rows'[0]: expected Row, got tests.bindings.test_convert.Model <")
    assert message.endswith("(no attribute 'name')")


def test_wrong_enum_decimal_optional():
    assert call_error(color="PURPLE") == (
        "parameter 'color': expected Color, got str 'PURPLE' (not one of 'RED', 'GREEN', 'BLUE')"
    )
    assert call_error(color=Size.SMALL).startswith(
        "parameter 'color': expected Color, got tests.bindings.models.Size"
    )
    assert call_error(price=1.1) == "parameter 'price': expected Decimal | None, got float 1.1"
    assert call_error(price="abc") == (
        "parameter 'price': expected Decimal | None, got str 'abc' (not a decimal number)"
    )


def test_long_values_are_truncated():
    message = call_error(n="x" * 500)
    assert len(message) < 120
    assert message.startswith("parameter 'n': expected int, got str 'xxxx")


def test_missing_and_unexpected_parameters():
    c = RequestCodec(f_schema())
    with pytest.raises(ArgumentError, match="missing parameter 'rows'"):
        c.encode_call({"n": 1})
    with pytest.raises(ArgumentError, match="unknown parameter 'zzz'"):
        c.encode_call({"n": 1, "rows": [], "zzz": 2})


def test_date_is_not_datetime():
    with pytest.raises(ArgumentError, match="a datetime is not a date"):
        codec(datetime.date).encode(datetime.datetime(2020, 1, 1))
    with pytest.raises(ArgumentError, match="expected datetime, got str"):
        codec(datetime.datetime).encode("2020-01-01")


def test_named_type_referenced_inside_a_union_decodes_to_the_class():
    codec = RequestCodec(
        request_schema(
            "f",
            [
                Param("a", Point),
                Param("b", Optional[Point]),
                Param("c", Union[Color, int]),
                Param("d", Optional[Tree]),
            ],
        )
    )
    arguments = {"a": Point(1), "b": Point(2), "c": Color.BLUE, "d": Tree(1, [Tree(2)])}
    assert codec.decode_call(codec.encode_call(arguments)) == arguments
    arguments = {"a": Point(1), "b": None, "c": 5, "d": None}
    assert codec.decode_call(codec.encode_call(arguments)) == arguments


def test_none_schema():
    c = Codec("null")
    assert c.encode(None) == b""
    assert c.decode(b"") is None
    with pytest.raises(ArgumentError, match="^value: expected None, got int 1$"):
        c.encode(1)
