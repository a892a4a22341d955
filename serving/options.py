"""ServeOptions: every option of a server, from `satchel serve` to the Hosting, with its default named once
and its value checked once (here), so the CLI, `serve()`, `create_app()`, `Hosting.of()` and the backends
pass one object instead of their keywords.

Standard library only (and the registry's lease default): the CLI imports it without the `serve` extra.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .deploy.registry import DEFAULT_LEASE

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
#: Workers per function (MIN, MAX) of a server (`satchel serve`, `serve()`).
DEFAULT_WORKERS = (1, 4)
#: Of an app built in someone else's process (`create_app()`, `Hosting.of()`): one worker per function
#: and no autoscaler unless asked, as the process hosting the app may not expect threads of ours.
APP_WORKERS = 1
DEFAULT_SCALE_DOWN_AFTER = 60.0
DEFAULT_JOB_TTL = 3600.0
DEFAULT_MAX_BODY = 64 * 1024 * 1024
#: Seconds in-flight requests (REST and gRPC) get to finish once the server is asked to stop.
DEFAULT_DRAIN_TIMEOUT = 30.0
DEFAULT_POLL_INTERVAL = 2.0
#: CPUs a cluster backend reserves per function replica: its one worker runs one call at a time.
DEFAULT_REPLICA_CPUS = 1.0
DEFAULT_TITLE = "Satchel"
LOCAL_BACKEND = "local"

Workers = int | tuple[int, int] | str


class OptionError(ValueError):
    """A serving option with a bad value; `option` names its field (the CLI maps it to its flag)."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(message)
        self.option = option


def parse_workers(workers: Workers) -> tuple[int, int]:
    """(min, max) from 3, (1, 4) or "1:4"; ValueError otherwise."""
    if isinstance(workers, str):
        low, sep, high = workers.partition(":")
        try:
            pair = (int(low), int(high if sep else low))
        except ValueError:
            raise ValueError(f"workers {workers!r}: expected N or MIN:MAX") from None
    elif isinstance(workers, int):
        pair = (workers, workers)
    else:
        pair = (int(workers[0]), int(workers[1]))
    if pair[0] < 0 or pair[1] < 1 or pair[0] > pair[1]:
        raise ValueError(f"workers {workers!r}: need 0 <= MIN <= MAX and MAX >= 1")
    return pair


_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$", re.IGNORECASE)


def parse_size(text: str | int) -> int:
    """Bytes from 1048576, "32MB" (decimal units: kB, MB, GB) or "64MiB" (binary: KiB, MiB, GiB)."""
    if isinstance(text, int):
        value = text
    else:
        match = _SIZE.match(text)
        unit = match.group(2).lower() if match else ""
        if match is None or unit not in _UNITS:
            raise ValueError(f"size {text!r}: expected a number of bytes with an optional unit (32MB, 64MiB)")
        value = int(float(match.group(1)) * _UNITS[unit])
    if value < 1:
        raise ValueError(f"size {text!r}: must be at least 1 byte")
    return value


def human_size(size: int, *, sep: str = "") -> str:
    """64MiB for 67108864 (binary units where exact), else the bytes: 1000 bytes."""
    for unit, factor in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= factor and size % factor == 0:
            return f"{size // factor}{sep}{unit}"
    return f"{size} bytes"


