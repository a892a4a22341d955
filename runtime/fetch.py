"""Rehydrate a bundle locally: verified blobs in the cache, code extracted, environment materialized."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from satchel._ui import step
from satchel.core import settings as config
from satchel.packager.blobcache import BlobCache
from satchel.packager.bundle import Bundle
from satchel.packager.code import extract
from satchel.packager.stores import Store
from satchel.runtime.environments import EnvironmentCache


@dataclass(frozen=True)
class LocalBundle:
    """Everything a worker needs, on local disk."""

    code_dir: Path
    artifacts: dict[str, Path]
    env_dir: Path
    python: Path


def prepare(bundle: Bundle, store: Store, *, progress: bool = False) -> LocalBundle:
    cache = BlobCache()
    code_digest = bundle.doc["code"]["blob"]
    code_zip = cache.get(store, code_digest, what=f"code package of {bundle.name}")
    code_dir = extract(code_zip, config.home() / "code" / code_digest)
    artifacts = {
        art["name"]: cache.get(store, art["blob"], what=f"artifact {art['name']!r} of {bundle.name}")
        for art in bundle.artifacts
    }
    envs = EnvironmentCache()
    lock = bundle.lock
    existing = envs.get(lock.env_id)
    if existing is not None:
        env_dir = envs.ensure(lock, lambda pkg: cache.get(store, pkg.sha256, what=f"package {pkg.filename}"))
    else:
        with step(f"Materializing environment {lock.env_id[:12]} ({len(lock.packages)} packages)", progress):
            env_dir = envs.ensure(
                lock, lambda pkg: cache.get(store, pkg.sha256, what=f"package {pkg.filename}")
            )
    return LocalBundle(
        code_dir=code_dir, artifacts=artifacts, env_dir=env_dir, python=envs.python_path(env_dir)
    )
