"""`FlowSpec`: the base class users write flows on, and what a step sees of its task (artifacts, inputs)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from satchel.flows.errors import ArtifactError, FlowError
from satchel.flows.parameters import Parameter


@dataclass
class TaskContext:
    """What the task runner gives a step instance: where its inherited artifacts and inputs are."""

    step: str
    pathspec: str
    load: Callable[[str, str, str], Any]  # (digest, name, where) -> value
    inherited: dict[str, str] = field(default_factory=dict)  # name -> digest
    inputs: list[InputView] | None = None
    foreach_frame: dict | None = None
    #: the transition read from the source, and the one the step made: `{"steps": [...], "foreach": ...}`
    #: or, for a switch, `{"switch": {case: step}, "condition": ...}`
    expected_next: dict | None = None
    next_called: dict | None = None
    loaded: dict[str, Any] = field(default_factory=dict)


class FlowSpec:
    """Subclass it, write `@step` methods from `start` to `end`, and call `MyFlow()` under `__main__`
    to get the command line (`python flow.py run`, `show`)."""

    def __init__(self, use_cli: bool = True) -> None:
        if use_cli:
            from satchel.flows.cli import main

            main(type(self))

    # -- what steps call ------------------------------------------------------------------------------

    def next(self, *steps: Callable | dict, foreach: str | None = None, condition: str | None = None) -> None:
        """Go on to `steps` (several: a branch), or run one step for each item of `self.<foreach>`, or, given
        a dict `{"case": self.step, ...}` and `condition="<artifact>"`, to the step the artifact's value picks."""
        ctx = self._task_context()
        if ctx.next_called is not None:
            raise FlowError(f"step {ctx.step!r}: self.next() called twice")
        if steps and isinstance(steps[0], dict):
            if len(steps) != 1 or foreach is not None or not isinstance(condition, str):
                raise FlowError(
                    f"step {ctx.step!r}: a switch is self.next({{'case': self.step, ...}}, condition='<artifact>')"
                )
            call = {
                "switch": {k: _step_name(ctx.step, t) for k, t in steps[0].items()},
                "condition": condition,
            }
        else:
            if condition is not None:
                raise FlowError(f"step {ctx.step!r}: condition= needs a dict of steps as the only argument")
            call = {"steps": [_step_name(ctx.step, t) for t in steps], "foreach": foreach}
        if ctx.expected_next is not None and call != ctx.expected_next:
            raise FlowError(
                f"step {ctx.step!r}: self.next() was called with {call}, which differs from the graph read from "
                f"the source ({ctx.expected_next}); call self.next() once, with literal arguments"
            )
        ctx.next_called = call

    @property
    def input(self) -> Any:
        """The item of the foreach this task runs for."""
        ctx = self._task_context()
        frame = ctx.foreach_frame
        if frame is None:
            raise AttributeError(f"step {ctx.step!r} is not inside a foreach, so it has no self.input")
        if "input" not in ctx.loaded:
            values = ctx.load(frame["digest"], frame["var"], frame["split_pathspec"])
            ctx.loaded["input"] = (
                list(values)[frame["index"]] if not hasattr(values, "__getitem__") else values[frame["index"]]
            )
        return ctx.loaded["input"]

    @property
    def index(self) -> int | None:
        """The position of this task in its innermost foreach (None outside a foreach)."""
        frame = self._task_context().foreach_frame
        return None if frame is None else frame["index"]

    def merge_artifacts(self, inputs: Inputs, exclude: Iterable[str] = ()) -> None:
        """In a join: take every artifact the inputs agree on (same content); a conflict is an error
        unless the name is excluded or already set in this step."""
        ctx = self._task_context()
        excluded = set(exclude)
        seen: dict[str, set[str]] = {}
        for view in inputs:
            for name, digest in view._artifacts.items():
                seen.setdefault(name, set()).add(digest)
        for name, digests in sorted(seen.items()):
            if name in excluded or name in self.__dict__:
                continue
            if len(digests) > 1:
                raise ArtifactError(
                    f"step {ctx.step!r}: inputs disagree on artifact {name!r}; set self.{name} or pass exclude=[{name!r}]"
                )
            ctx.inherited[name] = next(iter(digests))

    # -- artifacts ------------------------------------------------------------------------------------

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return self._load_artifact(name)

    def _task_context(self) -> TaskContext:
        ctx = self.__dict__.get("_ctx")
        if ctx is None:
            raise FlowError(
                f"{type(self).__name__} is not running a task; run it with `python flow.py run` or Runner"
            )
        return ctx

    def _load_artifact(self, name: str) -> Any:
        if name in self.__dict__:
            return self.__dict__[name]
        ctx = self._task_context()
        if name in ctx.loaded:
            return ctx.loaded[name]
        if name not in ctx.inherited:
            raise AttributeError(
                f"step {ctx.step!r} has no artifact {name!r} (no earlier step set self.{name})"
            )
        value = ctx.load(ctx.inherited[name], name, ctx.pathspec)
        ctx.loaded[name] = value
        return value

    def _set_artifacts(self) -> dict[str, Any]:
        """Artifacts assigned in this task (names not starting with `_`)."""
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}

    @classmethod
    def _parameters(cls) -> dict[str, Parameter]:
        params: dict[str, Parameter] = {}
        for klass in reversed(cls.__mro__):
            for attr, value in vars(klass).items():
                if isinstance(value, Parameter):
                    params[attr] = value
        return params


def _step_name(step: str, target: Any) -> str:
    name = getattr(target, "__name__", None)
    if not callable(target) or name is None:
        raise FlowError(f"step {step!r}: self.next() takes steps (self.<step>), got {target!r}")
    return name


class InputView:
    """One input of a join: its artifacts by attribute, loaded lazily."""

    def __init__(
        self, step: str, pathspec: str, artifacts: dict[str, str], load: Callable[[str, str, str], Any]
    ) -> None:
        self._step = step
        self._pathspec = pathspec
        self._artifacts = artifacts
        self._load = load
        self._cache: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name not in self._cache:
            if name not in self._artifacts:
                raise AttributeError(f"input {self._pathspec} has no artifact {name!r}")
            self._cache[name] = self._load(self._artifacts[name], name, self._pathspec)
        return self._cache[name]

    def __repr__(self) -> str:
        return f"<input {self._pathspec}>"


class Inputs:
    """The inputs of a join step: iterable, indexable, and `inputs.<step>` in a branch join."""

    def __init__(self, views: list[InputView]) -> None:
        self._views = views

    def __iter__(self) -> Iterator[InputView]:
        return iter(self._views)

    def __len__(self) -> int:
        return len(self._views)

    def __getitem__(self, index: int) -> InputView:
        return self._views[index]

    def __getattr__(self, name: str) -> InputView:
        if name.startswith("_"):
            raise AttributeError(name)
        for view in self._views:
            if view._step == name:
                return view
        raise AttributeError(
            f"no input from step {name!r} (inputs: {', '.join(v._step for v in self._views)})"
        )
