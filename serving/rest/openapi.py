"""The OpenAPI 3.1 document: each function's real request/response JSON Schemas (bindings.jsonform)."""

from __future__ import annotations

from typing import Any

from satchel.bindings.jsonform import json_schema
from satchel.core.version import __version__

from ..hosted import HostedFunction
from .examples import example
from .invoke import AVRO, MAX_TIMEOUT

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


def _component(schema: Any, namespace: str, components: dict, *, inputs: bool) -> dict:
    """The JSON Schema of `schema` with its named types moved into `components` under `namespace.`
    (`inputs`: with the forms only accepted on input, see bindings.jsonform.json_schema)."""
    doc = json_schema(schema, ref_prefix=_PREFIX + namespace + ".", inputs=inputs)
    doc.pop("$schema", None)
    for name, definition in doc.pop("$defs", {}).items():
        components[f"{namespace}.{name}"] = definition
    return doc


def _job_schema(result: dict | None, function: str | None = None) -> dict:
    """A job document (serving/rest/jobs.py); `result`: the function's result schema, if known;
    `function`: its name, which then is the only `function` the document may have (so that the job
    schemas of several functions exclude each other, as `oneOf` needs)."""
    time = {"type": ["string", "null"], "format": "date-time"}
    problem = dict(PROBLEM_SCHEMA, properties={**PROBLEM_SCHEMA["properties"], "kind": {"type": "string"}})
    problem["required"] = ["kind", "title", "status", "detail"]
    return {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "function": {"type": "string"} if function is None else {"const": function},
            "state": {"enum": ["queued", "running", "succeeded", "failed", "cancelled"]},
            "created_at": time,
            "started_at": time,
            "finished_at": time,
            "request_id": {"type": ["string", "null"]},
            **({"result": result} if result is not None else {}),
            "error": problem,
        },
        "required": ["id", "function", "state", "created_at"],
        "description": "An async job; `result` once it succeeded, `error` (a problem) once it failed.",
    }


def _job_paths(paths: dict[str, Any], jobs: list[str]) -> None:
    """GET and DELETE /v1/jobs/{id}: the job document of any function's job."""
    if jobs:  # one function's job each: told apart by `function` (a const in each)
        refs = {name: _PREFIX + f"{name}.Job" for name in jobs}
        schema = {
            "oneOf": [{"$ref": ref} for ref in refs.values()],
            "discriminator": {"propertyName": "function", "mapping": refs},
        }
    else:
        schema = _job_schema(None)
    answer = {"description": "The job", "content": {"application/json": {"schema": schema}}}
    parameter = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
    unknown = _problem("Unknown job, or its result expired")
    paths["/v1/jobs/{id}"] = {
        "get": {
            "operationId": "get_job",
            "summary": "A job's state, and its result or error once finished",
            "tags": ["jobs"],
            "parameters": [parameter],
            "responses": {"200": answer, "404": unknown},
        },
        "delete": {
            "operationId": "cancel_job",
            "summary": "Cancel a job (its call is interrupted in its worker)",
            "tags": ["jobs"],
            "parameters": [parameter],
            "responses": {"200": answer, "404": unknown},
        },
    }


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
        # the response first: a named type in both keeps the request's definition, which accepts more
        response = _component(h.response_schema, name, components, inputs=False)
        request = _component(h.request_schema, name, components, inputs=True)
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
                    "schema": {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_TIMEOUT},
                },
            ],
            "requestBody": {
                "required": True,
                "description": h.doc or f"The arguments of {name}, by parameter name.",
                "content": {
                    "application/json": {
                        "schema": request,
                        # the example given at export, else one made from the schema
                        "example": h.example if h.example is not None else example(request, components),
                    },
                    AVRO: {"schema": {"type": "string", "contentMediaType": AVRO}},
                },
            },
            "responses": {
                "200": {
                    "description": "The function's result",
                    "headers": {
                        "X-Satchel-Cold-Start": {
                            "description": "present when no worker ran and one was started for this call: "
                            "the call's milliseconds",
                            "schema": {"type": "string"},
                        }
                    },
                    "content": {
                        "application/json": {
                            "schema": {"$ref": _PREFIX + f"{name}.Result"},
                            "example": {"result": example(response, components)},
                        },
                        AVRO: {"schema": {"type": "string", "contentMediaType": AVRO}},
                    },
                },
                "400": _problem("Invalid argument, malformed body or fingerprint mismatch"),
                "404": _problem("Unknown function"),
                "413": _problem("The request body is larger than the server's limit"),
                "415": _problem("Unsupported media type (send application/json or application/avro)"),
                "429": _problem("Too many pending calls (see Retry-After)"),
                "500": _problem("The function raised, or returned what its response schema does not allow"),
                "502": _problem("A worker crashed during the call"),
                "503": _problem("The function is unavailable, or the server is draining (see Retry-After)"),
                "504": _problem("The call timed out"),
            },
        }
        if secured:
            operation["responses"]["401"] = _problem("Missing or wrong bearer token")
        paths[f"/v1/functions/{name}:invoke"] = {"post": operation}
        components[f"{name}.Job"] = _job_schema(response, name)
        job_operation = {
            **operation,
            "operationId": f"submit_{name}",
            "summary": f"Submit a job calling {name}",
            "tags": ["jobs"],
            "responses": {
                "202": {
                    "description": "The job, accepted (its URL in Location)",
                    "headers": {"Location": {"schema": {"type": "string"}}},
                    "content": {"application/json": {"schema": {"$ref": _PREFIX + f"{name}.Job"}}},
                },
                **{
                    k: v
                    for k, v in operation["responses"].items()
                    if k in ("400", "401", "404", "413", "415", "429")
                },
            },
        }
        paths[f"/v1/functions/{name}/jobs"] = {"post": job_operation}
    _job_paths(paths, sorted(functions))
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
