"""The Deployment controller: watches Deployments, their ReplicaSets and pods, and runs one sync per
Deployment key at a time (see `sync.py` and `strategies.py` for what a sync does)."""

from __future__ import annotations

import copy
import logging
from typing import Any

from controllers.base import ControllerContext
from controllers.deployment import rollout, status, strategies
from controllers.deployment.history import find_new_rs
from controllers.deployment.sync import DeploymentSync
from controllers.ownerrefs import CONTROLLER_UID_INDEX, ClaimManager, ensure_controller_index, fresh_owner_check
from controllers.podutil import controller_of, is_terminating
from skiff.api.errors import ApiError
from skiff.api.selectors import selector_from_object
from skiff.runtime import WARNING, Controller, EventRecorder, final_state, object_key

log = logging.getLogger("skiff.controller.deployment")

DEPLOYMENTS = ("apps/v1", "Deployment")
REPLICASETS = ("apps/v1", "ReplicaSet")
PODS = ("v1", "Pod")
CONFLICT_RETRY_SECONDS = 1.0

Obj = dict[str, Any]


class DeploymentController:
    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        self.client = ctx.client
        self.deployments = ctx.informers.informer(DEPLOYMENTS)
        self.replicasets = ctx.informers.informer(REPLICASETS)
        self.pods = ctx.informers.informer(PODS)
        ensure_controller_index(self.replicasets)
        ensure_controller_index(self.pods)
        self.recorder: EventRecorder = ctx.recorder("deployment-controller")
        self.controller: Controller[str] = Controller(
            "deployment",
            self.reconcile,
            workers=ctx.options.concurrent_syncs,
            wait_for=[self.deployments, self.replicasets, self.pods],
        )
        self.deployments.add_event_handler(
            on_add=self._enqueue, on_update=lambda _old, new: self._enqueue(new), on_delete=self._enqueue_deleted
        )
        self.replicasets.add_event_handler(
            on_add=self._rs_changed, on_update=self._rs_updated, on_delete=self._rs_deleted
        )
        self.pods.add_event_handler(on_delete=self._pod_deleted)

    # -- event handlers ---------------------------------------------------------------------------

    def _enqueue(self, deployment: Obj) -> None:
        self.controller.enqueue(object_key(deployment))

    def _enqueue_deleted(self, deleted: Any) -> None:
        self._enqueue(final_state(deleted))

    def _owner_of(self, rs: Obj) -> Obj | None:
        owner = controller_of(rs)
        if owner is None or owner.get("kind") != "Deployment":
            return None
        deployment = self.deployments.get(rs["metadata"].get("namespace"), owner.get("name", ""))
        return deployment if deployment is not None and deployment["metadata"].get("uid") == owner.get("uid") else None

    def _matching(self, rs: Obj) -> list[Obj]:
        labels = rs["metadata"].get("labels") or {}
        found = []
        for deployment in self.deployments.list(rs["metadata"].get("namespace") or ""):
            try:
                if selector_from_object((deployment.get("spec") or {}).get("selector")).matches(labels):
                    found.append(deployment)
            except ApiError:
                continue
        return found

    def _rs_changed(self, rs: Obj) -> None:
        owner = self._owner_of(rs)
        if owner is not None:
            self._enqueue(owner)
        elif controller_of(rs) is None:
            for deployment in self._matching(rs):
                self._enqueue(deployment)

    def _rs_updated(self, old: Obj, new: Obj) -> None:
        old_owner = self._owner_of(old)
        if old_owner is not None and controller_of(old) != controller_of(new):
            self._enqueue(old_owner)
        self._rs_changed(new)

    def _rs_deleted(self, deleted: Any) -> None:
        owner = self._owner_of(final_state(deleted))
        if owner is not None:
            self._enqueue(owner)

    def _pod_deleted(self, deleted: Any) -> None:
        """A Recreate rollout waits for the old pods to be gone."""
        pod = final_state(deleted)
        owner = controller_of(pod)
        if owner is None or owner.get("kind") != "ReplicaSet":
            return
        rs = self.replicasets.get(pod["metadata"].get("namespace"), owner.get("name", ""))
        deployment = self._owner_of(rs) if rs is not None else None
        if deployment is not None and not rollout.is_rolling_update(deployment):
            self._enqueue(deployment)

    # -- sync -------------------------------------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        try:
            return await self._sync(key)
        except ApiError as error:
            if error.code != 409:
                raise
            # Something newer than our cache exists; its watch event brings the key back.
            log.info("deployment %s: %s; retrying with the newer version", key, error)
            return CONFLICT_RETRY_SECONDS

    async def _sync(self, key: str) -> float | None:
        namespace, _, name = key.rpartition("/")
        deployment = self.deployments.get(namespace, name)
        if deployment is None:
            return None
        selector = (deployment.get("spec") or {}).get("selector")
        if selector == {}:
            await self._selecting_everything(deployment)
            return None
        rss = await self._claim_replicasets(deployment)
        sync = DeploymentSync(self.client, self.recorder, deployment, rss)
        if is_terminating(deployment):
            new_rs, old = await sync.new_and_old(create=False)
            await sync.sync_status([*old, new_rs], new_rs)
            return None
        await self._check_paused_conditions(sync)
        if (deployment.get("spec") or {}).get("paused") or rollout.is_scaling_event(deployment, rss):
            await strategies.resize_only(sync)
        elif rollout.is_rolling_update(deployment):
            await strategies.rolling_update(sync)
        else:
            await strategies.recreate(sync, self._old_pods_running(sync))
        return sync.requeue_after

    async def _selecting_everything(self, deployment: Obj) -> None:
        message = "This deployment is selecting all pods. A non-empty selector is required."
        self.recorder.event(deployment, WARNING, "SelectingAll", message)
        generation = deployment["metadata"].get("generation") or 0
        if int((deployment.get("status") or {}).get("observedGeneration") or 0) < generation:
            updated = copy.deepcopy(deployment)
            updated.setdefault("status", {})["observedGeneration"] = generation
            await self.client.update(updated, subresource="status")

    async def _claim_replicasets(self, deployment: Obj) -> list[Obj]:
        selector = selector_from_object(deployment["spec"].get("selector"))
        candidates = self.replicasets.list(deployment["metadata"]["namespace"])
        recheck = fresh_owner_check(self.client, DEPLOYMENTS, deployment)
        return await ClaimManager(self.client, REPLICASETS, deployment, selector, recheck).claim(candidates)

    async def _check_paused_conditions(self, sync: DeploymentSync) -> None:
        """Mark pausing and resuming in the Progressing condition, so that time spent paused never
        counts against the progress deadline."""
        d = sync.d
        if not status.has_progress_deadline(d):
            return
        current_status = copy.deepcopy(d.get("status") or {})
        condition = status.get_condition(current_status, status.PROGRESSING)
        if condition is not None and condition.get("reason") == status.TIMED_OUT:
            return
        paused_shown = condition is not None and condition.get("reason") == status.PAUSED
        paused = bool((d.get("spec") or {}).get("paused"))
        if paused and not paused_shown:
            new = status.new_condition(status.PROGRESSING, "Unknown", status.PAUSED, "Deployment is paused")
        elif not paused and paused_shown:
            new = status.new_condition(status.PROGRESSING, "Unknown", status.RESUMED, "Deployment is resumed")
        else:
            return
        status.set_condition(current_status, new)
        await sync.write_status(current_status)

    def _old_pods_running(self, sync: DeploymentSync) -> bool:
        """Whether any pod of an old ReplicaSet may still run (Recreate waits for none)."""
        new_rs = find_new_rs(sync.d, sync.rss)
        new_uid = (new_rs or {}).get("metadata", {}).get("uid")
        for rs in sync.rss:
            uid = rs["metadata"]["uid"]
            if uid == new_uid:
                continue
            if rollout.status_count(rs, "replicas") > 0:
                return True
            for pod in self.pods.by_index(CONTROLLER_UID_INDEX, uid):
                if (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
                    return True
        return False


async def start(ctx: ControllerContext) -> None:
    await DeploymentController(ctx).controller.run()
