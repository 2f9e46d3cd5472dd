"""IPVS mode: virtual servers with real servers, the ipsets IPVS mode matches on, and its small iptables part.

Every ClusterIP:port, NodePort (on each node address), external IP and load-balancer address becomes an
IPVS virtual server whose real servers are the Service's endpoints (only the node's own endpoints for
externalTrafficPolicy Local), scheduled by the node's scheduler (rr by default; ClientIP affinity
becomes persistence with the affinity timeout). Service addresses are bound to the kube-ipvs0 dummy
interface. iptables only masquerades, matching the ipsets (KUBE-CLUSTER-IP, KUBE-NODE-PORT-TCP, …), and
carries the NetworkPolicy filter chains. Rendered as `ipvsadm -Sn`, `ipset save`, `ip addr` and
`iptables-save` text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import chain
from typing import Any

from skiff.net.iptables import IptablesRenderer, filter_table
from skiff.net.model import Endpoint, NodeContext, ServicePort
from skiff.net.netpol import PodRules
from skiff.net.render import (
    CLUSTER_IP,
    EXTERNAL_IP,
    LOAD_BALANCER,
    NODE_PORT,
    Choice,
    Columns,
    Entry,
    Explanation,
    Fragment,
    Tables,
    join_sections,
    shares,
)

SCHEDULERS = ("rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "mh")
PROTO_FLAG = {"TCP": "-t", "UDP": "-u", "SCTP": "--sctp-service"}

HASH_IP_PORT = "hash:ip,port family inet hashsize 1024 maxelem 65536"
BITMAP_PORT = "bitmap:port range 0-65535"
# name → (type, comment); the sets kube-proxy's IPVS mode creates.
IPSETS: dict[str, str] = {
    "KUBE-CLUSTER-IP": HASH_IP_PORT,
    "KUBE-EXTERNAL-IP": HASH_IP_PORT,
    "KUBE-EXTERNAL-IP-LOCAL": HASH_IP_PORT,
    "KUBE-HEALTH-CHECK-NODE-PORT": BITMAP_PORT,
    "KUBE-LOAD-BALANCER": HASH_IP_PORT,
    "KUBE-LOAD-BALANCER-FW": HASH_IP_PORT,
    "KUBE-LOAD-BALANCER-LOCAL": HASH_IP_PORT,
    "KUBE-LOAD-BALANCER-SOURCE-CIDR": "hash:ip,port,net family inet hashsize 1024 maxelem 65536",
    "KUBE-LOAD-BALANCER-SOURCE-IP": "hash:ip,port,ip family inet hashsize 1024 maxelem 65536",
    "KUBE-LOOP-BACK": "hash:ip,port,ip family inet hashsize 1024 maxelem 65536",
    "KUBE-NODE-PORT-LOCAL-SCTP-HASH": HASH_IP_PORT,
    "KUBE-NODE-PORT-LOCAL-TCP": BITMAP_PORT,
    "KUBE-NODE-PORT-LOCAL-UDP": BITMAP_PORT,
    "KUBE-NODE-PORT-SCTP-HASH": HASH_IP_PORT,
    "KUBE-NODE-PORT-TCP": BITMAP_PORT,
    "KUBE-NODE-PORT-UDP": BITMAP_PORT,
}


def virtual_server(sp: ServicePort, ip: str, port: int, scheduler: str) -> str:
    persistence = f" -p {sp.affinity_seconds}" if sp.affinity_seconds else ""
    return f"-A {PROTO_FLAG[sp.protocol]} {ip}:{port} -s {scheduler}{persistence}\n"


def real_server(sp: ServicePort, ip: str, port: int, endpoint: Endpoint) -> str:
    return f"-a {PROTO_FLAG[sp.protocol]} {ip}:{port} -r {endpoint.address} -m -w 1\n"


def virtual_servers(sp: ServicePort, ctx: NodeContext) -> list[tuple[str, str, int, tuple[Endpoint, ...]]]:
    """(kind, ip, port, real servers) for each virtual server of a ServicePort on this node."""
    internal = sp.internal_endpoints(ctx.name)
    external = sp.external_endpoints(ctx.name)
    out = [(CLUSTER_IP, sp.cluster_ip, sp.port, internal)]
    out += [(EXTERNAL_IP, ip, sp.port, external) for ip in sp.external_ips]
    out += [(LOAD_BALANCER, ip, sp.port, external) for ip in sp.load_balancer_ips]
    if sp.node_port:
        out += [(NODE_PORT, ip, sp.node_port, external) for ip in ctx.ips]
    return out


def set_entries(sp: ServicePort, ctx: NodeContext) -> list[tuple[str, str]]:
    proto = sp.proto
    entries = [("KUBE-CLUSTER-IP", f"{sp.cluster_ip},{proto}:{sp.port}")]
    for ip in sp.external_ips:
        entries.append(("KUBE-EXTERNAL-IP", f"{ip},{proto}:{sp.port}"))
        if sp.external_local:
            entries.append(("KUBE-EXTERNAL-IP-LOCAL", f"{ip},{proto}:{sp.port}"))
    for ip in sp.load_balancer_ips:
        entries.append(("KUBE-LOAD-BALANCER", f"{ip},{proto}:{sp.port}"))
        if sp.external_local:
            entries.append(("KUBE-LOAD-BALANCER-LOCAL", f"{ip},{proto}:{sp.port}"))
    if sp.node_port:
        if sp.protocol == "SCTP":
            for ip in ctx.ips:
                entries.append(("KUBE-NODE-PORT-SCTP-HASH", f"{ip},sctp:{sp.node_port}"))
                if sp.external_local:
                    entries.append(("KUBE-NODE-PORT-LOCAL-SCTP-HASH", f"{ip},sctp:{sp.node_port}"))
        else:
            entries.append((f"KUBE-NODE-PORT-{sp.protocol}", str(sp.node_port)))
            if sp.external_local:
                entries.append((f"KUBE-NODE-PORT-LOCAL-{sp.protocol}", str(sp.node_port)))
    for endpoint in sp.endpoints:
        if endpoint.node == ctx.name:
            entries.append(("KUBE-LOOP-BACK", f"{endpoint.ip},{proto}:{endpoint.port},{endpoint.ip}"))
    return entries


def nat_table(ctx: NodeContext) -> str:
    cidr, mark = ctx.cluster_cidr, ctx.masquerade_mark
    lines = [
        "*nat",
        ":KUBE-FIREWALL - [0:0]",
        ":KUBE-LOAD-BALANCER - [0:0]",
        ":KUBE-MARK-MASQ - [0:0]",
        ":KUBE-NODE-PORT - [0:0]",
        ":KUBE-POSTROUTING - [0:0]",
        ":KUBE-SERVICES - [0:0]",
        '-A KUBE-SERVICES -m comment --comment "Kubernetes service lb portal" -m set --match-set KUBE-LOAD-BALANCER '
        "dst,dst -j KUBE-LOAD-BALANCER",
        f'-A KUBE-SERVICES ! -s {cidr} -m comment --comment "Kubernetes service cluster ip + port for masquerade '
        'purpose" -m set --match-set KUBE-CLUSTER-IP dst,dst -j KUBE-MARK-MASQ',
        '-A KUBE-SERVICES -m comment --comment "Kubernetes service external ip + port for masquerade and filter '
        'purpose" -m set --match-set KUBE-EXTERNAL-IP dst,dst -j KUBE-MARK-MASQ',
        "-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODE-PORT",
        '-A KUBE-LOAD-BALANCER -m comment --comment "Kubernetes service load balancer ip + port with '
        'externalTrafficPolicy=local" -m set --match-set KUBE-LOAD-BALANCER-LOCAL dst,dst -j RETURN',
        "-A KUBE-LOAD-BALANCER -j KUBE-MARK-MASQ",
    ]
    for proto in ("TCP", "UDP"):
        lower = proto.lower()
        lines += [
            f'-A KUBE-NODE-PORT -p {lower} -m comment --comment "Kubernetes nodeport {proto} port with '
            f'externalTrafficPolicy=local" -m set --match-set KUBE-NODE-PORT-LOCAL-{proto} dst -j RETURN',
            f'-A KUBE-NODE-PORT -p {lower} -m comment --comment "Kubernetes nodeport {proto} port for masquerade '
            f'purpose" -m set --match-set KUBE-NODE-PORT-{proto} dst -j KUBE-MARK-MASQ',
        ]
    lines += [
        f"-A KUBE-MARK-MASQ -j MARK --or-mark {mark}",
        '-A KUBE-POSTROUTING -m comment --comment "Kubernetes endpoints dst ip:port, source ip for solving hairpin '
        'purpose" -m set --match-set KUBE-LOOP-BACK dst,dst,src -j MASQUERADE',
        f"-A KUBE-POSTROUTING -m mark ! --mark {mark}/{mark} -j RETURN",
        f"-A KUBE-POSTROUTING -j MARK --xor-mark {mark}",
        '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE '
        "--random-fully",
        "COMMIT",
    ]
    return "\n".join(lines) + "\n"


NAT_RULE_COUNT = sum(1 for line in nat_table(NodeContext("")).splitlines() if line.startswith("-A"))


class IpvsRenderer:
    mode = "ipvs"

    def __init__(self) -> None:
        self._policies = IptablesRenderer()

    def render_service(self, ports: Sequence[ServicePort], ctx: NodeContext) -> Fragment:
        servers: list[str] = []
        sets: dict[str, dict[str, None]] = {}
        addresses: list[str] = []
        real = 0
        for sp in ports:
            for _kind, ip, port, endpoints in virtual_servers(sp, ctx):
                servers.append(virtual_server(sp, ip, port, ctx.scheduler))
                servers += [real_server(sp, ip, port, e) for e in endpoints]
                real += len(endpoints)
            for name, entry in set_entries(sp, ctx):
                sets.setdefault(name, {})[f"add {name} {entry}\n"] = None
            addresses.append(sp.cluster_ip)
            addresses += sp.external_ips
            addresses += sp.load_balancer_ips
        # Addresses and loop-back entries can be shared between Services: kept as tuples, de-duplicated
        # when the tables are assembled.
        sections: dict[str, Any] = {
            "ipvs": "".join(servers),
            "addresses": tuple(f"    inet {ip}/32 scope global kube-ipvs0\n" for ip in dict.fromkeys(addresses)),
            "loopback": tuple(sets.pop("KUBE-LOOP-BACK", {})),
        }
        sections.update(("set:" + name, "".join(lines)) for name, lines in sets.items())
        counts = {"ipvs": len(servers) - real, "ipvs-real": real}
        counts.update(("set:" + name, len(lines)) for name, lines in sets.items())
        return Fragment(sections, counts)

    def render_policies(self, rules: Sequence[PodRules], ctx: NodeContext) -> Fragment:
        return self._policies.render_policies(rules, ctx)

    def assemble(self, columns: Columns, totals: Mapping[str, int], policies: Fragment, ctx: NodeContext) -> Tables:
        ipsets: list[str] = []
        entry_count = 0
        for name, kind in IPSETS.items():
            ipsets.append(f"create {name} {kind}\n")
            if name == "KUBE-LOOP-BACK":
                entries: Sequence[str] = list(dict.fromkeys(chain.from_iterable(join_sections(columns, "loopback"))))
                entry_count += len(entries)
            else:
                entries = join_sections(columns, "set:" + name)
                entry_count += totals.get("set:" + name, 0)
            ipsets += entries
        interface = ["kube-ipvs0: <BROADCAST,NOARP> mtu 1500 qdisc noop state DOWN group default\n"]
        interface += dict.fromkeys(chain.from_iterable(join_sections(columns, "addresses")))
        filter_chunks, filter_count = filter_table([], [], policies, 0)
        files = {
            "ipvs.rules": list(join_sections(columns, "ipvs")),
            "ipset.rules": ipsets,
            "kube-ipvs0.addr": interface,
            "ipvs-iptables.rules": [*filter_chunks, nat_table(ctx)],
        }
        titles = {
            "ipvs.rules": "ipvsadm -Sn",
            "ipset.rules": "ipset save",
            "kube-ipvs0.addr": "ip -4 addr show kube-ipvs0",
            "ipvs-iptables.rules": "iptables-save",
        }
        counts = {
            "ipvs": totals.get("ipvs", 0),
            "ipvs-real": totals.get("ipvs-real", 0),
            "ipset": entry_count,
            "filter": filter_count,
            "nat": NAT_RULE_COUNT,
        }
        return Tables(ctx.name, self.mode, files, counts, titles)

    def explain(self, sp: ServicePort, ctx: NodeContext, entry: Entry) -> Explanation:
        for kind, ip, port, endpoints in virtual_servers(sp, ctx):
            if kind != entry.kind or ip != entry.ip or port != entry.port:
                continue
            membership = [f"add {name} {value}" for name, value in set_entries(sp, ctx) if value.startswith(f"{ip},")]
            rules = [virtual_server(sp, ip, port, ctx.scheduler).rstrip("\n"), *membership]
            method = f"IPVS scheduler {ctx.scheduler}"
            if sp.affinity_seconds:
                method += f", persistent for {sp.affinity_seconds}s (ClientIP affinity)"
            lines = {e.address: [real_server(sp, ip, port, e).rstrip("\n")] for e in endpoints}
            choices = [
                Choice(e, lines[e.address][0], share)
                for e, share in zip(endpoints, shares(len(endpoints)), strict=True)
            ]
            outcome = "" if endpoints else "the virtual server has no real servers: the connection fails"
            return Explanation(rules, method, choices, lines, outcome)
        return Explanation([], "", [], {}, "no virtual server: the packet is not redirected")
