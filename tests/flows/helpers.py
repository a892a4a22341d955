"""Running the flow definitions under flowdefs/ both ways: `python flow.py run` and Runner."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

from satchel.flows import Flow, Run, RunFailed, Runner

FLOWDEFS = Path(__file__).resolve().parent / "flowdefs"


def flow_class(module: str, name: str) -> type:
    return getattr(importlib.import_module(f"tests.flows.flowdefs.{module}"), name)


def run_cli(module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(FLOWDEFS / f"{module}.py"), "run", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def run_flow(
    mode: str, module: str, name: str, *, expect_ok: bool = True, tags: tuple[str, ...] = (), **params
) -> Run:
    """Run a flow in `mode` ("cli" or "runner"); return the run (from the client, for both modes)."""
    if mode == "cli":
        args = [f"--{k.replace('_', '-')}={v}" for k, v in params.items()] + [f"--tag={t}" for t in tags]
        proc = run_cli(module, *args)
        assert (proc.returncode == 0) == expect_ok, proc.stdout + proc.stderr
        run = Flow(name).latest_run
        assert run is not None
        return run
    try:
        run = Runner(flow_class(module, name)).run(tags=tags, **params)
    except RunFailed as exc:
        assert not expect_ok, str(exc)
        return Flow(name)[exc.run_id]
    assert expect_ok, "the run was expected to fail"
    return run
