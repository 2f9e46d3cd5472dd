"""The volume expander (`persistentvolume-expander`): grows volumes when their claims ask for more.

As kube's expand controller and external-resizer together: when a Bound claim's
`spec.resources.requests.storage` exceeds its `status.capacity` (the API server has already refused
shrinking, and the PersistentVolumeClaimResize admission plugin refused a class without
`allowVolumeExpansion`), the expander records `Resizing`, sets the claim's `status.allocatedResources`
and the `Resizing` condition, grows the volume's `spec.capacity`, and then reports the new size in the
claim's `status.capacity` (`VolumeResizeSuccessful`). Simulated volumes grow only while the simulated
pool has room (`VolumeResizeFailed` otherwise); hostpath directories have no size to change.
"""

from __future__ import annotations

import logging
from fractions import Fraction

from controllers.base import ControllerContext
from controllers.volume.common import (
    ANN_PROVISIONED_BY,
    CLAIMS,
    CLASSES,
    SIMULATED_PROVISIONER,
    VOLUMES,
    Obj,
    annotations,
    capacity,
    claim_class,
    claim_key,
    meta,
    name_of,
    requested,
    spec,
    storage_bytes,
)
from controllers.volume.simulated import pool_size, shown, used_capacity
from skiff.api.errors import ApiError
from skiff.api.timefmt import now_rfc3339
from skiff.runtime import NORMAL, WARNING, Controller, EventRecorder, Informer, split_key

log = logging.getLogger("skiff.controller.persistentvolume-expander")
COMPONENT = "volume_expand"
RETRY_SECONDS = 10.0


class ExpandController:
    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        self.client = ctx.client
        self.claims: Informer = ctx.informers.informer(CLAIMS)
        self.volumes: Informer = ctx.informers.informer(VOLUMES)
        self.classes: Informer = ctx.informers.informer(CLASSES)
        self.recorder: EventRecorder = ctx.recorder(COMPONENT)
        self.controller: Controller[str] = Controller(
            "persistentvolume-expander", self.sync, workers=2, wait_for=[self.claims, self.volumes, self.classes],
            logger=log,
        )  # fmt: skip
        self.claims.add_event_handler(on_add=self._changed, on_update=lambda _old, new: self._changed(new))

    def _changed(self, claim: Obj) -> None:
        if needs_expansion(claim):
            self.controller.enqueue(claim_key(meta(claim).get("namespace") or "", name_of(claim)))

    async def sync(self, key: str) -> float | None:
        namespace, name = split_key(key)
        claim = self.claims.get(namespace, name)
        if claim is None or not needs_expansion(claim):
            return None
        volume = self.volumes.get(None, str(spec(claim).get("volumeName") or ""))
        if volume is None:
            return None
        storage_class = self.classes.get(None, claim_class(claim)) if claim_class(claim) else None
        if storage_class is None or not storage_class.get("allowVolumeExpansion"):
            message = "the claim's storage class does not allow volume expansion"
            self.recorder.event(claim, WARNING, "ExternalExpanding", message)
            return None
        size = requested(claim)
        raw_size = ((spec(claim).get("resources") or {}).get("requests") or {}).get("storage")
        volume_name = name_of(volume)
        if capacity(volume) < size:
            if annotations(volume).get(ANN_PROVISIONED_BY) == SIMULATED_PROVISIONER:
                free = pool_size(self.ctx) - used_capacity(self.volumes.list())
                if size - capacity(volume) > free:
                    message = (
                        f"resize volume {volume_name} failed: insufficient capacity: {shown(size - capacity(volume))} "
                        f"more requested, {shown(max(free, Fraction(0)))} available"
                    )
                    self.recorder.event(claim, WARNING, "VolumeResizeFailed", message)
                    return RETRY_SECONDS
            self.recorder.event(claim, NORMAL, "Resizing", f"External resizer is resizing volume {volume_name}")
            resizing = {"type": "Resizing", "status": "True", "lastTransitionTime": now_rfc3339()}
            await self._patch_status(claim, {"allocatedResources": {"storage": raw_size}, "conditions": [resizing]})
            await self.client.patch(VOLUMES, volume_name, {"spec": {"capacity": {"storage": raw_size}}})
        await self._patch_status(claim, {"capacity": {"storage": raw_size}, "conditions": None,
                                         "allocatedResources": {"storage": raw_size}})  # fmt: skip
        self.recorder.event(claim, NORMAL, "VolumeResizeSuccessful", "Resize volume succeeded")
        log.info("claim %s: volume %s is now %s", key, volume_name, raw_size)
        return None

    async def _patch_status(self, claim: Obj, status: Obj) -> None:
        metadata = meta(claim)
        try:
            await self.client.patch(CLAIMS, metadata["name"], {"status": status}, metadata["namespace"],
                                    subresource="status")  # fmt: skip
        except ApiError as error:
            if error.code != 404:
                raise


def needs_expansion(claim: Obj) -> bool:
    status = claim.get("status") or {}
    if status.get("phase") != "Bound" or not spec(claim).get("volumeName"):
        return False
    have = storage_bytes((status.get("capacity") or {}).get("storage"))
    return have is not None and requested(claim) > have


async def start(ctx: ControllerContext) -> None:
    await ExpandController(ctx).controller.run()
