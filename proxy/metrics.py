"""The proxy's Prometheus metrics, named as kube-proxy names them."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from skiff.net.render import Tables


class ProxyMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.sync_duration = Histogram(
            "kubeproxy_sync_proxy_rules_duration_seconds",
            "How long one sync of the proxy rules took (render, assemble, write).",
            ["node", "mode"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.last_sync = Gauge(
            "kubeproxy_sync_proxy_rules_last_timestamp_seconds",
            "When the proxy rules were last synced (Unix time).",
            ["node", "mode"],
            registry=self.registry,
        )
        self.rules = Gauge(
            "kubeproxy_sync_proxy_rules_total",
            "Rules (or virtual servers, set and map entries) in each table after the last sync.",
            ["node", "mode", "table"],
            registry=self.registry,
        )
        self.service_changes = Counter(
            "kubeproxy_sync_proxy_rules_service_changes_total",
            "Service changes seen (a changed Service or EndpointSlice).",
            registry=self.registry,
        )
        self.rendered = Counter(
            "kubeproxy_sync_proxy_rules_services_rendered_total",
            "Service fragments re-rendered by syncs.",
            ["node", "mode"],
            registry=self.registry,
        )

    def observe(self, tables: Tables, seconds: float, rendered: int, when: float) -> None:
        self.sync_duration.labels(tables.node, tables.mode).observe(seconds)
        self.last_sync.labels(tables.node, tables.mode).set(when)
        self.rendered.labels(tables.node, tables.mode).inc(rendered)
        for table, count in tables.counts.items():
            self.rules.labels(tables.node, tables.mode, table).set(count)
