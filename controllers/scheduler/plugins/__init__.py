"""The default plugins, in kube's order: cheap checks on the node first, then the pod's needs.

A filter stops at the first plugin that rejects a node, so each node contributes the reasons of one
plugin to the "0/N nodes are available" message, as in kube-scheduler. To add a plugin (volume rules,
topology spread ...), write a `FilterPlugin`, `ScorePlugin` or `PreBindPlugin` (see
`controllers.scheduler.framework`) and list it here.
"""

from __future__ import annotations

from controllers.scheduler.framework import FilterPlugin, Handle, PreBindPlugin, ScorePlugin
from controllers.scheduler.plugins.interpodaffinity import InterPodAffinity
from controllers.scheduler.plugins.nodeaffinity import NodeAffinityFilter, NodeAffinityScore
from controllers.scheduler.plugins.nodeports import NodePorts
from controllers.scheduler.plugins.noderesources import BalancedAllocation, LeastAllocated, NodeResourcesFit
from controllers.scheduler.plugins.nodestate import NodeReady, NodeUnschedulable
from controllers.scheduler.plugins.selectorspread import SelectorSpread
from controllers.scheduler.plugins.tainttoleration import TaintTolerationFilter, TaintTolerationScore
from controllers.scheduler.plugins.volumes import VolumeBinder, VolumeBinding

FILTERS: tuple[type[FilterPlugin], ...] = (
    NodeUnschedulable,
    TaintTolerationFilter,
    NodeReady,
    NodeAffinityFilter,
    NodePorts,
    NodeResourcesFit,
    InterPodAffinity,
    VolumeBinding,
)
SCORES: tuple[type[ScorePlugin], ...] = (
    LeastAllocated,
    BalancedAllocation,
    SelectorSpread,
    NodeAffinityScore,
    TaintTolerationScore,
)
PRE_BINDS: tuple[type[PreBindPlugin], ...] = (VolumeBinder,)


def default_filters(handle: Handle) -> list[FilterPlugin]:
    return [plugin(handle) for plugin in FILTERS]


def default_scores(handle: Handle) -> list[ScorePlugin]:
    return [plugin(handle) for plugin in SCORES]


def default_pre_binds(handle: Handle) -> list[PreBindPlugin]:
    return [plugin(handle) for plugin in PRE_BINDS]
