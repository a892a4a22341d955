"""The JSON form: exact shapes, round trips through real JSON text, JSON paths in errors, JSON Schema."""

# ruff: noqa: UP007, UP045  (typing.Optional/Union spelled out on purpose: they are what is being tested)

from __future__ import annotations

import base64
import datetime
import decimal
import json
import math
from typing import Any, Optional, Union

import jsonschema
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from satchel.bindings import jsonform
from satchel.bindings.convert import to_datum_converter
from satchel.bindings.jsonform import (
    JsonForm,
    datum_to_json,
    json_schema,
    json_to_datum,
    json_to_value,
    value_to_json,
)
from satchel.bindings.schema import Param, named_types, request_schema, response_schema
from satchel.core.errors import ArgumentError

from .models import Color, Movie, Order, Pair, Point, Row, Tree

UTC = datetime.timezone.utc


def schema_of(annotation, **kw):
    return response_schema("f", annotation, **kw)


def through_json(annotation, value, **kw):
    """value -> JSON text -> value, checking the JSON against the JSON Schema on the way."""
    schema = schema_of(annotation, **kw)
    form = JsonForm(schema)
    obj = form.value_to_json(value)
    text = json.dumps(obj, allow_nan=False)
    validate(json.loads(text), form.json_schema())
    return form.json_to_value(json.loads(text)), obj


def validate(instance, schema):
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    validator.validate(instance)


@pytest.mark.parametrize(
    "annotation, value, expected_json",
    [
        (int, 5, 5),
        (float, 2.5, 2.5),
        (float, math.inf, "Infinity"),
        (float, -math.inf, "-Infinity"),
        (bool, False, False),
        (str, "é", "é"),
        (bytes, b"\x00\xfe\xff", "AP7/"),
        (bytes, b"ab", "YWI="),
        (type(None), None, None),
        (Optional[int], None, None),
        (Optional[int], 4, 4),
        (Union[int, str], "x", "x"),
        (list[int], [1, 2], [1, 2]),
        (dict[str, list[float]], {"a": [1.0]}, {"a": [1.0]}),
        (tuple[int, str], (1, "a"), {"_0": 1, "_1": "a"}),
        (Color, Color.GREEN, "GREEN"),
        (Point, Point(1, 2), {"x": 1.0, "y": 2.0, "color": "RED"}),
        (Pair, Pair(3), {"left": 3, "right": "r"}),
        (Movie, {"title": "T", "year": 1}, {"title": "T", "year": 1, "rating": None}),
        (datetime.datetime, datetime.datetime(2024, 5, 1, 12, 30, tzinfo=UTC), "2024-05-01T12:30:00Z"),
        (
            datetime.datetime,
            datetime.datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
            "1969-12-31T23:59:59.999999Z",
        ),
        (datetime.datetime, datetime.datetime(1, 1, 1, tzinfo=UTC), "0001-01-01T00:00:00Z"),
        (datetime.date, datetime.date(2024, 2, 29), "2024-02-29"),
        (decimal.Decimal, decimal.Decimal("1.10"), "1.10"),
        (Tree, Tree(1, [Tree(2)]), {"value": 1, "children": [{"value": 2, "children": []}]}),
    ],
)
def test_exact_json_and_roundtrip(annotation, value, expected_json):
    back, obj = through_json(annotation, value)
    assert obj == expected_json
    assert back == value


def test_nan():
    back, obj = through_json(float, math.nan)
    assert obj == "NaN" and math.isnan(back)
    assert json_to_value("NaN", "double") != json_to_value("NaN", "double")


def test_decimal_exact():
    back, obj = through_json(decimal.Decimal, decimal.Decimal("0.1000000000000000000000000001"))
    assert obj == "0.1000000000000000000000000001"
    assert str(back) == "0.1000000000000000000000000001"


