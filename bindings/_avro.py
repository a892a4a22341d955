"""Avro schema plumbing shared by the bindings: names, namespaces, references, a parsed node graph.

`parse(schema)` turns an Avro schema (the JSON-able dict/list/str form) into a graph of `Node`s in
which every named-type reference points at the node of its definition (so recursive types are
cycles). The converters in `convert.py` and `jsonform.py` are built by walking that graph once, each
by a `walker.SchemaWalker` (one function per named type, recursive ones too). `logical_kind(node)`
says which of the logical types Satchel understands a node has.

Standard library and `satchel.errors` only: the worker imports this.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from satchel.core.errors import SchemaError

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
NAMED_TYPES = frozenset({"record", "error", "enum", "fixed"})

NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

Converter = Callable[[Any], Any]

# logical types defined by the Avro spec that Satchel emits or understands
TIMESTAMP_MICROS = "timestamp-micros"
TIMESTAMP_MILLIS = "timestamp-millis"
DATE = "date"

# Satchel's own logical types (see logical.py)
NDARRAY = "satchel.ndarray"
ARROW = "satchel.arrow"
PICKLE = "satchel.pickle"
DECIMAL = "satchel.decimal"
PANDAS_PYTHON = "pandas.DataFrame"  # the "python" attribute of an arrow schema holding a DataFrame
TUPLE_PYTHON = "builtins:tuple"  # the "python" attribute of a record standing for a fixed-size tuple


def is_valid_name(name: str) -> bool:
    return bool(NAME_RE.match(name))


def sanitize_name(text: str) -> str:
    """`text` made into a valid Avro name: invalid characters become `_`; a leading digit gets `_`."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", text)
    if not name or name[0].isdigit():
        name = "_" + name
    return name


def sanitize_namespace(text: str) -> str:
    """A dotted module path made into a valid Avro namespace (each component sanitized)."""
    return ".".join(sanitize_name(part) for part in text.split("."))


def fullname(name: str, namespace: str | None) -> str:
    """The full name of `name` seen under `namespace` (Avro's rules: a dotted name is already full)."""
    if "." in name or not namespace:
        return name
    return namespace + "." + name


def namespace_of(full: str) -> str:
    return full.rpartition(".")[0]


def named_fullname(schema: dict, enclosing: str) -> str:
    """Full name of the named-type definition `schema` appearing under namespace `enclosing`."""
    name = schema.get("name")
    if not isinstance(name, str) or not name:
        raise SchemaError(f"Avro named type without a name: {schema!r:.200}")
    if "." in name:
        return name
    namespace = schema["namespace"] if "namespace" in schema else enclosing
    return fullname(name, namespace or "")


class Field:
    """One field of a record node."""

    __slots__ = ("name", "node", "has_default", "default", "json")

    def __init__(self, name: str, node: Node, has_default: bool, default: Any, json: dict) -> None:
        self.name = name
        self.node = node
        self.has_default = has_default
        self.default = default
        self.json = json


class Node:
    """One parsed Avro schema.

    `type` is a primitive name or one of record, enum, fixed, array, map, union. `logical` is the
    logicalType (or None), `name` the full name of a named type, `props` the schema's own dict (for
    custom attributes such as "python"), `json` the schema as written.
    """

    __slots__ = (
        "type",
        "logical",
        "name",
        "fields",
        "items",
        "values",
        "branches",
        "symbols",
        "size",
        "props",
    )

    def __init__(
        self, type: str, *, logical: str | None = None, name: str | None = None, props: dict | None = None
    ):
        self.type = type
        self.logical = logical
        self.name = name
        self.fields: list[Field] = []
        self.items: Node | None = None
        self.values: Node | None = None
        self.branches: list[Node] = []
        self.symbols: list[str] = []
        self.size = 0
        self.props = props or {}

    @property
    def python(self) -> str | None:
        """The "python" attribute ("module:qualname" of the class a record or enum stands for)."""
        value = self.props.get("python")
        return value if isinstance(value, str) else None

    @property
    def branch_name(self) -> str:
        """The name fastavro's tuple notation uses for this node as a union branch."""
        return self.name if self.name is not None else self.type

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"<Node {self.name or self.type}{' ' + self.logical if self.logical else ''}>"


