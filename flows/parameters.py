"""`Parameter`: a run-time input of a flow, given on the command line or to `Runner.run`."""

from __future__ import annotations

import json
from typing import Any

_MISSING = object()


class Parameter:
    """`alpha = Parameter("alpha", default=0.5)`: the type comes from the default (or `type=`).

    Read as `self.alpha` in every step; read-only. Without a default the parameter is required.
    """

    def __init__(
        self, name: str, default: Any = _MISSING, *, type: type | None = None, help: str = ""
    ) -> None:  # noqa: A002
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"parameter name must be an identifier, got {name!r}")
        self.name = name
        self.default = default
        self.type = type or (
            builtins_type(default) if default is not _MISSING and default is not None else str
        )
        self.help = help
        self.attr = name

    @property
    def required(self) -> bool:
        return self.default is _MISSING

    def __set_name__(self, owner: type, attr: str) -> None:
        self.attr = attr

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        return obj._load_artifact(self.attr)

    def __set__(self, obj: Any, value: Any) -> None:
        raise AttributeError(f"parameter {self.name!r} is read-only")

    def convert(self, value: Any) -> Any:
        """The value coerced to the parameter's type (strings from the command line are parsed)."""
        if (
            value is None
            or isinstance(value, self.type)
            and not (self.type is int and isinstance(value, bool))
        ):
            return value
        try:
            if self.type is bool and isinstance(value, str):
                lowered = value.strip().lower()
                if lowered not in ("1", "0", "true", "false", "yes", "no"):
                    raise ValueError(value)
                return lowered in ("1", "true", "yes")
            if self.type in (list, dict) and isinstance(value, str):
                parsed = json.loads(value)
                if not isinstance(parsed, self.type):
                    raise ValueError(value)
                return parsed
            if self.type is int and isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return self.type(value)
        except (TypeError, ValueError):
            raise ValueError(f"parameter {self.name!r} expects {self.type.__name__}, got {value!r}") from None

    def __repr__(self) -> str:
        default = "required" if self.required else f"default={self.default!r}"
        return f"Parameter({self.name!r}, {default})"


def builtins_type(value: Any) -> type:
    return type(value)