def test_order_roundtrip():
    order = Order(
        id=1,
        when=datetime.datetime(2024, 1, 1, 8, 0, 0, 250000, tzinfo=UTC),
        total=decimal.Decimal("10.50"),
        rows=[Row("a", 1.25, ["t"])],
    )
    back, obj = through_json(Order, order)
    assert back == order
    assert obj["when"] == "2024-01-01T08:00:00.250000Z"
    assert obj["shipped"] is None


def test_ndarray_arrow_dataframe_pickle_as_base64():
    array = np.arange(6, dtype=np.int16).reshape(2, 3)
    back, obj = through_json(np.ndarray, array)
    np.testing.assert_array_equal(back, array)
    assert base64.b64decode(obj).startswith(b"\x93NUMPY")

    table = pa.table({"a": [1, 2]})
    back, obj = through_json(pa.Table, table)
    assert back.equals(table)

    frame = pd.DataFrame({"a": [1.5]}, index=["r"])
    back, _ = through_json(pd.DataFrame, frame)
    pd.testing.assert_frame_equal(back, frame)

    back, _ = through_json(Any, {1, 2}, allow_pickle=True)
    assert back == {1, 2}


def test_union_is_bare_and_first_accepting_branch_wins():
    schema = ["null", "string", "bytes"]
    assert json_to_datum("YWI=", schema) == ("string", "YWI=")
    assert json_to_datum(None, schema) == ("null", None)
    assert datum_to_json(("bytes", b"ab"), schema) == "YWI="
    assert datum_to_json(b"ab", schema) == "YWI="  # a bare datum, as fastavro reads it
    assert json_to_datum("NaN", ["string", "double"]) == ("string", "NaN")
    assert json_to_datum("NaN", ["null", "double"])[0] == "double"
    assert json_to_datum(3, ["double", "long"]) == ("double", 3.0)


def test_timestamp_input_forms():
    schema = {"type": "long", "logicalType": "timestamp-micros"}
    assert json_to_datum("1970-01-01T01:00:00+01:00", schema) == 0
    assert json_to_datum("1970-01-01T00:00:01.5Z", schema) == 1_500_000
    assert json_to_datum("1970-01-01t00:00:00.0000019z", schema) == 1  # beyond microseconds: truncated
    assert json_to_datum("1970-01-01T00:00:00", schema) == 0  # no offset: UTC
    assert datum_to_json(datetime.datetime(2020, 1, 1, tzinfo=UTC), schema) == "2020-01-01T00:00:00Z"
    assert (
        datum_to_json(1, {"type": "long", "logicalType": "timestamp-millis"}) == "1970-01-01T00:00:00.001000Z"
    )


def test_integral_float_accepted_for_long():
    assert json_to_datum(3.0, "long") == 3
    with pytest.raises(ArgumentError):
        json_to_datum(3.5, "long")


def test_errors_name_the_json_path():
    request = request_schema("f", [Param("rows", list[Row]), Param("when", datetime.datetime)])
    good = {"rows": [{"name": "a", "price": 1}], "when": "2024-01-01T00:00:00Z"}
    json_to_datum(good, request)
    cases = [
        (
            {"rows": [{"name": "a", "price": 1}, {"name": "b", "price": "x"}], "when": good["when"]},
            '$.rows[1].price: expected a number (or "NaN", "Infinity", "-Infinity"), got string \'x\'',
        ),
        (
            {"rows": [], "when": "yesterday"},
            "$.when: expected an RFC 3339 date-time string, got string 'yesterday' (not an RFC 3339 date-time)",
        ),
        ({"rows": []}, "$: expected an object (f_request), got object (missing member 'when')"),
        (
            {"rows": [], "when": good["when"], "x": 1},
            "$: expected an object (f_request), got object (unknown member(s) 'x')",
        ),
        (
            {"rows": [{"name": "a", "price": 1, "tags": [1]}], "when": good["when"]},
            "$.rows[0].tags[0]: expected a string, got number 1",
        ),
    ]
    for obj, message in cases:
        with pytest.raises(ArgumentError) as info:
            json_to_datum(obj, request)
        assert str(info.value) == message
    with pytest.raises(
        ArgumentError, match=r"^\$\['k'\]: expected a base64 string, got string '\*\*' \(invalid base64\)$"
    ):
        json_to_datum({"k": "**"}, {"type": "map", "values": "bytes"})
    with pytest.raises(
        ArgumentError, match=r"^\$: expected one of \"RED\", \"GREEN\", \"BLUE\", got string 'PINK'$"
    ):
        json_to_value("PINK", schema_of(Color))