class _Parser:
    def __init__(self, external: dict[str, Any] | None) -> None:
        self.external = external or {}
        self.nodes: dict[str, Node] = {}

    def node(self, schema: Any, namespace: str) -> Node:
        if isinstance(schema, str):
            if schema in PRIMITIVES:
                return Node(schema)
            return self.reference(schema, namespace)
        if isinstance(schema, list):
            union = Node("union")
            union.branches = [self.node(branch, namespace) for branch in schema]
            for branch in union.branches:
                if branch.type == "union":
                    raise SchemaError("an Avro union may not directly contain another union")
            return union
        if isinstance(schema, dict):
            kind = schema.get("type")
            if isinstance(kind, (dict, list)):
                return self.node(kind, namespace)
            if not isinstance(kind, str):
                raise SchemaError(f"not an Avro schema: {schema!r:.200}")
            logical = schema.get("logicalType")
            logical = logical if isinstance(logical, str) else None
            if kind in PRIMITIVES:
                return Node(kind, logical=logical, props=schema)
            if kind in NAMED_TYPES:
                return self.named(kind, schema, namespace, logical)
            if kind == "array":
                node = Node("array", logical=logical, props=schema)
                node.items = self.child(schema, "items", namespace)
                return node
            if kind == "map":
                node = Node("map", logical=logical, props=schema)
                node.values = self.child(schema, "values", namespace)
                return node
            return self.reference(kind, namespace)
        raise SchemaError(f"not an Avro schema: {schema!r:.200}")

    def named(self, kind: str, schema: dict, namespace: str, logical: str | None) -> Node:
        """The node of a record, error, enum or fixed definition (registered under its full name)."""
        full = named_fullname(schema, namespace)
        node = Node("record" if kind == "error" else kind, logical=logical, name=full, props=schema)
        self.nodes[full] = node  # before the fields: they may refer to it
        if kind == "enum":
            symbols = schema.get("symbols")
            if not isinstance(symbols, list) or not all(isinstance(s, str) for s in symbols):
                raise SchemaError(f"Avro enum {full} has no list of symbols")
            node.symbols = list(symbols)
        elif kind == "fixed":
            size = schema.get("size")
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise SchemaError(f"Avro fixed {full} has no valid size")
            node.size = size
        else:
            fields = schema.get("fields")
            if not isinstance(fields, list):
                raise SchemaError(f"Avro record {full} has no list of fields")
            inner = namespace_of(full)
            for field in fields:
                if (
                    not isinstance(field, dict)
                    or not isinstance(field.get("name"), str)
                    or "type" not in field
                ):
                    raise SchemaError(f"malformed field in Avro record {full}: {field!r:.200}")
                node.fields.append(
                    Field(
                        field["name"],
                        self.node(field["type"], inner),
                        "default" in field,
                        field.get("default"),
                        field,
                    )
                )
        return node

    def child(self, schema: dict, key: str, namespace: str) -> Node:
        """The node of an array's "items" or a map's "values"."""
        if key not in schema:
            raise SchemaError(f"Avro {schema['type']} without {key}")
        return self.node(schema[key], namespace)

    def reference(self, name: str, namespace: str) -> Node:
        full = fullname(name, namespace)
        node = self.nodes.get(full)
        if node is None and full != name:
            node = self.nodes.get(name)
        if node is not None:
            return node
        for candidate in (full, name):
            definition = self.external.get(candidate)
            if definition is not None:
                return self.node(definition, namespace_of(candidate))
        raise SchemaError(f"unknown Avro type {name!r}")


def parse(schema: Any, *, named: dict[str, Any] | None = None, namespace: str = "") -> Node:
    """Parse `schema` into a node graph. `named` maps full names to definitions made elsewhere."""
    return _Parser(named).node(schema, namespace)


def collect_named(schema: Any) -> dict[str, Any]:
    """Every named-type definition in `schema`, by full name (for parsing a part of it alone)."""
    found: dict[str, Any] = {}

    def walk(s: Any, namespace: str) -> None:
        if isinstance(s, list):
            for branch in s:
                walk(branch, namespace)
        elif isinstance(s, dict):
            kind = s.get("type")
            if isinstance(kind, (dict, list)):
                walk(kind, namespace)
            elif kind in NAMED_TYPES:
                full = named_fullname(s, namespace)
                if full in found:
                    return
                found[full] = s
                if kind in ("record", "error"):
                    for field in s.get("fields") or ():
                        if isinstance(field, dict):
                            walk(field.get("type"), namespace_of(full))
            elif kind == "array":
                walk(s.get("items"), namespace)
            elif kind == "map":
                walk(s.get("values"), namespace)

    walk(schema, "")
    return found


