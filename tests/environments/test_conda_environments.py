"""Conda environments end to end: solved by rattler from the suite's own channel (tests/fixtures/
conda_channel.py), mirrored into a store, materialized from the mirror alone, called in a worker."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import satchel
from satchel.packager.bundle import read_bundle
from tests.fixtures.conda_channel import served
from tests.functions import conda_fns

pytestmark = pytest.mark.timeout(600)


def conda_function(fn, channel: str, conda: list[str], pypi: list[str] = ()):
    env = satchel.Environment(conda=conda, pypi=list(pypi), channels=[channel])
    return satchel.function(environment=env)(fn)


def test_export_load_call_in_the_environments_own_interpreter(conda_channel, store_url: str) -> None:
    fn = conda_function(conda_fns.where, str(conda_channel.path), ["humanize=4.12", "fastavro"])
    ref = fn.export(name="where", store=store_url, progress=False)
    bundle, _ = read_bundle(ref)
    lock = bundle.lock
    assert lock.resolver == "rattler" and lock.subdir == "linux-64"
    managers = {p.name: p.manager for p in lock.packages}
    # fastavro (the worker's own requirement) came from the channel, so uv had nothing to add
    assert managers["humanize"] == managers["fastavro"] == managers["python"] == "conda"
    assert all(m == "conda" for m in managers.values())
    with satchel.load(ref) as loaded:
        seen = loaded()
    prefix = Path(seen["prefix"])
    assert seen["humanize"] == "4.12.1"
    assert (prefix / "conda-meta").is_dir() and Path(seen["executable"]) == prefix / "bin" / "python"
    assert prefix.name == lock.env_id


def test_compiled_conda_package_and_a_pypi_addition(conda_channel, store_url: str) -> None:
    fn = conda_function(
        conda_fns.escape_markup, str(conda_channel.path), ["markupsafe", "fastavro"], ["six==1.17.0"]
    )
    ref = fn.export(name="markup", store=store_url, progress=False)
    lock = read_bundle(ref)[0].lock
    by_name = {p.name: p for p in lock.packages}
    assert by_name["markupsafe"].manager == "conda" and by_name["six"].manager == "pip"
    assert by_name["six"].version == "1.17.0"
    with satchel.load(ref) as loaded:
        assert loaded("<b>") == "&lt;b&gt;"


def test_a_resolved_request_is_not_solved_again(private_channel, store_url: str) -> None:
    fn = conda_function(conda_fns.describe, str(private_channel.path), ["humanize", "fastavro"])
    first = read_bundle(fn.export(name="d", store=store_url, progress=False))[0].lock
    shutil.rmtree(private_channel.path)  # a second solve could not read the channel
    second = read_bundle(fn.export(name="d", store=store_url, progress=False))[0].lock
    assert second.env_id == first.env_id and second.requested_id == first.requested_id


def test_offline_rehydration_over_http(private_channel, store_url: str, tmp_path: Path) -> None:
    with served(private_channel.path) as server:
        fn = conda_function(conda_fns.describe, server.url, ["humanize=4.9", "fastavro"])
        ref = fn.export(name="offline", store=store_url, progress=False)
    shutil.rmtree(private_channel.path)  # the server is stopped and its files are gone
    lock = read_bundle(ref)[0].lock
    assert all(p.url.startswith(server.url) for p in lock.conda_packages())
    fresh = tmp_path / "fresh-home"  # no cached blobs, environments or conda packages
    code = f"import satchel; f = satchel.load({str(ref)!r}); print(f(1_200_000)); f.close()"
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "SATCHEL_HOME": str(fresh)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "1.2 million"
    assert (fresh / "conda" / "pkgs").is_dir()


def test_lock_document_shape(conda_channel, store_url: str) -> None:
    fn = conda_function(conda_fns.describe, str(conda_channel.path), ["humanize", "fastavro"])
    ref = fn.export(name="shape", store=store_url, progress=False)
    doc = read_bundle(ref)[0].doc["environment"]
    assert doc["resolver"] == "rattler" and doc["subdir"] == "linux-64"
    assert doc["channels"] == [conda_channel.path.as_uri() + "/"]
    assert any(v.startswith("__glibc=") for v in doc["virtual_packages"])
    python = next(p for p in doc["packages"] if p["name"] == "python")
    assert (
        python["manager"] == "conda" and len(python["md5"]) == 32 and python["record"]["subdir"] == "linux-64"
    )


def test_gc_does_not_keep_packages_for_the_lock_cache_and_a_reused_lock_mirrors_them_again(
    private_channel, store_url: str
) -> None:
    import time

    from satchel.packager.gc import gc, remove
    from satchel.packager.stores import open_store

    fn = conda_function(conda_fns.describe, str(private_channel.path), ["humanize", "fastavro"])
    ref = fn.export(name="collected", store=store_url, progress=False)
    lock = read_bundle(ref)[0].lock
    store = open_store(store_url)
    remove(store, "collected")
    summary = gc(store, grace=0, now=time.time() + 7200)  # past the tombstone's grace too
    assert {p.sha256 for p in lock.packages} <= set(summary.blobs_deleted)
    assert store.list_documents("locks/"), "the resolution is still remembered"
    again = fn.export(name="collected", store=store_url, progress=False)  # from the remembered lock
    assert read_bundle(again)[0].lock.env_id == lock.env_id
    assert all(store.has_blob(p.sha256) for p in lock.packages)


def test_inspect_shows_the_conda_request_channels_and_where_each_package_came_from(
    conda_channel, store_url: str
) -> None:
    fn = conda_function(
        conda_fns.describe, str(conda_channel.path), ["humanize=4.12", "fastavro"], ["six==1.17.0"]
    )
    ref = fn.export(name="shown", store=store_url, progress=False)
    proc = subprocess.run(
        [sys.executable, "-m", "satchel", "inspect", str(ref)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert any(
        line.split() == ["requested", "conda", "humanize=4.12,", "conda", "fastavro,", "six==1.17.0"]
        for line in lines
    ), proc.stdout
    assert any(line.strip().startswith("channels") and conda_channel.path.as_uri() in line for line in lines)
    rows = {line.split()[0]: line.split() for line in lines if line.split()[:1] in (["humanize"], ["six"])}
    assert rows["humanize"][2] == "conda" and rows["six"][2] == "pip"


def test_a_module_extends_a_bundles_environment(conda_channel, store_url: str, monkeypatch) -> None:
    import importlib

    base_fn = conda_function(conda_fns.describe, str(conda_channel.path), ["humanize=4.9", "fastavro"])
    base_ref = base_fn.export(name="base", store=store_url, progress=False)
    monkeypatch.setenv("CONDA_BASE_REF", str(base_ref))
    module = importlib.import_module("tests.functions.conda_extended")
    ref = module.versions.export(name="extended", store=store_url, progress=False)
    base_lock, lock = read_bundle(base_ref)[0].lock, read_bundle(ref)[0].lock
    assert {p.sha256 for p in base_lock.packages} <= {p.sha256 for p in lock.packages}
    assert read_bundle(ref)[0].doc["environment"]["requested"]["base"] == base_lock.env_id
    with satchel.load(ref) as loaded:
        assert loaded() == {"humanize": "4.9.0", "six": "1.17.0"}


def test_the_html_summary_of_a_conda_bundle_lists_channels_and_managers(
    conda_channel, store_url: str
) -> None:
    fn = conda_function(
        conda_fns.describe, str(conda_channel.path), ["humanize=4.12", "fastavro"], ["six==1.17.0"]
    )
    ref = fn.export(name="summarised", store=store_url, progress=False)
    with satchel.load(ref, workers=0) as loaded:
        html = loaded._repr_html_()
    assert "humanize 4.12.1 (conda)" in html and "six 1.17.0 (pip)" in html
    assert conda_channel.path.as_uri() in html and "conda humanize=4.12" in html
