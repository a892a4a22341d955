"""Avro schemas derived from Python type hints: a function's request record and its response type.

The mapping (see docs/bundle-format.md, "interface"):

| Python                                        | Avro                                                  |
|-----------------------------------------------|-------------------------------------------------------|
| bool, int, float, str, bytes/bytearray, None  | boolean, long, double, string, bytes, null            |
| Optional[T], T | None                         | ["null", T] (T first when a default is not None)      |
| Union[A, B, ...]                              | union (the default's branch first; distinct types)    |
| list[T], Sequence[T], tuple[T, ...]           | array                                                 |
| dict[str, T], Mapping[str, T]                 | map (other key types: SchemaError)                    |
| tuple[A, B]                                   | record "Tuple_<n>" (namespace satchel), fields _0, _1;|
|                                               | attribute "python": "builtins:tuple"                  |
| dataclass, NamedTuple, TypedDict              | record named after the class, namespace its module,   |
|                                               | attribute "python": "module:qualname"; TypedDict keys |
|                                               | that are not required: ["null", T] with default null  |
| Enum                                          | enum of the member names (attribute "python")         |
| datetime.datetime                             | long / timestamp-micros                               |
| datetime.date                                 | int / date                                            |
| decimal.Decimal                               | string / satchel.decimal (exact)                      |
| numpy.ndarray, numpy.typing.NDArray[...]      | bytes / satchel.ndarray (.npy)                        |
| pyarrow.Table                                 | bytes / satchel.arrow (Arrow IPC stream)              |
| pandas.DataFrame                              | bytes / satchel.arrow, "python": "pandas.DataFrame"   |
| anything else, Any, object, no annotation     | SchemaError; with allow_pickle=True bytes/satchel.pickle |

`Annotated[T, ...]` is T, a `NewType` is its supertype, a `type X = ...` alias its value.

Timestamps: an aware datetime is converted to UTC; a **naive datetime is taken to be in UTC already**
(not local time). Values come back as aware datetimes in UTC.

Named types (records, enums) are defined once per schema, where they first appear, and referred to
by full name after that, so recursive dataclasses work. numpy, pyarrow and pandas classes are
recognised by module and name without importing those packages.
"""

from __future__ import annotations

import collections.abc as cabc
import dataclasses
import datetime
import decimal
import enum
import inspect
import types
import typing
from typing import Any

from satchel.core.errors import ArgumentError, SchemaError

from . import _avro, convert

__all__ = ["Param", "request_schema", "response_schema", "signature_params", "is_portable", "named_types"]

_EMPTY = inspect.Parameter.empty
_NoneType = type(None)
_FIX = "annotate it with a supported type, or pass allow_pickle=True to accept Python-only pickled values"
_TUPLE_NAMESPACE = "satchel"

_SEQUENCES = (list, cabc.Sequence, cabc.MutableSequence)
_MAPPINGS = (dict, cabc.Mapping, cabc.MutableMapping)
_UnionType = getattr(types, "UnionType", None)


@dataclasses.dataclass
class Param:
    """One parameter of a function's interface: its name, annotation, default and kind."""

    name: str
    annotation: Any
    default: Any = _EMPTY
    kind: Any = inspect.Parameter.POSITIONAL_OR_KEYWORD


def signature_params(func: Any, *, exclude: typing.Iterable[str] = ()) -> tuple[list[Param], Any]:
    """The `Param`s of `func` (string annotations resolved) and its return annotation.

    Parameters named in `exclude` (e.g. bound artifacts) are left out. An annotation that cannot be
    resolved stays a string, which `request_schema` reports as an error naming the parameter.
    """
    signature = inspect.signature(func)
    try:
        hints = typing.get_type_hints(func, include_extras=True)
    except Exception:  # unresolvable forward references: keep the raw annotations
        hints = {}
    skip = set(exclude)
    params = [
        Param(p.name, hints.get(p.name, p.annotation), p.default, p.kind)
        for p in signature.parameters.values()
        if p.name not in skip
    ]
    return params, hints.get("return", signature.return_annotation)


