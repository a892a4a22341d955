"""Prometheus metrics of one app, in its own registry (several apps can live in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["Metrics", "CONTENT_TYPE_LATEST"]


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

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
