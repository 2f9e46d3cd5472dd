# ruff: noqa: E501
"""NetworkPolicy semantics, table-driven: each case is a set of policies and one connection with the
verdict Kubernetes gives it (and, where it matters, the policies that decided)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from skiff.net.iptables import IptablesRenderer
from skiff.net.model import NodeContext
from skiff.net.netpol import PolicyEngine
from skiff.net.nftables import NftablesRenderer
from skiff.net.state import ClusterState


def pod(
    ns: str, name: str, ip: str, labels: dict[str, str], ports: list[tuple[str, int, str]] = (), **extra: Any
) -> dict:
    container_ports = [{"name": n, "containerPort": p, "protocol": proto} for n, p, proto in ports]
    status = {"phase": extra.pop("phase", "Running"), "podIP": ip}
    spec = {"nodeName": extra.pop("node", "n1"), "containers": [{"name": "c", "image": "x", "ports": container_ports}]}
    return {
        "kind": "Pod",
        "metadata": {"namespace": ns, "name": name, "labels": labels},
        "spec": spec,
        "status": status,
    }


def namespace(name: str, labels: dict[str, str]) -> dict:
    return {"kind": "Namespace", "metadata": {"name": name, "labels": labels}}


BASE = [
    namespace("default", {"kubernetes.io/metadata.name": "default"}),
    namespace("prod", {"kubernetes.io/metadata.name": "prod", "team": "prod"}),
    namespace("dev", {"team": "dev"}),  # no metadata.name label stored: the engine knows it anyway
    pod("default", "a", "10.244.1.1", {"app": "a", "role": "frontend"},
        [("http", 8080, "TCP"), ("dns", 53, "UDP"), ("sig", 9999, "SCTP")]),
    pod("default", "b", "10.244.1.2", {"app": "b"}, [("http", 9090, "TCP"), ("metrics", 9100, "TCP")]),
    pod("default", "c", "10.244.2.3", {"app": "c"}, node="n2"),
    pod("default", "old", "10.244.1.9", {"app": "a"}, phase="Succeeded"),
    pod("prod", "db", "10.244.2.4", {"app": "db"}, [("pg", 5432, "TCP")], node="n2"),
    pod("prod", "web", "10.244.2.5", {"app": "web"}, [("http", 80, "TCP")], node="n2"),
    pod("prod", "a2", "10.244.2.6", {"app": "a"}, node="n2"),
    pod("dev", "tool", "10.244.3.6", {"app": "tool"}, node="n2"),
]  # fmt: skip

IP = {"a": "10.244.1.1", "b": "10.244.1.2", "c": "10.244.2.3", "db": "10.244.2.4", "web": "10.244.2.5",
      "a2": "10.244.2.6", "tool": "10.244.3.6", "old": "10.244.1.9"}  # fmt: skip


def np(name: str, spec: dict[str, Any], ns: str = "default") -> dict:
    return {"kind": "NetworkPolicy", "metadata": {"namespace": ns, "name": name}, "spec": spec}


def sel(**labels: str) -> dict:
    return {"matchLabels": labels}


B = sel(app="b")
A = sel(app="a")
DENY_B = np("deny-b", {"podSelector": B, "policyTypes": ["Ingress"]})


@dataclass
class Case:
    id: str
    policies: list[dict]
    src: str
    dst: str
    port: int
    allowed: bool
    protocol: str = "TCP"
    deciding: tuple[str, ...] | None = None
    extra: list[dict] = field(default_factory=list)


def ingress_b(*rules: dict, name: str = "allow-b") -> dict:
    return np(name, {"podSelector": B, "ingress": list(rules)})


def egress_a(*rules: dict, name: str = "egress-a") -> dict:
    return np(name, {"podSelector": A, "policyTypes": ["Egress"], "egress": list(rules)})


CASES = [
    Case("no-policies-allow-everything", [], "a", "b", 9090, True, deciding=()),
    Case("ingress-deny-all", [DENY_B], "a", "b", 9090, False, deciding=("default/deny-b",)),
    Case("policy-types-default-to-ingress", [np("d", {"podSelector": B})], "a", "b", 9090, False),
    Case("egress-rules-add-egress-and-keep-ingress", [np("e", {"podSelector": B, "egress": [{}]})], "a", "b", 9090, False),
    Case("egress-only-policy-leaves-ingress-open", [np("e", {"podSelector": B, "policyTypes": ["Egress"]})], "a", "b", 9090, True),
    Case("ingress-allow-all-rule", [ingress_b({})], "c", "b", 9090, True, deciding=("default/allow-b",)),
    Case("empty-from-list-allows-all-sources", [ingress_b({"from": []})], "tool", "b", 9090, True),
    Case("pod-selector-peer-matches", [ingress_b({"from": [{"podSelector": A}]})], "a", "b", 9090, True),
    Case("pod-selector-peer-other-pod", [ingress_b({"from": [{"podSelector": A}]})], "c", "b", 9090, False),
    Case("pod-selector-peer-is-namespace-local", [ingress_b({"from": [{"podSelector": A}]})], "a2", "b", 9090, False),
    Case("namespace-selector-peer", [ingress_b({"from": [{"namespaceSelector": sel(team="prod")}]})], "db", "b", 9090, True),
    Case("namespace-selector-other-namespace", [ingress_b({"from": [{"namespaceSelector": sel(team="prod")}]})], "tool", "b", 9090, False),
    Case("empty-namespace-selector-means-all", [ingress_b({"from": [{"namespaceSelector": {}}]})], "tool", "b", 9090, True),
    Case("namespace-name-label-is-implicit", [ingress_b({"from": [{"namespaceSelector": sel(**{"kubernetes.io/metadata.name": "dev"})}]})], "tool", "b", 9090, True),
    Case("namespace-and-pod-selector-in-one-peer-and", [ingress_b({"from": [{"namespaceSelector": sel(team="prod"), "podSelector": sel(app="db")}]})], "db", "b", 9090, True),
    Case("namespace-and-pod-selector-in-one-peer-not-or", [ingress_b({"from": [{"namespaceSelector": sel(team="prod"), "podSelector": sel(app="db")}]})], "web", "b", 9090, False),
    Case("two-peers-are-or-namespace", [ingress_b({"from": [{"namespaceSelector": sel(team="prod")}, {"podSelector": A}]})], "web", "b", 9090, True),
    Case("two-peers-are-or-pod", [ingress_b({"from": [{"namespaceSelector": sel(team="prod")}, {"podSelector": A}]})], "a", "b", 9090, True),
    Case("ip-block-inside", [ingress_b({"from": [{"ipBlock": {"cidr": "192.168.0.0/16"}}]})], "192.168.5.5", "b", 9090, True),
    Case("ip-block-outside", [ingress_b({"from": [{"ipBlock": {"cidr": "192.168.0.0/16"}}]})], "8.8.8.8", "b", 9090, False),
    Case("ip-block-except", [ingress_b({"from": [{"ipBlock": {"cidr": "192.168.0.0/16", "except": ["192.168.5.0/24"]}}]})], "192.168.5.5", "b", 9090, False),
    Case("ip-block-outside-except", [ingress_b({"from": [{"ipBlock": {"cidr": "192.168.0.0/16", "except": ["192.168.5.0/24"]}}]})], "192.168.6.1", "b", 9090, True),
    Case("ip-block-covers-pod-ips", [ingress_b({"from": [{"ipBlock": {"cidr": "10.244.1.0/24"}}]})], "a", "b", 9090, True),
    Case("numeric-port-match", [ingress_b({"ports": [{"port": 9090}]})], "a", "b", 9090, True),
    Case("numeric-port-other-port", [ingress_b({"ports": [{"port": 9090}]})], "a", "b", 9100, False),
    Case("protocol-defaults-to-tcp", [ingress_b({"ports": [{"port": 9090}]})], "a", "b", 9090, False, protocol="UDP"),
    Case("udp-port", [np("dns", {"podSelector": A, "ingress": [{"ports": [{"protocol": "UDP", "port": 53}]}]})], "b", "a", 53, True, protocol="UDP"),
    Case("udp-port-not-tcp", [np("dns", {"podSelector": A, "ingress": [{"ports": [{"protocol": "UDP", "port": 53}]}]})], "b", "a", 53, False),
    Case("sctp-port", [np("sig", {"podSelector": A, "ingress": [{"ports": [{"protocol": "SCTP", "port": 9999}]}]})], "b", "a", 9999, True, protocol="SCTP"),
    Case("sctp-port-not-tcp", [np("sig", {"podSelector": A, "ingress": [{"ports": [{"protocol": "SCTP", "port": 9999}]}]})], "b", "a", 9999, False),
    Case("protocol-without-port-means-all-ports", [ingress_b({"ports": [{"protocol": "UDP"}]})], "a", "b", 4444, True, protocol="UDP"),
    Case("protocol-without-port-other-protocol", [ingress_b({"ports": [{"protocol": "UDP"}]})], "a", "b", 4444, False),
    Case("named-port-resolves-on-target", [ingress_b({"ports": [{"port": "http"}]})], "a", "b", 9090, True),
    Case("named-port-not-other-number", [ingress_b({"ports": [{"port": "http"}]})], "a", "b", 8080, False),
    Case("named-port-missing-on-target", [ingress_b({"ports": [{"port": "pg"}]})], "a", "b", 5432, False),
    Case("named-port-protocol-must-match", [np("dns", {"podSelector": A, "ingress": [{"ports": [{"port": "dns", "protocol": "TCP"}]}]})], "b", "a", 53, False),
    Case("named-port-udp", [np("dns", {"podSelector": A, "ingress": [{"ports": [{"port": "dns", "protocol": "UDP"}]}]})], "b", "a", 53, True, protocol="UDP"),
    Case("end-port-upper-bound", [ingress_b({"ports": [{"port": 9000, "endPort": 9100}]})], "a", "b", 9100, True),
    Case("end-port-above", [ingress_b({"ports": [{"port": 9000, "endPort": 9100}]})], "a", "b", 9101, False),
    Case("end-port-below", [ingress_b({"ports": [{"port": 9000, "endPort": 9100}]})], "a", "b", 8999, False),
    Case("rule-pairs-peers-with-its-own-ports", [ingress_b({"from": [{"podSelector": A}], "ports": [{"port": 9090}]}, {"from": [{"podSelector": sel(app="c")}], "ports": [{"port": 9100}]})], "a", "b", 9100, False),
    Case("rule-pairs-second-rule", [ingress_b({"from": [{"podSelector": A}], "ports": [{"port": 9090}]}, {"from": [{"podSelector": sel(app="c")}], "ports": [{"port": 9100}]})], "c", "b", 9100, True),
    Case("policies-are-additive", [ingress_b({"from": [{"podSelector": A}]}, name="p1"), ingress_b({"from": [{"podSelector": sel(app="c")}]}, name="p2")], "c", "b", 9090, True, deciding=("default/p2",)),
    Case("additive-still-isolated", [ingress_b({"from": [{"podSelector": A}]}, name="p1"), ingress_b({"from": [{"podSelector": sel(app="c")}]}, name="p2")], "tool", "b", 9090, False, deciding=("default/p1", "default/p2")),
    Case("other-namespace-policy-does-not-apply", [np("deny", {"podSelector": {}}, ns="prod")], "a", "b", 9090, True),
    Case("policy-selects-only-matching-pods", [np("deny-db", {"podSelector": sel(app="db")}, ns="prod")], "a", "web", 80, True),
    Case("match-expressions-in-target", [np("deny-bc", {"podSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["b", "c"]}]}})], "a", "c", 80, False),
    Case("match-expressions-in-not-selected", [np("deny-bc", {"podSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["b", "c"]}]}})], "c", "a", 8080, True),
    Case("match-expressions-exists-peer", [ingress_b({"from": [{"podSelector": {"matchExpressions": [{"key": "role", "operator": "Exists"}]}}]})], "a", "b", 9090, True),
    Case("match-expressions-exists-peer-missing", [ingress_b({"from": [{"podSelector": {"matchExpressions": [{"key": "role", "operator": "Exists"}]}}]})], "c", "b", 9090, False),
    Case("external-source-to-isolated-pod", [ingress_b({"from": [{"podSelector": A}]})], "192.168.5.5", "b", 9090, False),
    Case("finished-pod-is-no-peer", [ingress_b({"from": [{"podSelector": A}]})], "old", "b", 9090, False),
    Case("egress-deny-all", [np("no-egress", {"podSelector": A, "policyTypes": ["Egress"]})], "a", "b", 9090, False, deciding=("default/no-egress",)),
    Case("egress-to-pod", [egress_a({"to": [{"podSelector": B}]})], "a", "b", 9090, True),
    Case("egress-to-other-pod", [egress_a({"to": [{"podSelector": B}]})], "a", "c", 80, False),
    Case("egress-and-ingress-must-both-allow", [egress_a({"to": [{"podSelector": B}]}), DENY_B], "a", "b", 9090, False, deciding=("default/deny-b",)),
    Case("egress-and-ingress-both-allow", [egress_a({"to": [{"podSelector": B}]}), ingress_b({"from": [{"podSelector": A}]})], "a", "b", 9090, True, deciding=("default/egress-a", "default/allow-b")),
    Case("egress-ip-block-except-internet", [egress_a({"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}}]})], "a", "8.8.8.8", 443, True),
    Case("egress-ip-block-except-private", [egress_a({"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}}]})], "a", "10.10.0.5", 443, False),
    Case("egress-ip-block-except-pods", [egress_a({"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}}]})], "a", "b", 9090, False),
    Case("egress-named-port-on-destination", [egress_a({"to": [{"podSelector": B}], "ports": [{"port": "metrics"}]})], "a", "b", 9100, True),
    Case("egress-named-port-other-port", [egress_a({"to": [{"podSelector": B}], "ports": [{"port": "metrics"}]})], "a", "b", 9090, False),
    Case("egress-named-port-any-peer", [egress_a({"ports": [{"port": "http"}]})], "a", "web", 80, True),
    Case("egress-named-port-any-peer-per-pod", [egress_a({"ports": [{"port": "http"}]})], "a", "b", 80, False),
    Case("egress-named-port-ip-block", [egress_a({"to": [{"ipBlock": {"cidr": "10.244.0.0/16"}}], "ports": [{"port": "http"}]})], "a", "b", 9090, True),
    Case("egress-to-external-without-policy", [], "a", "8.8.8.8", 443, True),
    Case("ingress-and-egress-types-empty-egress", [np("both", {"podSelector": A, "policyTypes": ["Ingress", "Egress"], "ingress": [{}]})], "a", "b", 9090, False),
    Case("ingress-and-egress-types-ingress-open", [np("both", {"podSelector": A, "policyTypes": ["Ingress", "Egress"], "ingress": [{}]})], "b", "a", 8080, True),
]  # fmt: skip


def state_with(policies: list[dict]) -> ClusterState:
    state = ClusterState()
    for obj in BASE + policies:
        state.upsert(obj["kind"], obj)
    return state


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_network_policy_verdict(case: Case) -> None:
    engine = PolicyEngine(state_with(case.policies))
    verdict = engine.evaluate(IP.get(case.src, case.src), IP.get(case.dst, case.dst), case.port, case.protocol)
    assert verdict.allowed is case.allowed, (verdict.egress.reason, verdict.ingress.reason)
    if case.deciding is not None:
        assert verdict.deciding == case.deciding


def test_there_are_at_least_forty_cases() -> None:
    assert len(CASES) >= 40


def test_denied_reason_names_the_isolating_policy_and_the_flow() -> None:
    verdict = PolicyEngine(state_with([DENY_B])).evaluate(IP["a"], IP["b"], 9090)
    assert not verdict.ingress.allowed and verdict.egress.allowed
    assert "default/deny-b" in verdict.ingress.reason
    assert "10.244.1.1 TCP/9090" in verdict.ingress.reason


def test_allow_reason_names_the_rule() -> None:
    policy = ingress_b({"from": [{"podSelector": A}], "ports": [{"port": "http"}]})
    verdict = PolicyEngine(state_with([policy])).evaluate(IP["a"], IP["b"], 9090)
    assert verdict.ingress.reason == "allowed by default/allow-b ingress rule 0: from pod default/a, TCP/9090"


def test_filter_rules_are_rendered_for_isolated_pods_on_the_node() -> None:
    policy = ingress_b({"from": [{"ipBlock": {"cidr": "192.168.0.0/16", "except": ["192.168.5.0/24"]}}], "ports": [{"port": 9000, "endPort": 9100}]})  # fmt: skip
    state = state_with([policy, np("no-egress", {"podSelector": A, "policyTypes": ["Egress"]})])
    rules = PolicyEngine(state).node_rules("n1")
    ctx = NodeContext("n1")
    iptables = IptablesRenderer().render_policies(rules, ctx).sections["filter_rules"]
    # a's egress chain comes before b's ingress chain: a flow passes the source's chain, then the destination's.
    assert iptables.index('"default/a egress" -s 10.244.1.1') < iptables.index('"default/b ingress" -d 10.244.1.2')
    assert "-s 192.168.0.0/22 -p tcp -m tcp --dport 9000:9100 -j RETURN" in iptables
    assert "192.168.5.0/24" not in iptables  # the exception is cut out of the allowed CIDRs
    assert '--comment "isolated by default/allow-b" -j DROP' in iptables
    assert '--comment "isolated by default/no-egress" -j DROP' in iptables
    nft = NftablesRenderer().render_policies(rules, ctx).sections["chains"]
    assert "ip saddr 192.168.0.0/16 ip saddr != { 192.168.5.0/24 } tcp dport 9000-9100 return" in nft
    # c lives on n2: n1 does not enforce its policies.
    assert "10.244.2.3" not in iptables
