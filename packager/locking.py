"""From a requested `Environment` to a `Lock` whose every file is in a store: the one path export, flows
and named environments take.

- `resolver_for(env)`: "rattler" for conda environments, "uv" for the rest.
- `lock_environment(env, runtime, store=...)`: a request already resolved into `store` (found by its
  requested id, `locks/<requested_id>.json`) is not solved again; otherwise it is resolved and, once its
  files are mirrored, recorded there.
- `mirror(lock, store)`: every package file of the lock into the store, content-addressed (from the local
  blob cache, else downloaded from its index or channel), so rehydration needs neither.
- `package_fetcher(store)`: what `EnvironmentCache.ensure` calls for each file: verified, from the cache or
  the store.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from satchel.core.errors import BundleFormatError, EnvironmentResolutionError
from satchel.core.progress import stage
from satchel.packager.blobcache import BlobCache
from satchel.packager.environment import Environment
from satchel.packager.resolvers import get_resolver
from satchel.packager.resolvers.base import Lock, LockedPackage, Progress, Resolver
from satchel.packager.scratch import scratch_dir
from satchel.packager.stores import Store

LOCKS_PREFIX = "locks/"


def resolver_for(env: Environment) -> str:
    return "rattler" if env.is_conda else "uv"


def lock_key(requested_id: str) -> str:
    return f"{LOCKS_PREFIX}{requested_id}.json"


def read_lock(store: Store, key: str) -> Lock:
    """A lock document of `store`, parsed and checked; BundleFormatError naming the document."""
    from satchel.packager.bundle import document_location

    return parse_lock(store.read_document(key), document_location(store, key))


def parse_lock(data: bytes | Mapping[str, Any] | None, where: str) -> Lock:
    """A lock document (its bytes, or parsed JSON) checked as every lock read from a store is: its file
    names and digests, and its env_id recomputed; BundleFormatError naming `where`."""
    from satchel.packager.bundle import check_lock_names

    try:
        if isinstance(data, (bytes, str)):
            data = json.loads(data)
        if not isinstance(data, Mapping):
            raise TypeError(f"a lock is a JSON object, not {type(data).__name__}")
        lock = Lock.from_dict(data)
    except KeyError as exc:
        raise BundleFormatError(f"{where}: not a readable environment lock: it lacks {exc}") from None
    except (ValueError, TypeError, AttributeError, EnvironmentResolutionError) as exc:
        raise BundleFormatError(f"{where}: not a readable environment lock: {exc}") from None
    check_lock_names(data, where)
    if data.get("env_id") not in (None, lock.env_id):
        raise BundleFormatError(
            f"{where}: its env_id {data.get('env_id')!r} is not the hash of its packages ({lock.env_id}); "
            "the document was changed, so it is not used"
        )
    return lock


def cached_lock(store: Store | None, env: Environment, runtime: Iterable[str]) -> Lock | None:
    if store is None:
        return None
    try:
        return read_lock(store, lock_key(env.request_id(runtime)))
    except (KeyError, BundleFormatError):
        return None  # not resolved there yet, or a damaged record: resolve again (and replace it)


def lock_environment(
    env: Environment,
    runtime: Iterable[str] = (),
    *,
    store: Store | None = None,
    progress: Progress | None = None,
) -> Lock:
    """`env` resolved (with the worker's `runtime` requirements), reusing what `store` already resolved."""
    runtime = list(runtime)
    found = cached_lock(store, env, runtime)
    if found is not None:
        return found
    resolver = get_resolver(resolver_for(env), progress=progress)
    what = f"{len(env.conda)} conda, {len(env.pypi)} PyPI" if env.is_conda else f"{len(env.pypi)}"
    base = f", extending {env.base.env_id[:12]}" if env.base is not None else ""
    with stage(f"resolving environment (python {env.python}, {what} requirements{base})"):
        return resolver.resolve(env, runtime)


def record_lock(store: Store, lock: Lock) -> None:
    """Remember in `store` that `lock` answers its request (after its files are mirrored there)."""
    if not lock.requested_id:
        return
    data = json.dumps(lock.to_dict(), sort_keys=True, indent=1).encode() + b"\n"
    store.write_document(lock_key(lock.requested_id), data)


def mirror(
    lock: Lock,
    store: Store,
    *,
    keep: Callable[[list[str]], None] | None = None,
    progress: Progress | None = None,
) -> None:
    """Every package file of `lock` into `store` (already there: only touched, so gc keeps it)."""
    resolver = get_resolver(lock.resolver, progress=progress)
    cache = BlobCache()
    files = f"{len(lock.packages)} package file{'s' if len(lock.packages) != 1 else ''}"
    with (
        scratch_dir("satchel-mirror-") as tmpdir,
        stage(f"mirroring {files} into {store.url}", total=len(lock.packages), quiet=True) as mirrored,
    ):
        if keep is not None:
            keep([pkg.sha256 for pkg in lock.packages])
        for pkg in lock.packages:
            mirrored.advance(detail=pkg.filename)
            if not store.touch_blob(pkg.sha256):
                mirrored.quiet = False  # quiet only while everything is there already
                local = cache.lookup(pkg.sha256)
                if local is None:
                    local = cache.add_file(resolver.download(pkg, Path(tmpdir) / pkg.filename), pkg.sha256)
                store.put_blob(local, pkg.sha256)


def package_fetcher(store: Store) -> Callable[[LockedPackage], Path]:
    """A verified local copy of each package, from the blob cache or else `store` (never an index)."""
    cache = BlobCache()
    return lambda pkg: cache.get(store, pkg.sha256, what=f"package {pkg.filename}")


def downloading_fetcher(
    resolver: Resolver, tmpdir: Path, mirrors: Iterable[Store] = ()
) -> Callable[[LockedPackage], Path]:
    """A verified local copy of each package, from the blob cache, else the first of `mirrors` (stores)
    that holds it, else downloaded from its index or channel."""
    cache = BlobCache()
    mirrors = list(mirrors)

    def fetch(package: LockedPackage) -> Path:
        local = cache.lookup(package.sha256)
        if local is not None:
            return local
        for store in mirrors:
            if store.has_blob(package.sha256):
                return cache.get(store, package.sha256, what=f"package {package.filename}")
        return cache.add_file(resolver.download(package, tmpdir / package.filename), package.sha256)

    return fetch
