"""Avro payloads of the Functions service: a request decoded with the hosted function's codec (after its
fingerprint is checked), a result encoded with its response codec."""

from __future__ import annotations

import io
from typing import Any

import fastavro
import grpc

from satchel.core.errors import ArgumentError, ProtocolError

from ..hosted import HostedFunction
from .errors import GrpcError


def decode_arguments(hosted: HostedFunction, payload: bytes, fingerprint: str) -> dict[str, Any]:
    """The keyword arguments in `payload`; GrpcError (fingerprint) or ArgumentError naming the parameter."""
    given = fingerprint.strip().lower()
    if given != hosted.request_fingerprint:
        raise GrpcError(
            grpc.StatusCode.INVALID_ARGUMENT,
            "fingerprint-mismatch",
            f"request_fingerprint {fingerprint!r} is not the request schema of {hosted.name!r}: expected "
            f"{hosted.request_fingerprint} (its CRC-64-AVRO fingerprint; Describe returns the schema)",
        )
    try:
        return hosted.request_codec.decode_call(payload)
    except ProtocolError:
        found = _bad_field(hosted.request_schema, payload)
        if found is None:
            raise
        parameter, reason = found
        error = ArgumentError(f"parameter {parameter!r}: {reason} (payload of {len(payload)} bytes)")
        error.parameter = parameter  # type: ignore[attr-defined]
        raise error from None


def _bad_field(request_schema: dict, payload: bytes) -> tuple[str, str] | None:
    """The first parameter whose value does not decode from `payload`, and why (decoding ever longer
    prefixes of the request record; named types are defined before their use, so each prefix stands alone)."""
    fields = request_schema.get("fields", [])
    for end in range(1, len(fields) + 1):
        prefix = {**request_schema, "fields": fields[:end]}
        try:
            fastavro.schemaless_reader(io.BytesIO(payload), fastavro.parse_schema(prefix), None)
        except EOFError:
            return fields[end - 1]["name"], "the payload ends before its Avro value does"
        except Exception as exc:
            return fields[end - 1]["name"], f"its Avro value does not decode: {type(exc).__name__}: {exc}"
    return None
