"""Cluster DNS answers, from what the informers hold (the Kubernetes DNS specification, as CoreDNS serves it).

- `<svc>.<ns>.svc.<domain>` A: the ClusterIP; for a headless Service the ready endpoints' addresses; for
  an ExternalName Service a CNAME to its external name.
- `<host>.<svc>.<ns>.svc.<domain>` A: one endpoint of a headless Service, by its hostname or dashed IP.
- `_<port>._<proto>.<svc>.<ns>.svc.<domain>` SRV: a named port, pointing at the Service name (or, when
  headless, at each ready endpoint), with their addresses in the additional section.
- `<a-b-c-d>.<ns>.pod.<domain>` A: a pod with that address in that namespace.

Other names in the cluster domain get NXDOMAIN; names outside it get REFUSED (no forwarding).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from dnslib import CNAME, QTYPE, RCODE, RR, SOA, SRV, A

Obj = dict[str, Any]
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
DEFAULT_TTL = 5


@dataclass
class Answer:
    rcode: int = RCODE.NOERROR
    answers: list[RR] = field(default_factory=list)
    authority: list[RR] = field(default_factory=list)
    additional: list[RR] = field(default_factory=list)


@dataclass
class ClusterView:
    """Read access to the cluster objects DNS needs (informer caches in the server, lists in tests)."""

    service: Callable[[str, str], Obj | None]
    slices_of: Callable[[str, str], list[Obj]]
    pods_with_ip: Callable[[str], list[Obj]]
    namespace_has_services: Callable[[str], bool]


def dashed(ip: str) -> str:
    return ip.replace(".", "-").replace(":", "-")


def _is_ipv4(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip).version == 4
    except ValueError:
        return False


@dataclass
class Endpoint:
    ip: str
    hostname: str
    ports: dict[tuple[str, str], int]  # (name, protocol) → port


def ready_endpoints(slices: Iterable[Obj]) -> list[Endpoint]:
    """Ready IPv4 endpoints of a Service's slices, each address once, in a stable order."""
    found: dict[str, Endpoint] = {}
    for slice_ in slices:
        if slice_.get("addressType", "IPv4") != "IPv4":
            continue
        ports = {
            (p.get("name") or "", p.get("protocol", "TCP")): int(p["port"])
            for p in slice_.get("ports") or []
            if p.get("port") is not None
        }
        for endpoint in slice_.get("endpoints") or []:
            if (endpoint.get("conditions") or {}).get("ready") is False:
                continue
            for ip in endpoint.get("addresses") or []:
                if ip not in found:
                    found[ip] = Endpoint(ip, endpoint.get("hostname") or "", dict(ports))
    return sorted(found.values(), key=lambda e: ipaddress.ip_address(e.ip))


