"""iptables mode: the nat and filter tables kube-proxy programs, in `iptables-save` format.

nat: KUBE-SERVICES sends each ClusterIP, external IP and load-balancer address to the Service's chain;
its last rule hands node-local destinations to KUBE-NODEPORTS. KUBE-SVC-* picks an endpoint at random
with `-m statistic --mode random --probability 1/n, 1/(n-1), …` (the last one unconditionally), or
first by `-m recent` when the Service has ClientIP affinity; KUBE-SEP-* DNATs to the endpoint. KUBE-EXT-*
handles traffic from outside the cluster (masquerade, or, with externalTrafficPolicy Local, only the
node's own endpoints in KUBE-SVL-*). filter: a Service without endpoints is REJECTed (DROPped when it has
endpoints but none on this node for Local traffic), and KUBE-NWPLCY-* chains enforce NetworkPolicies of
the node's pods. Headless Services get nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from skiff.net import names
from skiff.net.model import Endpoint, NodeContext, ServicePort, probability
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
)

NODEPORTS_RULE = (
    '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this '
    'chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS\n'
)
NAT_CHAINS = ("KUBE-MARK-MASQ", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-SERVICES")
FILTER_CHAINS = (
    "KUBE-EXTERNAL-SERVICES",
    "KUBE-FIREWALL",
    "KUBE-FORWARD",
    "KUBE-NODEPORTS",
    "KUBE-NWPLCY",
    "KUBE-PROXY-FIREWALL",
    "KUBE-SERVICES",
)


def comment(text: str) -> str:
    return f'-m comment --comment "{text}"' if " " in text else f"-m comment --comment {text}"


def proto_match(protocol: str) -> str:
    return f"-m {protocol} -p {protocol}"


def masquerade_rules(ctx: NodeContext) -> str:
    mark = ctx.masquerade_mark
    return (
        f"-A KUBE-MARK-MASQ -j MARK --or-mark {mark}\n"
        f"-A KUBE-POSTROUTING -m mark ! --mark {mark}/{mark} -j RETURN\n"
        f"-A KUBE-POSTROUTING -j MARK --xor-mark {mark}\n"
        '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE '
        "--random-fully\n"
    )


@dataclass
class PortRules:
    """The rules of one ServicePort, kept structured so `explain` can point at the lines `render` writes."""

    entries: list[tuple[str, str, int, str]] = field(default_factory=list)  # (kind, ip, port, KUBE-SERVICES rule)
    nodeports: list[str] = field(default_factory=list)
    filter_rules: list[tuple[str, str, int, str]] = field(default_factory=list)  # (kind, ip, port, rule)
    chains: dict[str, list[str]] = field(default_factory=dict)  # chain → rules, in order
    picks: dict[str, list[tuple[Endpoint, str, str]]] = field(default_factory=dict)  # chain → (ep, prob, rule)
    affinity: dict[str, list[str]] = field(default_factory=dict)
    endpoints: dict[str, str] = field(default_factory=dict)  # address → KUBE-SEP chain
    service_chain: str = ""
    local_chain: str = ""
    external_chain: str = ""


def port_rules(sp: ServicePort, ctx: NodeContext) -> PortRules:
    out = PortRules()
    spn, proto = sp.name_string, sp.proto
    match = proto_match(proto)
    cluster_eps = sp.cluster_endpoints()
    local_eps = sp.local_endpoints(ctx.name) if (sp.internal_local or sp.external_local) else ()
    has_endpoints = bool(cluster_eps)
    internal_eps = local_eps if sp.internal_local else cluster_eps
    external_eps = local_eps if sp.external_local else cluster_eps
    svc = names.service_chain(spn, proto)
    svl = names.local_chain(spn, proto)
    ext = names.external_chain(spn, proto)
    uses_svc = has_endpoints and (not sp.internal_local or sp.has_external)
    uses_svl = has_endpoints and (sp.internal_local or (sp.external_local and sp.has_external))
    uses_ext = has_endpoints and sp.has_external
    internal_chain = svl if sp.internal_local else svc
    out.service_chain = svc if uses_svc else ""
    out.local_chain = svl if uses_svl else ""
    out.external_chain = ext if uses_ext else ""

    def no_endpoints(local: bool) -> tuple[str, str]:
        return (
            (f"{spn} has no local endpoints", "DROP")
            if local and has_endpoints
            else (f"{spn} has no endpoints", "REJECT")
        )

    # ClusterIP
    if internal_eps:
        target = f"-d {sp.cluster_ip} --dport {sp.port} -j {internal_chain}"
        rule = f"-A KUBE-SERVICES {comment(spn + ' cluster IP')} {match} {target}\n"
        out.entries.append((CLUSTER_IP, sp.cluster_ip, sp.port, rule))
    else:
        text, target = no_endpoints(sp.internal_local)
        rule = f"-A KUBE-SERVICES {comment(text)} {match} -d {sp.cluster_ip} --dport {sp.port} -j {target}\n"
        out.filter_rules.append((CLUSTER_IP, sp.cluster_ip, sp.port, rule))

    # External IPs, load-balancer IPs and the node port
    external_targets = [(EXTERNAL_IP, ip) for ip in sp.external_ips] + [
        (LOAD_BALANCER, ip) for ip in sp.load_balancer_ips
    ]
    for kind, ip in external_targets:
        if has_endpoints:
            rule = f"-A KUBE-SERVICES {comment(f'{spn} {kind}')} {match} -d {ip} --dport {sp.port} -j {ext}\n"
            out.entries.append((kind, ip, sp.port, rule))
        if not external_eps:
            text, target = no_endpoints(sp.external_local)
            rule = f"-A KUBE-EXTERNAL-SERVICES {comment(text)} {match} -d {ip} --dport {sp.port} -j {target}\n"
            out.filter_rules.append((kind, ip, sp.port, rule))
    if sp.node_port:
        if has_endpoints:
            out.nodeports.append(f"-A KUBE-NODEPORTS {comment(spn)} {match} --dport {sp.node_port} -j {ext}\n")
        if not external_eps:
            text, target = no_endpoints(sp.external_local)
            rule = (
                f"-A KUBE-EXTERNAL-SERVICES {comment(text)} -m addrtype --dst-type LOCAL {match} "
                f"--dport {sp.node_port} -j {target}\n"
            )
            out.filter_rules.append((NODE_PORT, "", sp.node_port, rule))
    if not has_endpoints:
        return out

    if uses_ext:
        rules = out.chains[ext] = []
        if sp.external_local:
            pods = comment(f"pod traffic for {spn} external destinations")
            masquerade = comment(f"masquerade LOCAL traffic for {spn} external destinations")
            route = comment(f"route LOCAL traffic for {spn} external destinations")
            rules.append(f"-A {ext} {pods} -s {ctx.cluster_cidr} -j {internal_chain}\n")
            rules.append(f"-A {ext} {masquerade} -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ\n")
            rules.append(f"-A {ext} {route} -m addrtype --src-type LOCAL -j {svc}\n")
            rules.append(f"-A {ext} -j {svl}\n")
        else:
            rules.append(
                f"-A {ext} {comment(f'masquerade traffic for {spn} external destinations')} -j KUBE-MARK-MASQ\n"
            )
            rules.append(f"-A {ext} -j {svc}\n")
    used: dict[str, Endpoint] = {}
    if uses_svc:
        where = f"-d {sp.cluster_ip} --dport {sp.port} ! -s {ctx.cluster_cidr}"
        masq = f"-A {svc} {comment(spn + ' cluster IP')} {match} {where} -j KUBE-MARK-MASQ\n"
        out.chains[svc] = [masq, *_pick_rules(out, svc, sp, cluster_eps)]
        used.update((e.address, e) for e in cluster_eps)
    if uses_svl:
        out.chains[svl] = _pick_rules(out, svl, sp, local_eps)
        used.update((e.address, e) for e in local_eps)
    for address in sorted(used):
        endpoint = used[address]
        sep = out.endpoints[address]
        recent = f" -m recent --name {sep} --set" if sp.affinity_seconds else ""
        out.chains[sep] = [
            f"-A {sep} {comment(spn)} -s {endpoint.ip} -j KUBE-MARK-MASQ\n",
            f"-A {sep} {comment(spn)}{recent} {match} -j DNAT --to-destination {address}\n",
        ]
    return out


def _pick_rules(out: PortRules, chain: str, sp: ServicePort, endpoints: Sequence[Endpoint]) -> list[str]:
    spn, proto = sp.name_string, sp.proto
    seps = []
    for endpoint in endpoints:
        sep = out.endpoints.get(endpoint.address) or names.endpoint_chain(spn, proto, endpoint.address)
        out.endpoints[endpoint.address] = sep
        seps.append(sep)
    rules: list[str] = []
    if sp.affinity_seconds:
        out.affinity[chain] = []
        for endpoint, sep in zip(endpoints, seps, strict=True):
            rule = (
                f"-A {chain} {comment(f'{spn} -> {endpoint.address}')} -m recent --name {sep} --rcheck "
                f"--seconds {sp.affinity_seconds} --reap -j {sep}\n"
            )
            out.affinity[chain].append(rule)
            rules.append(rule)
    picks = out.picks[chain] = []
    count = len(endpoints)
    for index, (endpoint, sep) in enumerate(zip(endpoints, seps, strict=True)):
        text = comment(f"{spn} -> {endpoint.address}")
        if index < count - 1:
            chance = probability(count - index)
            rule = f"-A {chain} {text} -m statistic --mode random --probability {chance} -j {sep}\n"
        else:
            chance, rule = "", f"-A {chain} {text} -j {sep}\n"
        picks.append((endpoint, chance, rule))
        rules.append(rule)
    return rules


def policy_lines(rules: Sequence[PodRules]) -> tuple[list[str], list[str], list[str]]:
    """NetworkPolicy filter rules: (chain declarations, KUBE-NWPLCY dispatch rules, per-pod chain rules).

    A pod chain RETURNs what a policy allows and DROPs the rest, so a flow passes the source's egress
    chain and then the destination's ingress chain."""
    decls, dispatch_egress, dispatch_ingress, body = [], [], [], []
    for pod_rules in rules:
        chain = names.policy_chain(pod_rules.direction, pod_rules.pod)
        decls.append(f":{chain} - [0:0]\n")
        egress = pod_rules.direction == EGRESS
        if egress:
            dispatch_egress.append(
                f"-A KUBE-NWPLCY {comment(f'{pod_rules.pod} egress')} -s {pod_rules.ip} -j {chain}\n"
            )
        else:
            dispatch_ingress.append(
                f"-A KUBE-NWPLCY {comment(f'{pod_rules.pod} ingress')} -d {pod_rules.ip} -j {chain}\n"
            )
        peer_flag = "-d" if egress else "-s"
        for allow in pod_rules.allows:
            note = comment(f"{allow.policy} {allow.direction.lower()} rule {allow.rule}")
            port = ""
            if allow.ports.protocol is not None:
                proto = allow.ports.protocol.lower()
                port = f" -p {proto}"
                if allow.ports.first is not None:
                    last = allow.ports.last if allow.ports.last is not None else allow.ports.first
                    span = str(allow.ports.first) if last == allow.ports.first else f"{allow.ports.first}:{last}"
                    port = f" -p {proto} -m {proto} --dport {span}"
            for cidr in allow.cidrs():
                peer = "" if cidr == ANY_CIDR else f" {peer_flag} {cidr}"
                body.append(f"-A {chain} {note}{peer}{port} -j RETURN\n")
        body.append(f"-A {chain} {comment('isolated by ' + ', '.join(pod_rules.isolated_by))} -j DROP\n")
    return decls, dispatch_egress + dispatch_ingress, body


