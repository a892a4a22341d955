"""Where a resolved environment comes from, for `Environment.of(source)`: `lock_of(source) -> Lock`.

A source is one of:
- a `Lock` (itself);
- a bundle: a `BundleRef`, or its string (the bundle's lock);
- a flow task: an object with an `environment_lock` method or attribute (the flows client's `Task`), or
  its pathspec "Flow/run_id/step/task_id" (the lock its `@environment` step ran in);
- a named environment "team/name[:tag]" (`Environment.named`).

A string is told apart by its shape, in this order:
1. it holds '#' or '://', or starts with a path -> a bundle reference `STORE#NAME[:VERSION]`;
2. four '/'-separated parts with a numeric run id -> a flow task's pathspec;
3. two or more '/'-separated parts -> a named environment `team/name[:tag]`;
4. one part -> a bundle `NAME[:VERSION]` in the store (`store=`, else SATCHEL_STORE), else, when there
   is no such bundle, a named environment of that name; the error names both when neither is there.
Bundle names cannot hold a '/', so only rule 4 tries two kinds. A named environment shaped like a task's
pathspec ("a/1/b/2") is reached with `Environment.named` (or `@environment(named=...)`).

The packager never imports the flow engine: a pathspec is turned into a task by the finder the face
(`satchel/__init__.py`) installs with `use_task_finder`; the task then gives its lock by duck typing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from satchel.core.errors import BundleNotFound, EnvironmentResolutionError

if TYPE_CHECKING:
    from satchel.packager.resolvers.base import Lock

__all__ = ["FORMS", "kind_of", "lock_of", "use_task_finder"]

FORMS = (
    "a bundle reference (STORE#NAME[:VERSION], or NAME[:VERSION] in the default store), "
    "a flow task's pathspec (Flow/run_id/step/task_id) or a named environment (team/name[:tag])"
)

# pathspec, store URL or None -> an object with `environment_lock` (installed by the face)
TaskFinder = Callable[[str, "str | None"], Any]
_task_finder: TaskFinder | None = None


def use_task_finder(finder: TaskFinder | None) -> None:
    """Install how a flow task's pathspec becomes a task (the face installs the flows client's)."""
    global _task_finder
    _task_finder = finder


def kind_of(text: str) -> str:
    """Which kind of source a string names: "bundle", "task", "named" or "name" (a bundle, else a named
    environment): the rules in the module doc."""
    text = text.strip()
    if "#" in text or "://" in text or text.startswith(("/", ".", "~")):
        return "bundle"  # a store's URL or path (BundleRef.parse says what a bare one lacks)
    parts = text.split("/")
    if text and all(parts):
        if len(parts) == 1:
            return "name"
        if len(parts) == 4 and parts[1].isdigit():
            return "task"
        return "named"
    raise EnvironmentResolutionError(f"{text!r} names no environment: expected {FORMS}")


def lock_of(source: Any, store: str | None = None) -> Lock:
    """The resolved environment (its lock) of `source` (see the module doc); `store` is where a bare
    bundle name, a named environment or a task's pathspec is looked up (default: SATCHEL_STORE)."""
    from satchel.packager.refs import BundleRef
    from satchel.packager.resolvers.base import Lock

    if isinstance(source, Lock):
        return source
    if isinstance(source, BundleRef):
        return _bundle_lock(source, store)
    if isinstance(source, str):
        kind = kind_of(source)
        if kind == "bundle":
            return _bundle_lock(source.strip(), store)
        if kind == "named":
            return _named_lock(source.strip(), store)
        if kind == "name":
            return _bundle_or_named_lock(source.strip(), store)
        return _task_lock(_find_task(source.strip(), store), source.strip())
    if hasattr(source, "environment_lock"):
        return _task_lock(source, str(getattr(source, "pathspec", source)))
    raise TypeError(
        f"Environment.of(...) takes a Lock, a BundleRef, a flow Task or a string naming one of {FORMS}; "
        f"got {type(source).__name__}"
    )


def _bundle_lock(ref: Any, store: str | None) -> Lock:
    from satchel.packager.bundle import read_bundle
    from satchel.packager.refs import BundleRef

    try:
        parsed = BundleRef.parse(ref, default_store=store)
    except ValueError as exc:
        raise EnvironmentResolutionError(f"{exc} (expected {FORMS})") from None
    bundle, _ = read_bundle(parsed)
    return bundle.lock


def _named_lock(name: str, store: str | None) -> Lock:
    from satchel.packager.environment import Environment

    try:
        base = Environment.named(name, store).base
    except (LookupError, ValueError) as exc:
        if name.count("/") != 3:
            raise
        raise EnvironmentResolutionError(
            f"{exc} ({name!r} was read as a named environment: a flow task's pathspec "
            "Flow/run_id/step/task_id has a numeric run id)"
        ) from None
    assert base is not None  # Environment.named is always resolved
    return base


def _bundle_or_named_lock(name: str, store: str | None) -> Lock:
    """A bare name: the bundle of that name, else the named environment (bundles first: a bare name
    has always meant a bundle)."""
    try:
        return _bundle_lock(name, store)
    except BundleNotFound as exc:
        no_bundle = str(exc)
    try:
        return _named_lock(name, store)
    except (LookupError, ValueError) as exc:
        raise BundleNotFound(
            f"{name!r} names neither a bundle nor a named environment: {no_bundle}; and {exc}"
        ) from None


def _find_task(pathspec: str, store: str | None) -> Any:
    if _task_finder is None:
        raise EnvironmentResolutionError(
            f"{pathspec!r} is a flow task's pathspec, but no task finder is installed (import satchel: "
            "it installs the flows client's); or pass the task itself"
        )
    try:
        return _task_finder(pathspec, store)
    except KeyError as exc:  # no such run, step or task: the finder's message says which
        message = exc.args[0] if exc.args else pathspec
        raise EnvironmentResolutionError(f"flow task {pathspec}: {message}") from None


def _task_lock(task: Any, where: str) -> Lock:
    from satchel.packager.resolvers.base import Lock

    lock = task.environment_lock
    if callable(lock):
        lock = lock()
    if not isinstance(lock, Lock):
        raise EnvironmentResolutionError(
            f"flow task {where}: its environment_lock gave {type(lock).__name__}, not a Lock"
        )
    return lock
