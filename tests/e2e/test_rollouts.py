"""Deployments and ReplicaSets on a real cluster, driven by the real kubectl.

The module runs an API server (with an audit log), one kubelet process simulating three nodes, the
scheduler, and the controller-manager as separate processes. A pod census follows a watch on the
pods over a whole rollout and records the most pods that ever existed at once and the fewest that
were available, which is what maxSurge and maxUnavailable promise.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.cluster import Cluster, condition, eventually, issue, ready_cluster
from tests.support import ApiServer, Kubectl, free_port

pytestmark = pytest.mark.kubectl

LEASE = ["--leader-elect-lease-duration", "4", "--leader-elect-renew-deadline", "3",
         "--leader-elect-retry-period", "0.5"]  # fmt: skip
LEASE_DURATION = 4.0
CONTROLLERS = "deployment,replicaset,serviceaccount,garbagecollector"


@pytest.fixture(scope="module")
def apiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    data_dir = tmp_path_factory.mktemp("rollouts")
    server = ApiServer(data_dir, free_port(), extra_args=["--audit-log-path", str(data_dir / "audit.log")])
    yield server.start()
    server.stop()


@pytest.fixture(scope="module")
def cluster(apiserver: ApiServer, kubectl: Kubectl, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    components = Cluster(
        apiserver, tmp_path_factory.mktemp("components"), prefix="rt-", first_index=231, count=3,
        controllers=CONTROLLERS, manager_flags=LEASE,
        kubelet_flags=["--register-pod-cidr", "--image-pull-duration", "100ms", "--node-lease-renew-interval", "1s"],
    )  # fmt: skip
    with ready_cluster(components, kubectl) as started:
        yield started


# ---------------------------------------------------------------------------------------------------
# Helpers


@pytest.fixture
def ns(kubectl: Kubectl, cluster: Cluster) -> str:
    """A fresh namespace whose default ServiceAccount exists (pods need it)."""
    name = f"ro-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", name)
    eventually(lambda: kubectl.run("get", "serviceaccount", "default", "-n", name, check=False).returncode == 0,
               30, "the default ServiceAccount", cluster)  # fmt: skip
    return name


def get(kubectl: Kubectl, ns: str, *what: str) -> dict[str, Any]:
    return json.loads(kubectl("get", *what, "-n", ns, "-o", "json"))


def replica_sets(kubectl: Kubectl, ns: str, app: str) -> list[dict[str, Any]]:
    items = get(kubectl, ns, "replicasets", "-l", f"app={app}")["items"]
    return sorted(items, key=lambda rs: int(rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]))


def live_pods(kubectl: Kubectl, ns: str, app: str) -> list[dict[str, Any]]:
    items = get(kubectl, ns, "pods", "-l", f"app={app}")["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def rollout_status(kubectl: Kubectl, ns: str, name: str, timeout: int = 120) -> str:
    return kubectl("rollout", "status", f"deployment/{name}", "-n", ns, f"--timeout={timeout}s", timeout=timeout + 30)


def image_of(deployment: dict[str, Any]) -> str:
    return deployment["spec"]["template"]["spec"]["containers"][0]["image"]


def events(kubectl: Kubectl, ns: str, reason: str) -> list[str]:
    items = get(kubectl, ns, "events", "--field-selector", f"reason={reason}")["items"]
    return [e["message"] for e in items]


def create_deployment(kubectl: Kubectl, ns: str, name: str, replicas: int, image: str = "nginx:1.25") -> None:
    kubectl("create", "deployment", name, f"--image={image}", f"--replicas={replicas}", "-n", ns)


class PodCensus(threading.Thread):
    """Follows the pods of one app through a watch and keeps the extremes: the most pods not being
    deleted, and the fewest of those that were Ready, at any moment."""

    def __init__(self, server: ApiServer, ns: str, app: str) -> None:
        super().__init__(daemon=True)
        self.server, self.ns, self.app = server, ns, app
        self.pods: dict[str, dict[str, Any]] = {}
        self.most_pods = 0
        self.most_templates = 0
        self.fewest_available: int | None = None
        self.events = 0
        self.failure: BaseException | None = None
        self._halt = threading.Event()
        self._listed = threading.Event()

    def __enter__(self) -> PodCensus:
        self.start()
        assert self._listed.wait(10), "the pod census could not list pods"
        return self

    def __exit__(self, *_: object) -> None:
        self._halt.set()
        self.join(10)
        if self.failure is not None:
            raise AssertionError("the pod census failed") from self.failure

    def run(self) -> None:
        try:
            self._follow()
        except BaseException as error:
            if not self._halt.is_set():
                self.failure = error
            self._listed.set()

    def _follow(self) -> None:
        path = f"/api/v1/namespaces/{self.ns}/pods"
        selector = {"labelSelector": f"app={self.app}"}
        with self.server.client(timeout=httpx.Timeout(30, read=60)) as http:
            listing = http.get(path, params=selector).raise_for_status().json()
            for pod in listing["items"]:
                self.pods[pod["metadata"]["name"]] = pod
            version = listing["metadata"]["resourceVersion"]
            self._count()
            self._listed.set()
            while not self._halt.is_set():
                params = {**selector, "watch": "true", "resourceVersion": version, "allowWatchBookmarks": "true",
                          "timeoutSeconds": "60"}  # fmt: skip
                with http.stream("GET", path, params=params) as stream:
                    for line in stream.iter_lines():
                        if self._halt.is_set():
                            return
                        if line:
                            version = self._apply(json.loads(line)) or version

    def _apply(self, event: dict[str, Any]) -> str:
        kind, pod = event["type"], event["object"]
        if kind == "ERROR":
            raise AssertionError(f"watch error: {pod}")
        if kind != "BOOKMARK":
            if kind == "DELETED":
                self.pods.pop(pod["metadata"]["name"], None)
            else:
                self.pods[pod["metadata"]["name"]] = pod
            self.events += 1
            self._count()
        return pod["metadata"].get("resourceVersion", "")

    def _count(self) -> None:
        live = [p for p in self.pods.values() if not p["metadata"].get("deletionTimestamp")]
        available = sum(1 for p in live if condition(p, "Ready") == "True")
        self.most_pods = max(self.most_pods, len(live))
        templates = {p["metadata"]["labels"].get("pod-template-hash") for p in live}
        self.most_templates = max(self.most_templates, len(templates))
        self.fewest_available = available if self.fewest_available is None else min(self.fewest_available, available)


# ---------------------------------------------------------------------------------------------------
# Tests


def test_create_deployment_runs_three_ready_pods(kubectl: Kubectl, ns: str, cluster: Cluster) -> None:
    create_deployment(kubectl, ns, "web", 3)
    assert 'deployment "web" successfully rolled out' in rollout_status(kubectl, ns, "web")
    (rs,) = replica_sets(kubectl, ns, "web")
    pod_hash = rs["metadata"]["labels"]["pod-template-hash"]
    assert rs["metadata"]["name"] == f"web-{pod_hash}"
    assert rs["spec"]["selector"]["matchLabels"] == {"app": "web", "pod-template-hash": pod_hash}
    owner = rs["metadata"]["ownerReferences"][0]
    deployment = get(kubectl, ns, "deployment", "web")
    assert (owner["kind"], owner["uid"], owner["controller"]) == ("Deployment", deployment["metadata"]["uid"], True)
    pods = live_pods(kubectl, ns, "web")
    assert len(pods) == 3
    assert all(condition(p, "Ready") == "True" and p["spec"]["nodeName"] in cluster.nodes for p in pods)
    assert all(p["metadata"]["ownerReferences"][0]["uid"] == rs["metadata"]["uid"] for p in pods)
    assert all(p["metadata"]["name"].startswith(f"web-{pod_hash}-") for p in pods)
    status = deployment["status"]
    assert (status["replicas"], status["updatedReplicas"], status["readyReplicas"], status["availableReplicas"]) == (
        3, 3, 3, 3,
    )  # fmt: skip
    assert condition(deployment, "Available") == "True"
    assert f"Scaled up replica set web-{pod_hash} from 0 to 3" in events(kubectl, ns, "ScalingReplicaSet")
    created = events(kubectl, ns, "SuccessfulCreate")
    assert sorted(created) == sorted(f"Created pod: {p['metadata']['name']}" for p in pods)
    assert "web" in kubectl("get", "deployment", "web", "-n", ns)


def test_set_image_rolls_out_within_surge_and_unavailability(kubectl: Kubectl, ns: str, cluster: Cluster) -> None:
    create_deployment(kubectl, ns, "big", 10)
    rollout_status(kubectl, ns, "big")
    with PodCensus(cluster.server, ns, "big") as census:
        kubectl("set", "image", "deployment/big", "nginx=nginx:1.26", "-n", ns)
        assert 'deployment "big" successfully rolled out' in rollout_status(kubectl, ns, "big")
        eventually(lambda: len(live_pods(kubectl, ns, "big")) == 10, 30, "old pods gone", cluster)
    # 25% of 10: up to 3 extra pods (rounded up), at most 2 unavailable (rounded down)
    assert census.most_pods <= 13, census.most_pods
    assert census.fewest_available is not None and census.fewest_available >= 8, census.fewest_available
    assert census.most_pods > 10  # the surge was used
    old, new = replica_sets(kubectl, ns, "big")
    assert (old["spec"]["replicas"], new["spec"]["replicas"]) == (0, 10)
    assert all(image_of_pod(p) == "nginx:1.26" for p in live_pods(kubectl, ns, "big"))
    scaled = events(kubectl, ns, "ScalingReplicaSet")
    assert f"Scaled up replica set {new['metadata']['name']} from 0 to 3" in scaled
    assert f"Scaled down replica set {old['metadata']['name']} from 10 to 8" in scaled


def image_of_pod(pod: dict[str, Any]) -> str:
    return pod["spec"]["containers"][0]["image"]


def test_history_and_undo(kubectl: Kubectl, ns: str, cluster: Cluster) -> None:
    create_deployment(kubectl, ns, "hist", 2, image="nginx:1.0")
    rollout_status(kubectl, ns, "hist")
    for version in ("2.0", "3.0"):
        kubectl("set", "image", "deployment/hist", f"nginx=nginx:{version}", "-n", ns)
        kubectl("annotate", "deployment/hist", f"kubernetes.io/change-cause=upgrade to {version}", "-n", ns)
        rollout_status(kubectl, ns, "hist")
    history = kubectl("rollout", "history", "deployment/hist", "-n", ns)
    assert history.split("\n")[1].split() == ["REVISION", "CHANGE-CAUSE"]
    rows = [line.split(None, 1) for line in history.strip().splitlines()[2:]]
    assert rows == [["1", "<none>"], ["2", "upgrade to 2.0"], ["3", "upgrade to 3.0"]]

    kubectl("rollout", "undo", "deployment/hist", "-n", ns)
    rollout_status(kubectl, ns, "hist")
    deployment = get(kubectl, ns, "deployment", "hist")
    assert image_of(deployment) == "nginx:2.0"
    assert deployment["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "4"
    assert all(image_of_pod(p) == "nginx:2.0" for p in live_pods(kubectl, ns, "hist"))
    revisions = {
        rs["spec"]["template"]["spec"]["containers"][0]["image"]: rs for rs in replica_sets(kubectl, ns, "hist")
    }
    back = revisions["nginx:2.0"]["metadata"]["annotations"]
    assert back["deployment.kubernetes.io/revision"] == "4"
    assert back["deployment.kubernetes.io/revision-history"] == "2"
    assert len(revisions) == 3  # the old ReplicaSet came back; no new one was made
    rows = [
        line.split(None, 1)[0]
        for line in kubectl("rollout", "history", "deployment/hist", "-n", ns).strip().splitlines()[2:]
    ]
    assert rows == ["1", "3", "4"]

    kubectl("rollout", "undo", "deployment/hist", "--to-revision=1", "-n", ns)
    rollout_status(kubectl, ns, "hist")
    assert image_of(get(kubectl, ns, "deployment", "hist")) == "nginx:1.0"
    assert all(image_of_pod(p) == "nginx:1.0" for p in live_pods(kubectl, ns, "hist"))
    detail = kubectl("rollout", "history", "deployment/hist", "--revision=5", "-n", ns)
    assert "nginx:1.0" in detail


def test_revision_history_limit_removes_old_replica_sets(kubectl: Kubectl, ns: str, cluster: Cluster) -> None:
    create_deployment(kubectl, ns, "lim", 1, image="nginx:1")
    kubectl("patch", "deployment/lim", "-n", ns, "-p", '{"spec":{"revisionHistoryLimit":1}}')
    for version in ("2", "3", "4"):
        kubectl("set", "image", "deployment/lim", f"nginx=nginx:{version}", "-n", ns)
        rollout_status(kubectl, ns, "lim")

    def kept() -> list[str] | None:
        images = [rs["spec"]["template"]["spec"]["containers"][0]["image"] for rs in replica_sets(kubectl, ns, "lim")]
        return images if len(images) == 2 else None

    assert eventually(kept, 30, "old ReplicaSets cleaned up", cluster) == ["nginx:3", "nginx:4"]


def test_pause_resume_and_restart(kubectl: Kubectl, ns: str, cluster: Cluster) -> None:
    create_deployment(kubectl, ns, "pz", 2)
    rollout_status(kubectl, ns, "pz")
    kubectl("rollout", "pause", "deployment/pz", "-n", ns)
    kubectl("set", "image", "deployment/pz", "nginx=nginx:1.27", "-n", ns)

    def paused_condition() -> dict[str, Any] | None:
        deployment = get(kubectl, ns, "deployment", "pz")
        progressing = [c for c in deployment["status"]["conditions"] if c["type"] == "Progressing"]
        return progressing[0] if progressing and progressing[0]["reason"] == "DeploymentPaused" else None

    paused = eventually(paused_condition, 30, "the DeploymentPaused condition", cluster)
    assert (paused["status"], paused["message"]) == ("Unknown", "Deployment is paused")
    # scaling still applies while paused, to the ReplicaSet that runs; no new ReplicaSet appears
    kubectl("scale", "deployment/pz", "--replicas=4", "-n", ns)
    eventually(lambda: len([p for p in live_pods(kubectl, ns, "pz") if condition(p, "Ready") == "True"]) == 4,
               60, "four pods while paused", cluster)  # fmt: skip
    time.sleep(1)
    (only,) = replica_sets(kubectl, ns, "pz")
    assert only["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.25"

    kubectl("rollout", "resume", "deployment/pz", "-n", ns)
    rollout_status(kubectl, ns, "pz")
    assert {image_of_pod(p) for p in live_pods(kubectl, ns, "pz")} == {"nginx:1.27"}
    assert len(live_pods(kubectl, ns, "pz")) == 4

    kubectl("rollout", "restart", "deployment/pz", "-n", ns)
    rollout_status(kubectl, ns, "pz")
    sets = replica_sets(kubectl, ns, "pz")
    assert len(sets) == 3
    newest = sets[-1]
    assert "kubectl.kubernetes.io/restartedAt" in newest["spec"]["template"]["metadata"]["annotations"]
    assert newest["spec"]["replicas"] == 4
    pods = live_pods(kubectl, ns, "pz")
    assert {p["metadata"]["labels"]["pod-template-hash"] for p in pods} == {
        newest["metadata"]["labels"]["pod-template-hash"]
    }


def test_scale_up_and_down(kubectl: Kubectl, ns: str, cluster: Cluster) -> None:
    create_deployment(kubectl, ns, "sc", 2)
    rollout_status(kubectl, ns, "sc")
    for replicas in (6, 1):
        kubectl("scale", "deployment/sc", f"--replicas={replicas}", "-n", ns)
        rollout_status(kubectl, ns, "sc")
        eventually(lambda n=replicas: len(live_pods(kubectl, ns, "sc")) == n, 30, f"{replicas} pods", cluster)
        deployment = get(kubectl, ns, "deployment", "sc")
        assert deployment["status"]["availableReplicas"] == replicas
    (rs,) = replica_sets(kubectl, ns, "sc")
    name = rs["metadata"]["name"]
    scaled = events(kubectl, ns, "ScalingReplicaSet")
    assert f"Scaled up replica set {name} from 2 to 6" in scaled
    assert f"Scaled down replica set {name} from 6 to 1" in scaled
    assert len(events(kubectl, ns, "SuccessfulDelete")) == 5
    assert rs["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] == "1"


def test_replica_set_keeps_its_count_and_adopts_orphans(kubectl: Kubectl, ns: str, cluster: Cluster) -> None:
    orphan = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "stray", "labels": {"app": "solo"}},
              "spec": {"containers": [{"name": "c", "image": "busybox"}]}}  # fmt: skip
    kubectl("create", "-f", "-", "-n", ns, input=json.dumps(orphan))
    rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "solo"},
          "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "solo"}},
                   "template": {"metadata": {"labels": {"app": "solo"}},
                                "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}  # fmt: skip
    kubectl("create", "-f", "-", "-n", ns, input=json.dumps(rs))
    eventually(lambda: get(kubectl, ns, "replicaset", "solo").get("status", {}).get("readyReplicas") == 3,
               60, "three ready replicas", cluster)  # fmt: skip
    pods = live_pods(kubectl, ns, "solo")
    assert len(pods) == 3
    stray = get(kubectl, ns, "pod", "stray")
    assert stray["metadata"]["ownerReferences"][0]["name"] == "solo"  # adopted, so only two were created
    # a pod deleted by hand is replaced; a pod relabelled away is released and replaced
    victim = next(p["metadata"]["name"] for p in pods if p["metadata"]["name"] != "stray")
    kubectl("delete", "pod", victim, "-n", ns, "--wait=false")
    kubectl("label", "pod", "stray", "app=elsewhere", "--overwrite", "-n", ns)
    eventually(lambda: len(live_pods(kubectl, ns, "solo")) == 3 and not get(kubectl, ns, "pod", "stray")["metadata"]
               .get("ownerReferences"), 60, "replacement pods and the stray released", cluster)  # fmt: skip
    status = get(kubectl, ns, "replicaset", "solo")["status"]
    assert status["replicas"] == 3 and status["fullyLabeledReplicas"] == 3


def test_progress_deadline_exceeded_fails_rollout_status(kubectl: Kubectl, ns: str, cluster: Cluster) -> None:
    create_deployment(kubectl, ns, "stuck", 1)
    rollout_status(kubectl, ns, "stuck")
    kubectl("patch", "deployment/stuck", "-n", ns, "-p", '{"spec":{"progressDeadlineSeconds":3}}')
    kubectl("set", "image", "deployment/stuck", "nginx=nginx:bad", "-n", ns)
    result = kubectl.run("rollout", "status", "deployment/stuck", "-n", ns, "--timeout=60s", check=False, timeout=90)
    assert result.returncode != 0
    assert 'deployment "stuck" exceeded its progress deadline' in result.stderr
    deployment = get(kubectl, ns, "deployment", "stuck")
    progressing = next(c for c in deployment["status"]["conditions"] if c["type"] == "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("False", "ProgressDeadlineExceeded")
    assert deployment["status"]["availableReplicas"] == 1  # the old pod keeps serving


def test_recreate_stops_every_old_pod_before_starting_new_ones(kubectl: Kubectl, ns: str, cluster: Cluster) -> None:
    create_deployment(kubectl, ns, "rec", 3)
    kubectl("patch", "deployment/rec", "-n", ns, "-p", '{"spec":{"strategy":{"type":"Recreate","rollingUpdate":null}}}')
    rollout_status(kubectl, ns, "rec")
    with PodCensus(cluster.server, ns, "rec") as census:
        kubectl("set", "image", "deployment/rec", "nginx=nginx:1.26", "-n", ns)
        rollout_status(kubectl, ns, "rec")
    assert census.most_templates == 1  # old and new pods never ran side by side
    assert census.fewest_available == 0
    assert {image_of_pod(p) for p in live_pods(kubectl, ns, "rec")} == {"nginx:1.26"}
    old, new = replica_sets(kubectl, ns, "rec")
    scaled = events(kubectl, ns, "ScalingReplicaSet")
    assert f"Scaled down replica set {old['metadata']['name']} from 3 to 0" in scaled
    assert f"Scaled up replica set {new['metadata']['name']} from 0 to 3" in scaled


def test_rollout_survives_a_killed_controller_manager(kubectl: Kubectl, ns: str, cluster: Cluster) -> None:
    create_deployment(kubectl, ns, "crash", 10)
    rollout_status(kubectl, ns, "crash")
    # Each step of the rollout waits 2 s for new pods to count as available, so the kill reliably lands
    # in the middle of it rather than after simulated pods finished the whole rollout between two polls.
    kubectl("patch", "deployment", "crash", "-n", ns, "-p", '{"spec":{"minReadySeconds":2}}')
    with PodCensus(cluster.server, ns, "crash") as census:
        kubectl("set", "image", "deployment/crash", "nginx=nginx:1.26", "-n", ns)

        def mid_rollout() -> bool:
            status = get(kubectl, ns, "deployment", "crash").get("status", {})
            return 0 < status.get("updatedReplicas", 0) < 10

        eventually(mid_rollout, 30, "the rollout under way", cluster)
        cluster.manager.kill()
        cluster.manager.start()
        assert 'deployment "crash" successfully rolled out' in rollout_status(kubectl, ns, "crash")
        eventually(lambda: len(live_pods(kubectl, ns, "crash")) == 10, 30, "old pods gone", cluster)
    assert census.most_pods <= 13, census.most_pods
    assert census.fewest_available is not None and census.fewest_available >= 8, census.fewest_available
    assert all(image_of_pod(p) == "nginx:1.26" for p in live_pods(kubectl, ns, "crash"))


# ---------------------------------------------------------------------------------------------------
# Leader election (last: it replaces the module's controller-manager)


def audit_writers(server: ApiServer, ns: str, users: set[str]) -> set[str]:
    """Users among `users` that wrote pods, ReplicaSets, Deployments or Events in `ns`."""
    writers = set()
    for line in (server.data_dir / "audit.log").read_text().splitlines():
        event = json.loads(line)
        ref = event.get("objectRef") or {}
        if (
            event["user"]["username"] in users
            and event["verb"] in ("create", "update", "patch", "delete")
            and ref.get("namespace") == ns
            and ref.get("resource") in ("pods", "replicasets", "deployments", "events")
        ):
            writers.add(event["user"]["username"])
    return writers


def lease_holder(kubectl: Kubectl) -> str:
    result = kubectl.run("get", "lease", "kube-controller-manager", "-n", "kube-system", "-o", "json", check=False)
    return json.loads(result.stdout)["spec"].get("holderIdentity", "") if result.returncode == 0 else ""


def test_only_the_leader_acts_and_a_standby_takes_over(kubectl: Kubectl, ns: str, cluster: Cluster) -> None:
    cluster.manager.stop()
    kubeconfigs = cluster.server.data_dir / "kubeconfigs"
    managers = {}
    for user in ("cm-a", "cm-b"):
        issue(cluster.server, "user", user, "--group", "system:masters")
        managers[user] = cluster.controller_manager(user, kubeconfigs / f"{user}.kubeconfig").start()
    try:

        def leader() -> str | None:
            holder = lease_holder(kubectl)
            found = [u for u, m in managers.items() if holder and f"{holder} became leader" in m.log()]
            return found[0] if found else None

        first = eventually(leader, 30, "a leader")
        other = next(u for u in managers if u != first)
        create_deployment(kubectl, ns, "le", 3)
        rollout_status(kubectl, ns, "le")
        assert audit_writers(cluster.server, ns, set(managers)) == {first}
        assert "running controllers" not in managers[other].log()

        holder_before = lease_holder(kubectl)
        managers[first].kill()
        killed = time.monotonic()
        eventually(lambda: lease_holder(kubectl) not in ("", holder_before), 3 * LEASE_DURATION, "a new leader")
        took = time.monotonic() - killed
        assert leader() == other
        assert took <= 2 * LEASE_DURATION, took
        kubectl("scale", "deployment/le", "--replicas=5", "-n", ns)
        rollout_status(kubectl, ns, "le")
        assert len(live_pods(kubectl, ns, "le")) == 5
        assert audit_writers(cluster.server, ns, set(managers)) == {first, other}
    finally:
        for manager in managers.values():
            manager.stop()
