"""The scheduler's cache: per-node aggregates, assumed pods, confirmation, forgetting and removal."""

from __future__ import annotations

from controllers.scheduler.cache import SchedulerCache
from controllers.scheduler.podinfo import PodInfo, pod_requests
from tests.unit.test_scheduler_plugins import make_node, make_pod


def test_assume_then_confirm_counts_the_pod_once() -> None:
    cache = SchedulerCache()
    cache.set_node(make_node("n1", cpu="4"))
    pod = PodInfo.of(make_pod("p", cpu="1"))
    cache.assume(pod, "n1")
    node = cache.node("n1")
    assert node is not None and node.requested["cpu"] == 1000 and cache.is_assumed("default/p")
    cache.add_pod(PodInfo.of(make_pod("p", cpu="1", node_name="n1")), "n1")  # the informer sees it bound
    assert node.requested["cpu"] == 1000 and len(node.pods) == 1
    assert not cache.is_assumed("default/p")
    assert cache.forget("default/p") is False  # a confirmed pod is not forgotten by a late failure
    assert node.requested["cpu"] == 1000


def test_forget_frees_what_a_failed_binding_held() -> None:
    cache = SchedulerCache()
    cache.set_node(make_node("n1"))
    cache.assume(PodInfo.of(make_pod("p", cpu="1", owner="web")), "n1")
    assert cache.forget("default/p") is True
    node = cache.node("n1")
    assert node is not None and node.requested == {} and not node.pods and not node.owner_counts


def test_a_pod_bound_elsewhere_moves_from_its_assumed_node() -> None:
    cache = SchedulerCache()
    cache.set_node(make_node("n1"))
    cache.set_node(make_node("n2"))
    cache.assume(PodInfo.of(make_pod("p", cpu="1")), "n1")
    cache.add_pod(PodInfo.of(make_pod("p", cpu="1", node_name="n2")), "n2")  # another scheduler won
    n1, n2 = cache.node("n1"), cache.node("n2")
    assert n1 is not None and n2 is not None
    assert n1.requested == {} and n2.requested["cpu"] == 1000


def test_removing_a_node_keeps_its_pods_accounted_until_they_go() -> None:
    cache = SchedulerCache()
    cache.set_node(make_node("n1"))
    cache.add_pod(PodInfo.of(make_pod("p", cpu="1", node_name="n1")), "n1")
    cache.remove_node("n1")
    assert cache.schedulable_nodes() == []
    cache.set_node(make_node("n1"))  # the node comes back: its pod still counts
    node = cache.node("n1")
    assert node is not None and node.requested["cpu"] == 1000
    cache.remove_pod("default/p")
    cache.remove_node("n1")
    assert cache.node("n1") is None


def test_pods_seen_before_their_node_are_counted_once_it_appears() -> None:
    cache = SchedulerCache()
    cache.add_pod(PodInfo.of(make_pod("p", memory="1Gi", node_name="late")), "late")
    assert cache.schedulable_nodes() == []
    cache.set_node(make_node("late"))
    node = cache.node("late")
    assert node is not None and node.requested["memory"] == 1024**3


def test_host_ports_are_released_with_the_pod() -> None:
    cache = SchedulerCache()
    cache.set_node(make_node("n1"))
    pod = make_pod("p")
    pod["spec"]["containers"][0]["ports"] = [{"containerPort": 80, "hostPort": 80}]
    cache.assume(PodInfo.of(pod), "n1")
    node = cache.node("n1")
    assert node is not None and node.port_taken("0.0.0.0", "TCP", 80)
    cache.forget("default/p")
    assert not node.port_taken("0.0.0.0", "TCP", 80)


def test_sidecar_init_containers_add_to_the_request() -> None:
    spec = {
        "containers": [{"name": "app", "resources": {"requests": {"cpu": "1"}}}],
        "initContainers": [
            {"name": "proxy", "restartPolicy": "Always", "resources": {"requests": {"cpu": "200m"}}},
            {"name": "migrate", "resources": {"requests": {"cpu": "2"}}},
        ],
    }
    # Running: app + proxy = 1.2; the migration runs beside the proxy: 2.2, the peak.
    assert pod_requests(spec)["cpu"] == 2200
