"""The OpenAPI 3.1 document: each function's real request/response JSON Schemas (bindings.jsonform)."""

from __future__ import annotations

from typing import Any

from satchel._version import __version__
from satchel.bindings.jsonform import json_schema

from ..hosted import HostedFunction
from .invoke import AVRO

_PREFIX = "#/components/schemas/"

PROBLEM_SCHEMA = {
    "type": "object",
    "description": "An RFC 9457 problem document.",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "function": {"type": "string"},
        "parameter": {"type": ["string", "null"]},
        "remote_type": {"type": "string"},
        "request_id": {"type": "string"},
    },
    "required": ["type", "title", "status", "detail"],
}


def _component(schema: Any, namespace: str, components: dict) -> dict:
    """The JSON Schema of `schema` with its named types moved into `components` under `namespace.`."""
    doc = json_schema(schema, ref_prefix=_PREFIX + namespace + ".")
    doc.pop("$schema", None)
    for name, definition in doc.pop("$defs", {}).items():
        components[f"{namespace}.{name}"] = definition
    return doc


def _problem(description: str) -> dict:
    return {
        "description": description,
        "content": {"application/problem+json": {"schema": {"$ref": _PREFIX + "Problem"}}},
    }


def build_openapi(
    functions: dict[str, HostedFunction], *, title: str = "Satchel", secured: bool = False
) -> dict:
    components: dict[str, Any] = {"Problem": PROBLEM_SCHEMA}
    paths: dict[str, Any] = {}
    for name, h in sorted(functions.items()):
        request = _component(h.request_schema, name, components)
        response = _component(h.response_schema, name, components)
        result = {"type": "object", "properties": {"result": response}, "required": ["result"]}
        components[f"{name}.Result"] = result
        summary = h.doc.splitlines()[0] if h.doc else f"Call {name}"
        operation: dict[str, Any] = {
            "operationId": f"invoke_{name}",
            "summary": summary,
            "description": (h.doc + "\n\n" if h.doc else "")
            + f"Request fingerprint `{h.request_fingerprint}`, response fingerprint `{h.response_fingerprint}` "
            f"(send them as `X-Satchel-Fingerprint` with `{AVRO}` bodies).",
            "tags": ["functions"],
            "parameters": [
                {
                    "name": "X-Satchel-Fingerprint",
                    "in": "header",
                    "required": False,
                    "description": f"required with {AVRO} bodies: {h.request_fingerprint}",
                    "schema": {"type": "string"},
                },
                {
                    "name": "X-Satchel-Timeout",
                    "in": "header",
                    "required": False,
                    "description": "seconds the call may take, waiting for a worker included",
                    "schema": {"type": "number", "exclusiveMinimum": 0},
                },
            ],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": request},
                    AVRO: {"schema": {"type": "string", "contentMediaType": AVRO}},
                },
            },
            "responses": {
                "200": {
                    "description": "The function's result",
                    "content": {
                        "application/json": {"schema": {"$ref": _PREFIX + f"{name}.Result"}},
                        AVRO: {"schema": {"type": "string", "contentMediaType": AVRO}},
                    },
                },
                "400": _problem("Invalid argument, malformed body or fingerprint mismatch"),
                "404": _problem("Unknown function"),
                "429": _problem("Too many pending calls (see Retry-After)"),
                "500": _problem("The function raised"),
                "502": _problem("A worker crashed during the call"),
                "503": _problem("The function is unavailable"),
                "504": _problem("The call timed out"),
            },
        }
        if secured:
            operation["responses"]["401"] = _problem("Missing or wrong bearer token")
        paths[f"/v1/functions/{name}:invoke"] = {"post": operation}
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": title, "version": __version__},
        "paths": paths,
        "components": {"schemas": components},
    }
    if secured:
        document["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        document["security"] = [{"bearer": []}]
    return document
