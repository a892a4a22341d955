"""Satchel: pack a function with its artifacts and a locked environment; call it anywhere.

The public face: re-exports the names users type, lazily, so `import satchel` stays cheap (every
`satchel.<layer>` import runs this module first). It also tells the floor how to draw progress for a
person (rich, satchel/_ui.py). No layer imports it; in a worker, the kit ships runtime/worker/face.py
in its place.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from satchel.core import progress as _progress
from satchel.core.version import __version__
from satchel.packager import environment_sources as _sources


def _display(progress: bool | None):
    from satchel._ui import display  # rich, imported only when there are stages to draw

    return display(progress)


_progress.use_display(_display)


def _flow_task(pathspec: str, store: str | None):
    from satchel.flows.client import task_at  # the flow engine, imported only for a task's pathspec

    return task_at(pathspec, store)


# `Environment.of("Flow/run/step/task")`: the packager reaches flow tasks only through this hook
_sources.use_task_finder(_flow_task)

_EXPORTS = {
    "function": "satchel.packager.function",
    "Function": "satchel.packager.function",
    "Environment": "satchel.packager.environment",
    "BundleRef": "satchel.packager.refs",
    "load": "satchel.runtime.load",
    "escape": "satchel.runtime.worker.escape",
    "LoadedFunction": "satchel.runtime.proxy",
    "SatchelError": "satchel.core.errors",
    "ArgumentError": "satchel.core.errors",
    "RemoteError": "satchel.core.errors",
    "BadResult": "satchel.core.errors",
    "WorkerCrashed": "satchel.core.errors",
    "WorkerStartupError": "satchel.core.errors",
    "EscapeImportError": "satchel.core.errors",
    "CallTimeout": "satchel.core.errors",
    "Overloaded": "satchel.core.errors",
    "SchemaError": "satchel.core.errors",
    "BundleNotFound": "satchel.core.errors",
    "EnvironmentNotFound": "satchel.core.errors",
    "BlobCorrupted": "satchel.core.errors",
    "EnvironmentResolutionError": "satchel.core.errors",
    "InterpreterNotFound": "satchel.core.errors",
    "UnknownStoreScheme": "satchel.core.errors",
    "MissingExtra": "satchel.core.errors",
    "deploy": "satchel.serving.deploy.api",
    "DeploymentFailed": "satchel.serving.deploy.api",
}

_SUBMODULES = ("bundles",)  # `satchel.bundles` without importing it first

__all__ = ["__version__", *_EXPORTS, *_SUBMODULES]

if TYPE_CHECKING:  # pragma: no cover
    from satchel.core.errors import (  # noqa: F401
        ArgumentError,
        BadResult,
        BlobCorrupted,
        BundleNotFound,
        CallTimeout,
        EnvironmentNotFound,
        EnvironmentResolutionError,
        EscapeImportError,
        InterpreterNotFound,
        MissingExtra,
        Overloaded,
        RemoteError,
        SatchelError,
        SchemaError,
        UnknownStoreScheme,
        WorkerCrashed,
        WorkerStartupError,
    )
    from satchel.packager.environment import Environment  # noqa: F401
    from satchel.packager.function import Function, function  # noqa: F401
    from satchel.packager.refs import BundleRef  # noqa: F401
    from satchel.runtime.load import load  # noqa: F401
    from satchel.runtime.proxy import LoadedFunction  # noqa: F401
    from satchel.runtime.worker.escape import escape  # noqa: F401
    from satchel.serving.deploy.api import DeploymentFailed, deploy  # noqa: F401


def __getattr__(name: str):
    import importlib

    if name in _SUBMODULES:
        return importlib.import_module(f"satchel.{name}")
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'satchel' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
