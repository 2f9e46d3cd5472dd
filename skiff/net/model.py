"""The service model the proxy renders: one `ServicePort` per port of each Service, with its endpoints.

It is built from a Service and the EndpointSlices labelled `kubernetes.io/service-name` with its name,
the way kube-proxy reads them: IPv4 slices only, the slice port matched by name and protocol, the first
address of each endpoint, conditions defaulting as the API documents them (an unset `ready` means
ready, an unset `serving` follows `ready`). Ready endpoints are used; when none is ready, endpoints
that are still serving while terminating take their place. Headless and ExternalName Services have no
ServicePorts: the proxy does nothing for them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
HEADLESS = "None"
DEFAULT_AFFINITY_SECONDS = 10800

KubeObject = dict[str, Any]


@dataclass(slots=True)
class Endpoint:
    ip: str
    port: int
    node: str = ""
    ready: bool = True
    serving: bool = True
    terminating: bool = False
    pod: str = ""  # "namespace/name" from targetRef, when the endpoint is a pod
    address: str = field(init=False)  # "ip:port"

    def __post_init__(self) -> None:
        self.address = f"{self.ip}:{self.port}"


@dataclass(frozen=True)
class NodeContext:
    """What rendering needs to know about the node the tables are for."""

    name: str
    ips: tuple[str, ...] = ()
    cluster_cidr: str = "10.244.0.0/16"
    scheduler: str = "rr"
    masquerade_bit: int = 14

    @property
    def masquerade_mark(self) -> str:
        return hex(1 << self.masquerade_bit)


@dataclass(frozen=True)
class ServicePort:
    namespace: str
    name: str
    port_name: str
    protocol: str  # TCP, UDP or SCTP
    cluster_ip: str
    port: int
    target_port: str = ""
    node_port: int = 0
    service_type: str = "ClusterIP"
    external_ips: tuple[str, ...] = ()
    load_balancer_ips: tuple[str, ...] = ()
    affinity_seconds: int = 0  # 0: no ClientIP affinity
    external_local: bool = False
    internal_local: bool = False
    endpoints: tuple[Endpoint, ...] = field(default=())

    @cached_property
    def service_key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @cached_property
    def name_string(self) -> str:
        """kube's ServicePortName: `namespace/name:port`, without `:port` for an unnamed port."""
        return f"{self.namespace}/{self.name}:{self.port_name}" if self.port_name else f"{self.namespace}/{self.name}"

    @property
    def proto(self) -> str:
        return self.protocol.lower()

    @property
    def has_external(self) -> bool:
        return bool(self.node_port or self.external_ips or self.load_balancer_ips)

    def cluster_endpoints(self) -> tuple[Endpoint, ...]:
        return usable(self.endpoints)

    def local_endpoints(self, node: str) -> tuple[Endpoint, ...]:
        return usable(tuple(e for e in self.endpoints if e.node == node))

    def internal_endpoints(self, node: str) -> tuple[Endpoint, ...]:
        """Endpoints for traffic to the ClusterIP (internalTrafficPolicy)."""
        return self.local_endpoints(node) if self.internal_local else self.cluster_endpoints()

    def external_endpoints(self, node: str) -> tuple[Endpoint, ...]:
        """Endpoints for NodePort, external IP and load-balancer traffic (externalTrafficPolicy)."""
        return self.local_endpoints(node) if self.external_local else self.cluster_endpoints()


def usable(endpoints: tuple[Endpoint, ...]) -> tuple[Endpoint, ...]:
    ready = tuple(e for e in endpoints if e.ready)
    if ready:
        return ready
    return tuple(e for e in endpoints if e.serving and e.terminating)


def slice_endpoints(slices: Iterable[KubeObject], port_name: str, protocol: str) -> tuple[Endpoint, ...]:
    """The endpoints for one service port, deduplicated by address and sorted as kube-proxy sorts them."""
    found: dict[str, Endpoint] = {}
    for endpoint_slice in slices:
        if endpoint_slice.get("addressType", "IPv4") != "IPv4":
            continue
        number = None
        for port in endpoint_slice.get("ports") or []:
            if (port.get("name") or "") == port_name and (port.get("protocol") or "TCP") == protocol:
                number = port.get("port")
                break
        if number is None:
            continue
        port = int(number)
        for item in endpoint_slice.get("endpoints") or []:
            addresses = item.get("addresses") or []
            if not addresses:
                continue
            conditions = item.get("conditions") or {}
            ready = conditions.get("ready")
            ready = True if ready is None else bool(ready)
            serving = conditions.get("serving")
            ref = item.get("targetRef")
            pod = f"{ref.get('namespace') or ''}/{ref.get('name')}" if ref and ref.get("kind") == "Pod" else ""
            endpoint = Endpoint(
                addresses[0],
                port,
                item.get("nodeName") or "",
                ready,
                ready if serving is None else bool(serving),
                bool(conditions.get("terminating")),
                pod,
            )
            found.setdefault(endpoint.address, endpoint)
    return tuple(found[address] for address in sorted(found))


def service_ports(service: KubeObject, slices: Iterable[KubeObject]) -> list[ServicePort]:
    """Every ServicePort of a Service; empty for headless, ExternalName and IP-less Services."""
    metadata = service.get("metadata") or {}
    spec = service.get("spec") or {}
    service_type = spec.get("type") or "ClusterIP"
    cluster_ip = spec.get("clusterIP") or ""
    if service_type == "ExternalName" or not cluster_ip or cluster_ip == HEADLESS or ":" in cluster_ip:
        return []
    slices = list(slices)
    affinity = 0
    if spec.get("sessionAffinity") == "ClientIP":
        client_ip = (spec.get("sessionAffinityConfig") or {}).get("clientIP") or {}
        affinity = int(client_ip.get("timeoutSeconds") or DEFAULT_AFFINITY_SECONDS)
    ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    lb_ips = tuple(item["ip"] for item in ingress if item.get("ip") and ":" not in item["ip"])
    external_local = spec.get("externalTrafficPolicy") == "Local" and service_type in ("NodePort", "LoadBalancer")
    out = []
    for port in spec.get("ports") or []:
        protocol = port.get("protocol") or "TCP"
        port_name = port.get("name") or ""
        node_port = int(port.get("nodePort") or 0) if service_type in ("NodePort", "LoadBalancer") else 0
        out.append(
            ServicePort(
                namespace=metadata.get("namespace") or "default",
                name=metadata.get("name") or "",
                port_name=port_name,
                protocol=protocol,
                cluster_ip=cluster_ip,
                port=int(port.get("port") or 0),
                target_port=str(port.get("targetPort") if port.get("targetPort") is not None else port.get("port")),
                node_port=node_port,
                service_type=service_type,
                external_ips=tuple(ip for ip in spec.get("externalIPs") or [] if ":" not in ip),
                load_balancer_ips=lb_ips if service_type == "LoadBalancer" else (),
                affinity_seconds=affinity,
                external_local=external_local,
                internal_local=spec.get("internalTrafficPolicy") == "Local",
                endpoints=slice_endpoints(slices, port_name, protocol),
            )
        )
    return out


def node_ips(node: KubeObject) -> tuple[str, ...]:
    addresses = (node.get("status") or {}).get("addresses") or []
    internal = [a["address"] for a in addresses if a.get("type") == "InternalIP" and a.get("address")]
    external = [a["address"] for a in addresses if a.get("type") == "ExternalIP" and a.get("address")]
    return tuple(ip for ip in internal + external if ":" not in ip)


def probability(n: int) -> str:
    """The `--probability` kube-proxy writes for a choice among n remaining endpoints."""
    return f"{1.0 / n:0.10f}"
