"""The uv resolver against real uv and the real PyPI."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from satchel.core.errors import BlobCorrupted, EnvironmentResolutionError
from satchel.packager import interpreters
from satchel.packager.environment import Environment
from satchel.packager.resolvers import available_resolvers, get_resolver, register_resolver
from satchel.packager.resolvers.base import Lock, LockedPackage
from satchel.packager.resolvers.uv import UvResolver, parse_pylock, target_tags, uv_error_text
from tests.environments.conftest import RUNTIME


def test_registry() -> None:
    assert "uv" in available_resolvers()
    assert isinstance(get_resolver("uv"), UvResolver)
    with pytest.raises(EnvironmentResolutionError, match="unknown environment resolver 'nope'.*uv"):
        get_resolver("nope")


def test_registry_takes_new_backends() -> None:
    register_resolver("uv-again", "satchel.packager.resolvers.uv:UvResolver")
    register_resolver("uv-factory", lambda **kw: UvResolver(**kw))
    try:
        assert isinstance(get_resolver("uv-again"), UvResolver)
        assert isinstance(get_resolver("uv-factory", progress=print), UvResolver)
    finally:
        from satchel.packager.resolvers import RESOLVERS

        RESOLVERS.unregister("uv-again")
        RESOLVERS.unregister("uv-factory")


def test_resolve_pins_user_and_runtime_requirements(lock: Lock) -> None:
    by_name = {p.name: p for p in lock.packages}
    assert set(by_name) == {"humanize", "fastavro"}
    assert by_name["humanize"].version == "4.12.1"
    for package in lock.packages:
        assert re.fullmatch(r"[0-9a-f]{64}", package.sha256)
        assert package.filename.endswith(".whl")
        assert package.url.startswith("https://") and package.url.endswith(package.filename)
        assert package.size and package.size > 0
    assert "cp311" in by_name["fastavro"].filename
    assert lock.resolver == "uv"
    assert lock.python == "3.11"
    assert lock.platform == interpreters.machine_platform()
    assert lock.runtime_requirements == tuple(RUNTIME)
    assert lock.requested == Environment(python="3.11", pypi=["humanize==4.12.1"])
    assert Lock.from_dict(lock.to_dict()) == lock


def test_env_id_is_stable_and_depends_on_the_pins(lock: Lock) -> None:
    again = UvResolver().resolve(Environment(python="3.11", pypi=["humanize==4.12.1"]), RUNTIME)
    assert again.env_id == lock.env_id
    other = UvResolver().resolve(Environment(python="3.11", pypi=["humanize==4.12.0"]), RUNTIME)
    assert other.env_id != lock.env_id


def test_resolve_for_another_python_picks_its_wheels() -> None:
    lock = UvResolver().resolve(Environment(python="3.12", pypi=[]), RUNTIME)
    (fastavro,) = lock.packages
    assert "cp312" in fastavro.filename
    assert lock.python == "3.12"


def test_unknown_version_explains_with_uvs_words() -> None:
    with pytest.raises(EnvironmentResolutionError) as info:
        UvResolver().resolve(Environment(python="3.11", pypi=["humanize==99.0.0"]), RUNTIME)
    message = str(info.value)
    assert "humanize" in message
    assert "no version of humanize==99.0.0" in message
    assert "\x1b[" not in message
    assert "warning:" not in message
    assert "Check the package names" in message


def test_unknown_package() -> None:
    with pytest.raises(EnvironmentResolutionError, match="satchel-no-such-package-xq7"):
        UvResolver().resolve(Environment(python="3.11", pypi=["satchel-no-such-package-xq7"]), [])


def test_sdist_only_package_is_refused() -> None:
    with pytest.raises(EnvironmentResolutionError, match=r"docopt 0\.6\.2 .*sdists is not supported yet"):
        UvResolver().resolve(Environment(python="3.11", pypi=["docopt==0.6.2"]), [])


def test_invalid_runtime_requirement() -> None:
    with pytest.raises(EnvironmentResolutionError, match="runtime requirement"):
        UvResolver().resolve(Environment(python="3.11"), ["not a requirement!!"])


def test_progress_callback(lock: Lock) -> None:
    messages: list[str] = []
    UvResolver(progress=messages.append).resolve(lock.requested, RUNTIME)
    assert messages and any("resolv" in m for m in messages)


def test_download_verifies_sha256(lock: Lock, tmp_path: Path) -> None:
    humanize = next(p for p in lock.packages if p.name == "humanize")
    path = UvResolver().download(humanize, tmp_path / "dl" / humanize.filename)
    assert path == tmp_path / "dl" / humanize.filename
    assert hashlib.sha256(path.read_bytes()).hexdigest() == humanize.sha256
    assert path.stat().st_size == humanize.size
    assert [p.name for p in (tmp_path / "dl").iterdir()] == [humanize.filename]  # no temp leftovers

    wrong = LockedPackage(
        humanize.name, humanize.version, humanize.filename, humanize.url, "0" * 64, humanize.size
    )
    with pytest.raises(BlobCorrupted, match="humanize 4.12.1"):
        UvResolver().download(wrong, tmp_path / "bad" / humanize.filename)
    assert list((tmp_path / "bad").iterdir()) == []


def test_download_of_a_local_file_url(tmp_path: Path) -> None:
    source = tmp_path / "pkg-1.0-py3-none-any.whl"
    source.write_bytes(b"x" * 3_000_000)
    package = LockedPackage(
        "pkg", "1.0", source.name, source.as_uri(), hashlib.sha256(source.read_bytes()).hexdigest(), 3_000_000
    )
    out = UvResolver().download(package, tmp_path / "out" / source.name)
    assert out.read_bytes() == source.read_bytes()


def test_uv_error_text_strips_colors_and_warnings() -> None:
    stderr = (
        "warning: Failed to inspect Python interpreter from search path at `/x/shims/python3.10`\n"
        "  cause: Querying Python failed\n"
        "\n"
        "         pyenv: python3.10: command not found\n"
        "\x1b[1m\x1b[31merror\x1b[39m\x1b[0m\x1b[1m:\x1b[0m No solution found\n"
        "  \x1b[31mcause\x1b[39m: Because there is no version of foo==9\n"
    )
    assert uv_error_text(stderr) == "error: No solution found\n  cause: Because there is no version of foo==9"
    assert len(uv_error_text("error: x\n" + "line\n" * 100).splitlines()) == 16


def _wheel(filename: str, digest: str = "a" * 64) -> dict:
    return {"url": f"https://files.example/{filename}", "size": 1, "hashes": {"sha256": digest}}


def test_parse_pylock_picks_the_most_preferred_compatible_wheel() -> None:
    platform_tag = next(iter(target_tags("3.11"))).platform
    data = {
        "packages": [
            {
                "name": "Demo_Pkg",
                "version": "1.0",
                "wheels": [
                    _wheel("demo_pkg-1.0-py3-none-any.whl", "1" * 64),
                    _wheel(f"demo_pkg-1.0-cp311-cp311-{platform_tag}.whl", "2" * 64),
                    _wheel("demo_pkg-1.0-cp311-cp311-win_amd64.whl", "3" * 64),
                    _wheel(f"demo_pkg-1.0-cp312-cp312-{platform_tag}.whl", "4" * 64),
                ],
            },
            {"name": "other", "version": "2.0", "wheels": [_wheel("other-2.0-py3-none-any.whl", "5" * 64)]},
            {"name": "skipped", "version": "1", "marker": "python_version < '3.8'", "wheels": []},
        ]
    }
    demo, other = parse_pylock(data, "3.11")
    assert demo.name == "demo-pkg"
    assert demo.sha256 == "2" * 64
    assert demo.filename == f"demo_pkg-1.0-cp311-cp311-{platform_tag}.whl"
    assert other.sha256 == "5" * 64


def test_parse_pylock_refuses_incompatible_wheels_and_sdists() -> None:
    data = {
        "packages": [
            {
                "name": "winonly",
                "version": "3.1",
                "sdist": {"url": "https://files.example/winonly-3.1.tar.gz", "hashes": {"sha256": "b" * 64}},
                "wheels": [_wheel("winonly-3.1-cp311-cp311-win_amd64.whl")],
            }
        ]
    }
    with pytest.raises(EnvironmentResolutionError, match=r"winonly 3\.1 has no wheel for Python 3\.11"):
        parse_pylock(data, "3.11")
    with pytest.raises(EnvironmentResolutionError, match="VCS"):
        parse_pylock({"packages": [{"name": "x", "version": "1", "vcs": {"url": "git+https://x"}}]}, "3.11")