def request_schema(name: str, params: typing.Sequence[Param], *, allow_pickle: bool = False) -> dict:
    """The Avro record `<name>_request` with one field per parameter, in order.

    A parameter with a default gets the field's Avro `"default"` (in Avro's JSON encoding), and in a
    union the default's branch comes first. Raises SchemaError naming the parameter for *args,
    **kwargs, missing or unsupported annotations and defaults with no Avro form.
    """
    builder = _Builder(allow_pickle)
    fields = []
    for param in params:
        where = f"parameter {param.name!r} of {name}"
        if param.kind is inspect.Parameter.VAR_POSITIONAL:
            raise SchemaError(
                f"{where}: *{param.name} cannot be part of an interface; "
                f"declare each parameter, or take a list[...] instead"
            )
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            raise SchemaError(
                f"{where}: **{param.name} cannot be part of an interface; "
                f"declare each parameter, or take a dict[str, ...] instead"
            )
        if not _avro.is_valid_name(param.name):
            raise SchemaError(
                f"{where}: {param.name!r} is not a valid Avro field name (ASCII letters, digits, _)"
            )
        fields.append(builder.field(param.name, param.annotation, param.default, where, strict=True))
    record = {"type": "record", "name": _avro.sanitize_name(f"{name}_request"), "fields": fields}
    builder.finish(record)
    return record


def response_schema(name: str, annotation: Any, *, allow_pickle: bool = False) -> Any:
    """The Avro schema of the return type itself ("null" for `-> None`)."""
    where = f"return value of {name}"
    if annotation is _EMPTY:
        raise SchemaError(
            f"{where}: has no type annotation; annotate the return type (-> None if it returns nothing)"
        )
    builder = _Builder(allow_pickle)
    schema = builder.build(annotation, where)
    builder.finish(schema)
    return schema


def is_portable(schema: Any) -> bool:
    """False if any part of `schema` is a pickled value (logicalType satchel.pickle)."""
    if isinstance(schema, list):
        return all(is_portable(s) for s in schema)
    if isinstance(schema, dict):
        if schema.get("logicalType") == _avro.PICKLE:
            return False
        parts = [schema.get(key) for key in ("type", "items", "values")]
        parts += [f.get("type") for f in schema.get("fields") or () if isinstance(f, dict)]
        return all(is_portable(part) for part in parts if isinstance(part, (dict, list)))
    return True


def named_types(schema: Any) -> dict[str, Any]:
    """Every named type (record, enum, fixed) defined in `schema`, by full name.

    Pass it as `named=` to the converters (convert.py, jsonform.py) when working on one part of a
    schema on its own, e.g. one field of a request record that refers to a type defined earlier.
    """
    return _avro.collect_named(schema)


# --- the builder ----------------------------------------------------------------------------------


def _type_repr(tp: Any) -> str:
    if tp is _EMPTY:
        return "(no annotation)"
    if isinstance(tp, type) and not isinstance(tp, types.GenericAlias):
        if tp.__module__ == "builtins":
            return tp.__qualname__
        return f"{tp.__module__}.{tp.__qualname__}"
    return repr(tp)


def _unwrap(tp: Any) -> Any:
    """Annotated[T, ...] -> T; NewType -> its supertype; `type X = ...` -> its value; Required[T] -> T."""
    for _ in range(100):
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = tp.__origin__
        elif origin is not None and getattr(origin, "_name", None) in ("Required", "NotRequired", "ReadOnly"):
            tp = typing.get_args(tp)[0]
        elif getattr(tp, "__supertype__", None) is not None:
            tp = tp.__supertype__
        elif type(tp).__name__ == "TypeAliasType" and hasattr(tp, "__value__"):
            tp = tp.__value__
        else:
            return tp
    return tp


def _is_union(tp: Any, origin: Any) -> bool:
    return origin is typing.Union or (_UnionType is not None and isinstance(tp, _UnionType))


def _class_is(cls: Any, package: str, qualname: str) -> bool:
    if not isinstance(cls, type):
        return False
    module = getattr(cls, "__module__", "") or ""
    return cls.__qualname__ == qualname and (module == package or module.startswith(package + "."))


def _is_ndarray_class(cls: Any) -> bool:
    return _class_is(cls, "numpy", "ndarray")


def _is_typeddict(cls: Any) -> bool:
    return isinstance(cls, type) and issubclass(cls, dict) and hasattr(cls, "__total__")


def _is_namedtuple(cls: Any) -> bool:
    return isinstance(cls, type) and issubclass(cls, tuple) and hasattr(cls, "_fields")


