"""Features whose extra is not installed: one line naming `pip install 'satchel[EXTRA]'`, never a traceback.

Run for real in a venv holding Satchel without any extra (built once per session with uv, its cache
makes it quick), as subprocesses: the command line, and the Python API.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from satchel.core.errors import MissingExtra, SatchelError
from satchel.core.extras import EXTRAS, needs_extra, require
from tests.venvs import satchel_venv

REPO = Path(__file__).resolve().parent.parent

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]


@pytest.fixture(scope="session")
def bare(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin directory of a venv with Satchel (editable, this checkout) and none of its extras."""
    venv = tmp_path_factory.mktemp("bare") / "venv"
    python = satchel_venv(venv)
    for extra, modules in EXTRAS.items():  # the premise of every test here
        probe = subprocess.run([str(python), "-c", f"import {modules[0]}"], capture_output=True)
        assert probe.returncode != 0, f"{modules[0]} (extra {extra}) is installed in the bare venv"
    return venv / "bin"


def run(bare: Path, *args: str, tmp_path: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(bare / args[0]), *args[1:]],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "SATCHEL_STORE": (tmp_path / "store").as_uri(), **(env or {})},
        timeout=300,
    )


def assert_one_line(proc: subprocess.CompletedProcess, extra: str, module: str) -> None:
    """Exit status 1, and stderr is one line naming the module and how to install its extra."""
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert f"needs {module}," in lines[0] and lines[0].endswith(f"pip install 'satchel[{extra}]'"), lines[0]


def python_api(bare: Path, code: str, tmp_path: Path) -> dict:
    """Run `code` in the bare venv; the MissingExtra it raises, as a dict (fails if it raises none)."""
    script = (
        "import json, sys\nfrom satchel.errors import MissingExtra\ntry:\n"
        + "".join(f"    {line}\n" for line in code.strip().splitlines())
        + "except MissingExtra as exc:\n"
        "    print(json.dumps({'extra': exc.extra, 'module': exc.module, 'message': str(exc)}))\n"
        "else:\n    sys.exit('no MissingExtra raised')\n"
    )
    proc = run(bare, "python", "-c", script, tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -- the command line ---------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "extra", "module"),
    [
        (["serve", "textutil"], "serve", "fastapi"),
        (["serve", "--grpc-port", "0", "textutil"], "serve", "fastapi"),
        (["serve", "--backend", "ray", "textutil"], "ray", "ray"),
        (["ls", "--store", "s3://bucket/prefix"], "s3", "boto3"),
        (["call", "s3://bucket/prefix#textutil"], "s3", "boto3"),
    ],
    ids=["serve", "serve-grpc", "serve-ray", "ls-s3", "call-s3"],
)
def test_a_command_without_its_extra_is_one_line(
    bare: Path, tmp_path: Path, args: list[str], extra: str, module: str
) -> None:
    assert_one_line(run(bare, "satchel", *args, tmp_path=tmp_path), extra, module)


@pytest.mark.slow
def test_serve_checks_its_extra_before_loading_anything(bare: Path, tmp_path: Path) -> None:
    # The reference names nothing that exists: the extra is what the user hears about first.
    proc = run(bare, "satchel", "serve", "file:///nowhere#nothing", tmp_path=tmp_path)
    assert_one_line(proc, "serve", "fastapi")


@pytest.mark.slow
def test_a_flow_on_the_ray_executor_without_ray_is_one_line(bare: Path, tmp_path: Path) -> None:
    flow = REPO / "tests" / "flows" / "flowdefs" / "linear.py"
    proc = run(bare, "python", str(flow), "run", "--executor", "ray", tmp_path=tmp_path)
    assert_one_line(proc, "ray", "ray")


