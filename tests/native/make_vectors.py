"""Regenerate the conformance vectors in bindings/testdata/ from the real encoder and the real ring.

    python tests/native/make_vectors.py      # rewrites envelope_vectors.json and ring_vectors.json

The files are checked in; tests/native/test_vectors.py asserts that the encoder and the ring still
produce exactly these bytes. A change here is a change of the wire format: bump a version and say so
in docs/protocol.md.
"""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HERE = REPO / "bindings" / "testdata"
sys.path.insert(0, str(REPO))

ADD_REQUEST = {
    "type": "record",
    "name": "add_request",
    "fields": [{"name": "a", "type": "double"}, {"name": "b", "type": "double"}],
}
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"  # the W3C spec's example
TRACEBACK = 'Traceback (most recent call last):\n  File "textutil.py", line 37, in fail\nValueError: boom\n'


def envelope_vectors() -> dict:
    from satchel.bindings import envelope as env
    from satchel.bindings.codec import Codec, RequestCodec
    from satchel.bindings.fingerprint import fingerprint64

    request = RequestCodec(ADD_REQUEST)
    response = Codec("double")
    cases = []

    def case(
        name: str,
        kind,
        call_id: int,
        payload: bytes,
        fingerprint: int = 0,
        deadline_ms: int = 0,
        context: dict | None = None,
        **extra,
    ):
        message = env.encode(
            kind, call_id, payload, fingerprint=fingerprint, deadline_ms=deadline_ms, context=context
        )
        header = env.encode_header(kind, call_id, fingerprint, deadline_ms, len(payload), context=context)
        cases.append(
            {
                "name": name,
                "version": 2 if context else 1,
                "context": context or {},
                "kind": env.Kind(kind).name,
                "kind_index": int(kind),
                "call_id": call_id,
                "fingerprint": f"{fingerprint:016x}",
                "deadline_ms": deadline_ms,
                "payload_hex": payload.hex(),
                "header_hex": header.hex(),
                "message_hex": message.hex(),
                **extra,
            }
        )

    add_payload = request.encode_call({"a": 1.5, "b": 2.25})
    case(
        "call add(a=1.5, b=2.25)",
        env.Kind.CALL,
        1,
        add_payload,
        request.fingerprint,
        request_schema=ADD_REQUEST,
        arguments={"a": 1.5, "b": 2.25},
    )
    case(
        "call add(a=-0.5, b=1e300), call_id 300, deadline 2026-01-01T00:00:00Z",
        env.Kind.CALL,
        300,
        request.encode_call({"a": -0.5, "b": 1e300}),
        request.fingerprint,
        1767225600000,
        request_schema=ADD_REQUEST,
        arguments={"a": -0.5, "b": 1e300},
    )
    case(
        "result 3.75 of call 1",
        env.Kind.RESULT,
        1,
        response.encode(3.75),
        response.fingerprint,
        response_schema="double",
        value=3.75,
    )
    case(
        "error of call 2: ValueError boom",
        env.Kind.ERROR,
        2,
        env.encode_error("ValueError", "boom", TRACEBACK),
        error={"type": "ValueError", "message": "boom", "traceback": TRACEBACK},
    )
    case(
        "ready: pid 4242, python 3.11.7, satchel 0.1.0",
        env.Kind.READY,
        0,
        env.encode_ready(4242, "3.11.7", "0.1.0"),
        ready={"pid": 4242, "python": "3.11.7", "satchel": "0.1.0"},
    )
    case(
        "startup error: ModuleNotFoundError",
        env.Kind.STARTUP_ERROR,
        0,
        env.encode_error("ModuleNotFoundError", "No module named 'humanize'", ""),
        error={"type": "ModuleNotFoundError", "message": "No module named 'humanize'", "traceback": ""},
    )
    case("shutdown", env.Kind.SHUTDOWN, 0, b"")
    case("cancel call 7", env.Kind.CANCEL, 7, b"")
    case(
        "version 2: call add(a=1.5, b=2.25) with a W3C trace context",
        env.Kind.CALL,
        1,
        add_payload,
        request.fingerprint,
        context={"traceparent": TRACEPARENT, "tracestate": "congo=t61rcWkgMzE"},
        request_schema=ADD_REQUEST,
        arguments={"a": 1.5, "b": 2.25},
    )
    return {
        "description": "Envelope records (Avro binary of satchel.wire.Envelope), see docs/protocol.md",
        "envelope_schema": env.ENVELOPE_SCHEMA,
        "envelope_schema_v2": env.ENVELOPE_SCHEMA_V2,
        "error_schema": env.ERROR_SCHEMA,
        "ready_schema": env.READY_SCHEMA,
        "fingerprints": {
            "add_request": f"{fingerprint64(ADD_REQUEST):016x}",
            "double": f"{fingerprint64('double'):016x}",
            "error": f"{env.ERROR_FINGERPRINT:016x}",
            "ready": f"{env.READY_FINGERPRINT:016x}",
        },
        "cases": cases,
    }


