"""Kits: the few parts of Satchel a foreign interpreter needs, copied once into SATCHEL_HOME/kits.

A worker (runtime) or a flow task in its own environment (flows) runs a Python that does not have
Satchel installed; its kit — chosen source files plus a launcher script — is put on its path instead.
A kit's directory is named by the hash of its contents, built aside and renamed into place.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from types import ModuleType

from satchel import config

_built: dict[tuple[str, str], Path] = {}


def package_files(prefix: str, package: ModuleType) -> dict[str, Path]:
    """Kit path -> source file for every module of `package` (recursively), under `prefix`."""
    root = Path(package.__file__).parent
    return {f"{prefix}/{path.relative_to(root).as_posix()}": path for path in sorted(root.rglob("*.py"))}


def build_kit(name: str, sources: dict[str, Path], launcher: str, launcher_source: str) -> Path:
    """The kit directory holding `sources` and `<kit>/<launcher>`; built when its contents change."""
    cached = _built.get((name, launcher))
    if cached is not None and (cached / launcher).is_file():
        return cached
    digest = hashlib.sha256()
    contents = {launcher: launcher_source.encode()}
    for rel in sorted(sources):
        contents[rel] = sources[rel].read_bytes()
    for rel in sorted(contents):
        digest.update(rel.encode() + b"\0" + hashlib.sha256(contents[rel]).digest())
    kit = config.kits_dir() / f"{name}-{digest.hexdigest()[:24]}"
    if not (kit / launcher).is_file():
        kit.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{kit.name}.tmp-", dir=kit.parent))
        try:
            for rel, data in contents.items():
                target = tmp / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
                if rel.endswith(".so"):
                    target.chmod(0o755)
            os.rename(tmp, kit)
        except OSError:
            if not (kit / launcher).is_file():  # another process won the race: use its kit
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    _built[(name, launcher)] = kit
    return kit