@pytest.mark.slow
def test_a_flow_runs_without_the_flows_extra_and_zstd_artifacts_name_it(bare: Path, tmp_path: Path) -> None:
    """Without zstandard a run writes zlib artifacts; reading a zstd one (written where it is installed)
    names the extra."""
    flow = REPO / "tests" / "flows" / "flowdefs" / "linear.py"
    proc = run(bare, "python", str(flow), "run", "--quiet", tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    store = (tmp_path / "zstd-store").as_uri()
    written = subprocess.run(  # this (the dev) environment has zstandard
        [sys.executable, str(flow), "run", "--quiet", "--store", store],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert written.returncode == 0, written.stderr
    found = python_api(
        bare,
        f"from satchel.flows import Flow\nFlow('LinearFlow', {store!r}).latest_run.data.summary",
        tmp_path,
    )
    assert found["extra"] == "flows" and found["module"] == "zstandard"
    assert "artifact 'summary' of LinearFlow/" in found["message"]


# -- the Python API -----------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("code", "extra", "module"),
    [
        ("import satchel.serving\nsatchel.serving.serve(['textutil'])", "serve", "fastapi"),
        ("import satchel.serving\nsatchel.serving.create_app(['textutil'])", "serve", "fastapi"),
        (
            "from satchel.serving.backends import get_backend\nget_backend('ray')",
            "ray",
            "ray",
        ),
        ("from satchel.packager.stores import open_store\nopen_store('s3://bucket/prefix')", "s3", "boto3"),
        (
            "from satchel.flows.executors import get_executor\nget_executor('ray')",
            "ray",
            "ray",
        ),
        (
            "from satchel.runtime.worker import spans\nspans.install('console', 'satchel')",
            "trace",
            "opentelemetry",
        ),
        (
            "import satchel\nfrom satchel.packager.locking import lock_environment\n"
            "lock_environment(satchel.Environment(conda=['python'], channels=['conda-forge']))",
            "conda",
            "rattler",
        ),
    ],
    ids=["serve", "create_app", "ray-backend", "s3-store", "ray-executor", "trace", "conda"],
)
def test_the_python_api_raises_missing_extra(
    bare: Path, tmp_path: Path, code: str, extra: str, module: str
) -> None:
    found = python_api(bare, code, tmp_path)
    assert (found["extra"], found["module"]) == (extra, module)
    assert found["message"].endswith(f"pip install 'satchel[{extra}]'")


@pytest.mark.slow
def test_decoding_an_ndarray_without_numpy_names_the_data_extra(bare: Path, tmp_path: Path) -> None:
    import numpy as np

    from satchel.bindings.codec import Codec
    from satchel.bindings.schema import response_schema

    schema = response_schema("normalize", np.ndarray)
    (tmp_path / "schema.json").write_text(json.dumps(schema))
    (tmp_path / "value.avro").write_bytes(Codec(schema).encode(np.arange(3.0)))
    found = python_api(
        bare,
        "import json\nfrom satchel.bindings.codec import Codec\n"
        "codec = Codec(json.load(open('schema.json')))\ncodec.decode(open('value.avro', 'rb').read())",
        tmp_path,
    )
    assert (found["extra"], found["module"]) == ("data", "numpy")
    assert found["message"].startswith("a numpy.ndarray value (logical type satchel.ndarray) needs numpy")


# -- the helper ---------------------------------------------------------------------------------------


def test_the_extras_are_those_pyproject_declares() -> None:
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert set(EXTRAS) == set(declared) - {"dev"}


def test_missing_extra_is_a_satchel_error_and_an_import_error_that_pickles() -> None:
    exc = MissingExtra("satchel serve", "fastapi", "serve")
    assert isinstance(exc, SatchelError) and isinstance(exc, ImportError) and exc.name == "fastapi"
    assert str(exc) == "satchel serve needs fastapi, which is not installed: pip install 'satchel[serve]'"
    back = pickle.loads(pickle.dumps(exc))
    assert (type(back), str(back), back.extra, back.module) == (MissingExtra, str(exc), "serve", "fastapi")


def test_needs_extra_converts_only_the_extras_own_modules(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "zstandard", None)  # `import zstandard` now raises ModuleNotFoundError
    with pytest.raises(MissingExtra, match=r"^reading it needs zstandard, .*'satchel\[flows\]'$"):
        with needs_extra("flows", "reading it"):
            import zstandard  # noqa: F401
    with pytest.raises(ModuleNotFoundError) as info:  # a module of another extra: a bug, not this extra
        with needs_extra("s3", "the s3 store"):
            import zstandard  # noqa: F401
    assert not isinstance(info.value, MissingExtra)
    with pytest.raises(ModuleNotFoundError) as info:  # Satchel's own: never blamed on an extra
        with needs_extra("serve", "satchel serve"):
            import satchel.no_such_module  # noqa: F401
    assert not isinstance(info.value, MissingExtra)
    with pytest.raises(ValueError, match="unknown extra 'nope'; known: s3, data, serve"):
        require("nope", "x")
