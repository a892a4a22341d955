"""An export killed halfway leaves its scratch files (artifact pickles, possibly gigabytes) only until the
next export: each scratch directory records its maker, and a dead maker's directory is swept."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from satchel.core import identity as _holders
from satchel.packager.export import SCRATCH_PREFIX
from satchel.packager.scratch import HOLDER
from tests.functions import textutil
from tests.waiting import wait_until

REPO = Path(__file__).resolve().parent.parent

KILLED_EXPORT = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from tests.functions import sized

    store, ready = sys.argv[1:3]

    class Stall:
        def __reduce__(self):  # reached once the big value before it is in the pickle file
            Path(ready).touch()
            time.sleep(600)

    sized.digest_of.bind(data=[os.urandom(8 << 20), Stall()]).export(name="big", store=store, progress=False)
    """
)


def test_a_killed_export_leaves_nothing_after_the_next_export(
    tmp_path: Path, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    ready = tmp_path / "ready"
    env = {**os.environ, "TMPDIR": str(scratch)}
    proc = subprocess.Popen([sys.executable, "-c", KILLED_EXPORT, store_url, str(ready)], cwd=REPO, env=env)
    try:
        wait_until(
            lambda: ready.exists() or proc.poll() is not None, 300, "the export to pickle its artifact"
        )
        assert proc.poll() is None, "the export ended before it was killed"
    finally:
        proc.kill()
        proc.wait()
    left = list(scratch.glob(f"{SCRATCH_PREFIX}*"))
    assert len(left) == 1
    assert sum(p.stat().st_size for p in left[0].glob("*.pkl")) >= 8 << 20

    # A scratch directory of a live export is kept: this process's own, made by hand here.
    live = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX, dir=scratch))
    (live / HOLDER).write_text(json.dumps(_holders.this_process()))

    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    textutil.add.export(name="add", store=store_url, progress=False)
    assert list(scratch.iterdir()) == [live]
