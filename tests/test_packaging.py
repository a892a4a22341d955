"""The package as users install it: a wheel built from the repository holds every layer and the ring."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_a_built_wheel_holds_the_layers_and_the_ring_library(tmp_path: Path) -> None:
    uv = [sys.executable, "-m", "uv"]
    out = tmp_path / "dist"
    build = subprocess.run(
        [*uv, "build", "--wheel", "--quiet", "--out-dir", str(out), str(REPO)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stderr
    (wheel,) = out.glob("satchel-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in ("core/settings.py", "core/registry.py", "bindings/_native/libsatchelring.so", "cli.py"):
        assert f"satchel/{path}" in names, path
    venv = tmp_path / "venv"
    subprocess.run([*uv, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run(
        [*uv, "pip", "install", "--quiet", "--no-deps", "--python", str(python), str(wheel)],
        check=True,
        timeout=300,
    )
    probe = (
        "from satchel.bindings import _native; import satchel.core.settings; print(_native.library_path())"
    )
    shipped = subprocess.run(
        [str(python), "-c", probe], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert shipped.returncode == 0, shipped.stderr
    assert shipped.stdout.strip().endswith("site-packages/satchel/bindings/_native/libsatchelring.so")
