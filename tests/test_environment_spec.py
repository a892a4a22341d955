"""`satchel.Environment`: what a function asks for."""

from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path

import pytest

import satchel


def test_defaults_and_validation() -> None:
    env = satchel.Environment()
    assert env.python == f"{sys.version_info.major}.{sys.version_info.minor}" and env.pypi == ()
    assert satchel.Environment(python="3.11.7").python == "3.11"
    with pytest.raises(ValueError, match="python='eleven'"):
        satchel.Environment(python="eleven")
    with pytest.raises(TypeError, match="list of requirement strings"):
        satchel.Environment(pypi="numpy")
    with pytest.raises(satchel.EnvironmentResolutionError, match="not a valid requirement"):
        satchel.Environment(pypi=["numpy=>1"])


def test_from_requirements(tmp_path: Path) -> None:
    req = tmp_path / "requirements.txt"
    req.write_text("# pinned\nhumanize==4.12.1  # words\n\nfastavro>=1.9\n")
    env = satchel.Environment.from_requirements(req, python="3.12")
    assert env.pypi == ("humanize==4.12.1", "fastavro>=1.9") and env.python == "3.12"
    req.write_text("-e .\n")
    with pytest.raises(satchel.EnvironmentResolutionError, match=r"requirements.txt:1"):
        satchel.Environment.from_requirements(req)
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        satchel.Environment.from_requirements(tmp_path / "nope.txt")


def test_from_current_pins_installed_versions() -> None:
    env = satchel.Environment.from_current(["numpy", "fastavro"])
    assert env.pypi == (f"numpy=={metadata.version('numpy')}", f"fastavro=={metadata.version('fastavro')}")
    with pytest.raises(satchel.EnvironmentResolutionError, match="not-a-real-package"):
        satchel.Environment.from_current(["not-a-real-package"])


def test_round_trip() -> None:
    env = satchel.Environment(python="3.10", pypi=["a==1"])
    assert satchel.Environment.from_dict(env.to_dict()) == env


def test_python_version_is_a_string() -> None:
    with pytest.raises(
        TypeError, match=r"takes a version string such as '3.11', not float 3.1, and as a number"
    ):
        satchel.Environment(python=3.10)
    with pytest.raises(TypeError, match="not int 3"):
        satchel.Environment(python=3)
    with pytest.raises(TypeError, match="requirement strings, got int 1"):
        satchel.Environment(pypi=[1])
    assert satchel.Environment(python="3.10").python == "3.10"
