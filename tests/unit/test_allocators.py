"""Service networking rules that need no server: ranges, pools, slice planning, DNS answers."""

from __future__ import annotations

from typing import Any

import pytest
from dnslib import QTYPE, RCODE

from apiserver.allocators import parse_port_range, service_ranges, used_values
from controllers.endpoints import desired_subsets
from controllers.endpointslice import desired_endpoints, endpoint_key, plan_slices, slice_ports
from controllers.loadbalancer import AddressPool
from skiff.dns.resolver import ClusterView, Resolver

Obj = dict[str, Any]


# -- ranges ----------------------------------------------------------------------------------------
def test_the_service_range_reserves_the_network_the_first_address_and_the_broadcast() -> None:
    ranges = service_ranges("10.96.0.0/12", "30000-32767")
    assert ranges.kubernetes_ip == "10.96.0.1"
    assert ranges.ip_at(ranges.first_dynamic) == "10.96.0.2"
    assert ranges.ip_at(ranges.last_dynamic) == "10.111.255.254"
    assert ranges.contains_ip("10.96.0.1") and ranges.contains_ip("10.111.255.254")
    assert not ranges.contains_ip("10.96.0.0")
    assert not ranges.contains_ip("10.111.255.255")
    assert not ranges.contains_ip("10.112.0.1")
    assert not ranges.contains_ip("not-an-ip")
    assert ranges.contains_port(30000) and ranges.contains_port(32767) and not ranges.contains_port(29999)


def test_port_ranges_parse_and_bad_ones_are_refused() -> None:
    assert parse_port_range("30000-32767") == (30000, 32767)
    assert parse_port_range("31000") == (31000, 31000)
    for bad in ("32767-30000", "0-10", "abc", "1-70000"):
        with pytest.raises(ValueError):
            parse_port_range(bad)


def test_a_service_holds_its_addresses_and_ports() -> None:
    svc = {
        "spec": {
            "type": "LoadBalancer",
            "clusterIP": "10.96.0.5",
            "clusterIPs": ["10.96.0.5"],
            "ports": [{"port": 80, "nodePort": 30001}, {"port": 81, "nodePort": 30002}],
            "healthCheckNodePort": 30003,
        }
    }
    held = used_values(svc)
    assert {value for _key, value in held} == {"10.96.0.5", "30001", "30002", "30003"}
    assert used_values({"spec": {"type": "ClusterIP", "clusterIP": "None", "ports": []}}) == set()
    assert used_values({"spec": {"type": "ExternalName", "externalName": "x.example.com"}}) == set()


def test_load_balancer_pools_take_ranges_and_cidrs() -> None:
    pool = AddressPool("172.18.255.200-172.18.255.202, 192.0.2.0/30")
    assert list(pool) == ["172.18.255.200", "172.18.255.201", "172.18.255.202", "192.0.2.1", "192.0.2.2"]
    assert "172.18.255.201" in pool and "172.18.255.203" not in pool and "junk" not in pool
    assert pool.first_free({"172.18.255.200"}) == "172.18.255.201"
    assert pool.first_free(set(pool)) is None
    assert not AddressPool("")
    with pytest.raises(ValueError):
        AddressPool("10.0.0.9-10.0.0.1")


