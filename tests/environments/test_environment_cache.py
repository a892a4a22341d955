"""Materializing locked environments with real uv, and the environment cache around it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from datetime import timedelta
from pathlib import Path

import pytest

from satchel.core.errors import EnvironmentBuildError, InterpreterNotFound
from satchel.packager import interpreters
from satchel.packager.blobcache import BlobCache
from satchel.packager.resolvers.base import Lock, LockedPackage
from satchel.packager.resolvers.uv import UvResolver
from satchel.runtime.environments import LAST_USED, MARKER, EnvironmentCache, python_path
from tests.waiting import wait_until

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def blobs(home: Path, lock: Lock) -> BlobCache:
    """One downloaded copy of the lock's wheels for the whole module."""
    cache = BlobCache(home / "shared-blobs")
    for package in lock.packages:
        if not cache.has(package.sha256):
            tmp = home / "downloads" / package.filename
            UvResolver().download(package, tmp)
            cache.add_file(tmp, package.sha256)
    return cache


def fetcher(blobs: BlobCache, calls: list | None = None):
    def fetch(package: LockedPackage) -> Path:
        if calls is not None:
            calls.append(package.name)
        return blobs.path(package.sha256)

    return fetch


def run_in(env_dir: Path, code: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [str(python_path(env_dir)), "-c", code], capture_output=True, text=True, env=env, cwd="/"
    )


@pytest.fixture(scope="module")
def built(home: Path, lock: Lock, blobs: BlobCache) -> Path:
    return EnvironmentCache(home / "envs-main").ensure(lock, fetcher(blobs))


def test_materialize_directly(lock: Lock, blobs: BlobCache, tmp_path: Path) -> None:
    files = {p.sha256: blobs.path(p.sha256) for p in lock.packages}
    dest = tmp_path / "venv"
    UvResolver().materialize(lock, files, dest, interpreters.find_interpreter("3.11"))
    proc = run_in(dest, "import humanize, fastavro, sys; print(humanize.__version__, sys.version_info[:2])")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("4.12.1 (3, 11)")


