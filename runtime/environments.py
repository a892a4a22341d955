"""The local cache of materialized environments, one directory per `Lock.env_id`.

Layout under the root (default `SATCHEL_HOME/envs`):

    <env_id>/                      a complete environment (a venv), with `.satchel-env.json` inside
    <env_id>/.last-used            touched each time `ensure` hands the environment out
    .building-<env_id>-<random>/   an environment being built (or left by a killed build: never
                                   used, and removed by the next build or prune)
    .locks/<env_id>.lock           serializes building and removing one environment

An environment is built in a `.building-*` directory, its marker written last, and only then
renamed into place: a directory at `<root>/<env_id>` is always complete.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from filelock import FileLock, Timeout

from satchel.core import progress as _progress
from satchel.core import settings as config
from satchel.core.errors import EnvironmentBuildError, SatchelError
from satchel.packager import interpreters
from satchel.packager.resolvers import get_resolver
from satchel.packager.resolvers.base import Lock, LockedPackage

MARKER = ".satchel-env.json"
LAST_USED = ".last-used"
BUILDING_PREFIX = ".building-"
REMOVING_PREFIX = ".removing-"
LOCKS_DIR = ".locks"

Progress = Callable[[str], None]


@dataclass(frozen=True)
class EnvInfo:
    env_id: str
    path: Path
    python: str
    size: int  # bytes on disk (each hard-linked file counted once)
    created: datetime
    last_used: datetime


def python_path(env_dir: Path) -> Path:
    """The interpreter of a materialized environment."""
    if os.name == "nt":  # pragma: no cover
        return Path(env_dir) / "Scripts" / "python.exe"
    return Path(env_dir) / "bin" / "python"


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _dir_size(path: Path) -> int:
    total = 0
    seen: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(path):
        for name in filenames + dirnames:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            if name in dirnames and not os.path.islink(os.path.join(dirpath, name)):
                continue
            key = (st.st_dev, st.st_ino)
            if key in seen:
                continue
            seen.add(key)
            total += st.st_size
    return total


def _rmtree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


class EnvironmentCache:
    """Materialized environments, built once per `env_id` even with many processes asking at once."""

    def __init__(self, root: Path | str | None = None, *, lock_timeout: float = 1800.0) -> None:
        self.root = Path(root) if root is not None else config.environments_dir()
        self.lock_timeout = lock_timeout

    # -- paths ------------------------------------------------------------------------------------

    def path(self, env_id: str) -> Path:
        return self.root / env_id

    @staticmethod
    def python_path(env_dir: Path) -> Path:
        return python_path(env_dir)

    def _file_lock(self, env_id: str) -> FileLock:
        locks = self.root / LOCKS_DIR
        locks.mkdir(parents=True, exist_ok=True)
        return FileLock(str(locks / f"{env_id}.lock"))

    @staticmethod
    def _is_complete(env_dir: Path) -> bool:
        return (env_dir / MARKER).is_file()

    # -- lookup -----------------------------------------------------------------------------------

    def get(self, env_id: str) -> Path | None:
        """The directory of a complete environment, or None."""
        env_dir = self.path(env_id)
        return env_dir if self._is_complete(env_dir) else None

    def ensure(
        self,
        lock: Lock,
        fetch_file: Callable[[LockedPackage], Path],
        progress: Progress | None = None,
    ) -> Path:
        """The directory of `lock`'s environment, built first if absent.

        `fetch_file(package)` returns a local, verified copy of one locked file; it is only called
        when the environment has to be built.
        """
        env_id = lock.env_id
        env_dir = self.path(env_id)
        if self._is_complete(env_dir):
            self._touch(env_dir)
            return env_dir

        machine = interpreters.machine_platform()
        if lock.platform != machine:
            raise EnvironmentBuildError(
                f"environment {env_id} was locked for {lock.platform}; this machine is {machine}. "
                "Re-export the function on (or for) this platform."
            )

        file_lock = self._file_lock(env_id)
        try:
            try:
                file_lock.acquire(timeout=0)
            except Timeout:  # another process is building it: say so rather than wait in silence
                with _progress.stage(f"waiting for another process building environment {env_id[:12]}"):
                    file_lock.acquire(timeout=self.lock_timeout)
        except Timeout:
            raise EnvironmentBuildError(
                f"timed out after {self.lock_timeout:.0f}s waiting for another process building "
                f"environment {env_id} (lock file {file_lock.lock_file})"
            ) from None
        try:
            if self._is_complete(env_dir):  # another process built it while we waited
                self._touch(env_dir)
                return env_dir
            count = len(lock.packages)
            title = f"materializing environment {env_id[:12]} ({count} package{'s' if count != 1 else ''})"
            with _progress.stage(title, total=len(lock.packages)) as stage:
                self._build(lock, fetch_file, progress, stage)
            self._touch(env_dir)
            return env_dir
        finally:
            file_lock.release()

    def _build(
        self,
        lock: Lock,
        fetch_file: Callable[[LockedPackage], Path],
        progress: Progress | None,
        stage: _progress.Stage,
    ) -> None:
        """Build `lock`'s environment, advancing `stage` per package fetched; the caller holds its lock."""
        env_id = lock.env_id
        env_dir = self.path(env_id)
        say = progress or (lambda message: None)

        # Leftovers: killed builds (of this env, and of any other whose lock nobody holds), or a
        # directory at the final path without a marker (never produced by us; not trusted).
        for stale in self.root.glob(f"{BUILDING_PREFIX}{env_id}-*"):
            _rmtree(stale)
        self._sweep_builds()
        if env_dir.exists() or env_dir.is_symlink():
            self._remove(env_dir)

        resolver = get_resolver(lock.resolver, progress=progress)
        # a conda environment brings its own interpreter; a venv is built over one of this machine's
        interpreter = interpreters.find_interpreter(lock.python) if resolver.needs_interpreter else None
        files: dict[str, Path] = {}
        for index, package in enumerate(lock.packages, start=1):
            say(f"fetching {package.name} {package.version} ({index}/{len(lock.packages)})")
            path = Path(fetch_file(package))
            if not path.is_file():
                raise EnvironmentBuildError(
                    f"fetching {package.name} {package.version} ({package.filename}) gave no file: {path}"
                )
            files[package.sha256] = path
            stage.advance(detail=f"{package.name} {package.version}")

        building = self.root / f"{BUILDING_PREFIX}{env_id}-{secrets.token_hex(6)}"
        try:
            say(f"building environment {env_id} (Python {lock.python}, {len(lock.packages)} packages)")
            started = time.monotonic()
            stage.advance(0, f"installing into Python {lock.python}")
            resolver.materialize(lock, files, building, interpreter)
            marker = {
                "env_id": env_id,
                "python": lock.python,
                "resolver": lock.resolver,
                "platform": lock.platform,
                "interpreter": str(interpreter) if interpreter else str(python_path(env_dir)),
                "packages": [f"{p.name}=={p.version}" for p in lock.packages],
                "created": _now().isoformat(),
                "build_seconds": round(time.monotonic() - started, 3),
                "lock": lock.to_dict(),
            }
            tmp_marker = building / f"{MARKER}.tmp"
            with open(tmp_marker, "w", encoding="utf-8") as fh:
                json.dump(marker, fh, indent=2, sort_keys=True)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp_marker, building / MARKER)
            os.rename(building, env_dir)
            say(f"environment {env_id} ready")
        except SatchelError:
            _rmtree(building)
            raise
        except Exception as exc:
            _rmtree(building)
            raise EnvironmentBuildError(f"building environment {env_id} failed: {exc}") from exc
        except BaseException:
            _rmtree(building)
            raise

    @staticmethod
    def _touch(env_dir: Path) -> None:
        try:
            (env_dir / LAST_USED).touch()
        except OSError:
            pass

    def _remove(self, env_dir: Path) -> None:
        """Take `env_dir` out of view atomically, then delete it."""
        doomed = self.root / f"{REMOVING_PREFIX}{env_dir.name}-{secrets.token_hex(6)}"
        try:
            os.rename(env_dir, doomed)
        except OSError:
            doomed = env_dir
        if doomed.is_symlink() or doomed.is_file():
            doomed.unlink()
        else:
            _rmtree(doomed)

    # -- listing and pruning ----------------------------------------------------------------------

    def _info(self, env_dir: Path) -> EnvInfo | None:
        try:
            marker = json.loads((env_dir / MARKER).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        try:
            created = datetime.fromisoformat(marker["created"])
        except (KeyError, TypeError, ValueError):
            created = datetime.fromtimestamp((env_dir / MARKER).stat().st_mtime, timezone.utc)
        try:
            last_used = datetime.fromtimestamp((env_dir / LAST_USED).stat().st_mtime, timezone.utc)
        except OSError:
            last_used = created
        return EnvInfo(
            env_id=env_dir.name,
            path=env_dir,
            python=str(marker.get("python", "?")),
            size=_dir_size(env_dir),
            created=created,
            last_used=max(last_used, created),
        )

    def list(self) -> list[EnvInfo]:
        """The complete environments, most recently used first."""
        if not self.root.is_dir():
            return []
        infos = []
        for entry in self.root.iterdir():
            if entry.name.startswith(".") or not entry.is_dir():
                continue
            info = self._info(entry)
            if info is not None:
                infos.append(info)
        return sorted(infos, key=lambda i: i.last_used, reverse=True)

    def prune(
        self, older_than: timedelta | None = None, keep: set[str] | frozenset[str] = frozenset()
    ) -> list[str]:
        """Remove environments not used within `older_than` (all, when None) except those in `keep`,
        plus leftovers of crashed builds. Environments being built are skipped. Returns the removed
        env_ids."""
        if not self.root.is_dir():
            return []
        cutoff = _now() - older_than if older_than is not None else None
        removed: list[str] = []
        for entry in sorted(self.root.iterdir()):
            name = entry.name
            if name.startswith(REMOVING_PREFIX):
                _rmtree(entry)
                continue
            if name.startswith(BUILDING_PREFIX):
                continue  # swept below
            if name.startswith(".") or not entry.is_dir():
                continue
            if name in keep:
                continue
            info = self._info(entry)
            if info is not None and cutoff is not None and info.last_used >= cutoff:
                continue

            def remove(entry: Path = entry, info: EnvInfo | None = info) -> bool:
                if not entry.exists():
                    return False
                if cutoff is not None and info is not None:
                    fresh = self._info(entry)  # it may have been used since we looked
                    if fresh is not None and fresh.last_used >= cutoff:
                        return False
                self._remove(entry)
                return True

            if self._with_lock_nowait(name, remove):
                removed.append(name)
        self._sweep_builds()
        return removed

    def _sweep_builds(self) -> None:
        """Remove the `.building-*` directories of builds that were killed.

        A builder holds its environment's file lock from before it creates its directory until it
        has renamed or removed it, and the kernel releases the lock when the builder dies, however
        it dies: a directory whose lock can be taken at once belongs to no running build.
        """
        for entry in sorted(self.root.glob(f"{BUILDING_PREFIX}*")):
            env_id = entry.name[len(BUILDING_PREFIX) :].rsplit("-", 1)[0]
            self._with_lock_nowait(env_id, lambda e=entry: _rmtree(e) if e.exists() else None)

    def _with_lock_nowait(self, env_id: str, action: Callable[[], object]) -> object:
        """Run `action` holding `env_id`'s lock; skip it (return None) when someone else holds it."""
        file_lock = self._file_lock(env_id)
        try:
            file_lock.acquire(timeout=0)
        except Timeout:
            return None
        try:
            return action()
        finally:
            file_lock.release()
