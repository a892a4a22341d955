"""Train a model, bind it into `predict`, export it, and call it from a venv without scikit-learn.

Run from the repository root: `python examples/iris/demo.py` (scripts/demo.sh sets everything up).
Uses the embedded defaults: a local store under SATCHEL_STORE (else ~/.satchel/store).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from rich.console import Console
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

sys.path.insert(0, str(Path(__file__).parent))
from model import predict  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
console = Console(stderr=True)

CALLER = """
import json, sys, importlib.util, satchel
assert importlib.util.find_spec("sklearn") is None, "the caller venv must not have scikit-learn"
ref, rows = sys.argv[1], json.loads(sys.stdin.read())
with satchel.load(ref) as fn:
    print(json.dumps(fn(rows)))
"""


def caller_venv(root: Path) -> Path:
    """A fresh virtual environment with Satchel installed and nothing else of ours."""
    python = root / "bin" / "python"
    if python.exists():
        return python
    from uv import find_uv_bin

    uv = find_uv_bin()
    with console.status("Creating a fresh caller venv (Satchel only, no scikit-learn)"):
        subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(root)], check=True)
        subprocess.run([uv, "pip", "install", "--quiet", "--python", str(python), str(REPO)], check=True)
    return python


def main() -> None:
    data = load_iris()
    model = LogisticRegression(max_iter=500).fit(data.data, data.target)
    rows = data.data[::10].tolist()
    expected = [int(v) for v in model.predict(rows)]
    console.print(f"Trained {type(model).__name__}; in-process predictions: {expected}")

    ref = predict.bind(model=model).export(name="iris-predict", progress=True)

    venv = caller_venv(REPO / ".satchel-demo" / "caller-venv")
    result = subprocess.run(
        [str(venv), "-c", CALLER, str(ref)],
        input=json.dumps(rows),
        capture_output=True,
        text=True,
        cwd=venv.parent.parent,  # not the repository root, whose satchel/ folder would shadow the install
    )
    if result.returncode != 0:
        console.print(result.stderr)
        raise SystemExit(f"the caller venv failed (exit {result.returncode})")
    remote = json.loads(result.stdout)
    console.print(f"From the caller venv (no scikit-learn):   {remote}")
    if remote != expected:
        raise SystemExit("MISMATCH: remote predictions differ from in-process ones")
    console.print(f"[green]✓ identical predictions[/green] via {ref}")


if __name__ == "__main__":
    main()
