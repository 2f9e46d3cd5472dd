"""NodeResourcesFit (filter), LeastAllocated and BalancedAllocation (scores).

The filter compares the pod's requests with the node's allocatable minus what placed and assumed pods
request, for cpu, memory, ephemeral-storage and extended resources, and counts pods against the node's
allocatable `pods`. Every resource that falls short is its own reason ("Insufficient cpu").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from controllers.scheduler.framework import MAX_NODE_SCORE, FilterPlugin, ScorePlugin
from controllers.scheduler.nodeinfo import NodeInfo
from controllers.scheduler.podinfo import PodInfo
from controllers.scheduler.resources import CPU, EPHEMERAL_STORAGE, MEMORY, PODS

ERR_TOO_MANY_PODS = "Too many pods"
_FIRST = {CPU: 0, MEMORY: 1, EPHEMERAL_STORAGE: 2}


def _checked_order(name: str) -> tuple[int, str]:
    return (_FIRST.get(name, 3), name)


def insufficient(pod: PodInfo, node: NodeInfo) -> list[str]:
    reasons = []
    if len(node.pods) + 1 > node.allowed_pods:
        reasons.append(ERR_TOO_MANY_PODS)
    for name in sorted(pod.requests, key=_checked_order):
        if name == PODS:
            continue
        free = node.allocatable.get(name, 0) - node.requested.get(name, 0)
        if pod.requests[name] > free:
            reasons.append(f"Insufficient {name}")
    return reasons


class NodeResourcesFit(FilterPlugin):
    name = "NodeResourcesFit"

    def filter(self, pod: PodInfo, node: NodeInfo, state: Any) -> Sequence[str]:
        return insufficient(pod, node)


class LeastAllocated(ScorePlugin):
    """More free cpu and memory after placing the pod is better (equal weights); requests here use kube's
    non-zero defaults for containers without requests."""

    name = "NodeResourcesFit"
    weight = 1

    def score(self, pod: PodInfo, node: NodeInfo, state: Any) -> float:
        pairs = (
            (node.non_zero_cpu + pod.non_zero[0], node.allocatable.get(CPU, 0)),
            (node.non_zero_memory + pod.non_zero[1], node.allocatable.get(MEMORY, 0)),
        )
        return sum(_free_fraction(requested, capacity) for requested, capacity in pairs) / len(pairs)


def _free_fraction(requested: int, capacity: int) -> float:
    if capacity <= 0 or requested > capacity:
        return 0.0
    return (capacity - requested) * MAX_NODE_SCORE / capacity


class BalancedAllocation(ScorePlugin):
    """Nodes whose cpu and memory would be used in similar proportions are better: 100 * (1 - the
    standard deviation of the used fractions)."""

    name = "NodeResourcesBalancedAllocation"
    weight = 1

    def score(self, pod: PodInfo, node: NodeInfo, state: Any) -> float:
        fractions = []
        for name in (CPU, MEMORY):
            capacity = node.allocatable.get(name, 0)
            if capacity > 0:
                used = node.requested.get(name, 0) + pod.requests.get(name, 0)
                fractions.append(min(used / capacity, 1.0))
        if len(fractions) < 2:
            return MAX_NODE_SCORE
        mean = sum(fractions) / len(fractions)
        deviation = math.sqrt(sum((f - mean) ** 2 for f in fractions) / len(fractions))
        return (1 - deviation) * MAX_NODE_SCORE
