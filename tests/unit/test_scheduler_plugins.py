"""The scheduler's filter and score plugins, one behaviour at a time, on hand-made nodes and pods."""

from __future__ import annotations

from typing import Any

import pytest

from controllers.scheduler.cache import SchedulerCache
from controllers.scheduler.framework import SKIP, Handle
from controllers.scheduler.nodeinfo import NodeInfo
from controllers.scheduler.plugins.interpodaffinity import (
    ERR_AFFINITY,
    ERR_ANTI_AFFINITY,
    ERR_EXISTING_ANTI_AFFINITY,
    InterPodAffinity,
)
from controllers.scheduler.plugins.nodeaffinity import ERR_NODE_AFFINITY, NodeAffinityFilter, NodeAffinityScore
from controllers.scheduler.plugins.nodeports import ERR_PORTS, NodePorts
from controllers.scheduler.plugins.noderesources import BalancedAllocation, LeastAllocated, NodeResourcesFit
from controllers.scheduler.plugins.nodestate import ERR_NOT_READY, ERR_UNSCHEDULABLE, NodeReady, NodeUnschedulable
from controllers.scheduler.plugins.selectorspread import SelectorSpread
from controllers.scheduler.plugins.tainttoleration import TaintTolerationFilter, TaintTolerationScore
from controllers.scheduler.podinfo import PodInfo


def make_node(
    name: str,
    cpu: str = "4",
    memory: str = "8Gi",
    pods: int = 110,
    labels: dict[str, str] | None = None,
    taints: list[dict[str, Any]] | None = None,
    ready: str = "True",
    unschedulable: bool = False,
    extra: dict[str, str] | None = None,
) -> dict[str, Any]:
    allocatable = {"cpu": cpu, "memory": memory, "pods": str(pods), "ephemeral-storage": "100Gi", **(extra or {})}
    spec: dict[str, Any] = {"taints": taints or []}
    if unschedulable:
        spec["unschedulable"] = True
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
        "spec": spec,
        "status": {"allocatable": allocatable, "conditions": [{"type": "Ready", "status": ready}]},
    }


def make_pod(
    name: str,
    cpu: str | None = None,
    memory: str | None = None,
    namespace: str = "default",
    labels: dict[str, str] | None = None,
    node_name: str = "",
    owner: str = "",
    **spec: Any,
) -> dict[str, Any]:
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v is not None}
    container: dict[str, Any] = {"name": "app", "image": "nginx", "resources": {"requests": requests}}
    metadata: dict[str, Any] = {"name": name, "namespace": namespace, "uid": f"uid-{name}", "labels": labels or {}}
    if owner:
        metadata["ownerReferences"] = [{"kind": "ReplicaSet", "name": owner, "uid": f"uid-{owner}", "controller": True}]
    body: dict[str, Any] = {"containers": [container], "schedulerName": "default-scheduler", **spec}
    if node_name:
        body["nodeName"] = node_name
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": body, "status": {"phase": "Pending"}}


def node_info(node: dict[str, Any], *pods: dict[str, Any]) -> NodeInfo:
    info = NodeInfo(node["metadata"]["name"])
    info.set_node(node)
    for pod in pods:
        info.add_pod(PodInfo.of(pod))
    return info


def handle() -> Handle:
    return Handle(SchedulerCache())


def run_filter(plugin_class: type, pod: dict[str, Any], info: NodeInfo) -> list[str]:
    plugin = plugin_class(handle())
    pod_info = PodInfo.of(pod)
    state = plugin.pre_filter(pod_info)
    return [] if state is SKIP else list(plugin.filter(pod_info, info, state))


# -- NodeResourcesFit --------------------------------------------------------------------------------


def test_resources_fit_counts_pods_already_on_the_node() -> None:
    node = make_node("n1", cpu="2", memory="4Gi")
    info = node_info(node, make_pod("a", cpu="1500m", node_name="n1"))
    assert run_filter(NodeResourcesFit, make_pod("p", cpu="500m"), info) == []
    assert run_filter(NodeResourcesFit, make_pod("p", cpu="501m"), info) == ["Insufficient cpu"]


