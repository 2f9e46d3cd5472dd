"""Dynamic provisioning, as kube's external provisioners (sig-storage-lib-external-provisioner) do it.

A provisioner acts on claims the PersistentVolume controller handed it (the claim's
`volume.kubernetes.io/storage-provisioner` annotation names it): it creates the storage and a volume
`pvc-<claim uid>` pre-bound to the claim (`spec.claimRef`), annotated `pv.kubernetes.io/provisioned-by`,
which the binder then binds. For a WaitForFirstConsumer class it waits for the scheduler's
`volume.kubernetes.io/selected-node` and makes the volume there. When a volume it made is Released
and its reclaim policy is Delete, it removes the storage and then the volume.

Two provisioners run in the controller-manager (`controllers.volume.hostpath`,
`controllers.volume.simulated`); this module holds what they share.
"""

from __future__ import annotations

import asyncio
import logging
from fractions import Fraction
from typing import Any

from controllers.base import ControllerContext
from controllers.volume.common import (
    ANN_PROVISIONED_BY,
    ANN_SELECTED_NODE,
    ANN_STORAGE_PROVISIONER,
    CLAIMS,
    CLASSES,
    NODES,
    VOLUMES,
    WAIT_FOR_FIRST_CONSUMER,
    Obj,
    access_modes,
    annotations,
    capacity,
    claim_class,
    claim_key,
    claim_ref_for,
    is_deleting,
    meta,
    name_of,
    spec,
)
from skiff.api.errors import ApiError
from skiff.api.quantity import parse_quantity
from skiff.runtime import NORMAL, WARNING, Controller, EventRecorder, Informer, split_key

RETRY_FAILED_SECONDS = 10.0
WORKERS = 8


class ProvisioningError(Exception):
    """Provisioning cannot succeed now; the message goes into the ProvisioningFailed event."""