def filter_table(
    services: Sequence[str], external: Sequence[str], policies: Fragment, count: int
) -> tuple[list[str], int]:
    chunks = ["*filter\n"]
    chunks += [f":{chain} - [0:0]\n" for chain in FILTER_CHAINS]
    chunks.append(policies.sections.get("filter_decl", ""))
    fixed = [
        '-A KUBE-FIREWALL -m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 ! -s 127.0.0.0/8 '
        "-m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP\n",
    ]
    forward = [
        "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP\n",
        '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate '
        "RELATED,ESTABLISHED -j ACCEPT\n",
        '-A KUBE-FORWARD -m comment --comment "network policies" -j KUBE-NWPLCY\n',
        '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT\n',
    ]
    chunks += fixed
    chunks += services
    chunks += external
    chunks += forward
    chunks.append(policies.sections.get("filter_rules", ""))
    chunks.append("COMMIT\n")
    return chunks, count + len(fixed) + len(forward) + policies.counts.get("filter", 0)


class IptablesRenderer:
    mode = "iptables"
    file_name = "iptables.rules"

    def render_service(self, ports: Sequence[ServicePort], ctx: NodeContext) -> Fragment:
        decl, entries, nodeports, chains, filter_services, filter_external = [], [], [], [], [], []
        nat = 0
        for sp in ports:
            rules = port_rules(sp, ctx)
            entries += [rule for _kind, _ip, _port, rule in rules.entries]
            nodeports += rules.nodeports
            for _kind, _ip, _port, rule in rules.filter_rules:
                (filter_services if rule.startswith("-A KUBE-SERVICES") else filter_external).append(rule)
            for chain, chain_rules in rules.chains.items():
                decl.append(f":{chain} - [0:0]\n")
                chains += chain_rules
            nat += len(rules.entries) + len(rules.nodeports) + sum(len(r) for r in rules.chains.values())
        sections = {
            "nat_decl": "".join(decl),
            "nat_services": "".join(entries),
            "nat_nodeports": "".join(nodeports),
            "nat_chains": "".join(chains),
            "filter_services": "".join(filter_services),
            "filter_external": "".join(filter_external),
        }
        return Fragment(sections, {"nat": nat, "filter": len(filter_services) + len(filter_external)})

    def render_policies(self, rules: Sequence[PodRules], ctx: NodeContext) -> Fragment:
        decls, dispatch, body = policy_lines(rules)
        return Fragment(
            {"filter_decl": "".join(decls), "filter_rules": "".join(dispatch + body)},
            {"filter": len(dispatch) + len(body)},
        )

    def nat_table(self, columns: Columns, totals: Mapping[str, int], ctx: NodeContext) -> tuple[list[str], int]:
        chunks = ["*nat\n"]
        chunks += [f":{chain} - [0:0]\n" for chain in NAT_CHAINS]
        chunks += join_sections(columns, "nat_decl")
        chunks.append(masquerade_rules(ctx))
        chunks += join_sections(columns, "nat_services")
        chunks.append(NODEPORTS_RULE)
        chunks += join_sections(columns, "nat_nodeports")
        chunks += join_sections(columns, "nat_chains")
        chunks.append("COMMIT\n")
        return chunks, totals.get("nat", 0) + 5

    def assemble(self, columns: Columns, totals: Mapping[str, int], policies: Fragment, ctx: NodeContext) -> Tables:
        nat, nat_count = self.nat_table(columns, totals, ctx)
        filter_chunks, filter_count = filter_table(
            join_sections(columns, "filter_services"),
            join_sections(columns, "filter_external"),
            policies,
            totals.get("filter", 0),
        )
        return Tables(
            ctx.name,
            self.mode,
            {self.file_name: filter_chunks + nat},
            {"filter": filter_count, "nat": nat_count},
            {self.file_name: "iptables-save"},
        )

    def explain(self, sp: ServicePort, ctx: NodeContext, entry: Entry) -> Explanation:
        rules = port_rules(sp, ctx)
        matched: list[str] = []
        for kind, ip, port, rule in rules.filter_rules:
            if kind == entry.kind and (kind == NODE_PORT or ip == entry.ip) and port == entry.port:
                outcome = (
                    "rejected: the Service has no endpoints" if "REJECT" in rule else "dropped: no local endpoints"
                )
                if entry.kind == CLUSTER_IP or not rules.external_chain:
                    return Explanation([rule], "", [], {}, outcome)
                matched.append(rule)  # pod traffic still short-circuits to the cluster chain below
        if entry.kind == NODE_PORT:
            line = next((r for r in rules.nodeports if f"--dport {entry.port} " in r), None)
            if line is None:
                return Explanation(matched, "", [], {}, "no rule matches: the packet is not redirected")
            matched += [NODEPORTS_RULE, line]
            chain = rules.external_chain
        else:
            found = [r for k, ip, p, r in rules.entries if k == entry.kind and ip == entry.ip and p == entry.port]
            if not found:
                return Explanation(matched, "", [], {}, "no rule matches: the packet is not redirected")
            matched.append(found[0])
            chain = found[0].rsplit("-j ", 1)[1].strip()
        if chain == rules.external_chain:
            ext_rules = rules.chains[chain]
            # The traced source is a pod: the first rule for pod traffic (Local) or the masquerade rule applies.
            matched += ext_rules[:1] if sp.external_local else ext_rules
            chain = ext_rules[0].rsplit("-j ", 1)[1].strip() if sp.external_local else rules.service_chain
        matched += rules.affinity.get(chain, [])
        picks = rules.picks.get(chain, [])
        choices, remaining = [], 1.0
        for endpoint, chance, rule in picks:
            share = remaining * (float(chance) if chance else 1.0)
            remaining -= share
            choices.append(Choice(endpoint, rule.rstrip("\n"), share))
        method = "-m statistic --mode random" + (" (after -m recent ClientIP affinity)" if sp.affinity_seconds else "")
        dnat = {e.address: rules.chains[rules.endpoints[e.address]] for e, _c, _r in picks}
        return Explanation(matched, f"{chain}: {method}", choices, dnat, "" if choices else "no endpoints")