def test_value_to_json_errors_use_python_paths():
    with pytest.raises(ArgumentError, match=r"^value\[1\]: expected int, got str 'x'$"):
        value_to_json([1, "x"], schema_of(list[int]))


def test_json_missing_member_takes_default():
    assert json_to_value({"x": 1}, schema_of(Point)) == Point(1.0, 0.0, Color.RED)
    assert json_to_value({"title": "t", "year": 2}, schema_of(Movie)) == {"title": "t", "year": 2}


def test_named_parameter_for_parts_of_a_schema():
    request = request_schema("f", [Param("a", Point), Param("b", list[Point])])
    b_type = request["fields"][1]["type"]
    assert value_to_json([Point(1)], b_type, named=named_types(request)) == [
        {"x": 1.0, "y": 0.0, "color": "RED"}
    ]


def test_json_schema_exact():
    schema = request_schema(
        "f", [Param("n", int), Param("c", Color, Color.RED), Param("when", Optional[datetime.date])]
    )
    ns = Color.__module__
    assert json_schema(schema) == {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$ref": "#/$defs/f_request",
        "$defs": {
            "f_request": {
                "title": "f_request",
                "type": "object",
                "properties": {
                    "n": {"type": "integer", "minimum": -(2**63), "maximum": 2**63 - 1},
                    "c": {"$ref": f"#/$defs/{ns}.Color", "default": "RED"},
                    "when": {"anyOf": [{"type": "null"}, {"type": "string", "format": "date"}]},
                },
                "required": ["n", "when"],
                "additionalProperties": False,
            },
            f"{ns}.Color": {"title": "Color", "type": "string", "enum": ["RED", "GREEN", "BLUE"]},
        },
    }
    assert json_schema("double") == {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "anyOf": [{"type": "number"}, {"enum": ["NaN", "Infinity", "-Infinity"]}],
    }


def test_json_schema_rejects_what_the_decoder_rejects():
    form = JsonForm(schema_of(dict[str, Order]))
    js = form.json_schema()
    good = {
        "a": {
            "id": 1,
            "when": "2024-01-01T00:00:00Z",
            "total": "1.10",
            "rows": [{"name": "x", "price": "NaN", "tags": []}],
            "shipped": "2024-01-02",
        }
    }
    validate(good, js)
    form.json_to_datum(good)
    bad_documents = [
        {"a": {**good["a"], "id": "1"}},
        {"a": {**good["a"], "extra": 1}},
        {"a": {k: v for k, v in good["a"].items() if k != "rows"}},
        {"a": {**good["a"], "total": "abc"}},
        {"a": {**good["a"], "when": "2024-13-01T00:00:00Z"}},
        {"a": {**good["a"], "shipped": "2024/01/02"}},
    ]
    for bad in bad_documents:
        with pytest.raises(jsonschema.ValidationError):
            validate(bad, js)
        with pytest.raises(ArgumentError):
            form.json_to_datum(bad)


def test_json_schema_ref_prefix_for_openapi():
    js = json_schema(schema_of(Point), ref_prefix="#/components/schemas/")
    assert js["$ref"] == f"#/components/schemas/{Point.__module__}.Point"


