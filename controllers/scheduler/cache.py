"""The scheduler's picture of the cluster: nodes with the pods on them, including assumed pods.

When the scheduler picks a node it *assumes* the pod there at once, before the binding request is even
sent, so the next pod (scheduled a moment later, while that binding is still in flight) already sees the
resources and ports taken. The informer later reports the pod bound, which confirms the assumption; a
failed binding forgets it. A pod the informer reports on another node than assumed (another scheduler
won) simply moves.
"""

from __future__ import annotations

from controllers.scheduler.nodeinfo import NodeInfo
from controllers.scheduler.podinfo import KubeObject, PodInfo


class SchedulerCache:
    def __init__(self) -> None:
        self._nodes: dict[str, NodeInfo] = {}
        # pod key -> the node it counts against
        self._placement: dict[str, str] = {}
        self._assumed: set[str] = set()
        # Pods with required anti-affinity terms: every incoming pod must respect them.
        self._anti_affinity_pods: dict[str, PodInfo] = {}

    # Nodes

    def set_node(self, node: KubeObject) -> NodeInfo:
        name = (node.get("metadata") or {}).get("name") or ""
        info = self._nodes.get(name)
        if info is None:
            info = self._nodes[name] = NodeInfo(name)
        info.set_node(node)
        return info

    def remove_node(self, name: str) -> None:
        info = self._nodes.get(name)
        if info is None:
            return
        if info.pods:
            info.set_node(None)  # kept until its pods are gone, so their accounting stays right
        else:
            del self._nodes[name]

    def node(self, name: str) -> NodeInfo | None:
        return self._nodes.get(name)

    def schedulable_nodes(self) -> list[NodeInfo]:
        """Every node that exists in the API (filters decide which can host a pod)."""
        return [info for info in self._nodes.values() if info.node is not None]

    # Pods

    def add_pod(self, pod: PodInfo, node_name: str) -> None:
        """Count a pod the API reports bound to `node_name` (confirming an assumption, if any)."""
        self._assumed.discard(pod.key)
        self._place(pod, node_name)

    def assume(self, pod: PodInfo, node_name: str) -> None:
        self._place(pod, node_name)
        self._assumed.add(pod.key)

    def forget(self, key: str) -> bool:
        """Undo an assumption whose binding failed; a pod the API already reports bound is kept."""
        if key not in self._assumed:
            return False
        self.remove_pod(key)
        return True

    def remove_pod(self, key: str) -> str | None:
        """Stop counting a pod (deleted, finished, or a forgotten assumption); returns its node."""
        self._assumed.discard(key)
        self._anti_affinity_pods.pop(key, None)
        node_name = self._placement.pop(key, None)
        if node_name is None:
            return None
        info = self._nodes.get(node_name)
        if info is not None:
            info.remove_pod(key)
            if info.node is None and not info.pods:
                del self._nodes[node_name]
        return node_name

    def is_assumed(self, key: str) -> bool:
        return key in self._assumed

    def placement(self, key: str) -> str | None:
        return self._placement.get(key)

    def anti_affinity_pods(self) -> list[tuple[PodInfo, NodeInfo]]:
        """Placed pods with required anti-affinity, each with its node."""
        found = []
        for key, pod in self._anti_affinity_pods.items():
            info = self._nodes.get(self._placement.get(key, ""))
            if info is not None:
                found.append((pod, info))
        return found

    def all_nodes(self) -> list[NodeInfo]:
        return list(self._nodes.values())

    def _place(self, pod: PodInfo, node_name: str) -> None:
        previous = self._placement.get(pod.key)
        if previous is not None:
            self.remove_pod(pod.key)
        info = self._nodes.get(node_name)
        if info is None:
            info = self._nodes[node_name] = NodeInfo(node_name)  # pods may be seen before their node
        info.add_pod(pod)
        self._placement[pod.key] = node_name
        if pod.anti_affinity_terms:
            self._anti_affinity_pods[pod.key] = pod
