"""Bundles in S3: a real S3 API over HTTP (a moto server on loopback), reached through boto3."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import satchel
from tests.functions import textutil


def test_export_load_call_through_s3(
    s3_store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert os.environ.get("AWS_ENDPOINT_URL", "").startswith("http://127.0.0.1:")
    ref = textutil.describe.export(name="describe", store=s3_store_url)
    assert str(ref).startswith(s3_store_url + "#describe:1")
    # A fresh cache: every blob (code, wheels) comes back from S3 and is verified on the way.
    monkeypatch.setenv("SATCHEL_HOME", str(tmp_path / "home"))
    with satchel.load(str(ref)) as fn:
        assert fn(1_200_000) == "1.2 million"
    again = textutil.describe.export(name="describe", store=s3_store_url)
    assert again.version == 2


def test_s3_reference_from_another_process(s3_store_url: str) -> None:
    ref = textutil.add.export(name="add", store=s3_store_url)
    code = f"import satchel\nwith satchel.load({str(ref)!r}) as fn: print(fn(20.0, 22.0))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "42.0"


def test_s3_missing_bundle(s3_store_url: str) -> None:
    with pytest.raises(satchel.BundleNotFound, match="no bundle named 'ghost'"):
        satchel.load(f"{s3_store_url}#ghost")
