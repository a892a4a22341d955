"""Bad conda requests and damaged mirrors: each one clear error naming what is at fault and what to do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import satchel
from satchel.core.errors import EnvironmentResolutionError
from satchel.packager.bundle import read_bundle
from satchel.packager.locking import lock_environment
from satchel.packager.stores.base import blob_key
from tests.fixtures.conda_channel import served
from tests.functions import conda_fns

pytestmark = pytest.mark.timeout(600)
RUNTIME = ["fastavro>=1.9"]


def resolve(channel: str, conda: list[str], **options) -> satchel.Environment:
    return lock_environment(satchel.Environment(conda=conda, channels=[channel], **options), RUNTIME)


def test_an_unknown_package_names_close_ones(conda_channel) -> None:
    with pytest.raises(EnvironmentResolutionError) as info:
        resolve(str(conda_channel.path), ["humanise"])
    first = str(info.value).splitlines()[0]
    assert "no package named 'humanise'" in first and "did you mean humanize?" in first


def test_no_matching_version_says_so(conda_channel) -> None:
    with pytest.raises(EnvironmentResolutionError, match=r"no version of humanize .* matches 'humanize >=5'"):
        resolve(str(conda_channel.path), ["humanize>=5"])


def test_an_unsatisfiable_request_shows_rattlers_explanation_shortened(conda_channel) -> None:
    with pytest.raises(EnvironmentResolutionError) as info:
        resolve(str(conda_channel.path), ["humanize=4.9", "humanize=4.12"])
    text = str(info.value)
    assert "rattler says:" in text and "humanize" in text.split("rattler says:")[1]
    assert len(text.splitlines()) <= 16


def test_an_unknown_channel_directory(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-channel"
    with pytest.raises(EnvironmentResolutionError, match=r"conda channel .*no-such-channel.* does not exist"):
        resolve(str(missing), ["python"])


def test_a_directory_that_is_not_a_channel(tmp_path: Path) -> None:
    (tmp_path / "linux-64").mkdir()
    with pytest.raises(
        EnvironmentResolutionError, match=r"is not a conda channel: it has no noarch/repodata.json"
    ):
        resolve(str(tmp_path), ["python"])


def test_an_unreachable_channel_url(conda_channel) -> None:
    with served(conda_channel.path) as server:
        url = server.url
    with pytest.raises(
        EnvironmentResolutionError, match=r"could not read conda channel\(s\) http://127\.0\.0\.1"
    ):
        resolve(url, ["python"])


def test_a_platform_the_channel_lacks(conda_channel) -> None:
    with pytest.raises(EnvironmentResolutionError, match=r"have no packages for platform osx-arm64"):
        resolve(str(conda_channel.path), ["humanize"], platform="osx-arm64")


def test_an_unknown_platform(conda_channel) -> None:
    with pytest.raises(
        EnvironmentResolutionError, match=r"unknown conda platform 'amiga-68k'; known: linux-64"
    ):
        resolve(str(conda_channel.path), ["humanize"], platform="amiga-68k")


def test_a_bad_virtual_package(conda_channel) -> None:
    with pytest.raises(EnvironmentResolutionError, match=r"'glibc=2.17' is not a virtual package"):
        resolve(str(conda_channel.path), ["humanize"], virtual_packages=["glibc=2.17"])


def test_a_bad_match_spec(conda_channel) -> None:
    with pytest.raises(EnvironmentResolutionError, match=r"'humanize >=>= 4' is not a conda match spec"):
        resolve(str(conda_channel.path), ["humanize >=>= 4"])


def test_a_mirrored_package_whose_sha256_no_longer_matches_names_the_file(
    conda_channel, store_url: str, tmp_path: Path
) -> None:
    fn = satchel.function(
        environment=satchel.Environment(conda=["humanize", "fastavro"], channels=[str(conda_channel.path)])
    )(conda_fns.describe)
    ref = fn.export(name="tampered", store=store_url, progress=False)
    humanize = next(p for p in read_bundle(ref)[0].lock.packages if p.name == "humanize")
    blob = Path(store_url.removeprefix("file://")) / blob_key(humanize.sha256)
    os.chmod(blob, 0o644)
    blob.write_bytes(b"not the package any more")
    code = f"import satchel\nsatchel.load({str(ref)!r})"
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "SATCHEL_HOME": str(tmp_path / "fresh")},  # nothing cached: the store is read
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode != 0
    assert "BlobCorrupted" in proc.stderr and humanize.filename in proc.stderr, proc.stderr
    assert not any((tmp_path / "fresh" / "envs").glob("[0-9a-f]*")), "no environment was built from it"


def test_two_processes_materialize_one_environment_at_once(
    conda_channel, store_url: str, tmp_path: Path
) -> None:
    fn = satchel.function(
        environment=satchel.Environment(
            conda=["rich", "humanize", "fastavro"], channels=[str(conda_channel.path)]
        )
    )(conda_fns.describe)
    ref = fn.export(name="together", store=store_url, progress=False)
    home = tmp_path / "shared-home"
    code = f"import satchel\nwith satchel.load({str(ref)!r}, progress=False) as f:\n    print(f(3_000_000))"
    env = {**os.environ, "SATCHEL_HOME": str(home)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    for proc, (out, err) in zip(procs, outputs):
        assert proc.returncode == 0, err
        assert out.strip() == "3.0 million"
    built = [p for p in (home / "envs").iterdir() if not p.name.startswith(".")]
    assert [p.name for p in built] == [read_bundle(ref)[0].lock.env_id]
    marker = json.loads((built[0] / ".satchel-env.json").read_text())
    assert marker["resolver"] == "rattler"


def test_condas_own_pinned_form_is_taken(conda_channel) -> None:
    lock = resolve(str(conda_channel.path), ["humanize=4.9.0=py_0"])
    assert {p.name: p.version for p in lock.packages}["humanize"] == "4.9.0"
