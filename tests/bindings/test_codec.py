"""Codec and RequestCodec: bytes on the wire, defaults, malformed input."""

# ruff: noqa: UP007, UP045  (typing.Optional/Union spelled out on purpose: they are what is being tested)

from __future__ import annotations

import datetime
import decimal
import io
from typing import Optional

import fastavro
import numpy as np
import pytest

from satchel.bindings.codec import Codec, RequestCodec
from satchel.bindings.convert import to_datum_converter
from satchel.bindings.fingerprint import fingerprint64
from satchel.bindings.schema import Param, request_schema, response_schema, signature_params
from satchel.core.errors import ArgumentError, ProtocolError, SchemaError

from .models import Color, Point, Row


def describe(
    n: int,
    rows: list[Row],
    suffix: str = "!",
    color: Color = Color.GREEN,
    origin: Optional[Point] = None,
    tags: list[str] = ["a"],  # noqa: B006
    since: datetime.date = datetime.date(2020, 1, 1),
    price: decimal.Decimal = decimal.Decimal("9.99"),
) -> str: ...


def request_codec() -> RequestCodec:
    params, _ = signature_params(describe)
    return RequestCodec(request_schema("describe", params))


def test_encode_call_matches_fastavro_and_decodes():
    codec = request_codec()
    arguments = {
        "n": 3,
        "rows": [Row("pen", 1.5, ["x"])],
        "suffix": "?",
        "color": Color.RED,
        "origin": Point(1, 2),
        "tags": [],
        "since": datetime.date(2021, 3, 4),
        "price": decimal.Decimal("0.10"),
    }
    data = codec.encode_call(arguments)
    datum = to_datum_converter(codec.schema)(arguments)
    expected = io.BytesIO()
    fastavro.schemaless_writer(expected, fastavro.parse_schema(codec.schema), datum)
    assert data == expected.getvalue()
    back = codec.decode_call(data)
    assert back == {**arguments, "origin": Point(1.0, 2.0), "rows": [Row("pen", 1.5, ["x"])]}
    assert codec.parameters == ["n", "rows", "suffix", "color", "origin", "tags", "since", "price"]


def test_defaults_and_omitted_parameters():
    codec = request_codec()
    defaults = codec.defaults()
    assert defaults == {
        "suffix": "!",
        "color": Color.GREEN,
        "origin": None,
        "tags": ["a"],
        "since": datetime.date(2020, 1, 1),
        "price": decimal.Decimal("9.99"),
    }
    defaults["tags"].append("mutated")
    assert codec.defaults()["tags"] == ["a"]  # a fresh value each time
    back = codec.decode_call(codec.encode_call({"n": 1, "rows": []}))
    assert back["suffix"] == "!" and back["color"] is Color.GREEN and back["tags"] == ["a"]


def test_fingerprint():
    codec = request_codec()
    assert codec.fingerprint == fingerprint64(codec.schema)
    assert codec.fingerprint_hex == f"{codec.fingerprint:016x}"


def test_malformed_data():
    codec = Codec(response_schema("f", dict[str, int]))
    data = codec.encode({"a": 1})
    with pytest.raises(ProtocolError):
        codec.decode(data[:-2])
    with pytest.raises(ProtocolError, match="trailing"):
        codec.decode(data + b"\x00")
    raw = Codec("bytes")
    with pytest.raises(ProtocolError):
        raw.decode(b"\x08ab")


def test_raw_bytes_schema_matches_fastavro():
    for schema, value in [
        ("bytes", b"abc"),
        ({"type": "bytes", "logicalType": "satchel.ndarray"}, np.arange(5)),
    ]:
        codec = Codec(schema)
        data = codec.encode(value)
        out = io.BytesIO()
        fastavro.schemaless_writer(out, fastavro.parse_schema(schema), to_datum_converter(schema)(value))
        assert data == out.getvalue()
        back = codec.decode(memoryview(data))
        np.testing.assert_array_equal(back, value) if isinstance(value, np.ndarray) else None
    assert Codec("bytes").decode(Codec("bytes").encode(bytearray(b"xy"))) == b"xy"
    assert type(Codec("bytes").decode(b"\x04xy")) is bytes


def test_decode_accepts_memoryview_and_bytearray():
    codec = Codec(response_schema("f", list[Point]))
    data = codec.encode([Point(1, 2)])
    assert codec.decode(memoryview(data)) == [Point(1.0, 2.0)]
    assert codec.decode(bytearray(data)) == [Point(1.0, 2.0)]


def test_request_codec_needs_a_record():
    with pytest.raises(SchemaError):
        RequestCodec("long")  # type: ignore[arg-type]
    with pytest.raises(SchemaError):
        Codec({"type": "record", "name": "R", "fields": [{"name": "a", "type": "Nope"}]})


def test_empty_request():
    codec = RequestCodec(request_schema("noargs", []))
    assert codec.encode_call({}) == b""
    assert codec.decode_call(b"") == {}
    assert codec.defaults() == {}


def test_request_with_param_helper():
    codec = RequestCodec(request_schema("f", [Param("x", int, 5)]))
    assert codec.decode_call(codec.encode_call({})) == {"x": 5}


def test_encode_parts_does_not_copy_arrays():
    codec = Codec(response_schema("f", np.ndarray))
    for array in [
        np.arange(1000.0),
        np.asfortranarray(np.arange(12).reshape(3, 4)),
        np.arange(20)[::3],
        np.array(1),
    ]:
        parts = codec.encode_parts(array)
        assert b"".join(parts) == codec.encode(array)
        np.testing.assert_array_equal(codec.decode(b"".join(parts)), array)
        if array.flags.c_contiguous or array.flags.f_contiguous:
            assert np.shares_memory(np.frombuffer(parts[-1], dtype=np.uint8), array)
    other = Codec(response_schema("f", list[int]))
    assert other.encode_parts([1, 2]) == [other.encode([1, 2])]
    with pytest.raises(ArgumentError, match="^return: a numpy array of dtype object"):
        Codec(response_schema("f", np.ndarray), path="return").encode_parts(np.array([None]))
