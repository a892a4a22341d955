"""Stand-ins for the declaration API inside a worker.

A function's module runs `@satchel.function(environment=satchel.Environment(...))` when the worker
imports it. The worker has only part of Satchel (no packager, none of its dependencies), so these
shims make the declaration a no-op that keeps the plain function; the worker kit's `satchel` package
(`face.py`) exports them.
"""

from __future__ import annotations

from typing import Any


class Environment:
    def __init__(self, python: Any = None, pypi: Any = (), **_: Any) -> None:
        self.python = python
        self.pypi = tuple(pypi or ())

    @classmethod
    def from_requirements(cls, *args: Any, **kwargs: Any) -> Environment:
        return cls()

    @classmethod
    def from_current(cls, *args: Any, **kwargs: Any) -> Environment:
        return cls()

    # a module may name its environment by reference; inside the worker it is already materialized
    from_file = named = of = resolved = from_current

    def extend(self, *args: Any, **kwargs: Any) -> Environment:
        return self


class Function:
    """Keeps the plain function; calling it calls the function."""

    def __init__(self, func: Any, **_: Any) -> None:
        self.func = func
        self.__wrapped__ = func
        self.__name__ = getattr(func, "__name__", "function")
        self.__doc__ = getattr(func, "__doc__", None)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.func(*args, **kwargs)

    def bind(self, **_: Any) -> Function:
        return self

    def export(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("export() is not available inside a Satchel worker")


def function(func: Any = None, **options: Any) -> Any:
    if func is not None:
        return Function(func)
    return lambda f: Function(f)
