"""Interpreter discovery through uv (real uv, this machine's interpreters)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from satchel.core.errors import EnvironmentResolutionError, InterpreterNotFound
from satchel.packager import interpreters


@pytest.fixture(autouse=True)
def _home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SATCHEL_HOME", str(tmp_path_factory.getbasetemp() / "interpreters-home"))


def current() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def test_find_interpreter_returns_a_working_python_of_that_version() -> None:
    path = interpreters.find_interpreter(current())
    assert path.exists()
    out = subprocess.run(
        [str(path), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert out == current()


def test_find_interpreter_311() -> None:
    path = interpreters.find_interpreter("3.11")
    out = subprocess.run(
        [str(path), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], capture_output=True, text=True
    ).stdout.strip()
    assert out == "3.11"


def test_results_are_cached_per_process() -> None:
    first = interpreters.find_interpreter(current())
    assert interpreters.find_interpreter(current()) is first
    assert interpreters.available_versions() == interpreters.available_versions()


def test_available_versions_lists_installed_cpythons() -> None:
    versions = interpreters.available_versions()
    assert current() in versions
    assert versions == sorted(versions, key=lambda v: tuple(int(p) for p in v.split(".")))
    assert all(v.count(".") == 1 for v in versions)


def test_missing_version_names_what_is_installed() -> None:
    with pytest.raises(InterpreterNotFound) as info:
        interpreters.find_interpreter("3.99")
    message = str(info.value)
    assert message.startswith("Python 3.99 is not installed on this machine; found: ")
    assert current() in message
    assert "uv python install 3.99" in message
    assert isinstance(info.value, EnvironmentResolutionError)


def test_pyenv_versions_go_first_newest_first_and_python2_is_skipped(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "pyenv"
    for name in ("3.9.18", "3.11.2", "3.11.10", "2.7.18", "pypy2.7-7.3.11", "3.12.1"):
        (root / "versions" / name / "bin").mkdir(parents=True)
    (root / "versions" / "broken").mkdir()  # no bin/: ignored
    monkeypatch.setenv("PYENV_ROOT", str(root))
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    dirs = [d.parent.name for d in interpreters.pyenv_bin_dirs()]
    assert dirs == ["3.12.1", "3.11.10", "3.11.2", "3.9.18"]
    path = interpreters.discovery_path().split(":")
    assert path[:4] == [str(root / "versions" / n / "bin") for n in dirs]
    assert path[4:] == ["/usr/bin", "/bin"]


def test_no_pyenv_leaves_path_alone(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "nothing-here"))
    monkeypatch.setenv("PATH", "/usr/bin:/bin:/usr/bin")
    assert interpreters.pyenv_bin_dirs() == []
    assert interpreters.discovery_path() == "/usr/bin:/bin"


def test_machine_platform() -> None:
    system, _, machine = interpreters.machine_platform().partition("-")
    assert system in {"linux", "macos", "windows"} or system == sys.platform
    assert machine
