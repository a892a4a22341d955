"""Progress of slow first loads and exports, shown wherever the caller is: INFO lines on the
`satchel.progress` logger when stderr is not a terminal, rich on a terminal; nothing for a warm load.

Real exports, real environments built by uv in a fresh SATCHEL_HOME, real worker processes.
"""

from __future__ import annotations

import logging
import os
import pty
import re
import select
import subprocess
import sys
import threading
from pathlib import Path
from typing import NamedTuple

import pytest
from filelock import FileLock

from satchel.core import progress as _progress
from satchel.packager.bundle import read_bundle
from tests.kernels import run_cells
from tests.waiting import wait_until

REPO = Path(__file__).resolve().parent.parent

#: Loads `ref` (argv[1]) twice, with a marker line on stderr between the cold load and the warm one.
LOAD_TWICE = """
import logging, sys
import satchel
if sys.argv[2] != "-":
    logging.basicConfig(level=sys.argv[2], format="%(levelname)s %(name)s: %(message)s")
with satchel.load(sys.argv[1]) as fn:
    assert fn(a=1, b=2) == 3
print("--- warm ---", file=sys.stderr, flush=True)
with satchel.load(sys.argv[1]) as fn:
    assert fn(a=2, b=2) == 4
"""

STAGE_DONE = r"{} done in \d+\.\d s"
MATERIALIZED = re.compile(r"materializing environment [0-9a-f]{12} \(\d+ packages?\)")


