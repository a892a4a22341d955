"""Avro schemas derived from type hints: exact output for representative signatures, and the errors."""

# ruff: noqa: UP007, UP045  (typing.Optional/Union spelled out on purpose: they are what is being tested)

from __future__ import annotations

import dataclasses
import datetime
import decimal
import inspect
import math
import subprocess
import sys
import typing
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, NewType, Optional, Union

import fastavro
import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pytest

from satchel.bindings.schema import (
    Param,
    is_portable,
    named_types,
    request_schema,
    response_schema,
    signature_params,
)
from satchel.core.errors import SchemaError

from .models import Color, Movie, Pair, Point, Tree

NS = Point.__module__  # "tests.bindings.models"

COLOR = {
    "type": "enum",
    "name": "Color",
    "namespace": NS,
    "symbols": ["RED", "GREEN", "BLUE"],
    "python": f"{NS}:Color",
}
POINT = {
    "type": "record",
    "name": "Point",
    "namespace": NS,
    "fields": [
        {"name": "x", "type": "double"},
        {"name": "y", "type": "double", "default": 0.0},
        {"name": "color", "type": COLOR, "default": "RED"},
    ],
    "python": f"{NS}:Point",
}


def req(func, **kw):
    params, _ = signature_params(func)
    return request_schema(func.__name__, params, **kw)


def resp(annotation, **kw):
    return response_schema("f", annotation, **kw)


def test_primitives_and_defaults():
    def describe(
        n: int,
        suffix: str = "!",
        ratio: float = 0.5,
        flag: bool = False,
        data: bytes = b"\x00\xff",
        tags: list[str] = ["a", "b"],  # noqa: B006
        opts: Optional[dict[str, int]] = None,
        scale: float = 2,
    ) -> str: ...

    assert req(describe) == {
        "type": "record",
        "name": "describe_request",
        "fields": [
            {"name": "n", "type": "long"},
            {"name": "suffix", "type": "string", "default": "!"},
            {"name": "ratio", "type": "double", "default": 0.5},
            {"name": "flag", "type": "boolean", "default": False},
            {"name": "data", "type": "bytes", "default": "\x00\xff"},
            {"name": "tags", "type": {"type": "array", "items": "string"}, "default": ["a", "b"]},
            {"name": "opts", "type": ["null", {"type": "map", "values": "long"}], "default": None},
            {"name": "scale", "type": "double", "default": 2.0},
        ],
    }
    assert resp(str) == "string"
    assert resp(None) == "null"
    assert resp(type(None)) == "null"
    assert resp(bytearray) == "bytes"


def test_optional_and_union_ordering():
    def f(
        a: Optional[int],
        b: int | None = None,
        c: Optional[int] = 3,
        d: Union[int, str] = "x",
        e: Union[str, int] = 4,
        g: float | int = 1,
        h: Union[int, str, None] = "s",
    ) -> None: ...

    fields = {f["name"]: f for f in req(f)["fields"]}
    assert fields["a"] == {"name": "a", "type": ["null", "long"]}
    assert fields["b"] == {"name": "b", "type": ["null", "long"], "default": None}
    assert fields["c"] == {"name": "c", "type": ["long", "null"], "default": 3}
    assert fields["d"] == {"name": "d", "type": ["string", "long"], "default": "x"}
    assert fields["e"] == {"name": "e", "type": ["long", "string"], "default": 4}
    # an int default belongs to the int branch exactly, even though float accepts ints
    assert fields["g"] == {"name": "g", "type": ["long", "double"], "default": 1}
    assert fields["h"] == {"name": "h", "type": ["string", "null", "long"], "default": "s"}


def test_containers():
    assert resp(list[int]) == {"type": "array", "items": "long"}
    assert resp(Sequence[str]) == {"type": "array", "items": "string"}
    assert resp(typing.List[float]) == {"type": "array", "items": "double"}  # noqa: UP006
    assert resp(tuple[int, ...]) == {"type": "array", "items": "long"}
    assert resp(dict[str, bool]) == {"type": "map", "values": "boolean"}
    assert resp(Mapping[str, list[bytes]]) == {"type": "map", "values": {"type": "array", "items": "bytes"}}


def test_tuples_are_records_reused_by_name():
    def f(a: tuple[int, str], b: tuple[float, float], c: tuple[int, str]) -> tuple[int, str]: ...

    tuple_1 = {
        "type": "record",
        "name": "Tuple_1",
        "namespace": "satchel",
        "fields": [{"name": "_0", "type": "long"}, {"name": "_1", "type": "string"}],
        "python": "builtins:tuple",
    }
    tuple_2 = {
        "type": "record",
        "name": "Tuple_2",
        "namespace": "satchel",
        "fields": [{"name": "_0", "type": "double"}, {"name": "_1", "type": "double"}],
        "python": "builtins:tuple",
    }
    assert req(f)["fields"] == [
        {"name": "a", "type": tuple_1},
        {"name": "b", "type": tuple_2},
        {"name": "c", "type": "satchel.Tuple_1"},
    ]
    assert resp(tuple[int, str]) == tuple_1


