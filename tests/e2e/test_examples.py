"""Every walkthrough under examples/ on a cluster from `skiff up`: apply it with kubectl and check what
its README promises."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster import eventually
from tests.support import REPO_ROOT, Kubectl, free_port, kubectl_binary

pytestmark = pytest.mark.kubectl
EXAMPLES = REPO_ROOT / "examples"
TOPICS = ["deployments-and-rollouts", "services-and-tracing", "network-policy", "storage", "rbac"]


class Cluster:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port, self.dns_port = free_port(), free_port()
        self.kubectl = Kubectl(kubectl_binary(), data_dir / "admin.kubeconfig")

    def skiff(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "skiff", *args], capture_output=True, text=True, timeout=180, cwd=REPO_ROOT
        )
        if check:
            assert result.returncode == 0, f"skiff {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
        return result

    def client(self, *args: str) -> subprocess.CompletedProcess[str]:
        """A `skiff` client command as the admin."""
        return self.skiff(*args, "--kubeconfig", str(self.data_dir / "admin.kubeconfig"), check=False)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    local = Cluster(tmp_path_factory.mktemp("examples"))
    local.skiff("up", "--detach", "--data-dir", str(local.data_dir), "--port", str(local.port),
                "--kubelet-port", str(free_port()), "--dns-port", str(local.dns_port))  # fmt: skip
    yield local
    local.skiff("down", "--data-dir", str(local.data_dir), check=False)


def apply(cluster: Cluster, topic: str) -> None:
    cluster.kubectl("apply", "-f", str(EXAMPLES / topic))


def test_every_topic_has_manifests_and_a_walkthrough_linked_from_the_readme() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    for topic in TOPICS:
        folder = EXAMPLES / topic
        assert list(folder.glob("*.yaml")), topic
        assert "```sh" in (folder / "README.md").read_text()
        assert f"examples/{topic}" in readme, f"README.md does not link examples/{topic}"


def test_deployments_and_rollouts(cluster: Cluster) -> None:
    kubectl, ns = cluster.kubectl, ["-n", "rollouts"]
    apply(cluster, "deployments-and-rollouts")
    kubectl("rollout", "status", "deployment/web", *ns, "--timeout=90s", timeout=100)
    assert kubectl("get", "deployment", "web", *ns, "-o", "jsonpath={.status.readyReplicas}") == "4"
    nodes = set(kubectl("get", "pods", *ns, "-o", "jsonpath={.items[*].spec.nodeName}").split())
    assert len(nodes) >= 2

    kubectl("set", "image", "deployment/web", "web=nginx:1.27", *ns)
    kubectl("annotate", "deployment/web", "kubernetes.io/change-cause=nginx 1.27", *ns, "--overwrite")
    kubectl("rollout", "status", "deployment/web", *ns, "--timeout=90s", timeout=100)
    history = kubectl("rollout", "history", "deployment/web", *ns)
    assert "first release: nginx 1.25" in history and "nginx 1.27" in history

    kubectl("rollout", "undo", "deployment/web", *ns)
    kubectl("rollout", "status", "deployment/web", *ns, "--timeout=90s", timeout=100)
    image = "jsonpath={.spec.template.spec.containers[0].image}"
    assert kubectl("get", "deployment", "web", *ns, "-o", image) == "nginx:1.25"

    # A bad image stops the rollout with the old pods still serving.
    kubectl("set", "image", "deployment/web", "web=nginx:bad", *ns)

    def stuck() -> bool:
        pods = json.loads(kubectl("get", "pods", *ns, "-o", "json"))["items"]
        waiting = [
            s["state"]["waiting"]["reason"]
            for p in pods
            for s in p["status"].get("containerStatuses", [])
            if "waiting" in s.get("state", {})
        ]
        return any(reason in ("ErrImagePull", "ImagePullBackOff") for reason in waiting)

    eventually(stuck, 30, "a pod of the bad image to fail its pull")
    assert kubectl("get", "deployment", "web", *ns, "-o", "jsonpath={.status.availableReplicas}") == "4"


def test_services_and_tracing(cluster: Cluster) -> None:
    kubectl, ns = cluster.kubectl, ["-n", "shop"]
    apply(cluster, "services-and-tracing")
    kubectl("rollout", "status", "deployment/backend", *ns, "--timeout=90s", timeout=100)
    kubectl("wait", "--for=condition=Ready", "pod/client", *ns, "--timeout=60s", timeout=70)
    cluster_ip = kubectl("get", "service", "backend", *ns, "-o", "jsonpath={.spec.clusterIP}")
    pod_ips = set(kubectl("get", "pods", "-l", "app=backend", *ns, "-o", "jsonpath={.items[*].status.podIP}").split())
    assert len(pod_ips) == 3

    def endpoints() -> bool:
        found = kubectl("get", "endpoints", "backend", *ns, "-o", "jsonpath={.subsets[*].addresses[*].ip}")
        return set(found.split()) == pod_ips

    eventually(endpoints, 30, "the Service's endpoints")

    def routes() -> str:
        result = cluster.skiff("routes", "--node", "skiff-node-1", "--data-dir", str(cluster.data_dir), check=False)
        text = result.stdout
        return text if cluster_ip in text and all(f"{ip}:8080" in text for ip in pod_ips) else ""

    table = eventually(routes, 30, "skiff-node-1's proxy to route the Service")
    assert "KUBE-SVC-" in table and "KUBE-SEP-" in table

    trace = cluster.client("trace", "shop/client", "backend", "-n", "shop", "--port", "http")
    assert trace.returncode == 0, trace.stdout + trace.stderr
    assert cluster_ip in trace.stdout and any(ip in trace.stdout for ip in pod_ips)

    dig = subprocess.run(
        ["dig", "+short", "@127.0.0.1", "-p", str(cluster.dns_port), "backend.shop.svc.cluster.local"],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert dig.stdout.split() == [cluster_ip]


def test_network_policy(cluster: Cluster) -> None:
    kubectl, ns = cluster.kubectl, ["-n", "bank"]
    apply(cluster, "network-policy")
    kubectl("wait", "--for=condition=Ready", "pod", "--all", *ns, "--timeout=60s", timeout=70)

    allowed = cluster.client("netpol", "check", "bank/frontend", "bank/ledger", "sql")
    assert allowed.stdout.startswith("ALLOWED"), allowed.stdout + allowed.stderr
    assert "bank/ledger-from-frontend" in allowed.stdout
    for source, destination, port in (("bank/intruder", "bank/ledger", "5432"), ("bank/ledger", "bank/frontend", "80")):
        denied = cluster.client("netpol", "check", source, destination, port)
        assert denied.stdout.startswith("DENIED"), denied.stdout + denied.stderr
        assert "bank/default-deny-ingress" in denied.stdout

    # The ledger's node carries a filter rule for the ledger's address.
    node = kubectl("get", "pod", "ledger", *ns, "-o", "jsonpath={.spec.nodeName}")
    ledger_ip = kubectl("get", "pod", "ledger", *ns, "-o", "jsonpath={.status.podIP}")

    def policy_rules() -> bool:
        result = cluster.skiff("routes", "--node", node, "--data-dir", str(cluster.data_dir), check=False)
        return ledger_ip in result.stdout

    eventually(policy_rules, 30, f"{node}'s tables to mention the ledger {ledger_ip}")

    kubectl("delete", "networkpolicy", "ledger-from-frontend", *ns)
    after = cluster.client("netpol", "check", "bank/frontend", "bank/ledger", "sql")
    assert after.stdout.startswith("DENIED"), after.stdout


def test_storage(cluster: Cluster) -> None:
    kubectl, ns = cluster.kubectl, ["-n", "storage-demo"]
    assert "(default)" in kubectl("get", "storageclass", "standard")
    apply(cluster, "storage")

    def phase(claim: str) -> str:
        return kubectl("get", "pvc", claim, *ns, "-o", "jsonpath={.status.phase}")

    eventually(lambda: phase("scratch") == "Bound", 30, "the fast claim to bind")
    assert kubectl("get", "pvc", "data", *ns, "-o", "jsonpath={.spec.storageClassName}") == "standard"
    kubectl("wait", "--for=condition=Ready", "pod/writer", *ns, "--timeout=60s", timeout=70)
    eventually(lambda: phase("data") == "Bound", 30, "the default-class claim to bind")

    volume = kubectl("get", "pvc", "data", *ns, "-o", "jsonpath={.spec.volumeName}")
    node = kubectl("get", "pod", "writer", *ns, "-o", "jsonpath={.spec.nodeName}")
    path = kubectl("get", "pv", volume, "-o", "jsonpath={.spec.hostPath.path}")
    directory = cluster.data_dir / "kubelet" / node / "host" / path.lstrip("/")
    assert directory.is_dir(), f"{directory} is missing"

    kubectl("patch", "pvc", "scratch", *ns, "-p", '{"spec":{"resources":{"requests":{"storage":"4Gi"}}}}')
    eventually(
        lambda: kubectl("get", "pvc", "scratch", *ns, "-o", "jsonpath={.status.capacity.storage}") == "4Gi",
        30,
        "the claim to grow to 4Gi",
    )


def test_rbac(cluster: Cluster) -> None:
    kubectl, ns = cluster.kubectl, ["-n", "team-a"]
    apply(cluster, "rbac")
    cluster.skiff("pki", "user", "alice", "--group", "team-a-devs", "--data-dir", str(cluster.data_dir))
    alice = Kubectl(kubectl.binary, cluster.data_dir / "kubeconfigs" / "alice.kubeconfig")
    assert "team-a-devs" in alice("auth", "whoami")
    alice("create", "deployment", "web", "--image=nginx", *ns)
    forbidden = alice.run("get", "pods", "-n", "default", check=False)
    assert forbidden.returncode != 0 and "Forbidden" in forbidden.stderr
    assert alice.run("auth", "can-i", "create", "rolebindings", *ns, check=False).stdout.strip() == "no"

    token = kubectl("create", "token", "deployer", *ns, "--duration", "1h").strip()
    server = f"https://127.0.0.1:{cluster.port}"
    as_deployer = ["--kubeconfig", "/dev/null", "--server", server, "--token", token,
                   "--certificate-authority", str(cluster.data_dir / "pki" / "ca.crt")]  # fmt: skip
    assert "system:serviceaccount:team-a:deployer" in kubectl("auth", "whoami", *as_deployer)
    kubectl("get", "pods", *ns, *as_deployer)
    denied = kubectl.run("delete", "pod", "--all", *ns, *as_deployer, check=False)
    assert denied.returncode != 0 and "Forbidden" in denied.stderr

    kubectl("delete", "rolebinding", "devs-edit", *ns)
    eventually(lambda: alice.run("get", "deployments", *ns, check=False).returncode != 0, 10, "alice to lose access")
