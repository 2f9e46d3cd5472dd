"""One sync of one Deployment: find or create the new ReplicaSet, scale ReplicaSets one rollout step,
clean up old revisions and write the status.

Every write is a plain update carrying the resourceVersion read from the cache, so a stale view ends
in a conflict and a retry, never in a decision taken on old numbers. The Deployment object held here
is a private copy that follows each status write.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from controllers.deployment import history, rollout, status
from controllers.podutil import POD_TEMPLATE_HASH, compute_hash, controller_ref, equal_ignore_hash
from skiff.api.errors import ApiError
from skiff.client.rest import AsyncClient
from skiff.runtime import NORMAL, WARNING, EventRecorder

log = logging.getLogger("skiff.controller.deployment")

REPLICASETS = ("apps/v1", "ReplicaSet")
Obj = dict[str, Any]


class DeploymentSync:
    def __init__(self, client: AsyncClient, recorder: EventRecorder, deployment: Obj, rss: list[Obj]) -> None:
        self.client = client
        self.recorder = recorder
        self.d = copy.deepcopy(deployment)
        self.rss = rss
        self.requeue_after: float | None = None

    @property
    def name(self) -> str:
        return self.d["metadata"]["name"]

    @property
    def namespace(self) -> str:
        return self.d["metadata"]["namespace"]

    # -- writes -----------------------------------------------------------------------------------

    async def write_status(self, new_status: Obj) -> None:
        if (self.d.get("status") or {}) == new_status:
            return
        self.d["status"] = new_status
        updated = await self.client.update(self.d, subresource="status")
        self.d["metadata"]["resourceVersion"] = updated["metadata"]["resourceVersion"]

    async def update_rs(self, rs: Obj) -> Obj:
        updated = await self.client.update(rs)
        self._replace(updated)
        return updated

    def _replace(self, rs: Obj) -> None:
        self.rss = [rs if r["metadata"]["uid"] == rs["metadata"]["uid"] else r for r in self.rss]

    async def scale_rs(self, rs: Obj, size: int) -> tuple[bool, Obj]:
        """Set a ReplicaSet's size and its replica annotations; records ScalingReplicaSet when the size
        changed. Returns (scaled, the ReplicaSet as now stored)."""
        old_size = rollout.spec_replicas(rs)
        desired, max_replicas = rollout.spec_replicas(self.d), rollout.spec_replicas(self.d) + rollout.max_surge(self.d)
        annotations = dict(history.annotations(rs))
        annotations_changed = history.set_replicas_annotations(annotations, desired, max_replicas)
        if old_size == size and not annotations_changed:
            return False, rs
        changed = history.with_annotations(rs, annotations)
        changed["spec"]["replicas"] = size
        updated = await self.update_rs(changed)
        if old_size == size:
            return False, updated
        direction = "up" if size > old_size else "down"
        message = f"Scaled {direction} replica set {rs['metadata']['name']} from {old_size} to {size}"
        self.recorder.event(self.d, NORMAL, "ScalingReplicaSet", message)
        return True, updated

    async def scale_to(self, rs: Obj, size: int) -> bool:
        if rollout.spec_replicas(rs) == size:
            return False
        scaled, _ = await self.scale_rs(rs, size)
        return scaled

    # -- the new ReplicaSet -----------------------------------------------------------------------

    async def new_and_old(self, create: bool) -> tuple[Obj | None, list[Obj]]:
        """The new ReplicaSet (created when asked and missing, its revision brought up to date) and the
        old ones (kube's getAllReplicaSetsAndSyncRevision)."""
        existing = history.find_new_rs(self.d, self.rss)
        old = history.old_rss(self.rss, existing)
        new_revision = history.max_revision(old) + 1
        if existing is not None:
            return await self._sync_existing_new_rs(existing, new_revision), old
        if not create:
            return None, old
        return await self._create_new_rs(old, new_revision), old

    async def _sync_existing_new_rs(self, rs: Obj, new_revision: int) -> Obj:
        annotations = dict(history.annotations(rs))
        changed = history.set_new_rs_annotations(self.d, annotations, new_revision, True, 0)
        min_ready = (self.d.get("spec") or {}).get("minReadySeconds") or 0
        if changed or ((rs.get("spec") or {}).get("minReadySeconds") or 0) != min_ready:
            updated = history.with_annotations(rs, annotations)
            updated["spec"]["minReadySeconds"] = min_ready
            return await self.update_rs(updated)
        needs_update = self._set_revision(history.annotations(rs).get(history.REVISION, ""))
        current_status = copy.deepcopy(self.d.get("status") or {})
        if status.has_progress_deadline(self.d) and status.get_condition(current_status, status.PROGRESSING) is None:
            message = f'Found new replica set "{rs["metadata"]["name"]}"'
            status.set_condition(
                current_status, status.new_condition(status.PROGRESSING, "True", status.FOUND_NEW_RS, message)
            )
            needs_update = True
        if needs_update:
            await self._write_metadata_and_status(current_status)
        return rs

    def _set_revision(self, revision: str) -> bool:
        annotations = self.d["metadata"].setdefault("annotations", {})
        if not revision or annotations.get(history.REVISION) == revision:
            return False
        annotations[history.REVISION] = revision
        return True

    async def _write_metadata_and_status(self, new_status: Obj) -> None:
        """A status update that also carries the revision annotation (the status endpoint keeps
        annotation changes, as kube's does)."""
        self.d["status"] = new_status
        updated = await self.client.update(self.d, subresource="status")
        self.d["metadata"]["resourceVersion"] = updated["metadata"]["resourceVersion"]

    def _new_rs_body(self, old: list[Obj], new_revision: int) -> Obj:
        spec = self.d["spec"]
        template = copy.deepcopy(spec["template"])
        pod_hash = compute_hash(template, (self.d.get("status") or {}).get("collisionCount"))
        labels = {**((template.get("metadata") or {}).get("labels") or {}), POD_TEMPLATE_HASH: pod_hash}
        template.setdefault("metadata", {})["labels"] = labels
        selector = copy.deepcopy(spec.get("selector") or {})
        selector.setdefault("matchLabels", {})[POD_TEMPLATE_HASH] = pod_hash
        rs: Obj = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": f"{self.name}-{pod_hash}",
                "namespace": self.namespace,
                "labels": dict(labels),
                "ownerReferences": [controller_ref(self.d)],
            },
            "spec": {
                "replicas": 0,
                "minReadySeconds": spec.get("minReadySeconds") or 0,
                "selector": selector,
                "template": template,
            },
        }
        rs["spec"]["replicas"] = rollout.new_rs_new_replicas(self.d, [*old, rs], rs)
        annotations: dict[str, str] = {}
        max_replicas = rollout.spec_replicas(self.d) + rollout.max_surge(self.d)
        history.set_new_rs_annotations(self.d, annotations, new_revision, False, max_replicas)
        rs["metadata"]["annotations"] = annotations
        return rs

    async def _create_new_rs(self, old: list[Obj], new_revision: int) -> Obj:
        body = self._new_rs_body(old, new_revision)
        try:
            created = await self.client.create(body, self.namespace)
        except ApiError as error:
            if error.code == 409 and error.reason == "AlreadyExists":
                return await self._existing_or_collision(body, error)
            await self._report_create_failure(body, error)
            raise
        self.rss = [*self.rss, created]
        size = rollout.spec_replicas(created)
        if size > 0:
            message = f"Scaled up replica set {created['metadata']['name']} from 0 to {size}"
            self.recorder.event(self.d, NORMAL, "ScalingReplicaSet", message)
        self._set_revision(str(new_revision))
        current_status = copy.deepcopy(self.d.get("status") or {})
        if status.has_progress_deadline(self.d):
            message = f'Created new replica set "{created["metadata"]["name"]}"'
            status.set_condition(
                current_status, status.new_condition(status.PROGRESSING, "True", status.NEW_RS_CREATED, message)
            )
        await self._write_metadata_and_status(current_status)
        return created

    async def _existing_or_collision(self, body: Obj, error: ApiError) -> Obj:
        """A ReplicaSet of that name exists: ours with this template (a lagging cache), or a hash
        collision, answered by bumping collisionCount so the next sync computes another name."""
        current = await self.client.get(REPLICASETS, body["metadata"]["name"], self.namespace)
        owner = next((r for r in current["metadata"].get("ownerReferences") or [] if r.get("controller")), None)
        ours = owner is not None and owner.get("uid") == self.d["metadata"]["uid"]
        if ours and equal_ignore_hash(current["spec"].get("template"), self.d["spec"]["template"]):
            self.rss = [*self.rss, current]
            return current
        current_status = copy.deepcopy(self.d.get("status") or {})
        current_status["collisionCount"] = int(current_status.get("collisionCount") or 0) + 1
        await self.write_status(current_status)
        log.info(
            "deployment %s/%s: hash collision, collisionCount now %d",
            self.namespace,
            self.name,
            current_status["collisionCount"],
        )
        raise error

    async def _report_create_failure(self, body: Obj, error: ApiError) -> None:
        message = f'Failed to create new replica set "{body["metadata"]["name"]}": {error}'
        if status.has_progress_deadline(self.d):
            current_status = copy.deepcopy(self.d.get("status") or {})
            condition = status.new_condition(status.PROGRESSING, "False", status.FAILED_RS_CREATE, message)
            status.set_condition(current_status, condition)
            try:
                await self.write_status(current_status)
            except ApiError:
                pass
        self.recorder.event(self.d, WARNING, status.FAILED_RS_CREATE, message)

    # -- clean-up and status ----------------------------------------------------------------------

    async def cleanup(self, old: list[Obj]) -> None:
        for rs in history.history_to_clean(self.d, old):
            log.info("deployment %s/%s: deleting old replica set %s", self.namespace, self.name, rs["metadata"]["name"])
            try:
                await self.client.delete(REPLICASETS, rs["metadata"]["name"], self.namespace)
            except ApiError as error:
                if error.code != 404:
                    raise

    async def sync_status(self, all_rss: list[Obj | None], new_rs: Obj | None) -> None:
        await self.write_status(status.calculate_status(self.d, all_rss, new_rs))

    async def sync_rollout_status(self, all_rss: list[Obj | None], new_rs: Obj | None) -> None:
        new_status = status.rollout_status(self.d, all_rss, new_rs)
        if (self.d.get("status") or {}) == new_status:
            self.requeue_after = status.requeue_for_deadline(self.d, new_status)
            return
        await self.write_status(new_status)

    def fresh(self, rs: Obj | None) -> Obj | None:
        """The latest copy of `rs` this sync knows (after its own writes)."""
        if rs is None:
            return None
        uid = rs["metadata"].get("uid")
        return next((r for r in self.rss if r["metadata"].get("uid") == uid), rs)
