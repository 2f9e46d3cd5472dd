"""One scheduling decision: filter every node, score the feasible ones, pick the best (ties at random)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from controllers.scheduler.cache import SchedulerCache
from controllers.scheduler.failure import FitError
from controllers.scheduler.framework import SKIP, FilterPlugin, ScorePlugin
from controllers.scheduler.nodeinfo import NodeInfo
from controllers.scheduler.podinfo import PodInfo


@dataclass
class Decision:
    node: str
    feasible: int
    scores: dict[str, float]


class Algorithm:
    def __init__(
        self,
        cache: SchedulerCache,
        filters: Sequence[FilterPlugin],
        scores: Sequence[ScorePlugin],
        rng: random.Random | None = None,
    ) -> None:
        self.cache = cache
        self.filters = list(filters)
        self.scores = list(scores)
        self.rng = rng or random.Random()

    def schedule(self, pod: PodInfo) -> Decision:
        """The node for `pod`; raises `FitError` when none can host it."""
        nodes = self.cache.schedulable_nodes()
        feasible, rejected = self.find_feasible(pod, nodes)
        if not feasible:
            raise FitError(len(nodes), rejected)
        if len(feasible) == 1:
            return Decision(feasible[0].name, 1, {})
        totals = self.prioritize(pod, feasible)
        return Decision(self.select(totals), len(feasible), totals)

    def find_feasible(self, pod: PodInfo, nodes: Sequence[NodeInfo]) -> tuple[list[NodeInfo], dict[str, list[str]]]:
        states = [(plugin, plugin.pre_filter(pod)) for plugin in self.filters]
        plugins = [(plugin, state) for plugin, state in states if state is not SKIP]
        feasible: list[NodeInfo] = []
        rejected: dict[str, list[str]] = {}
        for node in nodes:
            for plugin, state in plugins:
                reasons = plugin.filter(pod, node, state)
                if reasons:
                    rejected[node.name] = list(reasons)
                    break
            else:
                feasible.append(node)
        return feasible, rejected

    def prioritize(self, pod: PodInfo, nodes: Sequence[NodeInfo]) -> dict[str, float]:
        totals = dict.fromkeys((node.name for node in nodes), 0.0)
        for plugin in self.scores:
            state = plugin.pre_score(pod, nodes)
            raw = {node.name: plugin.score(pod, node, state) for node in nodes}
            for name, value in plugin.normalize(raw).items():
                totals[name] += value * plugin.weight
        return totals

    def select(self, totals: dict[str, float]) -> str:
        best = max(totals.values())
        # Scores are sums of floats: treat values within rounding noise as a tie.
        winners = [name for name, value in totals.items() if best - value < 1e-9]
        return winners[0] if len(winners) == 1 else self.rng.choice(winners)
