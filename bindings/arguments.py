"""Argument errors in one wording, however a call comes in (a Python call, `satchel call`, REST):

    missing parameter 'n'
    unknown parameter 'x' (parameters: n, suffix)
    parameter 'n': expected an integer, got string 'many'

The last comes from the converters, in the vocabulary of what was given (JSON for the CLI and REST,
Python types for a Python call). Each error names its parameter in `.parameter` (None for the whole).
`JsonArguments` reads a JSON object of parameter name -> value with these errors.

Python 3.9+, standard library only (the codecs, which the worker runs too, use the messages).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from satchel.core.errors import ArgumentError


def argument_error(message: str, parameter: str | None = None) -> ArgumentError:
    exc = ArgumentError(message)
    exc.parameter = parameter  # type: ignore[attr-defined]
    return exc


def _quoted(names: Sequence[str]) -> str:
    return ", ".join(repr(n) for n in names)


def missing(names: Sequence[str]) -> ArgumentError:
    """No argument for these parameters (which have no default)."""
    noun = "parameter" if len(names) == 1 else "parameters"
    return argument_error(f"missing {noun} {_quoted(names)}", names[0] if names else None)


def unknown(names: Sequence[str], accepted: Iterable[str]) -> ArgumentError:
    """Arguments for parameters the function does not have."""
    noun = "parameter" if len(names) == 1 else "parameters"
    known = ", ".join(accepted) or "none"
    return argument_error(
        f"unknown {noun} {_quoted(names)} (parameters: {known})", names[0] if names else None
    )


def path_of(name: str) -> str:
    """How a converter's error message starts for parameter `name`."""
    return f"parameter {name!r}"


_JSON_KINDS = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "a boolean"}
_JSON_KINDS[type(None)] = "null"


class JsonArguments:
    """The keyword arguments of a JSON object of parameter name -> value, for a request schema.

    A parameter with a default may be left out (the call fills it in); the values are Python values.
    """

    def __init__(self, request_schema: dict) -> None:
        from satchel.bindings.jsonform import JsonForm
        from satchel.bindings.schema import named_types

        named = named_types(request_schema)
        fields = request_schema["fields"]
        self.forms = {f["name"]: JsonForm(f["type"], named=named, path=path_of(f["name"])) for f in fields}
        self.required = [f["name"] for f in fields if "default" not in f]

    def parse(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            kind = _JSON_KINDS.get(type(body), type(body).__name__)
            raise argument_error(f"the arguments are a JSON object of parameter name -> value, not {kind}")
        unknown_names = [k for k in body if k not in self.forms]
        if unknown_names:
            raise unknown(unknown_names, self.forms)
        missing_names = [n for n in self.required if n not in body]
        if missing_names:
            raise missing(missing_names)
        out = {}
        for name, value in body.items():
            try:
                out[name] = self.forms[name].json_to_value(value)
            except ArgumentError as exc:
                raise argument_error(str(exc), name) from None
        return out