def _python_attr(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _fits(value: Any, tp: Any, exact: bool) -> bool:
    """Whether a default value belongs to the Python type `tp` (to put its union branch first)."""
    tp = _unwrap(tp)
    if tp is _NoneType or tp is None:
        return value is None
    if value is None:
        return False
    origin = typing.get_origin(tp)
    if origin is not None:
        if _is_union(tp, origin):
            return any(_fits(value, arg, exact) for arg in typing.get_args(tp))
        if origin in _SEQUENCES:
            return isinstance(value, list) if exact else isinstance(value, (list, tuple))
        if origin is tuple:
            return isinstance(value, tuple)
        if origin in _MAPPINGS:
            return isinstance(value, dict) if exact else isinstance(value, cabc.Mapping)
        tp = origin
    if not isinstance(tp, type):
        return False
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool) and (not exact or type(value) is int)
    if tp is float and not exact and isinstance(value, int) and not isinstance(value, bool):
        return True
    if _is_typeddict(tp):
        return isinstance(value, dict)
    try:
        return type(value) is tp if exact else isinstance(value, tp)
    except TypeError:
        return False


def _branch_key(schema: Any) -> str:
    if isinstance(schema, str):
        return schema
    if isinstance(schema, dict):
        kind = schema.get("type")
        if kind in _avro.NAMED_TYPES:
            return _avro.named_fullname(schema, "")
        return str(kind)
    return repr(schema)


