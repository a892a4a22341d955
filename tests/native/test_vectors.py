"""The conformance vectors in bindings/testdata/ (what a Java client checks itself against) still match
the real envelope encoder and the real ring, byte for byte."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from satchel.bindings import envelope as env
from satchel.bindings.codec import Codec, RequestCodec
from satchel.bindings.fingerprint import fingerprint64
from satchel.bindings.ring import HEADER_SIZE, SHM_DIR, Ring, read_header

TESTDATA = Path(__file__).resolve().parents[2] / "bindings" / "testdata"
ENVELOPES = json.loads((TESTDATA / "envelope_vectors.json").read_text())
RINGS = json.loads((TESTDATA / "ring_vectors.json").read_text())


def test_schemas_and_fingerprints() -> None:
    assert ENVELOPES["envelope_schema"] == env.ENVELOPE_SCHEMA
    assert ENVELOPES["envelope_schema_v2"] == env.ENVELOPE_SCHEMA_V2
    assert ENVELOPES["error_schema"] == env.ERROR_SCHEMA
    assert ENVELOPES["ready_schema"] == env.READY_SCHEMA
    prints = ENVELOPES["fingerprints"]
    assert prints["error"] == f"{env.ERROR_FINGERPRINT:016x}"
    assert prints["ready"] == f"{env.READY_FINGERPRINT:016x}"
    assert prints["double"] == f"{fingerprint64('double'):016x}"
    add = next(c for c in ENVELOPES["cases"] if c["name"].startswith("call add(a=1.5"))
    assert prints["add_request"] == f"{fingerprint64(add['request_schema']):016x}" == add["fingerprint"]


@pytest.mark.parametrize("case", ENVELOPES["cases"], ids=lambda c: c["name"])
def test_envelope_case(case: dict) -> None:
    kind = env.Kind[case["kind"]]
    assert int(kind) == case["kind_index"]
    payload = bytes.fromhex(case["payload_hex"])
    fingerprint = int(case["fingerprint"], 16)
    # the payload, from the values it stands for
    if "arguments" in case:
        codec = RequestCodec(case["request_schema"])
        assert codec.encode_call(case["arguments"]) == payload
        assert codec.fingerprint == fingerprint
        assert codec.decode_call(payload) == case["arguments"]
    if "value" in case:
        codec = Codec(case["response_schema"])
        assert codec.encode(case["value"]) == payload and codec.fingerprint == fingerprint
    if "error" in case:
        error = case["error"]
        assert env.encode_error(error["type"], error["message"], error["traceback"]) == payload
        assert env.decode_error(payload)._asdict() == case["error"]
    if "ready" in case:
        assert env.encode_ready(**case["ready"]) == payload
        assert env.decode_ready(payload)._asdict() == case["ready"]
    # the envelope around it
    context = case["context"]
    header = env.encode_header(
        kind, case["call_id"], fingerprint, case["deadline_ms"], len(payload), context=context
    )
    assert header.hex() == case["header_hex"]
    message = env.encode(
        kind,
        case["call_id"],
        payload,
        fingerprint=fingerprint,
        deadline_ms=case["deadline_ms"],
        context=context,
    )
    assert message.hex() == case["message_hex"] == case["header_hex"] + case["payload_hex"]
    decoded = env.decode(bytes.fromhex(case["message_hex"]))
    assert (decoded.version, decoded.kind, decoded.call_id) == (case["version"], kind, case["call_id"])
    assert dict(decoded.context) == context
    assert (decoded.fingerprint, decoded.deadline_ms, bytes(decoded.payload)) == (
        fingerprint,
        case["deadline_ms"],
        payload,
    )


def test_envelope_travels_unchanged_through_the_ring() -> None:
    creator = Ring.create(4096)
    worker = Ring.attach(creator.name)
    try:
        for case in ENVELOPES["cases"]:
            header, payload = bytes.fromhex(case["header_hex"]), bytes.fromhex(case["payload_hex"])
            creator.send([header, payload])
            assert worker.recv(1).hex() == case["message_hex"]
    finally:
        worker.close()
        creator.close()


def _nonzero_runs(data: bytes) -> list[dict]:
    runs, start = [], None
    for offset in range(0, len(data), 8):
        if any(data[offset : offset + 8]):
            start = offset if start is None else start
        elif start is not None:
            runs.append({"offset": start, "hex": data[start:offset].hex()})
            start = None
    if start is not None:
        runs.append({"offset": start, "hex": data[start:].hex()})
    return runs


@pytest.mark.parametrize("vector", RINGS["headers"], ids=lambda v: v["name"])
def test_fresh_segment_header(vector: dict) -> None:
    ring = Ring.create(vector["capacity"])
    try:
        path = SHM_DIR / ring.name[1:]
        assert path.stat().st_size == vector["segment_size"]
        header = bytearray(path.read_bytes()[:HEADER_SIZE])
    finally:
        ring.close()
    fields = read_header(bytes(header))
    assert fields["capacity"] == vector["capacity"] and fields["segment_size"] == vector["segment_size"]
    for masked in RINGS["masked"]:
        header[masked["offset"] : masked["offset"] + masked["size"]] = bytes(masked["size"])
    assert _nonzero_runs(bytes(header)) == vector["header_nonzero_words"]


def test_wrapped_message_bytes() -> None:
    wrap = RINGS["wrap"]
    capacity = wrap["capacity"]
    creator = Ring.create(capacity)
    worker = Ring.attach(creator.name)
    try:
        for hex_text in wrap["messages_before"][:2]:
            creator.send([bytes.fromhex(hex_text)])
            assert worker.recv(1) == bytes.fromhex(hex_text)
        filler_size = int(wrap["messages_before"][2].rsplit(" ", 2)[1])
        creator.send([b"\xee" * filler_size])
        assert worker.recv(1) == b"\xee" * filler_size
        assert struct.unpack_from("<Q", creator.segment_bytes(), 512)[0] == wrap["head_before"]
        message = bytes.fromhex(wrap["message_hex"])
        creator.send([message])
        raw = creator.segment_bytes()
        assert struct.unpack_from("<Q", raw, 512)[0] == wrap["head_after"]
        data = raw[HEADER_SIZE : HEADER_SIZE + capacity]
        assert data[wrap["data_end_offset"] :].hex() == wrap["data_end_hex"]
        assert data[: wrap["head_after"] - capacity].hex() == wrap["data_start_hex"]
        # the length prefix is split by the end of the ring: 3 bytes before it, 5 after
        prefix = data[wrap["data_end_offset"] :] + data[: 8 - (capacity - wrap["data_end_offset"])]
        assert int.from_bytes(prefix, "little") == len(message)
        assert worker.recv(1) == message
    finally:
        worker.close()
        creator.close()
