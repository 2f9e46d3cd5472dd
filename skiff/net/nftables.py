"""nftables mode: one `table ip kube-proxy` built from sets and verdict maps, as Kubernetes' nftables mode.

`service-ips` maps "address . protocol . port" of each ClusterIP, external IP and load-balancer address to
the Service's chain, `service-nodeports` maps "protocol . port" for the addresses in `nodeport-ips`; a
Service chain picks an endpoint with `numgen random mod N vmap { 0 : goto endpoint-…, … }` (after the
`affinity-*` sets when it has ClientIP affinity) and each endpoint chain DNATs. Services without
endpoints are answered from `no-endpoint-services` / `no-endpoint-nodeports` (reject, or drop for Local
traffic that has no local endpoint). NetworkPolicies of the node's pods are enforced in the
`network-policies` chain. Rendered as `nft list table ip kube-proxy` text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from skiff.net import names
from skiff.net.model import Endpoint, NodeContext, ServicePort
from skiff.net.netpol import ANY_CIDR, EGRESS, PodRules
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

SERVICES_RULE = "ip daddr . meta l4proto . th dport vmap @service-ips"
NODEPORTS_RULE = "ip daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports"
MAPS = {
    "no-endpoint-nodeports": (
        "inet_proto . inet_service : verdict",
        "vmap to drop or reject packets to service nodeports with no endpoints",
    ),
    "no-endpoint-services": (
        "ipv4_addr . inet_proto . inet_service : verdict",
        "vmap to drop or reject packets to services with no endpoints",
    ),
    "service-ips": (
        "ipv4_addr . inet_proto . inet_service : verdict",
        "ClusterIP, ExternalIP and LoadBalancer IP traffic",
    ),
    "service-nodeports": ("inet_proto . inet_service : verdict", "NodePort traffic"),
}


def chain(name: str, rules: Sequence[str]) -> str:
    body = "".join(f"\t\t{rule}\n" for rule in rules)
    return f"\tchain {name} {{\n{body}\t}}\n"


@dataclass
class PortChains:
    service_ips: list[tuple[str, str, int, str]] = field(default_factory=list)  # (kind, ip, port, element)
    nodeports: list[str] = field(default_factory=list)
    no_endpoint_services: list[tuple[str, str, int, str]] = field(default_factory=list)
    no_endpoint_nodeports: list[str] = field(default_factory=list)
    chains: dict[str, list[str]] = field(default_factory=dict)
    picks: dict[str, list[tuple[Endpoint, str]]] = field(default_factory=dict)  # chain → (endpoint, element)
    affinity_sets: list[str] = field(default_factory=list)
    endpoint_chains: dict[str, str] = field(default_factory=dict)
    service_chain: str = ""
    local_chain: str = ""
    external_chain: str = ""


def port_chains(sp: ServicePort, ctx: NodeContext) -> PortChains:
    out = PortChains()
    proto = sp.proto
    base = names.nft_service_base(sp.namespace, sp.name, proto, sp.port_name)
    svc, svl, ext = f"service-{base}", f"local-{base}", f"external-{base}"
    cluster_eps = sp.cluster_endpoints()
    local_eps = sp.local_endpoints(ctx.name) if (sp.internal_local or sp.external_local) else ()
    has_endpoints = bool(cluster_eps)
    internal_eps = local_eps if sp.internal_local else cluster_eps
    external_eps = local_eps if sp.external_local else cluster_eps
    uses_svc = has_endpoints and (not sp.internal_local or sp.has_external)
    uses_svl = has_endpoints and (sp.internal_local or (sp.external_local and sp.has_external))
    uses_ext = has_endpoints and sp.has_external
    internal_chain = svl if sp.internal_local else svc
    out.service_chain, out.local_chain = (svc if uses_svc else ""), (svl if uses_svl else "")
    out.external_chain = ext if uses_ext else ""
    note = f'comment "{sp.name_string}"'

    def no_endpoint_verdict(local: bool) -> str:
        return "drop" if local and has_endpoints else "goto reject-chain"

    if internal_eps:
        out.service_ips.append(
            (CLUSTER_IP, sp.cluster_ip, sp.port, f"{sp.cluster_ip} . {proto} . {sp.port} : goto {internal_chain}")
        )
    else:
        element = f"{sp.cluster_ip} . {proto} . {sp.port} {note} : {no_endpoint_verdict(sp.internal_local)}"
        out.no_endpoint_services.append((CLUSTER_IP, sp.cluster_ip, sp.port, element))
    externals = [(EXTERNAL_IP, ip) for ip in sp.external_ips] + [(LOAD_BALANCER, ip) for ip in sp.load_balancer_ips]
    for kind, ip in externals:
        if has_endpoints:
            out.service_ips.append((kind, ip, sp.port, f"{ip} . {proto} . {sp.port} : goto {ext}"))
        if not external_eps:
            element = f"{ip} . {proto} . {sp.port} {note} : {no_endpoint_verdict(sp.external_local)}"
            out.no_endpoint_services.append((kind, ip, sp.port, element))
    if sp.node_port:
        if has_endpoints:
            out.nodeports.append(f"{proto} . {sp.node_port} : goto {ext}")
        if not external_eps:
            out.no_endpoint_nodeports.append(
                f"{proto} . {sp.node_port} {note} : {no_endpoint_verdict(sp.external_local)}"
            )
    if not has_endpoints:
        return out
    if uses_ext:
        if sp.external_local:
            out.chains[ext] = [
                f'ip saddr {ctx.cluster_cidr} goto {internal_chain} comment "short-circuit pod traffic"',
                'fib saddr type local jump mark-for-masquerade comment "masquerade local traffic"',
                f'fib saddr type local goto {svc} comment "short-circuit local traffic"',
                f"goto {svl}",
            ]
        else:
            out.chains[ext] = ["jump mark-for-masquerade", f"goto {svc}"]
    used: dict[str, Endpoint] = {}
    if uses_svc:
        masq = (
            f"ip daddr {sp.cluster_ip} {proto} dport {sp.port} ip saddr != {ctx.cluster_cidr} jump mark-for-masquerade"
        )
        out.chains[svc] = [masq, *_pick(out, svc, sp, cluster_eps)]
        used.update((e.address, e) for e in cluster_eps)
    if uses_svl:
        out.chains[svl] = _pick(out, svl, sp, local_eps)
        used.update((e.address, e) for e in local_eps)
    for address in sorted(used):
        endpoint = used[address]
        name = out.endpoint_chains[address]
        rules = [f"ip saddr {endpoint.ip} jump mark-for-masquerade"]
        if sp.affinity_seconds:
            rules.append(f"update @affinity-{name.removeprefix('endpoint-')} {{ ip saddr }}")
        rules.append(f"meta l4proto {proto} dnat to {address}")
        out.chains[name] = rules
    return out


def _pick(out: PortChains, chain_name: str, sp: ServicePort, endpoints: Sequence[Endpoint]) -> list[str]:
    rules = []
    chains = []
    for endpoint in endpoints:
        name = out.endpoint_chains.get(endpoint.address)
        if name is None:
            base = names.nft_endpoint_base(sp.namespace, sp.name, sp.proto, sp.port_name, endpoint.ip, endpoint.port)
            name = out.endpoint_chains[endpoint.address] = f"endpoint-{base}"
            if sp.affinity_seconds:
                out.affinity_sets.append(
                    f"\tset affinity-{base} {{\n\t\ttype ipv4_addr\n\t\tflags dynamic,timeout\n"
                    f"\t\ttimeout {sp.affinity_seconds}s\n\t}}\n"
                )
        chains.append(name)
    if sp.affinity_seconds:
        rules += [f"ip saddr @affinity-{name.removeprefix('endpoint-')} goto {name}" for name in chains]
    if endpoints:
        elements = [f"{index} : goto {name}" for index, name in enumerate(chains)]
        out.picks[chain_name] = list(zip(endpoints, elements, strict=True))
        rules.append(f"numgen random mod {len(endpoints)} vmap {{ {', '.join(elements)} }}")
    return rules


def policy_chains(rules: Sequence[PodRules]) -> tuple[list[str], list[str]]:
    """(dispatch rules of `network-policies`, per-pod chains): allowed flows `return`, the rest is dropped."""
    egress_dispatch, ingress_dispatch, chains = [], [], []
    for pod_rules in rules:
        egress = pod_rules.direction == EGRESS
        direction = "egress" if egress else "ingress"
        name = f"{direction}-" + names.hash_and_truncate(pod_rules.pod)
        field_name = "daddr" if egress else "saddr"
        dispatch = egress_dispatch if egress else ingress_dispatch
        dispatch.append(f"ip {'saddr' if egress else 'daddr'} {pod_rules.ip} jump {name}")
        body = []
        for allow in pod_rules.allows:
            match = []
            if allow.cidr != ANY_CIDR:
                match.append(f"ip {field_name} {allow.cidr}")
            if allow.excepts:
                match.append(f"ip {field_name} != {{ {', '.join(allow.excepts)} }}")
            if allow.ports.protocol is not None:
                proto = allow.ports.protocol.lower()
                if allow.ports.first is None:
                    match.append(f"meta l4proto {proto}")
                else:
                    last = allow.ports.last if allow.ports.last is not None else allow.ports.first
                    span = str(allow.ports.first) if last == allow.ports.first else f"{allow.ports.first}-{last}"
                    match.append(f"{proto} dport {span}")
            text = " ".join([*match, "return"])
            body.append(f'{text} comment "{allow.policy} {allow.direction.lower()} rule {allow.rule}"')
        body.append(f'drop comment "isolated by {", ".join(pod_rules.isolated_by)}"')
        chains.append(chain(name, body))
    return egress_dispatch + ingress_dispatch, chains


class NftablesRenderer:
    mode = "nftables"
    file_name = "nftables.rules"

    def render_service(self, ports: Sequence[ServicePort], ctx: NodeContext) -> Fragment:
        cluster_ips, service_ips, nodeports, no_services, no_nodeports, chains, sets = [], [], [], [], [], [], []
        rules = 0
        for sp in ports:
            result = port_chains(sp, ctx)
            if not cluster_ips or cluster_ips[-1] != f"\t\t\t{sp.cluster_ip},\n":
                cluster_ips.append(f"\t\t\t{sp.cluster_ip},\n")
            service_ips += [f"\t\t\t{element},\n" for _k, _i, _p, element in result.service_ips]
            nodeports += [f"\t\t\t{element},\n" for element in result.nodeports]
            no_services += [f"\t\t\t{element},\n" for _k, _i, _p, element in result.no_endpoint_services]
            no_nodeports += [f"\t\t\t{element},\n" for element in result.no_endpoint_nodeports]
            sets += result.affinity_sets
            chains += [chain(name, chain_rules) for name, chain_rules in result.chains.items()]
            rules += sum(len(r) for r in result.chains.values())
        elements = len(service_ips) + len(nodeports) + len(no_services) + len(no_nodeports) + len(cluster_ips)
        sections = {
            "cluster-ips": "".join(cluster_ips),
            "map:service-ips": "".join(service_ips),
            "map:service-nodeports": "".join(nodeports),
            "map:no-endpoint-services": "".join(no_services),
            "map:no-endpoint-nodeports": "".join(no_nodeports),
            "sets": "".join(sets),
            "chains": "".join(chains),
        }
        return Fragment(sections, {"rules": rules, "elements": elements})

    def render_policies(self, rules: Sequence[PodRules], ctx: NodeContext) -> Fragment:
        dispatch, chains = policy_chains(rules)
        head = [
            "type filter hook forward priority filter; policy accept;",
            "ct state established,related accept",
        ]
        text = chain("network-policies", head + dispatch) + "".join(chains)
        count = len(dispatch) + sum(c.count("\n") - 2 for c in chains) + 1
        return Fragment({"chains": text}, {"rules": count})

    def assemble(self, columns: Columns, totals: Mapping[str, int], policies: Fragment, ctx: NodeContext) -> Tables:
        mark = ctx.masquerade_mark
        out = ["table ip kube-proxy {\n", '\tcomment "rules for kube-proxy"\n']
        out.append('\tset cluster-ips {\n\t\ttype ipv4_addr\n\t\tcomment "Active ClusterIPs"\n')
        ips = join_sections(columns, "cluster-ips")
        out += ["\t\telements = {\n", *ips, "\t\t}\n"] if any(ips) else []
        out.append("\t}\n")
        out.append('\tset nodeport-ips {\n\t\ttype ipv4_addr\n\t\tcomment "IPs that accept NodePort traffic"\n')
        if ctx.ips:
            out += ["\t\telements = {\n", *(f"\t\t\t{ip},\n" for ip in ctx.ips), "\t\t}\n"]
        out.append("\t}\n")
        out += join_sections(columns, "sets")
        for name in MAPS:
            kind, note = MAPS[name]
            out.append(f'\tmap {name} {{\n\t\ttype {kind}\n\t\tcomment "{note}"\n')
            elements = join_sections(columns, "map:" + name)
            out += ["\t\telements = {\n", *elements, "\t\t}\n"] if any(elements) else []
            out.append("\t}\n")
        fixed = [
            ("filter-prerouting", ["type filter hook prerouting priority dstnat - 10; policy accept;"]),
            (
                "filter-input",
                [
                    "type filter hook input priority -110; policy accept;",
                    "ct state new jump nodeport-endpoints-check",
                    "ct state new jump service-endpoints-check",
                ],
            ),
            (
                "filter-forward",
                [
                    "type filter hook forward priority -110; policy accept;",
                    "ct state new jump service-endpoints-check",
                    "ct state new jump cluster-ips-check",
                ],
            ),
            (
                "filter-output",
                ["type filter hook output priority -110; policy accept;", "ct state new jump service-endpoints-check"],
            ),
            (
                "filter-output-post-dnat",
                ["type filter hook output priority -90; policy accept;", "ct state new jump cluster-ips-check"],
            ),
            ("nat-prerouting", ["type nat hook prerouting priority dstnat; policy accept;", "jump services"]),
            ("nat-output", ["type nat hook output priority -100; policy accept;", "jump services"]),
            ("nat-postrouting", ["type nat hook postrouting priority srcnat; policy accept;", "jump masquerading"]),
            (
                "cluster-ips-check",
                ['ip daddr @cluster-ips reject comment "Reject traffic to invalid ports of ClusterIPs"'],
            ),
            ("mark-for-masquerade", [f"mark set mark or {mark}"]),
            ("masquerading", [f"mark and {mark} == 0 return", f"mark set mark xor {mark}", "masquerade fully-random"]),
            ("services", [SERVICES_RULE, NODEPORTS_RULE]),
            ("service-endpoints-check", ["ip daddr . meta l4proto . th dport vmap @no-endpoint-services"]),
            (
                "nodeport-endpoints-check",
                ["ip daddr @nodeport-ips meta l4proto . th dport vmap @no-endpoint-nodeports"],
            ),
            ("reject-chain", ['reject comment "helper for @no-endpoint-services / @no-endpoint-nodeports"']),
        ]
        out += [chain(name, rules) for name, rules in fixed]
        out.append(policies.sections.get("chains", ""))
        out += join_sections(columns, "chains")
        out.append("}\n")
        fixed_rules = sum(len([r for r in rules if "hook" not in r]) for _n, rules in fixed)
        counts = {
            "rules": totals.get("rules", 0) + fixed_rules + policies.counts.get("rules", 0),
            "elements": totals.get("elements", 0) + len(ctx.ips),
        }
        return Tables(
            ctx.name, self.mode, {self.file_name: out}, counts, {self.file_name: "nft list table ip kube-proxy"}
        )

    def explain(self, sp: ServicePort, ctx: NodeContext, entry: Entry) -> Explanation:
        result = port_chains(sp, ctx)
        matched: list[str] = []
        for kind, ip, port, element in result.no_endpoint_services:
            if (
                kind == entry.kind
                and ip == entry.ip
                and port == entry.port
                and not (kind != CLUSTER_IP and result.external_chain)
            ):
                rules = [
                    "chain service-endpoints-check: ip daddr . meta l4proto . th dport vmap @no-endpoint-services",
                    f"map no-endpoint-services: {element}",
                ]
                outcome = (
                    "rejected: the Service has no endpoints" if "reject" in element else "dropped: no local endpoints"
                )
                return Explanation(rules, "", [], {}, outcome)
        if entry.kind == NODE_PORT:
            found = [e for e in result.nodeports if e.startswith(f"{sp.proto} . {entry.port} ")]
            if not found:
                for element in result.no_endpoint_nodeports:
                    return Explanation([f"map no-endpoint-nodeports: {element}"], "", [], {}, "rejected or dropped")
                return Explanation([], "", [], {}, "no map entry: the packet is not redirected")
            matched += [f"chain services: {NODEPORTS_RULE}", f"map service-nodeports: {found[0]}"]
            target = found[0].rsplit("goto ", 1)[1]
        else:
            hits = [e for k, ip, p, e in result.service_ips if k == entry.kind and ip == entry.ip and p == entry.port]
            if not hits:
                return Explanation([], "", [], {}, "no map entry: the packet is not redirected")
            matched += [f"chain services: {SERVICES_RULE}", f"map service-ips: {hits[0]}"]
            target = hits[0].rsplit("goto ", 1)[1]
        if target == result.external_chain:
            rules = result.chains[target]
            first = rules[0]
            matched.append(f"chain {target}: {first}")
            if sp.external_local:
                target = first.split("goto ", 1)[1].split(" ", 1)[0]
            else:
                matched.append(f"chain {target}: {rules[1]}")
                target = result.service_chain
        picks = result.picks.get(target, [])
        numgen = next((r for r in result.chains.get(target, []) if r.startswith("numgen")), "")
        if numgen:
            matched.append(f"chain {target}: {numgen}")
        method = f"numgen random mod {len(picks)}" + (" (after the affinity sets)" if sp.affinity_seconds else "")
        choices = [Choice(e, element, s) for (e, element), s in zip(picks, shares(len(picks)), strict=True)]
        dnat = {
            e.address: [
                f"chain {result.endpoint_chains[e.address]}: {r}"
                for r in result.chains[result.endpoint_chains[e.address]]
            ]
            for e, _element in picks
        }
        return Explanation(matched, method, choices, dnat, "" if choices else "no endpoints")