def test_resources_fit_reports_every_short_resource() -> None:
    info = node_info(make_node("n1", cpu="1", memory="1Gi"))
    pod = make_pod("p", cpu="2", memory="2Gi")
    assert run_filter(NodeResourcesFit, pod, info) == ["Insufficient cpu", "Insufficient memory"]


def test_resources_fit_takes_the_largest_init_container_and_overhead() -> None:
    info = node_info(make_node("n1", cpu="2"))
    pod = make_pod("p", cpu="500m")
    pod["spec"]["initContainers"] = [{"name": "init", "image": "busybox", "resources": {"requests": {"cpu": "1800m"}}}]
    assert PodInfo.of(pod).requests["cpu"] == 1800
    pod["spec"]["overhead"] = {"cpu": "250m"}
    assert PodInfo.of(pod).requests["cpu"] == 2050
    assert run_filter(NodeResourcesFit, pod, info) == ["Insufficient cpu"]


def test_resources_fit_extended_resources_and_ephemeral_storage() -> None:
    gpu_node = node_info(make_node("gpu", extra={"example.com/gpu": "2"}))
    plain = node_info(make_node("plain"))
    pod = make_pod("p")
    pod["spec"]["containers"][0]["resources"]["requests"] = {"example.com/gpu": "1", "ephemeral-storage": "10Gi"}
    assert run_filter(NodeResourcesFit, pod, gpu_node) == []
    assert run_filter(NodeResourcesFit, pod, plain) == ["Insufficient example.com/gpu"]
    pod["spec"]["containers"][0]["resources"]["requests"]["ephemeral-storage"] = "200Gi"
    assert run_filter(NodeResourcesFit, pod, gpu_node) == ["Insufficient ephemeral-storage"]


def test_resources_fit_limits_the_pod_count() -> None:
    info = node_info(make_node("n1", pods=1), make_pod("a", node_name="n1"))
    assert run_filter(NodeResourcesFit, make_pod("p"), info) == ["Too many pods"]


# -- node state, taints ------------------------------------------------------------------------------


