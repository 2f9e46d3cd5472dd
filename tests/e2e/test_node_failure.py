"""Losing a node: its kubelet dies, the node turns Unknown, its pods are replaced elsewhere, and a restarted
kubelet comes back without duplicates and with the same pod IPs.

Each node runs as its own kubelet process, so killing one is like a machine going away. Short grace and
toleration periods keep the test quick; the mechanics are those of the defaults (40 s, 300 s).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.cluster import Cluster, eventually, ready_cluster, ready_nodes
from tests.support import ApiServer, Kubectl, free_port

pytestmark = pytest.mark.kubectl

NODES = ["nf-241", "nf-242", "nf-243"]
CONTROLLERS = "deployment,replicaset,serviceaccount,nodelifecycle,garbagecollector"


@pytest.fixture(scope="module")
def apiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    tolerations = ["--default-unreachable-toleration-seconds", "2", "--default-not-ready-toleration-seconds", "2"]
    server = ApiServer(tmp_path_factory.mktemp("node-failure"), free_port(), extra_args=tolerations)
    yield server.start()
    server.stop()


@pytest.fixture(scope="module")
def nodes(apiserver: ApiServer, kubectl: Kubectl, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Three kubelet processes, a scheduler and a controller-manager with a 4 s node grace period."""
    components = Cluster(
        apiserver, tmp_path_factory.mktemp("components"), prefix="nf-", first_index=241, count=len(NODES),
        controllers=CONTROLLERS, kubelet_per_node=True,
        kubelet_flags=["--register-pod-cidr", "--image-pull-duration", "100ms", "--node-lease-renew-interval", "1s"],
        manager_flags=["--leader-elect", "false", "--node-monitor-grace-period", "4", "--node-monitor-period", "1"],
    )  # fmt: skip
    with ready_cluster(components, kubectl) as started:
        yield started


def pods(kubectl: Kubectl, ns: str) -> list[dict[str, Any]]:
    return json.loads(kubectl("get", "pods", "-n", ns, "-o", "json"))["items"]


def is_ready(pod: dict[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def running_replicas(kubectl: Kubectl, ns: str) -> list[dict[str, Any]]:
    return [
        p
        for p in pods(kubectl, ns)
        if p["metadata"].get("labels", {}).get("app") == "web"
        and not p["metadata"].get("deletionTimestamp")
        and is_ready(p)
    ]


def test_a_lost_node_is_tainted_its_pods_replaced_and_it_returns_cleanly(kubectl: Kubectl, nodes: Cluster) -> None:
    ns = f"nf-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", ns)
    victim = NODES[0]
    # A pod that tolerates an unreachable node forever: it stays bound to the node across the outage.
    kubectl("apply", "-n", ns, "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "stays"},
        "spec": {
            "nodeName": victim,
            "containers": [{"name": "c", "image": "busybox"}],
            "tolerations": [{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
                            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"}],
        },
    }))  # fmt: skip
    kubectl("create", "deployment", "web", "-n", ns, "--image=nginx", "--replicas=6")
    eventually(lambda: len(running_replicas(kubectl, ns)) == 6, 90, "six Ready replicas", nodes)
    eventually(lambda: is_ready(json.loads(kubectl("get", "pod", "stays", "-n", ns, "-o", "json"))), 60,
               "the tolerating pod to run", nodes)  # fmt: skip
    before = {p["metadata"]["name"]: p for p in pods(kubectl, ns)}
    stays = before["stays"]
    on_victim = [p for p in running_replicas(kubectl, ns) if p["spec"]["nodeName"] == victim]
    assert on_victim, "the scheduler spreads six replicas over three nodes"

    nodes.kubelets[victim].kill()

    def node_lost() -> bool:
        node = json.loads(kubectl("get", "node", victim, "-o", "json"))
        ready_condition = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
        taints = {(t["key"], t["effect"]) for t in node["spec"].get("taints", [])}
        return ready_condition["status"] == "Unknown" and ("node.kubernetes.io/unreachable", "NoExecute") in taints

    eventually(node_lost, 30, f"{victim} to turn Unknown with the unreachable taint", nodes)

    def replaced() -> bool:
        replicas = running_replicas(kubectl, ns)
        return len(replicas) == 6 and all(p["spec"]["nodeName"] != victim for p in replicas)

    eventually(replaced, 60, "six Ready replicas on the remaining nodes", nodes)
    evicted = {p["metadata"]["name"] for p in on_victim}
    events = json.loads(kubectl("get", "events", "-n", ns, "-o", "json"))["items"]
    assert evicted <= {e["involvedObject"]["name"] for e in events if e["reason"] == "TaintManagerEviction"}
    current = {p["metadata"]["name"]: p for p in pods(kubectl, ns)}
    assert current["stays"]["metadata"]["uid"] == stays["metadata"]["uid"]  # tolerated: not evicted

    nodes.kubelets[victim].start()
    eventually(lambda: victim in ready_nodes(kubectl), 60, f"{victim} to be Ready again", nodes)

    def settled() -> bool:
        listed = pods(kubectl, ns)
        replicas = [p for p in listed if p["metadata"].get("labels", {}).get("app") == "web"]
        # The evicted pods were waiting for their kubelet to confirm they stopped; once it is back they go.
        return len(replicas) == 6 and not any(p["metadata"].get("deletionTimestamp") for p in replicas)

    eventually(settled, 60, "the evicted pods to be gone and six replicas to remain", nodes)
    node = json.loads(kubectl("get", "node", victim, "-o", "json"))
    assert not [t for t in node["spec"].get("taints", []) if t["key"].startswith("node.kubernetes.io/")]
    after = json.loads(kubectl("get", "pod", "stays", "-n", ns, "-o", "json"))
    assert after["metadata"]["uid"] == stays["metadata"]["uid"]
    assert after["status"]["podIP"] == stays["status"]["podIP"]
    eventually(lambda: is_ready(json.loads(kubectl("get", "pod", "stays", "-n", ns, "-o", "json"))), 30,
               "the tolerating pod to be Ready again on its returning node", nodes)  # fmt: skip
