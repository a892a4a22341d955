"""Autoscaling: per function, between MIN and MAX workers, on in-flight and queued calls.

Every `interval` seconds a thread looks at each hosted function's pool and sizes it by its `Policy`:
enough workers for the calls running and waiting (at most MAX) at once, and one fewer for each worker
idle longer than `scale_down_after` (never below MIN). Each change is logged as one line and counted in
`satchel_scale_events_total{function,direction}`; `satchel_workers{function}` follows the pools.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .options import DEFAULT_SCALE_DOWN_AFTER

if TYPE_CHECKING:
    from .hosting import Hosting

log = logging.getLogger("satchel.serving.autoscale")

DEFAULT_INTERVAL = 0.25  # seconds between two looks at the pools


@dataclass(frozen=True)
class Policy:
    """How one function scales: workers in [min_workers, max_workers]; `target_per_worker` calls each."""

    min_workers: int
    max_workers: int
    scale_down_after: float = DEFAULT_SCALE_DOWN_AFTER
    target_per_worker: float = 1.0

    def __post_init__(self) -> None:
        if not 0 <= self.min_workers <= self.max_workers or self.max_workers < 1:
            raise ValueError(
                f"workers {self.min_workers}:{self.max_workers}: need 0 <= MIN <= MAX and MAX >= 1"
            )
        if not self.scale_down_after >= 0:
            raise ValueError(f"scale_down_after must be 0 or more seconds, not {self.scale_down_after!r}")
        if not self.target_per_worker > 0:
            raise ValueError(f"target_per_worker must be more than 0, not {self.target_per_worker!r}")

    def desired(self, *, current: int, in_flight: int, queued: int, idle_seconds: list[float]) -> int:
        """The number of workers wanted now.

        `current`: workers now; `in_flight`, `queued`: calls holding a worker, and waiting for one;
        `idle_seconds`: how long each idle worker has been idle. Scaling up is immediate; scaling down
        removes only workers idle for at least `scale_down_after` seconds.
        """
        demand = math.ceil((in_flight + queued) / self.target_per_worker)
        wanted = min(max(demand, self.min_workers), self.max_workers)
        if wanted >= current:
            return wanted
        long_idle = sum(1 for seconds in idle_seconds if seconds >= self.scale_down_after)
        return max(wanted, min(current - long_idle, self.max_workers))


class Autoscaler:
    """Sizes the pools of `hosting`'s functions by their policies (`policies[name]`, else `default`),
    from a daemon thread; `close()` stops it. Functions are looked up at every pass (deployments swap
    them)."""

    def __init__(
        self,
        hosting: Hosting,
        default: Policy,
        *,
        policies: Mapping[str, Policy] | None = None,
        interval: float = DEFAULT_INTERVAL,
    ) -> None:
        if not interval > 0:
            raise ValueError(f"interval must be more than 0 seconds, not {interval!r}")
        self.hosting = hosting
        self.default = default
        self.policies = dict(policies or {})
        self.interval = interval
        self._sizes: dict[str, tuple[int, int]] = {}  # name -> (id of its LoadedFunction, last size seen)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def policy(self, name: str) -> Policy:
        return self.policies.get(name, self.default)

    def start(self) -> Autoscaler:
        self._thread = threading.Thread(target=self._loop, name="satchel-autoscaler", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.tick()
            except Exception:  # a pass that fails must not end autoscaling
                log.exception("autoscaling pass failed")

    def tick(self) -> dict[str, int]:
        """One pass over every function: resize those whose pool is not the size wanted; the new sizes."""
        changes: dict[str, int] = {}
        metrics = self.hosting.metrics
        for name, hosted in list(self.hosting.functions.items()):
            fn = hosted.fn
            if not hasattr(fn, "scale"):  # not a local worker pool (another backend scales it)
                continue
            current = fn.workers
            known = self._sizes.get(name)
            if known is not None and known[0] == id(fn) and current > known[1]:
                self._event(name, known[1], current, "a call found no worker")  # a cold start
            wanted = self.policy(name).desired(
                current=current, in_flight=fn.busy, queued=fn.pending, idle_seconds=fn.idle_seconds()
            )
            if wanted != current:
                reason = f"{fn.busy} in flight, {fn.pending} queued"
                try:
                    fn.scale(wanted, only_idle=True)  # a worker taken since it was counted stays
                except Exception as exc:  # closed meanwhile (replaced by a deployment, or shutting down)
                    log.info("autoscaler: could not scale %s to %d: %s", name, wanted, exc)
                    continue
                wanted = fn.workers
                if wanted != current:
                    self._event(name, current, wanted, reason)
                    changes[name] = wanted
                    current = wanted
            self._sizes[name] = (id(fn), current)
            metrics.observe_pool(name, fn)
        return changes

    def _event(self, name: str, old: int, new: int, reason: str) -> None:
        direction = "up" if new > old else "down"
        self.hosting.metrics.scale_events.labels(name, direction).inc()
        log.info("scaled %s %s from %d to %d workers (%s)", name, direction, old, new, reason)

    def close(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=10)
