"""Step decorators: `@step` marks a method as a step; the others attach options to it. Flow decorators
(`@schedule`, `@trigger_on_finish`) decorate the FlowSpec class and are recorded in its metadata.

The decorators only record; the driver and executors honour them. Order does not matter.
"""

from __future__ import annotations

import re
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


def environment(
    pypi: list[str] | None = None,
    python: str | None = None,
    *,
    conda: list[str] | None = None,
    channels: list[str] | None = None,
    named: str | None = None,
    base: Any = None,
) -> Callable[[Callable], Callable]:
    """Run the step inside a materialized Satchel environment with these packages.

    `pypi`: requirements as pip takes them; `conda`: conda match specs, solved from `channels`; `python`:
    "major.minor". `base`: extend another environment (its packages stay pinned exactly) with `pypi` and
    `conda`: a flow `Task` or its pathspec "Flow/run_id/step/task_id", a bundle (`BundleRef` or its
    string), or a named environment "team/name[:tag]" (also `named=`). Bases are read when the run
    starts; names and pathspecs are looked up in the run's store.
    """
    options: dict[str, Any] = {"pypi": _specs("pypi", pypi), "python": python}
    if python is not None and not isinstance(python, str):
        raise TypeError(f"@environment(python=...) takes a version string such as '3.11', not {python!r}")
    if conda is not None:
        options["conda"] = _specs("conda", conda)
    if channels is not None:
        options["channels"] = _specs("channels", channels)
    if named is not None and base is not None:
        raise ValueError("@environment takes one of named= and base=, not both (named=NAME is base=NAME)")
    if named is not None:
        if not isinstance(named, str) or not named.strip():
            raise ValueError(f"@environment(named=...) takes a name 'team/name[:tag]', got {named!r}")
        options["named"] = named.strip()
    if base is not None:
        options.update(_base(base))
    return _attach("environment", options)


def _specs(key: str, values: Any) -> list[str]:
    if isinstance(values, str):
        raise TypeError(f"@environment({key}=...) takes a list of strings, not one string: [{values!r}]")
    values = list(values or [])
    for value in values:
        if not isinstance(value, str):
            raise TypeError(f"@environment({key}=...) takes strings, got {type(value).__name__} {value!r}")
    return values


def _base(base: Any) -> dict[str, Any]:
    """`base=` as the run records it (JSON): a string, and for a task object the store it lives in."""
    if isinstance(base, str):
        if not base.strip():
            raise ValueError("@environment(base=...) is an empty string")
        return {"base": base.strip()}
    if hasattr(base, "environment_lock") and isinstance(getattr(base, "pathspec", None), str):
        store = getattr(base, "store_url", None)
        return {"base": base.pathspec, **({"base_store": store} if store else {})}
    from satchel.packager.refs import BundleRef

    if isinstance(base, BundleRef):
        return {"base": str(base)}
    raise TypeError(
        "@environment(base=...) takes a flow Task, a task pathspec 'Flow/run_id/step/task_id', a bundle "
        f"reference (BundleRef or its string) or a named environment 'team/name[:tag]'; got {type(base).__name__}"
    )


@dataclass(frozen=True)
class CaughtException:
    """What `@catch(var=...)` stores when a task fails: the exception's type, message and traceback."""

    type: str
    message: str
    traceback: str = field(repr=False, default="")

    def __str__(self) -> str:
        return f"{self.type}: {self.message}"


# -- flow (class) decorators: recorded in the flow's metadata for production schedulers -------------

FLOW_DECOS = "_satchel_flow_decos"
_CRON_FIELD = re.compile(r"^[0-9A-Za-z*/,?#-]+$")
_PRESETS = {"hourly": "0 * * * *", "daily": "0 0 * * *", "weekly": "0 0 * * 0"}


