"""The NetworkPolicy engine: which flows the policies of a cluster allow, and why.

One engine serves the proxy's filter rules, `skiff trace` and `skiff netpol check`: policies are compiled,
per pod and direction, into `Allow` entries (a peer CIDR with its exceptions, and a protocol/port range),
and both rendering and evaluation work from those entries.

Semantics follow Kubernetes:

- `policyTypes` defaults to `Ingress`, plus `Egress` when the policy has egress rules.
- A pod selected by any policy of a direction is isolated in that direction; an isolated pod accepts
  only what some rule of some selecting policy allows. Policies are additive, never subtractive.
- A flow between pods needs the source's egress and the destination's ingress to allow it.
- A peer with `podSelector` alone selects pods in the policy's namespace, `namespaceSelector` alone every
  pod of the matching namespaces, both together (one peer) the selected pods of the selected namespaces.
  `ipBlock` matches addresses in its CIDR and outside its exceptions. A rule without peers matches
  every peer; a rule without ports matches every port and protocol.
- A port is a number (with `endPort`, a range) or a name, resolved against the container ports of the pod
  receiving the traffic; a port's protocol defaults to TCP.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from skiff.api.selectors import LabelSelector, selector_everything_if_none, selector_from_object
from skiff.net.state import ClusterState, KubeObject, key_of, pod_ip

INGRESS, EGRESS = "Ingress", "Egress"
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
ANY_CIDR = "0.0.0.0/0"


@dataclass(frozen=True, slots=True)
class PortMatch:
    protocol: str | None = None  # None: every protocol
    first: int | None = None  # None: every port
    last: int | None = None

    def matches(self, protocol: str, port: int) -> bool:
        if self.protocol is not None and self.protocol != protocol.upper():
            return False
        if self.first is None:
            return True
        return self.first <= port <= (self.last if self.last is not None else self.first)

    def __str__(self) -> str:
        if self.protocol is None:
            return "all ports"
        if self.first is None:
            return f"{self.protocol}/all ports"
        if self.last is not None and self.last != self.first:
            return f"{self.protocol}/{self.first}-{self.last}"
        return f"{self.protocol}/{self.first}"


@dataclass(frozen=True)
class Allow:
    """One thing a policy rule allows for a pod and direction: a peer CIDR (minus exceptions) and ports."""

    policy: str
    direction: str
    rule: int
    cidr: str
    excepts: tuple[str, ...]
    ports: PortMatch
    peer: str

    @cached_property
    def _network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.cidr, strict=False)

    @cached_property
    def _excepts(self) -> tuple[ipaddress.IPv4Network, ...]:
        return tuple(ipaddress.IPv4Network(e, strict=False) for e in self.excepts)

    def matches(self, ip: str, protocol: str, port: int) -> bool:
        if not self.ports.matches(protocol, port):
            return False
        address = ipaddress.IPv4Address(ip)
        return address in self._network and not any(address in e for e in self._excepts)

    def describe(self) -> str:
        where = "from" if self.direction == INGRESS else "to"
        return f"{self.policy} {self.direction.lower()} rule {self.rule}: {where} {self.peer}, {self.ports}"

    def cidrs(self) -> list[str]:
        """The CIDR with its exceptions cut out, as plain CIDRs (for rule languages without negation)."""
        return cidrs_without(self.cidr, self.excepts)


def cidrs_without(cidr: str, excepts: tuple[str, ...]) -> list[str]:
    remaining = [ipaddress.IPv4Network(cidr, strict=False)]
    for text in excepts:
        cut = ipaddress.IPv4Network(text, strict=False)
        next_remaining: list[ipaddress.IPv4Network] = []
        for network in remaining:
            if cut.subnet_of(network):
                next_remaining.extend(network.address_exclude(cut))
            elif not network.subnet_of(cut):
                next_remaining.append(network)
        remaining = next_remaining
    return [str(n) for n in sorted(remaining)]


@dataclass(frozen=True)
class PodRules:
    """A pod's compiled policy for one direction."""

    pod: str
    ip: str
    direction: str
    isolated_by: tuple[str, ...]
    allows: tuple[Allow, ...]

    @property
    def isolated(self) -> bool:
        return bool(self.isolated_by)


@dataclass(frozen=True)
class DirectionVerdict:
    direction: str
    pod: str | None  # the pod whose policies decide; None when that side is not a pod
    isolated: bool
    allowed: bool
    policies: tuple[str, ...]  # the allowing policies, or the isolating ones when denied
    matched: tuple[Allow, ...] = ()
    reason: str = ""


@dataclass(frozen=True)
class Verdict:
    source: str
    destination: str
    protocol: str
    port: int
    egress: DirectionVerdict
    ingress: DirectionVerdict

    @property
    def allowed(self) -> bool:
        return self.egress.allowed and self.ingress.allowed

    @property
    def deciding(self) -> tuple[str, ...]:
        """The policies that decided: those denying when denied, else those allowing."""
        if not self.allowed:
            denying = [d for d in (self.egress, self.ingress) if not d.allowed]
            return tuple(p for d in denying for p in d.policies)
        return tuple(dict.fromkeys(self.egress.policies + self.ingress.policies))


