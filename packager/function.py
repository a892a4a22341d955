"""`@satchel.function`: declare a function portable, bind artifacts to it, export it as a bundle."""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable, Mapping
from typing import Any

from satchel.packager.environment import Environment


class Function:
    """A Python function declared portable. Calling it runs it here, in-process, unchanged.

    `bind(**values)` fixes parameters to concrete values (stored as artifacts at export);
    `export(name=..., store=...)` writes a bundle and returns its `BundleRef`.
    """

    def __init__(
        self,
        func: Callable,
        *,
        environment: Environment | None = None,
        name: str | None = None,
        allow_pickle: bool = False,
        bound: Mapping[str, Any] | None = None,
    ) -> None:
        if isinstance(func, Function):
            func = func.func
        if not callable(func):
            raise TypeError(f"@satchel.function decorates a function, got {type(func).__name__}")
        if environment is not None and not isinstance(environment, Environment):
            raise TypeError(
                f"environment= takes a satchel.Environment, got {type(environment).__name__}; "
                "e.g. satchel.Environment(python='3.11', pypi=['numpy==2.1.3'])"
            )
        self.func = func
        self.environment = environment or Environment()
        self.name = name or func.__name__
        self.allow_pickle = allow_pickle
        self.bound: dict[str, Any] = dict(bound or {})
        functools.update_wrapper(self, func)
        self.__signature__ = self.signature

    # -- local behaviour ----------------------------------------------------------------------------

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.bound:
            bound = self.signature.bind(*args, **kwargs)
            return self.func(**self.bound, **bound.arguments)
        return self.func(*args, **kwargs)

    def __repr__(self) -> str:
        bound = f" bound={sorted(self.bound)}" if self.bound else ""
        return f"<satchel.Function {self.name}{self.signature}{bound}>"

    @property
    def signature(self) -> inspect.Signature:
        """The signature callers see: the function's, minus bound parameters."""
        full = inspect.signature(self.func)
        return full.replace(parameters=[p for n, p in full.parameters.items() if n not in self.bound])

    def type_hints(self) -> dict[str, Any]:
        try:
            return typing.get_type_hints(self.func, include_extras=True)
        except Exception as exc:  # NameError for an unresolvable forward reference, ...
            from satchel.errors import SchemaError

            raise SchemaError(f"cannot resolve the type hints of {self.name!r}: {exc}") from None

    # -- binding ------------------------------------------------------------------------------------

    def bind(self, **values: Any) -> Function:
        """A new Function with these parameters fixed; they vanish from its signature and schema."""
        if not values:
            raise TypeError("bind() needs at least one name=value")
        params = inspect.signature(self.func).parameters
        for key in values:
            if key in self.bound:
                raise TypeError(f"parameter {key!r} of {self.name!r} is already bound")
            param = params.get(key)
            if param is None:
                raise TypeError(
                    f"{self.name!r} has no parameter {key!r}; its parameters are: {', '.join(params)}"
                )
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD, param.POSITIONAL_ONLY):
                raise TypeError(
                    f"parameter {key!r} of {self.name!r} cannot be bound (it is {param.kind.description})"
                )
        return Function(
            self.func,
            environment=self.environment,
            name=self.name,
            allow_pickle=self.allow_pickle,
            bound={**self.bound, **values},
        )

    # -- export -------------------------------------------------------------------------------------

    def export(self, name: str | None = None, store: str | None = None, *, progress: bool | None = None):
        """Write this function as a bundle into `store` (default: SATCHEL_STORE); return its BundleRef.

        `store` is a URL (`file:///path`, `s3://bucket/prefix`) or a plain directory path.
        """
        import sys

        from satchel.packager.export import export

        if progress is None:
            progress = sys.stderr.isatty()
        return export(self, name=name or self.name, store=store, progress=progress)


def function(
    func: Callable | None = None,
    *,
    environment: Environment | None = None,
    name: str | None = None,
    allow_pickle: bool = False,
) -> Any:
    """Declare a function portable: `@satchel.function` or `@satchel.function(environment=...)`.

    `allow_pickle=True` accepts parameters and results that have no Avro form (pickled, Python-only);
    the bundle is then marked not portable.
    """

    def wrap(f: Callable) -> Function:
        return Function(f, environment=environment, name=name, allow_pickle=allow_pickle)

    if func is not None:
        return wrap(func)
    return wrap