def test_dataclass_enum_and_reuse():
    def f(p: Point, ps: list[Point], c: Color = Color.GREEN, q: Optional[Point] = None) -> Point: ...

    assert req(f)["fields"] == [
        {"name": "p", "type": POINT},
        {"name": "ps", "type": {"type": "array", "items": f"{NS}.Point"}},
        {"name": "c", "type": f"{NS}.Color", "default": "GREEN"},
        {"name": "q", "type": ["null", f"{NS}.Point"], "default": None},
    ]
    assert resp(Point) == POINT
    assert resp(Color) == COLOR


def test_recursive_dataclass():
    assert resp(Tree) == {
        "type": "record",
        "name": "Tree",
        "namespace": NS,
        "fields": [
            {"name": "value", "type": "long"},
            # default_factory=list becomes the Avro default []
            {"name": "children", "type": {"type": "array", "items": f"{NS}.Tree"}, "default": []},
        ],
        "python": f"{NS}:Tree",
    }
    fastavro.parse_schema(resp(Tree))


def test_typeddict_and_namedtuple():
    assert resp(Movie) == {
        "type": "record",
        "name": "Movie",
        "namespace": NS,
        "fields": [
            {"name": "title", "type": "string"},
            {"name": "year", "type": "long"},
            {"name": "rating", "type": ["null", "double"], "default": None},
        ],
        "python": f"{NS}:Movie",
    }
    assert resp(Pair) == {
        "type": "record",
        "name": "Pair",
        "namespace": NS,
        "fields": [{"name": "left", "type": "long"}, {"name": "right", "type": "string", "default": "r"}],
        "python": f"{NS}:Pair",
    }


def test_logical_types():
    assert resp(datetime.datetime) == {"type": "long", "logicalType": "timestamp-micros"}
    assert resp(datetime.date) == {"type": "int", "logicalType": "date"}
    assert resp(decimal.Decimal) == {"type": "string", "logicalType": "satchel.decimal"}
    assert resp(np.ndarray) == {"type": "bytes", "logicalType": "satchel.ndarray"}
    assert resp(npt.NDArray[np.float64]) == {"type": "bytes", "logicalType": "satchel.ndarray"}
    assert resp(pa.Table) == {"type": "bytes", "logicalType": "satchel.arrow"}
    assert resp(pd.DataFrame) == {
        "type": "bytes",
        "logicalType": "satchel.arrow",
        "python": "pandas.DataFrame",
    }


def test_datetime_default_and_decimal_default():
    def f(
        since: datetime.datetime = datetime.datetime(2020, 1, 1, 0, 0, 1, tzinfo=datetime.timezone.utc),
        day: datetime.date = datetime.date(1970, 1, 3),
        price: decimal.Decimal = decimal.Decimal("1.10"),
        shape: tuple[int, int] = (2, 3),
    ) -> None: ...

    defaults = {f["name"]: f["default"] for f in req(f)["fields"]}
    assert defaults == {"since": 1577836801000000, "day": 2, "price": "1.10", "shape": {"_0": 2, "_1": 3}}


def test_wrappers_are_transparent():
    UserId = NewType("UserId", int)
    assert resp(Annotated[int, "meta"]) == "long"
    assert resp(UserId) == "long"
    assert resp(Optional[Annotated[str, "x"]]) == ["null", "string"]


def test_numpy_pyarrow_pandas_recognised_without_import():
    fake_ndarray = type("ndarray", (), {"__module__": "numpy"})
    fake_table = type("Table", (), {"__module__": "pyarrow.lib"})
    fake_frame = type("DataFrame", (), {"__module__": "pandas.core.frame"})
    assert resp(fake_ndarray)["logicalType"] == "satchel.ndarray"
    assert resp(fake_table) == {"type": "bytes", "logicalType": "satchel.arrow"}
    assert resp(fake_frame)["python"] == "pandas.DataFrame"


