"""How the converters say a value does not fit: a `Mismatch` raised where it happens, given its path
on the way out, and turned into an ArgumentError at the top ("parameter 'rows'[2].price: expected ...").

Shared by the Avro converters (convert.py) and the JSON form (jsonform.py).
"""

from __future__ import annotations

import reprlib
from collections.abc import Callable
from typing import Any

from satchel.core.errors import ArgumentError

from . import _avro
from ._avro import Converter

__all__ = ["Mismatch", "fail", "wrap", "at", "segment_for_field", "describe_value", "type_label"]

_short = reprlib.Repr()
_short.maxstring = 40
_short.maxother = 40
_short.maxlong = 40
_short.maxlist = _short.maxtuple = _short.maxset = _short.maxfrozenset = _short.maxdict = 4
_short.maxlevel = 2


def type_label(value: Any) -> str:
    cls = type(value)
    module = getattr(cls, "__module__", "builtins")
    name = getattr(cls, "__qualname__", cls.__name__)
    return name if module == "builtins" else f"{module}.{name}"


def describe_value(value: Any) -> str:
    """'str 'abc'', 'list [1, 2, 3, 4, ...]', 'None': a value's type and short repr, for messages."""
    if value is None:
        return "None"
    try:
        text = _short.repr(value)
    except Exception:  # a broken __repr__ must not hide the real error
        text = "<unrepresentable>"
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type_label(value)} {text}"


class Mismatch(Exception):
    """A value that does not fit, inside the converters. Containers add path segments on the way out."""

    def __init__(self, message: str, detail: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail
        self.segments: list[str] = []

    def where(self, prefix: str) -> str:
        return prefix + "".join(reversed(self.segments))

    def render(self, prefix: str) -> str:
        return f"{self.where(prefix)}: {self.message}"


def fail(
    expected: str, value: Any, detail: str | None = None, describe: Callable[[Any], str] = describe_value
) -> Mismatch:
    """The mismatch "expected <expected>, got <describe(value)> (<detail>)"."""
    message = f"expected {expected}, got {describe(value)}"
    if detail:
        message += f" ({detail})"
    return Mismatch(message, detail)


def wrap(inner: Converter, path: str) -> Converter:
    """`inner` raising ArgumentError, its message starting with `path`, where it raised a Mismatch."""

    def convert(value: Any) -> Any:
        try:
            return inner(value)
        except Mismatch as exc:
            raise ArgumentError(exc.render(path)) from None

    return convert


def at(segment: str, conv: Converter, value: Any) -> Any:
    """`conv(value)`, where a mismatch happens at `segment` ("[2]", ".price") of the value converted.

    For error paths: the converters' loops do the same inline, saving a call per item.
    """
    try:
        return conv(value)
    except Mismatch as exc:
        exc.segments.append(segment)
        raise


def segment_for_field(name: str) -> str:
    """The path segment of a record field: ".price", or "['not a name']"."""
    return "." + name if _avro.is_valid_name(name) else f"[{name!r}]"