def _attach_flow(name: str, options: dict[str, Any]) -> Callable[[type], type]:
    def decorate(cls: type) -> type:
        from satchel.flows.spec import FlowSpec

        if not (isinstance(cls, type) and issubclass(cls, FlowSpec)):
            raise TypeError(f"@{name} decorates a FlowSpec subclass, got {cls!r}")
        if name in cls.__dict__.get(FLOW_DECOS, {}):
            raise TypeError(f"@{name} is applied twice to {cls.__qualname__}")
        decos = dict(getattr(cls, FLOW_DECOS, {}))
        decos[name] = options
        setattr(cls, FLOW_DECOS, decos)
        return cls

    return decorate


def flow_decorators(flow_cls: type) -> dict[str, dict]:
    """The flow decorators of a FlowSpec subclass by name (`schedule`, `trigger_on_finish`)."""
    return dict(getattr(flow_cls, FLOW_DECOS, {}))


def schedule(
    cron: str | None = None,
    *,
    hourly: bool = False,
    daily: bool = False,
    weekly: bool = False,
    timezone: str | None = None,
) -> Callable[[type], type]:
    """Run the flow on a schedule: a 5-field `cron` string, or one of `hourly`, `daily`, `weekly`.
    Only recorded (in each run and `show`); a production scheduler compiles it."""
    for key, flag in (("hourly", hourly), ("daily", daily), ("weekly", weekly)):
        if not isinstance(flag, bool):
            raise ValueError(f"@schedule({key}=...) must be True or False, got {flag!r}")
    given = [
        k
        for k, v in (("cron", cron is not None), ("hourly", hourly), ("daily", daily), ("weekly", weekly))
        if v
    ]
    if len(given) != 1:
        got = " and ".join(given) if given else "none of them"
        raise ValueError(
            f"@schedule takes exactly one of cron=, hourly=True, daily=True, weekly=True; got {got}"
        )
    if cron is not None:
        if not isinstance(cron, str):
            raise ValueError(f"@schedule(cron=...) must be a string, got {type(cron).__name__}")
        fields = cron.split()
        if len(fields) != 5:
            raise ValueError(
                f"@schedule(cron={cron!r}) must have 5 fields (minute hour day-of-month month day-of-week), "
                f"it has {len(fields)}"
            )
        bad = [f for f in fields if not _CRON_FIELD.match(f)]
        if bad:
            raise ValueError(f"@schedule(cron={cron!r}): field {bad[0]!r} is not a cron field")
        expression = " ".join(fields)
    else:
        expression = _PRESETS[given[0]]
    if timezone is not None:
        if not isinstance(timezone, str):
            raise ValueError(f"@schedule(timezone=...) must be an IANA zone name, got {timezone!r}")
        import zoneinfo

        try:
            zoneinfo.ZoneInfo(timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"@schedule(timezone={timezone!r}) is not a known IANA time zone (like 'Europe/Paris')"
            ) from None
    return _attach_flow("schedule", {"cron": expression, "timezone": timezone, "given": given[0]})


def _flow_name(value: Any, key: str) -> str:
    from satchel.flows.spec import FlowSpec

    if isinstance(value, type) and issubclass(value, FlowSpec):
        return value.__name__
    if isinstance(value, str):
        if value and all(part.isidentifier() for part in value.split(".")):
            return value
        raise ValueError(f"@trigger_on_finish({key}=...): {value!r} is not a flow name")
    raise TypeError(
        f"@trigger_on_finish({key}=...) takes a flow name (str) or a FlowSpec subclass, "
        f"got {type(value).__name__}"
    )


def trigger_on_finish(flow: Any = None, *, flows: list | tuple | None = None) -> Callable[[type], type]:
    """Run this flow when `flow` (or any of `flows`) finishes successfully. Only recorded, like @schedule."""
    if (flow is None) == (flows is None):
        raise ValueError("@trigger_on_finish takes exactly one of flow= or flows=")
    if flow is not None:
        names = [_flow_name(flow, "flow")]
    else:
        if not isinstance(flows, (list, tuple)) or not flows:
            raise TypeError(f"@trigger_on_finish(flows=...) takes a non-empty list of flows, got {flows!r}")
        names = [_flow_name(f, "flows") for f in flows]
    return _attach_flow("trigger_on_finish", {"flows": names})
