"""Which volume a claim gets, which node can reach a volume, and what the scheduler's volume filter says."""

from __future__ import annotations

from typing import Any

from apiserver.admission.storage import default_class
from controllers.scheduler.cache import SchedulerCache
from controllers.scheduler.framework import SKIP, Handle
from controllers.scheduler.nodeinfo import NodeInfo
from controllers.scheduler.plugins.volumes import (
    ERR_BIND_CONFLICT,
    ERR_NODE_CONFLICT,
    ERR_RWO_CONFLICT,
    ERR_RWOP_CONFLICT,
    ERR_UNBOUND_IMMEDIATE,
    VolumeBinding,
)
from controllers.scheduler.podinfo import PodInfo
from controllers.volume.common import find_best_match, mismatch, node_affinity_for, node_can_reach


def pv(name: str, size: str, cls: str = "", modes: tuple[str, ...] = ("ReadWriteOnce",), **spec: Any) -> dict[str, Any]:
    labels = spec.pop("labels", {})
    body = {"capacity": {"storage": size}, "accessModes": list(modes), "storageClassName": cls, **spec}
    return {"metadata": {"name": name, "labels": labels}, "spec": body, "status": {"phase": "Available"}}


def pvc(
    name: str, size: str, cls: str | None = "", modes: tuple[str, ...] = ("ReadWriteOnce",), **spec: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {"accessModes": list(modes), "resources": {"requests": {"storage": size}}, **spec}
    if cls is not None:
        body["storageClassName"] = cls
    return {"metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}"}, "spec": body}


def names(found: dict[str, Any] | None) -> str | None:
    return found["metadata"]["name"] if found else None


def test_the_smallest_volume_that_fits_wins() -> None:
    volumes = [pv("big", "10Gi"), pv("exact", "2Gi"), pv("small", "1Gi"), pv("mid", "5Gi")]
    assert names(find_best_match(pvc("c", "2Gi"), volumes)) == "exact"
    assert names(find_best_match(pvc("c", "3Gi"), volumes)) == "mid"
    assert find_best_match(pvc("c", "11Gi"), volumes) is None


def test_class_modes_volume_mode_and_selector_must_all_match() -> None:
    claim = pvc("c", "1Gi", "fast", ("ReadWriteOnce", "ReadOnlyMany"), selector={"matchLabels": {"zone": "a"}})
    assert (
        mismatch(pv("v", "1Gi", "slow", ("ReadWriteOnce", "ReadOnlyMany")), claim) == "storageClassName does not match"
    )
    assert mismatch(pv("v", "1Gi", "fast"), claim) == "incompatible accessMode"
    assert mismatch(pv("v", "1Gi", "fast", ("ReadWriteOnce", "ReadOnlyMany"), volumeMode="Block"), claim) == (
        "incompatible volumeMode"
    )
    right = pv("right", "1Gi", "fast", ("ReadWriteMany", "ReadOnlyMany", "ReadWriteOnce"), labels={"zone": "a"})
    wrong_zone = pv("other", "1Gi", "fast", ("ReadOnlyMany", "ReadWriteOnce"), labels={"zone": "b"})
    assert names(find_best_match(claim, [wrong_zone, right])) == "right"


def test_a_claim_with_class_empty_only_gets_volumes_without_a_class() -> None:
    assert find_best_match(pvc("c", "1Gi", ""), [pv("classy", "1Gi", "standard")]) is None
    assert names(find_best_match(pvc("c", "1Gi", ""), [pv("plain", "1Gi")])) == "plain"


def test_bound_taken_and_prebound_volumes() -> None:
    taken = pv("taken", "1Gi", claimRef={"namespace": "ns", "name": "someone", "uid": "x"})
    in_flight = pv("in-flight", "1Gi")
    reserved = pv("reserved", "8Gi", claimRef={"namespace": "ns", "name": "c"})
    claim = pvc("c", "1Gi")
    assert find_best_match(claim, [taken, in_flight], {"in-flight": "ns/other"}) is None
    # A volume pre-bound to the claim by name wins even over a smaller one.
    assert names(find_best_match(claim, [pv("small", "1Gi"), reserved])) == "reserved"
    released = pv("released", "1Gi", claimRef={"namespace": "ns", "name": "c", "uid": "old-uid"})
    assert find_best_match(claim, [released]) is None  # that claimRef is an earlier claim of the same name


def test_node_affinity_decides_which_nodes_reach_a_volume() -> None:
    local = pv("local", "1Gi", nodeAffinity=node_affinity_for("n1"))
    assert node_can_reach(local, "n1", {"kubernetes.io/hostname": "n1"})
    assert not node_can_reach(local, "n2", {"kubernetes.io/hostname": "n2"})
    assert node_can_reach(pv("anywhere", "1Gi"), "n2", {})
    claim = pvc("c", "1Gi")
    assert find_best_match(claim, [local], node=("n2", {"kubernetes.io/hostname": "n2"})) is None
    assert names(find_best_match(claim, [local], node=("n1", {"kubernetes.io/hostname": "n1"}))) == "local"


def test_the_newest_default_class_is_the_default() -> None:
    def sc(name: str, created: str, default: bool) -> dict[str, Any]:
        annotations = {"storageclass.kubernetes.io/is-default-class": "true"} if default else {}
        return {"metadata": {"name": name, "creationTimestamp": created, "annotations": annotations}}

    classes = [sc("old", "2024-01-01T00:00:00Z", True), sc("new", "2025-01-01T00:00:00Z", True),
               sc("newest", "2026-01-01T00:00:00Z", False)]  # fmt: skip
    assert default_class(classes)["metadata"]["name"] == "new"  # type: ignore[index]
    assert default_class([sc("plain", "2024-01-01T00:00:00Z", False)]) is None


