"""Whole scheduling decisions: the "0/N nodes are available" message, picking among feasible nodes, and
the assume cache that keeps a burst of pods from overcommitting a node."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from controllers.scheduler.algorithm import Algorithm
from controllers.scheduler.cache import SchedulerCache
from controllers.scheduler.failure import FitError
from controllers.scheduler.framework import Handle
from controllers.scheduler.plugins import default_filters, default_scores
from controllers.scheduler.podinfo import PodInfo
from tests.unit.test_scheduler_plugins import make_node, make_pod

CONTROL_PLANE_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}


def algorithm(cache: SchedulerCache, seed: int = 1) -> Algorithm:
    handle = Handle(cache)
    return Algorithm(cache, default_filters(handle), default_scores(handle), random.Random(seed))


def cluster(*nodes: dict) -> SchedulerCache:
    cache = SchedulerCache()
    for node in nodes:
        cache.set_node(node)
    return cache


def failure(cache: SchedulerCache, pod: dict) -> str:
    with pytest.raises(FitError) as caught:
        algorithm(cache).schedule(PodInfo.of(pod))
    return caught.value.message()


def test_message_counts_reasons_per_node_in_kubes_format() -> None:
    cache = cluster(
        make_node("cp", cpu="8", taints=[CONTROL_PLANE_TAINT]),
        make_node("w1", cpu="2"),
        make_node("w2", cpu="2"),
    )
    assert failure(cache, make_pod("big", cpu="4")) == (
        "0/3 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, "
        "2 Insufficient cpu."
    )


def test_message_lists_every_short_resource_and_sorts_as_strings() -> None:
    nodes = [make_node(f"small-{i}", cpu="1", memory="1Gi") for i in range(10)]
    cache = cluster(*nodes, make_node("cordoned", unschedulable=True))
    # Each small node lacks both resources, and each missing resource is counted.
    assert failure(cache, make_pod("p", cpu="2", memory="2Gi")) == (
        "0/11 nodes are available: 1 node(s) were unschedulable, 10 Insufficient cpu, 10 Insufficient memory."
    )


def test_message_for_a_node_selector_nothing_matches() -> None:
    cache = cluster(make_node("n1", labels={"pool": "x"}), make_node("n2"))
    assert failure(cache, make_pod("p", nodeSelector={"pool": "y"})) == (
        "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector."
    )


def test_message_without_nodes() -> None:
    assert failure(SchedulerCache(), make_pod("p")) == "no nodes available to schedule pods"


def test_fit_error_histogram_is_sorted_as_strings() -> None:
    # As in kube, "10 Too many pods" sorts before "2 Insufficient cpu".
    reasons = {
        **{f"full-{i}": ["Too many pods"] for i in range(10)},
        "a": ["Insufficient cpu"],
        "b": ["Insufficient cpu"],
    }
    assert FitError(12, reasons).message() == "0/12 nodes are available: 10 Too many pods, 2 Insufficient cpu."


def test_picks_the_best_scoring_node() -> None:
    cache = cluster(make_node("busy", cpu="4", memory="8Gi"), make_node("idle", cpu="4", memory="8Gi"))
    cache.add_pod(PodInfo.of(make_pod("a", cpu="3", memory="6Gi", node_name="busy")), "busy")
    assert algorithm(cache).schedule(PodInfo.of(make_pod("p", cpu="500m", memory="1Gi"))).node == "idle"


def test_ties_are_broken_at_random() -> None:
    cache = cluster(*(make_node(f"n{i}") for i in range(3)))
    chosen = {algorithm(cache, seed).schedule(PodInfo.of(make_pod("p"))).node for seed in range(40)}
    assert chosen == {"n0", "n1", "n2"}


def test_assumed_pods_count_so_a_burst_never_overcommits() -> None:
    cache = cluster(make_node("n1", cpu="2", memory="8Gi"), make_node("n2", cpu="2", memory="8Gi"))
    scheduler = algorithm(cache)
    placed: Counter[str] = Counter()
    for index in range(4):
        pod = PodInfo.of(make_pod(f"p{index}", cpu="1"))
        node = scheduler.schedule(pod).node
        cache.assume(pod, node)  # no binding observed yet
        placed[node] += 1
    assert placed == {"n1": 2, "n2": 2}
    message = failure(cache, make_pod("p4", cpu="1"))
    assert message == "0/2 nodes are available: 2 Insufficient cpu."


def test_replicas_spread_evenly_over_equal_nodes() -> None:
    cache = cluster(*(make_node(f"n{i}", cpu="16", memory="64Gi") for i in range(3)))
    scheduler = algorithm(cache)
    placed: Counter[str] = Counter()
    for index in range(30):
        pod = PodInfo.of(make_pod(f"web-{index}", cpu="100m", memory="64Mi", owner="web"))
        node = scheduler.schedule(pod).node
        cache.assume(pod, node)
        placed[node] += 1
    assert sorted(placed.values()) == [10, 10, 10]


def test_filters_stop_at_the_first_failing_plugin_per_node() -> None:
    # A tainted node that is also too small reports only the taint, as kube does.
    cache = cluster(make_node("cp", cpu="1", taints=[CONTROL_PLANE_TAINT]))
    assert failure(cache, make_pod("p", cpu="2")) == (
        "0/1 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }."
    )