@dataclass(frozen=True)
class ServeOptions:
    """How to serve. Built from keywords by `ServeOptions.of`; normalised and checked on creation
    (OptionError names the field): `workers` becomes (MIN, MAX), `max_body_bytes` bytes."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    #: workers per function: N, (MIN, MAX) or "MIN:MAX"; MIN < MAX autoscales between them
    workers: tuple[int, int] = DEFAULT_WORKERS
    #: calls allowed to wait for a worker, per function (None: the pool's default)
    max_pending: int | None = None
    #: the bearer token every route but /healthz then requires
    token: str | None = None
    debug: bool = False
    #: `local` (this process) or a cluster backend (serving/backends/)
    backend: str = LOCAL_BACKEND
    #: a backend's cluster (e.g. a Ray address); None: its default
    address: str | None = None
    #: function name -> (MIN, MAX), overriding `workers` for that function
    function_workers: dict[str, tuple[int, int]] = field(default_factory=dict)
    #: seconds of idleness before scaling down
    scale_down_after: float = DEFAULT_SCALE_DOWN_AFTER
    #: seconds a finished async job's result is kept
    job_ttl: float = DEFAULT_JOB_TTL
    #: largest request body in bytes (or "32MB", "64MiB"); larger ones get 413
    max_body_bytes: int = DEFAULT_MAX_BODY
    #: seconds in-flight requests (REST and gRPC) get to finish when the server stops
    drain_timeout: float = DEFAULT_DRAIN_TIMEOUT
    #: also serve gRPC on `host` at this port (0: any free one); local backend only
    grpc_port: int | None = None
    #: CPUs a cluster backend reserves per function replica (None: DEFAULT_REPLICA_CPUS); a fraction packs
    #: more replicas on a node (functions that wait more than they compute)
    replica_cpus: float | None = None
    #: deployments whose stable version is served, and whose candidates are audited (serving/deploy/)
    deployments: tuple[str, ...] = ()
    #: the store holding the deployment registry (None: $SATCHEL_STORE)
    store: str | None = None
    #: seconds between two polls of the deployment registry
    poll_interval: float = DEFAULT_POLL_INTERVAL
    #: seconds without a heartbeat after which another machine's server takes over a candidate's audit
    claim_lease: float = DEFAULT_LEASE
    #: the title of the OpenAPI document and docs page
    title: str = DEFAULT_TITLE

    def __post_init__(self) -> None:
        def fix(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        fix("workers", _checked("workers", parse_workers, self.workers))
        overrides = {}
        for name, spec in dict(self.function_workers or {}).items():
            if not isinstance(name, str) or not name:
                raise OptionError("function_workers", f"function_workers: {name!r} is not a function name")
            overrides[name] = _checked("function_workers", parse_workers, spec)
        fix("function_workers", overrides)
        fix("max_body_bytes", _checked("max_body_bytes", parse_size, self.max_body_bytes))
        if self.token is not None and not self.token:
            raise OptionError("token", "an empty token would let anyone in")
        for name in ("scale_down_after", "job_ttl", "drain_timeout"):
            _seconds(name, getattr(self, name), positive=False)
        for name in ("poll_interval", "claim_lease"):
            _seconds(name, getattr(self, name), positive=True)
        if self.grpc_port is not None and not (_is_int(self.grpc_port) and 0 <= self.grpc_port <= 65535):
            raise OptionError("grpc_port", f"grpc_port {self.grpc_port!r}: expected a port, 0 to 65535")
        fix("deployments", tuple(self.deployments))
        cpus = self.replica_cpus
        if cpus is not None and (
            isinstance(cpus, bool) or not isinstance(cpus, int | float) or not cpus >= 0
        ):
            raise OptionError(
                "replica_cpus", f"replica_cpus {cpus!r}: expected a number of CPUs >= 0, like 1 or 0.25"
            )

    def check_backend(self) -> None:
        """OptionError unless `backend` runs every option given. Not on creation: a Backend is handed
        options whose `backend` field is not its own name (`Backend.start(refs, options)`)."""
        if self.backend == LOCAL_BACKEND:
            if self.replica_cpus is not None:
                raise OptionError(
                    "replica_cpus",
                    "replica_cpus applies to a cluster backend (backend='ray', --backend ray), "
                    "not backend='local'",
                )
            return
        if self.deployments:
            raise OptionError(
                "deployments",
                f"deployments are watched by the local backend only, not backend={self.backend!r}",
            )
        if self.grpc_port is not None:
            raise OptionError(
                "grpc_port", f"gRPC is served by the local backend only, not backend={self.backend!r}"
            )

    @classmethod
    def of(cls, options: ServeOptions | None = None, /, **kwargs: Any) -> ServeOptions:
        """`options` (default: a server's defaults) with the fields `kwargs` name replaced, checked."""
        unknown = sorted(set(kwargs) - FIELDS)
        if unknown:
            raise TypeError(
                f"unknown serving option {', '.join(map(repr, unknown))}; known: {', '.join(sorted(FIELDS))}"
            )
        if options is None:
            return cls(**kwargs)
        return dataclasses.replace(options, **kwargs) if kwargs else options

    @staticmethod
    def split(kwargs: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """`kwargs` as (serving options, the others)."""
        ours = {k: v for k, v in kwargs.items() if k in FIELDS}
        return ours, {k: v for k, v in kwargs.items() if k not in FIELDS}


def _checked(option: str, parse: Any, value: Any) -> Any:
    try:
        return parse(value)
    except (TypeError, ValueError) as exc:
        raise OptionError(option, str(exc)) from None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _seconds(option: str, value: Any, *, positive: bool) -> None:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not number or not (value > 0 if positive else value >= 0):
        expected = "a positive number of seconds" if positive else "0 or more seconds"
        raise OptionError(option, f"{option} must be {expected}, not {value!r}")


FIELDS = frozenset(f.name for f in dataclasses.fields(ServeOptions))

#: What `create_app()` and `Hosting.of()` start from (see APP_WORKERS).
APP_DEFAULTS = ServeOptions(workers=APP_WORKERS)
