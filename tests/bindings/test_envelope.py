"""The envelope: hand-rolled Avro that must be byte-identical to fastavro's, and zero-copy decoding."""

from __future__ import annotations

import io

import fastavro
import pytest

from satchel.bindings import envelope as env
from satchel.bindings.fingerprint import fingerprint64, to_signed64
from satchel.core.errors import ProtocolError, RemoteError

PARSED = fastavro.parse_schema(env.ENVELOPE_SCHEMA)

CASES = [
    (env.Kind.CALL, 1, 0x7275D51A3F395C8F, 0, b"\x02\x04"),
    (env.Kind.RESULT, 2**40 + 3, 0xFFFFFFFFFFFFFFFF, 1_700_000_000_000, b"x" * 300),
    (env.Kind.ERROR, 63, 2**63, 64, b""),
    (env.Kind.READY, 0, 0, 0, b""),
    (env.Kind.STARTUP_ERROR, 2**63 - 1, 2**63 - 1, 2**63 - 1, bytes(range(256))),
    (env.Kind.SHUTDOWN, 0, 0, 0, b""),
    (env.Kind.CANCEL, 7, 1, 0, b""),
    (env.Kind.RESULT, -5, 12345, -1, b"\x00" * 70000),
]


def fastavro_bytes(kind, call_id, fingerprint, deadline_ms, payload) -> bytes:
    out = io.BytesIO()
    record = {
        "version": 1,
        "kind": kind.name,
        "call_id": call_id,
        "fingerprint": to_signed64(fingerprint),
        "deadline_ms": deadline_ms,
        "payload": payload,
    }
    fastavro.schemaless_writer(out, PARSED, record)
    return out.getvalue()


@pytest.mark.parametrize("kind, call_id, fingerprint, deadline_ms, payload", CASES)
def test_identical_to_fastavro(kind, call_id, fingerprint, deadline_ms, payload):
    header = env.encode_header(kind, call_id, fingerprint, deadline_ms, len(payload))
    ours = header + payload
    assert ours == fastavro_bytes(kind, call_id, fingerprint, deadline_ms, payload)
    assert env.encode(kind, call_id, payload, fingerprint=fingerprint, deadline_ms=deadline_ms) == ours
    parts = env.encode_parts(kind, call_id, payload, fingerprint=fingerprint, deadline_ms=deadline_ms)
    assert parts[0] == header and parts[1] is payload

    read = fastavro.schemaless_reader(io.BytesIO(ours), PARSED, None)
    assert read == {
        "version": 1,
        "kind": kind.name,
        "call_id": call_id,
        "fingerprint": to_signed64(fingerprint),
        "deadline_ms": deadline_ms,
        "payload": payload,
    }

    decoded = env.decode(ours)
    assert decoded[:6] == (1, kind, call_id, fingerprint, deadline_ms, decoded.payload)
    assert decoded.context == {}
    assert decoded.kind is kind
    assert bytes(decoded.payload) == payload


def test_decode_reads_fastavro_output():
    data = fastavro_bytes(env.Kind.CALL, 9, 2**64 - 2, 5, b"abc")
    decoded = env.decode(data)
    assert decoded.fingerprint == 2**64 - 2
    assert bytes(decoded.payload) == b"abc"


def test_payload_is_a_view_not_a_copy():
    message = bytearray(env.encode(env.Kind.RESULT, 1, b"hello world"))
    decoded = env.decode(message)
    assert isinstance(decoded.payload, memoryview)
    assert decoded.payload.obj is message
    message[-5:] = b"WORLD"
    assert bytes(decoded.payload) == b"hello WORLD"
    assert bytes(env.decode(memoryview(bytes(message))).payload) == b"hello WORLD"


def test_memoryview_payload_and_signed_fingerprint():
    payload = memoryview(b"abcdef")[1:4]
    header = env.encode_header(env.Kind.CALL, 1, -1, 0, payload.nbytes)
    assert env.encode_parts(env.Kind.CALL, 1, payload, fingerprint=-1)[0] == header
    assert env.decode(header + bytes(payload)).fingerprint == 2**64 - 1


@pytest.mark.parametrize(
    "message, error",
    [
        (b"", "truncated"),
        (b"\x02\x00\x02", "truncated"),
        (b"\x06\x00\x00\x00\x00\x00", "envelope version 3"),
        (b"\x04\x00\x00\x00\x00\x02\x02", "truncated"),  # version 2: a context block cut short
        (b"\x04\x00\x00\x00\x00\x00\x04a", "payload of 2 bytes announced, 1 bytes present"),
        (b"\x02\x0e\x00\x00\x00\x00", "unknown message kind 7"),
        (b"\x02\x00\x00\x00\x00\x06ab", "payload of 3 bytes announced, 2 bytes present"),
        (b"\x02\x00\x00\x00\x00\x02abc", "payload of 1 bytes announced, 3 bytes present"),
        (b"\x02\x00" + b"\xff" * 11, "longer than 10 bytes"),
    ],
)
def test_malformed(message, error):
    with pytest.raises(ProtocolError, match=error):
        env.decode(message)


