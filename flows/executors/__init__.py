"""Executors: where tasks run. One interface (`base.Executor`); backends registered by name in EXECUTORS."""

from __future__ import annotations

from satchel.core.registry import Entry, Registry
from satchel.flows.executors.base import Executor, Finished, Job

__all__ = ["EXECUTORS", "Executor", "Finished", "Job", "get_executor"]

EXECUTORS: Registry[Executor] = Registry(
    "executor",
    {
        "local": Entry("satchel.flows.executors.local:LocalExecutor"),
        "ray": Entry("satchel.flows.executors.ray:RayExecutor", extra="ray"),
    },
)


def get_executor(name: str, **options: object) -> Executor:
    """The executor registered as `name` (`local`, or `ray`: needs the optional Ray, imported only here)."""
    factory = EXECUTORS.get(name)
    if name == "local" and options.pop("address", None):
        raise ValueError("a Ray address (--ray-address) is only for the ray executor (--executor ray)")
    return factory(**options)
