"""Lay the `satchel` package out in DEST as it installs (pyproject's package-dir maps a folder per
subpackage), so tools that walk a package's directory (import-linter) see all of it."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def stage(dest: Path) -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = config["package-dir"]
    for package in sorted(folders, key=len):
        source = ROOT / folders[package]
        target = dest.joinpath(*package.split("."))
        shutil.copytree(
            source,
            target,
            dirs_exist_ok=True,
            ignore=shutil.ignore_patterns(
                "__pycache__", "*.so", "*.c", "*.h", "testdata", "*.pyi", "*.proto"
            ),
        )


if __name__ == "__main__":
    stage(Path(sys.argv[1]))
