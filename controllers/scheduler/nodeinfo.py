"""One node's aggregates, updated incrementally as pods are assigned, assumed and removed."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from controllers.scheduler.podinfo import ANY_IP, KubeObject, PodInfo
from controllers.scheduler.resources import PODS, Resources, add_into, parse_resources, subtract_from


@dataclass
class NodeInfo:
    name: str
    # None while pods are still bound to a node that is gone from the API.
    node: KubeObject | None = None
    allocatable: Resources = field(default_factory=dict)
    requested: Resources = field(default_factory=dict)
    non_zero_cpu: int = 0
    non_zero_memory: int = 0
    pods: dict[str, PodInfo] = field(default_factory=dict)
    # (protocol, port) -> host IPs using it, with counts
    used_ports: dict[tuple[str, int], Counter[str]] = field(default_factory=dict)
    # controller owner uid -> pods of that owner here
    owner_counts: Counter[str] = field(default_factory=Counter)

    def set_node(self, node: KubeObject | None) -> None:
        self.node = node
        self.allocatable = parse_resources(((node or {}).get("status") or {}).get("allocatable"))

    @property
    def labels(self) -> Mapping[str, str]:
        return ((self.node or {}).get("metadata") or {}).get("labels") or {}

    @property
    def spec(self) -> Mapping[str, Any]:
        return (self.node or {}).get("spec") or {}

    @property
    def allowed_pods(self) -> int:
        return self.allocatable.get(PODS, 0)

    def add_pod(self, pod: PodInfo) -> None:
        if pod.key in self.pods:
            self.remove_pod(pod.key)
        self.pods[pod.key] = pod
        add_into(self.requested, pod.requests)
        self.non_zero_cpu += pod.non_zero[0]
        self.non_zero_memory += pod.non_zero[1]
        for ip, protocol, port in pod.host_ports:
            self.used_ports.setdefault((protocol, port), Counter())[ip] += 1
        if pod.owner_uid:
            self.owner_counts[pod.owner_uid] += 1

    def remove_pod(self, key: str) -> PodInfo | None:
        pod = self.pods.pop(key, None)
        if pod is None:
            return None
        subtract_from(self.requested, pod.requests)
        self.non_zero_cpu -= pod.non_zero[0]
        self.non_zero_memory -= pod.non_zero[1]
        for ip, protocol, port in pod.host_ports:
            ips = self.used_ports[(protocol, port)]
            ips[ip] -= 1
            if ips[ip] <= 0:
                del ips[ip]
            if not ips:
                del self.used_ports[(protocol, port)]
        if pod.owner_uid:
            self.owner_counts[pod.owner_uid] -= 1
            if self.owner_counts[pod.owner_uid] <= 0:
                del self.owner_counts[pod.owner_uid]
        return pod

    def port_taken(self, ip: str, protocol: str, port: int) -> bool:
        """kube's rule: one wildcard address conflicts with every address on the same protocol and port."""
        ips = self.used_ports.get((protocol, port))
        if not ips:
            return False
        return ip == ANY_IP or ANY_IP in ips or ip in ips
