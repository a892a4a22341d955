"""`SchemaWalker`: builds one thing per node of a parsed schema (`_avro.parse`), one method per kind.

The converters (convert.py: Python <-> datum; jsonform.py: datum <-> JSON) and the JSON Schema of the
JSON form are walkers. `build(node)` calls the method of the node's kind, `on_record`, `on_array`,
`on_map`, `on_union`, `on_enum`, `on_fixed`, `on_bytes`, `on_string`, `on_int`, ..., or first, when the
node has a logical type Satchel understands (`_avro.logical_kind`), that of its logical kind,
`on_timestamp_micros`, `on_date`, `on_decimal`, `on_ndarray`, ... A logical kind's method defaults to
its base type's (so a walker to whom an ndarray is just bytes needs no `on_ndarray`); `on_int` and
`on_long` default to `on_integer`, `on_float` and `on_double` to `on_number`, the two timestamps to
`on_timestamp(node, unit)`. Methods call `build` for the nodes inside theirs.

Each named type is built once: a named type may be used in many places, and a recursive one inside
itself; while its function is being built, `build` hands out a forwarding function that calls the
finished one. The walking happens once per schema, never per value.
"""

from __future__ import annotations

from typing import Any

from satchel.core.errors import SchemaError

from . import _avro
from ._avro import Node

__all__ = ["SchemaWalker"]

_KIND_METHODS = {
    kind: "on_" + kind
    for kind in (
        "null",
        "boolean",
        "int",
        "long",
        "float",
        "double",
        "string",
        "bytes",
        "fixed",
        "enum",
        "array",
        "map",
        "record",
        "union",
    )
}
_LOGICAL_METHODS = {
    _avro.TIMESTAMP_MICROS: "on_timestamp_micros",
    _avro.TIMESTAMP_MILLIS: "on_timestamp_millis",
    _avro.DATE: "on_date",
    _avro.DECIMAL: "on_decimal",
    _avro.NDARRAY: "on_ndarray",
    _avro.ARROW: "on_arrow",
    _avro.PANDAS_PYTHON: "on_dataframe",
    _avro.PICKLE: "on_pickle",
}


class SchemaWalker:
    """Base of the walkers; subclasses define the `on_<kind>` methods of the kinds they meet."""

    def __init__(self) -> None:
        self.memo: dict[int, Any] = {}

    def build(self, node: Node) -> Any:
        """What `walk(node)` makes, made once per named type (recursive ones too: see the module)."""
        if node.name is None:
            return self.walk(node)
        known = self.memo.get(id(node))
        if known is not None:
            return known
        cell: list[Any] = []

        def forward(value: Any) -> Any:
            return cell[0](value)

        self.memo[id(node)] = forward
        real = self.walk(node)
        cell.append(real)
        self.memo[id(node)] = real
        return real

    def walk(self, node: Node) -> Any:
        """The method of the node's (logical) kind, called on it."""
        special = _avro.logical_kind(node)
        name = _LOGICAL_METHODS[special] if special is not None else _KIND_METHODS.get(node.type)
        if name is None:  # pragma: no cover - parse() rejects it
            raise SchemaError(f"unsupported Avro type {node.type!r}")
        return getattr(self, name)(node)

    def unsupported(self, node: Node) -> Any:
        raise SchemaError(f"unsupported Avro type {node.type!r}")

    # the Avro kinds
    on_null = on_boolean = on_string = on_bytes = on_fixed = unsupported
    on_enum = on_array = on_map = on_record = on_union = unsupported
    on_integer = on_number = unsupported

    def on_int(self, node: Node) -> Any:
        return self.on_integer(node)

    def on_long(self, node: Node) -> Any:
        return self.on_integer(node)

    def on_float(self, node: Node) -> Any:
        return self.on_number(node)

    def on_double(self, node: Node) -> Any:
        return self.on_number(node)

    # the logical kinds: by default, their base type
    def on_timestamp_micros(self, node: Node) -> Any:
        return self.on_timestamp(node, 1)

    def on_timestamp_millis(self, node: Node) -> Any:
        return self.on_timestamp(node, 1000)

    def on_timestamp(self, node: Node, unit: int) -> Any:
        """A timestamp-micros (unit 1) or -millis (unit 1000) long."""
        return self.on_long(node)

    def on_date(self, node: Node) -> Any:
        return self.on_int(node)

    def on_decimal(self, node: Node) -> Any:
        return self.on_string(node)

    def on_ndarray(self, node: Node) -> Any:
        return self.on_bytes(node)

    def on_arrow(self, node: Node) -> Any:
        return self.on_bytes(node)

    def on_dataframe(self, node: Node) -> Any:
        return self.on_arrow(node)

    def on_pickle(self, node: Node) -> Any:
        return self.on_bytes(node)
