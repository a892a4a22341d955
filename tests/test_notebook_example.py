"""examples/notebook/ executed as a user would: the training notebook on a kernel of this environment (which has
scikit-learn), the second on a fresh kernel of a venv with Satchel and ipykernel only, both by nbclient."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.venvs import satchel_venv

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "notebook"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]


def kernel(jupyter: Path, name: str, python: Path) -> str:
    spec = jupyter / "kernels" / name
    spec.mkdir(parents=True)
    argv = [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": name, "language": "python"}))
    return name


@pytest.fixture(scope="module")
def lean_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with Satchel (this checkout) and ipykernel: no scikit-learn, no numpy."""
    python = satchel_venv(tmp_path_factory.mktemp("lean") / "venv", "ipykernel")
    probe = subprocess.run([str(python), "-c", "import sklearn"], capture_output=True)
    assert probe.returncode != 0, "the lean venv must not have scikit-learn"
    return python


def execute(path: Path, kernel_name: str, cwd: Path) -> nbformat.NotebookNode:
    nb = nbformat.read(path, as_version=4)
    NotebookClient(
        nb, kernel_name=kernel_name, timeout=900, resources={"metadata": {"path": str(cwd)}}
    ).execute()
    return nb


def result(cell: nbformat.NotebookNode, mime: str = "text/plain") -> str:
    (out,) = [o for o in cell.outputs if o.output_type == "execute_result"]
    return out["data"][mime]


def test_train_in_one_notebook_use_by_name_in_another(lean_python: Path, tmp_path: Path, monkeypatch) -> None:
    jupyter = tmp_path / "jupyter"
    monkeypatch.setenv("JUPYTER_PATH", str(jupyter))
    monkeypatch.setenv("SATCHEL_STORE", (tmp_path / "store").as_uri())  # both kernels inherit it
    monkeypatch.setenv("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    train = execute(
        EXAMPLE / "1-train.ipynb", kernel(jupyter, "satchel-train", Path(sys.executable)), tmp_path
    )
    score = float(result(train.cells[2]))
    assert score > 0.9
    assert result(train.cells[4]) == "('iris-notebook', 1)"

    use = execute(EXAMPLE / "2-use.ipynb", kernel(jupyter, "satchel-lean", lean_python), tmp_path)
    assert result(use.cells[1]) == "True"  # that kernel has no scikit-learn
    shown = result(use.cells[2], "text/html")
    assert "iris-notebook(features: list[float]) -&gt; str" in shown and "iris species of one flower" in shown
    assert "<li>scikit-learn " in shown and "none yet: the first call starts one" in shown
    assert result(use.cells[3]) == "('setosa', 'virginica')"