class Resolver:
    def __init__(self, view: ClusterView, domain: str = "cluster.local", ttl: int = DEFAULT_TTL) -> None:
        self.view = view
        self.domain = domain.strip(".").lower()
        self.ttl = ttl
        self.serial = 1

    # -- helpers -----------------------------------------------------------------------------------
    def _fqdn(self, *labels: str) -> str:
        return ".".join([*labels, self.domain]) + "."

    def _soa(self) -> RR:
        soa = SOA(
            self._fqdn("ns", "dns"),
            self._fqdn("hostmaster"),
            (self.serial, 7200, 1800, 86400, self.ttl),
        )
        return RR(self.domain + ".", QTYPE.SOA, ttl=self.ttl, rdata=soa)

    def _a(self, name: str, ip: str) -> RR:
        return RR(name, QTYPE.A, ttl=self.ttl, rdata=A(ip))

    def _nxdomain(self) -> Answer:
        return Answer(RCODE.NXDOMAIN, authority=[self._soa()])

    def _nodata(self) -> Answer:
        return Answer(RCODE.NOERROR, authority=[self._soa()])

    def _addresses(self, name: str, qtype: int, ips: list[str]) -> Answer:
        """A records for `ips` when asked for A (or ANY); an empty NOERROR for other types."""
        if qtype not in (QTYPE.A, QTYPE.ANY):
            return self._nodata()
        return Answer(answers=[self._a(name, ip) for ip in ips])

    # -- the lookup --------------------------------------------------------------------------------
    def resolve(self, qname: str, qtype: int) -> Answer:
        name = qname.lower().rstrip(".")
        if name != self.domain and not name.endswith("." + self.domain):
            return Answer(RCODE.REFUSED)
        labels = name[: -len(self.domain)].rstrip(".").split(".") if name != self.domain else []
        if not labels:
            if qtype == QTYPE.SOA:
                return Answer(answers=[self._soa()])
            return self._nodata()
        if labels[-1] == "svc":
            return self._service_name(labels[:-1], qname, qtype)
        if labels[-1] == "pod":
            return self._pod_name(labels[:-1], qname, qtype)
        return self._nxdomain()

    def _service_name(self, labels: list[str], qname: str, qtype: int) -> Answer:
        if not labels:
            return self._nodata()
        if len(labels) == 1:
            return self._nodata() if self.view.namespace_has_services(labels[0]) else self._nxdomain()
        namespace, service_name = labels[-1], labels[-2]
        service = self.view.service(namespace, service_name)
        if service is None:
            return self._nxdomain()
        spec = service.get("spec") or {}
        rest = labels[:-2]
        if not rest:
            return self._service(service, namespace, service_name, qname, qtype)
        if len(rest) == 2 and rest[0].startswith("_") and rest[1].startswith("_"):
            return self._srv(service, namespace, service_name, rest[0][1:], rest[1][1:], qname, qtype)
        if len(rest) == 1 and spec.get("clusterIP") == "None":
            for endpoint in ready_endpoints(self.view.slices_of(namespace, service_name)):
                if rest[0] in (endpoint.hostname.lower(), dashed(endpoint.ip)):
                    return self._addresses(qname, qtype, [endpoint.ip])
        return self._nxdomain()

    def _service(self, service: Obj, namespace: str, name: str, qname: str, qtype: int) -> Answer:
        spec = service.get("spec") or {}
        if spec.get("type") == "ExternalName":
            target = str(spec.get("externalName") or "").rstrip(".") + "."
            return Answer(answers=[RR(qname, QTYPE.CNAME, ttl=self.ttl, rdata=CNAME(target))])
        if spec.get("clusterIP") == "None":
            endpoints = ready_endpoints(self.view.slices_of(namespace, name))
            if not endpoints:
                return self._nxdomain()
            return self._addresses(qname, qtype, [e.ip for e in endpoints])
        ips = [ip for ip in spec.get("clusterIPs") or [spec.get("clusterIP")] if ip and _is_ipv4(ip)]
        return self._addresses(qname, qtype, ips)

    def _srv(
        self, service: Obj, namespace: str, name: str, port_name: str, proto: str, qname: str, qtype: int
    ) -> Answer:
        spec = service.get("spec") or {}
        protocol = proto.upper()
        port = next(
            (
                p
                for p in spec.get("ports") or []
                if (p.get("name") or "").lower() == port_name and p.get("protocol", "TCP") == protocol
            ),
            None,
        )
        if port is None or spec.get("type") == "ExternalName":
            return self._nxdomain()
        if qtype not in (QTYPE.SRV, QTYPE.ANY):
            return self._nodata()
        service_fqdn = self._fqdn(name, namespace, "svc")
        if spec.get("clusterIP") != "None":
            ips = [ip for ip in spec.get("clusterIPs") or [spec.get("clusterIP")] if ip and _is_ipv4(ip)]
            answer = Answer(answers=[RR(qname, QTYPE.SRV, ttl=self.ttl, rdata=SRV(0, 100, port["port"], service_fqdn))])
            answer.additional = [self._a(service_fqdn, ip) for ip in ips]
            return answer
        endpoints = [
            e for e in ready_endpoints(self.view.slices_of(namespace, name)) if (port.get("name"), protocol) in e.ports
        ]
        if not endpoints:
            return self._nxdomain()
        answer = Answer()
        weight = max(1, 100 // len(endpoints))
        for endpoint in endpoints:
            target = self._fqdn(endpoint.hostname or dashed(endpoint.ip), name, namespace, "svc")
            number = endpoint.ports[(port.get("name"), protocol)]
            answer.answers.append(RR(qname, QTYPE.SRV, ttl=self.ttl, rdata=SRV(0, weight, number, target)))
            answer.additional.append(self._a(target, endpoint.ip))
        return answer

    def _pod_name(self, labels: list[str], qname: str, qtype: int) -> Answer:
        if len(labels) != 2:
            return self._nodata() if len(labels) <= 1 else self._nxdomain()
        dashed_ip, namespace = labels
        ip = dashed_ip.replace("-", ".")
        if not _is_ipv4(ip):
            return self._nxdomain()
        pods = [p for p in self.view.pods_with_ip(ip) if (p.get("metadata") or {}).get("namespace") == namespace]
        if not pods:
            return self._nxdomain()
        return self._addresses(qname, qtype, [ip])