def test_datum_from_fastavro_reader_converts():
    import io

    import fastavro

    schema = schema_of(dict[str, Union[Point, datetime.datetime, None]])
    value = {"p": Point(1), "t": datetime.datetime(2020, 1, 1, tzinfo=UTC), "n": None}
    parsed = fastavro.parse_schema(schema)
    out = io.BytesIO()
    fastavro.schemaless_writer(out, parsed, to_datum_converter(schema)(value))
    datum = fastavro.schemaless_reader(io.BytesIO(out.getvalue()), parsed, None)  # bare unions
    assert datum_to_json(datum, schema) == {
        "p": {"x": 1.0, "y": 0.0, "color": "RED"},
        "t": "2020-01-01T00:00:00Z",
        "n": None,
    }


def test_module_functions_exist():
    assert jsonform.value_to_json(Color.RED, schema_of(Color)) == "RED"
    assert jsonform.json_to_value("RED", schema_of(Color)) is Color.RED


# -- tables and arrays in the JSON forms MLflow users send ------------------------------------------------

FRAME = {"type": "bytes", "logicalType": "satchel.arrow", "python": "pandas.DataFrame"}
TABLE = {"type": "bytes", "logicalType": "satchel.arrow"}
NDARRAY = {"type": "bytes", "logicalType": "satchel.ndarray"}


def test_dataframes_from_records_and_split_orient() -> None:
    records = json_to_value([{"a": 1, "b": "x"}, {"a": 2, "b": "y"}], FRAME)
    pd.testing.assert_frame_equal(records, pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}))
    split = json_to_value({"columns": ["a", "b"], "data": [[1, "x"]], "index": ["r"]}, FRAME)
    pd.testing.assert_frame_equal(split, pd.DataFrame({"a": [1], "b": ["x"]}, index=["r"]))
    table = json_to_value({"columns": ["a"], "data": [[1], [2]]}, TABLE)
    assert table.equals(pa.table({"a": [1, 2]}))
    assert json_to_value([{"a": 1.5}], TABLE).equals(pa.table({"a": [1.5]}))


def test_arrays_from_json() -> None:
    array = json_to_value([[1, 2], [3, 4]], NDARRAY)
    assert array.shape == (2, 2) and array.tolist() == [[1, 2], [3, 4]]
    assert json_to_value([0.5, 1], NDARRAY).dtype == np.float64


@pytest.mark.parametrize(
    ("schema", "value", "fragment"),
    [
        (NDARRAY, [[1], [2, 3]], "not a rectangular array of numbers"),
        (NDARRAY, ["a"], "not all numbers"),
        (NDARRAY, "aGVsbG8=", "not .npy data"),
        (FRAME, [1, 2], "record [0] is not an object"),
        (FRAME, {"cols": ["a"]}, "unknown member(s) 'cols'"),
        (FRAME, {"columns": ["a"], "data": [[1, 2]]}, "columns"),
        (FRAME, "aGVsbG8=", "not an Arrow IPC stream"),
        (TABLE, {"columns": ["a"], "data": [[1]], "index": [0]}, "no index"),
    ],
)
def test_tables_and_arrays_that_do_not_fit_name_the_path(schema, value, fragment) -> None:
    record = {"type": "record", "name": "r", "fields": [{"name": "p", "type": schema}]}
    with pytest.raises(ArgumentError) as info:
        json_to_value({"p": value}, record)
    assert str(info.value).startswith("$.p: ") and fragment in str(info.value)


def test_json_schema_shows_each_input_form_with_an_example() -> None:
    forms = json_schema(FRAME)["anyOf"]
    assert [f["title"] for f in forms] == ["records", "split orient", "base64 Arrow IPC stream"]
    for form in forms[:-1]:
        jsonschema.validate(form["examples"][0], form)
        assert isinstance(json_to_value(form["examples"][0], FRAME), pd.DataFrame)
    array = json_schema(NDARRAY)["anyOf"][0]
    assert json_to_value(array["examples"][0], NDARRAY).shape == (2, 2)
    # what is written is only ever base64
    assert json_schema(FRAME, inputs=False)["contentEncoding"] == "base64"
    assert "anyOf" not in json_schema(NDARRAY, inputs=False)
