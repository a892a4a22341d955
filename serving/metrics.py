"""Prometheus metrics of one app, in its own registry (several apps can live in one process)."""

from __future__ import annotations

import threading
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["Metrics", "FunctionMetrics", "CONTENT_TYPE_LATEST"]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "satchel_requests", "Invocations by function and HTTP status.", ["function", "status"], registry=r
        )
        self.latency = Histogram(
            "satchel_request_duration_seconds",
            "Invocation latency, body read to response.",
            ["function"],
            registry=r,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.in_flight = Gauge("satchel_in_flight", "Invocations in progress.", ["function"], registry=r)
        self.errors = Counter(
            "satchel_errors",
            "Failed invocations by function and kind of error.",
            ["function", "kind"],
            registry=r,
        )
        self.queue_depth = Gauge(
            "satchel_queue_depth", "Calls waiting for a free worker.", ["function"], registry=r
        )
        self.workers = Gauge("satchel_workers", "Worker processes running.", ["function"], registry=r)
        self.grpc_requests = Counter(
            "satchel_grpc_requests",
            "gRPC Invoke and Submit calls by function and status code (latency and in-flight: as REST's).",
            ["function", "code"],
            registry=r,
        )
        self.scale_events = Counter(
            "satchel_scale_events",
            "Autoscaling changes of a function's workers, by direction (up, down).",
            ["function", "direction"],
            registry=r,
        )
        self.worker_restarts = Counter(
            "satchel_worker_restarts",
            "Workers started in place of ones that died, by cause: timeout or cancel (a call that would "
            "not stop was killed), crash.",
            ["function", "cause"],
            registry=r,
        )
        self._functions: dict[str, FunctionMetrics] = {}
        # name -> (id of its function, restarts by cause)
        self._restarts_seen: dict[str, tuple[int, dict[str, int]]] = {}
        self._restarts_lock = threading.Lock()

    def of(self, name: str) -> FunctionMetrics:
        """The per-request metrics of function `name` (label lookups done once, not per request)."""
        found = self._functions.get(name)
        if found is None:
            found = self._functions.setdefault(name, FunctionMetrics(self, name))
        return found

    def observe_pool(self, name: str, fn: Any) -> None:
        """Bring the pool figures of function `name` (a LoadedFunction) up to date."""
        self.queue_depth.labels(name).set(fn.pending)
        self.workers.labels(name).set(sum(pid is not None for pid in fn.worker_pids))
        causes = getattr(fn, "restart_causes", None)
        if causes is None:  # a function served elsewhere (Ray): only its total
            causes = {"unknown": getattr(fn, "restarts", 0)}
        with self._restarts_lock:
            source, seen = self._restarts_seen.get(name, (id(fn), {}))
            if source != id(fn):  # another version of the function: its own count starts at 0
                seen = {}
            self._restarts_seen[name] = (id(fn), causes)
        for cause, count in causes.items():
            if count > seen.get(cause, 0):
                self.worker_restarts.labels(name, cause).inc(count - seen.get(cause, 0))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class FunctionMetrics:
    """One function's children of the request metrics: in flight, latency, and counts by status or kind
    (each child looked up once, on first use)."""

    __slots__ = ("in_flight", "latency", "_children", "_metrics", "_name")

    def __init__(self, metrics: Metrics, name: str) -> None:
        self._metrics, self._name = metrics, name
        self.in_flight = metrics.in_flight.labels(name)
        self.latency = metrics.latency.labels(name)
        self._children: dict[tuple[str, str], Any] = {}

    def _count(self, metric: str, label: str) -> None:
        child = self._children.get((metric, label))
        if child is None:
            child = self._children[metric, label] = getattr(self._metrics, metric).labels(self._name, label)
        child.inc()

    def request(self, status: int) -> None:
        """Count a request answered with HTTP `status`."""
        self._count("requests", str(status))

    def grpc_request(self, code: str) -> None:
        """Count a gRPC Invoke or Submit ended with status `code` (a grpc.StatusCode name)."""
        self._count("grpc_requests", code)

    def error(self, kind: str) -> None:
        """Count a failed invocation by its problem kind."""
        self._count("errors", kind)
