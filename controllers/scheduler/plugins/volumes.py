"""Volume rules: kube's VolumeBinding and VolumeRestrictions plugins, plus Skiff's ReadWriteOnce rule.

Filter, for a pod with persistentVolumeClaim volumes:

- every claim must exist and not be going away; a claim of an Immediate class must be Bound already
  ("pod has unbound immediate PersistentVolumeClaims": the binder or provisioner is still working);
- a bound volume's nodeAffinity must admit the node ("node(s) had volume node affinity conflict");
- a claim of a WaitForFirstConsumer class needs, on the node, either an Available volume that serves it
  or a provisioner that can make one there (the class's allowedTopologies; `kubernetes.io/no-provisioner`
  makes none): "node(s) didn't find available persistent volumes to bind";
- a ReadWriteOncePod claim may be used by one pod only; every node is refused to a second pod
  ("node(s) unavailable due to PersistentVolumeClaim with ReadWriteOncePod access mode already in-use
  by another pod");
- a ReadWriteOnce claim (without ReadWriteMany or ReadOnlyMany) that a placed pod uses pins every
  further pod to that pod's node. Kubernetes leaves this to the attach step (a Multi-Attach error on
  the second node); Skiff has no attach step, so the scheduler refuses the other nodes with
  "node(s) unavailable due to one or more pods sharing the same ReadWriteOnce persistentvolumeclaim".

Pre-bind: each unbound WaitForFirstConsumer claim is annotated `volume.kubernetes.io/selected-node`
with the chosen node, so the binder binds a volume that node reaches or the provisioner makes one
there; the pod is bound once all its claims are Bound (or the attempt fails after `BIND_TIMEOUT`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from controllers.scheduler.framework import SKIP, FilterPlugin, Handle, PreBindPlugin
from controllers.scheduler.nodeinfo import NodeInfo
from controllers.scheduler.podinfo import PodInfo
from controllers.volume.common import (
    ANN_SELECTED_NODE,
    CLAIMS,
    CLASSES,
    ROX,
    RWO,
    RWOP,
    RWX,
    VOLUMES,
    WAIT_FOR_FIRST_CONSUMER,
    Obj,
    access_modes,
    annotations,
    claim_class,
    find_best_match,
    is_deleting,
    node_can_reach,
    pod_claim_names,
    spec,
)

ERR_UNBOUND_IMMEDIATE = "pod has unbound immediate PersistentVolumeClaims"
ERR_NODE_CONFLICT = "node(s) had volume node affinity conflict"
ERR_BIND_CONFLICT = "node(s) didn't find available persistent volumes to bind"
ERR_PV_NOT_EXIST = "node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s)"
ERR_RWOP_CONFLICT = (
    "node(s) unavailable due to PersistentVolumeClaim with ReadWriteOncePod access mode already in-use by another pod"
)
ERR_RWO_CONFLICT = "node(s) unavailable due to one or more pods sharing the same ReadWriteOnce persistentvolumeclaim"
NO_PROVISIONER = "kubernetes.io/no-provisioner"
BIND_TIMEOUT = 120.0
POLL_SECONDS = 0.1


@dataclass
class VolumeState:
    error: str = ""
    bound: list[Obj] = field(default_factory=list)
    delayed: list[tuple[Obj, Obj]] = field(default_factory=list)  # (claim, storage class)
    rwop_conflict: bool = False
    # Nodes a ReadWriteOnce claim of this pod is already used on.
    pinned_to: set[str] | None = None


def _informers(handle: Handle) -> tuple[Any, Any, Any]:
    """The claim, volume and class informers; none for a scheduler built without an informer factory
    (which then places pods as if they had no volumes)."""
    factory = handle.informers
    if factory is None:
        return None, None, None
    return factory.informer(CLAIMS), factory.informer(VOLUMES), factory.informer(CLASSES)


def _single_node_only(claim: Obj) -> bool:
    modes = set(access_modes(claim))
    return RWO in modes and not modes & {RWX, ROX}


def topology_allows(storage_class: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    terms = storage_class.get("allowedTopologies") or []
    if not terms:
        return True
    for term in terms:
        expressions = term.get("matchLabelExpressions") or []
        if all(labels.get(e.get("key") or "") in (e.get("values") or []) for e in expressions):
            return True
    return False


class VolumeBinding(FilterPlugin):
    name = "VolumeBinding"

    def __init__(self, handle: Handle) -> None:
        super().__init__(handle)
        self.claims, self.volumes, self.classes = _informers(handle)

    def pre_filter(self, pod: PodInfo) -> Any:
        names = pod_claim_names(pod.obj)
        if not names or self.claims is None:
            return SKIP
        state = VolumeState()
        users = self._claim_users(pod)
        for name in names:
            claim = self.claims.get(pod.namespace, name)
            if claim is None:
                state.error = f'persistentvolumeclaim "{name}" not found'
                return state
            if is_deleting(claim):
                state.error = f'persistentvolumeclaim "{name}" is being deleted'
                return state
            others = users.get(name, set())
            if RWOP in access_modes(claim) and others:
                state.rwop_conflict = True
            if _single_node_only(claim) and others:
                state.pinned_to = others if state.pinned_to is None else state.pinned_to & others
            volume_name = spec(claim).get("volumeName")
            if volume_name:
                volume = self.volumes.get(None, volume_name)
                if volume is None:
                    state.error = ERR_PV_NOT_EXIST
                    return state
                state.bound.append(volume)
                continue
            storage_class = self.classes.get(None, claim_class(claim)) if claim_class(claim) else None
            if storage_class is None or storage_class.get("volumeBindingMode") != WAIT_FOR_FIRST_CONSUMER:
                state.error = ERR_UNBOUND_IMMEDIATE
                return state
            state.delayed.append((claim, storage_class))
        return state

    def _claim_users(self, pod: PodInfo) -> dict[str, set[str]]:
        """Claim name → nodes where other (placed or assumed) pods of the namespace use it."""
        users: dict[str, set[str]] = {}
        for node in self.handle.cache.all_nodes():
            for other in node.pods.values():
                if other.key == pod.key or other.namespace != pod.namespace:
                    continue
                for name in pod_claim_names(other.obj):
                    users.setdefault(name, set()).add(node.name)
        return users

    def filter(self, pod: PodInfo, node: NodeInfo, state: Any) -> Sequence[str]:
        if state.error:
            return (state.error,)
        if state.rwop_conflict:
            return (ERR_RWOP_CONFLICT,)
        labels = node.labels
        for volume in state.bound:
            if not node_can_reach(volume, node.name, labels):
                return (ERR_NODE_CONFLICT,)
        if state.pinned_to is not None and node.name not in state.pinned_to:
            return (ERR_RWO_CONFLICT,)
        for claim, storage_class in state.delayed:
            if find_best_match(claim, self.volumes.list(), None, (node.name, labels)) is not None:
                continue
            provisioner = storage_class.get("provisioner") or ""
            if provisioner == NO_PROVISIONER or not topology_allows(storage_class, labels):
                return (ERR_BIND_CONFLICT,)
        return ()


class VolumeBinder(PreBindPlugin):
    name = "VolumeBinding"

    def __init__(self, handle: Handle) -> None:
        super().__init__(handle)
        self.claims, self.volumes, self.classes = _informers(handle)

    async def pre_bind(self, pod: PodInfo, node_name: str) -> None:
        names = pod_claim_names(pod.obj)
        if not names or self.claims is None:
            return
        for name in names:
            claim = self.claims.get(pod.namespace, name)
            if claim is None or spec(claim).get("volumeName"):
                continue
            if annotations(claim).get(ANN_SELECTED_NODE) != node_name:
                assert self.handle.client is not None
                patch = {"metadata": {"annotations": {ANN_SELECTED_NODE: node_name}}}
                await self.handle.client.patch(CLAIMS, name, patch, pod.namespace)
        deadline = time.monotonic() + BIND_TIMEOUT
        while not all(self._bound(pod.namespace, name) for name in names):
            if time.monotonic() > deadline:
                raise TimeoutError("binding volumes: timed out waiting for the condition")
            await asyncio.sleep(POLL_SECONDS)

    def _bound(self, namespace: str, name: str) -> bool:
        claim = self.claims.get(namespace, name)
        if claim is None:
            raise LookupError(f'persistentvolumeclaim "{name}" not found')
        return bool(spec(claim).get("volumeName")) and (claim.get("status") or {}).get("phase") == "Bound"
