"""`@satchel.function`: declare a function portable, bind artifacts to it, export it as a bundle."""

from __future__ import annotations

import copy
import functools
import inspect
import typing
from collections.abc import Callable, Mapping
from typing import Any

from satchel.packager.environment import Environment
from satchel.packager.task_binding import TaskBinding, bind_task, is_task, is_task_annotation


class Function:
    """A Python function declared portable. Calling it runs it here, in-process, unchanged.

    `bind(**values)` fixes parameters to concrete values (stored as artifacts at export), or binds a
    parameter annotated `satchel.flows.Task` to a finished flow task (its artifacts go into the bundle);
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
        tasks: Mapping[str, TaskBinding] | None = None,
        example: Mapping[str, Any] | None = None,
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
        self.tasks: dict[str, TaskBinding] = dict(tasks or {})
        # a call's arguments by parameter name, checked against the request schema at export
        self.example: Mapping[str, Any] | None = example
        functools.update_wrapper(self, func)
        self.__signature__ = self.signature

    # -- local behaviour ----------------------------------------------------------------------------

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.bound or self.tasks:
            bound = self.signature.bind(*args, **kwargs)
            tasks = {name: binding.task for name, binding in self.tasks.items()}
            return self.func(**self.bound, **tasks, **bound.arguments)
        return self.func(*args, **kwargs)

    def __repr__(self) -> str:
        bound = f" bound={sorted(self.bound)}" if self.bound else ""
        tasks = "".join(f" {name}={b.pathspec}" for name, b in sorted(self.tasks.items()))
        return f"<satchel.Function {self.name}{self.signature}{bound}{tasks}>"

    @property
    def signature(self) -> inspect.Signature:
        """The signature callers see: the function's, minus bound parameters."""
        full = inspect.signature(self.func)
        fixed = self.bound.keys() | self.tasks.keys()
        return full.replace(parameters=[p for n, p in full.parameters.items() if n not in fixed])

    def type_hints(self) -> dict[str, Any]:
        try:
            return typing.get_type_hints(self.func, include_extras=True)
        except Exception as exc:  # NameError for an unresolvable forward reference, ...
            from satchel.core.errors import SchemaError

            raise SchemaError(f"cannot resolve the type hints of {self.name!r}: {exc}") from None

    # -- binding ------------------------------------------------------------------------------------

    def bind(self, **values: Any) -> Function:
        """A new Function with these parameters fixed; they vanish from its signature and schema.

        A parameter annotated `satchel.flows.Task` takes a finished flow task (`run["fit"].task`); all
        its artifacts go into the bundle, or only those of `artifacts=["model", ...]` (when the function
        has no parameter called `artifacts`). The worker's Task unpickles each on first access.
        """
        if not values:
            raise TypeError("bind() needs at least one name=value")
        params = inspect.signature(self.func).parameters
        selection = values.pop("artifacts", None) if "artifacts" not in params else None
        hints = self._lenient_hints()
        task_params = [k for k, v in values.items() if is_task(v) or is_task_annotation(hints.get(k))]
        if selection is not None and len(task_params) != 1:
            raise TypeError(
                f"artifacts= chooses the artifacts of the one flow task bound in the same call; "
                f"this call binds {len(task_params)} tasks to {self.name!r}"
            )
        for key in values:
            if key in self.bound or key in self.tasks:
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
        tasks = {
            key: bind_task(self.func, key, hints.get(key), values.pop(key), selection) for key in task_params
        }
        return Function(
            self.func,
            environment=self.environment,
            name=self.name,
            allow_pickle=self.allow_pickle,
            bound={**self.bound, **values},
            tasks={**self.tasks, **tasks},
            example=self.example,
        )

    def _lenient_hints(self) -> dict[str, Any]:
        """Type hints where they resolve, else the raw annotations (binding must not need all of them)."""
        try:
            return typing.get_type_hints(self.func)
        except Exception:
            return dict(getattr(self.func, "__annotations__", {}))

    # -- export -------------------------------------------------------------------------------------

    def export(
        self,
        name: str | None = None,
        store: str | None = None,
        *,
        example: Mapping[str, Any] | None = None,
        progress: Any = None,
    ):
        """Write this function as a bundle into `store` (default: SATCHEL_STORE); return its BundleRef.

        `store` is a URL (`file:///path`, `s3://bucket/prefix`) or a plain directory path. `example`: a
        call's arguments by parameter name (default: the decorator's), checked against the schema and
        stored in the bundle (OpenAPI examples, the notebook summary). `progress`: as for `satchel.load`
        (default: a spinner on a terminal or in Jupyter, else the `satchel.progress` logger).
        """
        from satchel.packager.export import export

        fn = self if example is None else _with_example(self, example)
        return export(fn, name=name or self.name, store=store, progress=progress)


def _with_example(fn: Function, example: Mapping[str, Any]) -> Function:
    """`fn` with another example (the rest shared: it is only exported)."""
    other = copy.copy(fn)
    other.example = example
    return other


def function(
    func: Callable | None = None,
    *,
    environment: Environment | None = None,
    name: str | None = None,
    allow_pickle: bool = False,
    example: Mapping[str, Any] | None = None,
) -> Any:
    """Declare a function portable: `@satchel.function` or `@satchel.function(environment=...)`.

    `allow_pickle=True` accepts parameters and results that have no Avro form (pickled, Python-only);
    the bundle is then marked not portable. `example={"n": 1200000}`: a call's arguments by parameter
    name, checked against the schema at export and stored in the bundle (OpenAPI examples, the
    notebook summary, `satchel inspect`).
    """

    def wrap(f: Callable) -> Function:
        return Function(f, environment=environment, name=name, allow_pickle=allow_pickle, example=example)

    if func is not None:
        return wrap(func)
    return wrap