def test_version_2_carries_a_context_and_matches_fastavro():
    context = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "k": "☃"}
    ours = env.encode(env.Kind.CALL, 3, b"abc", fingerprint=9, deadline_ms=5, context=context)
    v2 = fastavro.parse_schema(env.ENVELOPE_SCHEMA_V2)
    record = {"version": 2, "kind": "CALL", "call_id": 3, "fingerprint": 9, "deadline_ms": 5}
    record.update(context=context, payload=b"abc")
    out = io.BytesIO()
    fastavro.schemaless_writer(out, v2, record)
    assert ours == out.getvalue()
    decoded = env.decode(ours)
    assert (decoded.version, decoded.context, bytes(decoded.payload)) == (2, context, b"abc")
    # no context: version 1, byte for byte what it always was
    assert env.encode(env.Kind.CALL, 3, b"abc", context={}) == env.encode(env.Kind.CALL, 3, b"abc")
    # a block written with a negative count (followed by its size in bytes) reads the same
    negative = b"\x04\x00\x06\x12\x0a" + b"\x01\x0a" + b"\x02k\x04vv" + b"\x00" + b"\x06abc"
    assert env.decode(negative).context == {"k": "vv"}


def test_context_checks():
    with pytest.raises(ValueError, match="version 1"):
        env.encode_header(env.Kind.CALL, 0, 0, 0, 0, version=1, context={"a": "b"})
    with pytest.raises(ValueError, match="must be strings"):
        env.encode_header(env.Kind.CALL, 0, 0, 0, 0, context={"a": 1})
    with pytest.raises(ValueError, match="more than"):
        env.encode_header(env.Kind.CALL, 0, 0, 0, 0, context={"a": "x" * (env.CONTEXT_MAX_BYTES + 1)})


def test_encode_header_checks():
    with pytest.raises(ValueError):
        env.encode_header(9, 0, 0, 0, 0)
    with pytest.raises(ValueError):
        env.encode_header(env.Kind.CALL, 2**63, 0, 0, 0)
    with pytest.raises(ValueError):
        env.encode_header(env.Kind.CALL, 0, 2**64, 0, 0)


def test_error_payload_matches_fastavro():
    parsed = fastavro.parse_schema(env.ERROR_SCHEMA)
    payload = env.encode_error("ValueError", "bad ☃ value", "Traceback ...\n")
    out = io.BytesIO()
    fastavro.schemaless_writer(
        out, parsed, {"type": "ValueError", "message": "bad ☃ value", "traceback": "Traceback ...\n"}
    )
    assert payload == out.getvalue()
    info = env.decode_error(memoryview(payload))
    assert info == ("ValueError", "bad ☃ value", "Traceback ...\n")
    exc = info.to_exception()
    assert isinstance(exc, RemoteError)
    assert exc.type_name == "ValueError" and exc.message == "bad ☃ value"
    assert env.ERROR_FINGERPRINT == fingerprint64(env.ERROR_SCHEMA)


def test_encode_exception():
    try:
        raise KeyError("missing")
    except KeyError as exc:
        info = env.decode_error(env.encode_exception(exc))
    assert info.type == "KeyError"
    assert info.message == "'missing'"
    assert "Traceback" in info.traceback and "raise KeyError" in info.traceback


def test_ready_payload_matches_fastavro():
    parsed = fastavro.parse_schema(env.READY_SCHEMA)
    payload = env.encode_ready(4242, "3.11.7", "0.1.0")
    out = io.BytesIO()
    fastavro.schemaless_writer(out, parsed, {"pid": 4242, "python": "3.11.7", "satchel": "0.1.0"})
    assert payload == out.getvalue()
    assert env.decode_ready(payload) == (4242, "3.11.7", "0.1.0")
    import os
    import platform

    assert env.decode_ready(env.encode_ready(satchel="x")) == (os.getpid(), platform.python_version(), "x")
    with pytest.raises(ProtocolError):
        env.decode_ready(payload + b"\x00")


def test_kind_matches_schema_symbols():
    symbols = env.ENVELOPE_SCHEMA["fields"][1]["type"]["symbols"]
    assert symbols == ["CALL", "RESULT", "ERROR", "READY", "STARTUP_ERROR", "SHUTDOWN", "CANCEL"]
    assert [k.value for k in env.Kind] == list(range(7))
