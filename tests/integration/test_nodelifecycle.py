"""Node lifecycle against a real API server and controller-manager, with short grace periods: a node whose
Lease stops being renewed turns Unknown and tainted, its pods are evicted once their tolerations run out
(pods that tolerate it forever stay), and the taints go when it reports again."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.support import ApiServer, controller_manager, free_port

NAMESPACE = "lifecycle"
PODS = f"/api/v1/namespaces/{NAMESPACE}/pods"
LEASES = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"
GRACE_SECONDS = 3
TOLERATION_SECONDS = 3
MERGE = {"Content-Type": "application/merge-patch+json"}
Obj = dict[str, Any]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    seconds = str(TOLERATION_SECONDS)
    flags = ["--default-not-ready-toleration-seconds", seconds, "--default-unreachable-toleration-seconds", seconds]
    api = ApiServer(tmp_path_factory.mktemp("lifecycle"), free_port(), extra_args=flags).start()
    yield api
    api.stop()


@pytest.fixture(scope="module")
def admin(server: ApiServer) -> Iterator[httpx.Client]:
    with server.client(timeout=30) as client:
        assert client.post("/api/v1/namespaces", json={"metadata": {"name": NAMESPACE}}).status_code == 201
        flags = ["--node-monitor-grace-period", str(GRACE_SECONDS), "--node-monitor-period", "0.5"]
        with controller_manager(server, "nodelifecycle", *flags):
            yield client


def stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def micro_stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def report(client: httpx.Client, node: str, ready: str) -> None:
    """Post the node's Ready condition, as its kubelet would."""
    reason = "KubeletReady" if ready == "True" else "KubeletNotReady"
    condition = {"type": "Ready", "status": ready, "reason": reason, "message": "reported by the test",
                 "lastHeartbeatTime": stamp(), "lastTransitionTime": stamp()}  # fmt: skip
    response = client.patch(f"/api/v1/nodes/{node}/status", json={"status": {"conditions": [condition]}}, headers=MERGE)
    assert response.status_code == 200, response.text


class Heartbeat:
    """Renews a node's Lease every 0.3 s while running, like a live kubelet."""

    def __init__(self, server: ApiServer, node: str) -> None:
        self.server, self.node = server, node
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Heartbeat:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        with self.server.client(timeout=10) as client:
            while not self._stop.is_set():
                with contextlib.suppress(httpx.HTTPError):
                    client.patch(f"{LEASES}/{self.node}", json={"spec": {"renewTime": micro_stamp()}}, headers=MERGE)
                self._stop.wait(0.3)


def register(client: httpx.Client, server: ApiServer, name: str, ready: str = "True") -> Heartbeat:
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}}
    assert client.post("/api/v1/nodes", json=node).status_code == 201
    report(client, name, ready)
    lease = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name},
        "spec": {"holderIdentity": name, "leaseDurationSeconds": GRACE_SECONDS, "renewTime": micro_stamp()},
    }
    assert client.post(LEASES, json=lease).status_code == 201
    return Heartbeat(server, name).start()