def test_not_ready_node_is_filtered_unless_the_taint_is_tolerated() -> None:
    info = node_info(make_node("n1", ready="False"))
    assert run_filter(NodeReady, make_pod("p"), info) == [ERR_NOT_READY]
    # The default NoExecute tolerations every pod gets do not let it onto a not-ready node.
    default = [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"}]
    assert run_filter(NodeReady, make_pod("p", tolerations=default), info) == [ERR_NOT_READY]
    tolerant = [{"key": "node.kubernetes.io/not-ready", "operator": "Exists"}]
    assert run_filter(NodeReady, make_pod("p", tolerations=tolerant), info) == []


def test_cordoned_node_is_filtered_unless_tolerated() -> None:
    info = node_info(make_node("n1", unschedulable=True))
    assert run_filter(NodeUnschedulable, make_pod("p"), info) == [ERR_UNSCHEDULABLE]
    toleration = [{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}]
    assert run_filter(NodeUnschedulable, make_pod("p", tolerations=toleration), info) == []


@pytest.mark.parametrize(
    ("toleration", "allowed"),
    [
        ({"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}, True),
        ({"key": "dedicated", "value": "db"}, True),  # operator defaults to Equal, any effect
        ({"key": "dedicated", "operator": "Equal", "value": "web", "effect": "NoSchedule"}, False),
        ({"key": "dedicated", "operator": "Exists"}, True),
        ({"operator": "Exists"}, True),  # tolerates everything
        ({"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}, False),
    ],
)
def test_taints_need_a_matching_toleration(toleration: dict[str, str], allowed: bool) -> None:
    info = node_info(make_node("n1", taints=[{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]))
    expected = [] if allowed else ["node(s) had untolerated taint {dedicated: db}"]
    assert run_filter(TaintTolerationFilter, make_pod("p", tolerations=[toleration]), info) == expected


def test_no_execute_taints_filter_and_prefer_no_schedule_do_not() -> None:
    no_execute = node_info(make_node("n1", taints=[{"key": "gone", "effect": "NoExecute"}]))
    assert run_filter(TaintTolerationFilter, make_pod("p"), no_execute) == ["node(s) had untolerated taint {gone: }"]
    prefer = node_info(make_node("n2", taints=[{"key": "spot", "value": "yes", "effect": "PreferNoSchedule"}]))
    assert run_filter(TaintTolerationFilter, make_pod("p"), prefer) == []


def test_prefer_no_schedule_taints_lower_the_score() -> None:
    clean = node_info(make_node("clean"))
    spot = node_info(make_node("spot", taints=[{"key": "spot", "effect": "PreferNoSchedule"}]))
    scores = score(TaintTolerationScore, make_pod("p"), clean, spot)
    assert scores == {"clean": 100, "spot": 0}
    tolerant = make_pod("p", tolerations=[{"key": "spot", "operator": "Exists", "effect": "PreferNoSchedule"}])
    assert score(TaintTolerationScore, tolerant, clean, spot) == {"clean": 100, "spot": 100}


# -- node affinity -----------------------------------------------------------------------------------


def test_node_selector_must_match_every_label() -> None:
    info = node_info(make_node("n1", labels={"disk": "ssd", "zone": "a"}))
    assert run_filter(NodeAffinityFilter, make_pod("p", nodeSelector={"disk": "ssd"}), info) == []
    selector = {"disk": "ssd", "zone": "b"}
    assert run_filter(NodeAffinityFilter, make_pod("p", nodeSelector=selector), info) == [ERR_NODE_AFFINITY]


def required(*terms: dict[str, Any]) -> dict[str, Any]:
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": list(terms)}}}


@pytest.mark.parametrize(
    ("expression", "matches"),
    [
        ({"key": "disk", "operator": "In", "values": ["ssd", "nvme"]}, True),
        ({"key": "disk", "operator": "In", "values": ["hdd"]}, False),
        ({"key": "disk", "operator": "NotIn", "values": ["hdd"]}, True),
        ({"key": "gpu", "operator": "NotIn", "values": ["x"]}, True),  # missing label: not in
        ({"key": "disk", "operator": "Exists"}, True),
        ({"key": "gpu", "operator": "Exists"}, False),
        ({"key": "gpu", "operator": "DoesNotExist"}, True),
        ({"key": "cores", "operator": "Gt", "values": ["8"]}, True),
        ({"key": "cores", "operator": "Gt", "values": ["16"]}, False),
        ({"key": "cores", "operator": "Lt", "values": ["32"]}, True),
        ({"key": "disk", "operator": "Gt", "values": ["1"]}, False),  # not a number
    ],
)
def test_required_node_affinity_operators(expression: dict[str, Any], matches: bool) -> None:
    info = node_info(make_node("n1", labels={"disk": "ssd", "cores": "16"}))
    pod = make_pod("p", affinity=required({"matchExpressions": [expression]}))
    assert run_filter(NodeAffinityFilter, pod, info) == ([] if matches else [ERR_NODE_AFFINITY])


def test_required_node_affinity_terms_are_ored_and_match_fields_by_name() -> None:
    first, second = node_info(make_node("n1")), node_info(make_node("n2"))
    by_name = {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}]}
    impossible = {"matchExpressions": [{"key": "nope", "operator": "Exists"}]}
    pod = make_pod("p", affinity=required(impossible, by_name))
    assert run_filter(NodeAffinityFilter, pod, first) == [ERR_NODE_AFFINITY]
    assert run_filter(NodeAffinityFilter, pod, second) == []
    assert run_filter(NodeAffinityFilter, make_pod("p", affinity=required({})), second) == [ERR_NODE_AFFINITY]


def test_preferred_node_affinity_scores_by_weight() -> None:
    ssd = node_info(make_node("ssd", labels={"disk": "ssd"}))
    hdd = node_info(make_node("hdd", labels={"disk": "hdd"}))
    preferred = [
        {"weight": 80, "preference": {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}},
        {"weight": 20, "preference": {"matchExpressions": [{"key": "disk", "operator": "Exists"}]}},
    ]
    pod = make_pod("p", affinity={"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": preferred}})
    assert score(NodeAffinityScore, pod, ssd, hdd) == {"ssd": 100, "hdd": 20}


# -- host ports --------------------------------------------------------------------------------------


def with_host_port(pod: dict[str, Any], port: int, protocol: str = "TCP", host_ip: str = "") -> dict[str, Any]:
    entry: dict[str, Any] = {"containerPort": 80, "hostPort": port, "protocol": protocol}
    if host_ip:
        entry["hostIP"] = host_ip
    pod["spec"]["containers"][0]["ports"] = [entry]
    return pod


@pytest.mark.parametrize(
    ("used", "wanted", "conflict"),
    [
        ((8080, "TCP", ""), (8080, "TCP", ""), True),
        ((8080, "TCP", ""), (8081, "TCP", ""), False),
        ((8080, "TCP", ""), (8080, "UDP", ""), False),
        ((8080, "TCP", "10.0.0.1"), (8080, "TCP", "10.0.0.2"), False),
        ((8080, "TCP", "10.0.0.1"), (8080, "TCP", "10.0.0.1"), True),
        ((8080, "TCP", "10.0.0.1"), (8080, "TCP", ""), True),  # 0.0.0.0 covers every address
    ],
)
def test_host_ports_conflict(used: tuple[int, str, str], wanted: tuple[int, str, str], conflict: bool) -> None:
    info = node_info(make_node("n1"), with_host_port(make_pod("a", node_name="n1"), *used))
    pod = with_host_port(make_pod("p"), *wanted)
    assert run_filter(NodePorts, pod, info) == ([ERR_PORTS] if conflict else [])


# -- inter-pod affinity ------------------------------------------------------------------------------


def term(labels: dict[str, str], key: str = "kubernetes.io/hostname") -> dict[str, Any]:
    return {"labelSelector": {"matchLabels": labels}, "topologyKey": key}


def affinity_filter(cache: SchedulerCache, pod: dict[str, Any], node: str) -> list[str]:
    plugin = InterPodAffinity(Handle(cache))
    info = PodInfo.of(pod)
    found = cache.node(node)
    assert found is not None
    state = plugin.pre_filter(info)
    return [] if state is SKIP else list(plugin.filter(info, found, state))


def cluster(*nodes: dict[str, Any]) -> SchedulerCache:
    cache = SchedulerCache()
    for node in nodes:
        cache.set_node(node)
    return cache


def test_anti_affinity_keeps_replicas_on_different_nodes() -> None:
    cache = cluster(make_node("n1"), make_node("n2"))
    anti = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term({"app": "db"})]}}
    cache.add_pod(PodInfo.of(make_pod("db-0", labels={"app": "db"}, affinity=anti)), "n1")
    second = make_pod("db-1", labels={"app": "db"}, affinity=anti)
    assert affinity_filter(cache, second, "n1") == [ERR_ANTI_AFFINITY]
    assert affinity_filter(cache, second, "n2") == []
    # A pod without rules of its own is still kept away by the placed pod's anti-affinity.
    assert affinity_filter(cache, make_pod("db-2", labels={"app": "db"}), "n1") == [ERR_EXISTING_ANTI_AFFINITY]
    assert affinity_filter(cache, make_pod("web", labels={"app": "web"}), "n1") == []
    # The incoming pod's own anti-affinity counts too, even when the placed pod has none.
    cache = cluster(make_node("n1"), make_node("n2"))
    cache.add_pod(PodInfo.of(make_pod("web-0", labels={"app": "web"})), "n1")
    loner = make_pod(
        "p", affinity={"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term({"app": "web"})]}}
    )
    assert affinity_filter(cache, loner, "n1") == [ERR_ANTI_AFFINITY]


def test_affinity_needs_a_matching_pod_in_the_topology_domain() -> None:
    cache = cluster(make_node("n1", labels={"zone": "a"}), make_node("n2", labels={"zone": "b"}))
    cache.add_pod(PodInfo.of(make_pod("cache-0", labels={"app": "cache"})), "n1")
    pod = make_pod(
        "web",
        affinity={"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term({"app": "cache"}, "zone")]}},
    )
    assert affinity_filter(cache, pod, "n1") == []
    assert affinity_filter(cache, pod, "n2") == [ERR_AFFINITY]


def test_first_pod_of_a_self_affine_group_may_go_anywhere() -> None:
    cache = cluster(make_node("n1"))
    group = {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term({"app": "grp"})]}}
    assert affinity_filter(cache, make_pod("g-0", labels={"app": "grp"}, affinity=group), "n1") == []
    assert affinity_filter(cache, make_pod("other", affinity=group), "n1") == [ERR_AFFINITY]


