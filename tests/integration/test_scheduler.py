"""`skiff scheduler` against a real API server: spreading, the Unschedulable condition and event that
`kubectl describe` shows, scheduling as soon as a big-enough node appears, node selectors and taints,
and leader election between two scheduler processes.

Nodes are created by hand (Ready, with allocatable resources); each test uses its own node names and
deletes its nodes and pods afterwards, so every test sees only its own nodes.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from tests.support import REPO_ROOT, ApiServer, Kubectl

T = TypeVar("T")
CONTROL_PLANE_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}


class SchedulerProcess:
    def __init__(self, server: ApiServer, kubeconfig: Path, *flags: str) -> None:
        self.log_path = server.data_dir / f"scheduler-{uuid.uuid4().hex[:6]}.log"
        command = [sys.executable, "-m", "skiff", "scheduler", "--kubeconfig", str(kubeconfig), *flags]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def eventually(probe: Callable[[], T | None], timeout: float = 20.0, what: str = "condition") -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = probe()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"{what} not reached within {timeout}s")


@pytest.fixture(scope="module")
def scheduler_kubeconfig(apiserver: ApiServer) -> Path:
    """The scheduler's own identity (system:kube-scheduler), so its RBAC role is exercised too."""
    command = [sys.executable, "-m", "skiff", "pki", "components", "--data-dir", str(apiserver.data_dir),
               "--server", apiserver.url]  # fmt: skip
    subprocess.run(command, check=True, cwd=REPO_ROOT, capture_output=True)
    return apiserver.data_dir / "kubeconfigs" / "scheduler.kubeconfig"


@pytest.fixture(scope="module")
def scheduler(apiserver: ApiServer, scheduler_kubeconfig: Path) -> Iterator[SchedulerProcess]:
    flags = ["--leader-elect-lease-duration", "4", "--leader-elect-renew-deadline", "3",
             "--leader-elect-retry-period", "0.5"]  # fmt: skip
    process = SchedulerProcess(apiserver, scheduler_kubeconfig, *flags)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def api(apiserver: ApiServer) -> Iterator[httpx.Client]:
    with apiserver.client(timeout=30) as client:
        yield client


class Cluster:
    """Nodes and pods made by one test, removed when it ends."""

    def __init__(self, api: httpx.Client) -> None:
        self.api = api
        self.prefix = f"s{uuid.uuid4().hex[:5]}"
        self.namespace = f"sched-{self.prefix}"
        self.nodes: list[str] = []
        api.post("/api/v1/namespaces", json={"metadata": {"name": self.namespace}}).raise_for_status()

    def node(self, name: str, cpu: str = "4", memory: str = "8Gi", **spec: Any) -> str:
        full = f"{self.prefix}-{name}"
        labels = {"kubernetes.io/hostname": full, **spec.pop("labels", {})}
        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": full, "labels": labels},
            "spec": spec,
            "status": {
                "capacity": {"cpu": cpu, "memory": memory, "pods": "110"},
                "allocatable": {"cpu": cpu, "memory": memory, "pods": "110"},
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
            },
        }
        self.api.post("/api/v1/nodes", json=body).raise_for_status()
        self.nodes.append(full)
        return full

    def pod(self, name: str, cpu: str = "100m", owner_uid: str = "", **spec: Any) -> dict[str, Any]:
        metadata: dict[str, Any] = {"name": name, "labels": {"app": name.rsplit("-", 1)[0]}}
        if owner_uid:
            owner = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": owner_uid, "controller": True}
            metadata["ownerReferences"] = [owner]
        container = {"name": "app", "image": "nginx", "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}}}
        body = {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": {"containers": [container], **spec}}
        response = self.api.post(f"/api/v1/namespaces/{self.namespace}/pods", json=body)
        response.raise_for_status()
        return response.json()

    def get_pod(self, name: str) -> dict[str, Any]:
        response = self.api.get(f"/api/v1/namespaces/{self.namespace}/pods/{name}")
        response.raise_for_status()
        return response.json()

    def pods(self) -> list[dict[str, Any]]:
        return self.api.get(f"/api/v1/namespaces/{self.namespace}/pods").json()["items"]

    def node_of(self, name: str) -> str:
        return str(self.get_pod(name)["spec"].get("nodeName") or "")

    def wait_bound(self, *names: str, timeout: float = 20.0) -> dict[str, str]:
        def probe() -> dict[str, str] | None:
            placed = {name: self.node_of(name) for name in names}
            return placed if all(placed.values()) else None

        return eventually(probe, timeout, f"pods {', '.join(names)} bound")

    def events(self, reason: str) -> list[dict[str, Any]]:
        found = self.api.get(f"/api/v1/namespaces/{self.namespace}/events").json()["items"]
        return [event for event in found if event.get("reason") == reason]

    def cleanup(self) -> None:
        for pod in self.pods():
            name = pod["metadata"]["name"]
            self.api.request(
                "DELETE", f"/api/v1/namespaces/{self.namespace}/pods/{name}", json={"gracePeriodSeconds": 0}
            )
        for node in self.nodes:
            self.api.delete(f"/api/v1/nodes/{node}")


@pytest.fixture
def cluster(api: httpx.Client, scheduler: SchedulerProcess) -> Iterator[Cluster]:
    made = Cluster(api)
    yield made
    made.cleanup()


def scheduled_condition(pod: dict[str, Any]) -> dict[str, Any]:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == "PodScheduled"), {})


