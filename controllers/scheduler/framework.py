"""The plugin interfaces, after kube-scheduler's framework (a subset of its extension points).

- `FilterPlugin`: can this node host the pod at all? `filter` returns the reasons it cannot (kube's
  wording, e.g. "Insufficient cpu"; empty when it can). `pre_filter` runs once per pod before the nodes
  are filtered and returns state that `filter` receives for each node (None if it needs none), or
  `SKIP` when the plugin has nothing to check for this pod.
- `ScorePlugin`: how good is a feasible node, 0..100 after `normalize`, multiplied by `weight`.
- `PreBindPlugin`: async work after the node is chosen and before the binding is posted, such as
  provisioning or binding volumes; raising aborts this attempt (the pod is retried with backoff).

Plugins get a `Handle` at construction: the informer factory (to ask for informers of what they need,
e.g. PersistentVolumeClaims, StorageClasses), the API client and the cache. Volume rules
(WaitForFirstConsumer topology, ReadWriteOncePod) belong in a filter plus, where something must be
written before binding, a pre-bind plugin; add them to the lists in `controllers.scheduler.plugins`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from controllers.scheduler.cache import SchedulerCache
from controllers.scheduler.nodeinfo import NodeInfo
from controllers.scheduler.podinfo import PodInfo
from skiff.client.rest import AsyncClient
from skiff.runtime import SharedInformerFactory

MAX_NODE_SCORE = 100
# Returned by `pre_filter` when a plugin has nothing to check for this pod (kube's Skip status).
SKIP: Any = object()


@dataclass
class Handle:
    cache: SchedulerCache
    informers: SharedInformerFactory | None = None
    client: AsyncClient | None = None


class FilterPlugin:
    name = ""

    def __init__(self, handle: Handle) -> None:
        self.handle = handle

    def pre_filter(self, pod: PodInfo) -> Any:
        return None

    def filter(self, pod: PodInfo, node: NodeInfo, state: Any) -> Sequence[str]:
        raise NotImplementedError


class ScorePlugin:
    name = ""
    weight = 1

    def __init__(self, handle: Handle) -> None:
        self.handle = handle

    def pre_score(self, pod: PodInfo, nodes: Sequence[NodeInfo]) -> Any:
        return None

    def score(self, pod: PodInfo, node: NodeInfo, state: Any) -> float:
        raise NotImplementedError

    def normalize(self, scores: dict[str, float]) -> dict[str, float]:
        return scores


class PreBindPlugin:
    name = ""

    def __init__(self, handle: Handle) -> None:
        self.handle = handle

    async def pre_bind(self, pod: PodInfo, node_name: str) -> None:
        raise NotImplementedError


def normalize_to_max(scores: dict[str, float], reverse: bool = False) -> dict[str, float]:
    """kube's DefaultNormalizeScore: scale so the highest raw score is 100 (reversed: the lowest is)."""
    highest = max(scores.values(), default=0)
    if highest == 0:
        return {name: MAX_NODE_SCORE if reverse else 0 for name in scores}
    scaled = {name: MAX_NODE_SCORE * value / highest for name, value in scores.items()}
    if reverse:
        return {name: MAX_NODE_SCORE - value for name, value in scaled.items()}
    return scaled
