"""Route tracing: what happens to a connection from a pod, hop by hop, using the proxy's own model.

The destination can be a pod (name or IP), a Service (name), `ClusterIP:port`, `NodeIP:NodePort` or a
load-balancer / external address. The trace shows the source pod and its node, the rules that match in
that node's tables (the renderer's own lines: iptables rules, the IPVS virtual server, nft map
entries), how an endpoint is chosen and with what share, and for each possible destination pod the
NetworkPolicy verdict on egress and on ingress, from the same engine that renders the filter rules.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from skiff.net.model import Endpoint, ServicePort, node_ips
from skiff.net.modes import renderer_for
from skiff.net.netpol import PolicyEngine, Verdict
from skiff.net.render import CLUSTER_IP, EXTERNAL_IP, LOAD_BALANCER, NODE_PORT, Entry, Explanation
from skiff.net.state import ClusterState, pod_ip


class TraceError(Exception):
    """The source or destination cannot be found."""


@dataclass
class Hop:
    title: str
    lines: list[str]


@dataclass
class Candidate:
    endpoint: Endpoint
    how: str
    share: float
    pod: str
    node: str
    verdict: Verdict


@dataclass
class TraceResult:
    mode: str
    source: str
    source_ip: str
    source_node: str
    destination: str
    protocol: str
    hops: list[Hop] = field(default_factory=list)
    method: str = ""
    candidates: list[Candidate] = field(default_factory=list)
    outcome: str = ""

    @property
    def allowed(self) -> bool:
        return any(c.verdict.allowed for c in self.candidates)


def _split(reference: str, namespace: str) -> tuple[str, str]:
    if "/" in reference:
        first, _, rest = reference.partition("/")
        return first, rest
    return namespace, reference


def find_pod(state: ClusterState, reference: str, namespace: str) -> str:
    """A pod key from `name`, `ns/name`, `pod/name` or a pod IP."""
    if _is_ip(reference):
        key = state.pods_by_ip.get(reference)
        if key is None:
            raise TraceError(f"no pod has IP {reference}")
        return key
    reference = reference.removeprefix("pod/").removeprefix("pods/")
    ns, name = _split(reference, namespace)
    key = f"{ns}/{name}"
    if key not in state.pods:
        raise TraceError(f'pod "{name}" not found in namespace "{ns}"')
    return key


def _is_ip(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


def _pick_port(ports: list[ServicePort], wanted: str | None, protocol: str) -> ServicePort:
    if not ports:
        raise TraceError("the Service has no ports the proxy handles (headless or ExternalName?)")
    if wanted is None:
        return ports[0]
    for sp in ports:
        if wanted in (sp.port_name, str(sp.port)) and (sp.protocol == protocol or wanted == sp.port_name):
            return sp
    raise TraceError(f"the Service has no port {wanted!r}")


@dataclass
class _Target:
    entry: Entry | None = None
    port: ServicePort | None = None
    rules_node: str = ""
    pod: str = ""  # a direct pod destination
    pod_port: int = 0


def resolve_destination(
    state: ClusterState, destination: str, namespace: str, port: str | None, protocol: str, source_node: str
) -> _Target:
    address, _, port_text = destination.rpartition(":") if ":" in destination else (destination, "", "")
    if _is_ip(address):
        number = int(port_text) if port_text else None
        wanted = str(number) if number is not None else port
        if address in state.pods_by_ip:
            return _pod_target(state, state.pods_by_ip[address], wanted, protocol)
        owner = state.node_of_ip(address)
        for sp in state.all_service_ports():
            if sp.protocol != protocol and wanted is None:
                continue
            matches_port = wanted is None or str(sp.port) == wanted or sp.port_name == wanted
            if owner is not None and sp.node_port and (number == sp.node_port):
                return _Target(Entry(NODE_PORT, address, sp.node_port), sp, owner)
            if sp.cluster_ip == address and matches_port:
                return _Target(Entry(CLUSTER_IP, address, sp.port), sp, source_node)
            if address in sp.load_balancer_ips and matches_port:
                return _Target(Entry(LOAD_BALANCER, address, sp.port), sp, source_node)
            if address in sp.external_ips and matches_port:
                return _Target(Entry(EXTERNAL_IP, address, sp.port), sp, source_node)
        if owner is not None:
            raise TraceError(f"{address} is node {owner}; no Service has node port {port_text or '(none given)'}")
        raise TraceError(f"nothing in the cluster answers at {destination}")
    kind, _, rest = (
        destination.partition("/")
        if destination.split("/", 1)[0] in ("svc", "service", "pod")
        else ("", "", destination)
    )
    ns, name = _split(rest, namespace)
    key = f"{ns}/{name}"
    if kind in ("", "svc", "service") and key in state.services:
        sp = _pick_port(state.service_ports(key), port, protocol)
        return _Target(Entry(CLUSTER_IP, sp.cluster_ip, sp.port), sp, source_node)
    if kind in ("", "pod") and key in state.pods:
        return _pod_target(state, key, port, protocol)
    raise TraceError(f'no Service or pod "{name}" in namespace "{ns}"')


def _pod_target(state: ClusterState, key: str, port: str | None, protocol: str) -> _Target:
    pod = state.pods[key]
    numbers = [
        (p.get("name"), int(p["containerPort"]), (p.get("protocol") or "TCP").upper())
        for c in (pod.get("spec") or {}).get("containers") or []
        for p in c.get("ports") or []
    ]
    if port is None:
        chosen = next((n for _name, n, proto in numbers if proto == protocol), None)
        if chosen is None:
            raise TraceError(f"pod {key} declares no {protocol} port: pass --port")
        return _Target(pod=key, pod_port=chosen)
    if port.isdigit():
        return _Target(pod=key, pod_port=int(port))
    named = next((n for name, n, proto in numbers if name == port and proto == protocol), None)
    if named is None:
        raise TraceError(f"pod {key} has no {protocol} port named {port!r}")
    return _Target(pod=key, pod_port=named)


def trace(
    state: ClusterState,
    source: str,
    destination: str,
    *,
    namespace: str = "default",
    mode: str = "iptables",
    port: str | None = None,
    protocol: str = "TCP",
    options: dict[str, Any] | None = None,
) -> TraceResult:
    protocol = protocol.upper()
    source_key = find_pod(state, source, namespace)
    source_pod = state.pods[source_key]
    source_ip = pod_ip(source_pod)
    if not source_ip:
        raise TraceError(f"pod {source_key} has no IP yet")
    source_node = (source_pod.get("spec") or {}).get("nodeName") or ""
    target = resolve_destination(state, destination, namespace, port, protocol, source_node)
    engine = PolicyEngine(state)
    result = TraceResult(mode, source_key, source_ip, source_node, destination, protocol)
    result.hops.append(Hop("source", [f"pod {source_key}  IP {source_ip}  node {source_node or '(unscheduled)'}"]))

    if target.entry is None or target.port is None:
        result.destination = f"pod {target.pod}"
        dst_pod = state.pods[target.pod]
        dst_ip = pod_ip(dst_pod)
        dst_node = (dst_pod.get("spec") or {}).get("nodeName") or ""
        result.hops.append(Hop("routing", [f"direct to pod IP {dst_ip}:{target.pod_port}/{protocol}: no service rule"]))
        endpoint = Endpoint(dst_ip, target.pod_port, dst_node, pod=target.pod)
        verdict = engine.evaluate(source_ip, dst_ip, target.pod_port, protocol)
        result.candidates.append(Candidate(endpoint, "the only destination", 1.0, target.pod, dst_node, verdict))
        return result

    sp, entry = target.port, target.entry
    result.destination = f"service {sp.name_string} ({entry.kind} {entry.ip}:{entry.port}/{sp.protocol})"
    if target.rules_node != source_node:
        node_ip = ", ".join(node_ips(state.nodes.get(target.rules_node) or {}))
        result.hops.append(Hop("routing", [f"to node {target.rules_node} ({node_ip}); its rules apply there"]))
    ctx = state.node_context(target.rules_node, **(options or {}))
    explanation: Explanation = renderer_for(mode).explain(sp, ctx, entry)
    rules = [line.rstrip("\n") for line in explanation.rules]
    result.hops.append(Hop(f"{mode} rules on {target.rules_node}", rules))
    result.method = explanation.method
    result.outcome = explanation.outcome
    for choice in explanation.choices:
        ep = choice.endpoint
        pod_key = ep.pod or state.pods_by_ip.get(ep.ip, "")
        verdict = engine.evaluate(source_ip, ep.ip, ep.port, protocol)
        result.candidates.append(Candidate(ep, choice.how, choice.share, pod_key, ep.node, verdict))
    result.hops.append(
        Hop(
            "dnat",
            [line.rstrip("\n") for c in explanation.choices for line in explanation.dnat.get(c.endpoint.address, [])],
        )
    )
    return result


def format_plain(result: TraceResult) -> str:
    """The trace as plain text (what `skiff trace` prints when not on a terminal)."""
    out = [f"trace {result.source} -> {result.destination}  [{result.mode} mode, {result.protocol}]"]
    for number, hop in enumerate(result.hops, 1):
        if not hop.lines:
            continue
        out.append(f"{number}. {hop.title}")
        out += [f"     {line}" for line in hop.lines]
    if result.method:
        out.append(f"endpoint choice: {result.method}")
    if result.outcome:
        out.append(f"outcome: {result.outcome}")
    for candidate in result.candidates:
        ep = candidate.endpoint
        out.append(
            f"  -> {ep.address}  pod {candidate.pod or '(not a pod)'}  node {candidate.node or '?'}  "
            f"share {candidate.share * 100:.1f}%  {chance(candidate.how, result.mode)}".rstrip()
        )
        out.append(f"     chosen by: {candidate.how}")
        verdict = candidate.verdict
        out.append(f"     egress:  {'allowed' if verdict.egress.allowed else 'DENIED'} - {verdict.egress.reason}")
        out.append(f"     ingress: {'allowed' if verdict.ingress.allowed else 'DENIED'} - {verdict.ingress.reason}")
        out.append(f"     verdict: {'allowed' if verdict.allowed else 'denied'}")
    if result.candidates:
        allowed = sum(1 for c in result.candidates if c.verdict.allowed)
        out.append(f"result: {allowed} of {len(result.candidates)} destinations allowed by NetworkPolicy")
    return "\n".join(out) + "\n"


def chance(how: str, mode: str) -> str:
    """The probability an iptables rule gives its endpoint (of what reaches the rule)."""
    marker = "--probability "
    if marker in how:
        return "probability " + how.split(marker, 1)[1].split(" ", 1)[0]
    return "unconditional (last rule)" if mode == "iptables" and how.startswith("-A ") else ""
