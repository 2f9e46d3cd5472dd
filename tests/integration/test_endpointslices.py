"""The EndpointSlice and Endpoints controllers: the pods a Service selects, as a real cluster lists them.

Pods get their IPs and readiness here from the test itself, writing pods/<name>/status as a kubelet
would.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.support import ApiServer, Kubectl, controller_manager

SLICES = "/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices"
MANAGED_BY = "endpointslice.kubernetes.io/managed-by=endpointslice-controller.k8s.io"
MERGE = {"Content-Type": "application/merge-patch+json"}


@pytest.fixture(scope="module")
def controllers(apiserver: ApiServer) -> Iterator[None]:
    with controller_manager(apiserver, "endpointslice,endpoints"):
        yield


@pytest.fixture(scope="module")
def api(apiserver: ApiServer, controllers: None) -> Iterator[httpx.Client]:
    with apiserver.client(timeout=30) as client:
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": "node-a", "labels": {"topology.kubernetes.io/zone": "zone-a"}},
        }
        assert client.post("/api/v1/nodes", json=node).status_code == 201
        yield client


@pytest.fixture
def ns(api: httpx.Client) -> str:
    name = f"eps-{uuid.uuid4().hex[:8]}"
    assert api.post("/api/v1/namespaces", json={"apiVersion": "v1", "kind": "Namespace",
                                                "metadata": {"name": name}}).status_code == 201  # fmt: skip
    return name


def eventually(check: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def make_service(api: httpx.Client, ns: str, name: str, **spec: Any) -> dict[str, Any]:
    spec.setdefault("selector", {"app": name})
    spec.setdefault("ports", [{"name": "http", "port": 80, "targetPort": "http"}])
    body = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}
    response = api.post(f"/api/v1/namespaces/{ns}/services", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def make_pod(
    api: httpx.Client, ns: str, name: str, ip: str | None, ready: bool = True, port: int = 8080, app: str = "web"
) -> dict[str, Any]:
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": app}},
        "spec": {
            "nodeName": "node-a",
            "containers": [{"name": "app", "image": "nginx", "ports": [{"name": "http", "containerPort": port}]}],
        },
    }
    response = api.post(f"/api/v1/namespaces/{ns}/pods", json=body)
    assert response.status_code == 201, response.text
    if ip is not None:
        set_status(api, ns, name, ip, ready)
    return response.json()


def set_status(api: httpx.Client, ns: str, name: str, ip: str, ready: bool) -> None:
    status = {
        "phase": "Running",
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
    }
    response = api.patch(f"/api/v1/namespaces/{ns}/pods/{name}/status", json={"status": status}, headers=MERGE)
    assert response.status_code == 200, response.text


def slices_of(api: httpx.Client, ns: str, service: str) -> list[dict[str, Any]]:
    selector = f"kubernetes.io/service-name={service},{MANAGED_BY}"
    return api.get(SLICES.format(ns=ns), params={"labelSelector": selector}).json()["items"]


def endpoints_by_ip(slices: list[dict[str, Any]]) -> dict[str, tuple[int | None, dict[str, Any]]]:
    found = {}
    for slice_ in slices:
        port = slice_["ports"][0]["port"] if slice_.get("ports") else None
        for endpoint in slice_.get("endpoints") or []:
            found[endpoint["addresses"][0]] = (port, endpoint)
    return found


def get_endpoints(api: httpx.Client, ns: str, name: str) -> dict[str, Any] | None:
    response = api.get(f"/api/v1/namespaces/{ns}/endpoints/{name}")
    return response.json() if response.status_code == 200 else None


def test_selected_pods_become_endpoints_with_ports_resolved_per_pod(api: httpx.Client, ns: str) -> None:
    svc = make_service(api, ns, "web", selector={"app": "web"})
    make_pod(api, ns, "a", "10.244.1.1", port=8080)
    make_pod(api, ns, "b", "10.244.1.2", port=9090)  # the same port name, another number
    make_pod(api, ns, "c", "10.244.1.3", ready=False)
    make_pod(api, ns, "no-ip", None)
    make_pod(api, ns, "other", "10.244.1.9", app="other")

    def settled() -> list[dict[str, Any]] | None:
        slices = slices_of(api, ns, "web")
        return slices if set(endpoints_by_ip(slices)) == {"10.244.1.1", "10.244.1.2", "10.244.1.3"} else None

    slices = eventually(settled, what="three endpoints")
    assert sorted(s["ports"][0]["port"] for s in slices) == [8080, 9090]
    for slice_ in slices:
        assert slice_["addressType"] == "IPv4"
        assert slice_["ports"][0]["name"] == "http" and slice_["ports"][0]["protocol"] == "TCP"
        labels = slice_["metadata"]["labels"]
        assert labels["kubernetes.io/service-name"] == "web"
        assert labels["endpointslice.kubernetes.io/managed-by"] == "endpointslice-controller.k8s.io"
        (owner,) = slice_["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
            "Service", "web", svc["metadata"]["uid"], True
        )  # fmt: skip
    by_ip = endpoints_by_ip(slices)
    port, a = by_ip["10.244.1.1"]
    assert port == 8080
    assert a["conditions"] == {"ready": True, "serving": True, "terminating": False}
    assert a["nodeName"] == "node-a" and a["zone"] == "zone-a"
    assert a["targetRef"]["kind"] == "Pod" and a["targetRef"]["name"] == "a" and a["targetRef"]["namespace"] == ns
    assert by_ip["10.244.1.2"][0] == 9090
    assert by_ip["10.244.1.3"][1]["conditions"]["ready"] is False

    endpoints = eventually(lambda: get_endpoints(api, ns, "web"), what="the Endpoints object")
    subsets = sorted(endpoints["subsets"], key=lambda s: s["ports"][0]["port"])
    assert [a["ip"] for a in subsets[0]["addresses"]] == ["10.244.1.1"]
    assert [a["ip"] for a in subsets[0]["notReadyAddresses"]] == ["10.244.1.3"]
    assert subsets[0]["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    assert [a["ip"] for a in subsets[1]["addresses"]] == ["10.244.1.2"]
    assert subsets[0]["addresses"][0]["targetRef"]["name"] == "a"
    assert subsets[0]["addresses"][0]["nodeName"] == "node-a"


def test_readiness_and_termination_are_followed(api: httpx.Client, ns: str) -> None:
    make_service(api, ns, "web", selector={"app": "web"})
    make_pod(api, ns, "a", "10.244.2.1", ready=False)
    make_pod(api, ns, "b", "10.244.2.2")

    def conditions(ip: str) -> dict[str, Any] | None:
        found = endpoints_by_ip(slices_of(api, ns, "web")).get(ip)
        return found[1]["conditions"] if found else None

    eventually(lambda: conditions("10.244.2.1") == {"ready": False, "serving": False, "terminating": False})
    set_status(api, ns, "a", "10.244.2.1", ready=True)
    eventually(lambda: conditions("10.244.2.1") == {"ready": True, "serving": True, "terminating": False},
               what="a to become ready")  # fmt: skip

    def ready_ips() -> set[str]:
        endpoints = get_endpoints(api, ns, "web") or {}
        return {a["ip"] for subset in endpoints.get("subsets") or [] for a in subset.get("addresses") or []}

    eventually(lambda: ready_ips() == {"10.244.2.1", "10.244.2.2"}, what="both ready in Endpoints")

    # A pod on a node is deleted gracefully: it stays, terminating, until its kubelet is done.
    response = api.delete(f"/api/v1/namespaces/{ns}/pods/b")
    assert response.status_code == 200
    eventually(lambda: conditions("10.244.2.2") == {"ready": False, "serving": True, "terminating": True},
               what="b terminating")  # fmt: skip
    eventually(lambda: ready_ips() == {"10.244.2.1"}, what="b out of the Endpoints")

    # Gone for good.
    api.delete(f"/api/v1/namespaces/{ns}/pods/b", params={"gracePeriodSeconds": "0"})
    eventually(lambda: conditions("10.244.2.2") is None, what="b out of the slices")


def test_a_slice_holds_at_most_100_endpoints_and_changes_touch_one_slice(api: httpx.Client, ns: str) -> None:
    make_service(api, ns, "big", selector={"app": "big"})
    for i in range(150):
        make_pod(api, ns, f"p{i}", f"10.244.{10 + i // 200}.{i % 200 + 1}", app="big")

    def all_in() -> list[dict[str, Any]] | None:
        slices = slices_of(api, ns, "big")
        return slices if len(endpoints_by_ip(slices)) == 150 else None

    slices = eventually(all_in, timeout=60, what="150 endpoints")
    assert sorted(len(s["endpoints"]) for s in slices) == [50, 100]
    versions = {s["metadata"]["name"]: s["metadata"]["resourceVersion"] for s in slices}

    api.delete(f"/api/v1/namespaces/{ns}/pods/p7", params={"gracePeriodSeconds": "0"})
    victim_ip = "10.244.10.8"

    def without_victim() -> list[dict[str, Any]] | None:
        slices = slices_of(api, ns, "big")
        found = endpoints_by_ip(slices)
        return slices if len(found) == 149 and victim_ip not in found else None

    after = eventually(without_victim, what="p7 to leave")
    changed = [
        s["metadata"]["name"] for s in after if versions.get(s["metadata"]["name"]) != s["metadata"]["resourceVersion"]
    ]
    assert len(changed) == 1
    assert {s["metadata"]["name"] for s in after} == set(versions)


def test_a_service_without_a_selector_is_left_alone(api: httpx.Client, ns: str) -> None:
    body = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "manual"},
            "spec": {"ports": [{"port": 5432}]}}  # fmt: skip
    assert api.post(f"/api/v1/namespaces/{ns}/services", json=body).status_code == 201
    endpoints = {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": "manual"},
        "subsets": [{"addresses": [{"ip": "192.0.2.10"}], "ports": [{"port": 5432}]}],
    }
    assert api.post(f"/api/v1/namespaces/{ns}/endpoints", json=endpoints).status_code == 201
    # A Service with a selector in the same namespace, to know the controllers have had their turn.
    make_service(api, ns, "web", selector={"app": "web"})
    make_pod(api, ns, "a", "10.244.3.1")
    eventually(lambda: endpoints_by_ip(slices_of(api, ns, "web")), what="the web slice")
    eventually(lambda: get_endpoints(api, ns, "web"), what="the web Endpoints")
    assert slices_of(api, ns, "manual") == []
    assert get_endpoints(api, ns, "manual")["subsets"][0]["addresses"] == [{"ip": "192.0.2.10"}]


def test_a_service_without_pods_has_an_empty_slice_and_deleting_it_removes_its_endpoints(
    api: httpx.Client, ns: str
) -> None:
    make_service(api, ns, "lonely")
    placeholder = eventually(lambda: slices_of(api, ns, "lonely"), what="the placeholder slice")
    assert [s.get("endpoints") or [] for s in placeholder] == [[]]
    assert eventually(lambda: get_endpoints(api, ns, "lonely"), what="empty Endpoints").get("subsets") in (None, [])
    assert api.delete(f"/api/v1/namespaces/{ns}/services/lonely").status_code == 200
    eventually(lambda: get_endpoints(api, ns, "lonely") is None, what="the Endpoints to go")
    eventually(lambda: slices_of(api, ns, "lonely") == [], what="the slices to go")


def test_kubectl_shows_the_endpoints(api: httpx.Client, kubectl: Kubectl, ns: str) -> None:
    make_service(api, ns, "web", selector={"app": "web"})
    make_pod(api, ns, "a", "10.244.4.1")
    make_pod(api, ns, "b", "10.244.4.2")
    make_pod(api, ns, "c", "10.244.4.3", ready=False)

    def listed() -> str | None:
        out = kubectl("get", "endpoints", "web", "-n", ns)
        return out if "10.244.4.1:8080,10.244.4.2:8080" in out else None

    out = eventually(listed, what="kubectl get endpoints")
    assert "10.244.4.3" not in out
    described = kubectl("describe", "service", "web", "-n", ns)
    assert "10.244.4.1:8080" in described and "10.244.4.2:8080" in described
    slices = kubectl("get", "endpointslices", "-n", ns, "-l", "kubernetes.io/service-name=web")
    assert "IPv4" in slices and "8080" in slices
