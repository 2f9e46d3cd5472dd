"""Storage object in-use protection: the `pvc-protection` and `pv-protection` controllers.

The StorageObjectInUseProtection admission plugin puts `kubernetes.io/pvc-protection` on every new
claim and `kubernetes.io/pv-protection` on every new volume. Deleting one then only marks it
(Terminating); these controllers remove the finalizer once it is safe, and the API server removes the
object:

- a claim, once no pod that uses it is still running (pods that finished, Succeeded or Failed, do not
  count; the pod cache is checked against a live list before the finalizer goes);
- a volume, once it is no longer Bound to a claim.
"""

from __future__ import annotations

import logging

from controllers.base import ControllerContext
from controllers.volume.common import (
    CLAIM_INDEX,
    CLAIMS,
    PODS,
    PV_PROTECTION,
    PVC_PROTECTION,
    VOLUMES,
    Obj,
    claim_key,
    ensure_pod_claim_index,
    index_pods_by_claim,
    is_deleting,
    meta,
    name_of,
    pod_claim_names,
    pod_is_active,
)
from skiff.api.errors import ApiError
from skiff.runtime import Controller, Informer, final_state, split_key

log = logging.getLogger("skiff.controller.protection")


async def remove_finalizer(client: object, obj: Obj, finalizer: str) -> None:
    """Drop `finalizer` with an update carrying the object's resourceVersion (409 → try again)."""
    metadata = dict(meta(obj))
    metadata["finalizers"] = [f for f in metadata.get("finalizers") or [] if f != finalizer]
    try:
        await client.update({**obj, "metadata": metadata})  # type: ignore[attr-defined]
    except ApiError as error:
        if error.code != 404:
            raise


class PVCProtectionController:
    def __init__(self, ctx: ControllerContext) -> None:
        self.client = ctx.client
        self.claims: Informer = ctx.informers.informer(CLAIMS)
        self.pods: Informer = ctx.informers.informer(PODS)
        ensure_pod_claim_index(self.pods)
        self.controller: Controller[str] = Controller(
            "pvc-protection", self.sync, workers=ctx.options.concurrent_syncs, wait_for=[self.claims, self.pods],
            logger=log,
        )  # fmt: skip
        self.claims.add_event_handler(on_add=self._claim, on_update=lambda _old, new: self._claim(new))
        self.pods.add_event_handler(
            on_update=lambda old, new: self._pod(new) if pod_is_active(old) and not pod_is_active(new) else None,
            on_delete=lambda pod: self._pod(final_state(pod)),
        )

    def _claim(self, claim: Obj) -> None:
        if is_deleting(claim) and PVC_PROTECTION in (meta(claim).get("finalizers") or []):
            self.controller.enqueue(claim_key(meta(claim).get("namespace") or "", name_of(claim)))

    def _pod(self, pod: Obj) -> None:
        for key in index_pods_by_claim(pod):
            self.controller.enqueue(key)

    async def sync(self, key: str) -> None:
        namespace, name = split_key(key)
        claim = self.claims.get(namespace, name)
        if claim is None or not is_deleting(claim) or PVC_PROTECTION not in (meta(claim).get("finalizers") or []):
            return
        if any(pod_is_active(p) for p in self.pods.by_index(CLAIM_INDEX, key)):
            return
        if await self._used_live(namespace, name):
            return
        await remove_finalizer(self.client, claim, PVC_PROTECTION)
        log.info("claim %s is no longer used: removed %s", key, PVC_PROTECTION)

    async def _used_live(self, namespace: str, name: str) -> bool:
        """The cache may not have seen a new pod yet: ask the API server before letting go."""
        pods = await self.client.list(PODS, namespace)
        return any(pod_is_active(p) and name in pod_claim_names(p) for p in pods.get("items") or [])


class PVProtectionController:
    def __init__(self, ctx: ControllerContext) -> None:
        self.client = ctx.client
        self.volumes: Informer = ctx.informers.informer(VOLUMES)
        self.controller: Controller[str] = Controller(
            "pv-protection", self.sync, workers=ctx.options.concurrent_syncs, wait_for=[self.volumes], logger=log
        )
        self.volumes.add_event_handler(on_add=self._volume, on_update=lambda _old, new: self._volume(new))

    def _volume(self, volume: Obj) -> None:
        if is_deleting(volume) and PV_PROTECTION in (meta(volume).get("finalizers") or []):
            self.controller.enqueue(name_of(volume))

    async def sync(self, name: str) -> None:
        volume = self.volumes.get(None, name)
        if volume is None or not is_deleting(volume) or PV_PROTECTION not in (meta(volume).get("finalizers") or []):
            return
        if (volume.get("status") or {}).get("phase") == "Bound":
            return
        await remove_finalizer(self.client, volume, PV_PROTECTION)
        log.info("volume %s is no longer bound: removed %s", name, PV_PROTECTION)


async def start_pvc_protection(ctx: ControllerContext) -> None:
    await PVCProtectionController(ctx).controller.run()


async def start_pv_protection(ctx: ControllerContext) -> None:
    await PVProtectionController(ctx).controller.run()
