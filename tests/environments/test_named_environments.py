"""Named environments in a store (packager/named_environments.py) and the `satchel env` commands: conda
environments solved from the suite's own channel, published into real file and S3 stores, tagged, read
back verified, used by a function, and collected by gc only when nothing names them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import satchel
from satchel.core.errors import BundleFormatError, EnvironmentNotFound
from satchel.packager.bundle import read_bundle
from satchel.packager.environment import Environment
from satchel.packager.gc import gc
from satchel.packager.named_environments import NamedEnvironments, tag_key, version_key
from satchel.packager.resolvers.base import Lock
from satchel.packager.resolvers.rattler import RattlerResolver
from satchel.packager.stores import open_store
from tests.functions import conda_fns

pytestmark = pytest.mark.timeout(600)

REPO = Path(__file__).resolve().parents[2]
RUNTIME = ["fastavro>=1.9"]


@pytest.fixture(scope="module")
def conda_lock(conda_channel) -> Lock:
    env = Environment(conda=["humanize=4.12", "fastavro"], channels=[str(conda_channel.path)])
    return RattlerResolver().resolve(env, RUNTIME)


@pytest.fixture(scope="module")
def older_lock(conda_channel) -> Lock:
    env = Environment(conda=["humanize=4.9", "fastavro"], channels=[str(conda_channel.path)])
    return RattlerResolver().resolve(env, RUNTIME)


@pytest.fixture
def named(store_url: str) -> NamedEnvironments:
    return NamedEnvironments(store_url)


def satchel_cli(*args: str, store: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "satchel", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "SATCHEL_STORE": store},
        timeout=600,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"satchel {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result


# -- publish, tag, lock -------------------------------------------------------------------------------


def test_publish_writes_versions_and_moves_latest(named: NamedEnvironments, conda_lock, older_lock) -> None:
    assert named.publish("ml/base", older_lock) == 1
    assert named.lock("ml/base").env_id == older_lock.env_id
    assert named.publish("ml/base", conda_lock) == 2
    assert named.lock("ml/base").env_id == conda_lock.env_id  # latest moved
    assert named.lock("ml/base:latest").env_id == conda_lock.env_id
    first = named.lock("ml/base:1")
    assert first.env_id == older_lock.env_id and first.packages == older_lock.packages
    for pkg in conda_lock.packages:  # mirrored: materializing needs neither the channel nor an index
        assert named.store.has_blob(pkg.sha256), pkg.filename
    details = named.show("ml/base")
    assert [v.version for v in details.versions] == [1, 2]
    assert {t: tag.version for t, tag in details.tags.items()} == {"latest": 2}
    summary = details.versions[1].summary()
    assert summary["env_id"] == conda_lock.env_id and summary["resolver"] == "rattler"
    assert summary["packages"] == len(conda_lock.packages) and summary["python"] == conda_lock.python
    assert summary["created"].endswith("Z") and "@" in summary["by"]
    listing = named.list()
    assert [(e.name, e.versions, e.tags) for e in listing.environments] == [
        ("ml/base", [1, 2], {"latest": 2})
    ]


def test_publish_tag_and_lock_on_s3(s3_store_url: str, conda_lock, older_lock) -> None:
    named = NamedEnvironments(s3_store_url)
    assert named.publish("team/sklearn", older_lock) == 1
    assert named.publish("team/sklearn", conda_lock) == 2
    assert named.tag("team/sklearn", 1, "stable") == 1
    again = NamedEnvironments(open_store(s3_store_url))  # a fresh reader: everything from the store
    assert again.lock("team/sklearn:stable").env_id == older_lock.env_id
    assert again.lock("team/sklearn").env_id == conda_lock.env_id
    assert again.lock("team/sklearn:2").packages == conda_lock.packages
    assert all(again.store.has_blob(p.sha256) for p in conda_lock.packages)
    assert again.tag("team/sklearn", "latest", "stable") == 2  # a tag onto what another names
    assert again.lock("team/sklearn:stable").env_id == conda_lock.env_id


def test_tags_move_versions_never_do(named: NamedEnvironments, conda_lock, older_lock) -> None:
    named.publish("ml/base", older_lock)
    named.publish("ml/base", conda_lock)
    first = named.store.read_document(version_key("ml/base", 1))
    named.tag("ml/base", 1, "stable")
    named.tag("ml/base", "2", "stable")
    named.tag("ml/base", 1, "candidate")
    named.publish("ml/base", older_lock)
    assert named.store.read_document(version_key("ml/base", 1)) == first
    tags = named.tags("ml/base")
    assert {t: tag.version for t, tag in tags.items()} == {"candidate": 1, "latest": 3, "stable": 2}
    assert tags["stable"].sequence == 2  # every move is recorded, none rewritten
    assert named.lock("ml/base:3").env_id == older_lock.env_id


def test_a_removed_version_number_is_never_given_again(named: NamedEnvironments, older_lock) -> None:
    named.publish("ml/base", older_lock)
    named.store.write_document("environments/ml/base/_versions/2.removed", b'{"removed": 0}')
    assert named.publish("ml/base", older_lock) == 3
    assert named.versions("ml/base") == [1, 3]


@pytest.fixture(params=["file", "s3"])
def any_store(request: pytest.FixtureRequest) -> NamedEnvironments:
    """A file store and an S3 store (moto over HTTP): exclusive create is what makes moves safe in both."""
    fixture = "store_url" if request.param == "file" else "s3_store_url"
    return NamedEnvironments(request.getfixturevalue(fixture))


def test_concurrent_publishes_get_distinct_versions_and_latest_only_moves_forward(
    any_store: NamedEnvironments, conda_lock
) -> None:
    named = any_store
    results: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def publish() -> None:
        try:
            start.wait()
            results.append(NamedEnvironments(named.store.url).publish("ml/busy", conda_lock))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=publish) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert sorted(results) == [1, 2, 3, 4, 5, 6]
    assert named.tags("ml/busy")["latest"].version == 6


def test_concurrent_tag_moves_are_all_recorded(any_store: NamedEnvironments, conda_lock) -> None:
    named = any_store
    for _ in range(3):
        named.publish("ml/base", conda_lock)
    start = threading.Barrier(6)
    errors: list[BaseException] = []

    def move(version: int) -> None:
        try:
            start.wait()
            NamedEnvironments(named.store.url).tag("ml/base", version, "stable")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=move, args=(1 + i % 3,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    moves = named.store.list_documents("environments/ml/base/_tags/stable/")
    assert sorted(moves) == sorted(tag_key("ml/base", "stable", n) for n in range(1, 7))
    last = json.loads(named.store.read_document(tag_key("ml/base", "stable", 6)))
    assert named.tags("ml/base")["stable"].version == last["version"]


# -- bad input ----------------------------------------------------------------------------------------


def test_an_unknown_name_lists_close_names(named: NamedEnvironments, older_lock) -> None:
    named.publish("ml/sklearn", older_lock)
    named.publish("ml/pytorch", older_lock)
    with pytest.raises(EnvironmentNotFound) as info:
        named.lock("ml/sklarn")
    text = str(info.value)
    assert "no environment named 'ml/sklarn'" in text and "did you mean ml/sklearn?" in text
    assert "ml/pytorch, ml/sklearn" in text
    with pytest.raises(EnvironmentNotFound, match="holds no named environments"):
        NamedEnvironments(named.store.url + "-empty").lock("ml/sklearn")


def test_an_unknown_tag_lists_the_tags_and_versions(named: NamedEnvironments, older_lock) -> None:
    named.publish("ml/base", older_lock)
    named.tag("ml/base", 1, "stable")
    with pytest.raises(EnvironmentNotFound) as info:
        named.lock("ml/base:stabel")
    text = str(info.value)
    assert "has no tag 'stabel'" in text and "did you mean stable?" in text
    assert "tags there: latest, stable; versions: 1" in text


def test_a_tag_onto_a_missing_version_lists_the_versions(named: NamedEnvironments, older_lock) -> None:
    named.publish("ml/base", older_lock)
    named.publish("ml/base", older_lock)
    with pytest.raises(EnvironmentNotFound, match=r"has no version 7 .*\(versions there: 1, 2\)"):
        named.tag("ml/base", 7, "stable")
    assert "stable" not in named.tags("ml/base")  # nothing was written
    with pytest.raises(EnvironmentNotFound, match="has no version 9"):
        named.lock("ml/base:9")


@pytest.mark.parametrize(
    "spec",
    [
        "ML/base",
        "ml//base",
        "/ml",
        "ml/",
        "ml/_versions",
        "ml/.hidden",
        "ml/base:",
        "ml/base:0",
        "ml/base:03",
    ],
)
def test_a_malformed_name_is_refused(named: NamedEnvironments, spec: str) -> None:
    with pytest.raises(ValueError, match=r"not valid|positive number|\[:tag"):
        named.lock(spec)


def test_a_malformed_tag_is_refused(named: NamedEnvironments, older_lock) -> None:
    named.publish("ml/base", older_lock)
    for tag in ("Stable", "1st", "a/b", ""):
        with pytest.raises(ValueError, match="tag .* is not valid"):
            named.tag("ml/base", 1, tag)
    with pytest.raises(ValueError, match="environment name 'ml base' is not valid"):
        named.publish("ml base", older_lock)


def test_a_tampered_version_document_is_refused(named: NamedEnvironments, conda_lock) -> None:
    named.publish("ml/base", conda_lock)
    key = version_key("ml/base", 1)
    doc = json.loads(named.store.read_document(key))
    doc["lock"]["packages"][0]["version"] = "99.0"
    named.store.write_document(key, json.dumps(doc).encode())
    with pytest.raises(BundleFormatError) as info:
        named.lock("ml/base:1")
    assert key in str(info.value) and "is not the hash of its packages" in str(info.value)
    # A consistent forgery (env_id recomputed) still differs from what the tag was moved onto.
    forged = Lock.from_dict(doc["lock"])
    doc["lock"] = forged.to_dict()
    named.store.write_document(key, json.dumps(doc).encode())
    assert named.lock("ml/base:1").env_id == forged.env_id  # by number: verified as any lock is
    with pytest.raises(BundleFormatError, match="changed since tag 'latest' was moved onto it"):
        named.lock("ml/base")
    # A document copied under another version number
    named.store.write_document(version_key("ml/base", 5), named.store.read_document(key))
    with pytest.raises(BundleFormatError, match="it says it is 'ml/base' version 1"):
        named.lock("ml/base:5")
    # A package file name that would leave the build directory
    doc["lock"]["packages"][0]["filename"] = "../evil.conda"
    named.store.write_document(key, json.dumps(doc).encode())
    with pytest.raises(BundleFormatError, match="not a plain file name"):
        named.lock("ml/base:1")


# -- gc -----------------------------------------------------------------------------------------------


def test_gc_keeps_a_named_versions_packages_and_collects_the_rest(
    named: NamedEnvironments, conda_lock, tmp_path: Path
) -> None:
    named.publish("ml/base", conda_lock)
    store = named.store
    assert store.list_documents("locks/")  # the solve's record, a cache: gc counts it as no use
    stray = store.put_blob_bytes(b"no document names this")
    summary = gc(store, grace=0)
    assert summary.blobs_deleted == [stray]
    assert all(store.has_blob(p.sha256) for p in conda_lock.packages)
    assert named.lock("ml/base").env_id == conda_lock.env_id


# -- Environment.named in a function ------------------------------------------------------------------


def test_a_function_in_a_named_environment_exports_loads_and_calls(
    named: NamedEnvironments, conda_lock, store_url: str
) -> None:
    version = named.publish("ml/base", conda_lock)
    fn = satchel.function(environment=satchel.Environment.named("ml/base"))(conda_fns.describe)
    ref = fn.export(name="describe", store=store_url, progress=False)
    bundle_lock = read_bundle(ref)[0].lock
    published = named.lock(f"ml/base:{version}")
    assert bundle_lock.env_id == published.env_id and bundle_lock.packages == published.packages
    with satchel.load(ref) as loaded:
        assert loaded(1_200_000) == "1.2 million"
    with pytest.raises(EnvironmentNotFound, match="no tag 'stable'"):
        satchel.Environment.named("ml/base:stable", store=store_url)


# -- the command line ---------------------------------------------------------------------------------


def test_cli_resolve_publish_tag_ls_show(store_url: str, tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("humanize==4.12.1\n")
    out = satchel_cli("env", "resolve", str(requirements), "--python", "3.11", store=store_url)
    resolved = out.stdout.split()
    assert resolved[0] == "resolved" and len(resolved[1]) == 32 and resolved[2] == "(2"  # humanize, fastavro
    assert not NamedEnvironments(store_url).names()  # nothing published without --name
    out = satchel_cli(
        "env", "resolve", str(requirements), "--python", "3.11", "--name", "web/text", store=store_url
    )
    assert out.stdout.splitlines()[-1] == "published web/text:1 (tag latest)"
    assert resolved[1] in out.stdout
    lock = NamedEnvironments(store_url).lock("web/text")
    assert lock.env_id == resolved[1] and {p.name for p in lock.packages} == {"humanize", "fastavro"}
    satchel_cli(
        "env", "resolve", str(requirements), "--python", "3.11", "--name", "web/text", store=store_url
    )

    out = satchel_cli("env", "tag", "web/text:1", "stable", store=store_url)
    assert out.stdout.strip() == "web/text:stable -> 1"
    listed = satchel_cli("env", "ls", store=store_url).stdout.splitlines()
    row = next(line.replace("│", " ").split() for line in listed if line.lstrip().startswith("web/text"))
    assert row[:3] == ["web/text", "2", "2"] and "latest=2" in row and "stable=1" in row
    as_json = json.loads(satchel_cli("env", "ls", "--json", store=store_url).stdout)
    assert as_json == [{"name": "web/text", "versions": [1, 2], "tags": {"latest": 2, "stable": 1}}]

    shown = satchel_cli("env", "show", "web/text:stable", store=store_url).stdout
    assert shown.splitlines()[0].startswith(f"web/text:1  {lock.env_id}  python 3.11  uv")
    humanize = next(p for p in lock.packages if p.name == "humanize")
    assert any(
        line.split() == ["humanize", "4.12.1", "pip", humanize.filename] for line in shown.splitlines()
    )
    details = json.loads(satchel_cli("env", "show", "web/text", "--json", store=store_url).stdout)
    assert details["version"] == 2 and details["tags"] == {"latest": 2, "stable": 1}
    assert [v["version"] for v in details["versions"]] == [1, 2]
    assert {p["name"] for p in details["packages"]} == {"humanize", "fastavro"}


def test_cli_errors_are_one_line_with_exit_status_1(
    store_url: str, named: NamedEnvironments, older_lock
) -> None:
    named.publish("ml/sklearn", older_lock)
    cases = [
        (["env", "show", "ml/sklarn"], "did you mean ml/sklearn?"),
        (["env", "show", "ml/sklearn:stabel"], "no tag 'stabel'"),
        (["env", "tag", "ml/sklearn:4", "stable"], "has no version 4"),
        (["env", "tag", "ml/Sklearn:1", "stable"], "environment name 'ml/Sklearn' is not valid"),
        (["env", "tag", "ml/sklearn:1", "Stable"], "tag 'Stable' is not valid"),
        (["env", "export", "ml/nothing", "--format", "requirements"], "no environment named 'ml/nothing'"),
        (["env", "resolve", "missing.txt", "--name", "ml/x"], "missing.txt"),
    ]
    for args, message in cases:
        out = satchel_cli(*args, store=store_url, check=False)
        assert out.returncode == 1, (args, out.stdout, out.stderr)
        assert message in out.stderr and len(out.stderr.strip().splitlines()) == 1, (args, out.stderr)
        assert "Traceback" not in out.stderr
    bad_format = satchel_cli("env", "export", "ml/sklearn", "--format", "pip", store=store_url, check=False)
    assert bad_format.returncode == 2 and "conda-lock" in bad_format.stderr
    no_version = satchel_cli("env", "tag", "ml/sklearn", "stable", store=store_url, check=False)
    assert no_version.returncode == 2 and "NAME:VERSION" in no_version.stderr


def test_cli_names_a_damaged_document_and_shows_what_it_can(
    store_url: str, named: NamedEnvironments, older_lock
) -> None:
    named.publish("ml/base", older_lock)
    named.publish("ml/base", older_lock)
    key = version_key("ml/base", 1)
    doc = json.loads(named.store.read_document(key))
    doc["lock"]["env_id"] = "0" * 32
    named.store.write_document(key, json.dumps(doc).encode())
    named.store.write_document(tag_key("ml/base", "stable", 1), b"not json")
    out = satchel_cli("env", "show", "ml/base:1", store=store_url, check=False)
    assert out.returncode == 1 and key in out.stderr and "is not the hash of its packages" in out.stderr
    shown = satchel_cli("env", "show", "ml/base", store=store_url)  # version 2 is fine
    assert shown.stdout.startswith("ml/base:2 ")
    warnings = [line for line in shown.stderr.splitlines() if line.startswith("warning: skipped")]
    assert len(warnings) == 2 and key in warnings[0] and "_tags/stable/1.json" in warnings[1]
    listed = satchel_cli("env", "ls", "--json", store=store_url)
    assert json.loads(listed.stdout) == [{"name": "ml/base", "versions": [1, 2], "tags": {"latest": 2}}]
    assert "warning: skipped" in listed.stderr and "not valid JSON" in listed.stderr


def test_cli_export_names_a_bundle_or_an_environment_that_is_not_there(store_url: str) -> None:
    out = satchel_cli("env", "export", "ghost:3", "--format", "conda-lock", store=store_url, check=False)
    assert out.returncode == 1
    assert "no bundle or named environment 'ghost:3'" in out.stderr and "no bundles there" in out.stderr
