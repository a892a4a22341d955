"""What building a conda environment again reuses: each package's bytecode, compiled once and then linked
into later environments as checked-hash pycs the interpreter verifies against their sources
(packager/resolvers/conda_bytecode.py), and the blob cache's verification of the package files."""

from __future__ import annotations

import py_compile
import subprocess
import sys
from pathlib import Path

import pytest

from satchel.packager.blobcache import STAMP_SUFFIX, BlobCache, _identity
from satchel.packager.environment import Environment
from satchel.packager.locking import lock_environment, mirror, package_fetcher
from satchel.packager.stores import open_store
from satchel.runtime.environments import EnvironmentCache, python_path
from tests.environments.conftest import RUNTIME

pytestmark = pytest.mark.timeout(600)
CHECKED_HASH = 0b11  # the flags word of a pyc's header (PEP 552)


def build(channel, specs: list[str], store_url: str, lock_out: list | None = None) -> Path:
    lock = lock_environment(Environment(conda=specs, channels=[str(channel.path)]), RUNTIME)
    store = open_store(store_url)
    mirror(lock, store)
    if lock_out is not None:
        lock_out.append(lock)
    return EnvironmentCache().ensure(lock, package_fetcher(store))


def six_pyc(prefix: Path) -> Path:
    # the conda python of the test channel is this interpreter, so the cache tag is ours
    site = prefix / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    return site / "__pycache__" / f"six.{sys.implementation.cache_tag}.pyc"


def test_a_later_environment_links_the_bytecode_an_earlier_one_compiled(
    conda_channel, store_url: str, home: Path
) -> None:
    first = build(conda_channel, ["six", "fastavro"], store_url)
    second = build(conda_channel, ["six", "humanize=4.12", "fastavro"], store_url)
    assert first != second
    assert six_pyc(first).stat().st_ino == six_pyc(second).stat().st_ino  # linked, not compiled again
    assert int.from_bytes(six_pyc(second).read_bytes()[4:8], "little") == CHECKED_HASH
    humanize = next((second / "lib").glob("python*/site-packages/humanize"))
    sources = sorted(humanize.rglob("*.py"))
    assert sources and all(
        (s.parent / "__pycache__" / f"{s.stem}.{sys.implementation.cache_tag}.pyc").is_file() for s in sources
    )
    kept = [p for p in (home / "conda" / "pyc").iterdir() if not p.name.startswith(".")]
    assert len(kept) >= 4  # python, six, humanize, fastavro: one directory per package (and interpreter)


def test_a_cached_pyc_that_does_not_match_its_source_is_not_used(
    conda_channel, store_url: str, home: Path, tmp_path: Path
) -> None:
    first = build(conda_channel, ["six", "fastavro"], store_url)
    impostor = tmp_path / "six.py"
    impostor.write_text("__version__ = 'not the package'\n")
    compiled = py_compile.compile(
        str(impostor),
        cfile=str(tmp_path / "six.pyc"),
        invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH,
    )
    # written through the link: the cache's copy, and every environment's, now holds another module's code
    six_pyc(first).write_bytes(Path(compiled).read_bytes())
    second = build(conda_channel, ["six", "attrs", "fastavro"], store_url)
    assert six_pyc(second).read_bytes() == Path(compiled).read_bytes()
    proc = subprocess.run(
        [str(python_path(second)), "-c", "import six; print(six.__version__)"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "1.16.0"


def test_a_build_leaves_the_package_files_verified_in_the_blob_cache(
    conda_channel, store_url: str, home: Path
) -> None:
    locks: list = []
    build(conda_channel, ["six", "tomli", "fastavro"], store_url, locks)
    cache = BlobCache()
    for package in locks[0].conda_packages():
        blob = cache.path(package.sha256)
        # the stamp still names the file as it is: the next build finds it verified, without hashing it
        stamp = blob.with_name(blob.name + STAMP_SUFFIX).read_text()
        assert stamp == _identity(blob.stat()), package.filename
