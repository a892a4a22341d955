"""Every `SATCHEL_*` environment variable, read here and nowhere else.

Each setting is read when asked for (never at import time), so a test or a parent process can change the
environment first. One boolean rule for every flag: `1 true yes on` are true, `0 false no off` and unset are
false, anything else is an error naming the variable. `docs/configuration.md` is the table of them
(`tests/test_settings.py` keeps it in step with `SETTINGS`).

Standard library only: the worker imports this too.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "SETTINGS",
    "Setting",
    "SettingError",
    "blob_cache_dir",
    "debug",
    "default_store_url",
    "environments_dir",
    "flag",
    "home",
    "integer",
    "kits_dir",
    "raw",
    "user",
]


class SettingError(ValueError):
    """An environment variable whose value Satchel cannot use. The message names the variable."""


@dataclass(frozen=True)
class Setting:
    name: str
    kind: str  # path, url, flag, int, name
    default: str
    help: str


SETTINGS: dict[str, Setting] = {
    s.name: s
    for s in (
        Setting(
            "SATCHEL_HOME", "path", "~/.satchel", "local caches: verified blobs, environments, worker kits"
        ),
        Setting("SATCHEL_STORE", "url", "~/.satchel/store", "the store used when a reference names none"),
        Setting("SATCHEL_DEBUG", "flag", "false", "show tracebacks instead of one-line errors"),
        Setting("SATCHEL_USER", "name", "the login name", "the user runs and deployments are recorded under"),
        Setting("SATCHEL_TRANSPORT", "name", "shm on Linux, else pipe", "how a caller talks to its workers"),
        Setting(
            "SATCHEL_RING_CAPACITY", "int", "1048576", "bytes per direction of a shm ring (power of two)"
        ),
        Setting("SATCHEL_RING_LIBRARY", "path", "(built)", "a shared-memory ring library built by hand"),
        Setting(
            "SATCHEL_RING_SPIN_US", "int", "adaptive", "a fixed spin budget of ring waits, µs (read by C)"
        ),
        Setting("SATCHEL_TRACE_EXPORTER", "name", "none", "span exporter of gateways and workers"),
        Setting("SATCHEL_TRACE_FILE", "path", "", "the file the jsonl exporter appends spans to"),
        Setting("SATCHEL_FLOW_LIFELINE", "int", "", "internal: a flow task's pipe to its driver"),
        Setting(
            "SATCHEL_CONDA_CHANNEL_ALIAS",
            "url",
            "https://conda.anaconda.org",
            "where a conda channel given by name (conda-forge) is found",
        ),
    )
}

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"", "0", "false", "no", "off"})


def raw(name: str) -> str | None:
    """The variable's value as set (None when unset or empty)."""
    if name not in SETTINGS:
        raise KeyError(f"{name} is not a Satchel setting")
    value = os.environ.get(name)
    return value if value else None


def flag(name: str) -> bool:
    value = (raw(name) or "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise SettingError(f"{name}={os.environ[name]!r}: expected one of 1, true, yes, on, 0, false, no, off")


def integer(name: str, default: int) -> int:
    value = raw(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise SettingError(f"{name}={value!r} is not a whole number") from None


def debug() -> bool:
    """SATCHEL_DEBUG: tracebacks instead of one-line errors."""
    return flag("SATCHEL_DEBUG")


def home() -> Path:
    """Local cache root: fetched blobs, materialized environments, worker kits."""
    value = raw("SATCHEL_HOME")
    return Path(value).expanduser() if value else Path.home() / ".satchel"


def default_store_url() -> str:
    """The store used when a reference names none: `SATCHEL_STORE`, else a directory under the home."""
    return raw("SATCHEL_STORE") or (Path.home() / ".satchel" / "store").as_uri()


def user() -> str:
    """The user runs and deployments are recorded under: SATCHEL_USER, else the login name, else the uid."""
    value = raw("SATCHEL_USER")
    if value:
        return value
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in some containers
        return str(os.getuid()) if hasattr(os, "getuid") else "unknown"


def blob_cache_dir() -> Path:
    return home() / "blobs"


def environments_dir() -> Path:
    return home() / "envs"


def conda_dir() -> Path:
    """rattler's package cache (`pkgs/`) and repodata cache (`repodata/`); the packages' bytecode (`pyc/`)."""
    return home() / "conda"


def conda_channel_alias() -> str:
    return (raw("SATCHEL_CONDA_CHANNEL_ALIAS") or "https://conda.anaconda.org").rstrip("/") + "/"


def kits_dir() -> Path:
    return home() / "kits"