def test_replicas_spread_across_three_nodes(cluster: Cluster) -> None:
    nodes = [cluster.node(f"n{i}") for i in range(3)]
    owner = str(uuid.uuid4())
    names = [f"web-{i}" for i in range(9)]
    for name in names:
        cluster.pod(name, owner_uid=owner)
    placed = cluster.wait_bound(*names)
    assert Counter(placed.values()) == dict.fromkeys(nodes, 3)
    pod = cluster.get_pod("web-0")
    assert scheduled_condition(pod)["status"] == "True"

    def scheduled_events() -> list[dict[str, Any]] | None:
        events = cluster.events("Scheduled")
        return events if len(events) == 9 else None

    event = next(
        e for e in eventually(scheduled_events, what="Scheduled events") if e["involvedObject"]["name"] == "web-0"
    )
    assert event["message"] == f"Successfully assigned {cluster.namespace}/web-0 to {placed['web-0']}"
    assert event["source"]["component"] == "default-scheduler"
    assert event["type"] == "Normal"


def test_a_pod_too_big_for_every_node_waits_with_kubes_message_then_fits_a_new_node(
    cluster: Cluster, kubectl: Kubectl
) -> None:
    cluster.node("control-plane", cpu="8", taints=[CONTROL_PLANE_TAINT])
    cluster.node("w1", cpu="2")
    cluster.node("w2", cpu="2")
    cluster.pod("big", cpu="6")
    expected = (
        "0/3 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, "
        "2 Insufficient cpu."
    )

    def unschedulable() -> dict[str, Any] | None:
        condition = scheduled_condition(cluster.get_pod("big"))
        return condition if condition.get("status") == "False" else None

    condition = eventually(unschedulable, what="PodScheduled=False")
    assert (condition["reason"], condition["message"]) == ("Unschedulable", expected)
    events = eventually(lambda: cluster.events("FailedScheduling"), what="a FailedScheduling event")
    assert events[0]["message"] == expected and events[0]["type"] == "Warning"
    described = kubectl("describe", "pod", "big", "-n", cluster.namespace)
    assert "Pending" in described
    assert "FailedScheduling" in described and expected in described
    assert cluster.get_pod("big")["status"]["phase"] == "Pending"

    large = cluster.node("large", cpu="16")
    assert cluster.wait_bound("big", timeout=10) == {"big": large}
    assert scheduled_condition(cluster.get_pod("big"))["status"] == "True"


def test_node_selector_taints_and_tolerations(cluster: Cluster) -> None:
    ssd = cluster.node("ssd", labels={"disk": "ssd"})
    plain = cluster.node("plain")
    dedicated = cluster.node("db", taints=[{"key": "dedicated", "value": "db", "effect": "NoSchedule"}])
    cluster.pod("fast-0", nodeSelector={"disk": "ssd"})
    toleration = {"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}
    only_db = {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [dedicated]}]}
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [only_db]}}}
    cluster.pod("db-0", tolerations=[toleration], affinity=affinity)
    others = [f"other-{i}" for i in range(6)]
    for name in others:
        cluster.pod(name)
    placed = cluster.wait_bound("fast-0", "db-0", *others)
    assert placed["fast-0"] == ssd
    assert placed["db-0"] == dedicated
    assert {placed[name] for name in others} <= {ssd, plain}

    cluster.pod("nowhere-0", nodeSelector={"disk": "nvme"})
    expected = (
        "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: db}, "
        "2 node(s) didn't match Pod's node affinity/selector."
    )
    message = eventually(lambda: scheduled_condition(cluster.get_pod("nowhere-0")).get("message"))
    assert message == expected


