"""Node lifecycle (`nodelifecycle`): notice nodes that stop reporting, taint them, and evict their pods.

Health comes from each node's heartbeat Lease (`kube-node-lease/<node>`) and the Ready condition the
kubelet posts. As in Kubernetes, a heartbeat counts when this controller sees it change, judged by its own
clock (immune to clock skew between machines). A node with no heartbeat for `--node-monitor-grace-period`
(40 s by default) gets all its conditions set to Unknown ("Kubelet stopped posting node status."), its
pods marked not Ready, and the taints `node.kubernetes.io/unreachable` with effects NoSchedule and
NoExecute. A node whose kubelet reports Ready=False gets `node.kubernetes.io/not-ready` instead. When the
node reports Ready again, the taints go.

The NoExecute taint manager evicts (deletes) the pods on a node with NoExecute taints that they do not
tolerate, at once, or when the shortest `tolerationSeconds` of the tolerations they rely on has passed
since the taint was added. Pods created through the API server carry 300 s tolerations for both taints
(the DefaultTolerationSeconds admission plugin); a pod without any gets `--pod-eviction-timeout`.
Each eviction is recorded as a `TaintManagerEviction` event on the pod. Controllers that own the pods
(ReplicaSets and the like) then create replacements, which the scheduler keeps off tainted nodes.

Not done (Kubernetes does): rate-limited eviction per zone and the "full disruption" mode that stops
evictions when every node of a zone is lost at once.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from controllers.base import ControllerContext
from skiff.api.errors import ApiError
from skiff.api.timefmt import format_time, now, try_parse_time
from skiff.runtime import Controller, Informer, final_state, index_by_field

log = logging.getLogger("skiff.controller.nodelifecycle")

NODES = ("v1", "Node")
PODS = ("v1", "Pod")
LEASES = ("coordination.k8s.io/v1", "Lease")
NODE_LEASE_NAMESPACE = "kube-node-lease"
NODE_NAME_INDEX = "spec.nodeName"

NOT_READY = "node.kubernetes.io/not-ready"
UNREACHABLE = "node.kubernetes.io/unreachable"
NO_SCHEDULE, NO_EXECUTE = "NoSchedule", "NoExecute"
# The conditions the kubelet posts; all of them become Unknown when it stops.
NODE_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")
STOPPED_REASON, STOPPED_MESSAGE = "NodeStatusUnknown", "Kubelet stopped posting node status."
NEVER_REASON, NEVER_MESSAGE = "NodeStatusNeverUpdated", "Kubelet never posted node status."
EVICTION_REASON = "TaintManagerEviction"

Obj = dict[str, Any]


# ---------------------------------------------------------------------------------------------------
# Pure rules


def condition(obj: Obj, kind: str) -> Obj | None:
    for item in (obj.get("status") or {}).get("conditions") or []:
        if item.get("type") == kind:
            return item
    return None


def ready_status(node: Obj) -> str:
    """The Ready condition's status: "True", "False" or "Unknown" (also when there is none yet)."""
    ready = condition(node, "Ready")
    return str(ready.get("status") or "Unknown") if ready else "Unknown"


def unknown_conditions(node: Obj, stamp: str) -> list[Obj] | None:
    """The node's conditions with every kubelet condition set to Unknown; None if they already are."""
    current = list((node.get("status") or {}).get("conditions") or [])
    changed = False
    result: list[Obj] = []
    seen = set()
    for item in current:
        kind = item.get("type")
        seen.add(kind)
        if kind in NODE_CONDITIONS and item.get("status") != "Unknown":
            item = {**item, "status": "Unknown", "reason": STOPPED_REASON, "message": STOPPED_MESSAGE,
                    "lastTransitionTime": stamp}  # fmt: skip
            changed = True
        result.append(item)
    for kind in NODE_CONDITIONS:
        if kind not in seen:
            result.append({"type": kind, "status": "Unknown", "reason": NEVER_REASON, "message": NEVER_MESSAGE,
                           "lastHeartbeatTime": stamp, "lastTransitionTime": stamp})  # fmt: skip
            changed = True
    return result if changed else None


def wanted_taint_key(node: Obj) -> str | None:
    """Which lifecycle taint the node's Ready condition calls for (none before the first report: the
    grace period decides about a node that never reported)."""
    status = ready_status(node)
    if status == "True" or condition(node, "Ready") is None:
        return None
    return NOT_READY if status == "False" else UNREACHABLE


