"""The simulated kubelet against a real API server: nodes, leases, pod lifecycle, volumes, logs, restarts.

One kubelet process runs three nodes, each with its own `system:node:<name>` identity (issued by
`skiff pki node`), so the Node authorizer and NodeRestriction apply as on a real cluster.
"""

from __future__ import annotations

import ipaddress
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import REPO_ROOT, ApiServer, Kubectl, free_port

FIRST_INDEX = 201
NODES = [f"kt-{i}" for i in range(FIRST_INDEX, FIRST_INDEX + 3)]
BACKOFF_BASE = 1.0


class KubeletProcess:
    def __init__(self, server: ApiServer, data_dir: Path) -> None:
        self.server = server
        self.data_dir = data_dir
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir / "kubelet.log"

    def start(self) -> KubeletProcess:
        command = [
            sys.executable, "-m", "skiff", "kubelet", "--nodes", "3", "--node-prefix", "kt-",
            "--first-node-index", str(FIRST_INDEX), "--data-dir", str(self.data_dir),
            "--kubeconfig-dir", str(self.server.data_dir / "kubeconfigs"), "--kubelet-port", str(self.port),
            "--register-pod-cidr", "--backoff-base", f"{BACKOFF_BASE}s", "--backoff-max", "8s",
            "--node-lease-renew-interval", "1s", "--node-status-update-frequency", "1s",
            "--image-pull-duration", "100ms", "--volume-refresh-period", "1s", "--zone", "zone-a",
        ]  # fmt: skip
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child process owns it
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""


@pytest.fixture(scope="module")
def kubelet(apiserver: ApiServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeletProcess]:
    for node in NODES:
        subprocess.run(
            [sys.executable, "-m", "skiff", "pki", "node", node, "--data-dir", str(apiserver.data_dir)],
            check=True,
            capture_output=True,
            cwd=REPO_ROOT,
        )
    process = KubeletProcess(apiserver, tmp_path_factory.mktemp("kubelet")).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def api(apiserver: ApiServer) -> Iterator[httpx.Client]:
    with apiserver.client(timeout=30) as client:
        yield client


def eventually(check: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout}s")
        time.sleep(0.2)


@pytest.fixture
def namespace(api: httpx.Client, apiserver: ApiServer) -> str:
    """A namespace with what the service-account controller would put there (the default account and
    the cluster CA config map), so the kube-api-access volume of every pod can be mounted."""
    name = f"kt-{uuid.uuid4().hex[:8]}"
    api.post("/api/v1/namespaces", json={"metadata": {"name": name}}).raise_for_status()
    api.post(f"/api/v1/namespaces/{name}/serviceaccounts", json={"metadata": {"name": "default"}}).raise_for_status()
    ca = apiserver.ca_cert.read_text()
    body = {"metadata": {"name": "kube-root-ca.crt"}, "data": {"ca.crt": ca}}
    api.post(f"/api/v1/namespaces/{name}/configmaps", json=body).raise_for_status()
    return name


def make_pod(
    name: str,
    node: str | None,
    annotations: dict[str, str] | None = None,
    image: str = "nginx:1.25",
    **spec: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {"containers": [{"name": "main", "image": image}], "terminationGracePeriodSeconds": 5}
    if node:
        body["nodeName"] = node
    body.update(spec)
    return {"metadata": {"name": name, "annotations": annotations or {}}, "spec": body}


def create(api: httpx.Client, namespace: str, pod: dict[str, Any]) -> dict[str, Any]:
    response = api.post(f"/api/v1/namespaces/{namespace}/pods", json=pod)
    assert response.status_code == 201, response.text
    return response.json()


def get_pod(api: httpx.Client, namespace: str, name: str) -> dict[str, Any]:
    return api.get(f"/api/v1/namespaces/{namespace}/pods/{name}").json()


def pod_where(api: httpx.Client, namespace: str, name: str, test: Callable[[dict[str, Any]], bool], **kw: Any) -> dict:
    def check() -> dict[str, Any] | None:
        pod = get_pod(api, namespace, name)
        return pod if pod.get("kind") == "Pod" and test(pod) else None

    return eventually(check, what=f"pod {name} condition", **kw)


def condition(pod: dict[str, Any], kind: str) -> str:
    found = [c for c in (pod.get("status") or {}).get("conditions") or [] if c["type"] == kind]
    return found[0]["status"] if found else ""


def running_and_ready(pod: dict[str, Any]) -> bool:
    return pod["status"].get("phase") == "Running" and condition(pod, "Ready") == "True"


def main_status(pod: dict[str, Any]) -> dict[str, Any]:
    return ((pod.get("status") or {}).get("containerStatuses") or [{}])[0]


def events(api: httpx.Client, namespace: str, name: str) -> list[dict[str, Any]]:
    selector = f"involvedObject.name={name}"
    return api.get(f"/api/v1/namespaces/{namespace}/events", params={"fieldSelector": selector}).json()["items"]


def has_event(api: httpx.Client, namespace: str, name: str, reason: str, text: str = "", wait: float = 10.0) -> bool:
    """Whether such an event is recorded; events are posted in the background, so it may take a moment."""
    deadline = time.monotonic() + wait
    while True:
        if any(e["reason"] == reason and text in e["message"] for e in events(api, namespace, name)):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)