# --- the ring ------------------------------------------------------------------------------------------

# Header bytes that differ from one segment to the next: creation time, pids. Masked (zeroed) in the
# dumps below and listed here.
VARIABLE = [(32, 8, "created_ns"), (64, 4, "creator pid"), (128, 4, "attacher pid")]


def _masked(header: bytes) -> bytes:
    data = bytearray(header)
    for offset, size, _ in VARIABLE:
        data[offset : offset + size] = bytes(size)
    return bytes(data)


def _nonzero_runs(data: bytes) -> list[dict]:
    """A compact dump: every run of 8-byte words that are not all zero, as {offset, hex}."""
    runs, start = [], None
    for offset in range(0, len(data), 8):
        word = data[offset : offset + 8]
        if any(word):
            if start is None:
                start = offset
        elif start is not None:
            runs.append({"offset": start, "hex": data[start:offset].hex()})
            start = None
    if start is not None:
        runs.append({"offset": start, "hex": data[start:].hex()})
    return runs


def ring_vectors() -> dict:
    from satchel.bindings.ring import HEADER_SIZE, SHM_DIR, Ring

    vectors = []
    for capacity in (4096, 1 << 20):
        ring = Ring.create(capacity)
        try:
            header = (SHM_DIR / ring.name[1:]).read_bytes()[:HEADER_SIZE]
        finally:
            ring.close()
        vectors.append(
            {
                "name": f"fresh segment, capacity {capacity}",
                "capacity": capacity,
                "segment_size": HEADER_SIZE + 2 * capacity,
                "header_nonzero_words": _nonzero_runs(_masked(header)),
            }
        )

    # Messages the creator writes into ring 0 of a 4096-byte ring: two small ones, a filler that leaves
    # the head 3 bytes before the end of the data area, then one whose length prefix is split by the end.
    capacity = 4096
    small = [b"hello", b"\x00" * 3]
    filler = b"\xee" * (capacity - 3 - sum(8 + len(m) for m in small) - 8)
    wrapped = bytes(range(100))
    ring = Ring.create(capacity)
    try:
        peer = Ring.attach(ring.name)
        try:
            for message in (*small, filler):
                ring.send([message])
                assert peer.recv(1) == message
            head_before = _counters(ring)[0]
            ring.send([wrapped])
            raw = ring.segment_bytes()
            head_after = _counters(ring)[0]
            assert peer.recv(1) == wrapped
        finally:
            peer.close()
    finally:
        ring.close()
    data = raw[HEADER_SIZE : HEADER_SIZE + capacity]
    return {
        "description": "Satchel ring segments (docs/protocol.md): the header words that are not zero in a "
        "fresh segment (created_ns and pids masked to zero); ring 0's bytes after known writes",
        "masked": [{"offset": o, "size": s, "field": f} for o, s, f in VARIABLE],
        "headers": vectors,
        "wrap": {
            "capacity": capacity,
            "messages_before": [small[0].hex(), small[1].hex(), f"ee repeated {len(filler)} times"],
            "head_before": head_before,
            "message_hex": wrapped.hex(),
            "head_after": head_after,
            "data_end_offset": capacity - 3,
            "data_end_hex": data[capacity - 3 :].hex(),
            "data_start_hex": data[: head_after - capacity].hex(),
        },
    }


def _counters(ring) -> tuple[int, int]:
    """head and tail of ring 0 (offsets 512 and 640)."""
    raw = ring.segment_bytes()
    return struct.unpack_from("<Q", raw, 512)[0], struct.unpack_from("<Q", raw, 640)[0]


def main() -> None:
    for name, data in (("envelope_vectors.json", envelope_vectors()), ("ring_vectors.json", ring_vectors())):
        (HERE / name).write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
        print(f"wrote {HERE / name}")


if __name__ == "__main__":
    main()
