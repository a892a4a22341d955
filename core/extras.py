"""Optional features and the extras of the `satchel` package that install them.

Standard library only. A feature imports its optional modules inside `needs_extra(extra, feature)` (or
checks them up front with `require`): a missing one is then `MissingExtra`, one line naming the feature,
the module and `pip install 'satchel[EXTRA]'`, instead of a ModuleNotFoundError traceback.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager

from satchel.core.errors import MissingExtra

#: Each extra (pyproject.toml's optional-dependencies) and the top-level modules it provides.
EXTRAS: dict[str, tuple[str, ...]] = {
    "s3": ("boto3", "botocore"),
    "data": ("numpy", "pyarrow", "pandas"),
    "serve": (
        "fastapi",
        "starlette",
        "uvicorn",
        "prometheus_client",
        "grpc",
        "grpc_health",
        "grpc_reflection",
        "google.protobuf",
        "opentelemetry",
    ),
    "trace": ("opentelemetry.sdk",),
    "flows": ("zstandard",),
    "ray": ("ray",),
    "conda": ("rattler", "conda_lock", "yaml"),
}


def _provides(extra: str, module: str) -> bool:
    """Whether `module` (or a package it lives in, e.g. `google` for `google.protobuf`) is the extra's."""
    for name in EXTRAS[extra]:
        if module == name or module.startswith(name + ".") or name.startswith(module + "."):
            return True
    return False


@contextmanager
def needs_extra(extra: str, feature: str) -> Iterator[None]:
    """Turn a ModuleNotFoundError of one of `extra`'s modules inside the block into MissingExtra.

    Any other import error (a module of Satchel, or of another extra) goes through unchanged: it is a bug
    or a broken installation, not a missing extra.
    """
    if extra not in EXTRAS:
        raise ValueError(f"unknown extra {extra!r}; known: {', '.join(EXTRAS)}")
    try:
        yield
    except ModuleNotFoundError as exc:
        if exc.name is None or not _provides(extra, exc.name):
            raise
        raise MissingExtra(feature, exc.name, extra) from None


def require(extra: str, feature: str, *modules: str) -> None:
    """Import each of `modules` (default: every module of `extra`), MissingExtra for the first missing one.

    For entry points that should fail at once, before slow work (loading functions), rather than at the
    first import deep inside it.
    """
    with needs_extra(extra, feature):
        for module in modules or EXTRAS[extra]:
            importlib.import_module(module)