def volume_file(kubelet: KubeletProcess, node: str, pod: dict[str, Any], plugin: str, volume: str, path: str) -> Path:
    uid = pod["metadata"]["uid"]
    return kubelet.data_dir / "kubelet" / node / "pods" / uid / "volumes" / plugin / volume / path


# ---------------------------------------------------------------------------------------------------


def test_nodes_register_ready_and_renew_their_leases(api: httpx.Client, kubelet: KubeletProcess) -> None:
    def all_ready() -> list[dict[str, Any]] | None:
        nodes = [n for n in api.get("/api/v1/nodes").json()["items"] if n["metadata"]["name"] in NODES]
        return nodes if len(nodes) == 3 and all(condition(n, "Ready") == "True" for n in nodes) else None

    nodes = eventually(all_ready, what=f"three Ready nodes\n{kubelet.log()}")
    addresses = set()
    for node in nodes:
        name = node["metadata"]["name"]
        labels = node["metadata"]["labels"]
        assert labels["kubernetes.io/hostname"] == name
        assert labels["kubernetes.io/os"] == "linux"
        assert labels["topology.kubernetes.io/zone"] == "zone-a"
        status = node["status"]
        assert status["capacity"]["pods"] == "110" and status["allocatable"]["cpu"] == "4"
        assert status["nodeInfo"]["kubeletVersion"] == "v1.33.0-skiff.1"
        assert status["nodeInfo"]["containerRuntimeVersion"] == "skiff-sim://1.0"
        assert status["daemonEndpoints"]["kubeletEndpoint"]["Port"] == kubelet.port
        ready = next(c for c in status["conditions"] if c["type"] == "Ready")
        assert ready["reason"] == "KubeletReady"
        internal = [a["address"] for a in status["addresses"] if a["type"] == "InternalIP"]
        addresses.update(internal)
        assert ipaddress.ip_network(node["spec"]["podCIDR"]).prefixlen == 24
    assert len(addresses) == 3

    def renew_times() -> dict[str, str]:
        leases = api.get("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases").json()["items"]
        return {
            lease["metadata"]["name"]: lease["spec"]["renewTime"]
            for lease in leases
            if lease["metadata"]["name"] in NODES
        }

    first = eventually(lambda: (times := renew_times()) and len(times) == 3 and times, what="three node leases")
    eventually(lambda: all(renew_times()[n] != first[n] for n in NODES), timeout=10, what="renewed leases")


def test_pods_run_ready_with_unique_ips_inside_their_node_cidr(
    api: httpx.Client, namespace: str, kubelet: KubeletProcess
) -> None:
    names = [f"web-{position}" for position in range(6)]
    for position, name in enumerate(names):
        create(api, namespace, make_pod(name, NODES[position % 3]))
    pods = [pod_where(api, namespace, name, running_and_ready) for name in names]
    cidrs = {n["metadata"]["name"]: n["spec"]["podCIDR"] for n in api.get("/api/v1/nodes").json()["items"]}
    ips = [pod["status"]["podIP"] for pod in pods]
    assert len(set(ips)) == len(ips)
    for pod in pods:
        network = ipaddress.ip_network(cidrs[pod["spec"]["nodeName"]])
        address = ipaddress.ip_address(pod["status"]["podIP"])
        assert address in network and address != network.network_address + 1  # .1 is the gateway
        status = main_status(pod)
        assert status["ready"] and status["started"] and status["containerID"].startswith("skiff-sim://")
        assert pod["status"]["hostIP"].startswith("127.0.10.")
    assert has_event(api, namespace, "web-0", "Started", "Started container main")


