"""Finding and building the ring library: the SATCHEL_HOME fallback, its lock, stale libraries, the kit."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from satchel.bindings import _native

REPO = Path(__file__).resolve().parents[2]


def _kit_copy(root: Path) -> Path:
    """The bindings as a worker kit has them (loader + C source in _native/src), without a library."""
    kit = root / "satchel"
    shutil.copytree(REPO / "bindings", kit / "bindings", ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    shutil.copy(REPO / "satchel" / "__init__.py", kit / "__init__.py")
    shutil.copytree(REPO / "core", kit / "core", ignore=shutil.ignore_patterns("__pycache__"))
    native = kit / "bindings" / "_native"
    (native / "src").mkdir()
    for name in _native.SOURCES:
        shutil.copy(_native.source_dir() / name, native / "src" / name)
    return native


_WHERE = "import sys; sys.path.insert(0, sys.argv[1]); from satchel.bindings import _native; print(_native.load().path)"


def test_builds_into_satchel_home_once_under_a_lock(tmp_path: Path) -> None:
    """Several processes find no library at once: one compiles it (atomically), all load it."""
    native = _kit_copy(tmp_path / "kit")
    digest = _native.source_hash(native / "src")
    home = tmp_path / "home"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WHERE, str(tmp_path / "kit")],
            cwd=tmp_path,
            env={**os.environ, "SATCHEL_HOME": str(home)},
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    paths = {proc.communicate(timeout=300)[0].strip() for proc in procs}
    expected = home / "native" / digest / _native.LIBRARY_NAME
    assert paths == {str(expected)}
    assert sorted(p.name for p in expected.parent.iterdir()) == [".lock", _native.LIBRARY_NAME]
    assert _native._embeds(expected, digest)


def test_compile_library_embeds_the_source_hash(tmp_path: Path) -> None:
    out = _native.compile_library(_native.source_dir(), tmp_path / "lib" / "x.so")
    assert out.is_file() and _native._embeds(out, _native.source_hash(_native.source_dir()))
    assert [p.name for p in out.parent.iterdir()] == ["x.so"], "no temporary file is left"


def test_a_stale_library_beside_the_source_is_ignored(tmp_path: Path) -> None:
    """A kit whose library was built from other sources: the loader builds a fresh one instead."""
    native = _kit_copy(tmp_path / "kit")
    other = tmp_path / "other"  # the same source and one more comment line
    shutil.copytree(native / "src", other)
    with open(other / "satchelring.c", "a") as fh:
        fh.write("/* another version */\n")
    _native.compile_library(other, native / _native.LIBRARY_NAME)
    home = tmp_path / "home"

    def where() -> str:
        out = subprocess.run(
            [sys.executable, "-c", _WHERE, str(tmp_path / "kit")],
            env={**os.environ, "SATCHEL_HOME": str(home)},
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tmp_path,
        )
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    assert where() == str(home / "native" / _native.source_hash(native / "src") / _native.LIBRARY_NAME)
    # once rebuilt from the right source and put beside it, that one is used
    _native.compile_library(native / "src", native / _native.LIBRARY_NAME)
    assert where() == str(native / _native.LIBRARY_NAME)


def test_no_compiler_means_unavailable_not_broken(tmp_path: Path) -> None:
    _kit_copy(tmp_path / "kit")
    script = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "from satchel.bindings import _native\n"
        "from satchel.bindings.transports import default_transport\n"
        "print(default_transport(), _native.available())\n"
        "print(_native.unavailable_reason())\n"
    )
    env = {**os.environ, "SATCHEL_HOME": str(tmp_path / "home"), "CC": str(tmp_path / "no-such-cc")}
    env.pop("SATCHEL_TRANSPORT", None)
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "kit")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    first, reason = out.stdout.split("\n", 1)
    assert first.split() == ["pipe", "False"] and "no-such-cc" in reason


def test_default_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    from satchel.bindings import transports

    monkeypatch.delenv("SATCHEL_TRANSPORT", raising=False)
    assert transports.default_transport() == ("shm" if sys.platform.startswith("linux") else "pipe")
    monkeypatch.setenv("SATCHEL_TRANSPORT", "pipe")
    assert transports.default_transport() == "pipe"
    monkeypatch.setenv("SATCHEL_TRANSPORT", "carrier-pigeon")
    with pytest.raises(ValueError, match="carrier-pigeon"):
        transports.default_transport()


def test_worker_kit_carries_the_library_and_its_source() -> None:
    from satchel.runtime.kit import worker_kit

    kit = worker_kit()
    native = kit / "satchel" / "bindings" / "_native"
    assert (native / "__init__.py").is_file()
    assert sorted(p.name for p in (native / "src").iterdir()) == sorted(_native.SOURCES)
    library = native / _native.LIBRARY_NAME
    assert library.is_file() and os.access(library, os.X_OK)
    assert _native._embeds(library, _native.source_hash(native / "src"))
