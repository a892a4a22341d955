"""Hosting: what one server process hosts, shared by every gateway (REST, gRPC), the job manager, the
autoscaler and the deployment watcher.

Gateways look functions up by name on every request (`hosting.functions.get(name)`), so replacing an entry
(a promoted deployment) takes effect at the next request without restarting anything.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from satchel.runtime.proxy import LoadedFunction

from .hosted import HostedFunction
from .metrics import Metrics


@dataclass
class Hosting:
    functions: dict[str, HostedFunction] = field(default_factory=dict)
    metrics: Metrics = field(default_factory=Metrics)
    debug: bool = False
    token: str | None = None
    #: Loaded here, closed by `close()` (functions the caller passed in stay the caller's to close).
    owned: list[LoadedFunction] = field(default_factory=list)
    #: Extra per-process services (job manager, autoscaler, deployment watcher) register a `close()` here.
    services: list[Any] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def of(
        cls,
        functions: Mapping[str, LoadedFunction] | Iterable[str],
        *,
        workers: int | tuple[int, int] | str = 1,
        max_pending: int | None = None,
        token: str | None = None,
        debug: bool = False,
    ) -> Hosting:
        """A mapping name -> LoadedFunction (the caller keeps and closes them), or bundle references,
        loaded here (named by their bundle names) and closed by `close()`."""
        owned: list[LoadedFunction] = []
        if isinstance(functions, Mapping):
            loaded = dict(functions)
        else:
            from .server import load_all

            loaded = load_all(list(functions), workers=workers, max_pending=max_pending)
            owned = list(loaded.values())
        hosted = {name: HostedFunction.of(name, fn) for name, fn in loaded.items()}
        return cls(functions=hosted, debug=debug, token=token, owned=owned)

    def get(self, name: str) -> HostedFunction | None:
        return self.functions.get(name)

    def close(self) -> None:
        """Stop the services (in reverse order of registration), then the functions loaded here."""
        for service in reversed(self.services):
            service.close()
        self.services.clear()
        for fn in self.owned:
            fn.close()
        self.owned.clear()
