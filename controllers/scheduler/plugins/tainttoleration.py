"""TaintToleration: NoSchedule and NoExecute taints must be tolerated; PreferNoSchedule ones lower a
node's score."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from controllers.scheduler.framework import FilterPlugin, ScorePlugin, normalize_to_max
from controllers.scheduler.nodeinfo import NodeInfo
from controllers.scheduler.plugins.taints import (
    NO_EXECUTE,
    NO_SCHEDULE,
    PREFER_NO_SCHEDULE,
    Toleration,
    describe,
    tolerated,
)
from controllers.scheduler.podinfo import PodInfo

ERR_UNTOLERATED = "node(s) had untolerated taint {}"


class TaintTolerationFilter(FilterPlugin):
    name = "TaintToleration"

    def filter(self, pod: PodInfo, node: NodeInfo, state: Any) -> Sequence[str]:
        for taint in node.spec.get("taints") or []:
            if taint.get("effect") not in (NO_SCHEDULE, NO_EXECUTE):
                continue
            if not tolerated(pod.tolerations, taint):
                return (ERR_UNTOLERATED.format(describe(taint)),)
        return ()


class TaintTolerationScore(ScorePlugin):
    """Fewer untolerated PreferNoSchedule taints is better (only tolerations with no effect or
    PreferNoSchedule count here, as in kube)."""

    name = "TaintToleration"
    weight = 3

    def pre_score(self, pod: PodInfo, nodes: Sequence[NodeInfo]) -> list[Toleration]:
        return [t for t in pod.tolerations if (t.get("effect") or "") in ("", PREFER_NO_SCHEDULE)]

    def score(self, pod: PodInfo, node: NodeInfo, state: list[Toleration]) -> float:
        taints = node.spec.get("taints") or []
        return sum(1 for t in taints if t.get("effect") == PREFER_NO_SCHEDULE and not tolerated(state, t))

    def normalize(self, scores: dict[str, float]) -> dict[str, float]:
        return normalize_to_max(scores, reverse=True)
