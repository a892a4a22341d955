"""An audit that holds until the test lets it go, for deployment tests that must catch a server mid-audit.

The gate is a directory named by $SATCHEL_TEST_AUDIT_GATE (read when the audit runs, in the server's
process): the audit creates `started-<pid>` there, then waits for the file `release` to appear.
"""

from __future__ import annotations

import os
import pathlib
import time
from typing import Any

GATE = "SATCHEL_TEST_AUDIT_GATE"


def gated(candidate: Any) -> tuple[bool, str]:
    """Passes once the gate is released (at once without a gate), with the candidate's answer as reason."""
    gate = os.environ.get(GATE)
    if gate:
        folder = pathlib.Path(gate)
        (folder / f"started-{os.getpid()}").touch()
        while not (folder / "release").exists():
            time.sleep(0.01)  # the audit waits on a file the test creates; nothing here is timed
    return True, f"answered {candidate(1.0)!r} after the gate opened"


def started(gate: pathlib.Path) -> list[int]:
    """Pids of the processes whose gated audit has started."""
    return sorted(int(p.name.removeprefix("started-")) for p in gate.glob("started-*"))
