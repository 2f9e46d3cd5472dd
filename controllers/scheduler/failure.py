"""Why a pod fits nowhere, worded as kube-scheduler words it.

    0/3 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: },
    2 Insufficient cpu.

Each rejected node contributes its reasons; identical reasons are counted, and the "count reason" strings
are sorted as strings (so "10 ..." sorts before "2 ..."), exactly as kube's FitError does. Skiff does not
preempt, so kube's trailing "preemption: ..." sentence is left out.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

NO_NODES_AVAILABLE = "no nodes available to schedule pods"


@dataclass
class FitError(Exception):
    num_all_nodes: int
    # node name -> the reasons it was rejected
    reasons: Mapping[str, Sequence[str]] = field(default_factory=dict)

    def histogram(self) -> Counter[str]:
        counts: Counter[str] = Counter()
        for node_reasons in self.reasons.values():
            counts.update(node_reasons)
        return counts

    def message(self) -> str:
        if self.num_all_nodes == 0:
            return NO_NODES_AVAILABLE
        text = f"0/{self.num_all_nodes} nodes are available:"
        parts = sorted(f"{count} {reason}" for reason, count in self.histogram().items())
        if parts:
            text += f" {', '.join(parts)}."
        return text

    def __str__(self) -> str:
        return self.message()
