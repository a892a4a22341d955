"""`satchel env` end to end as a user types it: conda's environment.yml resolved and published under a name,
then exported for conda-lock, pip and conda, from the name and from a bundle."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conda_lock.lockfile import parse_conda_lock_file

import satchel
from satchel.packager.bundle import read_bundle
from satchel.packager.named_environments import NamedEnvironments
from tests.functions import conda_fns

pytestmark = pytest.mark.timeout(600)


def cli(*args: str, cwd: Path, store: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "satchel", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
        env={**os.environ, "SATCHEL_STORE": store},  # the default store, as a user sets it
    )


def test_resolve_an_environment_yml_by_name_and_export_it_three_ways(
    conda_channel, store_url: str, tmp_path: Path
) -> None:
    (tmp_path / "environment.yml").write_text(
        "name: demo\n"
        f"channels: [{conda_channel.path}]\n"
        "dependencies:\n  - python=3.11\n  - humanize=4.12\n  - fastavro\n  - pip:\n    - six==1.17.0\n"
    )
    proc = cli("env", "resolve", "environment.yml", "--name", "ml/demo", cwd=tmp_path, store=store_url)
    assert proc.returncode == 0, proc.stderr
    assert "published ml/demo:1 (tag latest)" in proc.stdout
    lock = NamedEnvironments(store_url).lock("ml/demo")
    assert {p.name: p.manager for p in lock.packages} == {
        "fastavro": "conda",
        "humanize": "conda",
        "python": "conda",
        "six": "pip",
    }

    proc = cli(
        "env",
        "export",
        "ml/demo",
        "--format",
        "conda-lock",
        "-o",
        "conda-lock.yml",
        cwd=tmp_path,
        store=store_url,
    )
    assert proc.returncode == 0, proc.stderr
    parsed = parse_conda_lock_file(tmp_path / "conda-lock.yml")
    assert {(p.name, p.version, p.manager, p.hash.sha256) for p in parsed.package} == {
        (p.name, p.version, p.manager, p.sha256) for p in lock.packages
    }

    proc = cli("env", "export", "ml/demo", "--format", "environment.yml", cwd=tmp_path, store=store_url)
    assert proc.returncode == 0, proc.stderr
    doc = yaml.safe_load(proc.stdout)
    assert "humanize=4.12.1=py_0" in doc["dependencies"] and {"pip": ["six==1.17.0"]} in doc["dependencies"]

    # a bundle exported with the named environment exports the same lock
    fn = satchel.function(environment=satchel.Environment.named("ml/demo", store=store_url))(
        conda_fns.describe
    )
    ref = fn.export(name="demo", store=store_url, progress=False)
    assert read_bundle(ref)[0].lock.env_id == lock.env_id
    proc = cli("env", "export", str(ref), "--format", "requirements", cwd=tmp_path, store=store_url)
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if not line.startswith("#")]
    six = next(p for p in lock.packages if p.name == "six")
    assert lines[0].startswith("six==1.17.0") and f"--hash=sha256:{six.sha256}" in proc.stdout
    assert "humanize" in proc.stdout.split("\n\n")[0]  # the header names the conda packages left out


def test_export_of_an_unknown_reference_is_one_line(store_url: str, tmp_path: Path) -> None:
    proc = cli("env", "export", "ml/nothing", "--format", "conda-lock", cwd=tmp_path, store=store_url)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "ml/nothing" in proc.stderr