def test_readiness_probe_and_ready_after(api: httpx.Client, namespace: str, kubelet: KubeletProcess) -> None:
    probe = {"httpGet": {"path": "/ready", "port": 80}, "periodSeconds": 1}
    pod = make_pod("slow", NODES[0], {"sim.skiff.dev/ready-after": "3s"})
    pod["spec"]["containers"][0]["readinessProbe"] = probe
    create(api, namespace, pod)
    running = pod_where(api, namespace, "slow", lambda p: p["status"].get("phase") == "Running")
    assert condition(running, "Ready") == "False"
    pod_where(api, namespace, "slow", running_and_ready)
    assert has_event(
        api, namespace, "slow", "Unhealthy", "Readiness probe failed: HTTP probe failed with statuscode: 503"
    )


def test_failing_liveness_probe_restarts_the_container(
    api: httpx.Client, namespace: str, kubelet: KubeletProcess
) -> None:
    pod = make_pod("unhealthy", NODES[2], {"sim.skiff.dev/liveness-fail-after": "2s"})
    pod["spec"]["containers"][0]["livenessProbe"] = {
        "tcpSocket": {"port": 80},
        "periodSeconds": 1,
        "failureThreshold": 2,
    }
    create(api, namespace, pod)
    restarted = pod_where(api, namespace, "unhealthy", lambda p: main_status(p).get("restartCount", 0) >= 1, timeout=40)
    assert main_status(restarted)["lastState"]["terminated"]["finishedAt"]
    assert has_event(api, namespace, "unhealthy", "Killing", "Container main failed liveness probe, will be restarted")
    assert has_event(api, namespace, "unhealthy", "Unhealthy", "Liveness probe failed: dial tcp")


def test_crash_loop_backs_off_with_growing_restart_count(
    api: httpx.Client, namespace: str, kubelet: KubeletProcess
) -> None:
    annotations = {"sim.skiff.dev/exit-after": "500ms", "sim.skiff.dev/exit-code": "2"}
    create(api, namespace, make_pod("crash", NODES[1], annotations))

    def crash_looping(pod: dict[str, Any]) -> bool:
        status = main_status(pod)
        waiting = (status.get("state") or {}).get("waiting") or {}
        return waiting.get("reason") == "CrashLoopBackOff" and status.get("restartCount", 0) >= 2

    pod = pod_where(api, namespace, "crash", crash_looping, timeout=40)
    status = main_status(pod)
    assert status["lastState"]["terminated"]["exitCode"] == 2
    assert status["lastState"]["terminated"]["reason"] == "Error"
    assert "back-off" in status["state"]["waiting"]["message"]
    assert pod["status"]["phase"] == "Running"
    count = status["restartCount"]
    pod_where(api, namespace, "crash", lambda p: main_status(p).get("restartCount", 0) > count, timeout=40)
    assert has_event(api, namespace, "crash", "BackOff", "Back-off restarting failed container main")


def test_run_to_completion_ends_succeeded_or_failed(api: httpx.Client, namespace: str, kubelet: KubeletProcess) -> None:
    create(api, namespace, make_pod("job", NODES[2], {"sim.skiff.dev/exit-after": "1s"}, restartPolicy="Never"))
    failing = {"sim.skiff.dev/exit-after": "1s", "sim.skiff.dev/exit-code": "3"}
    create(api, namespace, make_pod("broken", NODES[2], failing, restartPolicy="Never"))
    done = pod_where(api, namespace, "job", lambda p: p["status"].get("phase") == "Succeeded")
    terminated = main_status(done)["state"]["terminated"]
    assert terminated["exitCode"] == 0 and terminated["reason"] == "Completed"
    assert condition(done, "Ready") == "False"
    failed = pod_where(api, namespace, "broken", lambda p: p["status"].get("phase") == "Failed")
    assert main_status(failed)["state"]["terminated"]["exitCode"] == 3
    assert main_status(failed)["restartCount"] == 0


def test_init_containers_run_in_order_before_the_app(
    api: httpx.Client, namespace: str, kubelet: KubeletProcess
) -> None:
    annotations = {"sim.skiff.dev/setup.exit-after": "1s", "sim.skiff.dev/migrate.exit-after": "1s"}
    init = [{"name": "setup", "image": "busybox:1.36"}, {"name": "migrate", "image": "busybox:1.36"}]
    create(api, namespace, make_pod("inits", NODES[0], annotations, initContainers=init))
    first = pod_where(api, namespace, "inits", lambda p: bool(p["status"].get("initContainerStatuses")))
    assert condition(first, "Initialized") == "False"
    pod = pod_where(api, namespace, "inits", running_and_ready)
    finished = [s["state"]["terminated"] for s in pod["status"]["initContainerStatuses"]]
    assert [t["exitCode"] for t in finished] == [0, 0]
    assert finished[0]["finishedAt"] <= finished[1]["startedAt"]