class Provisioner:
    """One provisioner: `provision` makes the storage and returns the volume's source, `delete` removes it."""

    name = ""
    supported_modes: tuple[str, ...] = ("ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod")

    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        self.client = ctx.client
        self.log = logging.getLogger(f"skiff.controller.provisioner.{self.name}")
        self.claims: Informer = ctx.informers.informer(CLAIMS)
        self.volumes: Informer = ctx.informers.informer(VOLUMES)
        self.classes: Informer = ctx.informers.informer(CLASSES)
        self.nodes: Informer = ctx.informers.informer(NODES)
        self.recorder: EventRecorder = ctx.recorder(self.name)
        synced = [self.claims, self.volumes, self.classes, self.nodes]
        self.claim_controller: Controller[str] = Controller(
            f"{self.name}-claims", self.sync_claim, workers=WORKERS, wait_for=synced, logger=self.log
        )
        self.volume_controller: Controller[str] = Controller(
            f"{self.name}-volumes", self.sync_volume, workers=2, wait_for=synced, logger=self.log
        )
        self.claims.add_event_handler(on_add=self._claim_changed, on_update=lambda _old, new: self._claim_changed(new))
        self.volumes.add_event_handler(
            on_add=self._volume_changed, on_update=lambda _old, new: self._volume_changed(new)
        )

    # -- what each provisioner implements ---------------------------------------------------------------

    async def provision(self, claim: Obj, storage_class: Obj, node: str, volume_name: str) -> Obj:
        """Make the storage; returns the volume's spec fields (its source, and nodeAffinity if any)."""
        raise NotImplementedError

    async def delete(self, volume: Obj) -> None:
        raise NotImplementedError

    def pick_node(self, claim: Obj) -> str:
        """The node for an Immediate volume ("" when the volume is reachable from every node)."""
        return ""

    # -- the loop ---------------------------------------------------------------------------------------

    def _claim_changed(self, claim: Obj) -> None:
        if annotations(claim).get(ANN_STORAGE_PROVISIONER) == self.name and not spec(claim).get("volumeName"):
            self.claim_controller.enqueue(claim_key(meta(claim).get("namespace") or "", name_of(claim)))

    def _volume_changed(self, volume: Obj) -> None:
        if annotations(volume).get(ANN_PROVISIONED_BY) == self.name:
            self.volume_controller.enqueue(name_of(volume))

    async def sync_claim(self, key: str) -> float | None:
        namespace, name = split_key(key)
        claim = self.claims.get(namespace, name)
        if claim is None or spec(claim).get("volumeName") or is_deleting(claim):
            return None
        if annotations(claim).get(ANN_STORAGE_PROVISIONER) != self.name:
            return None
        volume_name = f"pvc-{meta(claim).get('uid')}"
        if self.volumes.get(None, volume_name) is not None:
            return None  # made already; the binder binds it
        class_name = claim_class(claim)
        storage_class = self.classes.get(None, class_name) if class_name else None
        if storage_class is None:
            message = f'storageclass.storage.k8s.io "{class_name}" not found'
            self.recorder.event(claim, WARNING, "ProvisioningFailed", message)
            return RETRY_FAILED_SECONDS
        node = annotations(claim).get(ANN_SELECTED_NODE) or ""
        if storage_class.get("volumeBindingMode") == WAIT_FOR_FIRST_CONSUMER and not node:
            return None  # the scheduler picks the node first
        self.recorder.event(
            claim, NORMAL, "Provisioning", f'External provisioner is provisioning volume for claim "{key}"'
        )
        try:
            self._check_claim(claim)
            if not node:
                node = self.pick_node(claim)
            source = await self.provision(claim, storage_class, node, volume_name)
        except ProvisioningError as error:
            message = f'failed to provision volume with StorageClass "{class_name}": {error}'
            self.recorder.event(claim, WARNING, "ProvisioningFailed", message)
            self.log.info("claim %s: %s", key, message)
            return RETRY_FAILED_SECONDS
        volume = self._volume(claim, storage_class, volume_name, source)
        try:
            await self.client.create(volume)
        except ApiError as error:
            if error.code != 409:
                raise
        self.recorder.event(claim, NORMAL, "ProvisioningSucceeded", f"Successfully provisioned volume {volume_name}")
        return None

    def _check_claim(self, claim: Obj) -> None:
        if spec(claim).get("selector"):
            raise ProvisioningError("claim Selector is not supported")
        for mode in access_modes(claim):
            if mode not in self.supported_modes:
                raise ProvisioningError(f"access mode {mode} is not supported by {self.name}")
        if spec(claim).get("dataSource") or spec(claim).get("dataSourceRef"):
            raise ProvisioningError("data sources are not supported")

    def _volume(self, claim: Obj, storage_class: Obj, volume_name: str, source: Obj) -> Obj:
        claim_spec = spec(claim)
        volume_spec: Obj = {
            "capacity": {"storage": (claim_spec.get("resources") or {}).get("requests", {}).get("storage")},
            "accessModes": list(claim_spec.get("accessModes") or []),
            "persistentVolumeReclaimPolicy": storage_class.get("reclaimPolicy") or "Delete",
            "storageClassName": name_of(storage_class),
            "volumeMode": claim_spec.get("volumeMode") or "Filesystem",
            "claimRef": claim_ref_for(claim),
            **source,
        }
        if storage_class.get("mountOptions"):
            volume_spec["mountOptions"] = list(storage_class["mountOptions"])
        return {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": volume_name, "annotations": {ANN_PROVISIONED_BY: self.name}},
            "spec": volume_spec,
        }

    async def sync_volume(self, name: str) -> None:
        volume = self.volumes.get(None, name)
        if volume is None or annotations(volume).get(ANN_PROVISIONED_BY) != self.name:
            return
        if (volume.get("status") or {}).get("phase") != "Released":
            return
        if (spec(volume).get("persistentVolumeReclaimPolicy") or "Delete") != "Delete":
            return
        try:
            await self.delete(volume)
        except ProvisioningError as error:
            self.recorder.event(volume, WARNING, "VolumeFailedDelete", str(error))
            raise
        try:
            await self.client.delete(VOLUMES, name)
        except ApiError as error:
            if error.code != 404:
                raise
        self.log.info("deleted volume %s", name)

    async def run(self) -> None:
        await asyncio.gather(self.claim_controller.run(), self.volume_controller.run())


def ready_nodes(nodes: Informer) -> list[Obj]:
    found = []
    for node in nodes.list():
        conditions = (node.get("status") or {}).get("conditions") or []
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
        if ready and not spec(node).get("unschedulable") and not is_deleting(node):
            found.append(node)
    return found


def total_capacity(volumes: list[Obj]) -> Fraction:
    return sum((capacity(v) for v in volumes), Fraction(0))


def as_bytes(value: Any) -> Fraction:
    return parse_quantity(value).value
