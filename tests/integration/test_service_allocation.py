"""ClusterIPs and nodePorts from the API server, the `kubernetes` Service, and load balancer addresses.

Allocations are taken in storage, so they hold across concurrent requests and across API servers that
share a PostgreSQL database.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.support import ApiServer, controller_manager, free_port

SERVICE_RANGE = ipaddress.ip_network("10.96.0.0/12")


def service(name: str, **spec: Any) -> dict[str, Any]:
    spec.setdefault("ports", [{"port": 80}])
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}


def services_path(namespace: str) -> str:
    return f"/api/v1/namespaces/{namespace}/services"


@pytest.fixture(scope="module")
def api(apiserver: ApiServer) -> Iterator[httpx.Client]:
    with apiserver.client(timeout=30) as client:
        yield client


@pytest.fixture
def namespace(api: httpx.Client) -> str:
    name = f"svc-{uuid.uuid4().hex[:8]}"
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    assert api.post("/api/v1/namespaces", json=body).status_code == 201
    return name


def create(api: httpx.Client, namespace: str, body: dict[str, Any], expect: int = 201) -> dict[str, Any]:
    response = api.post(services_path(namespace), json=body)
    assert response.status_code == expect, response.text
    return response.json()


def merge_patch(api: httpx.Client, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
    response = api.patch(
        f"{services_path(namespace)}/{name}", json=patch, headers={"Content-Type": "application/merge-patch+json"}
    )
    assert response.status_code == 200, response.text
    return response.json()


def eventually(check: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def node_ports(svc: dict[str, Any]) -> list[int]:
    return [port["nodePort"] for port in svc["spec"]["ports"] if port.get("nodePort")]


# -- the kubernetes Service ------------------------------------------------------------------------
def test_the_kubernetes_service_has_the_first_address_and_lists_the_api_server(
    api: httpx.Client, apiserver: ApiServer
) -> None:
    svc = api.get("/api/v1/namespaces/default/services/kubernetes").json()
    assert svc["spec"]["clusterIP"] == "10.96.0.1"
    assert svc["spec"]["ports"] == [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": apiserver.port}]

    def endpoints() -> dict[str, Any] | None:
        response = api.get("/api/v1/namespaces/default/endpoints/kubernetes")
        return response.json() if response.status_code == 200 else None

    subsets = eventually(endpoints, what="the kubernetes endpoints")["subsets"]
    assert subsets == [
        {"addresses": [{"ip": "127.0.0.1"}], "ports": [{"name": "https", "port": apiserver.port, "protocol": "TCP"}]}
    ]
    slice_ = api.get("/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/kubernetes").json()
    assert slice_["metadata"]["labels"]["kubernetes.io/service-name"] == "kubernetes"
    assert [e["addresses"] for e in slice_["endpoints"]] == [["127.0.0.1"]]
    assert slice_["ports"] == [{"name": "https", "port": apiserver.port, "protocol": "TCP"}]
    # Nobody else can have its address.
    refused = create(api, "default", service("steal", clusterIP="10.96.0.1"), expect=422)
    assert 'spec.clusterIPs: Invalid value: "10.96.0.1": provided IP is already allocated' in refused["message"]


# -- ClusterIPs ------------------------------------------------------------------------------------
def test_a_requested_cluster_ip_is_reserved_refused_when_taken_and_released_on_delete(
    api: httpx.Client, namespace: str
) -> None:
    first = create(api, namespace, service("first", clusterIP="10.96.0.10"))
    assert first["spec"]["clusterIP"] == "10.96.0.10"
    assert first["spec"]["clusterIPs"] == ["10.96.0.10"]

    refused = create(api, namespace, service("second", clusterIP="10.96.0.10"), expect=422)
    assert refused["reason"] == "Invalid"
    assert refused["message"] == (
        'Service "second" is invalid: spec.clusterIPs: Invalid value: "10.96.0.10": provided IP is already allocated'
    )
    assert refused["details"]["causes"][0]["field"] == "spec.clusterIPs"
    assert api.get(f"{services_path(namespace)}/second").status_code == 404

    assert api.delete(f"{services_path(namespace)}/first").status_code == 200
    again = create(api, namespace, service("second", clusterIP="10.96.0.10"))
    assert again["spec"]["clusterIP"] == "10.96.0.10"


def test_a_cluster_ip_outside_the_range_is_refused(api: httpx.Client, namespace: str) -> None:
    refused = create(api, namespace, service("outside", clusterIP="10.0.0.5"), expect=422)
    assert "spec.clusterIPs" in refused["message"]
    assert "The range of valid IPs is 10.96.0.0/12" in refused["message"]


def test_automatic_cluster_ips_come_from_the_range_and_stay_on_update(api: httpx.Client, namespace: str) -> None:
    created = create(api, namespace, service("auto", selector={"app": "x"}))
    ip = created["spec"]["clusterIP"]
    assert ipaddress.ip_address(ip) in SERVICE_RANGE
    assert ip not in ("10.96.0.0", "10.96.0.1")
    # A client re-sending its manifest without the address keeps it.
    resent = {**service("auto", selector={"app": "y"}), "metadata": created["metadata"]}
    response = api.put(f"{services_path(namespace)}/auto", json=resent)
    assert response.status_code == 200, response.text
    assert response.json()["spec"]["clusterIP"] == ip
    # It may not be changed.
    moved = merge_patch_status = api.patch(
        f"{services_path(namespace)}/auto",
        json={"spec": {"clusterIP": "10.96.0.77", "clusterIPs": ["10.96.0.77"]}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert moved.status_code == 422, merge_patch_status.text
    assert "may not change once set" in moved.json()["message"]


def test_headless_and_external_name_services_get_no_address(api: httpx.Client, namespace: str) -> None:
    headless = create(api, namespace, service("headless", clusterIP="None", selector={"app": "db"}))
    assert headless["spec"]["clusterIP"] == "None"
    external = create(api, namespace, service("ext", type="ExternalName", externalName="db.example.com", ports=[]))
    assert "clusterIP" not in external["spec"]
    # Switching an ExternalName Service to ClusterIP allocates an address; switching back releases it.
    switched = merge_patch(api, namespace, "ext", {"spec": {"type": "ClusterIP", "externalName": None,
                                                            "ports": [{"port": 80}]}})  # fmt: skip
    ip = switched["spec"]["clusterIP"]
    assert ipaddress.ip_address(ip) in SERVICE_RANGE
    merge_patch(api, namespace, "ext", {"spec": {"type": "ExternalName", "externalName": "db.example.com",
                                                 "clusterIP": None, "clusterIPs": None}})  # fmt: skip
    reused = create(api, namespace, service("reuse", clusterIP=ip))
    assert reused["spec"]["clusterIP"] == ip


def test_a_dry_run_create_shows_an_address_but_reserves_nothing(api: httpx.Client, namespace: str) -> None:
    response = api.post(services_path(namespace), params={"dryRun": "All"}, json=service("dry", clusterIP="10.96.0.40"))
    assert response.status_code == 201, response.text
    assert response.json()["spec"]["clusterIP"] == "10.96.0.40"
    auto = api.post(services_path(namespace), params={"dryRun": "All"}, json=service("dry-auto")).json()
    assert ipaddress.ip_address(auto["spec"]["clusterIP"]) in SERVICE_RANGE
    assert create(api, namespace, service("real", clusterIP="10.96.0.40"))["spec"]["clusterIP"] == "10.96.0.40"


async def test_200_concurrent_creates_get_200_distinct_cluster_ips(apiserver: ApiServer, namespace: str) -> None:
    async with apiserver.async_client(timeout=60, limits=httpx.Limits(max_connections=50)) as client:
        responses = await asyncio.gather(
            *(client.post(services_path(namespace), json=service(f"many-{i}")) for i in range(200))
        )
    assert [r.status_code for r in responses] == [201] * 200
    ips = [r.json()["spec"]["clusterIP"] for r in responses]
    assert len(set(ips)) == 200
    assert all(ipaddress.ip_address(ip) in SERVICE_RANGE for ip in ips)


async def test_concurrent_requests_for_one_address_have_exactly_one_winner(
    apiserver: ApiServer, namespace: str
) -> None:
    async with apiserver.async_client(timeout=60) as client:
        responses = await asyncio.gather(
            *(
                client.post(services_path(namespace), json=service(f"race-{i}", clusterIP="10.96.0.99"))
                for i in range(20)
            )
        )
    codes = sorted(r.status_code for r in responses)
    assert codes == [201] + [422] * 19
    assert all("provided IP is already allocated" in r.json()["message"] for r in responses if r.status_code == 422)


# -- nodePorts -------------------------------------------------------------------------------------
def test_node_ports_are_allocated_reserved_and_released_when_the_type_changes(
    api: httpx.Client, namespace: str
) -> None:
    ports = [{"name": "http", "port": 80, "nodePort": 30080}, {"name": "https", "port": 443}]
    web = create(api, namespace, service("web", type="NodePort", ports=ports))
    assigned = node_ports(web)
    assert assigned[0] == 30080
    assert 30000 <= assigned[1] <= 32767 and assigned[1] != 30080

    refused = create(api, namespace, service("clash", type="NodePort", ports=[{"port": 80, "nodePort": 30080}]), 422)
    assert refused["message"] == (
        'Service "clash" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated'
    )
    # The refused request left nothing behind: its automatic ClusterIP is free again, so nothing leaks.
    assert api.get(f"{services_path(namespace)}/clash").status_code == 404

    # Becoming a ClusterIP Service gives the ports back.
    plain = merge_patch(api, namespace, "web", {"spec": {"type": "ClusterIP"}})
    assert node_ports(plain) == []
    assert "externalTrafficPolicy" not in plain["spec"]
    taken_back = create(api, namespace, service("clash", type="NodePort", ports=[{"port": 80, "nodePort": 30080}]))
    assert node_ports(taken_back) == [30080]

    # Deleting a Service gives its ports back.
    assert api.delete(f"{services_path(namespace)}/clash").status_code == 200
    create(api, namespace, service("after", type="NodePort", ports=[{"port": 80, "nodePort": 30080}]))


def test_a_node_port_is_kept_when_a_manifest_is_reapplied_without_it(api: httpx.Client, namespace: str) -> None:
    created = create(api, namespace, service("np", type="NodePort"))
    allocated = node_ports(created)
    assert len(allocated) == 1
    resent = {**service("np", type="NodePort"), "metadata": created["metadata"]}
    response = api.put(f"{services_path(namespace)}/np", json=resent)
    assert response.status_code == 200, response.text
    assert node_ports(response.json()) == allocated


def test_load_balancer_with_local_traffic_gets_a_health_check_node_port(api: httpx.Client, namespace: str) -> None:
    lb = create(api, namespace, service("lb", type="LoadBalancer", externalTrafficPolicy="Local"))
    health = lb["spec"]["healthCheckNodePort"]
    assert 30000 <= health <= 32767
    assert health not in node_ports(lb)
    clash = create(api, namespace, service("clash", type="NodePort", ports=[{"port": 80, "nodePort": health}]), 422)
    assert "provided port is already allocated" in clash["message"]

    cluster = merge_patch(api, namespace, "lb", {"spec": {"externalTrafficPolicy": "Cluster"}})
    assert "healthCheckNodePort" not in cluster["spec"]
    create(api, namespace, service("clash", type="NodePort", ports=[{"port": 80, "nodePort": health}]))

    plain_lb = create(api, namespace, service("lb-cluster", type="LoadBalancer"))
    assert "healthCheckNodePort" not in plain_lb["spec"]
    assert len(node_ports(plain_lb)) == 1


# -- a small range ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_ranges(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    flags = ["--service-cluster-ip-range", "10.100.0.0/28", "--service-node-port-range", "31000-31002"]
    server = ApiServer(tmp_path_factory.mktemp("small"), free_port(), extra_args=flags).start()
    yield server
    server.stop()


def test_configured_ranges_are_used_and_exhaustion_is_a_clear_error(small_ranges: ApiServer) -> None:
    with small_ranges.client(timeout=30) as api:
        assert api.get("/api/v1/namespaces/default/services/kubernetes").json()["spec"]["clusterIP"] == "10.100.0.1"
        # A /28 has 16 addresses: minus the network, the kubernetes Service and the broadcast, 13 remain.
        ips = {create(api, "default", service(f"s{i}"))["spec"]["clusterIP"] for i in range(13)}
        assert ips == {f"10.100.0.{n}" for n in range(2, 15)}
        full = create(api, "default", service("one-too-many"), expect=500)
        assert full["message"] == "Internal error occurred: failed to allocate a serviceIP: range is full" or (
            "range is full" in full["message"]
        )
        assert api.delete(f"{services_path('default')}/s0").status_code == 200
        assert create(api, "default", service("one-too-many"))["spec"]["clusterIP"] in ips

        outside = service("np", type="NodePort", clusterIP="None", ports=[{"port": 80, "nodePort": 30080}])
        refused = create(api, "default", outside, expect=422)
        assert "The range of valid ports is 31000-31002" in refused["message"]


# -- two API servers on one PostgreSQL database ----------------------------------------------------
@pytest.fixture(scope="module")
def replicas(require_postgres: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ApiServer, ApiServer]]:
    from tests.support import postgres_database

    with postgres_database() as url:
        a = ApiServer(tmp_path_factory.mktemp("replica-a"), free_port(), url).start()
        try:
            b = ApiServer(tmp_path_factory.mktemp("replica-b"), free_port(), url).start()
        except Exception:
            a.stop()
            raise
        yield a, b
        b.stop()
        a.stop()


async def test_two_api_servers_never_hand_out_the_same_address_or_port(replicas: tuple[ApiServer, ApiServer]) -> None:
    a, b = replicas
    async with a.async_client(timeout=60) as first, b.async_client(timeout=60) as second:
        clients = [first, second]
        responses = await asyncio.gather(
            *(clients[i % 2].post(services_path("default"), json=service(f"pg-{i}")) for i in range(200))
        )
        assert [r.status_code for r in responses] == [201] * 200
        assert len({r.json()["spec"]["clusterIP"] for r in responses}) == 200

        same_port = [
            clients[i % 2].post(
                services_path("default"),
                json=service(f"np-{i}", type="NodePort", ports=[{"port": 80, "nodePort": 31500}]),
            )
            for i in range(10)
        ]
        outcomes = await asyncio.gather(*same_port)
        assert sorted(r.status_code for r in outcomes) == [201] + [422] * 9


def test_every_api_server_is_listed_behind_the_kubernetes_service(replicas: tuple[ApiServer, ApiServer]) -> None:
    a, b = replicas
    with a.client(timeout=30) as api:
        assert api.get("/api/v1/namespaces/default/services/kubernetes").json()["spec"]["clusterIP"] == "10.96.0.1"

        def both_listed() -> list[dict[str, Any]] | None:
            subsets = api.get("/api/v1/namespaces/default/endpoints/kubernetes").json().get("subsets") or []
            ports = sorted(port["port"] for subset in subsets for port in subset["ports"])
            return subsets if ports == sorted([a.port, b.port]) else None

        eventually(both_listed, what="both API servers in the kubernetes endpoints")
        b.stop()

        def only_a() -> bool:
            subsets = api.get("/api/v1/namespaces/default/endpoints/kubernetes").json().get("subsets") or []
            return [port["port"] for subset in subsets for port in subset["ports"]] == [a.port]

        eventually(only_a, what="the stopped API server to leave the kubernetes endpoints")
        b.start()
        eventually(both_listed, what="the restarted API server to come back")


# -- load balancer addresses -----------------------------------------------------------------------
@pytest.fixture
def lb_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """A cluster of its own, so that no other test's LoadBalancer Services take from the pool."""
    server = ApiServer(tmp_path_factory.mktemp("lb"), free_port()).start()
    yield server
    server.stop()


