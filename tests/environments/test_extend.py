"""Composition: a resolved environment extended by a few packages keeps every package it had, exactly."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import pytest

import satchel
from satchel.core.errors import EnvironmentResolutionError
from satchel.packager.locking import downloading_fetcher, lock_environment
from satchel.packager.resolvers import get_resolver
from satchel.runtime.environments import EnvironmentCache

pytestmark = pytest.mark.timeout(600)
RUNTIME = ["fastavro>=1.9"]


@pytest.fixture(scope="module")
def base(conda_channel):
    env = satchel.Environment(conda=["humanize=4.12", "rich", "fastavro"], channels=[str(conda_channel.path)])
    return lock_environment(env, RUNTIME)


def pins(lock) -> dict[str, tuple[str, str, str]]:
    return {p.name: (p.manager, p.version, p.sha256) for p in lock.packages}


def test_an_addition_the_base_satisfies_solves_nothing(base, monkeypatch: pytest.MonkeyPatch) -> None:
    from satchel.packager.resolvers import rattler as rattler_resolver

    def no_solve(*args, **kwargs):
        raise AssertionError("solved although the base satisfies every addition")

    monkeypatch.setattr(rattler_resolver.RattlerResolver, "_solve", no_solve)
    monkeypatch.setattr(rattler_resolver.UvResolver, "compile", no_solve)
    extended = lock_environment(
        satchel.Environment.resolved(base).extend(conda=["rich>=13"], pypi=["humanize>=4"]), RUNTIME
    )
    assert extended.env_id == base.env_id


def test_a_conda_addition_is_solved_around_the_pinned_base(base) -> None:
    extended = lock_environment(satchel.Environment.resolved(base).extend(conda=["markupsafe"]), RUNTIME)
    got = pins(extended)
    assert {name: got[name] for name in pins(base)} == pins(base)
    assert got["markupsafe"][0] == "conda" and set(got) - set(pins(base)) == {"markupsafe"}
    assert extended.requested.base is base and extended.requested_id != base.requested_id


def test_a_pypi_addition_on_a_conda_base_is_materialized_with_the_base_intact(base) -> None:
    extended = lock_environment(satchel.Environment.resolved(base).extend(pypi=["six==1.17.0"]), RUNTIME)
    assert pins(extended)["six"][:2] == ("pip", "1.17.0")
    with tempfile.TemporaryDirectory() as tmp:
        fetch = downloading_fetcher(get_resolver("rattler"), Path(tmp))
        env_dir = EnvironmentCache(Path(tmp) / "envs").ensure(extended, fetch)
        code = "import humanize, rich, six, sys; print(humanize.__version__, six.__version__, sys.prefix)"
        out = subprocess.run(
            [str(env_dir / "bin" / "python"), "-c", code], capture_output=True, text=True, check=True
        )
    assert out.stdout.split()[:2] == ["4.12.1", "1.17.0"]


@pytest.mark.parametrize(
    ("addition", "named"),
    [
        ({"conda": ["humanize=4.9"]}, "'humanize=4.9' conflicts with humanize 4.12.1"),
        ({"pypi": ["humanize==4.9.0"]}, "'humanize==4.9.0' conflicts with humanize 4.12.1"),
    ],
    ids=["conda", "pypi"],
)
def test_an_addition_conflicting_with_a_pinned_package_names_both(base, addition, named: str) -> None:
    with pytest.raises(EnvironmentResolutionError) as info:
        lock_environment(satchel.Environment.resolved(base).extend(**addition), RUNTIME)
    assert str(info.value).startswith(named) and "pinned by the base environment" in str(info.value)


def test_conda_packages_cannot_be_added_to_a_pypi_environment() -> None:
    plain = lock_environment(satchel.Environment(pypi=["six==1.17.0"]), RUNTIME)
    with pytest.raises(EnvironmentResolutionError, match="is a PyPI environment"):
        lock_environment(satchel.Environment.resolved(plain).extend(conda=["humanize"]), RUNTIME)
    # PyPI additions to a PyPI base: the base's pins are kept
    extended = lock_environment(
        satchel.Environment.resolved(plain).extend(pypi=["humanize==4.12.1"]), RUNTIME
    )
    assert pins(extended)["six"] == pins(plain)["six"] and pins(extended)["humanize"][1] == "4.12.1"


def test_a_pypi_addition_to_a_conda_base_needs_no_channel(private_channel) -> None:
    env = satchel.Environment(conda=["humanize", "fastavro"], channels=[str(private_channel.path)])
    base = lock_environment(env, RUNTIME)
    import shutil

    shutil.rmtree(private_channel.path)
    extended = lock_environment(satchel.Environment.resolved(base).extend(pypi=["six==1.17.0"]), RUNTIME)
    assert pins(extended)["six"][:2] == ("pip", "1.17.0")
    assert {k: v for k, v in pins(extended).items() if k != "six"} == pins(base)