def test_affinity_terms_look_only_at_their_namespaces() -> None:
    cache = cluster(make_node("n1"), make_node("n2"))
    cache.add_pod(PodInfo.of(make_pod("db-0", namespace="prod", labels={"app": "db"})), "n1")
    anti = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term({"app": "db"})]}}
    assert affinity_filter(cache, make_pod("p", namespace="dev", affinity=anti), "n1") == []
    assert affinity_filter(cache, make_pod("p", namespace="prod", affinity=anti), "n1") == [ERR_ANTI_AFFINITY]


# -- scores ------------------------------------------------------------------------------------------


def score(plugin_class: type, pod: dict[str, Any], *nodes: NodeInfo) -> dict[str, float]:
    plugin = plugin_class(handle())
    info = PodInfo.of(pod)
    state = plugin.pre_score(info, list(nodes))
    raw = {node.name: plugin.score(info, node, state) for node in nodes}
    return {name: round(value, 2) for name, value in plugin.normalize(raw).items()}


def test_least_allocated_prefers_the_emptier_node() -> None:
    busy = node_info(make_node("busy", cpu="4", memory="4Gi"), make_pod("a", cpu="3", memory="3Gi", node_name="busy"))
    idle = node_info(make_node("idle", cpu="4", memory="4Gi"))
    scores = score(LeastAllocated, make_pod("p", cpu="1", memory="1Gi"), busy, idle)
    assert scores == {"busy": 0.0, "idle": 75.0}