def test_host_port_conflicts_keep_pods_apart(cluster: Cluster) -> None:
    nodes = {cluster.node("a"), cluster.node("b")}
    container = {"name": "app", "image": "nginx", "ports": [{"containerPort": 80, "hostPort": 8080}]}
    names = ["edge-0", "edge-1", "edge-2"]
    for name in names:
        cluster.pod(name, containers=[container])

    def two_bound() -> dict[str, str] | None:
        placed = {name: cluster.node_of(name) for name in names}
        return placed if sum(1 for node in placed.values() if node) == 2 else None

    placed = eventually(two_bound, what="two of three pods bound")
    assert {node for node in placed.values() if node} == nodes
    waiting = next(name for name, node in placed.items() if not node)
    message = eventually(lambda: scheduled_condition(cluster.get_pod(waiting)).get("message"))
    assert message == "0/2 nodes are available: 2 node(s) didn't have free ports for the requested pod ports."


def test_required_anti_affinity_puts_replicas_on_different_nodes(cluster: Cluster) -> None:
    nodes = {cluster.node("a"), cluster.node("b")}
    selector = {"matchLabels": {"app": "db"}}
    anti = {"labelSelector": selector, "topologyKey": "kubernetes.io/hostname"}
    affinity = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [anti]}}
    for name in ("db-0", "db-1", "db-2"):
        cluster.pod(name, affinity=affinity)

    def two_bound() -> dict[str, str] | None:
        placed = {name: cluster.node_of(name) for name in ("db-0", "db-1", "db-2")}
        return placed if sum(1 for node in placed.values() if node) == 2 else None

    placed = eventually(two_bound, what="two of three replicas bound")
    assert {node for node in placed.values() if node} == nodes
    waiting = next(name for name, node in placed.items() if not node)
    message = eventually(lambda: scheduled_condition(cluster.get_pod(waiting)).get("message"))
    assert message == "0/2 nodes are available: 2 node(s) didn't match pod anti-affinity rules."


def test_two_schedulers_with_leader_election_only_the_leader_binds(
    apiserver: ApiServer, api: httpx.Client, cluster: Cluster
) -> None:
    name = f"ha-{cluster.prefix}"
    flags = ["--scheduler-name", name, "--leader-elect-resource-name", name, "--log-level", "debug",
             "--leader-elect-lease-duration", "3", "--leader-elect-renew-deadline", "2",
             "--leader-elect-retry-period", "0.5"]  # fmt: skip
    candidates = [SchedulerProcess(apiserver, apiserver.kubeconfig, *flags) for _ in range(2)]
    try:
        cluster.node("n0")
        cluster.node("n1")
        pods = [f"ha-{i}" for i in range(10)]
        for pod in pods:
            cluster.pod(pod, schedulerName=name)
        cluster.wait_bound(*pods)
        lease = api.get(f"/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/{name}").json()
        leaders = [c for c in candidates if "became leader" in c.log()]
        assert len(leaders) == 1, "exactly one candidate leads"
        leader, follower = leaders[0], next(c for c in candidates if c is not leaders[0])
        assert lease["spec"]["holderIdentity"] in leader.log()
        bound = f"skiff.scheduler bound {cluster.namespace}/"
        # A binding is logged once its response arrives, a moment after the pod shows as bound.
        eventually(lambda: leader.log().count(bound) == len(pods), what="the leader to log every binding")
        assert follower.log().count(bound) == 0

        leader.process.kill()  # no release: the follower must wait for the lease to expire
        leader.process.wait()
        cluster.pod("ha-late", schedulerName=name)
        cluster.wait_bound("ha-late", timeout=30)
        assert f"{bound}ha-late" in follower.log()
    finally:
        for candidate in candidates:
            candidate.stop()
