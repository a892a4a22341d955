"""Rehydrate a bundle locally: verified blobs in the cache, code extracted, environment materialized."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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


def prepare(bundle: Bundle, store: Store) -> LocalBundle:
    """Blobs, code and environment of `bundle` on local disk; building the environment (the slow part, done
    once per machine) is a stage of the current progress reporter (satchel/_progress.py)."""
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
    env_dir = envs.ensure(lock, lambda pkg: cache.get(store, pkg.sha256, what=f"package {pkg.filename}"))
    return LocalBundle(
        code_dir=code_dir, artifacts=artifacts, env_dir=env_dir, python=envs.python_path(env_dir)
    )
