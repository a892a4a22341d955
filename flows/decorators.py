"""Step decorators: `@step` marks a method as a step; the others attach options to it.

The decorators only record; the runtime and executors honour them. Order does not matter.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

STEP_MARK = "_satchel_step"
DECOS = "_satchel_decos"


def step(func: Callable) -> Callable:
    """Mark a FlowSpec method as a step."""
    setattr(func, STEP_MARK, True)
    return func


def _attach(name: str, options: dict[str, Any]) -> Callable[[Callable], Callable]:
    def decorate(func: Callable) -> Callable:
        decos = dict(getattr(func, DECOS, {}))
        if name in decos:
            raise TypeError(f"@{name} is applied twice to {func.__qualname__}")
        decos[name] = options
        setattr(func, DECOS, decos)
        return func

    return decorate


def _positive(name: str, key: str, value: Any, *, allow_zero: bool = False) -> None:
    ok = (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and (value >= 0 if allow_zero else value > 0)
    )
    if not ok:
        raise ValueError(
            f"@{name}({key}=...) must be a {'non-negative' if allow_zero else 'positive'} number, got {value!r}"
        )


def retry(times: int = 3) -> Callable[[Callable], Callable]:
    """Run a failing task again, up to `times` more attempts."""
    if not isinstance(times, int) or times < 0:
        raise ValueError(f"@retry(times=...) must be a non-negative integer, got {times!r}")
    return _attach("retry", {"times": times})


def catch(var: str | None = None) -> Callable[[Callable], Callable]:
    """When the task fails after its retries, store the exception in artifact `var` and go on."""
    if var is not None and (not isinstance(var, str) or not var.isidentifier() or var.startswith("_")):
        raise ValueError(f"@catch(var=...) must name an artifact (an identifier), got {var!r}")
    return _attach("catch", {"var": var})


def timeout(seconds: float = 0, minutes: float = 0, hours: float = 0) -> Callable[[Callable], Callable]:
    """Kill an attempt that runs longer than the given time (it counts as a failure)."""
    total = seconds + 60 * minutes + 3600 * hours
    _positive("timeout", "seconds", total)
    return _attach("timeout", {"seconds": float(total)})


def resources(cpu: float = 1, memory: int | None = None, gpu: int = 0) -> Callable[[Callable], Callable]:
    """Resources a task of the step needs (cpu counts against the local pool; all are recorded)."""
    _positive("resources", "cpu", cpu)
    if memory is not None:
        _positive("resources", "memory", memory)
    _positive("resources", "gpu", gpu, allow_zero=True)
    return _attach("resources", {"cpu": cpu, "memory": memory, "gpu": gpu})


def environment(pypi: list[str] | None = None, python: str | None = None) -> Callable[[Callable], Callable]:
    """Run the step inside a materialized Satchel environment with these packages."""
    return _attach("environment", {"pypi": list(pypi or []), "python": python})


@dataclass(frozen=True)
class CaughtException:
    """What `@catch(var=...)` stores when a task fails: the exception's type, message and traceback."""

    type: str
    message: str
    traceback: str = field(repr=False, default="")

    def __str__(self) -> str:
        return f"{self.type}: {self.message}"