def create_pod(client: httpx.Client, name: str, node: str, tolerations: list[Obj] | None = None) -> Obj:
    spec: Obj = {"nodeName": node, "containers": [{"name": "app", "image": "nginx"}]}
    if tolerations is not None:
        spec["tolerations"] = tolerations
    response = client.post(PODS, json={"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec})
    assert response.status_code == 201, response.text
    return response.json()


def get(client: httpx.Client, path: str) -> Obj:
    response = client.get(path)
    assert response.status_code == 200, response.text
    return response.json()


def lifecycle_taints(node: Obj) -> set[str]:
    return {
        f"{t['key']}:{t['effect']}" for t in node.get("spec", {}).get("taints") or [] if t["key"].startswith("node.k")
    }


def ready_condition(obj: Obj) -> Obj:
    return next(c for c in obj["status"].get("conditions") or [] if c["type"] == "Ready")


def eventually(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting until {what}")


def test_new_pods_tolerate_lost_nodes_for_the_configured_time(admin: httpx.Client) -> None:
    pod = create_pod(admin, "defaulted", "nowhere")
    tolerations = {(t["key"], t["effect"], t.get("tolerationSeconds")) for t in pod["spec"]["tolerations"]}
    assert ("node.kubernetes.io/not-ready", "NoExecute", TOLERATION_SECONDS) in tolerations
    assert ("node.kubernetes.io/unreachable", "NoExecute", TOLERATION_SECONDS) in tolerations
    # A pod that says how long it tolerates unreachable nodes keeps its own toleration.
    forever = [{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"}]
    pod = create_pod(admin, "own-toleration", "nowhere", forever)
    unreachable = [t for t in pod["spec"]["tolerations"] if t["key"] == "node.kubernetes.io/unreachable"]
    assert unreachable == forever


def test_lost_node_is_tainted_its_pods_evicted_and_recovery_clears_it(admin: httpx.Client, server: ApiServer) -> None:
    heartbeat = register(admin, server, "lost-node")
    doomed = create_pod(admin, "doomed", "lost-node")
    forever = [{"operator": "Exists"}]
    create_pod(admin, "stays", "lost-node", forever)
    ready = {"type": "Ready", "status": "True", "lastTransitionTime": stamp()}
    response = admin.patch(f"{PODS}/stays/status", json={"status": {"conditions": [ready]}}, headers=MERGE)
    assert response.status_code == 200, response.text

    # While the lease is renewed the node stays healthy, well past the grace period.
    time.sleep(GRACE_SECONDS + 1)
    node = get(admin, "/api/v1/nodes/lost-node")
    assert ready_condition(node)["status"] == "True" and not lifecycle_taints(node)

    heartbeat.stop()
    eventually(lambda: bool(lifecycle_taints(get(admin, "/api/v1/nodes/lost-node"))), "the lost node is tainted")
    node = get(admin, "/api/v1/nodes/lost-node")
    assert lifecycle_taints(node) == {
        "node.kubernetes.io/unreachable:NoSchedule",
        "node.kubernetes.io/unreachable:NoExecute",
    }
    condition = ready_condition(node)
    assert (condition["status"], condition["reason"]) == ("Unknown", "NodeStatusUnknown")
    assert condition["message"] == "Kubelet stopped posting node status."
    assert all(c["status"] == "Unknown" for c in node["status"]["conditions"])
    # Its pods are no longer Ready, and the doomed pod still has its tolerationSeconds to go.
    assert not get(admin, f"{PODS}/doomed")["metadata"].get("deletionTimestamp")
    eventually(lambda: ready_condition(get(admin, f"{PODS}/stays"))["status"] == "False", "pods are marked not Ready")

    def evicted() -> bool:
        response = admin.get(f"{PODS}/doomed")
        return response.status_code == 404 or bool(response.json()["metadata"].get("deletionTimestamp"))

    eventually(evicted, "the pod without a lasting toleration is evicted")

    def eviction_events() -> list[dict[str, Any]]:
        events = get(admin, f"/api/v1/namespaces/{NAMESPACE}/events")["items"]
        return [e for e in events if e["reason"] == "TaintManagerEviction" and e["involvedObject"]["name"] == "doomed"]

    # The event recorder posts in the background, so the event may trail the deletion a little.
    eventually(lambda: bool(eviction_events()), "the eviction is recorded as an event")
    eviction = eviction_events()
    assert eviction[0]["message"] == f"Marking for deletion Pod {NAMESPACE}/doomed"
    assert eviction[0]["involvedObject"]["uid"] == doomed["metadata"]["uid"]
    time.sleep(1.0)
    assert not get(admin, f"{PODS}/stays")["metadata"].get("deletionTimestamp"), "a pod tolerating forever stays"

    heartbeat.start()
    report(admin, "lost-node", "True")
    eventually(lambda: not lifecycle_taints(get(admin, "/api/v1/nodes/lost-node")), "the taints are removed")
    heartbeat.stop()


def test_not_ready_node_gets_not_ready_taints_until_it_recovers(admin: httpx.Client, server: ApiServer) -> None:
    heartbeat = register(admin, server, "sick-node", ready="False")
    try:
        expected = {"node.kubernetes.io/not-ready:NoSchedule", "node.kubernetes.io/not-ready:NoExecute"}
        eventually(lambda: lifecycle_taints(get(admin, "/api/v1/nodes/sick-node")) == expected, "not-ready taints")
        report(admin, "sick-node", "True")
        eventually(lambda: not lifecycle_taints(get(admin, "/api/v1/nodes/sick-node")), "the taints are removed")
    finally:
        heartbeat.stop()
