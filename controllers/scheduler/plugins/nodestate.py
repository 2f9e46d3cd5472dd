"""Filters on the node itself: Ready, and not cordoned (`spec.unschedulable`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from controllers.scheduler.framework import FilterPlugin
from controllers.scheduler.nodeinfo import NodeInfo
from controllers.scheduler.plugins.taints import NO_SCHEDULE, tolerated
from controllers.scheduler.podinfo import PodInfo

NOT_READY_TAINT = "node.kubernetes.io/not-ready"
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"
UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"

ERR_NOT_READY = "node(s) were not ready"
ERR_UNSCHEDULABLE = "node(s) were unschedulable"


def ready_status(node: NodeInfo) -> str:
    for condition in ((node.node or {}).get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return str(condition.get("status") or "Unknown")
    return "Unknown"


class NodeReady(FilterPlugin):
    """Only Ready nodes, unless the pod tolerates the NoSchedule taint the node lifecycle controller puts
    on such a node (`node.kubernetes.io/not-ready`, or `unreachable` when the status is Unknown)."""

    name = "NodeReady"

    def filter(self, pod: PodInfo, node: NodeInfo, state: Any) -> Sequence[str]:
        status = ready_status(node)
        if status == "True":
            return ()
        key = NOT_READY_TAINT if status == "False" else UNREACHABLE_TAINT
        if tolerated(pod.tolerations, {"key": key, "effect": NO_SCHEDULE}):
            return ()
        return (ERR_NOT_READY,)


class NodeUnschedulable(FilterPlugin):
    name = "NodeUnschedulable"

    def filter(self, pod: PodInfo, node: NodeInfo, state: Any) -> Sequence[str]:
        if not node.spec.get("unschedulable"):
            return ()
        if tolerated(pod.tolerations, {"key": UNSCHEDULABLE_TAINT, "effect": NO_SCHEDULE}):
            return ()
        return (ERR_UNSCHEDULABLE,)
