"""What a pod asks of a node, computed once per pod version: requests, ports, tolerations, affinity."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from controllers.scheduler.resources import (
    CPU,
    DEFAULT_MEMORY_REQUEST,
    DEFAULT_MILLI_CPU_REQUEST,
    MEMORY,
    Resources,
    add_into,
    max_into,
    parse_resources,
)
from skiff.api.errors import ApiError
from skiff.api.selectors import LabelSelector, selector_from_object
from skiff.runtime import object_key

KubeObject = dict[str, Any]
DEFAULT_SCHEDULER = "default-scheduler"
ANY_IP = "0.0.0.0"
# A host port a pod takes on its node: (hostIP, protocol, port).
HostPort = tuple[str, str, int]


@dataclass(frozen=True)
class AffinityTerm:
    """A required (or weighted preferred) pod (anti-)affinity term."""

    selector: LabelSelector
    # None means every namespace (an empty namespaceSelector).
    namespaces: frozenset[str] | None
    topology_key: str
    weight: int = 0

    def matches(self, pod: PodInfo) -> bool:
        if self.namespaces is not None and pod.namespace not in self.namespaces:
            return False
        return self.selector.matches(pod.labels)


@dataclass
class PodInfo:
    obj: KubeObject
    key: str
    namespace: str
    name: str
    uid: str
    labels: Mapping[str, str]
    priority: int
    requests: Resources
    # cpu and memory with kube's defaults for containers that request none (used only by scores).
    non_zero: tuple[int, int]
    host_ports: list[HostPort]
    tolerations: list[Mapping[str, Any]]
    owner_uid: str
    node_selector: Mapping[str, str]
    node_affinity: Mapping[str, Any]
    affinity_terms: list[AffinityTerm] = field(default_factory=list)
    anti_affinity_terms: list[AffinityTerm] = field(default_factory=list)

    @classmethod
    def of(cls, pod: KubeObject) -> PodInfo:
        metadata, spec = pod.get("metadata") or {}, pod.get("spec") or {}
        namespace = metadata.get("namespace") or ""
        affinity = spec.get("affinity") or {}
        return cls(
            obj=pod,
            key=object_key(pod),
            namespace=namespace,
            name=metadata.get("name") or "",
            uid=metadata.get("uid") or "",
            labels=metadata.get("labels") or {},
            priority=int(spec.get("priority") or 0),
            requests=pod_requests(spec),
            non_zero=non_zero_requests(spec),
            host_ports=host_ports(spec),
            tolerations=list(spec.get("tolerations") or []),
            owner_uid=controller_uid(metadata),
            node_selector=spec.get("nodeSelector") or {},
            node_affinity=affinity.get("nodeAffinity") or {},
            affinity_terms=required_terms(affinity.get("podAffinity"), namespace),
            anti_affinity_terms=required_terms(affinity.get("podAntiAffinity"), namespace),
        )


def _container_requests(container: Mapping[str, Any]) -> Resources:
    return parse_resources((container.get("resources") or {}).get("requests"))


def pod_requests(spec: Mapping[str, Any]) -> Resources:
    """kube's effective request: the containers' sum, at least the largest init container (sidecar init
    containers, `restartPolicy: Always`, run alongside and add up), plus the pod's overhead."""
    total: Resources = {}
    for container in spec.get("containers") or []:
        add_into(total, _container_requests(container))
    init_peak: Resources = {}
    sidecars: Resources = {}
    for container in spec.get("initContainers") or []:
        requests = _container_requests(container)
        if container.get("restartPolicy") == "Always":
            add_into(total, requests)
            add_into(sidecars, requests)
            max_into(init_peak, sidecars)
        else:
            running = dict(requests)
            add_into(running, sidecars)
            max_into(init_peak, running)
    max_into(total, init_peak)
    add_into(total, parse_resources(spec.get("overhead")))
    return {name: value for name, value in total.items() if value}


def non_zero_requests(spec: Mapping[str, Any]) -> tuple[int, int]:
    def one(container: Mapping[str, Any]) -> tuple[int, int]:
        requests = _container_requests(container)
        return requests.get(CPU, DEFAULT_MILLI_CPU_REQUEST), requests.get(MEMORY, DEFAULT_MEMORY_REQUEST)

    running = [one(c) for c in spec.get("containers") or []]
    cpu, memory = sum(c for c, _ in running), sum(m for _, m in running)
    for container in spec.get("initContainers") or []:
        init_cpu, init_memory = one(container)
        cpu, memory = max(cpu, init_cpu), max(memory, init_memory)
    overhead = parse_resources(spec.get("overhead"))
    return cpu + overhead.get(CPU, 0), memory + overhead.get(MEMORY, 0)


def host_ports(spec: Mapping[str, Any]) -> list[HostPort]:
    ports: list[HostPort] = []
    containers = [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
    for container in containers:
        for port in container.get("ports") or []:
            number = int(port.get("hostPort") or 0)
            if number > 0:
                ports.append((port.get("hostIP") or ANY_IP, port.get("protocol") or "TCP", number))
    return ports


def controller_uid(metadata: Mapping[str, Any]) -> str:
    for owner in metadata.get("ownerReferences") or []:
        if owner.get("controller"):
            return str(owner.get("uid") or "")
    return ""


def required_terms(affinity: Mapping[str, Any] | None, namespace: str) -> list[AffinityTerm]:
    raw = (affinity or {}).get("requiredDuringSchedulingIgnoredDuringExecution") or []
    return [term for term in (affinity_term(t, namespace) for t in raw) if term is not None]


def affinity_term(raw: Mapping[str, Any], namespace: str, weight: int = 0) -> AffinityTerm | None:
    """A PodAffinityTerm; namespaces default to the pod's own, an empty namespaceSelector means all (a
    non-empty namespaceSelector is not evaluated: only the listed namespaces count)."""
    try:
        selector = selector_from_object(raw.get("labelSelector"))
    except ApiError:
        return None
    listed = frozenset(raw.get("namespaces") or ())
    namespace_selector = raw.get("namespaceSelector")
    if namespace_selector == {}:
        namespaces: frozenset[str] | None = None
    else:
        namespaces = listed or (frozenset() if namespace_selector else frozenset({namespace}))
    return AffinityTerm(selector, namespaces, str(raw.get("topologyKey") or ""), weight)


def is_terminal(pod: Mapping[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def assigned_node(pod: Mapping[str, Any]) -> str:
    return str((pod.get("spec") or {}).get("nodeName") or "")


def is_deleting(pod: Mapping[str, Any]) -> bool:
    return bool((pod.get("metadata") or {}).get("deletionTimestamp"))


def responsible_for(pod: Mapping[str, Any], scheduler_name: str) -> bool:
    """A pod this scheduler should place: its scheduler, unassigned, not gated, not going away."""
    spec = pod.get("spec") or {}
    name = spec.get("schedulerName") or DEFAULT_SCHEDULER
    return (
        name == scheduler_name
        and not assigned_node(pod)
        and not is_deleting(pod)
        and not is_terminal(pod)
        and not spec.get("schedulingGates")
    )