@dataclass
class _PortSpec:
    protocol: str
    value: int | str | None
    end: int | None


@dataclass
class PolicyEngine:
    state: ClusterState
    _selectors: dict[str, Any] = field(default_factory=dict)

    # -- policy basics ------------------------------------------------------------------------------

    @staticmethod
    def policy_types(policy: KubeObject) -> tuple[str, ...]:
        spec = policy.get("spec") or {}
        types = spec.get("policyTypes")
        if types:
            return tuple(types)
        return (INGRESS, EGRESS) if spec.get("egress") else (INGRESS,)

    def _selector(self, raw: Any, absent_means_everything: bool = True) -> LabelSelector:
        cache_key = repr(raw)
        found = self._selectors.get(cache_key)
        if found is None:
            found = selector_everything_if_none(raw) if absent_means_everything else selector_from_object(raw)
            self._selectors[cache_key] = found
        return found

    def namespace_labels(self, name: str) -> dict[str, str]:
        namespace = self.state.namespaces.get(name)
        labels = dict(((namespace or {}).get("metadata") or {}).get("labels") or {})
        labels.setdefault(NAMESPACE_NAME_LABEL, name)
        return labels

    @staticmethod
    def _eligible(pod: KubeObject) -> bool:
        return bool(pod_ip(pod)) and not (pod.get("spec") or {}).get("hostNetwork")

    def selects(self, policy: KubeObject, pod: KubeObject) -> bool:
        policy_ns = (policy.get("metadata") or {}).get("namespace") or "default"
        pod_meta = pod.get("metadata") or {}
        if (pod_meta.get("namespace") or "default") != policy_ns:
            return False
        selector = self._selector((policy.get("spec") or {}).get("podSelector") or {})
        return selector.matches(pod_meta.get("labels") or {})

    def isolating(self, pod: KubeObject, direction: str) -> list[str]:
        namespace = (pod.get("metadata") or {}).get("namespace") or "default"
        return [
            key
            for key, policy in sorted(self.state.policies.items())
            if (policy.get("metadata") or {}).get("namespace") == namespace
            and direction in self.policy_types(policy)
            and self.selects(policy, pod)
        ]

    # -- compilation --------------------------------------------------------------------------------

    def rules_for(self, pod_key: str, direction: str) -> PodRules:
        pod = self.state.pods[pod_key]
        isolated_by = tuple(self.isolating(pod, direction))
        allows: list[Allow] = []
        field_name = "ingress" if direction == INGRESS else "egress"
        peers_name = "from" if direction == INGRESS else "to"
        for policy_key in isolated_by:
            policy = self.state.policies[policy_key]
            for index, rule in enumerate((policy.get("spec") or {}).get(field_name) or []):
                ports = [_port_spec(p) for p in rule.get("ports") or []]
                peers = rule.get(peers_name) or [None]
                for peer in peers:
                    allows.extend(self._peer_allows(policy, policy_key, direction, index, peer, ports, pod))
        return PodRules(pod_key, pod_ip(pod), direction, isolated_by, tuple(allows))

    def _peer_pods(self, policy: KubeObject, peer: dict[str, Any]) -> list[tuple[str, KubeObject]]:
        policy_ns = (policy.get("metadata") or {}).get("namespace") or "default"
        pod_selector = self._selector(peer.get("podSelector"))
        if "namespaceSelector" in peer and peer["namespaceSelector"] is not None:
            ns_selector = self._selector(peer["namespaceSelector"])
            namespaces = None
        else:
            ns_selector, namespaces = None, {policy_ns}
        out = []
        for key, pod in sorted(self.state.pods.items()):
            if not self._eligible(pod):
                continue
            meta = pod.get("metadata") or {}
            namespace = meta.get("namespace") or "default"
            if namespaces is not None and namespace not in namespaces:
                continue
            if ns_selector is not None and not ns_selector.matches(self.namespace_labels(namespace)):
                continue
            if pod_selector.matches(meta.get("labels") or {}):
                out.append((key, pod))
        return out

    def _pods_in(self, cidr: str, excepts: tuple[str, ...]) -> list[tuple[str, KubeObject]]:
        probe = Allow("", "", 0, cidr, excepts, PortMatch(), "")
        return [
            (key, pod)
            for key, pod in sorted(self.state.pods.items())
            if self._eligible(pod) and probe.matches(pod_ip(pod), "TCP", 0)
        ]

    def _peer_allows(
        self,
        policy: KubeObject,
        policy_key: str,
        direction: str,
        index: int,
        peer: dict[str, Any] | None,
        ports: list[_PortSpec],
        target: KubeObject,
    ) -> list[Allow]:
        def make(cidr: str, excepts: tuple[str, ...], match: PortMatch, what: str) -> Allow:
            return Allow(policy_key, direction, index, cidr, excepts, match, what)

        if peer is None or peer.get("ipBlock"):
            block = (peer or {}).get("ipBlock") or {}
            cidr, excepts = block.get("cidr") or ANY_CIDR, tuple(block.get("except") or [])
            what = (
                "any peer" if peer is None else f"ipBlock {cidr}" + (f" except {', '.join(excepts)}" if excepts else "")
            )
            if direction == INGRESS:
                return [make(cidr, excepts, m, what) for m in _resolve(ports, target)]
            # Egress: a named port means the port of that name on whichever pod receives the traffic.
            out = [make(cidr, excepts, m, what) for m in _resolve(ports, None)]
            named = [p for p in ports if isinstance(p.value, str)]
            if named:
                for key, pod in self._pods_in(cidr, excepts):
                    out.extend(make(f"{pod_ip(pod)}/32", (), m, f"pod {key} ({what})") for m in _resolve(named, pod))
            return out
        out = []
        for key, pod in self._peer_pods(policy, peer):
            resolve_against = target if direction == INGRESS else pod
            out.extend(make(f"{pod_ip(pod)}/32", (), m, f"pod {key}") for m in _resolve(ports, resolve_against))
        return out

    # -- evaluation ---------------------------------------------------------------------------------

    def _direction(
        self, direction: str, pod_key: str | None, peer_ip: str, protocol: str, port: int
    ) -> DirectionVerdict:
        word = direction.lower()
        if pod_key is None:
            side = "source" if direction == EGRESS else "destination"
            return DirectionVerdict(direction, None, False, True, (), (), f"the {side} is not a pod: no {word} policy")
        pod = self.state.pods[pod_key]
        if not self._eligible(pod):
            return DirectionVerdict(direction, pod_key, False, True, (), (), f"{pod_key} has no pod network")
        rules = self.rules_for(pod_key, direction)
        if not rules.isolated:
            reason = f"{pod_key} is not isolated for {word}: no NetworkPolicy selects it for {direction}"
            return DirectionVerdict(direction, pod_key, False, True, (), (), reason)
        matched = tuple(a for a in rules.allows if a.matches(peer_ip, protocol, port))
        if matched:
            policies = tuple(dict.fromkeys(a.policy for a in matched))
            reason = "allowed by " + "; ".join(a.describe() for a in matched)
            return DirectionVerdict(direction, pod_key, True, True, policies, matched, reason)
        isolating = ", ".join(rules.isolated_by)
        reason = (
            f"denied: {pod_key} is isolated for {word} by {isolating} and no rule allows "
            f"{peer_ip} {protocol.upper()}/{port}"
        )
        return DirectionVerdict(direction, pod_key, True, False, rules.isolated_by, (), reason)

    def evaluate(self, source_ip: str, destination_ip: str, port: int, protocol: str = "TCP") -> Verdict:
        """Whether traffic from `source_ip` to `destination_ip`:`port` is allowed (after any DNAT)."""
        protocol = protocol.upper()
        source_pod = self.state.pods_by_ip.get(source_ip)
        destination_pod = self.state.pods_by_ip.get(destination_ip)
        egress = self._direction(EGRESS, source_pod, destination_ip, protocol, port)
        ingress = self._direction(INGRESS, destination_pod, source_ip, protocol, port)
        return Verdict(source_ip, destination_ip, protocol, port, egress, ingress)

    def node_rules(self, node: str) -> list[PodRules]:
        """Compiled rules of every isolated pod on `node` (a node enforces its own pods' policies)."""
        out = []
        for key, pod in sorted(self.state.pods.items()):
            if (pod.get("spec") or {}).get("nodeName") != node or not self._eligible(pod):
                continue
            for direction in (EGRESS, INGRESS):
                rules = self.rules_for(key, direction)
                if rules.isolated:
                    out.append(rules)
        return out


def _port_spec(port: dict[str, Any]) -> _PortSpec:
    value = port.get("port")
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    end = port.get("endPort")
    return _PortSpec((port.get("protocol") or "TCP").upper(), value, int(end) if end else None)


def _resolve(ports: list[_PortSpec], pod: KubeObject | None) -> list[PortMatch]:
    """PortMatches for a rule's ports; named ports resolve against `pod`'s container ports (or not at all)."""
    if not ports:
        return [PortMatch()]
    out = []
    for spec in ports:
        if spec.value is None:
            out.append(PortMatch(spec.protocol))
        elif isinstance(spec.value, int):
            out.append(PortMatch(spec.protocol, spec.value, spec.end or spec.value))
        elif pod is not None:
            out.extend(PortMatch(spec.protocol, n, n) for n in named_ports(pod, spec.value, spec.protocol))
    return out


def named_ports(pod: KubeObject, name: str, protocol: str) -> list[int]:
    found = []
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == name and (port.get("protocol") or "TCP").upper() == protocol:
                found.append(int(port["containerPort"]))
    return found


__all__ = ["EGRESS", "INGRESS", "Allow", "PodRules", "PolicyEngine", "PortMatch", "Verdict", "key_of"]
