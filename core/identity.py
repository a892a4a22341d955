"""Which process holds something recorded in a store (a deployment claim, a flow run's driver), and
whether that process still runs.

A holder is recorded as a small dict: host name, boot id, pid namespace, pid and the process's start time.
A process on the same machine (same host name, boot and pid namespace) can tell for sure whether the
holder still runs; anyone else cannot (deployments then fall back on a claim's lease, serving/deploy/).
"""

from __future__ import annotations

import os
import socket
from functools import cache
from typing import Any


def _read(path: str) -> str | None:
    try:
        with open(path) as fh:
            return fh.read().strip()
    except OSError:
        return None


def _pid_namespace() -> str | None:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def _started(pid: int) -> str | None:
    """The start time of `pid` in clock ticks since boot (Linux), None if it is gone or unknown."""
    stat = _read(f"/proc/{pid}/stat")
    if stat is None:
        return None
    fields = stat.rpartition(") ")[2].split()
    if fields and fields[0] == "Z":  # a zombie has stopped running
        return None
    return fields[19] if len(fields) > 19 else None


@cache
def _machine() -> dict[str, Any]:
    return {
        "host": socket.gethostname(),
        "boot": _read("/proc/sys/kernel/random/boot_id"),
        "pidns": _pid_namespace(),
    }


def this_process() -> dict[str, Any]:
    """The holder record of this process."""
    return of_process(os.getpid())


def of_process(pid: int) -> dict[str, Any]:
    """The holder record of process `pid` of this machine."""
    return {**_machine(), "pid": pid, "started": _started(pid)}


def is_running(holder: dict[str, Any]) -> bool | None:
    """Whether the process `holder` names still runs: True or False when this machine can tell, None when
    it runs elsewhere (another host, boot or pid namespace) or the record is incomplete."""
    machine = _machine()
    pid = holder.get("pid")
    if not isinstance(pid, int) or any(holder.get(key) != machine[key] for key in ("host", "boot", "pidns")):
        return None
    if machine["boot"] is None:  # not Linux: is some process with that pid alive?
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    started = _started(pid)
    return started is not None and started == holder.get("started")
