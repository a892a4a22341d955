"""Example values built from JSON Schemas (the OpenAPI document's request and response examples).

Defaults and `examples` are used when the schema has them; otherwise each type gets a plain sample value
that validates against it (a number in range, "" for base64 bytes, the first enum symbol, ...).
"""

from __future__ import annotations

from typing import Any

_REF_PREFIX = "#/components/schemas/"
_FORMATS = {"date-time": "2024-05-01T12:30:00Z", "date": "2024-05-01"}
_MAX_DEPTH = 8  # recursive types: stop (with null, or an empty container) this deep


def example(schema: Any, components: dict[str, Any], depth: int = 0) -> Any:
    """A value that `schema` accepts; `components` resolves "#/components/schemas/..." references."""
    if not isinstance(schema, dict):
        return None
    if "default" in schema:
        return schema["default"]
    if schema.get("examples"):
        return schema["examples"][0]
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith(_REF_PREFIX):
        if depth >= _MAX_DEPTH:
            return None
        return example(components.get(ref[len(_REF_PREFIX) :]), components, depth + 1)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [o for o in schema[key] if o.get("type") != "null"] or schema[key]
            # a plain number before the special float spellings; otherwise the first non-null option
            return example(options[0], components, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        return _object(schema, components, depth)
    if kind == "array":
        if depth >= _MAX_DEPTH:
            return []
        prefix = schema.get("prefixItems")
        if prefix:
            return [example(item, components, depth + 1) for item in prefix]
        return [example(schema.get("items", {}), components, depth + 1)] * max(1, schema.get("minItems", 1))
    if kind == "string":
        return _string(schema)
    if kind in ("integer", "number"):
        return _number(schema, kind)
    if kind == "boolean":
        return True
    return None


def _object(schema: dict, components: dict[str, Any], depth: int) -> dict:
    if depth >= _MAX_DEPTH:
        return {}
    properties = schema.get("properties")
    if properties:
        return {name: example(prop, components, depth + 1) for name, prop in properties.items()}
    values = schema.get("additionalProperties")
    if isinstance(values, dict):
        return {"key": example(values, components, depth + 1)}
    return {}


def _string(schema: dict) -> str:
    if schema.get("format") in _FORMATS:
        return _FORMATS[schema["format"]]
    if schema.get("contentEncoding") == "base64":
        return "AAAA" * (schema.get("minLength", 0) // 4)
    if schema.get("pattern", "").startswith(r"^\s*[+-]?((\d+"):  # a decimal (bindings.jsonform)
        return "1.50"
    return "text"


def _number(schema: dict, kind: str) -> int | float:
    low, high = schema.get("minimum"), schema.get("maximum")
    value: int | float = 1 if kind == "integer" else 1.5
    if low is not None and value < low:
        value = low
    if high is not None and value > high:
        value = high
    if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
        value = schema["exclusiveMinimum"] + 1
    return value
