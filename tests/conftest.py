"""Shared test setup: one SATCHEL_HOME for the whole run (environments are built once, even across
pytest-xdist workers, which is itself a test of the cache's locking), a fresh store per test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = ["tests.fixtures.s3", "tests.fixtures.conda_channel"]

REPO = Path(__file__).resolve().parent.parent


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("SATCHEL_TEST_HOME"):
        home = Path(os.environ["SATCHEL_TEST_HOME"])
    else:
        # Shared by all xdist workers of this run, and by later runs on this machine (a cache).
        home = Path(os.environ.get("TMPDIR", "/tmp")) / f"satchel-test-home-{os.getuid()}"
    home.mkdir(parents=True, exist_ok=True)
    os.environ["SATCHEL_HOME"] = str(home)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Tests that start a Ray cluster (test_ray*.py) are marked `ray`: scripts/test.sh runs them in a run of
    # their own, so Ray's node and Serve do not start on a machine the rest of the suite keeps busy.
    for item in items:
        if item.path.name.startswith("test_ray"):
            item.add_marker(pytest.mark.ray)


@pytest.fixture
def store_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh local store, also made the default store."""
    url = (tmp_path / "store").as_uri()
    monkeypatch.setenv("SATCHEL_STORE", url)
    return url
