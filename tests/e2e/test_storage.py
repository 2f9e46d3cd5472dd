"""Persistent storage on a real cluster, driven by the real kubectl.

The module runs an API server, one kubelet process simulating two nodes, the scheduler and the
controller-manager (the binder, both provisioners, the expander and the protection controllers) as
separate processes. Hostpath volumes are real directories under the kubelets' data directory, so the
tests look at the files a pod "wrote" (a file put into the pod's volume directory, which the kubelet
links to the volume's directory).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.cluster import Cluster, eventually, ready_cluster
from tests.support import ApiServer, Kubectl

pytestmark = pytest.mark.kubectl

CONTROLLERS = ("serviceaccount,persistentvolume-binder,persistentvolume-expander,pv-protection,pvc-protection,"
               "hostpath-provisioner,simulated-provisioner")  # fmt: skip
NODES = ["st-241", "st-242"]
POOL = "50Gi"


@pytest.fixture(scope="module")
def cluster(apiserver: ApiServer, kubectl: Kubectl, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    work = tmp_path_factory.mktemp("storage")
    components = Cluster(
        apiserver, work, prefix="st-", first_index=241, count=len(NODES), controllers=CONTROLLERS,
        kubelet_flags=["--image-pull-duration", "50ms", "--volume-refresh-period", "1s"],
        scheduler_flags=["--pod-max-backoff-seconds", "2"],
        manager_flags=["--leader-elect", "false", "--volume-data-dir", str(work / "nodes"),
                       "--simulated-storage-capacity", POOL],
    )  # fmt: skip
    with ready_cluster(components, kubectl) as started:
        yield started


@pytest.fixture
def ns(kubectl: Kubectl, cluster: Cluster) -> str:
    name = f"st-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", name)
    return name


# ---------------------------------------------------------------------------------------------------
# Helpers


def apply(kubectl: Kubectl, *objects: dict[str, Any]) -> None:
    kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)}))


def get(kubectl: Kubectl, *what: str, ns: str | None = None) -> dict[str, Any]:
    args = [*what, "-o", "json"] + (["-n", ns] if ns else [])
    return json.loads(kubectl("get", *args))


def maybe(kubectl: Kubectl, *what: str, ns: str | None = None) -> dict[str, Any] | None:
    args = ["get", *what, "-o", "json"] + (["-n", ns] if ns else [])
    result = kubectl.run(*args, check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


def events_of(kubectl: Kubectl, ns: str, name: str) -> list[tuple[str, str]]:
    items = get(kubectl, "events", "--field-selector", f"involvedObject.name={name}", ns=ns)["items"]
    return [(e["reason"], e["message"]) for e in items]


def storage_class(name: str, provisioner: str, **fields: Any) -> dict[str, Any]:
    return {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": name},
            "provisioner": provisioner, **fields}  # fmt: skip


def claim(name: str, size: str, class_name: str | None, modes: tuple[str, ...] = ("ReadWriteOnce",),
          **spec: Any) -> dict[str, Any]:  # fmt: skip
    body: dict[str, Any] = {"accessModes": list(modes), "resources": {"requests": {"storage": size}}, **spec}
    if class_name is not None:
        body["storageClassName"] = class_name
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name}, "spec": body}


def volume(name: str, size: str, class_name: str = "", modes: tuple[str, ...] = ("ReadWriteOnce",),
           labels: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:  # fmt: skip
    body = {"capacity": {"storage": size}, "accessModes": list(modes), "storageClassName": class_name,
            "hostPath": {"path": f"/srv/{name}"}, **spec}  # fmt: skip
    return {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name, "labels": labels or {}},
            "spec": body}  # fmt: skip


def pod(name: str, claim_name: str, node_selector: dict[str, str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "containers": [{"name": "app", "image": "busybox", "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim_name}}],
        "terminationGracePeriodSeconds": 0,
    }
    if node_selector:
        spec["nodeSelector"] = node_selector
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def bound(kubectl: Kubectl, ns: str, name: str, cluster: Cluster, timeout: float = 30) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        found = get(kubectl, "pvc", name, ns=ns)
        return found if found["status"].get("phase") == "Bound" else None

    return eventually(check, timeout, f"claim {name} Bound", cluster)


def running(kubectl: Kubectl, ns: str, name: str, cluster: Cluster, timeout: float = 40) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        found = get(kubectl, "pod", name, ns=ns)
        return found if found["status"].get("phase") == "Running" else None

    return eventually(check, timeout, f"pod {name} Running", cluster)


def unschedulable_message(kubectl: Kubectl, ns: str, name: str, cluster: Cluster) -> str:
    def check() -> str:
        found = get(kubectl, "pod", name, ns=ns)
        for condition in found["status"].get("conditions") or []:
            if condition["type"] == "PodScheduled" and condition["status"] == "False":
                return str(condition.get("message") or "")
        return ""

    return eventually(check, 30, f"pod {name} reported unschedulable", cluster)


def delete(kubectl: Kubectl, *what: str, ns: str | None = None) -> None:
    kubectl("delete", *what, "--wait=false", *(["-n", ns] if ns else []))


# ---------------------------------------------------------------------------------------------------
# Binding static volumes


def test_claim_binds_the_smallest_matching_volume(kubectl: Kubectl, cluster: Cluster, ns: str) -> None:
    tag = ns
    apply(
        kubectl,
        volume(f"{tag}-small", "1Gi", labels={"tier": "fast"}),
        volume(f"{tag}-fits", "5Gi", labels={"tier": "fast"}),
        volume(f"{tag}-large", "10Gi", labels={"tier": "fast"}),
        volume(f"{tag}-rwx", "3Gi", modes=("ReadWriteMany",), labels={"tier": "slow"}),
        volume(f"{tag}-classy", "2Gi", class_name="other-class"),
    )
    apply(
        kubectl,
        {**claim("data", "2Gi", "", selector={"matchLabels": {"tier": "fast"}}),
         "metadata": {"name": "data", "namespace": ns}},
        {**claim("shared", "2Gi", "", modes=("ReadWriteMany",)), "metadata": {"name": "shared", "namespace": ns}},
    )  # fmt: skip
    data = bound(kubectl, ns, "data", cluster)
    assert data["spec"]["volumeName"] == f"{tag}-fits"  # 1Gi is too small, 10Gi is larger than needed
    assert data["status"]["capacity"]["storage"] == "5Gi"
    assert data["metadata"]["annotations"]["pv.kubernetes.io/bind-completed"] == "yes"
    assert data["metadata"]["annotations"]["pv.kubernetes.io/bound-by-controller"] == "yes"
    assert bound(kubectl, ns, "shared", cluster)["spec"]["volumeName"] == f"{tag}-rwx"
    pv = get(kubectl, "pv", f"{tag}-fits")
    assert pv["status"]["phase"] == "Bound"
    assert pv["spec"]["claimRef"]["name"] == "data" and pv["spec"]["claimRef"]["uid"] == data["metadata"]["uid"]
    assert get(kubectl, "pv", f"{tag}-classy")["status"]["phase"] == "Available"  # another class
    table = kubectl("get", "pv", f"{tag}-fits")
    assert "Bound" in table and f"{ns}/data" in table
    assert "kubernetes.io/pv-protection" in pv["metadata"]["finalizers"]
    assert "kubernetes.io/pvc-protection" in data["metadata"]["finalizers"]


def test_claim_without_a_match_waits_and_says_why(kubectl: Kubectl, cluster: Cluster, ns: str) -> None:
    kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(claim("lonely", "1Ti", "")))
    eventually(
        lambda: ("FailedBinding", "no persistent volumes available for this claim and no storage class is set")
        in events_of(kubectl, ns, "lonely"), 20, "FailedBinding event", cluster,
    )  # fmt: skip
    assert get(kubectl, "pvc", "lonely", ns=ns)["status"]["phase"] == "Pending"


def test_prebinding_by_volume_name_and_by_claim_ref(kubectl: Kubectl, cluster: Cluster, ns: str) -> None:
    tag = ns
    apply(
        kubectl,
        volume(f"{tag}-wanted", "8Gi"),
        volume(f"{tag}-smaller", "1Gi"),
        volume(f"{tag}-reserved", "1Gi", claimRef={"namespace": ns, "name": "reserved"}),
    )
    apply(
        kubectl,
        {**claim("named", "1Gi", "", volumeName=f"{tag}-wanted"), "metadata": {"name": "named", "namespace": ns}},
        {**claim("reserved", "1Gi", ""), "metadata": {"name": "reserved", "namespace": ns}},
    )
    assert bound(kubectl, ns, "named", cluster)["spec"]["volumeName"] == f"{tag}-wanted"
    assert bound(kubectl, ns, "reserved", cluster)["spec"]["volumeName"] == f"{tag}-reserved"
    assert get(kubectl, "pv", f"{tag}-smaller")["status"]["phase"] == "Available"


def test_a_hundred_claims_at_once_get_a_hundred_distinct_volumes(kubectl: Kubectl, cluster: Cluster, ns: str) -> None:
    count = 100
    volumes = [volume(f"{ns}-race-{i}", "1Gi", class_name=f"race-{ns}") for i in range(count)]
    claims = [{**claim(f"c-{i}", "1Gi", f"race-{ns}"), "metadata": {"name": f"c-{i}", "namespace": ns}}
              for i in range(count)]  # fmt: skip
    apply(kubectl, *claims, *volumes)

    def all_bound() -> list[dict[str, Any]] | None:
        items = get(kubectl, "pvc", ns=ns)["items"]
        done = [c for c in items if c["status"].get("phase") == "Bound"]
        return done if len(done) == count else None

    claims_bound = eventually(all_bound, 90, "100 claims Bound", cluster)
    names = [c["spec"]["volumeName"] for c in claims_bound]
    assert len(set(names)) == count
    by_claim = {c["metadata"]["name"]: c for c in claims_bound}
    pvs = [pv for pv in get(kubectl, "pv")["items"] if pv["metadata"]["name"].startswith(f"{ns}-race-")]
    assert all(pv["status"]["phase"] == "Bound" for pv in pvs)
    for pv in pvs:
        ref = pv["spec"]["claimRef"]
        assert by_claim[ref["name"]]["spec"]["volumeName"] == pv["metadata"]["name"]
        assert by_claim[ref["name"]]["metadata"]["uid"] == ref["uid"]


# ---------------------------------------------------------------------------------------------------
# Dynamic provisioning


def test_immediate_provisioning_and_running_out_of_capacity(kubectl: Kubectl, cluster: Cluster, ns: str) -> None:
    sc = f"sim-{ns}"
    apply(kubectl, storage_class(sc, "skiff.dev/simulated", reclaimPolicy="Delete"))
    kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(claim("fits", "2Gi", sc)))
    fits = bound(kubectl, ns, "fits", cluster)
    pv = get(kubectl, "pv", fits["spec"]["volumeName"])
    assert pv["metadata"]["name"] == f"pvc-{fits['metadata']['uid']}"
    assert pv["metadata"]["annotations"]["pv.kubernetes.io/provisioned-by"] == "skiff.dev/simulated"
    assert pv["spec"]["csi"]["driver"] == "skiff.dev/simulated"
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Delete"
    assert fits["metadata"]["annotations"]["volume.kubernetes.io/storage-provisioner"] == "skiff.dev/simulated"

    def reasons() -> bool:
        seen = {reason for reason, _ in events_of(kubectl, ns, "fits")}
        return {"ExternalProvisioning", "Provisioning", "ProvisioningSucceeded"} <= seen

    eventually(reasons, 20, "provisioning events", cluster)

    kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(claim("too-big", "200Gi", sc)))

    def failure() -> str:
        return next((m for r, m in events_of(kubectl, ns, "too-big") if r == "ProvisioningFailed"), "")

    message = eventually(failure, 30, "ProvisioningFailed", cluster)
    assert "insufficient capacity: requested 200Gi" in message and f"of {POOL} available" in message
    assert get(kubectl, "pvc", "too-big", ns=ns)["status"]["phase"] == "Pending"

    delete(kubectl, "pvc", "fits", ns=ns)  # Delete reclaim: the volume goes with the claim
    eventually(lambda: maybe(kubectl, "pv", pv["metadata"]["name"]) is None, 30, "the volume deleted", cluster)


def test_wait_for_first_consumer_provisions_on_the_pods_node(kubectl: Kubectl, cluster: Cluster, ns: str) -> None:
    sc = f"local-{ns}"
    apply(kubectl, storage_class(sc, "skiff.dev/hostpath", volumeBindingMode="WaitForFirstConsumer"))
    kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(claim("web-data", "1Gi", sc)))
    eventually(
        lambda: ("WaitForFirstConsumer", "waiting for first consumer to be created before binding")
        in events_of(kubectl, ns, "web-data"), 20, "WaitForFirstConsumer event", cluster,
    )  # fmt: skip
    time.sleep(1)
    assert get(kubectl, "pvc", "web-data", ns=ns)["status"]["phase"] == "Pending"  # nothing made yet

    target = NODES[1]
    kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(pod("web", "web-data", {"kubernetes.io/hostname": target})))
    data = bound(kubectl, ns, "web-data", cluster)
    assert data["metadata"]["annotations"]["volume.kubernetes.io/selected-node"] == target
    pv_name = data["spec"]["volumeName"]
    pv = get(kubectl, "pv", pv_name)
    term = pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0]
    assert term == {"key": "kubernetes.io/hostname", "operator": "In", "values": [target]}
    directory = cluster.volume_dir(target, pv_name)
    assert directory.is_dir()

    web = running(kubectl, ns, "web", cluster)
    assert web["spec"]["nodeName"] == target
    (cluster.pod_volume_dir(web, "data") / "index.html").write_text("hello\n")
    assert (directory / "index.html").read_text() == "hello\n"

    # Reclaim policy Delete: the claim goes once its pod is gone, and takes the volume and its directory.
    delete(kubectl, "pvc", "web-data", ns=ns)
    time.sleep(1)
    assert get(kubectl, "pvc", "web-data", ns=ns)["metadata"].get("deletionTimestamp")  # in use: Terminating
    assert "Terminating" in kubectl("get", "pvc", "web-data", "-n", ns)
    delete(kubectl, "pod", "web", ns=ns)
    eventually(lambda: maybe(kubectl, "pvc", "web-data", ns=ns) is None, 30, "the claim gone", cluster)
    eventually(lambda: maybe(kubectl, "pv", pv_name) is None, 30, "the volume gone", cluster)
    assert not directory.exists()


def test_retain_keeps_released_data_until_the_claim_ref_is_cleared(kubectl: Kubectl, cluster: Cluster, ns: str) -> None:
    sc = f"keep-{ns}"
    apply(kubectl, storage_class(sc, "skiff.dev/hostpath", reclaimPolicy="Retain"))
    kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(claim("db", "1Gi", sc)))
    pv_name = bound(kubectl, ns, "db", cluster)["spec"]["volumeName"]
    kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(pod("db", "db")))
    db = running(kubectl, ns, "db", cluster)
    (cluster.pod_volume_dir(db, "data") / "rows.txt").write_text("1,2,3\n")
    directory = cluster.volume_dir(db["spec"]["nodeName"], pv_name)

    delete(kubectl, "pod", "db", ns=ns)
    delete(kubectl, "pvc", "db", ns=ns)

    def released() -> bool:
        return get(kubectl, "pv", pv_name)["status"].get("phase") == "Released"

    eventually(released, 30, "the volume Released", cluster)
    assert (directory / "rows.txt").read_text() == "1,2,3\n"
    assert "Released" in kubectl("get", "pv", pv_name)

    # A claim naming the volume does not get it while the old claimRef is there ...
    kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(claim("db-again", "1Gi", sc, volumeName=pv_name)))
    time.sleep(2)
    assert get(kubectl, "pvc", "db-again", ns=ns)["status"]["phase"] == "Pending"
    assert released()
    # ... and gets it, data and all, once an administrator clears it.
    kubectl("patch", "pv", pv_name, "--type=json", "-p", '[{"op": "remove", "path": "/spec/claimRef"}]')
    again = bound(kubectl, ns, "db-again", cluster)
    assert again["spec"]["volumeName"] == pv_name
    assert (directory / "rows.txt").read_text() == "1,2,3\n"


def test_default_class_is_given_to_claims_without_one(kubectl: Kubectl, cluster: Cluster, ns: str) -> None:
    sc = f"default-{ns}"
    default = storage_class(sc, "skiff.dev/simulated")
    default["metadata"]["annotations"] = {"storageclass.kubernetes.io/is-default-class": "true"}
    apply(kubectl, default)
    try:
        assert f"{sc} (default)" in kubectl("get", "storageclass")
        kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(claim("plain", "1Gi", None)))
        kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(claim("none", "1Gi", "")))
        plain = bound(kubectl, ns, "plain", cluster)
        assert plain["spec"]["storageClassName"] == sc
        assert get(kubectl, "pvc", "none", ns=ns)["spec"]["storageClassName"] == ""
    finally:
        kubectl("delete", "storageclass", sc)


# ---------------------------------------------------------------------------------------------------
# Expansion


def test_expansion_grows_the_volume_and_refuses_shrinking(kubectl: Kubectl, cluster: Cluster, ns: str) -> None:
    grows, fixed = f"grow-{ns}", f"fixed-{ns}"
    apply(kubectl, storage_class(grows, "skiff.dev/simulated", allowVolumeExpansion=True),
          storage_class(fixed, "skiff.dev/simulated"))  # fmt: skip
    kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(claim("logs", "1Gi", grows)))
    kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(claim("stuck", "1Gi", fixed)))
    pv_name = bound(kubectl, ns, "logs", cluster)["spec"]["volumeName"]
    bound(kubectl, ns, "stuck", cluster)

    kubectl("patch", "pvc", "logs", "-n", ns, "-p", '{"spec":{"resources":{"requests":{"storage":"3Gi"}}}}')

    def grown() -> bool:
        return get(kubectl, "pvc", "logs", ns=ns)["status"].get("capacity", {}).get("storage") == "3Gi"

    eventually(grown, 30, "the claim's capacity 3Gi", cluster)
    assert get(kubectl, "pv", pv_name)["spec"]["capacity"]["storage"] == "3Gi"
    assert "VolumeResizeSuccessful" in [r for r, _ in events_of(kubectl, ns, "logs")]

    smaller = '{"spec":{"resources":{"requests":{"storage":"1Gi"}}}}'
    shrink = kubectl.run("patch", "pvc", "logs", "-n", ns, "-p", smaller, check=False)
    assert shrink.returncode != 0 and "field can not be less than status.capacity" in shrink.stderr
    larger = '{"spec":{"resources":{"requests":{"storage":"2Gi"}}}}'
    refused = kubectl.run("patch", "pvc", "stuck", "-n", ns, "-p", larger, check=False)
    assert refused.returncode != 0
    assert ("only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must "
            "support resize") in refused.stderr  # fmt: skip


# ---------------------------------------------------------------------------------------------------
# Access modes and protection


def test_read_write_once_pod_admits_one_pod(kubectl: Kubectl, cluster: Cluster, ns: str) -> None:
    sc = f"one-{ns}"
    apply(kubectl, storage_class(sc, "skiff.dev/simulated"))
    kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(claim("solo", "1Gi", sc, ("ReadWriteOncePod",))))
    bound(kubectl, ns, "solo", cluster)
    kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(pod("first", "solo")))
    running(kubectl, ns, "first", cluster)
    kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(pod("second", "solo")))
    message = unschedulable_message(kubectl, ns, "second", cluster)
    assert message == (
        f"0/{len(NODES)} nodes are available: {len(NODES)} node(s) unavailable due to PersistentVolumeClaim with "
        "ReadWriteOncePod access mode already in-use by another pod."
    )
    assert get(kubectl, "pod", "second", ns=ns)["status"]["phase"] == "Pending"
    delete(kubectl, "pod", "first", ns=ns)
    assert running(kubectl, ns, "second", cluster)["spec"]["nodeName"]


def test_read_write_once_keeps_its_pods_on_one_node(kubectl: Kubectl, cluster: Cluster, ns: str) -> None:
    sc = f"rwo-{ns}"
    apply(kubectl, storage_class(sc, "skiff.dev/simulated"))
    kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(claim("cache", "1Gi", sc)))
    bound(kubectl, ns, "cache", cluster)
    kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(pod("a", "cache", {"kubernetes.io/hostname": NODES[0]})))
    running(kubectl, ns, "a", cluster)
    kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(pod("b", "cache", {"kubernetes.io/hostname": NODES[1]})))
    kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(pod("c", "cache")))
    assert running(kubectl, ns, "c", cluster)["spec"]["nodeName"] == NODES[0]
    message = unschedulable_message(kubectl, ns, "b", cluster)
    assert "node(s) unavailable due to one or more pods sharing the same ReadWriteOnce persistentvolumeclaim" in message

    # A hostpath volume lives on one node: a pod pinned elsewhere meets its node affinity.
    local = f"rwo-local-{ns}"
    apply(kubectl, storage_class(local, "skiff.dev/hostpath"))
    kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(claim("disk", "1Gi", local)))
    pv = get(kubectl, "pv", bound(kubectl, ns, "disk", cluster)["spec"]["volumeName"])
    home = pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0]["values"][0]
    elsewhere = next(n for n in NODES if n != home)
    kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(pod("away", "disk", {"kubernetes.io/hostname": elsewhere})))
    assert "1 node(s) had volume node affinity conflict" in unschedulable_message(kubectl, ns, "away", cluster)


def test_pvc_protection_holds_a_claim_in_use(kubectl: Kubectl, cluster: Cluster, ns: str) -> None:
    sc = f"prot-{ns}"
    apply(kubectl, storage_class(sc, "skiff.dev/simulated"))
    kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(claim("held", "1Gi", sc)))
    pv_name = bound(kubectl, ns, "held", cluster)["spec"]["volumeName"]
    kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(pod("user", "held")))
    running(kubectl, ns, "user", cluster)
    delete(kubectl, "pvc", "held", ns=ns)
    time.sleep(2)
    held = get(kubectl, "pvc", "held", ns=ns)
    assert held["metadata"]["deletionTimestamp"] and held["metadata"]["finalizers"] == ["kubernetes.io/pvc-protection"]
    assert get(kubectl, "pv", pv_name)["status"]["phase"] == "Bound"
    # A bound volume is protected too.
    delete(kubectl, "pv", pv_name)
    time.sleep(1)
    assert get(kubectl, "pv", pv_name)["metadata"]["deletionTimestamp"]
    kubectl("delete", "pod", "user", "-n", ns, "--wait=false")
    eventually(lambda: maybe(kubectl, "pvc", "held", ns=ns) is None, 30, "the claim gone", cluster)
    eventually(lambda: maybe(kubectl, "pv", pv_name) is None, 30, "the volume gone", cluster)
