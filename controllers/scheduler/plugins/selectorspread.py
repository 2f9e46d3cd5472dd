"""SelectorSpread: spread pods of one controller (ReplicaSet, StatefulSet, Job ...) across nodes, and
across zones when nodes carry `topology.kubernetes.io/zone` (zones weigh two thirds, as in kube)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from controllers.scheduler.framework import MAX_NODE_SCORE, ScorePlugin
from controllers.scheduler.nodeinfo import NodeInfo
from controllers.scheduler.podinfo import PodInfo

ZONE_LABEL = "topology.kubernetes.io/zone"
ZONE_WEIGHTING = 2 / 3


@dataclass
class SpreadState:
    owner_uid: str
    max_on_node: int
    by_zone: Counter[str]


def _zone(node: NodeInfo) -> str:
    return node.labels.get(ZONE_LABEL, "")


class SelectorSpread(ScorePlugin):
    name = "SelectorSpread"
    weight = 2

    def pre_score(self, pod: PodInfo, nodes: Sequence[NodeInfo]) -> SpreadState | None:
        if not pod.owner_uid:
            return None
        uid = pod.owner_uid
        by_zone: Counter[str] = Counter()
        for node in nodes:
            zone = _zone(node)
            if zone:
                by_zone[zone] += node.owner_counts.get(uid, 0)
        max_on_node = max((node.owner_counts.get(uid, 0) for node in nodes), default=0)
        return SpreadState(uid, max_on_node, by_zone)

    def score(self, pod: PodInfo, node: NodeInfo, state: SpreadState | None) -> float:
        if state is None:
            return 0
        score = float(MAX_NODE_SCORE)
        if state.max_on_node > 0:
            score = MAX_NODE_SCORE * (state.max_on_node - node.owner_counts.get(state.owner_uid, 0)) / state.max_on_node
        zone = _zone(node)
        if zone and state.by_zone:
            max_in_zone = max(state.by_zone.values())
            zone_score = float(MAX_NODE_SCORE)
            if max_in_zone > 0:
                zone_score = MAX_NODE_SCORE * (max_in_zone - state.by_zone[zone]) / max_in_zone
            score = score * (1 - ZONE_WEIGHTING) + zone_score * ZONE_WEIGHTING
        return score