# -- endpoints -------------------------------------------------------------------------------------
def pod(name: str, ip: str, ready: bool = True, port: int = 8080, **extra: Any) -> Obj:
    return {
        "metadata": {
            "name": name,
            "namespace": "ns",
            "uid": f"uid-{name}",
            "labels": {"app": "web"},
            **extra.pop("metadata", {}),
        },
        "spec": {
            "nodeName": "node-1",
            "containers": [{"name": "c", "ports": [{"name": "http", "containerPort": port}]}],
        },
        "status": {
            "phase": "Running",
            "podIP": ip,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


SERVICE: Obj = {
    "metadata": {"name": "web", "namespace": "ns", "uid": "svc-uid"},
    "spec": {
        "selector": {"app": "web"},
        "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
    },
}


def test_named_target_ports_resolve_per_pod_into_separate_groups() -> None:
    groups = desired_endpoints(SERVICE, [pod("a", "10.0.0.1"), pod("b", "10.0.0.2", port=9090)], {"node-1": "z1"})
    assert sorted(ports[0][1] for ports in groups) == [8080, 9090]
    endpoint = next(iter(groups[(("http", 8080, "TCP", ""),)].values()))
    assert endpoint == {
        "addresses": ["10.0.0.1"],
        "conditions": {"ready": True, "serving": True, "terminating": False},
        "targetRef": {"kind": "Pod", "namespace": "ns", "name": "a", "uid": "uid-a"},
        "nodeName": "node-1",
        "zone": "z1",
    }


def test_terminating_pods_are_not_ready_but_may_still_serve() -> None:
    dying = pod("a", "10.0.0.1", metadata={"deletionTimestamp": "2024-01-01T00:00:00Z"})
    groups = desired_endpoints(SERVICE, [dying], {})
    (endpoint,) = next(iter(groups.values())).values()
    assert endpoint["conditions"] == {"ready": False, "serving": True, "terminating": True}
    subsets, truncated = desired_subsets(SERVICE, [dying, pod("b", "10.0.0.2", ready=False)])
    assert not truncated
    assert subsets == [
        {
            "notReadyAddresses": [
                {
                    "ip": "10.0.0.2",
                    "nodeName": "node-1",
                    "targetRef": {"kind": "Pod", "namespace": "ns", "name": "b", "uid": "uid-b"},
                }
            ],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        }
    ]


def existing(name: str, ports: tuple[Any, ...], endpoints: list[Obj]) -> Obj:
    return {
        "metadata": {"name": name},
        "ports": [{"name": n, "port": p, "protocol": proto} for n, p, proto, _app in ports],
        "endpoints": endpoints,
    }


def test_slices_hold_at_most_100_endpoints_and_updates_touch_few_slices() -> None:
    pods = [pod(f"p{i}", f"10.0.{i // 250}.{i % 250 + 1}") for i in range(250)]
    desired = desired_endpoints(SERVICE, pods, {})
    plan = plan_slices(desired, [])
    assert [len(endpoints) for _ports, endpoints in plan.create] == [100, 100, 50]

    made = [existing(f"web-{i}", ports, endpoints) for i, (ports, endpoints) in enumerate(plan.create)]
    assert plan_slices(desired, made).empty

    # One pod goes away and one comes: only the slice that lost a pod changes, and it takes the new one.
    gone = pods[5]
    newcomer = pod("new", "10.9.9.9")
    after = desired_endpoints(SERVICE, [p for p in pods if p is not gone] + [newcomer], {})
    plan = plan_slices(after, made)
    assert not plan.create and not plan.delete
    ((slice_, endpoints),) = plan.update
    assert slice_["metadata"]["name"] == "web-0"
    assert {endpoint_key(e) for e in endpoints} == {endpoint_key(e) for e in made[0]["endpoints"]} - {"uid-p5"} | {
        "uid-new"
    }


def test_a_service_without_endpoints_keeps_one_empty_placeholder_slice() -> None:
    plan = plan_slices({}, [])
    assert plan.create == [((), [])]
    placeholder = existing("web-x", (), [])
    assert plan_slices({}, [placeholder]).empty
    desired = desired_endpoints(SERVICE, [pod("a", "10.0.0.1")], {})
    plan = plan_slices(desired, [placeholder])
    assert plan.delete == [placeholder]
    assert [slice_ports(existing("n", ports, [])) for ports, _ in plan.create] == [(("http", 8080, "TCP", ""),)]


# -- DNS -------------------------------------------------------------------------------------------
def view(services: list[Obj], slices: list[Obj], pods: list[Obj]) -> ClusterView:
    def find(namespace: str, name: str) -> Obj | None:
        return next((s for s in services if s["metadata"] == {"namespace": namespace, "name": name}), None)

    return ClusterView(
        service=find,
        slices_of=lambda ns, name: [
            s for s in slices if s["metadata"]["namespace"] == ns and s["metadata"]["labels"]["svc"] == name
        ],
        pods_with_ip=lambda ip: [p for p in pods if p["status"]["podIP"] == ip],
        namespace_has_services=lambda ns: any(s["metadata"]["namespace"] == ns for s in services),
    )


def dns_slice(name: str, endpoints: list[tuple[str, bool, str]]) -> Obj:
    return {
        "metadata": {"namespace": "default", "labels": {"svc": name}},
        "addressType": "IPv4",
        "ports": [{"name": "db", "port": 5432, "protocol": "TCP"}],
        "endpoints": [
            {"addresses": [ip], "conditions": {"ready": ready}, **({"hostname": host} if host else {})}
            for ip, ready, host in endpoints
        ],
    }


@pytest.fixture
def resolver() -> Resolver:
    services = [
        {"metadata": {"namespace": "default", "name": "web"},
         "spec": {"clusterIP": "10.96.0.10", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}},
        {"metadata": {"namespace": "default", "name": "db"},
         "spec": {"clusterIP": "None", "ports": [{"name": "db", "port": 5432, "protocol": "TCP"}]}},
        {"metadata": {"namespace": "default", "name": "ext"},
         "spec": {"type": "ExternalName", "externalName": "example.com"}},
    ]  # fmt: skip
    slices = [dns_slice("db", [("10.244.0.7", True, "db-0"), ("10.244.0.8", False, ""), ("10.244.0.6", True, "")])]
    pods = [{"metadata": {"namespace": "default"}, "status": {"podIP": "10.244.0.7"}}]
    return Resolver(view(services, slices, pods), "cluster.local")


def addresses(answer: Any) -> list[str]:
    return [str(rr.rdata) for rr in answer.answers]


def test_dns_answers_cluster_ips_headless_endpoints_and_external_names(resolver: Resolver) -> None:
    assert addresses(resolver.resolve("web.default.svc.cluster.local.", QTYPE.A)) == ["10.96.0.10"]
    assert addresses(resolver.resolve("WEB.Default.svc.cluster.local", QTYPE.A)) == ["10.96.0.10"]
    assert addresses(resolver.resolve("db.default.svc.cluster.local.", QTYPE.A)) == ["10.244.0.6", "10.244.0.7"]
    assert addresses(resolver.resolve("db-0.db.default.svc.cluster.local.", QTYPE.A)) == ["10.244.0.7"]
    assert addresses(resolver.resolve("ext.default.svc.cluster.local.", QTYPE.A)) == ["example.com."]
    aaaa = resolver.resolve("web.default.svc.cluster.local.", QTYPE.AAAA)
    assert aaaa.rcode == RCODE.NOERROR and not aaaa.answers and aaaa.authority


def test_dns_srv_records_name_ports_and_pod_records_need_a_pod(resolver: Resolver) -> None:
    srv = resolver.resolve("_http._tcp.web.default.svc.cluster.local.", QTYPE.SRV)
    assert [(rr.rdata.port, str(rr.rdata.target)) for rr in srv.answers] == [(80, "web.default.svc.cluster.local.")]
    assert [str(rr.rdata) for rr in srv.additional] == ["10.96.0.10"]
    headless = resolver.resolve("_db._tcp.db.default.svc.cluster.local.", QTYPE.SRV)
    assert sorted((rr.rdata.port, str(rr.rdata.target)) for rr in headless.answers) == [
        (5432, "10-244-0-6.db.default.svc.cluster.local."),
        (5432, "db-0.db.default.svc.cluster.local."),
    ]
    assert resolver.resolve("_nope._tcp.web.default.svc.cluster.local.", QTYPE.SRV).rcode == RCODE.NXDOMAIN
    assert addresses(resolver.resolve("10-244-0-7.default.pod.cluster.local.", QTYPE.A)) == ["10.244.0.7"]
    assert resolver.resolve("10-244-0-9.default.pod.cluster.local.", QTYPE.A).rcode == RCODE.NXDOMAIN


def test_dns_unknown_names_are_nxdomain_and_other_zones_refused(resolver: Resolver) -> None:
    assert resolver.resolve("missing.default.svc.cluster.local.", QTYPE.A).rcode == RCODE.NXDOMAIN
    assert resolver.resolve("web.other.svc.cluster.local.", QTYPE.A).rcode == RCODE.NXDOMAIN
    assert resolver.resolve("what.cluster.local.", QTYPE.A).rcode == RCODE.NXDOMAIN
    assert resolver.resolve("example.com.", QTYPE.A).rcode == RCODE.REFUSED
    assert resolver.resolve("default.svc.cluster.local.", QTYPE.A).rcode == RCODE.NOERROR
