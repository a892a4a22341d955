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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from satchel.core.kits import build_kit, module_closure
from satchel.flows.errors import FlowError
from satchel.flows.graph import StepNode

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
    """A materialized environment for `@environment` steps."""

    env_id: str
    python: str  # "major.minor"
    pypi: tuple[str, ...]
    path: Path

    @property
    def interpreter(self) -> Path:
        from satchel.runtime.environments import python_path

        return python_path(self.path)

    def describe(self) -> dict[str, Any]:
        return {"env_id": self.env_id, "python": self.python, "pypi": list(self.pypi)}


def runtime_requirements(store: Any) -> list[str]:
    """What a task needs in its environment besides the kit: zstandard (artifacts are zstd-compressed;
    without it a task could write zlib artifacts but not read zstd ones), and boto3 for an S3 store."""
    url = str(getattr(store, "url", "") or "")
    return ["zstandard", "boto3"] if url.startswith("s3:") else ["zstandard"]


class Environments:
    """The environments of one run's `@environment` steps, each resolved and materialized once per
    (python, pypi, runtime requirements)."""

    def __init__(self, progress: Callable[[str], None] | None = None) -> None:
        self.progress = progress
        self._resolved: dict[tuple, StepEnvironment] = {}

    def for_step(self, node: StepNode, store: Any) -> StepEnvironment:
        options = node.decos["environment"]
        python = options.get("python") or f"{sys.version_info[0]}.{sys.version_info[1]}"
        pypi = tuple(options.get("pypi") or ())
        runtime = runtime_requirements(store)
        key = (str(python), pypi, tuple(runtime))
        if key not in self._resolved:
            try:
                self._resolved[key] = self._materialize(str(python), pypi, runtime)
            except Exception as exc:  # noqa: BLE001 - resolution, download and build errors alike
                listed = ", ".join(repr(p) for p in pypi)
                raise FlowError(
                    f"step {node.name!r} ({node.where()}): its environment "
                    f"(@environment(python={python!r}, pypi=[{listed}])) could not be prepared: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
        return self._resolved[key]

    def _materialize(self, python: str, pypi: tuple[str, ...], runtime: list[str]) -> StepEnvironment:
        from satchel.packager.environment import Environment
        from satchel.packager.locking import downloading_fetcher, lock_environment
        from satchel.packager.resolvers import get_resolver
        from satchel.runtime.environments import EnvironmentCache

        env = Environment(python=python, pypi=pypi)
        lock = lock_environment(env, runtime, progress=self.progress)
        resolver = get_resolver(lock.resolver, progress=self.progress)
        with tempfile.TemporaryDirectory(prefix="satchel-flow-env-") as tmp:
            fetch = downloading_fetcher(resolver, Path(tmp))
            path = EnvironmentCache().ensure(lock, fetch, progress=self.progress)
        return StepEnvironment(env_id=lock.env_id, python=env.python, pypi=tuple(env.pypi), path=path)
