"""The scheduler's writes: bindings, the PodScheduled condition of pods that fit nowhere, and events."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from controllers.scheduler.podinfo import PodInfo
from skiff.api.kinds import BUILTINS, ResourceType
from skiff.api.timefmt import now_rfc3339
from skiff.runtime import NORMAL, WARNING

PODS: ResourceType = BUILTINS.by_kind("", "v1", "Pod")  # type: ignore[assignment]
UNSCHEDULABLE = "Unschedulable"


class Recorder(Protocol):
    def event(self, obj: Mapping[str, Any], type: str, reason: str, message: str) -> None: ...


class BindingClient(Protocol):
    async def create(
        self, obj: Mapping[str, Any], namespace: str | None = None, *, resource: Any = None, name: str | None = None,
        subresource: str = "",
    ) -> dict[str, Any]: ...  # fmt: skip

    async def patch(
        self, resource: Any, name: str, patch: Any, namespace: str | None = None, *, patch_type: Any = "merge",
        subresource: str = "",
    ) -> dict[str, Any]: ...  # fmt: skip


def binding_for(pod: PodInfo, node: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": pod.name, "namespace": pod.namespace, "uid": pod.uid},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node},
    }


def scheduled_condition(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "PodScheduled":
            return condition
    return None


def unschedulable_condition(pod: Mapping[str, Any], message: str) -> dict[str, Any] | None:
    """The PodScheduled=False condition to write, or None when the pod already says exactly that."""
    current = scheduled_condition(pod) or {}
    if (current.get("status"), current.get("reason"), current.get("message")) == ("False", UNSCHEDULABLE, message):
        return None
    stamp = now_rfc3339()
    transition = current.get("lastTransitionTime") if current.get("status") == "False" else None
    return {
        "type": "PodScheduled",
        "status": "False",
        "reason": UNSCHEDULABLE,
        "message": message,
        "lastProbeTime": None,
        "lastTransitionTime": transition or stamp,
    }


class Binder:
    def __init__(self, client: BindingClient, recorder: Recorder) -> None:
        self.client = client
        self.recorder = recorder

    async def bind(self, pod: PodInfo, node: str) -> None:
        """POST pods/<name>/binding; raises ApiError (409 when the pod is bound already)."""
        await self.client.create(
            binding_for(pod, node), pod.namespace, resource=PODS, name=pod.name, subresource="binding"
        )
        message = f"Successfully assigned {pod.namespace}/{pod.name} to {node}"
        self.recorder.event(pod.obj, NORMAL, "Scheduled", message)

    async def report_unschedulable(self, pod: Mapping[str, Any], message: str) -> None:
        """A FailedScheduling event, and the PodScheduled condition through pods/status (unless unchanged)."""
        self.recorder.event(pod, WARNING, "FailedScheduling", message)
        condition = unschedulable_condition(pod, message)
        if condition is None:
            return
        metadata = pod.get("metadata") or {}
        await self.client.patch(
            PODS,
            metadata.get("name") or "",
            {"status": {"conditions": [condition]}},
            metadata.get("namespace"),
            patch_type="strategic",
            subresource="status",
        )

    def report_error(self, pod: Mapping[str, Any], message: str) -> None:
        self.recorder.event(pod, WARNING, "FailedScheduling", message)