# -- the scheduler's filter -------------------------------------------------------------------------


class FakeInformer:
    def __init__(self, objects: list[dict[str, Any]]) -> None:
        self.objects = {(o["metadata"].get("namespace"), o["metadata"]["name"]): o for o in objects}

    def get(self, namespace: str | None, name: str) -> dict[str, Any] | None:
        return self.objects.get((namespace, name))

    def list(self) -> list[dict[str, Any]]:
        return list(self.objects.values())


def plugin(claims: list[dict[str, Any]], volumes: list[dict[str, Any]], classes: list[dict[str, Any]],
           cache: SchedulerCache | None = None) -> VolumeBinding:  # fmt: skip
    binding = VolumeBinding(Handle(cache or SchedulerCache()))
    binding.claims, binding.volumes, binding.classes = (
        FakeInformer(claims),
        FakeInformer(volumes),
        FakeInformer(classes),
    )
    return binding


def pod_using(name: str, claim: str) -> PodInfo:
    volume = {"name": "d", "persistentVolumeClaim": {"claimName": claim}}
    metadata = {"name": name, "namespace": "ns", "uid": name}
    return PodInfo.of({"metadata": metadata, "spec": {"containers": [{"name": "c"}], "volumes": [volume]}})


def node(name: str) -> NodeInfo:
    info = NodeInfo(name)
    info.set_node({"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}, "status": {}})
    return info


def verdicts(binding: VolumeBinding, pod: PodInfo, *nodes: NodeInfo) -> dict[str, tuple[str, ...]]:
    state = binding.pre_filter(pod)
    return {n.name: tuple(binding.filter(pod, n, state)) for n in nodes}


def test_pods_without_claims_are_skipped_and_unbound_immediate_claims_wait() -> None:
    no_claims = PodInfo.of({"metadata": {"name": "p", "namespace": "ns"}, "spec": {"containers": [{"name": "c"}]}})
    immediate = {"metadata": {"name": "fast"}, "provisioner": "x", "volumeBindingMode": "Immediate"}
    binding = plugin([pvc("data", "1Gi", "fast")], [], [immediate])
    assert binding.pre_filter(no_claims) is SKIP
    assert verdicts(binding, pod_using("p", "data"), node("n1")) == {"n1": (ERR_UNBOUND_IMMEDIATE,)}
    assert verdicts(binding, pod_using("p", "missing"), node("n1")) == {
        "n1": ('persistentvolumeclaim "missing" not found',)
    }


def test_bound_volume_node_affinity_and_wait_for_first_consumer() -> None:
    bound = pvc("data", "1Gi", volumeName="local")
    local = pv("local", "1Gi", nodeAffinity=node_affinity_for("n1"))
    binding = plugin([bound], [local], [])
    assert verdicts(binding, pod_using("p", "data"), node("n1"), node("n2")) == {"n1": (), "n2": (ERR_NODE_CONFLICT,)}

    wffc = {"metadata": {"name": "later"}, "provisioner": "kubernetes.io/no-provisioner",
            "volumeBindingMode": "WaitForFirstConsumer"}  # fmt: skip
    static = pv("static", "1Gi", "later", nodeAffinity=node_affinity_for("n2"))
    binding = plugin([pvc("data", "1Gi", "later")], [static], [wffc])
    assert verdicts(binding, pod_using("p", "data"), node("n1"), node("n2")) == {"n1": (ERR_BIND_CONFLICT,), "n2": ()}
    provisioned = {**wffc, "provisioner": "skiff.dev/hostpath"}
    binding = plugin([pvc("data", "1Gi", "later")], [], [provisioned])
    assert verdicts(binding, pod_using("p", "data"), node("n1")) == {"n1": ()}


def test_read_write_once_pod_and_read_write_once_sharing() -> None:
    cache = SchedulerCache()
    for name in ("n1", "n2"):
        cache.set_node({"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}, "status": {}})
    solo = pvc("solo", "1Gi", modes=("ReadWriteOncePod",), volumeName="v1")
    shared = pvc("shared", "1Gi", volumeName="v2")
    many = pvc("many", "1Gi", modes=("ReadWriteMany",), volumeName="v3")
    volumes = [pv("v1", "1Gi", modes=("ReadWriteOncePod",)), pv("v2", "1Gi"), pv("v3", "1Gi", modes=("ReadWriteMany",))]
    cache.add_pod(pod_using("first", "solo"), "n1")
    cache.add_pod(pod_using("writer", "shared"), "n1")
    cache.add_pod(pod_using("reader", "many"), "n1")
    binding = plugin([solo, shared, many], volumes, [], cache)
    n1, n2 = cache.node("n1"), cache.node("n2")
    assert n1 is not None and n2 is not None
    assert verdicts(binding, pod_using("second", "solo"), n1, n2) == {
        "n1": (ERR_RWOP_CONFLICT,),
        "n2": (ERR_RWOP_CONFLICT,),
    }
    assert verdicts(binding, pod_using("first", "solo"), n1, n2) == {"n1": (), "n2": ()}  # itself, rescheduled
    assert verdicts(binding, pod_using("other", "shared"), n1, n2) == {"n1": (), "n2": (ERR_RWO_CONFLICT,)}
    assert verdicts(binding, pod_using("other", "many"), n1, n2) == {"n1": (), "n2": ()}