def test_bad_image_shows_image_pull_backoff(api: httpx.Client, namespace: str, kubelet: KubeletProcess) -> None:
    create(api, namespace, make_pod("badimage", NODES[0], image="nginx:bad"))

    def backing_off(pod: dict[str, Any]) -> bool:
        waiting = (main_status(pod).get("state") or {}).get("waiting") or {}
        return waiting.get("reason") == "ImagePullBackOff"

    pod = pod_where(api, namespace, "badimage", backing_off)
    assert pod["status"]["phase"] == "Pending"
    assert has_event(api, namespace, "badimage", "Failed", 'Failed to pull image "nginx:bad"')
    assert has_event(api, namespace, "badimage", "Failed", "Error: ErrImagePull")
    assert has_event(api, namespace, "badimage", "BackOff", 'Back-off pulling image "nginx:bad"')


def test_configmap_and_secret_volumes_hold_and_follow_their_data(
    api: httpx.Client, namespace: str, kubelet: KubeletProcess
) -> None:
    base = f"/api/v1/namespaces/{namespace}"
    api.post(f"{base}/configmaps", json={"metadata": {"name": "settings"}, "data": {"mode": "blue", "size": "3"}})
    secret = {"metadata": {"name": "creds"}, "stringData": {"password": "s3cret"}}
    api.post(f"{base}/secrets", json=secret).raise_for_status()
    volumes = [
        {"name": "cfg", "configMap": {"name": "settings"}},
        {"name": "pw", "secret": {"secretName": "creds", "defaultMode": 0o400}},
        {"name": "info", "downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
        {"name": "scratch", "emptyDir": {}},
    ]
    pod = make_pod("volumes", NODES[1], volumes=volumes)
    pod["metadata"]["labels"] = {"app": "demo"}
    create(api, namespace, pod)
    pod = pod_where(api, namespace, "volumes", running_and_ready)
    node = NODES[1]
    mode = volume_file(kubelet, node, pod, "kubernetes.io~configmap", "cfg", "mode")
    assert mode.read_text() == "blue"
    password = volume_file(kubelet, node, pod, "kubernetes.io~secret", "pw", "password")
    assert password.read_text() == "s3cret"
    assert password.resolve().stat().st_mode & 0o777 == 0o400
    assert volume_file(kubelet, node, pod, "kubernetes.io~downward-api", "info", "labels").read_text() == 'app="demo"'
    assert volume_file(kubelet, node, pod, "kubernetes.io~empty-dir", "scratch", "").is_dir()
    token = volume_file(kubelet, node, pod, "kubernetes.io~projected", pod["spec"]["volumes"][-1]["name"], "token")
    assert token.read_text().count(".") == 2  # a JWT from the TokenRequest API

    patch = {"data": {"mode": "green"}}
    headers = {"Content-Type": "application/merge-patch+json"}
    api.patch(f"{base}/configmaps/settings", json=patch, headers=headers).raise_for_status()
    eventually(lambda: mode.read_text() == "green", timeout=15, what="configmap file updated")


def test_missing_configmap_keeps_pod_creating_until_it_appears(
    api: httpx.Client, namespace: str, kubelet: KubeletProcess
) -> None:
    volumes = [{"name": "late", "configMap": {"name": "late-config"}}]
    create(api, namespace, make_pod("waiter", NODES[2], volumes=volumes))
    message = 'MountVolume.SetUp failed for volume "late" : configmap "late-config" not found'
    eventually(lambda: has_event(api, namespace, "waiter", "FailedMount", message, wait=0), what="FailedMount event")
    pod = get_pod(api, namespace, "waiter")
    assert pod["status"]["phase"] == "Pending"
    assert main_status(pod)["state"]["waiting"]["reason"] == "ContainerCreating"
    body = {"metadata": {"name": "late-config"}, "data": {"k": "v"}}
    api.post(f"/api/v1/namespaces/{namespace}/configmaps", json=body).raise_for_status()
    pod_where(api, namespace, "waiter", running_and_ready, timeout=30)


def test_graceful_deletion_stops_containers_then_removes_the_pod(
    api: httpx.Client, namespace: str, kubelet: KubeletProcess
) -> None:
    create(api, namespace, make_pod("leaving", NODES[0], {"sim.skiff.dev/shutdown-delay": "1s"}))
    pod = pod_where(api, namespace, "leaving", running_and_ready)
    ip_file = kubelet.data_dir / "kubelet" / NODES[0] / "ipam"
    assert any(p.name == pod["status"]["podIP"] for p in ip_file.rglob("*"))
    response = api.delete(f"/api/v1/namespaces/{namespace}/pods/leaving")
    assert response.is_success
    assert response.json()["metadata"]["deletionTimestamp"]
    eventually(lambda: api.get(f"/api/v1/namespaces/{namespace}/pods/leaving").status_code == 404, what="pod gone")
    assert has_event(api, namespace, "leaving", "Killing", "Stopping container main")
    assert not any(p.name == pod["status"]["podIP"] for p in ip_file.rglob("*"))


def test_kubectl_logs_and_follow(api: httpx.Client, namespace: str, kubelet: KubeletProcess, kubectl: Kubectl) -> None:
    annotations = {"sim.skiff.dev/log-lines": "3", "sim.skiff.dev/log-every": "500ms"}
    create(api, namespace, make_pod("chatty", NODES[1], annotations))
    create(api, namespace, make_pod("stuck", NODES[1], image="invalid/image:1"))
    pod_where(api, namespace, "chatty", running_and_ready)
    out = kubectl("logs", "chatty", "-n", namespace).splitlines()
    assert out[:4] == [
        "skiff-sim: container main started (image nginx:1.25)",
        *(f"main: line {i}/3" for i in (1, 2, 3)),
    ]
    tail = kubectl("logs", "chatty", "-n", namespace, "--tail=1")
    assert len(tail.strip().splitlines()) == 1
    follow = subprocess.Popen(
        [kubectl.binary, "logs", "-f", "chatty", "-n", namespace],
        stdout=subprocess.PIPE,
        text=True,
        env={"KUBECONFIG": str(kubectl.kubeconfig), "HOME": str(kubectl.kubeconfig.parent)},
    )
    try:
        assert follow.stdout is not None
        seen = [follow.stdout.readline() for _ in range(8)]
    finally:
        follow.kill()
        follow.wait()
    ticks = [int(line.rsplit(" ", 1)[1]) for line in seen if "tick" in line]
    assert len(ticks) >= 3 and ticks == sorted(ticks), (seen, follow.stderr.read() if follow.stderr else "")
    waiting = kubectl.run("logs", "stuck", "-n", namespace, check=False)
    assert waiting.returncode != 0
    assert 'container "main" in pod "stuck" is waiting to start' in waiting.stderr


def test_previous_logs_of_a_restarted_container(
    api: httpx.Client, namespace: str, kubectl: Kubectl, kubelet: KubeletProcess
) -> None:
    create(api, namespace, make_pod("restarter", NODES[2], {"sim.skiff.dev/exit-after": "1s"}))
    pod_where(api, namespace, "restarter", lambda p: main_status(p).get("restartCount", 0) >= 1, timeout=40)
    previous = kubectl("logs", "restarter", "-n", namespace, "--previous")
    assert "skiff-sim: container main exited with code 0" in previous


def test_restarted_kubelet_keeps_pod_ips_and_creates_nothing_twice(
    api: httpx.Client, namespace: str, kubelet: KubeletProcess
) -> None:
    for position in range(3):
        create(api, namespace, make_pod(f"keep-{position}", NODES[position]))
    before = {name: pod_where(api, namespace, name, running_and_ready) for name in ("keep-0", "keep-1", "keep-2")}
    allocated = sorted(p.name for p in (kubelet.data_dir / "kubelet").glob("*/ipam/*/*"))
    kubelet.stop()
    kubelet.start()
    # Let the new process sync everything, then compare.
    create(api, namespace, make_pod("after", NODES[0]))
    new = pod_where(api, namespace, "after", running_and_ready, timeout=40)
    for name, pod in before.items():
        now = get_pod(api, namespace, name)
        assert now["status"]["podIP"] == pod["status"]["podIP"]
        assert main_status(now)["containerID"] == main_status(pod)["containerID"]
        assert main_status(now)["restartCount"] == 0 and running_and_ready(now)
    assert new["status"]["podIP"] not in {p["status"]["podIP"] for p in before.values()}
    after = sorted(p.name for p in (kubelet.data_dir / "kubelet").glob("*/ipam/*/*"))
    assert set(allocated) <= set(after) and len(after) == len(allocated) + 1
