"""Virtual environments the tests build with uv (its cache makes them quick): Satchel from this checkout
(editable) and only the packages named, so a test can run where the caller's packages are absent."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def satchel_venv(venv: Path, *packages: str) -> Path:
    """A venv at `venv` with Satchel and `packages`; its interpreter."""
    uv = [sys.executable, "-m", "uv"]
    subprocess.run([*uv, "venv", "-q", "--python", sys.executable, str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    install = [*uv, "pip", "install", "-q", "--python", str(python), "-e", str(REPO), *packages]
    subprocess.run(install, check=True, timeout=900)
    return python