def test_env_imports_its_packages_and_nothing_of_the_callers(built: Path) -> None:
    proc = run_in(
        built, "import humanize, fastavro; print(humanize.naturalsize(10**6), fastavro.__version__)"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[0:2] == ["1.0", "MB"]
    # pytest is installed for the caller (this interpreter), never in the environment.
    proc = run_in(built, "import pytest")
    assert proc.returncode != 0 and "No module named 'pytest'" in proc.stderr
    proc = run_in(
        built, "import sys, site; print(sys.prefix != sys.base_prefix); print(site.getsitepackages())"
    )
    first, second = proc.stdout.splitlines()
    assert first == "True"
    assert sys.prefix not in second
    assert "include-system-site-packages = false" in (built / "pyvenv.cfg").read_text()


def test_env_has_compiled_bytecode(built: Path) -> None:
    assert os.environ.get("PYTHONDONTWRITEBYTECODE") or True  # set on this machine; must not matter
    (site_packages,) = built.glob("lib/python3.11/site-packages")
    pycs = list(site_packages.glob("**/__pycache__/*.pyc"))
    assert pycs
    assert any("humanize" in str(p) for p in pycs)


def test_env_is_relocated_cleanly(built: Path) -> None:
    """Built under .building-*, renamed into place: nothing may point at the temporary path."""
    proc = run_in(built, "import humanize, sys; print(humanize.__file__); print(sys.prefix)")
    module_file, prefix = proc.stdout.splitlines()
    assert Path(prefix) == built
    assert module_file.startswith(str(built))
    for script in (built / "bin").iterdir():
        if script.is_file() and not script.is_symlink():
            assert ".building-" not in script.read_text(errors="replace")


def test_marker_get_and_list(home: Path, lock: Lock, built: Path) -> None:
    cache = EnvironmentCache(home / "envs-main")
    marker = json.loads((built / MARKER).read_text())
    assert marker["env_id"] == lock.env_id
    assert marker["python"] == "3.11"
    assert sorted(marker["packages"]) == sorted(f"{p.name}=={p.version}" for p in lock.packages)
    assert Lock.from_dict(marker["lock"]) == lock
    assert cache.get(lock.env_id) == built
    assert cache.get("0" * 32) is None
    (info,) = cache.list()
    assert info.env_id == lock.env_id and info.python == "3.11" and info.path == built
    assert info.size > 1_000_000
    assert info.last_used >= info.created


def test_ensure_hit_reuses_and_touches(home: Path, lock: Lock, blobs: BlobCache, built: Path) -> None:
    cache = EnvironmentCache(home / "envs-main")
    an_hour_ago = time.time() - 3600
    (built / LAST_USED).touch()
    os.utime(built / LAST_USED, (an_hour_ago, an_hour_ago))
    before = cache.list()[0].last_used
    calls: list[str] = []
    assert cache.ensure(lock, fetcher(blobs, calls)) == built
    assert calls == []  # nothing fetched, nothing built
    assert cache.list()[0].last_used > before


def test_leftovers_are_ignored_and_cleaned(home: Path, lock: Lock, blobs: BlobCache) -> None:
    root = home / "envs-leftovers"
    stale = root / f".building-{lock.env_id}-deadbeef0000"
    (stale / "lib").mkdir(parents=True)
    (stale / "lib" / "half.py").write_text("x")
    cache = EnvironmentCache(root)
    assert cache.get(lock.env_id) is None
    assert cache.list() == []
    # A directory at the final path without a marker is not an environment either.
    (root / lock.env_id).mkdir()
    assert cache.get(lock.env_id) is None

    env_dir = cache.ensure(lock, fetcher(blobs))
    assert env_dir == root / lock.env_id and (env_dir / MARKER).is_file()
    assert not stale.exists()
    assert [p.name for p in root.iterdir() if p.name.startswith(".building-")] == []
    assert run_in(env_dir, "import humanize").returncode == 0


def test_failed_build_leaves_nothing(home: Path, lock: Lock, blobs: BlobCache) -> None:
    """Every package gets another package's (valid) wheel: uv refuses, the build is cleaned up."""
    root = home / "envs-failed"
    files = [blobs.path(p.sha256) for p in lock.packages]
    swapped = dict(zip([p.name for p in lock.packages], files[1:] + files[:1], strict=True))
    with pytest.raises(EnvironmentBuildError) as info:
        EnvironmentCache(root).ensure(lock, lambda package: swapped[package.name])
    message = str(info.value)
    assert message.startswith(f"could not install the packages of environment {lock.env_id}")
    assert "hash" in message.lower()
    assert sorted(p.name for p in root.iterdir()) == [".locks"]


def test_missing_interpreter(home: Path) -> None:
    lock = Lock(resolver="uv", python="3.99", platform=interpreters.machine_platform(), packages=())
    with pytest.raises(InterpreterNotFound, match="Python 3.99 is not installed"):
        EnvironmentCache(home / "envs-399").ensure(lock, lambda package: Path("/nonexistent"))


def test_foreign_platform_is_refused(home: Path, lock: Lock) -> None:
    foreign = Lock.from_dict({**lock.to_dict(), "platform": "plan9-mips"})
    with pytest.raises(EnvironmentBuildError, match="locked for plan9-mips"):
        EnvironmentCache(home / "envs-foreign").ensure(foreign, lambda package: Path("/nonexistent"))


CONCURRENT = textwrap.dedent(
    """
    import json, os, sys, time
    from pathlib import Path
    from satchel.packager.blobcache import BlobCache
    from satchel.packager.resolvers.base import Lock
    from satchel.runtime.environments import EnvironmentCache

    lock_file, root, blobs, log, go = sys.argv[1:6]
    lock = Lock.from_dict(json.loads(Path(lock_file).read_text()))
    cache = BlobCache(Path(blobs))

    def fetch(package):
        with open(log, "a") as fh:
            fh.write(f"{os.getpid()} {package.name}\\n")
        return cache.path(package.sha256)

    Path(go + f".ready-{os.getpid()}").touch()
    while not os.path.exists(go):
        time.sleep(0.005)
    env_dir = EnvironmentCache(Path(root)).ensure(lock, fetch)
    print(env_dir)
    """
)


def test_concurrent_ensure_builds_once(home: Path, lock: Lock, blobs: BlobCache, tmp_path: Path) -> None:
    root = home / "envs-concurrent"
    lock_file = tmp_path / "lock.json"
    lock_file.write_text(json.dumps(lock.to_dict()))
    log, go = tmp_path / "fetch.log", tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CONCURRENT, str(lock_file), str(root), str(blobs.root), str(log), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        for _ in range(3)
    ]
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob("go.ready-*"))) < len(procs):  # all imported and waiting at the gate
        assert time.monotonic() < deadline, "the builders never reached the gate"
        assert all(p.poll() is None for p in procs), "a builder exited early"
        time.sleep(0.01)
    go.touch()
    results = [p.communicate(timeout=300) for p in procs]
    for proc, (_, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err
    paths = {out.strip() for out, _ in results}
    assert paths == {str(root / lock.env_id)}
    env_dir = root / lock.env_id
    assert (env_dir / MARKER).is_file()
    builders = {line.split()[0] for line in log.read_text().splitlines()}
    assert len(builders) == 1, "the environment was built more than once"
    assert len(log.read_text().splitlines()) == len(lock.packages)
    assert [p.name for p in root.iterdir() if p.name.startswith(".building-")] == []
    assert run_in(env_dir, "import humanize, fastavro").returncode == 0


def test_offline_materialize_with_unreachable_index(
    lock: Lock, blobs: BlobCache, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = "http://127.0.0.1:9"
    # A fresh home: an empty uv cache, so uv has to unpack from the local files alone.
    monkeypatch.setenv("SATCHEL_HOME", str(tmp_path / "offline-home"))
    for var in ("UV_INDEX_URL", "UV_DEFAULT_INDEX", "UV_EXTRA_INDEX_URL", "PIP_INDEX_URL"):
        monkeypatch.setenv(var, dead)
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.setenv(var, dead)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    env_dir = EnvironmentCache().ensure(lock, fetcher(blobs))
    assert env_dir == tmp_path / "offline-home" / "envs" / lock.env_id
    assert run_in(env_dir, "import humanize, fastavro").returncode == 0


def _fake_env(root: Path, env_id: str, age: timedelta) -> Path:
    env_dir = root / env_id
    env_dir.mkdir(parents=True)
    created = time.time() - age.total_seconds()
    (env_dir / MARKER).write_text(json.dumps({"env_id": env_id, "python": "3.11"}))
    (env_dir / "payload").write_bytes(b"x" * 1000)
    (env_dir / ".last-used").touch()
    os.utime(env_dir / ".last-used", (created, created))
    os.utime(env_dir / MARKER, (created, created))
    return env_dir


def test_prune_by_age_and_keep(home: Path, lock: Lock, blobs: BlobCache) -> None:
    root = home / "envs-prune"
    cache = EnvironmentCache(root)
    real = cache.ensure(lock, fetcher(blobs))  # used just now
    _fake_env(root, "a" * 32, timedelta(days=40))
    _fake_env(root, "b" * 32, timedelta(days=40))
    _fake_env(root, "c" * 32, timedelta(days=2))
    stray = root / f".building-{'d' * 32}-0123456789ab"
    stray.mkdir()
    assert {i.env_id for i in cache.list()} == {lock.env_id, "a" * 32, "b" * 32, "c" * 32}

    removed = cache.prune(older_than=timedelta(days=30), keep={"b" * 32})
    assert removed == ["a" * 32]
    assert not stray.exists()
    assert {i.env_id for i in cache.list()} == {lock.env_id, "b" * 32, "c" * 32}

    assert cache.prune(older_than=timedelta(days=1), keep={lock.env_id}) == ["b" * 32, "c" * 32]
    assert real.exists()
    assert cache.prune() == [lock.env_id]
    assert cache.list() == []
    assert sorted(p.name for p in root.iterdir()) == [".locks"]


def test_prune_skips_environments_being_built(home: Path) -> None:
    root = home / "envs-prune-busy"
    cache = EnvironmentCache(root)
    _fake_env(root, "e" * 32, timedelta(days=40))
    building = root / f".building-{'f' * 32}-0123456789ab"
    building.mkdir()
    held = [cache._file_lock("e" * 32), cache._file_lock("f" * 32)]
    code = textwrap.dedent(
        f"""
        from datetime import timedelta
        from satchel.runtime.environments import EnvironmentCache
        print(EnvironmentCache({str(root)!r}).prune(older_than=timedelta(days=1)))
        """
    )
    for file_lock in held:
        file_lock.acquire()
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    finally:
        for file_lock in held:
            file_lock.release()
    assert out.strip() == "[]"
    assert (root / ("e" * 32)).exists() and building.exists()
    assert cache.prune(older_than=timedelta(days=1)) == ["e" * 32]
    assert not building.exists()


KILLED_BUILD = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from satchel.packager.blobcache import BlobCache
    from satchel.packager.resolvers.base import Lock
    from satchel.packager.resolvers.uv import UvResolver
    from satchel.runtime.environments import EnvironmentCache

    lock_file, root, blobs, ready = sys.argv[1:5]
    materialize = UvResolver.materialize

    def materialize_then_hang(self, lock, files, dest, interpreter):
        materialize(self, lock, files, dest, interpreter)  # a full venv in .building-*, then killed
        Path(ready).touch()
        time.sleep(600)

    UvResolver.materialize = materialize_then_hang
    cache = BlobCache(Path(blobs))
    lock = Lock.from_dict(json.loads(Path(lock_file).read_text()))
    EnvironmentCache(Path(root)).ensure(lock, lambda package: cache.path(package.sha256))
    """
)


def test_a_killed_build_is_swept_by_the_next_build_of_any_environment(
    home: Path, lock: Lock, blobs: BlobCache, tmp_path: Path
) -> None:
    root = home / "envs-killed"
    lock_file, ready = tmp_path / "lock.json", tmp_path / "ready"
    lock_file.write_text(json.dumps(lock.to_dict()))
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_BUILD, str(lock_file), str(root), str(blobs.root), str(ready)], cwd=REPO
    )
    try:
        wait_until(lambda: ready.exists() or proc.poll() is not None, 300, "the build to materialize")
        assert proc.poll() is None, "the builder exited before it was killed"
    finally:
        proc.kill()
        proc.wait()
    killed = [p for p in root.iterdir() if p.name.startswith(f".building-{lock.env_id}-")]
    assert len(killed) == 1 and (killed[0] / "pyvenv.cfg").is_file()
    # A build in progress elsewhere: its lock is held, so its directory is left alone.
    busy = root / f".building-{'f' * 32}-0123456789ab"
    busy.mkdir()
    cache = EnvironmentCache(root)
    held = cache._file_lock("f" * 32)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import filelock, sys; held = filelock.FileLock({str(held.lock_file)!r}); held.acquire(); "
            "print('held', flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        other = Lock(resolver="uv", python="3.11", platform=interpreters.machine_platform(), packages=())
        assert other.env_id != lock.env_id
        cache.ensure(other, lambda package: Path("/nonexistent"))
    finally:
        holder.communicate("")
    assert not killed[0].exists()
    assert busy.exists()
    assert sorted(p.name for p in root.iterdir() if not p.name.startswith(".locks")) == sorted(
        [other.env_id, busy.name]
    )
