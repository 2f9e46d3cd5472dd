"""InterPodAffinity (required terms): the pod's own affinity and anti-affinity, and the anti-affinity of
pods already placed, over any topology key (`kubernetes.io/hostname` for "not on the same node",
`topology.kubernetes.io/zone` for "not in the same zone" ...)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from controllers.scheduler.framework import SKIP, FilterPlugin
from controllers.scheduler.nodeinfo import NodeInfo
from controllers.scheduler.podinfo import AffinityTerm, PodInfo

ERR_EXISTING_ANTI_AFFINITY = "node(s) didn't satisfy existing pods anti-affinity rules"
ERR_AFFINITY = "node(s) didn't match pod affinity rules"
ERR_ANTI_AFFINITY = "node(s) didn't match pod anti-affinity rules"


@dataclass
class AffinityState:
    # (topology key, value) domains that placed pods' anti-affinity keeps this pod out of
    forbidden: set[tuple[str, str]] = field(default_factory=set)
    # per term of the pod: topology value -> matching pods there
    affinity_counts: list[Counter[str]] = field(default_factory=list)
    anti_affinity_counts: list[Counter[str]] = field(default_factory=list)
    # no pod anywhere matches the affinity terms, but the pod matches them itself: the first of a group
    first_of_group: bool = False


def count_matches(terms: Sequence[AffinityTerm], nodes: Sequence[NodeInfo]) -> list[Counter[str]]:
    counts: list[Counter[str]] = [Counter() for _ in terms]
    for node in nodes:
        labels = node.labels
        for index, term in enumerate(terms):
            value = labels.get(term.topology_key)
            if value is None:
                continue
            matched = sum(1 for placed in node.pods.values() if term.matches(placed))
            if matched:
                counts[index][value] += matched
    return counts


class InterPodAffinity(FilterPlugin):
    name = "InterPodAffinity"

    def pre_filter(self, pod: PodInfo) -> Any:
        cache = self.handle.cache
        state = AffinityState()
        for placed, node in cache.anti_affinity_pods():
            for term in placed.anti_affinity_terms:
                value = node.labels.get(term.topology_key)
                if value is not None and term.matches(pod):
                    state.forbidden.add((term.topology_key, value))
        if pod.affinity_terms or pod.anti_affinity_terms:
            nodes = cache.all_nodes()
            state.affinity_counts = count_matches(pod.affinity_terms, nodes)
            state.anti_affinity_counts = count_matches(pod.anti_affinity_terms, nodes)
            nothing_matches = not any(state.affinity_counts)
            state.first_of_group = nothing_matches and all(t.matches(pod) for t in pod.affinity_terms)
        elif not state.forbidden:
            return SKIP
        return state

    def filter(self, pod: PodInfo, node: NodeInfo, state: AffinityState) -> Sequence[str]:
        # kube's order: the pod's affinity, its anti-affinity, then placed pods' anti-affinity.
        labels = node.labels
        if not self._affinity_holds(pod, labels, state):
            return (ERR_AFFINITY,)
        for term, counts in zip(pod.anti_affinity_terms, state.anti_affinity_counts, strict=True):
            value = labels.get(term.topology_key)
            if value is not None and counts[value] > 0:
                return (ERR_ANTI_AFFINITY,)
        if any(labels.get(key) == value for key, value in state.forbidden):
            return (ERR_EXISTING_ANTI_AFFINITY,)
        return ()

    @staticmethod
    def _affinity_holds(pod: PodInfo, labels: Mapping[str, str], state: AffinityState) -> bool:
        values = [labels.get(term.topology_key) for term in pod.affinity_terms]
        if any(value is None for value in values):
            return False  # the node must carry every topology key
        if state.first_of_group:
            return True
        return all(counts[value] > 0 for value, counts in zip(values, state.affinity_counts, strict=True))
