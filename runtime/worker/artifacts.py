"""Restore a bundle's bound values in the worker: plain artifacts now, flow tasks lazily.

An artifact file is either a pickle (protocol 5) of a bound value, or the manifest of a parameter bound
to a flow task: `SATCHEL-TASK 1\\n` then JSON `{"pathspec", "artifacts": {name: bundle artifact name}}`
(docs/bundle-format.md). A task parameter gets a `satchel.flows.Task` whose `data.<name>` unpickles that
artifact's file on first access; its artifact files are not read before.

Python 3.9+, standard library and the kit only; `satchel.flows.task` is imported only when a bundle
binds a task.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, BinaryIO

if TYPE_CHECKING:
    from satchel.flows.task import Task

MANIFEST_MAGIC = b"SATCHEL-TASK 1\n"  # the packager writes the same (satchel.packager.bundle)

Unpickle = Callable[[BinaryIO], Any]


def _is_manifest(path: str) -> bool:
    with open(path, "rb") as fh:
        return fh.read(len(MANIFEST_MAGIC)) == MANIFEST_MAGIC


def _loader(path: str, unpickle: Unpickle) -> Callable[[], Any]:
    def load() -> Any:
        with open(path, "rb") as fh:
            return unpickle(fh)

    return load


def _task(parameter: str, path: str, files: dict[str, str], unpickle: Unpickle) -> tuple[Task, set[str]]:
    """The Task for `parameter` from its manifest at `path`, and the artifact names it claims."""
    from satchel.flows.task import Task

    with open(path, "rb") as fh:
        manifest = json.loads(fh.read()[len(MANIFEST_MAGIC) :])
    loaders = {}
    for name, blob_name in manifest["artifacts"].items():
        if blob_name not in files:
            raise RuntimeError(
                f"flow task {manifest['pathspec']} bound to {parameter!r}: the bundle lacks its artifact {name!r}"
            )
        loaders[name] = _loader(files[blob_name], unpickle)
    return Task(manifest["pathspec"], loaders), set(manifest["artifacts"].values())


def restore(files: dict[str, str], unpickle: Unpickle) -> dict[str, Any]:
    """Bound values by parameter name, from the bundle's artifact files (name -> local path)."""
    bound: dict[str, Any] = {}
    claimed: set[str] = set()
    for name, path in files.items():
        if _is_manifest(path):
            bound[name], names = _task(name, path, files, unpickle)
            claimed |= names
    for name, path in files.items():
        if name not in bound and name not in claimed:
            bound[name] = _loader(path, unpickle)()
    return bound
