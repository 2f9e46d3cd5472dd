"""The PersistentVolume controller (`persistentvolume-binder`): binds claims to volumes and reclaims volumes.

As kube-controller-manager's controller of the same name:

- An unbound claim gets the smallest Available volume that serves it: same storageClassName (a claim
  with class "" only gets volumes without a class), every access mode it asks for, at least the
  capacity it requests, the same volumeMode, and labels its `selector` matches. A volume whose claimRef
  names the claim (pre-bound by an administrator), or the volume a claim names in `spec.volumeName`, is
  used whatever its size ranking.
- Binding writes the volume's `spec.claimRef` first, with the volume's resourceVersion as precondition,
  so two claims racing for one volume cannot both win: the loser gets 409 Conflict and looks again.
  Then the claim's `spec.volumeName` (annotations `pv.kubernetes.io/bind-completed` and
  `pv.kubernetes.io/bound-by-controller`), then both statuses.
- A claim no volume serves waits (FailedBinding) when it has no class, waits for its first consumer
  when its class is WaitForFirstConsumer and no node is selected yet (WaitForFirstConsumer,
  WaitForPodScheduled), and otherwise is handed to its class's provisioner through the
  `volume.kubernetes.io/storage-provisioner` annotation (ExternalProvisioning).
- A volume whose claim is gone is Released. `Retain` keeps it Released, data and all, until an
  administrator clears its claimRef (then it is Available again). `Delete` is carried out by the
  provisioner that made it (`pv.kubernetes.io/provisioned-by`); a static volume nobody can delete goes
  Failed.
- A bound claim whose volume disappears is Lost.

Phases: volumes Pending → Available → Bound → Released (or Failed); claims Pending → Bound (or Lost).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

from controllers.base import ControllerContext
from controllers.volume.common import (
    ANN_BETA_STORAGE_PROVISIONER,
    ANN_BIND_COMPLETED,
    ANN_BOUND_BY_CONTROLLER,
    ANN_PROVISIONED_BY,
    ANN_SELECTED_NODE,
    ANN_STORAGE_PROVISIONER,
    CLAIM_INDEX,
    CLAIMS,
    CLASSES,
    NODES,
    PODS,
    VOLUMES,
    WAIT_FOR_FIRST_CONSUMER,
    Obj,
    annotations,
    claim_class,
    claim_key,
    claim_ref_for,
    claim_ref_matches,
    ensure_pod_claim_index,
    find_best_match,
    meta,
    mismatch,
    name_of,
    spec,
    volume_class,
)
from skiff.api.errors import ApiError
from skiff.api.timefmt import now_rfc3339
from skiff.runtime import NORMAL, WARNING, Controller, EventRecorder, Informer, final_state, split_key

log = logging.getLogger("skiff.controller.persistentvolume-binder")

COMPONENT = "persistentvolume-controller"
VOLUME_BY_CLAIM = "by-claim-ref"
CLAIM_BY_VOLUME = "by-volume-name"
RESYNC_SECONDS = 15.0
CLAIM_WORKERS = 16
VOLUME_WORKERS = 4
NO_PROVISIONER = "kubernetes.io/no-provisioner"

MSG_NO_CLASS = "no persistent volumes available for this claim and no storage class is set"
MSG_WFFC = "waiting for first consumer to be created before binding"
MSG_CLAIM_LOST = "Bound claim has lost its PersistentVolume. Data on the volume is lost!"
MSG_CLAIM_REF_LOST = "Bound claim has lost reference to PersistentVolume. Data on the volume is lost!"


def external_provisioning_message(provisioner: str) -> str:
    return (
        f"Waiting for a volume to be created either by the external provisioner '{provisioner}' or manually by "
        "the system administrator. If volume creation is delayed, please verify that the provisioner is running "
        "and correctly registered."
    )


def _volume_claim_ref_key(volume: Obj) -> list[str]:
    ref = spec(volume).get("claimRef") or {}
    return [claim_key(ref.get("namespace") or "", ref.get("name") or "")] if ref.get("name") else []


def _claim_volume_name(claim: Obj) -> list[str]:
    name = spec(claim).get("volumeName")
    return [str(name)] if name else []


def phase(obj: Mapping[str, Any]) -> str:
    return str((obj.get("status") or {}).get("phase") or "")


class PersistentVolumeController:
    def __init__(self, ctx: ControllerContext) -> None:
        self.client = ctx.client
        self.claims: Informer = ctx.informers.informer(CLAIMS)
        self.volumes: Informer = ctx.informers.informer(VOLUMES)
        self.classes: Informer = ctx.informers.informer(CLASSES)
        self.nodes: Informer = ctx.informers.informer(NODES)
        self.pods: Informer = ctx.informers.informer(PODS)
        self.volumes.add_indexer(VOLUME_BY_CLAIM, _volume_claim_ref_key)
        self.claims.add_indexer(CLAIM_BY_VOLUME, _claim_volume_name)
        ensure_pod_claim_index(self.pods)
        self.recorder: EventRecorder = ctx.recorder(COMPONENT)
        synced = [self.claims, self.volumes, self.classes, self.nodes, self.pods]
        self.claim_controller: Controller[str] = Controller(
            "persistentvolume-binder-claims", self.sync_claim, workers=CLAIM_WORKERS, wait_for=synced, logger=log
        )
        self.volume_controller: Controller[str] = Controller(
            "persistentvolume-binder-volumes", self.sync_volume, workers=VOLUME_WORKERS, wait_for=synced, logger=log
        )
        # Binds in flight: volume name → claim key, so two workers do not pick the same volume before
        # the informer shows the first claimRef (the API's precondition would refuse the second anyway).
        self.assumed: dict[str, str] = {}
        self.claims.add_event_handler(
            on_add=self._claim_changed,
            on_update=lambda _old, new: self._claim_changed(new),
            on_delete=self._claim_deleted,
        )
        self.volumes.add_event_handler(
            on_add=self._volume_changed,
            on_update=self._volume_updated,
            on_delete=self._volume_deleted,
        )
        self.classes.add_event_handler(on_add=lambda _sc: self._enqueue_pending_claims())

    # -- event handlers ---------------------------------------------------------------------------------

    def _claim_changed(self, claim: Obj) -> None:
        self.claim_controller.enqueue(claim_key(meta(claim).get("namespace") or "", name_of(claim)))
        volume_name = spec(claim).get("volumeName")
        if volume_name:
            self.volume_controller.enqueue(str(volume_name))

    def _claim_deleted(self, deleted: Any) -> None:
        claim = final_state(deleted)
        key = claim_key(meta(claim).get("namespace") or "", name_of(claim))
        for volume in self.volumes.by_index(VOLUME_BY_CLAIM, key):
            self.volume_controller.enqueue(name_of(volume))

    def _volume_changed(self, volume: Obj) -> None:
        name = name_of(volume)
        if self.assumed.get(name) and spec(volume).get("claimRef"):
            del self.assumed[name]
        self.volume_controller.enqueue(name)
        for claim in self.claims.by_index(CLAIM_BY_VOLUME, name):  # claims that name this volume
            self.claim_controller.enqueue(claim_key(meta(claim).get("namespace") or "", name_of(claim)))
        ref = spec(volume).get("claimRef") or {}
        if ref.get("name"):
            self.claim_controller.enqueue(claim_key(ref.get("namespace") or "", ref["name"]))
        elif phase(volume) in ("", "Pending", "Available"):
            self._enqueue_pending_claims(volume_class(volume))

    def _volume_updated(self, old: Obj, new: Obj) -> None:
        self._volume_changed(new)

    def _volume_deleted(self, deleted: Any) -> None:
        volume = final_state(deleted)
        self.assumed.pop(name_of(volume), None)
        for claim in self.claims.by_index(CLAIM_BY_VOLUME, name_of(volume)):
            self.claim_controller.enqueue(claim_key(meta(claim).get("namespace") or "", name_of(claim)))

    def _enqueue_pending_claims(self, class_name: str | None = None) -> None:
        for claim in self.claims.list():
            if phase(claim) == "Bound":
                continue
            if class_name is None or claim_class(claim) == class_name:
                self.claim_controller.enqueue(claim_key(meta(claim).get("namespace") or "", name_of(claim)))

    async def _resync(self) -> None:
        """kube's periodic resync: claims and volumes are looked at again even when nothing changed."""
        while True:
            await asyncio.sleep(RESYNC_SECONDS)
            self._enqueue_pending_claims()
            for volume in self.volumes.list():
                if phase(volume) != "Bound":
                    self.volume_controller.enqueue(name_of(volume))

    # -- claims -----------------------------------------------------------------------------------------

    async def sync_claim(self, key: str) -> None:
        namespace, name = split_key(key)
        claim = self.claims.get(namespace, name)
        if claim is None:
            return
        if spec(claim).get("volumeName"):
            await self._sync_bound_claim(claim)
        else:
            await self._sync_unbound_claim(claim)

    async def _sync_unbound_claim(self, claim: Obj) -> None:
        class_name = claim_class(claim)
        storage_class = self.classes.get(None, class_name) if class_name else None
        delayed = storage_class is not None and storage_class.get("volumeBindingMode") == WAIT_FOR_FIRST_CONSUMER
        selected_node = annotations(claim).get(ANN_SELECTED_NODE) or ""
        if delayed and not selected_node:
            await self._set_claim_phase(claim, "Pending")
            waiting = self._unscheduled_consumer(claim)
            if waiting:
                self.recorder.event(claim, NORMAL, "WaitForPodScheduled", f"waiting for pod {waiting} to be scheduled")
            else:
                self.recorder.event(claim, NORMAL, "WaitForFirstConsumer", MSG_WFFC)
            return
        node: tuple[str, Mapping[str, str]] | None = None
        if delayed:
            node_obj = self.nodes.get(None, selected_node) or {}
            node = (selected_node, meta(node_obj).get("labels") or {})
        volume = find_best_match(claim, self.volumes.list(), self.assumed, node)
        if volume is not None:
            await self._bind(volume, claim)
            return
        await self._set_claim_phase(claim, "Pending")
        if storage_class is None:
            if class_name:
                message = f'storageclass.storage.k8s.io "{class_name}" not found'
                self.recorder.event(claim, WARNING, "ProvisioningFailed", message)
            else:
                self.recorder.event(claim, NORMAL, "FailedBinding", MSG_NO_CLASS)
            return
        provisioner = str(storage_class.get("provisioner") or "")
        if provisioner == NO_PROVISIONER:
            message = "no persistent volumes available for this claim and the storage class has no provisioner"
            self.recorder.event(claim, NORMAL, "FailedBinding", message)
            return
        if annotations(claim).get(ANN_STORAGE_PROVISIONER) != provisioner:
            patch = {"metadata": {"annotations": {
                ANN_STORAGE_PROVISIONER: provisioner, ANN_BETA_STORAGE_PROVISIONER: provisioner,
            }}}  # fmt: skip
            await self._patch_claim(claim, patch)
        self.recorder.event(claim, NORMAL, "ExternalProvisioning", external_provisioning_message(provisioner))

    def _unscheduled_consumer(self, claim: Obj) -> str:
        key = claim_key(meta(claim).get("namespace") or "", name_of(claim))
        for pod in self.pods.by_index(CLAIM_INDEX, key):
            if not spec(pod).get("nodeName") and not meta(pod).get("deletionTimestamp"):
                return name_of(pod)
        return ""

    async def _sync_bound_claim(self, claim: Obj) -> None:
        volume_name = str(spec(claim)["volumeName"])
        volume = self.volumes.get(None, volume_name)
        if volume is None:
            volume = await self._live(VOLUMES, None, volume_name)
        bound_before = annotations(claim).get(ANN_BIND_COMPLETED) == "yes"
        if volume is None:
            if bound_before:
                if phase(claim) != "Lost":
                    self.recorder.event(claim, WARNING, "ClaimLost", MSG_CLAIM_LOST)
                await self._set_claim_phase(claim, "Lost")
            else:
                await self._set_claim_phase(claim, "Pending")
                self.recorder.event(claim, WARNING, "FailedBinding", f'volume "{volume_name}" not found')
            return
        ref = spec(volume).get("claimRef")
        if not ref or claim_ref_matches(ref, claim):
            if not ref or not ref.get("uid"):
                reason = mismatch(volume, claim)
                if reason:
                    await self._set_claim_phase(claim, "Pending")
                    message = f'Cannot bind to requested volume "{volume_name}": {reason}'
                    self.recorder.event(claim, WARNING, "VolumeMismatch", message)
                    return
            await self._bind(volume, claim)
            return
        if bound_before:
            if phase(claim) != "Lost":
                self.recorder.event(claim, WARNING, "ClaimMisbound", MSG_CLAIM_REF_LOST)
            await self._set_claim_phase(claim, "Lost")
            return
        await self._set_claim_phase(claim, "Pending")
        message = f'volume "{volume_name}" already bound to a different claim.'
        self.recorder.event(claim, WARNING, "FailedBinding", message)

    async def _bind(self, volume: Obj, claim: Obj) -> None:
        """claimRef on the volume (with its resourceVersion as precondition), then the claim, then statuses."""
        volume_name = name_of(volume)
        key = claim_key(meta(claim).get("namespace") or "", name_of(claim))
        self.assumed[volume_name] = key
        try:
            volume = await self._bind_volume_to_claim(volume, claim)
            await self._set_volume_phase(volume, "Bound")
            claim = await self._bind_claim_to_volume(claim, volume)
            await self._set_claim_bound(claim, volume)
        except BaseException:
            self.assumed.pop(volume_name, None)
            raise
        log.debug("bound claim %s to volume %s", key, volume_name)

    async def _bind_volume_to_claim(self, volume: Obj, claim: Obj) -> Obj:
        ref = spec(volume).get("claimRef") or {}
        if ref.get("uid") == meta(claim).get("uid"):
            return volume
        updated = _copy(volume)
        updated["spec"]["claimRef"] = claim_ref_for(claim)
        if not ref:
            updated["metadata"].setdefault("annotations", {})[ANN_BOUND_BY_CONTROLLER] = "yes"
        return await self.client.update(updated)

    async def _bind_claim_to_volume(self, claim: Obj, volume: Obj) -> Obj:
        volume_name = name_of(volume)
        notes = annotations(claim)
        if spec(claim).get("volumeName") == volume_name and notes.get(ANN_BIND_COMPLETED) == "yes":
            return claim
        updated = _copy(claim)
        ann = updated["metadata"].setdefault("annotations", {})
        if updated["spec"].get("volumeName") != volume_name:
            updated["spec"]["volumeName"] = volume_name
            ann[ANN_BOUND_BY_CONTROLLER] = "yes"
        ann[ANN_BIND_COMPLETED] = "yes"
        return await self.client.update(updated)

    async def _set_claim_bound(self, claim: Obj, volume: Obj) -> None:
        status = claim.get("status") or {}
        wanted = {
            "phase": "Bound",
            "accessModes": list(spec(volume).get("accessModes") or []),
            "capacity": dict(spec(volume).get("capacity") or {}),
        }
        if all(status.get(k) == v for k, v in wanted.items()):
            return
        if status.get("capacity"):
            wanted.pop("capacity")  # a bound claim's capacity is the expander's to change
        await self._patch_claim(claim, {"status": wanted}, subresource="status")

    async def _set_claim_phase(self, claim: Obj, new_phase: str) -> None:
        if phase(claim) != new_phase:
            await self._patch_claim(claim, {"status": {"phase": new_phase}}, subresource="status")

    async def _patch_claim(self, claim: Obj, patch: Obj, subresource: str = "") -> None:
        metadata = meta(claim)
        try:
            await self.client.patch(CLAIMS, metadata["name"], patch, metadata["namespace"], subresource=subresource)
        except ApiError as error:
            if error.code != 404:
                raise

    # -- volumes ----------------------------------------------------------------------------------------

    async def sync_volume(self, name: str) -> None:
        volume = self.volumes.get(None, name)
        if volume is None:
            return
        ref = spec(volume).get("claimRef") or {}
        if not ref.get("name"):
            if name not in self.assumed:
                await self._set_volume_phase(volume, "Available")
            return
        namespace = ref.get("namespace") or ""
        if not ref.get("uid"):
            # Pre-bound by an administrator to a claim by name: the claim side completes it.
            await self._set_volume_phase(volume, "Available")
            self.claim_controller.enqueue(claim_key(namespace, ref["name"]))
            return
        claim = self.claims.get(namespace, ref["name"])
        if claim is None or meta(claim).get("uid") != ref.get("uid"):
            # The cache may lag behind: only the API server can say the claim is really gone.
            claim = await self._live(CLAIMS, namespace, ref["name"])
        if claim is None or meta(claim).get("uid") != ref.get("uid"):
            await self._released(volume)
            return
        bound_to = spec(claim).get("volumeName")
        if not bound_to:
            self.claim_controller.enqueue(claim_key(namespace, ref["name"]))
            return
        if bound_to == name:
            await self._set_volume_phase(volume, "Bound")
            return
        if annotations(volume).get(ANN_BOUND_BY_CONTROLLER) == "yes":
            # The claim went to another volume: give this one back.
            updated = _copy(volume)
            updated["spec"].pop("claimRef", None)
            updated["metadata"].get("annotations", {}).pop(ANN_BOUND_BY_CONTROLLER, None)
            volume = await self.client.update(updated)
            await self._set_volume_phase(volume, "Available")

    async def _released(self, volume: Obj) -> None:
        current = phase(volume)
        if current not in ("Released", "Failed"):
            await self._set_volume_phase(volume, "Released")
            current = "Released"
        policy = spec(volume).get("persistentVolumeReclaimPolicy") or "Retain"
        if policy == "Retain" or current == "Failed":
            return
        if annotations(volume).get(ANN_PROVISIONED_BY):
            return  # the provisioner that made it deletes it (and its storage)
        if policy == "Recycle":
            message = "Recycle is not supported; use dynamic provisioning instead"
            self.recorder.event(volume, WARNING, "VolumeFailedRecycle", message)
        else:
            message = (
                f'error getting deleter volume plugin for volume "{name_of(volume)}": '
                "no deletable volume plugin matched"
            )
            self.recorder.event(volume, WARNING, "VolumeFailedDelete", message)
        await self._set_volume_phase(volume, "Failed", message)

    async def _set_volume_phase(self, volume: Obj, new_phase: str, message: str = "") -> None:
        status = volume.get("status") or {}
        if status.get("phase") == new_phase and (status.get("message") or "") == message:
            return
        patch: Obj = {"phase": new_phase, "message": message or None, "lastPhaseTransitionTime": now_rfc3339()}
        try:
            await self.client.patch(VOLUMES, name_of(volume), {"status": patch}, subresource="status")
        except ApiError as error:
            if error.code != 404:
                raise

    async def _live(self, resource: Any, namespace: str | None, name: str) -> Obj | None:
        try:
            return await self.client.get(resource, name, namespace)
        except ApiError as error:
            if error.code == 404:
                return None
            raise

    async def run(self) -> None:
        resync = asyncio.create_task(self._resync())
        try:
            await asyncio.gather(self.claim_controller.run(), self.volume_controller.run())
        finally:
            resync.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await resync


def _copy(obj: Obj) -> Obj:
    copied = dict(obj)
    copied["metadata"] = {**meta(obj), "annotations": dict(annotations(obj))}
    copied["spec"] = dict(spec(obj))
    return copied


async def start(ctx: ControllerContext) -> None:
    await PersistentVolumeController(ctx).run()
