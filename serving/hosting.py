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
from .jobs import Jobs
from .metrics import Metrics
from .options import APP_DEFAULTS, ServeOptions


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
    #: Async jobs (POST /v1/functions/{name}/jobs, gRPC Submit); the first service, so closed last.
    jobs: Jobs = field(default_factory=Jobs)

    def __post_init__(self) -> None:
        if self.jobs not in self.services:
            self.services.insert(0, self.jobs)

    @classmethod
    def of(
        cls,
        functions: Mapping[str, LoadedFunction] | Iterable[str],
        options: ServeOptions | None = None,
        **kwargs: Any,
    ) -> Hosting:
        """A mapping name -> LoadedFunction (the caller keeps and closes them), or bundle references,
        loaded here (named by their bundle names) with MIN `workers`, autoscaled up to MAX (idle ones stop
        after `scale_down_after` seconds), and closed by `close()`. `function_workers`: MIN:MAX of some
        functions by name (served now, or later: `deployments`), overriding `workers`. `options`, or its
        fields as keywords (ServeOptions; unless given, `workers` is APP_WORKERS here)."""
        options = ServeOptions.of(APP_DEFAULTS if options is None else options, **kwargs)
        owned: list[LoadedFunction] = []
        if isinstance(functions, Mapping):
            loaded = dict(functions)
        else:
            from .server import load_all

            loaded = load_all(list(functions), workers=options.workers, max_pending=options.max_pending)
            owned = list(loaded.values())
        hosted = {name: HostedFunction.of(name, fn) for name, fn in loaded.items()}
        hosting = cls(
            functions=hosted,
            debug=options.debug,
            token=options.token,
            owned=owned,
            jobs=Jobs(keep_seconds=options.job_ttl),
        )
        if not isinstance(functions, Mapping):  # ours (and deployments' later) to scale
            from .autoscale import Autoscaler, Policy

            scale_down_after = options.scale_down_after
            try:
                low, high = options.workers
                policies = {}
                for name, pair in options.function_workers.items():
                    if name not in hosted and name not in options.deployments:
                        raise ValueError(f"function_workers names {name!r}, which is not served here")
                    policies[name] = Policy(*pair, scale_down_after=scale_down_after)
                    if name in hosted:
                        hosted[name].fn.scale(policies[name].min_workers)
            except BaseException:
                hosting.close()
                raise
            if low != high or any(p.min_workers != p.max_workers for p in policies.values()):
                policy = Policy(low, max(high, 1), scale_down_after=scale_down_after)
                hosting.services.append(Autoscaler(hosting, policy, policies=policies).start())
        return hosting

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
