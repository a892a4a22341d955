"""Executors: where tasks run. One interface (`base.Executor`); backends registered by name."""

from __future__ import annotations

from satchel.flows.executors.base import Executor, Finished, Job

__all__ = ["Executor", "Finished", "Job", "get_executor"]


def get_executor(name: str, **options: object) -> Executor:
    """The executor registered as `name` (`local`, or `ray`: needs the optional Ray, imported only here)."""
    if name == "local":
        from satchel.flows.executors.local import LocalExecutor

        if options.pop("address", None):
            raise ValueError("a Ray address (--ray-address) is only for the ray executor (--executor ray)")
        return LocalExecutor(**options)  # type: ignore[arg-type]
    if name == "ray":
        from satchel.flows.executors.ray import RayExecutor

        return RayExecutor(**options)  # type: ignore[arg-type]
    raise ValueError(f"unknown executor {name!r}; known: local, ray")