def test_load_balancer_services_get_addresses_from_the_pool(lb_server: ApiServer) -> None:
    pool = "172.18.255.200-172.18.255.202"
    namespace = "default"
    with (
        lb_server.client(timeout=30) as api,
        controller_manager(lb_server, "service-lb", "--load-balancer-ip-pool", pool),
    ):

        def ingress(name: str) -> list[str]:
            svc = api.get(f"{services_path(namespace)}/{name}").json()
            return [entry["ip"] for entry in (svc.get("status", {}).get("loadBalancer", {}).get("ingress") or [])]

        create(api, namespace, service("a", type="LoadBalancer"))
        assert eventually(lambda: ingress("a"), what="an address for a") == ["172.18.255.200"]
        create(api, namespace, service("b", type="LoadBalancer", loadBalancerIP="172.18.255.202"))
        assert eventually(lambda: ingress("b"), what="the requested address for b") == ["172.18.255.202"]
        create(api, namespace, service("c", type="LoadBalancer"))
        assert eventually(lambda: ingress("c"), what="an address for c") == ["172.18.255.201"]

        # The pool is empty now: d waits, and gets a's address once a is deleted.
        create(api, namespace, service("d", type="LoadBalancer"))
        create(api, namespace, service("outside", type="LoadBalancer", loadBalancerIP="192.0.2.1"))
        time.sleep(1)
        assert ingress("d") == [] and ingress("outside") == []
        events = api.get(f"/api/v1/namespaces/{namespace}/events").json()["items"]
        assert any(e["reason"] == "LoadBalancerIPNotAvailable" and e["involvedObject"]["name"] == "outside"
                   for e in events)  # fmt: skip
        assert api.delete(f"{services_path(namespace)}/a").status_code == 200
        assert eventually(lambda: ingress("d"), what="a's address going to d") == ["172.18.255.200"]

        # A Service that stops being a LoadBalancer gives its address back and loses its status.
        merge_patch(api, namespace, "c", {"spec": {"type": "ClusterIP"}})
        eventually(lambda: ingress("c") == [], what="c's status cleared")
        create(api, namespace, service("e", type="LoadBalancer"))
        assert eventually(lambda: ingress("e"), what="c's address going to e") == ["172.18.255.201"]
