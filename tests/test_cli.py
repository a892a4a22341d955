"""The `satchel` command, run as a real subprocess."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from satchel.packager.bundle import read_bundle

REPO = Path(__file__).resolve().parent.parent


def satchel_cli(*args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "satchel", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, **(env or {})},
        timeout=600,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"satchel {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result


@pytest.fixture(scope="module")
def cli_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("cli") / "store")


@pytest.fixture(scope="module")
def exported(cli_store: str) -> str:
    out = satchel_cli(
        "export", "tests.functions.textutil:describe", "--name", "describe", "--store", cli_store
    )
    ref = out.stdout.strip()
    assert ref.startswith(Path(cli_store).as_uri() + "#describe:1")
    return ref


def test_help_everywhere() -> None:
    for args in (
        [],
        ["export"],
        ["call"],
        ["inspect"],
        ["verify"],
        ["ls"],
        ["env"],
        ["env", "ls"],
        ["env", "resolve"],
        ["env", "tag"],
        ["env", "show"],
        ["env", "export"],
        ["env", "cache", "ls"],
        ["env", "cache", "prune"],
    ):
        out = satchel_cli(*args, "--help")
        assert "Usage:" in out.stdout


def test_call_prints_json(exported: str) -> None:
    out = satchel_cli("call", exported, "--args", '{"n": 1200000}')
    assert json.loads(out.stdout) == "1.2 million"
    out = satchel_cli("call", exported, "--args", '{"n": 2000000, "suffix": "!"}')
    assert json.loads(out.stdout) == "2.0 million!"


def test_call_bad_args(exported: str) -> None:
    out = satchel_cli("call", exported, "--args", '{"n": "many"}', check=False)
    assert out.returncode != 0 and "parameter 'n': expected an integer, got string 'many'" in out.stderr
    assert "Traceback" not in out.stderr
    out = satchel_cli("call", exported, "--args", '{"x": 1}', check=False)
    assert out.returncode != 0 and "unknown parameter" in out.stderr and "x" in out.stderr
    out = satchel_cli("call", exported, "--args", "not json", check=False)
    assert out.returncode != 0 and "JSON" in out.stderr


def test_call_argument_errors_read_as_in_python(exported: str) -> None:
    """`satchel call` words a wrong call as a Python call of the function does (and REST: test_rest)."""
    import satchel

    with satchel.load(exported) as fn:
        for body, args, kwargs in (({}, (), {}), ({"n": 1, "x": 2}, (1,), {"x": 2})):
            with pytest.raises(satchel.ArgumentError) as info:
                fn(*args, **kwargs)
            out = satchel_cli("call", exported, "--args", json.dumps(body), check=False)
            # the last line: a slow worker start may show its progress line first
            assert out.returncode == 1 and out.stderr.strip().splitlines()[-1] == f"error: {info.value}"
            assert out.stderr.count("error:") == 1


def test_inspect(exported: str) -> None:
    out = satchel_cli("inspect", exported)
    assert "describe(n: int, suffix: str = '') -> str" in out.stdout
    assert "humanize" in out.stdout and "4.12.1" in out.stdout
    assert "runtime requirement" in out.stdout  # fastavro, added for the worker
    doc = json.loads(satchel_cli("inspect", exported, "--json").stdout)
    assert doc["name"] == "describe" and doc["format_version"] == 1


def test_inspect_code_prints_the_code_package_verified(tmp_path: Path) -> None:
    store = tmp_path / "store"
    ref = satchel_cli("export", "tests.functions.textutil:scale", "--store", str(store)).stdout.strip()
    out = satchel_cli("inspect", ref, "--code").stdout
    files = [line[2:] for line in out.splitlines() if line.startswith("# tests/")]
    assert files == ["tests/functions/textutil.py", *sorted(set(files) - {"tests/functions/textutil.py"})]
    assert "tests/functions/helpers.py" in files and "def scale(" in out
    digest = read_bundle(ref)[0].doc["code"]["blob"]
    blob = store / "blobs" / "sha256" / digest[:2] / digest
    blob.chmod(0o644)
    blob.write_bytes(blob.read_bytes()[:-1] + b"!")
    bad = satchel_cli("inspect", ref, "--code", check=False)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert "code package" in bad.stderr and digest[:12] in bad.stderr and "def scale(" not in bad.stdout


def test_ls(exported: str, cli_store: str) -> None:
    out = satchel_cli("ls", "--store", cli_store)
    assert "describe" in out.stdout
    empty = satchel_cli("ls", "--store", cli_store + "-empty")
    assert "no bundles" in empty.stdout


def test_ls_shows_what_it_can_and_names_what_it_skipped(tmp_path: Path) -> None:
    store = tmp_path / "store"
    satchel_cli("export", "tests.functions.textutil:scale", "--store", str(store))
    bundles = store / "bundles"
    good = (bundles / "scale" / "1.json").read_bytes()
    strays = {
        "junk/abc.json": b"{}",  # not a version
        "broken/1.json": b"{}",  # not a bundle
        "trunc/1.json": good[:40],  # a truncated document
        "scale/2.json": good[:-30],  # a newer version, truncated: the listing falls back to 1
    }
    for key, data in strays.items():
        (bundles / key).parent.mkdir(parents=True, exist_ok=True)
        (bundles / key).write_bytes(data)
    out = satchel_cli("ls", "--store", str(store))
    assert "Traceback" not in out.stderr
    row = next(line for line in out.stdout.splitlines() if line.strip().startswith("scale"))
    cells = [cell.strip() for cell in row.split("│")]
    assert cells[1:3] == ["1", "2"]  # latest readable version, versions there
    assert "scale(values: list[float], factor: float, offset: float = 0.0) -> list[float]" in row
    warnings = out.stderr.strip().splitlines()
    assert len(warnings) == len(strays)
    for key in strays:
        assert sum(f"bundles/{key}:" in w for w in warnings) == 1, (key, warnings)
    assert "not valid JSON" in next(w for w in warnings if "trunc/1.json" in w)
    assert "lacks" in next(w for w in warnings if "broken/1.json" in w)


def test_inspect_of_a_corrupt_document_names_the_file(tmp_path: Path) -> None:
    store = tmp_path / "store"
    (store / "bundles" / "trunc").mkdir(parents=True)
    (store / "bundles" / "trunc" / "1.json").write_text('{"format_version": 1, "na')
    (store / "bundles" / "empty").mkdir(parents=True)
    (store / "bundles" / "empty" / "1.json").write_text("{}")
    for name, reason in (("trunc", "not valid JSON"), ("empty", "lacks")):
        out = satchel_cli("inspect", f"{store.as_uri()}#{name}", check=False)
        assert out.returncode == 1 and "Traceback" not in out.stderr
        assert f"{store.as_uri()}/bundles/{name}/1.json" in out.stderr and reason in out.stderr


def test_inspect_shows_full_types_and_whole_references(tmp_path: Path) -> None:
    store = tmp_path / "store"
    ref = satchel_cli("export", "tests.functions.textutil:scale", "--store", str(store)).stdout.strip()
    out = satchel_cli("inspect", ref, env={"COLUMNS": "40"})
    assert "scale(values: list[float], factor: float, offset: float = 0.0) -> list[float]" in out.stdout
    assert f"  reference   {ref}\n" in out.stdout


def test_verify_detects_corruption(tmp_path: Path) -> None:
    store = tmp_path / "store"
    ref = satchel_cli("export", "tests.functions.textutil:add", "--store", str(store)).stdout.strip()
    ok = satchel_cli("verify", ref)
    assert "verified" in ok.stdout
    bundle, _ = read_bundle(ref)
    digest = bundle.doc["code"]["blob"]
    blob = store / "blobs" / "sha256" / digest[:2] / digest
    blob.chmod(0o644)
    blob.write_bytes(b"tampered")
    bad = satchel_cli("verify", ref, check=False)
    assert bad.returncode == 1
    assert "CORRUPT" in bad.stdout and "code package" in bad.stdout
    pkg = bundle.doc["environment"]["packages"][0]["sha256"]
    (store / "blobs" / "sha256" / pkg[:2] / pkg).unlink()
    bad = satchel_cli("verify", ref, check=False)
    assert bad.returncode == 1 and "MISSING" in bad.stdout


def test_export_with_bind_pickle(tmp_path: Path) -> None:
    weights = tmp_path / "weights.pkl"
    weights.write_bytes(pickle.dumps([1.0, 1.0]))
    bias = tmp_path / "bias.pkl"
    bias.write_bytes(pickle.dumps(10.0))
    store = tmp_path / "store"
    ref = satchel_cli(
        "export",
        "tests.functions.textutil:predict",
        "--name",
        "lin",
        "--store",
        str(store),
        "--bind-pickle",
        f"weights={weights}",
        "--bind-pickle",
        f"bias={bias}",
    ).stdout.strip()
    out = satchel_cli("call", ref, "--args", '{"rows": [[1, 2], [3, 4]]}')
    assert json.loads(out.stdout) == [13.0, 17.0]
    bad = satchel_cli(
        "export",
        "tests.functions.textutil:predict",
        "--store",
        str(store),
        "--bind-pickle",
        "nope",
        check=False,
    )
    assert bad.returncode != 0 and "NAME=PATH" in bad.stderr


def test_errors_are_one_line(tmp_path: Path) -> None:
    out = satchel_cli("call", f"{tmp_path.as_uri()}#ghost", check=False)
    assert out.returncode == 1 and "no bundle named 'ghost'" in out.stderr and "Traceback" not in out.stderr
    out = satchel_cli("export", "tests.functions.textutil:nothing", check=False)
    assert out.returncode != 0 and "has no attribute 'nothing'" in out.stderr


def test_env_cache_ls_and_prune(exported: str, tmp_path: Path) -> None:
    home = {"SATCHEL_HOME": str(tmp_path / "home")}
    assert "no environments" in satchel_cli("env", "cache", "ls", env=home).stdout
    satchel_cli("call", exported, "--args", '{"n": 5}', env=home)
    listed = satchel_cli("env", "cache", "ls", env=home).stdout
    assert "3.11" in listed
    assert "removed 0" in satchel_cli("env", "cache", "prune", "--older-than", "30", env=home).stdout
    assert "removed 1" in satchel_cli("env", "cache", "prune", "--all", env=home).stdout
    assert "no environments" in satchel_cli("env", "cache", "ls", env=home).stdout