class _Builder:
    def __init__(self, allow_pickle: bool) -> None:
        self.allow_pickle = allow_pickle
        self.defined: dict[Any, str] = {}  # Python type (or tuple key) -> full name already defined
        self.taken: set[str] = set()
        self.tuples = 0
        self.pending: list[tuple[dict, Any, str, bool]] = []

    # -- entry points

    def build(self, tp: Any, where: str) -> Any:
        return self._build(tp, where, tp)

    def field(self, name: str, tp: Any, default: Any, where: str, *, strict: bool) -> dict:
        schema = self._build(tp, where, tp, default)
        field = {"name": name, "type": schema}
        if default is not _EMPTY:
            self.pending.append((field, default, where, strict))
        return field

    def finish(self, root: Any) -> None:
        """Fill in the defaults, now that every named type they may need is defined."""
        named = _avro.collect_named(root)
        for field, default, where, strict in self.pending:
            try:
                datum = convert.to_datum_converter(field["type"], path="", named=named)(default)
                field["default"] = convert.datum_to_avro_default(datum, field["type"], named=named)
            except (ArgumentError, ValueError, SchemaError) as exc:
                if strict:
                    reason = str(exc).lstrip(": ")
                    raise SchemaError(
                        f"{where}: its default {convert.describe_value(default)} cannot be represented "
                        f"as an Avro default ({reason}); use a default of the annotated type "
                        f"(None, bool, int, float, str, bytes, an Enum member, lists and dicts of those)"
                    ) from None
                # a dataclass/NamedTuple field default is a convenience: leave it out
        self.pending.clear()

    # -- errors

    def _unsupported(self, tp: Any, where: str, top: Any, reason: str | None = None) -> Any:
        if self.allow_pickle:
            return {"type": "bytes", "logicalType": _avro.PICKLE}
        if tp is _EMPTY:
            raise SchemaError(f"{where}: has no type annotation; {_FIX}")
        message = f"{where}: cannot derive an Avro schema from {_type_repr(tp)}"
        if top is not tp and top is not _EMPTY:
            message += f" (in {_type_repr(top)})"
        if reason:
            message += f": {reason}"
        raise SchemaError(f"{message}; {_FIX}")

    # -- the mapping

    def _build(self, tp: Any, where: str, top: Any, default: Any = _EMPTY) -> Any:
        tp = _unwrap(tp)
        if tp is _EMPTY:
            return self._unsupported(tp, where, top)
        if tp is None or tp is _NoneType:
            return "null"
        if isinstance(tp, (str, typing.ForwardRef)):
            text = tp if isinstance(tp, str) else tp.__forward_arg__
            raise SchemaError(
                f"{where}: the annotation {text!r} is an unresolved forward reference; define that name at "
                f"module level (importable), or pass real types rather than strings"
            )
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if _is_union(tp, origin):
            return self._union(args, where, top, default)
        if tp is typing.Any or tp is object:
            return self._unsupported(tp, where, top)
        if tp is bool:
            return "boolean"
        if tp is int:
            return "long"
        if tp is float:
            return "double"
        if tp is str:
            return "string"
        if tp is bytes or tp is bytearray:
            return "bytes"
        if isinstance(tp, type) and origin is None:
            return self._class(tp, where, top)
        if origin is not None:
            if _is_ndarray_class(origin):
                return {"type": "bytes", "logicalType": _avro.NDARRAY}
            if origin in _SEQUENCES:
                if len(args) != 1:
                    return self._unsupported(tp, where, top, "give the element type, e.g. list[int]")
                return {"type": "array", "items": self._build(args[0], where, top)}
            if origin is tuple:
                if len(args) == 2 and args[1] is Ellipsis:
                    return {"type": "array", "items": self._build(args[0], where, top)}
                if args == ((),) or (not args and repr(tp).endswith("[()]")):  # the empty tuple type
                    return self._tuple((), where, top)
                if not args:
                    return self._unsupported(tp, where, top, "give the element types, e.g. tuple[int, str]")
                return self._tuple(args, where, top)
            if origin in _MAPPINGS:
                if len(args) != 2:
                    return self._unsupported(
                        tp, where, top, "give the key and value types, e.g. dict[str, int]"
                    )
                if _unwrap(args[0]) is not str:
                    return self._unsupported(
                        tp,
                        where,
                        top,
                        f"Avro map keys are strings, not {_type_repr(args[0])}: use dict[str, ...]",
                    )
                return {"type": "map", "values": self._build(args[1], where, top)}
        return self._unsupported(tp, where, top)

    def _class(self, cls: type, where: str, top: Any) -> Any:
        if issubclass(cls, enum.Enum):
            return self._enum(cls, where, top)
        if cls is datetime.datetime:
            return {"type": "long", "logicalType": _avro.TIMESTAMP_MICROS}
        if cls is datetime.date:
            return {"type": "int", "logicalType": _avro.DATE}
        if cls is decimal.Decimal:
            return {"type": "string", "logicalType": _avro.DECIMAL}
        if dataclasses.is_dataclass(cls):
            return self._dataclass(cls, where)
        if _is_typeddict(cls):
            return self._typeddict(cls, where)
        if _is_namedtuple(cls):
            return self._namedtuple(cls, where, top)
        if _is_ndarray_class(cls):
            return {"type": "bytes", "logicalType": _avro.NDARRAY}
        if _class_is(cls, "pyarrow", "Table"):
            return {"type": "bytes", "logicalType": _avro.ARROW}
        if _class_is(cls, "pandas", "DataFrame"):
            return {"type": "bytes", "logicalType": _avro.ARROW, "python": _avro.PANDAS_PYTHON}
        if cls in (list, tuple, dict, set, frozenset) or issubclass(cls, (list, dict)):
            return self._unsupported(
                cls, where, top, "give the element types, e.g. list[int] or dict[str, int]"
            )
        return self._unsupported(cls, where, top)

    def _union(self, args: tuple, where: str, top: Any, default: Any) -> Any:
        members = [a for a in args if a is _NoneType or a is None]
        ordered = ([_NoneType] if members else []) + [a for a in args if not (a is _NoneType or a is None)]
        if default is not _EMPTY:
            chosen = None
            for exact in (True, False):
                chosen = next((i for i, a in enumerate(ordered) if _fits(default, a, exact)), None)
                if chosen is not None:
                    break
            if chosen:
                ordered.insert(0, ordered.pop(chosen))
        state = (dict(self.defined), set(self.taken), self.tuples)
        schemas: list[tuple[Any, Any]] = []
        for arg in ordered:
            schema = self._build(arg, where, top)
            for part in schema if isinstance(schema, list) else [schema]:
                schemas.append((arg, part))
        seen: dict[str, Any] = {}
        for arg, schema in schemas:
            key = _branch_key(schema)
            if key in seen:
                self.defined, self.taken, self.tuples = state
                if self.allow_pickle:
                    return {"type": "bytes", "logicalType": _avro.PICKLE}
                union = " | ".join(_type_repr(a) for a in ordered)
                raise SchemaError(
                    f"{where}: cannot derive an Avro schema from {union}: {_type_repr(seen[key])} and "
                    f"{_type_repr(arg)} are both Avro {key!r}, and an Avro union holds at most one of each "
                    f"type; {_FIX}"
                )
            seen[key] = arg
        parts = [schema for _, schema in schemas]
        return parts[0] if len(parts) == 1 else parts

    def _name_for(self, cls: type) -> tuple[str, str]:
        namespace = _avro.sanitize_namespace(cls.__module__ or "_")
        base = _avro.sanitize_name(cls.__qualname__.replace(".", "_"))
        name, n = base, 2
        while f"{namespace}.{name}" in self.taken:
            name, n = f"{base}_{n}", n + 1
        self.taken.add(f"{namespace}.{name}")
        return name, namespace

    def _enum(self, cls: type, where: str, top: Any) -> Any:
        if cls in self.defined:
            return self.defined[cls]
        symbols = [member.name for member in cls]  # type: ignore[attr-defined]
        if not symbols:
            return self._unsupported(cls, where, top, "an Avro enum needs at least one member")
        bad = [s for s in symbols if not _avro.is_valid_name(s)]
        if bad:
            return self._unsupported(cls, where, top, f"member names {bad} are not valid Avro symbols")
        name, namespace = self._name_for(cls)
        self.defined[cls] = f"{namespace}.{name}"
        return {
            "type": "enum",
            "name": name,
            "namespace": namespace,
            "symbols": symbols,
            "python": _python_attr(cls),
        }

    def _hints(self, cls: type, where: str) -> dict[str, Any]:
        try:
            return typing.get_type_hints(cls, include_extras=True)
        except Exception:  # unresolvable names: fall back to the raw annotations
            hints: dict[str, Any] = {}
            for klass in reversed(cls.__mro__):
                hints.update(getattr(klass, "__annotations__", {}) or {})
            return hints

    def _record(self, cls: type, fields: list[dict]) -> dict:
        namespace, _, name = self.defined[cls].rpartition(".")
        return {
            "type": "record",
            "name": name,
            "namespace": namespace,
            "fields": fields,
            "python": _python_attr(cls),
        }

    def _start_record(self, cls: type) -> str | None:
        if cls in self.defined:
            return self.defined[cls]
        name, namespace = self._name_for(cls)
        self.defined[cls] = f"{namespace}.{name}"
        return None

    def _check_field_name(self, cls: type, name: str, where: str) -> None:
        if not isinstance(name, str) or not _avro.is_valid_name(name):
            raise SchemaError(
                f"{where}: {_type_repr(cls)} has a field {name!r} that is not a valid Avro name "
                f"(ASCII letters, digits and _, not starting with a digit)"
            )

    def _dataclass(self, cls: type, where: str) -> Any:
        known = self._start_record(cls)
        if known is not None:
            return known
        hints = self._hints(cls, where)
        fields = []
        for f in dataclasses.fields(cls):
            self._check_field_name(cls, f.name, where)
            annotation = hints.get(f.name, f.type)
            default = f.default if f.default is not dataclasses.MISSING else _EMPTY
            if default is _EMPTY and f.default_factory in (list, dict, tuple):  # type: ignore[comparison-overlap]
                default = f.default_factory()
            inner = f"{where}, field {cls.__qualname__}.{f.name}"
            fields.append(self.field(f.name, annotation, default, inner, strict=False))
        return self._record(cls, fields)

    def _namedtuple(self, cls: type, where: str, top: Any) -> Any:
        known = self._start_record(cls)
        if known is not None:
            return known
        hints = self._hints(cls, where)
        defaults = getattr(cls, "_field_defaults", {}) or {}
        fields = []
        for name in cls._fields:  # type: ignore[attr-defined]
            self._check_field_name(cls, name, where)
            inner = f"{where}, field {cls.__qualname__}.{name}"
            fields.append(
                self.field(name, hints.get(name, _EMPTY), defaults.get(name, _EMPTY), inner, strict=False)
            )
        return self._record(cls, fields)

    def _typeddict(self, cls: type, where: str) -> Any:
        known = self._start_record(cls)
        if known is not None:
            return known
        hints = self._hints(cls, where)
        optional = _avro.typeddict_optional_keys(cls)
        fields = []
        for key, annotation in hints.items():
            self._check_field_name(cls, key, where)
            not_required = key in optional
            inner = f"{where}, key {cls.__qualname__}[{key!r}]"
            if not_required:
                value = _unwrap(annotation)
                fields.append(self.field(key, typing.Optional[value], None, inner, strict=True))  # noqa: UP045
            else:
                fields.append(self.field(key, annotation, _EMPTY, inner, strict=True))
        return self._record(cls, fields)

    def _tuple(self, args: tuple, where: str, top: Any) -> Any:
        key: Any = ("tuple", *args)
        try:
            known = self.defined.get(key)
        except TypeError:  # unhashable arguments: no reuse
            key, known = None, None
        if known is not None:
            return known
        self.tuples += 1
        name = f"Tuple_{self.tuples}"
        while f"{_TUPLE_NAMESPACE}.{name}" in self.taken:
            self.tuples += 1
            name = f"Tuple_{self.tuples}"
        self.taken.add(f"{_TUPLE_NAMESPACE}.{name}")
        if key is not None:
            self.defined[key] = f"{_TUPLE_NAMESPACE}.{name}"
        fields = [{"name": f"_{i}", "type": self._build(arg, where, top)} for i, arg in enumerate(args)]
        return {
            "type": "record",
            "name": name,
            "namespace": _TUPLE_NAMESPACE,
            "fields": fields,
            "python": _avro.TUPLE_PYTHON,
        }
