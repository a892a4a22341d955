"""S3 through a network that breaks responses mid-body (tests/fixtures/faulty_proxy.py in front of moto).

Uploads rely on botocore's retries; blob reads resume with ranged GETs from the byte they reached, verify
the whole, and give up, naming the blob, only after attempts in a row that bring nothing new.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

import satchel
from satchel.core.errors import StoreError
from satchel.packager.bundle import read_bundle
from satchel.packager.stores import open_store
from satchel.packager.stores.s3 import S3Store
from tests.fixtures.faulty_proxy import faulty_proxy
from tests.functions import sized

pytest.importorskip("boto3")

MIB = 1 << 20


def _through(store_url: str, proxy_url: str) -> S3Store:
    store = open_store(store_url)
    assert isinstance(store, S3Store)
    return S3Store(store.bucket, store.prefix, endpoint_url=proxy_url)


@pytest.fixture
def big_blob(s3_store_url: str, tmp_path: Path) -> tuple[str, bytes]:
    """A 20 MiB blob stored directly (no faults); its digest and content."""
    data = os.urandom(20 * MIB)
    path = tmp_path.parent / f"{tmp_path.name}-source"
    path.write_bytes(data)
    digest = open_store(s3_store_url).put_blob(path)
    return digest, data


def test_reads_survive_a_share_of_cut_responses(
    s3_store_url: str, s3_server: str, big_blob: tuple[str, bytes], tmp_path: Path
) -> None:
    digest, data = big_blob
    with faulty_proxy(s3_server, fraction=0.3, seed=1) as proxy:
        store = _through(s3_store_url, proxy.url)
        for i in range(10):
            dest = store.fetch_blob(digest, tmp_path / f"copy-{i}")
            assert dest.read_bytes() == data
    assert proxy.cuts >= 3  # the faults really happened (seeded)
    assert not list(tmp_path.glob("*.part"))


def test_a_persistent_cut_is_resumed_while_each_attempt_progresses(
    s3_store_url: str, s3_server: str, big_blob: tuple[str, bytes], tmp_path: Path
) -> None:
    digest, data = big_blob
    with faulty_proxy(s3_server, cut_after=3 * MIB) as proxy:
        store = _through(s3_store_url, proxy.url)
        dest = store.fetch_blob(digest, tmp_path / "copy")
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == digest
    assert proxy.cuts == 6  # 20 MiB in 3 MiB pieces: six cut, the seventh (2 MiB) whole


def test_a_read_that_never_progresses_gives_up_naming_the_blob(
    s3_store_url: str, s3_server: str, big_blob: tuple[str, bytes], tmp_path: Path
) -> None:
    digest, _ = big_blob
    with faulty_proxy(s3_server, cut_after=0) as proxy:
        store = _through(s3_store_url, proxy.url)
        with pytest.raises(StoreError, match=rf"blob sha256:{digest}.*broke 5 times in a row at byte 0"):
            store.fetch_blob(digest, tmp_path / "copy")
    assert proxy.cuts == 5
    assert list(tmp_path.iterdir()) == []  # no destination, no partial file


def test_uploads_survive_a_share_of_cut_responses(s3_store_url: str, s3_server: str, tmp_path: Path) -> None:
    with faulty_proxy(s3_server, fraction=0.3, seed=2) as proxy:
        store = _through(s3_store_url, proxy.url)
        sources = []
        for i in range(6):
            path = tmp_path / f"src-{i}"
            path.write_bytes(os.urandom(9 * MIB))  # above boto3's multipart threshold
            sources.append(path)
            assert store.put_blob(path) == hashlib.sha256(path.read_bytes()).hexdigest()
    assert proxy.cuts >= 1
    direct = open_store(s3_store_url)
    for path in sources:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert direct.fetch_blob(digest, tmp_path / f"back-{digest}").read_bytes() == path.read_bytes()


def test_export_and_load_of_a_large_artifact_through_faults(
    s3_store_url: str, s3_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(12 * MIB)
    shared_envs = Path(os.environ["SATCHEL_HOME"]) / "envs"
    with faulty_proxy(s3_server, fraction=0.3, seed=3) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        ref = sized.digest_of.bind(data=data).export(name="digest-of", store=s3_store_url, progress=False)
        for i in range(3):
            # An empty blob cache each time (every blob comes through the faults), the shared environments.
            home = tmp_path / f"home-{i}"
            home.mkdir()
            (home / "envs").symlink_to(shared_envs, target_is_directory=True)
            monkeypatch.setenv("SATCHEL_HOME", str(home))
            with satchel.load(str(ref)) as fn:
                assert fn() == hashlib.sha256(data).hexdigest()
    assert proxy.cuts >= 3
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server)
    requested = read_bundle(ref)[0].lock.requested_id  # the resolution is remembered beside the bundle
    assert open_store(s3_store_url).list_documents("") == [
        "bundles/digest-of/1.json",
        f"locks/{requested}.json",
    ]


def test_document_reads_start_over_when_cut(s3_store_url: str, s3_server: str) -> None:
    data = os.urandom(2 * MIB)
    open_store(s3_store_url).write_document("notes/big.bin", data)
    with faulty_proxy(s3_server, fraction=0.5, seed=4) as proxy:
        store = _through(s3_store_url, proxy.url)
        for _ in range(5):
            assert store.read_document("notes/big.bin") == data
    assert proxy.cuts >= 2
    # Documents may be rewritten, so a cut read is never resumed: cut every time, it fails, naming it.
    with faulty_proxy(s3_server, cut_after=MIB) as proxy:
        store = _through(s3_store_url, proxy.url)
        with pytest.raises(
            StoreError, match=r"cannot read document 'notes/big.bin' .*broke 5 times in a row"
        ):
            store.read_document("notes/big.bin")
    assert proxy.cuts == 5


def test_touches_survive_a_share_of_cut_responses(s3_store_url: str, s3_server: str) -> None:
    """An export touches every blob it reuses (a copy onto itself, whose answer has a body to cut)."""
    direct = open_store(s3_store_url)
    digests = [direct.put_blob_bytes(os.urandom(n)) for n in (1000, 3 * MIB, 10 * MIB)]
    with faulty_proxy(s3_server, fraction=0.3, seed=7) as proxy:
        store = _through(s3_store_url, proxy.url)
        for _ in range(20):
            for digest in digests:
                assert store.touch_blob(digest)
    assert proxy.cuts >= 20
    for digest in digests:
        assert hashlib.sha256(direct.open_blob(digest).read()).hexdigest() == digest