@pytest.fixture
def fresh_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A SATCHEL_HOME of its own: the first load of a bundle really materializes its environment."""
    home = tmp_path / "home"
    monkeypatch.setenv("SATCHEL_HOME", str(home))
    return home


class Exported(NamedTuple):
    ref: str
    messages: list[str]  # what the export logged on the progress logger


@pytest.fixture
def exported(fresh_home: Path, store_url: str, caplog: pytest.LogCaptureFixture) -> Exported:
    """`textutil.add` exported into a fresh store, progress going to the logger (`progress=False`)."""
    from tests.functions.textutil import add

    with caplog.at_level(logging.INFO, logger=_progress.LOGGER):
        ref = str(add.export(name="add", progress=False))
    messages = [r.getMessage() for r in caplog.records if r.name == _progress.LOGGER]
    caplog.clear()
    return Exported(ref, messages)


def load_twice(ref: str, level: str, *, env: dict | None = None, **popen: object) -> subprocess.Popen:
    """LOAD_TWICE in a child; `level`: its logging level, or "-" for no logging configuration."""
    return subprocess.Popen(
        [sys.executable, "-c", LOAD_TWICE, ref, level],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
        **popen,  # type: ignore[arg-type]
    )


@pytest.mark.slow
def test_an_export_logs_its_stages(exported: Exported) -> None:
    messages = exported.messages
    for title in (
        r"resolving environment \(python 3\.11, 0 requirements\)",
        r"mirroring \d+ package files? into file://.*",  # a fresh store: they were copied
        r"writing code and 0 artifacts",
    ):
        assert any(re.fullmatch(STAGE_DONE.format(title), m) for m in messages), (title, messages)
    assert messages[-1] == f"exported {exported.ref}"


@pytest.mark.slow
def test_a_first_load_logs_its_stages_and_a_warm_one_no_materialization(exported: Exported) -> None:
    proc = load_twice(exported.ref, "INFO", stderr=subprocess.PIPE, text=True)
    _, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr
    cold, _, warm = stderr.partition("--- warm ---")
    lines = [line for line in cold.splitlines() if line.startswith("INFO satchel.progress: ")]
    assert any(
        re.fullmatch(STAGE_DONE.format(MATERIALIZED.pattern), line.split(": ", 1)[1]) for line in lines
    ), cold
    assert "materializing" not in warm and "WARNING" not in stderr, warm


@pytest.mark.slow
def test_on_a_terminal_the_first_load_draws_and_a_warm_one_is_silent(exported: Exported) -> None:
    leader, follower = pty.openpty()
    proc = load_twice(exported.ref, "-", stderr=follower, env={"TERM": "xterm"})
    os.close(follower)
    chunks = []
    while True:  # until the child's end closes the terminal
        ready, _, _ = select.select([leader], [], [], 600)
        if not ready:
            break
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: no one holds the other end any more
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert proc.wait(timeout=60) == 0
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", b"".join(chunks).decode(errors="replace"))
    cold, _, warm = text.partition("--- warm ---")
    assert re.search(r"✓ " + MATERIALIZED.pattern + r" \(\d+\.\ds\)", cold), cold
    # A warm load leaves no line behind: a spinner, erased, while its worker starts; a line only if that
    # start was slow (a loaded machine), which is then worth showing.
    left = [line for line in warm.replace("\r", "\n").splitlines() if "✓" in line]
    assert "materializing" not in warm and all("✓ starting 1 worker of add (" in line for line in left), warm


@pytest.mark.slow
def test_a_load_waiting_for_another_build_says_so(exported: Exported, fresh_home: Path) -> None:
    bundle, _ = read_bundle(exported.ref)
    lock = FileLock(str(fresh_home / "envs" / ".locks" / f"{bundle.lock.env_id}.lock"))
    (fresh_home / "envs" / ".locks").mkdir(parents=True, exist_ok=True)
    lock.acquire()  # as another process building the environment would
    try:
        proc = load_twice(exported.ref, "DEBUG", stderr=subprocess.PIPE, text=True)
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)  # type: ignore[arg-type]
        reader.start()
        waiting = f"waiting for another process building environment {bundle.lock.env_id[:12]}"
        wait_until(lambda: any(waiting in line for line in lines), timeout=300, what="the waiting stage")
    finally:
        lock.release()
    assert proc.wait(timeout=600) == 0, "".join(lines)
    reader.join(timeout=60)
    done = [line for line in lines if line.startswith("INFO satchel.progress: ")]
    assert re.fullmatch(STAGE_DONE.format(waiting), done[0].split(": ", 1)[1].strip()), done
    assert any(MATERIALIZED.search(line) for line in done[1:]), done


@pytest.mark.slow
def test_in_a_notebook_the_first_load_shows_in_the_cell_and_a_warm_one_nothing(
    exported: Exported, tmp_path: Path
) -> None:
    load = f"import satchel\nwith satchel.load({exported.ref!r}) as fn:\n    print(fn(a=1, b=2))"
    cold, warm = run_cells([load, load], tmp_path / "jupyter")
    shown = [re.sub(r"\x1b\[[0-9;]*m", "", out["data"]["text/plain"]) for out in cold if "data" in out]
    assert any(re.search(r"✓ " + MATERIALIZED.pattern + r" \(\d+\.\ds\)", text) for text in shown), cold
    assert "text/html" in next(out for out in cold if "data" in out)["data"]  # drawn by the notebook
    assert [out.get("text") for out in cold if out.get("name") == "stdout"] == ["3.0\n"]
    # The warm load: the result only (and its worker's start, only if that was slow: a loaded machine).
    assert [out for out in warm if "data" not in out] == [{"name": "stdout", "text": "3.0\n"}], warm
    slow_start = [re.sub(r"\x1b\[[0-9;]*m", "", out["data"]["text/plain"]) for out in warm if "data" in out]
    assert all(text.startswith("✓ starting 1 worker of add (") for text in slow_start), warm


# -- the reporters --------------------------------------------------------------------------------------


def test_a_failed_stage_is_one_warning_naming_the_error(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger=_progress.LOGGER):
        with _progress.reporting(_progress.LogReporter()), pytest.raises(OSError):
            with _progress.stage("materializing environment abc (3 packages)", total=3) as st:
                st.advance(detail="numpy 2.1.3")
                raise OSError("disk full\nmore detail")
    (warning,) = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert re.fullmatch(
        r"materializing environment abc \(3 packages\) failed after \d+\.\d s: disk full",
        warning.getMessage(),
    )
    assert "1/3 numpy 2.1.3" in caplog.text


def test_a_quick_quiet_stage_is_a_debug_line_and_a_loud_one_info(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger=_progress.LOGGER):
        with _progress.reporting(_progress.LogReporter()):
            with _progress.stage("starting 1 worker of add", quiet=True):
                pass
            with _progress.stage("mirroring 3 package files", quiet=True) as st:
                st.quiet = False  # it found something to copy after all
    levels = {
        r.getMessage().split(" done")[0]: r.levelno for r in caplog.records if " done in " in r.getMessage()
    }
    assert levels == {"starting 1 worker of add": logging.DEBUG, "mirroring 3 package files": logging.INFO}


def test_outside_any_reporting_block_nothing_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        with _progress.stage("materializing environment abc (3 packages)") as st:
            st.advance()
    assert not caplog.records and isinstance(_progress.current(), _progress.Reporter)


@pytest.mark.slow
def test_satchel_serve_logs_the_first_load_of_its_functions(exported: Exported, tmp_path: Path) -> None:
    from tests.serving.running import ServeProcess

    with ServeProcess([exported.ref, "--workers", "1"], tmp_path / "serve.err") as server:
        logged = server.stderr()
    assert re.search(STAGE_DONE.format(MATERIALIZED.pattern), logged), logged