def required_wrapper(annotation: Any) -> str | None:
    """Which of "Required"/"NotRequired" wraps a TypedDict annotation (also inside Annotated/ReadOnly)."""
    import typing

    for _ in range(10):
        origin = typing.get_origin(annotation)
        name = getattr(origin, "_name", None)
        if name in ("Required", "NotRequired"):
            return name
        if origin is typing.Annotated:
            annotation = annotation.__origin__
        elif name == "ReadOnly":
            annotation = typing.get_args(annotation)[0]
        else:
            return None
    return None


def typeddict_optional_keys(cls: type) -> frozenset[str]:
    """The keys of a TypedDict that need not be present (total=False or NotRequired[...]).

    Works out NotRequired from the resolved hints too: with `from __future__ import annotations`
    the class's own `__optional_keys__` cannot see it.
    """
    import typing

    optional = set(getattr(cls, "__optional_keys__", ()) or ())
    try:
        hints = typing.get_type_hints(cls, include_extras=True)
    except Exception:  # unresolvable names: what the class says is all there is
        return frozenset(optional)
    for key, annotation in hints.items():
        wrapper = required_wrapper(annotation)
        if wrapper == "NotRequired":
            optional.add(key)
        elif wrapper == "Required":
            optional.discard(key)
    return frozenset(optional)


def split_python(attr: str) -> tuple[str, str]:
    module, _, qualname = attr.partition(":")
    return module, qualname


# the base type each logical type Satchel understands applies to (on another, Avro says to ignore it)
_LOGICAL_BASES = {
    TIMESTAMP_MICROS: "long",
    TIMESTAMP_MILLIS: "long",
    DATE: "int",
    DECIMAL: "string",
    NDARRAY: "bytes",
    ARROW: "bytes",
    PICKLE: "bytes",
}


def logical_kind(node: Node) -> str | None:
    """Which logical type Satchel understands a node has, or None: then it is its plain Avro type.

    The node's logicalType when it is TIMESTAMP_MICROS or TIMESTAMP_MILLIS on a long, DATE on an
    int, DECIMAL on a string, NDARRAY, ARROW or PICKLE on bytes; but PANDAS_PYTHON for an ARROW node
    whose "python" attribute says it holds a pandas DataFrame. Any other logicalType, or one on
    another base type, is ignored, as the Avro spec says.
    """
    lt = node.logical
    if lt is None or _LOGICAL_BASES.get(lt) != node.type:
        return None
    if lt == ARROW and node.props.get("python") == PANDAS_PYTHON:
        return PANDAS_PYTHON
    return lt


# python_type_name of each logical kind and of each primitive type
_LOGICAL_NAMES = {
    TIMESTAMP_MICROS: "datetime",
    TIMESTAMP_MILLIS: "datetime",
    DATE: "date",
    DECIMAL: "Decimal",
    NDARRAY: "numpy.ndarray",
    ARROW: "pyarrow.Table",
    PANDAS_PYTHON: "pandas.DataFrame",
    PICKLE: "a picklable value",
}
_PYTHON_NAMES = {
    "null": "None",
    "boolean": "bool",
    "int": "int",
    "long": "int",
    "float": "float",
    "double": "float",
    "string": "str",
    "bytes": "bytes",
}


def python_type_name(node: Node) -> str:
    """The Python type a node stands for, as people write it: int, list[str], Point, int | None."""
    special = logical_kind(node)
    if special is not None:
        return _LOGICAL_NAMES[special]
    kind = node.type
    if kind in _PYTHON_NAMES:
        return _PYTHON_NAMES[kind]
    if kind == "fixed":
        return f"bytes of length {node.size}"
    if kind == "array":
        assert node.items is not None
        return f"list[{python_type_name(node.items)}]"
    if kind == "map":
        assert node.values is not None
        return f"dict[str, {python_type_name(node.values)}]"
    if kind == "union":
        names = [python_type_name(b) for b in node.branches if b.type != "null"]
        if len(names) < len(node.branches):
            names.append("None")
        return " | ".join(names)
    if kind == "record" and node.python == TUPLE_PYTHON:
        if not node.fields:
            return "tuple[()]"
        return "tuple[" + ", ".join(python_type_name(f.node) for f in node.fields) + "]"
    if kind in ("record", "enum"):
        if node.python:
            return split_python(node.python)[1] or node.python
        return (node.name or kind).rpartition(".")[2]
    return kind
