"""Nothing a metadata document says becomes a path before it is checked, and nothing read from a store or
from the local blob cache is used before it is verified: on file and S3 stores, through `satchel.load` and
the `satchel` CLI."""

from __future__ import annotations

import copy
import hashlib
import io
import os
import pickle
import re
import subprocess
import sys
import uuid
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import satchel
from satchel.core.errors import BlobCorrupted, BundleFormatError
from satchel.packager.blobcache import BlobCache
from satchel.packager.bundle import document_key, encode_document, read_bundle
from satchel.packager.stores import open_store
from tests.functions import textutil

REPO = Path(__file__).resolve().parent.parent
MARKER = "payload-ran"  # what the payloads below create when they are used


class _Payload:
    """Unpickling this creates a file: proof that an unverified pickle was loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


def _payload_zip(module: str, marker: Path) -> bytes:
    """A code package whose module creates `marker` when imported."""
    buf = io.BytesIO()
    parts = module.split(".")
    with zipfile.ZipFile(buf, "w") as zf:
        for depth in range(1, len(parts)):
            zf.writestr("/".join(parts[:depth]) + "/__init__.py", "")
        zf.writestr("/".join(parts) + ".py", f"open({str(marker)!r}, 'w')\n")
    return buf.getvalue()


def _escape(target: Path, cache_root: Path) -> str:
    """The relative 'digest' that makes `<cache_root>/<digest[:2]>/<digest>` name `target`."""
    relative = os.path.relpath(target, cache_root.parent)  # <root>/../<relative> is <root.parent>/<relative>
    assert relative.startswith(".."), relative
    return relative


# -- the bundle under test, in a file store and in S3 -------------------------------------------------


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict]:
    """A bundle with code, two artifacts and a locked environment in a file store: its URL and document."""
    url = (tmp_path_factory.mktemp("integrity") / "store").as_uri()
    ref = textutil.predict.bind(weights=[2.0, -1.0], bias=0.5).export(
        name="predict", store=url, progress=False
    )
    bundle, _ = read_bundle(ref)
    assert [a["name"] for a in bundle.artifacts] == ["bias", "weights"]
    assert bundle.doc["environment"]["packages"]
    return url, bundle.doc


@pytest.fixture(scope="module")
def s3_source(source: tuple[str, dict], s3_server: str, s3_admin_client: Any) -> str:
    """The same bundle's blobs in a bucket of the moto server (copied as the store lays them out)."""
    bucket = f"satchel-integrity-{uuid.uuid4().hex[:12]}"
    s3_admin_client.create_bucket(Bucket=bucket)
    root = Path(open_store(source[0]).root)  # type: ignore[attr-defined]
    for path in (root / "blobs").rglob("*"):
        if path.is_file():
            key = f"under-test/{path.relative_to(root).as_posix()}"
            s3_admin_client.upload_file(str(path), bucket, key)
    return f"s3://{bucket}/under-test"


@pytest.fixture(params=["file", "s3"])
def store_url(request: pytest.FixtureRequest, source: tuple[str, dict]) -> str:
    if request.param == "file":
        return source[0]
    request.getfixturevalue("s3_env")
    return request.getfixturevalue("s3_source")


