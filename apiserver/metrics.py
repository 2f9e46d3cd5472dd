"""Prometheus metrics of the API server, in a registry of its own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "apiserver_request_total",
            "Requests served, by verb, resource and HTTP status code.",
            ["verb", "group", "resource", "subresource", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "apiserver_request_duration_seconds",
            "Time to serve a request (watches excluded), by verb and resource.",
            ["verb", "group", "resource", "subresource"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.watchers = Gauge(
            "apiserver_registered_watchers", "Open watch streams.", ["resource"], registry=self.registry
        )
        self.storage_write = Histogram(
            "skiff_storage_commit_duration_seconds",
            "Time to commit one batch of writes.",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.log_rows = Gauge(
            "skiff_storage_change_log_entries", "Entries held in the change log.", registry=self.registry
        )
        self.compacted_rv = Gauge(
            "skiff_storage_compacted_resource_version",
            "The newest resourceVersion removed by compaction.",
            registry=self.registry,
        )
        self.head_rv = Gauge(
            "skiff_storage_resource_version", "The newest resourceVersion seen.", registry=self.registry
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