def test_importing_bindings_does_not_import_numpy_pyarrow_pandas():
    code = (
        "import sys\n"
        "from satchel.bindings import schema, codec, convert, jsonform, envelope, fingerprint, logical\n"
        "from satchel.bindings.codec import Codec\n"
        "s = schema.response_schema('f', dict[str, list[int]])\n"
        "c = Codec(s); assert c.decode(c.encode({'a': [1]})) == {'a': [1]}\n"
        "heavy = [m for m in ('numpy', 'pyarrow', 'pandas') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_named_types_lists_definitions():
    def f(p: Point, c: Color) -> None: ...

    assert set(named_types(req(f))) == {"f_request", f"{NS}.Point", f"{NS}.Color"}


def test_request_name_is_sanitised():
    schema = request_schema("Outer.<lambda>", [Param("x", int)])
    assert schema["name"] == "Outer__lambda__request"
    fastavro.parse_schema(schema)


def test_every_schema_parses_in_fastavro():
    def f(
        a: Point,
        b: dict[str, list[Point]],
        c: Optional[Tree],
        d: tuple[int, Color],
        e: Movie,
        g: Pair,
        h: Union[Point, Tree, None] = None,
        i: list[tuple[int, str]] = [],  # noqa: B006
    ) -> dict[str, Tree]: ...

    params, ret = signature_params(f)
    fastavro.parse_schema(request_schema("f", params))
    fastavro.parse_schema(response_schema("f", ret))


# --- errors --------------------------------------------------------------------------------------------


def error_of(func, **kw) -> str:
    with pytest.raises(SchemaError) as info:
        req(func, **kw)
    return str(info.value)


def test_unannotated_parameter():
    def f(x, y: int): ...

    message = error_of(f)
    assert "parameter 'x' of f" in message
    assert "no type annotation" in message
    assert "allow_pickle=True" in message


def test_any_and_object():
    def f(x: Any): ...

    def g(y: list[object]): ...

    message = error_of(f)
    assert message.startswith("parameter 'x' of f: cannot derive an Avro schema from typing.Any")
    assert "annotate it with a supported type, or pass allow_pickle=True" in message
    message = error_of(g)
    assert "parameter 'y' of g: cannot derive an Avro schema from object (in list[object])" in message


def test_var_args_rejected():
    def f(*args: int): ...

    def g(**kwargs: int): ...

    assert "parameter 'args' of f: *args" in error_of(f)
    assert "parameter 'kwargs' of g: **kwargs" in error_of(g)
    # even with allow_pickle
    assert "**kwargs" in error_of(g, allow_pickle=True)


def test_non_str_map_keys():
    def f(m: dict[int, str]): ...

    message = error_of(f)
    assert "parameter 'm' of f" in message
    assert "dict[int, str]" in message
    assert "map keys are strings" in message


def test_unsupported_nested_in_dataclass():
    @dataclasses.dataclass
    class Box:
        content: Any

    with pytest.raises(SchemaError) as info:
        request_schema("f", [Param("b", Box)])
    message = str(info.value)
    assert "parameter 'b' of f, field" in message
    assert "Box.content" in message
    assert "typing.Any" in message


def test_bare_containers_and_classes():
    class Custom:
        pass

    def f(x: list): ...

    assert "list[int]" in error_of(f)
    with pytest.raises(SchemaError, match="parameter 'x' of g: cannot derive an Avro schema from .*Custom"):
        request_schema("g", [Param("x", Custom)])


def test_union_of_same_avro_type():
    def f(x: Union[list[int], list[str]]): ...

    message = error_of(f)
    assert "both Avro 'array'" in message


def test_unrepresentable_defaults():
    def f(x: int = "a"): ...  # type: ignore[assignment]

    def g(x: float = math.inf): ...

    message = error_of(f)
    assert message.startswith("parameter 'x' of f: its default str 'a' cannot be represented")
    assert "expected int" in message
    assert "parameter 'x' of g" in error_of(g)


def test_return_annotation():
    with pytest.raises(SchemaError, match="annotate the return type"):
        response_schema("f", inspect.Parameter.empty)
    with pytest.raises(SchemaError, match="return value of f: cannot derive an Avro schema from typing.Any"):
        response_schema("f", Any)


def test_unresolved_forward_reference():
    with pytest.raises(SchemaError, match="'Nope' is an unresolved forward reference"):
        request_schema("f", [Param("x", "Nope")])


def test_allow_pickle():
    def f(x: Any, y: list[object], z=None, w: int = 1) -> None: ...

    schema = req(f, allow_pickle=True)
    pickled = {"type": "bytes", "logicalType": "satchel.pickle"}
    assert schema["fields"][0] == {"name": "x", "type": pickled}
    assert schema["fields"][1] == {"name": "y", "type": {"type": "array", "items": pickled}}
    assert schema["fields"][2]["type"] == pickled
    assert schema["fields"][2]["default"].encode("latin-1")[:1] == b"\x80"  # a pickle
    assert not is_portable(schema)
    assert is_portable({"type": "array", "items": "long"})
    assert not is_portable(resp(dict[str, Any], allow_pickle=True))
    assert is_portable(resp(dict[str, Point]))