def _publish(store_url: str, doc: dict) -> str:
    """Write `doc` as version 1 of a fresh name in the store; its reference."""
    name = f"doctored-{uuid.uuid4().hex[:10]}"
    doc = {**doc, "name": name, "version": 1}
    assert open_store(store_url).write_document(document_key(name, 1), encode_document(doc))
    return f"{store_url}#{name}:1"


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh SATCHEL_HOME (its blob cache created and the ring library built, as after any earlier load)
    inside `tmp_path`, and a directory beside it holding the payloads a doctored document points at."""
    from satchel.bindings import _native

    if _native.available():  # built once in the suite's home; a first load would build it in this one
        monkeypatch.setenv("SATCHEL_RING_LIBRARY", str(_native.library_path()))
    home = tmp_path / "home"
    (home / "blobs").mkdir(parents=True)
    monkeypatch.setenv("SATCHEL_HOME", str(home))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    return tmp_path


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


# -- every digest-bearing field x bad values ----------------------------------------------------------

Setter = Callable[[dict, Any], None]


def _set_code(doc: dict, value: Any) -> None:
    doc["code"]["blob"] = value


def _set_artifact(doc: dict, value: Any) -> None:
    doc["artifacts"][0]["blob"] = value


def _set_package(doc: dict, value: Any) -> None:
    doc["environment"]["packages"][0]["sha256"] = value


FIELDS: dict[str, Setter] = {
    "code.blob": _set_code,
    "artifacts[0].blob": _set_artifact,
    "environment.packages[0].sha256": _set_package,
}

HEX = "0123456789abcdef" * 4

# Each a function of (sandbox, document) giving the bad value. "escape" and "absolute" name a real
# payload outside the cache: before digests were checked, a load took it as a verified blob.
BAD_VALUES: dict[str, Callable[[Path, dict], Any]] = {
    "escape": lambda box, doc: _escape(box / "elsewhere" / "payload", box / "home" / "blobs"),
    "absolute": lambda box, doc: str(box / "elsewhere" / "payload"),
    "dotdot": lambda box, doc: "../" + HEX[:61],
    "inner-dotdot": lambda box, doc: HEX[:32] + "/../" + HEX[:28],
    "md5": lambda box, doc: "md5:" + HEX[:32],
    "prefixed": lambda box, doc: "sha256:" + HEX,
    "uppercase": lambda box, doc: HEX.upper(),
    "non-hex": lambda box, doc: "g" * 64,
    "short": lambda box, doc: HEX[:63],
    "long": lambda box, doc: HEX + "0",
    "trailing-newline": lambda box, doc: HEX + "\n",
    "empty": lambda box, doc: "",
    "null": lambda box, doc: None,
    "number": lambda box, doc: 123,
}


def _plant_payload(box: Path, field: str, doc: dict) -> None:
    """Put at `elsewhere/payload` what would do harm as the blob of `field`."""
    marker = box / "elsewhere" / MARKER
    if field == "code.blob":
        data = _payload_zip(doc["function"]["module"], marker)
    elif field.startswith("artifacts"):
        data = pickle.dumps(_Payload(marker), protocol=5)
    else:
        data = b"PK\x03\x04 not the wheel the lock names"
    (box / "elsewhere" / "payload").write_bytes(data)


def _doctor(box: Path, doc: dict, field: str, bad: str) -> tuple[dict, Any]:
    _plant_payload(box, field, doc)
    doctored = copy.deepcopy(doc)
    value = BAD_VALUES[bad](box, doc)
    FIELDS[field](doctored, value)
    return doctored, value


@pytest.mark.parametrize("bad", sorted(BAD_VALUES))
@pytest.mark.parametrize("field", sorted(FIELDS))
def test_load_refuses_a_bad_digest(
    store_url: str, source: tuple[str, dict], sandbox: Path, field: str, bad: str
) -> None:
    doctored, value = _doctor(sandbox, source[1], field, bad)
    ref = _publish(store_url, doctored)
    before = _files(sandbox)
    with pytest.raises(BundleFormatError) as info:
        satchel.load(ref, progress=False)
    message = str(info.value)
    assert field in message and repr(value) in message, message
    assert "64 lowercase hex digits" in message
    assert not (sandbox / "elsewhere" / MARKER).exists()
    assert _files(sandbox) == before  # nothing fetched, extracted or built, inside the home or out


@pytest.mark.parametrize(
    "filename", ["../../escaped.whl", "/tmp/absolute.whl", "sub/dir.whl", "..", "", "a\\b.whl", None]
)
def test_load_refuses_a_package_file_name_that_is_a_path(
    store_url: str, source: tuple[str, dict], sandbox: Path, filename: Any
) -> None:
    # Package files are linked under their file name into the directory an environment is built from.
    doctored = copy.deepcopy(source[1])
    doctored["environment"]["packages"][0]["filename"] = filename
    before = _files(sandbox)
    with pytest.raises(BundleFormatError, match=r"environment\.packages\[0\]\.filename") as info:
        satchel.load(_publish(store_url, doctored), progress=False)
    assert "not a plain file name" in str(info.value)
    assert _files(sandbox) == before


@pytest.mark.parametrize("env_id", ["../" + HEX[:29], HEX[:31], HEX[:32].upper(), 7])
def test_load_refuses_a_bad_environment_id(
    store_url: str, source: tuple[str, dict], sandbox: Path, env_id: Any
) -> None:
    doctored = copy.deepcopy(source[1])
    doctored["environment"]["id"] = env_id
    with pytest.raises(BundleFormatError, match=r"environment\.id"):
        satchel.load(_publish(store_url, doctored), progress=False)


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "SATCHEL_DEBUG"}
    return subprocess.run(
        [sys.executable, "-m", "satchel", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=600,
    )


@pytest.mark.parametrize("bad", ["escape", "absolute"])
@pytest.mark.parametrize("field", sorted(FIELDS))
def test_cli_call_serve_and_verify_refuse_a_bad_digest(
    store_url: str, source: tuple[str, dict], sandbox: Path, field: str, bad: str
) -> None:
    doctored, value = _doctor(sandbox, source[1], field, bad)
    ref = _publish(store_url, doctored)
    before = _files(sandbox)
    commands = (
        ["call", ref, "--args", '{"rows": [[1.0, 1.0]]}'],
        ["serve", ref, "--port", "0"],
        ["verify", ref],
    )
    for command in commands:
        out = _cli(*command)
        assert out.returncode == 1, (command, out.stdout, out.stderr)
        assert re.match(r"error: \S+/bundles/doctored-\w+/\d+\.json: ", out.stderr), out.stderr
        assert field in out.stderr and repr(value) in out.stderr, out.stderr
        assert "Traceback" not in out.stderr
    assert not (sandbox / "elsewhere" / MARKER).exists()
    assert _files(sandbox) == before


# -- cached blobs are verified ------------------------------------------------------------------------


def _fresh_artifact_bundle(store_url: str) -> tuple[str, float, str]:
    """Export predict with a bias of its own (so its artifact blob is this test's alone): ref, bias, digest."""
    bias = float(uuid.uuid4().int % 10**6) + 0.25
    ref = textutil.predict.bind(weights=[1.0, 1.0], bias=bias).export(
        name="fresh", store=store_url, progress=False
    )
    bundle, _ = read_bundle(ref)
    (art,) = [a for a in bundle.artifacts if a["name"] == "bias"]
    return str(ref), bias, art["blob"]


def test_a_cached_blob_replaced_behind_the_cache_is_fetched_again(store_url: str) -> None:
    ref, bias, digest = _fresh_artifact_bundle(store_url)
    with satchel.load(ref, progress=False) as fn:
        assert fn([[1.0, 2.0]]) == [3.0 + bias]
    cached = BlobCache().path(digest)
    good = cached.read_bytes()
    forged = cached.with_name("forged")
    forged.write_bytes(pickle.dumps(bias + 1000.0, protocol=5))
    os.replace(forged, cached)
    with satchel.load(ref, progress=False) as fn:
        assert fn([[1.0, 2.0]]) == [3.0 + bias]  # not the forged value
    assert cached.read_bytes() == good


def test_a_cached_blob_changed_in_place_is_not_used(store_url: str) -> None:
    ref, bias, digest = _fresh_artifact_bundle(store_url)
    with satchel.load(ref, progress=False) as fn:
        assert fn([[0.0, 0.0]]) == [bias]
    cached = BlobCache().path(digest)
    tampered = pickle.dumps(bias + 1.0, protocol=5)
    assert len(tampered) == cached.stat().st_size  # same size: only the content tells
    cached.chmod(0o644)
    cached.write_bytes(tampered)
    if store_url.startswith("file:"):
        # From a local store the cache links the store's file: changing one changed both, and the
        # store's copy fails verification too.
        with pytest.raises(BlobCorrupted, match=rf"sha256:{digest} \(artifact 'bias' of fresh\)"):
            satchel.load(ref, progress=False)
    else:
        with satchel.load(ref, progress=False) as fn:
            assert fn([[0.0, 0.0]]) == [bias]
        assert cached.read_bytes() != tampered


def test_a_local_store_blob_is_linked_into_the_cache_not_copied(source: tuple[str, dict]) -> None:
    ref, bias, digest = _fresh_artifact_bundle(source[0])
    in_store = Path(open_store(source[0]).root) / "blobs" / "sha256" / digest[:2] / digest  # type: ignore[attr-defined]
    cache = BlobCache()
    assert in_store.stat().st_dev == cache.root.stat().st_dev  # one filesystem, so a link is possible
    with satchel.load(ref, progress=False) as fn:
        assert fn([[0.0, 0.0]]) == [bias]
    assert cache.path(digest).stat().st_ino == in_store.stat().st_ino
    assert not cache.path(digest).stat().st_mode & 0o222  # read-only, like the store's


@pytest.mark.parametrize("digest", ["../" + HEX[:61], "/" + HEX[:63], HEX.upper(), HEX[:63], None])
def test_the_blob_cache_builds_no_path_from_a_bad_digest(tmp_path: Path, digest: Any) -> None:
    cache = BlobCache(tmp_path / "blobs")
    with pytest.raises(ValueError, match="not a sha256 hex digest"):
        cache.path(digest)
    with pytest.raises(ValueError, match="not a sha256 hex digest"):
        cache.lookup(digest)


def test_a_cached_file_changed_since_verified_is_dropped(tmp_path: Path) -> None:
    cache = BlobCache(tmp_path / "blobs")
    source = tmp_path / "wheel.whl"
    source.write_bytes(b"the bytes the lock names")
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    cached = cache.add_file(source, digest)
    assert cache.lookup(digest) == cached
    cached.chmod(0o644)
    cached.write_bytes(b"the bytes someone else put")
    assert cache.lookup(digest) is None
    assert not cached.exists()
    assert cache.add_file(source, digest).read_bytes() == b"the bytes the lock names"
