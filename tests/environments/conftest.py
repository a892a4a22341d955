"""Shared by the environment tests: a SATCHEL_HOME of the module's own, and one resolved lock."""

from __future__ import annotations

import pytest

from satchel.packager.environment import Environment
from satchel.packager.resolvers.base import Lock
from satchel.packager.resolvers.uv import UvResolver

RUNTIME = ["fastavro>=1.9"]


@pytest.fixture(scope="module", autouse=True)
def home(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest):
    mp = pytest.MonkeyPatch()
    path = tmp_path_factory.mktemp(f"{request.module.__name__.rsplit('.', 1)[-1]}-home")
    mp.setenv("SATCHEL_HOME", str(path))
    yield path
    mp.undo()


@pytest.fixture(scope="module")
def lock() -> Lock:
    return UvResolver().resolve(Environment(python="3.11", pypi=["humanize==4.12.1"]), RUNTIME)