def reconciled_taints(node: Obj, stamp: str) -> list[Obj] | None:
    """spec.taints with exactly the lifecycle taints the node needs; None if nothing changes."""
    current = list((node.get("spec") or {}).get("taints") or [])
    key = wanted_taint_key(node)
    ours = (NOT_READY, UNREACHABLE)
    kept = [t for t in current if t.get("key") not in ours or (t.get("key") == key and t.get("effect") in
            (NO_SCHEDULE, NO_EXECUTE))]  # fmt: skip
    if key is not None:
        for effect in (NO_SCHEDULE, NO_EXECUTE):
            if not any(t.get("key") == key and t.get("effect") == effect for t in kept):
                taint: Obj = {"key": key, "effect": effect}
                if effect == NO_EXECUTE:
                    taint["timeAdded"] = stamp
                kept.append(taint)
    return None if kept == current else kept


def toleration_matches(toleration: Obj, taint: Obj) -> bool:
    """Kubernetes' ToleratesTaint: effect (empty matches all), key (empty with Exists matches all), value."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    operator = toleration.get("operator") or "Equal"
    key = toleration.get("key") or ""
    if not key:
        return operator == "Exists"
    if key != taint.get("key"):
        return False
    return operator == "Exists" or (toleration.get("value") or "") == (taint.get("value") or "")


def eviction_time(pod: Obj, taints: list[Obj], default_seconds: float, now_ts: float) -> float | None:
    """When (epoch seconds) the taint manager evicts `pod` from a node with `taints`; None for never.

    Each NoExecute taint is tolerated for the shortest tolerationSeconds of the tolerations that match
    it (forever if one of them has none), counted from the taint's timeAdded. A pod that declares no
    tolerations at all is given `default_seconds` (the --pod-eviction-timeout)."""
    tolerations = list((pod.get("spec") or {}).get("tolerations") or [])
    deadline: float | None = None
    for taint in taints:
        if taint.get("effect") != NO_EXECUTE:
            continue
        added = try_parse_time(taint.get("timeAdded") or "")
        start = added.timestamp() if added else now_ts
        if not tolerations and taint.get("key") in (NOT_READY, UNREACHABLE):
            seconds: float | None = default_seconds
        else:
            matching = [t for t in tolerations if toleration_matches(t, taint)]
            if not matching:
                return now_ts
            limits = [t.get("tolerationSeconds") for t in matching]
            seconds = None if any(limit is None for limit in limits) else max(0.0, float(min(limits)))
        if seconds is not None:
            due = start + seconds
            deadline = due if deadline is None else min(deadline, due)
    return deadline


# ---------------------------------------------------------------------------------------------------
# The controller


@dataclass
class Heartbeat:
    """The last heartbeat seen for a node (lease renewTime and Ready heartbeat) and when, by our clock."""

    renew_time: str
    heartbeat: str
    seen_at: float


class NodeLifecycleController:
    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        self.options = ctx.options
        self.nodes: Informer = ctx.informers.informer(NODES)
        self.leases: Informer = ctx.informers.informer(LEASES, NODE_LEASE_NAMESPACE)
        self.pods: Informer = ctx.informers.informer(PODS)
        if not self.pods.cache.has_indexer(NODE_NAME_INDEX):
            self.pods.add_indexer(NODE_NAME_INDEX, index_by_field("spec.nodeName"))
        self.recorder = ctx.recorder("node-controller")
        self.heartbeats: dict[str, Heartbeat] = {}
        self.controller: Controller[str] = Controller(
            "nodelifecycle", self.reconcile, workers=ctx.options.concurrent_syncs,
            wait_for=[self.nodes, self.leases, self.pods],
        )  # fmt: skip
        self.nodes.add_event_handler(on_add=self._enqueue_node, on_update=lambda _o, n: self._enqueue_node(n))
        self.leases.add_event_handler(on_add=self._enqueue_node, on_update=lambda _o, n: self._enqueue_node(n))
        self.pods.add_event_handler(on_add=self._enqueue_pod_node, on_update=lambda _o, n: self._enqueue_pod_node(n))
        self.nodes.add_event_handler(on_delete=lambda obj: self._forget(final_state(obj)))

    def _enqueue_node(self, obj: Obj) -> None:
        self.controller.enqueue((obj.get("metadata") or {}).get("name") or "")

    def _enqueue_pod_node(self, pod: Obj) -> None:
        node = (pod.get("spec") or {}).get("nodeName")
        if node:
            self.controller.enqueue(node)

    def _forget(self, node: Obj) -> None:
        self.heartbeats.pop((node.get("metadata") or {}).get("name") or "", None)

    # -- health ---------------------------------------------------------------------------------------
    def observe(self, name: str, node: Obj) -> float:
        """Seconds since this node's last heartbeat (as this controller saw it arrive)."""
        lease = self.leases.get(NODE_LEASE_NAMESPACE, name)
        renew_time = str(((lease or {}).get("spec") or {}).get("renewTime") or "")
        ready = condition(node, "Ready") or {}
        heartbeat = str(ready.get("lastHeartbeatTime") or "")
        clock = time.monotonic()
        seen = self.heartbeats.get(name)
        if seen is None or (seen.renew_time, seen.heartbeat) != (renew_time, heartbeat):
            seen = self.heartbeats[name] = Heartbeat(renew_time, heartbeat, clock)
        return clock - seen.seen_at

    async def reconcile(self, name: str) -> float | None:
        node = self.nodes.get(None, name)
        if node is None:
            return None
        grace = self.options.node_monitor_grace_period
        silent_for = self.observe(name, node)
        stamp = format_time(now())
        if silent_for >= grace:
            conditions = unknown_conditions(node, stamp)
            if conditions is not None:
                log.info("node %s: no heartbeat for %.0fs; its status is now Unknown", name, silent_for)
                node = await self._patch_status(node, conditions)
                await self._mark_pods_not_ready(name)
        taints = reconciled_taints(node, stamp)
        if taints is not None:
            log.info("node %s: taints now %s", name, [f"{t['key']}:{t['effect']}" for t in taints] or "none")
            node = await self._patch_taints(node, taints)
        next_eviction = await self._evict_pods(name, node)
        wake = self.options.node_monitor_period
        if silent_for < grace:
            wake = min(wake, grace - silent_for + 0.05)
        if next_eviction is not None:
            wake = min(wake, max(next_eviction - time.time(), 0.05))
        return wake

    async def _patch_status(self, node: Obj, conditions: list[Obj]) -> Obj:
        patch = {
            "metadata": {"resourceVersion": node["metadata"]["resourceVersion"]},
            "status": {"conditions": conditions},
        }
        return await self.ctx.client.patch(NODES, node["metadata"]["name"], patch, subresource="status")

    async def _patch_taints(self, node: Obj, taints: list[Obj]) -> Obj:
        patch = {
            "metadata": {"resourceVersion": node["metadata"]["resourceVersion"]},
            "spec": {"taints": taints or None},
        }
        return await self.ctx.client.patch(NODES, node["metadata"]["name"], patch)

    async def _mark_pods_not_ready(self, node_name: str) -> None:
        stamp = format_time(now())
        for pod in self.pods.by_index(NODE_NAME_INDEX, node_name):
            ready = condition(pod, "Ready")
            if ready is None or ready.get("status") == "False":
                continue
            conditions = [
                {**c, "status": "False", "lastTransitionTime": stamp} if c.get("type") == "Ready" else c
                for c in (pod.get("status") or {}).get("conditions") or []
            ]
            metadata = pod["metadata"]
            patch = {"metadata": {"resourceVersion": metadata["resourceVersion"]}, "status": {"conditions": conditions}}
            try:
                await self.ctx.client.patch(PODS, metadata["name"], patch, metadata["namespace"], subresource="status")
            except ApiError as error:
                if error.code not in (404, 409):
                    raise
                # 409: the pod changed meanwhile; its update event brings the node back here.

    # -- the NoExecute taint manager ------------------------------------------------------------------
    async def _evict_pods(self, node_name: str, node: Obj) -> float | None:
        """Evict pods whose tolerations ran out; returns when the next one is due (epoch seconds)."""
        taints = [t for t in (node.get("spec") or {}).get("taints") or [] if t.get("effect") == NO_EXECUTE]
        if not taints:
            return None
        now_ts = time.time()
        upcoming: float | None = None
        for pod in self.pods.by_index(NODE_NAME_INDEX, node_name):
            if (pod.get("metadata") or {}).get("deletionTimestamp"):
                continue
            if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                continue
            due = eviction_time(pod, taints, self.options.pod_eviction_timeout, now_ts)
            if due is None:
                continue
            if due <= now_ts:
                await self._evict(pod)
            else:
                upcoming = due if upcoming is None else min(upcoming, due)
        return upcoming

    async def _evict(self, pod: Obj) -> None:
        metadata = pod["metadata"]
        namespace, name = metadata["namespace"], metadata["name"]
        log.info("evicting pod %s/%s from node %s", namespace, name, pod["spec"].get("nodeName"))
        self.recorder.event(pod, "Normal", EVICTION_REASON, f"Marking for deletion Pod {namespace}/{name}")
        try:
            await self.ctx.client.delete(PODS, name, namespace, preconditions={"uid": metadata.get("uid", "")})
        except ApiError as error:
            if error.code not in (404, 409):
                raise


async def start(ctx: ControllerContext) -> None:
    await NodeLifecycleController(ctx).controller.run()
