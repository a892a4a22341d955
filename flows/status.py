"""A run's status as readers see it (the client, `satchel runs`, gc).

The driver records "running" when a run starts and "successful" or "failed" when it ends. A driver killed
in between (SIGKILL, a lost machine) never writes the end: its run stays "running". Each run records its
driver process, so a reader on the same machine can tell for sure that it is gone: such a run is
"crashed", a finished status (gc may collect it). On another machine nobody can tell; it stays "running".
"""

from __future__ import annotations

from typing import Any

from satchel.core import identity as _holders

RUNNING = "running"
CRASHED = "crashed"
FINISHED = ("successful", "failed", CRASHED)


def run_status(record: dict[str, Any] | None) -> str:
    """The status of the run whose run.json is `record` ("unknown" without one)."""
    status = str((record or {}).get("status", "unknown"))
    if status == RUNNING:
        driver = (record or {}).get("driver")
        if isinstance(driver, dict) and _holders.is_running(driver) is False:
            return CRASHED
    return status