def test_least_allocated_counts_best_effort_pods_with_default_requests() -> None:
    crowded = node_info(make_node("crowded"), *(make_pod(f"b{i}", node_name="crowded") for i in range(5)))
    empty = node_info(make_node("empty"))
    scores = score(LeastAllocated, make_pod("p"), crowded, empty)
    assert scores["empty"] > scores["crowded"]


def test_balanced_allocation_prefers_even_cpu_and_memory_use() -> None:
    # After placing the pod (1 cpu, 1Gi): "even" uses 50% cpu and 50% memory, "skewed" 50% cpu, 6.25% memory
    even = node_info(make_node("even", cpu="4", memory="4Gi"), make_pod("a", cpu="1", memory="1Gi", node_name="even"))
    skewed = node_info(make_node("skewed", cpu="4", memory="16Gi"), make_pod("a", cpu="1", node_name="skewed"))
    scores = score(BalancedAllocation, make_pod("p", cpu="1", memory="1Gi"), even, skewed)
    assert scores == {"even": 100.0, "skewed": 78.12}  # 100 * (1 - (0.5 - 0.0625) / 2)


def test_selector_spread_prefers_nodes_without_siblings() -> None:
    n1 = node_info(
        make_node("n1"), make_pod("web-1", owner="web", node_name="n1"), make_pod("web-2", owner="web", node_name="n1")
    )
    n2 = node_info(
        make_node("n2"), make_pod("web-3", owner="web", node_name="n2"), make_pod("db-1", owner="db", node_name="n2")
    )
    n3 = node_info(make_node("n3"), make_pod("db-2", owner="db", node_name="n3"))
    assert score(SelectorSpread, make_pod("web-4", owner="web"), n1, n2, n3) == {"n1": 0.0, "n2": 50.0, "n3": 100.0}


def test_selector_spread_weighs_zones() -> None:
    a1 = node_info(
        make_node("a1", labels={"topology.kubernetes.io/zone": "a"}), make_pod("w1", owner="web", node_name="a1")
    )
    a2 = node_info(make_node("a2", labels={"topology.kubernetes.io/zone": "a"}))
    b1 = node_info(make_node("b1", labels={"topology.kubernetes.io/zone": "b"}))
    scores = score(SelectorSpread, make_pod("w2", owner="web"), a1, a2, b1)
    # a2 has no sibling but shares zone a with one: it ranks between a1 and the empty zone b.
    assert scores["b1"] == 100.0
    assert scores["a1"] < scores["a2"] < scores["b1"]
