"""`@environment` steps: their environments, resolved and materialized with the packager's resolver and
cache, and the flows kit that runs a task in them.

A task of an `@environment` step is a fresh interpreter of the step's environment (never forked from the
parent), running `<kit>/satchel_flow_task.py <job file>`. The environment holds the step's packages (plus
zstandard for artifacts, and boto3 when the run's store is on S3), never Satchel itself: the kit — `satchel.flows` and every part of Satchel
it imports, followed by `satchel.core.kits` (the floor, the datastore's stores; standard library) — is
first on the task's path instead, so the task reads inputs and writes artifacts with the same datastore
code as a forked task, into the same layout.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from satchel.core.kits import build_kit, module_closure
from satchel.flows.errors import FlowError
from satchel.flows.graph import StepNode

if TYPE_CHECKING:
    from satchel.packager.environment import Environment
    from satchel.packager.resolvers.base import Lock

KIT_LAUNCHER = "satchel_flow_task.py"
TASK_ENTRY = "satchel.flows.task_runner"
_LAUNCHER_SOURCE = f"import sys\n\nfrom {TASK_ENTRY} import task_main\n\nsys.exit(task_main(sys.argv[1]))\n"


# -- the kit ------------------------------------------------------------------------------------------


def _kit_sources() -> dict[str, Path]:
    """Kit path -> source file: what a task's entry point and a user's `from satchel.flows import ...` reach."""
    return module_closure(["satchel.flows", TASK_ENTRY])


def flow_kit() -> Path:
    """The flows kit directory (its launcher is `<kit>/satchel_flow_task.py`), built when its sources change."""
    return build_kit("flows", _kit_sources(), KIT_LAUNCHER, _LAUNCHER_SOURCE)


# -- environments -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StepEnvironment:
    """A materialized environment for `@environment` steps, and the lock it was built from."""

    env_id: str
    python: str  # "major.minor"
    pypi: tuple[str, ...]
    path: Path
    lock: Lock | None = None
    request: dict[str, Any] = field(default_factory=dict)  # the step's @environment options, as given

    @property
    def interpreter(self) -> Path:
        """The environment's own interpreter: a conda prefix's python, or the virtual environment's."""
        from satchel.runtime.environments import python_path

        return python_path(self.path)

    def describe(self) -> dict[str, Any]:
        """What each task of the step records: the request, and the full lock (`Environment.of(task)`)."""
        out: dict[str, Any] = {"env_id": self.env_id, "python": self.python, "pypi": list(self.pypi)}
        out.update({k: v for k, v in self.request.items() if k not in out and v not in (None, [])})
        if self.lock is not None:
            out["lock"] = self.lock.to_dict()
        return out


def runtime_requirements(store: Any) -> list[str]:
    """What a task needs in its environment besides the kit: zstandard (artifacts are zstd-compressed;
    without it a task could write zlib artifacts but not read zstd ones), and boto3 for an S3 store."""
    url = str(getattr(store, "url", "") or "")
    return ["zstandard", "boto3"] if url.startswith("s3:") else ["zstandard"]


def describe_request(options: dict[str, Any]) -> str:
    """`@environment(...)` as the step wrote it, for errors."""
    shown = []
    for key in ("python", "named", "base", "conda", "channels", "pypi"):
        value = options.get(key)
        if key == "python" and value is None and not (options.get("named") or options.get("base")):
            value = _current_python()
        if value is None or value == []:
            continue
        text = "[" + ", ".join(repr(v) for v in value) + "]" if isinstance(value, list) else repr(value)
        shown.append(f"{key}={text}")
    return f"@environment({', '.join(shown)})"


def requested_environment(options: dict[str, Any], store: Any) -> Environment:
    """The Environment a step asks for: its own, or its base's (read now) extended with its additions."""
    from satchel.packager.environment import Environment

    pypi, conda, channels = (list(options.get(k) or ()) for k in ("pypi", "conda", "channels"))
    python = options.get("python")
    store_url = str(getattr(store, "url", store)) if store is not None else None
    if options.get("named"):
        based: Environment | None = Environment.named(options["named"], store_url)
    elif options.get("base"):
        from satchel.packager.environment_sources import lock_of

        based = Environment.resolved(lock_of(options["base"], options.get("base_store") or store_url))
    else:
        based = None
    if based is None:
        return Environment(python=python or _current_python(), pypi=pypi, conda=conda, channels=channels)
    if python is not None and python != based.python:
        raise FlowError(
            f"python={python!r} differs from the base environment's python {based.python}: a base's "
            "interpreter stays as it is; leave python= out"
        )
    return based.extend(conda=conda, pypi=pypi, channels=channels)


def mirrors_of(options: dict[str, Any], store: Any) -> list[Any]:
    """The stores a step's packages may be mirrored in, to fetch from before any index or channel: a base
    bundle's store (its packages were mirrored there when it was exported), and the run's."""
    stores = [store] if store is not None and hasattr(store, "has_blob") else []
    base = options.get("base")
    if base:
        from satchel.packager.environment_sources import kind_of

        if kind_of(base) == "bundle":
            from satchel.packager.refs import BundleRef
            from satchel.packager.stores import open_store

            url = BundleRef.parse(base, default_store=getattr(store, "url", None)).store
            if url != getattr(store, "url", None):
                stores.insert(0, open_store(url))
    return stores


def _current_python() -> str:
    return f"{sys.version_info[0]}.{sys.version_info[1]}"


class Environments:
    """The environments of one run's `@environment` steps, each resolved and materialized once per
    distinct request (what it asks for, its base's lock, the runtime requirements)."""

    def __init__(self, progress: Callable[[str], None] | None = None) -> None:
        self.progress = progress
        self._resolved: dict[str, StepEnvironment] = {}

    def for_step(self, node: StepNode, store: Any) -> StepEnvironment:
        options = node.decos["environment"]
        runtime = runtime_requirements(store)
        try:
            env = requested_environment(options, store)
            key = env.request_id(runtime)
            if key not in self._resolved:
                self._resolved[key] = self._materialize(env, runtime, options, mirrors_of(options, store))
        except Exception as exc:  # noqa: BLE001 - base, resolution, download and build errors alike
            raise FlowError(
                f"step {node.name!r} ({node.where()}): its environment ({describe_request(options)}) "
                f"could not be prepared: {type(exc).__name__}: {exc}"
            ) from exc
        return self._resolved[key]

    def _materialize(
        self, env: Environment, runtime: list[str], options: dict[str, Any], mirrors: list[Any]
    ) -> StepEnvironment:
        from satchel.packager.locking import downloading_fetcher, lock_environment
        from satchel.packager.resolvers import get_resolver
        from satchel.runtime.environments import EnvironmentCache

        lock = lock_environment(env, runtime, progress=self.progress)
        resolver = get_resolver(lock.resolver, progress=self.progress)
        with tempfile.TemporaryDirectory(prefix="satchel-flow-env-") as tmp:
            fetch = downloading_fetcher(resolver, Path(tmp), mirrors)
            path = EnvironmentCache().ensure(lock, fetch, progress=self.progress)
        return StepEnvironment(
            env_id=lock.env_id,
            python=lock.python,
            pypi=tuple(env.pypi),
            path=path,
            lock=lock,
            request=dict(options),
        )
