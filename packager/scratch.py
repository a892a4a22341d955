"""Scratch directories for work that may be killed (an export's artifact pickles, downloaded wheels).

Each records the process that made it (satchel.core.identity); making one first removes those of this
machine whose maker is no longer running, so a killed export leaves its (possibly huge) files behind
only until the next export. A directory whose maker runs, runs elsewhere or cannot be told is kept.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from satchel.core import identity as _holders

HOLDER = ".satchel-holder.json"


@contextlib.contextmanager
def scratch_dir(prefix: str, root: Path | None = None) -> Iterator[Path]:
    """A new directory `<root>/<prefix>*` (root: the temporary directory), removed on exit."""
    root = Path(root) if root is not None else Path(tempfile.gettempdir())
    sweep(prefix, root)
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=root))
    try:
        (path / HOLDER).write_text(json.dumps(_holders.this_process()), encoding="utf-8")
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def sweep(prefix: str, root: Path | None = None) -> list[Path]:
    """Remove the scratch directories `<root>/<prefix>*` whose maker has died; return them."""
    root = Path(root) if root is not None else Path(tempfile.gettempdir())
    removed = []
    for entry in root.glob(f"{prefix}*"):
        try:
            holder = json.loads((entry / HOLDER).read_text(encoding="utf-8"))
        except (OSError, ValueError):  # not one of ours, or its maker is still writing the record
            continue
        if isinstance(holder, dict) and _holders.is_running(holder) is False:
            shutil.rmtree(entry, ignore_errors=True)
            if not entry.exists():
                removed.append(entry)
    return removed
