"""The small interface every serving backend has: start the functions behind the REST gateway, get its
URL, stop."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ServeOptions:
    """How to serve: where the gateway listens, workers per function (MIN, MAX), the queue, auth."""

    host: str = "127.0.0.1"
    port: int = 8000
    workers: tuple[int, int] = (1, 4)
    max_pending: int | None = None
    token: str | None = None
    debug: bool = False
    #: a backend's cluster (e.g. a Ray address); None: its default
    address: str | None = None
    #: function name -> (MIN, MAX), overriding `workers` for that function
    function_workers: dict[str, tuple[int, int]] = field(default_factory=dict)
    #: seconds of idleness before scaling down
    scale_down_after: float = 60.0
    #: seconds a finished async job's result is kept
    job_ttl: float = 3600.0
    #: largest request body in bytes (None: the gateway's default)
    max_body_bytes: int | None = None
    #: CPUs a cluster backend reserves per function replica: its one worker runs one call at a time, so
    #: one CPU; a fraction packs more replicas on a node (functions that wait more than they compute)
    replica_cpus: float = 1.0


class Backend(ABC):
    """Hosts bundle references behind the REST gateway."""

    @abstractmethod
    def start(self, refs: list[str], options: ServeOptions) -> str:
        """Load and serve `refs`; return the gateway's base URL once it answers requests."""

    @abstractmethod
    def stop(self) -> None:
        """Stop serving and release what `start` took (processes, cluster resources)."""
