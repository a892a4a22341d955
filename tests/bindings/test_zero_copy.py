"""Receiving large values without avoidable copies: the flat request decoder, large bytes copies, ring
buffer reuse, and that none of it lets a value the caller holds change under it."""

from __future__ import annotations

import io
import os
import threading

import fastavro
import numpy as np
import pytest

import satchel
from satchel.bindings import _native, convert, logical
from satchel.bindings.codec import Codec, RequestCodec
from satchel.core.errors import ProtocolError
from tests.functions import arrays, pooled

NDARRAY = {"type": "bytes", "logicalType": "satchel.ndarray"}

MIXED = {
    "type": "record",
    "name": "Mixed",
    "fields": [
        {"name": "a", "type": "int"},
        {"name": "b", "type": "long"},
        {"name": "c", "type": "double"},
        {"name": "d", "type": "float"},
        {"name": "e", "type": "boolean"},
        {"name": "f", "type": "string"},
        {"name": "g", "type": "null"},
        {"name": "h", "type": "bytes"},
        {"name": "x", "type": NDARRAY},
    ],
}


def _mixed_args() -> dict:
    return {
        "a": -7,
        "b": 1 << 40,
        "c": 2.5,
        "d": 0.25,
        "e": True,
        "f": "héllo",
        "g": None,
        "h": os.urandom(100_000),
        "x": np.arange(20_000, dtype=np.float64).reshape(100, 200),
    }


def test_flat_decoder_matches_fastavro() -> None:
    codec = RequestCodec(MIXED)
    assert codec._flat is not None
    args = _mixed_args()
    data = codec.encode_call(args)
    fast = codec.decode_call(bytearray(data))
    codec._flat = None  # the fastavro path
    slow = codec.decode_call(data)
    for name in ("a", "b", "c", "d", "e", "f", "g", "h"):
        assert fast[name] == slow[name] == args[name] and type(fast[name]) is type(slow[name])
    np.testing.assert_array_equal(fast["x"], slow["x"])
    np.testing.assert_array_equal(fast["x"], args["x"])


def test_flat_decoder_only_for_flat_records() -> None:
    assert (
        RequestCodec({"type": "record", "name": "R", "fields": [{"name": "a", "type": "double"}]})._flat
        is None
    )
    unflat = {
        "type": "record",
        "name": "R",
        "fields": [
            {"name": "x", "type": "bytes"},
            {"name": "t", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        ],
    }
    assert RequestCodec(unflat)._flat is None
    union = {
        "type": "record",
        "name": "R",
        "fields": [{"name": "x", "type": "bytes"}, {"name": "o", "type": ["null", "int"]}],
    }
    assert RequestCodec(union)._flat is None


@pytest.mark.parametrize("cut", [1, 5, 50, -1])
def test_flat_decoder_rejects_malformed_data(cut: int) -> None:
    codec = RequestCodec(MIXED)
    data = codec.encode_call(_mixed_args())
    with pytest.raises(ProtocolError):
        codec.decode_call(data[:cut])
    with pytest.raises(ProtocolError, match="trailing"):
        codec.decode_call(data + b"\x00")


def test_ndarray_argument_is_a_view_of_the_received_buffer() -> None:
    codec = RequestCodec({"type": "record", "name": "R", "fields": [{"name": "x", "type": NDARRAY}]})
    array = np.random.default_rng(1).standard_normal((300, 400))
    message = bytearray(codec.encode_call({"x": array}))
    x = codec.decode_call(message)["x"]
    np.testing.assert_array_equal(x, array)
    assert np.shares_memory(x, np.frombuffer(message, dtype=np.uint8)), "no copy"
    assert x.flags.writeable, "a buffer we own gives a writable array"
    y = codec.decode_call(bytes(message))["x"]
    assert not y.flags.writeable, "an immutable buffer gives a read-only array"


def test_large_bytes_response_is_an_independent_copy() -> None:
    codec = Codec("bytes")
    size = 5 << 20
    first_data = os.urandom(size)
    message = bytearray(b"".join(bytes(memoryview(p)) for p in codec.encode_parts(first_data)))
    first = codec.decode(message)
    assert type(first) is bytes and first == first_data
    message[-1] ^= 0xFF  # the received buffer is not the value
    assert first == first_data and hash(first) == hash(first_data)
    second_data = os.urandom(size)
    second = codec.decode(bytearray(b"".join(bytes(memoryview(p)) for p in codec.encode_parts(second_data))))
    assert second == second_data and first == first_data


def test_copy_to_bytes_of_any_buffer() -> None:
    data = os.urandom(6 << 20)
    assert convert.copy_to_bytes(memoryview(data)) == data
    assert convert.copy_to_bytes(memoryview(data)[3:]) == data[3:]  # a read-only slice
    assert convert.copy_to_bytes(bytearray(data)) == data
    assert convert.copy_to_bytes(np.frombuffer(data, dtype=np.float64)) == data
    assert convert.copy_to_bytes(memoryview(data)[:10]) == data[:10]


@pytest.mark.skipif(not _native.available(), reason="the ring library is unavailable here")
def test_ring_reuses_a_receive_buffer_only_once_nothing_refers_to_it() -> None:
    from satchel.bindings.ring import Ring

    a = Ring.create(1 << 16)
    b = Ring.attach(a.name)
    try:

        def send(payload: bytes) -> threading.Thread:
            thread = threading.Thread(target=a.send, args=([payload],))
            thread.start()
            return thread

        one, two, three = (os.urandom(300_000) for _ in range(3))
        t = send(one)
        first = b.recv()
        t.join()
        view = memoryview(first)[10:20]
        first_id = id(first)
        del first
        t = send(two)
        second = b.recv()
        t.join()
        assert id(second) != first_id and bytes(view) == one[10:20], "a buffer still viewed is not reused"
        assert second == two
        del view, second
        t = send(three)
        third = b.recv()
        t.join()
        assert third == three
    finally:
        b.close()
        a.close()


def test_large_values_end_to_end(tmp_path) -> None:
    store = (tmp_path / "store").as_uri()
    with satchel.load(pooled.echo.export(name="echo", store=store)) as fn:
        values = [os.urandom(8 << 20) for _ in range(3)]
        results = [fn(v) for v in values]  # each held while the next arrives
        assert all(type(r) is bytes for r in results)
        assert results == values
        for _ in range(3):
            assert fn(values[0]) == values[0]
        assert results == values


def test_large_arrays_end_to_end(tmp_path) -> None:
    store = (tmp_path / "store").as_uri()
    with satchel.load(arrays.normalize.export(name="normalize", store=store)) as fn:
        inputs = [np.random.default_rng(i).standard_normal(1_000_000) for i in range(3)]
        results = [fn(x) for x in inputs]
        for x, y in zip(inputs, results):
            np.testing.assert_allclose(y, x / np.abs(x).max())
        assert results[0].flags.writeable
        results[0][:] = 0  # the caller's own buffer: writing to it changes nothing else
        np.testing.assert_allclose(results[1], inputs[1] / np.abs(inputs[1]).max())


def test_wire_bytes_unchanged() -> None:
    codec = RequestCodec(MIXED)
    args = _mixed_args()
    datum = {**args, "x": logical.encode_ndarray(args["x"])}
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(MIXED), datum)
    assert codec.encode_call(args) == out.getvalue()
    assert b"".join(bytes(memoryview(p).cast("B")) for p in codec.encode_call_parts(args)) == out.getvalue()
