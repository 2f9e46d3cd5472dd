"""ReplicaSet controller: keep `spec.replicas` pods of the template running, and report on them.

Each sync claims the pods the set's selector matches (adopting orphans, releasing pods that stopped
matching), creates the missing pods in slow-start batches (1, 2, 4, …) so that a failing create is
not repeated a hundred times, or deletes the least valuable surplus pods, and then writes the status.
Creates and deletes in flight are remembered as expectations: until the pod informer has shown them
all, the cache is not trusted for the count, so watch lag never leads to pods created twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from controllers.base import ControllerContext
from controllers.expectations import Expectations
from controllers.ownerrefs import CONTROLLER_UID_INDEX, ClaimManager, ensure_controller_index, fresh_owner_check
from controllers.podutil import (
    controller_of,
    is_pod_active,
    is_pod_available,
    is_pod_ready,
    is_terminating,
    pod_from_template,
    pods_to_delete,
    seconds_until_available,
)
from skiff.api.errors import ApiError
from skiff.api.selectors import LabelSelector, selector_from_object
from skiff.api.timefmt import format_time, now
from skiff.runtime import NORMAL, WARNING, Controller, EventRecorder, final_state, object_key

log = logging.getLogger("skiff.controller.replicaset")

REPLICASETS = ("apps/v1", "ReplicaSet")
PODS = ("v1", "Pod")
# kube's burstReplicas: at most this many creates or deletes per sync.
BURST_REPLICAS = 500
SLOW_START_INITIAL_BATCH = 1
REPLICA_FAILURE = "ReplicaFailure"
CONFLICT_RETRY_SECONDS = 1.0

Obj = dict[str, Any]


# ---------------------------------------------------------------------------------------------------
# Pure parts: batching and status


async def slow_start_batch(
    count: int, initial: int, make: Callable[[], Awaitable[None]]
) -> tuple[int, Exception | None]:
    """Call `make` `count` times in concurrent batches of 1, 2, 4, …; stop after the first batch with a
    failure. Returns (successes, first error)."""
    successes, remaining, batch = 0, count, min(count, initial)
    while batch > 0:
        results = await asyncio.gather(*(make() for _ in range(batch)), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        successes += batch - len(errors)
        if errors:
            first = errors[0]
            if not isinstance(first, Exception):
                raise first
            return successes, first
        remaining -= batch
        batch = min(2 * batch, remaining)
    return successes, None


def replica_set_status(rs: Obj, pods: list[Obj], error: Exception | None, when: Any = None) -> Obj:
    """The status for `rs` given its active pods and the outcome of this sync's creates/deletes."""
    when = when or now()
    spec = rs.get("spec") or {}
    min_ready = int(spec.get("minReadySeconds") or 0)
    template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    labeled = [p for p in pods if _has_labels(p, template_labels)]
    ready = [p for p in pods if is_pod_ready(p)]
    available = [p for p in ready if is_pod_available(p, min_ready, when)]
    status: Obj = {
        "replicas": len(pods),
        "fullyLabeledReplicas": len(labeled),
        "readyReplicas": len(ready),
        "availableReplicas": len(available),
        "observedGeneration": (rs.get("metadata") or {}).get("generation"),
    }
    conditions = _failure_conditions(rs, pods, error, format_time(when))
    if conditions:
        status["conditions"] = conditions
    return {key: value for key, value in status.items() if value or key == "replicas"}


def _has_labels(pod: Obj, wanted: dict[str, str]) -> bool:
    labels = (pod.get("metadata") or {}).get("labels") or {}
    return all(labels.get(key) == value for key, value in wanted.items())


def _failure_conditions(rs: Obj, pods: list[Obj], error: Exception | None, stamp: str) -> list[Obj]:
    """Keep the other conditions; add ReplicaFailure on a failed create/delete, drop it on success."""
    current = list((rs.get("status") or {}).get("conditions") or [])
    existing = next((c for c in current if c.get("type") == REPLICA_FAILURE), None)
    if error is not None and existing is None:
        diff = len(pods) - int((rs.get("spec") or {}).get("replicas") or 0)
        reason = "FailedCreate" if diff < 0 else "FailedDelete" if diff > 0 else ""
        failure = {
            "type": REPLICA_FAILURE,
            "status": "True",
            "lastTransitionTime": stamp,
            "reason": reason,
            "message": str(error),
        }
        return [*current, failure]
    if error is None and existing is not None:
        return [c for c in current if c.get("type") != REPLICA_FAILURE]
    return current


def needs_available_recheck(rs: Obj, pods: list[Obj]) -> float | None:
    """Seconds until the next ready pod turns available (minReadySeconds), so the status is redone then."""
    min_ready = int((rs.get("spec") or {}).get("minReadySeconds") or 0)
    moment = now()
    waits = [w for p in pods if (w := seconds_until_available(p, min_ready, moment)) is not None]
    return min(waits) + 1.0 if waits else None


# ---------------------------------------------------------------------------------------------------
# The controller


class ReplicaSetController:
    def __init__(self, ctx: ControllerContext, expectations: Expectations | None = None) -> None:
        self.ctx = ctx
        self.client = ctx.client
        self.replicasets = ctx.informers.informer(REPLICASETS)
        self.pods = ctx.informers.informer(PODS)
        ensure_controller_index(self.replicasets)
        ensure_controller_index(self.pods)
        self.expectations = expectations or Expectations()
        self.recorder: EventRecorder = ctx.recorder("replicaset-controller")
        self.controller: Controller[str] = Controller(
            "replicaset", self.reconcile, workers=ctx.options.concurrent_syncs, wait_for=[self.replicasets, self.pods]
        )
        self.replicasets.add_event_handler(
            on_add=self._enqueue, on_update=lambda _old, new: self._enqueue(new), on_delete=self._rs_deleted
        )
        self.pods.add_event_handler(on_add=self._pod_added, on_update=self._pod_updated, on_delete=self._pod_deleted)

    # -- event handlers ---------------------------------------------------------------------------

    def _enqueue(self, rs: Obj) -> None:
        self.controller.enqueue(object_key(rs))

    def _rs_deleted(self, deleted: Any) -> None:
        self.expectations.forget(object_key(final_state(deleted)))

    def _owner_of(self, pod: Obj) -> Obj | None:
        """The ReplicaSet that controls `pod`, if it is one we know."""
        owner = controller_of(pod)
        if owner is None or owner.get("kind") != "ReplicaSet":
            return None
        rs = self.replicasets.get(pod["metadata"].get("namespace"), owner.get("name", ""))
        return rs if rs is not None and rs["metadata"].get("uid") == owner.get("uid") else None

    def _matching_sets(self, pod: Obj) -> list[Obj]:
        labels = pod["metadata"].get("labels") or {}
        found = []
        for rs in self.replicasets.list(pod["metadata"].get("namespace") or ""):
            try:
                if selector_from_object((rs.get("spec") or {}).get("selector")).matches(labels):
                    found.append(rs)
            except ApiError:
                continue
        return found

    def _pod_added(self, pod: Obj) -> None:
        if is_terminating(pod):
            self._pod_deleted(pod)  # restarted controller: a pod seen first while it is being deleted
            return
        rs = self._owner_of(pod)
        if rs is not None:
            self.expectations.creation_observed(object_key(rs))
            self._enqueue(rs)
        elif controller_of(pod) is None:
            for candidate in self._matching_sets(pod):
                self._enqueue(candidate)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        if is_terminating(new) and not is_terminating(old):
            self._pod_deleted(new)
            if old["metadata"].get("labels") != new["metadata"].get("labels"):
                self._pod_deleted(old)
            return
        old_rs, new_rs = self._owner_of(old), self._owner_of(new)
        if old_rs is not None and (new_rs is None or old_rs["metadata"]["uid"] != new_rs["metadata"]["uid"]):
            self._enqueue(old_rs)
        if new_rs is not None:
            self._enqueue(new_rs)
            self._recheck_after_ready(old, new, new_rs)
        elif controller_of(new) is None and (
            old["metadata"].get("labels") != new["metadata"].get("labels") or controller_of(old) is not None
        ):
            for candidate in self._matching_sets(new):
                self._enqueue(candidate)

    def _recheck_after_ready(self, old: Obj, new: Obj, rs: Obj) -> None:
        min_ready = int((rs.get("spec") or {}).get("minReadySeconds") or 0)
        if min_ready and not is_pod_ready(old) and is_pod_ready(new):
            self.controller.queue.add_after(object_key(rs), min_ready + 1.0)

    def _pod_deleted(self, deleted: Any) -> None:
        pod = final_state(deleted)
        rs = self._owner_of(pod)
        if rs is None:
            return
        key = object_key(rs)
        self.expectations.deletion_observed(key, object_key(pod))
        self.controller.enqueue(key)

    # -- sync -------------------------------------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        try:
            return await self._sync(key)
        except ApiError as error:
            if error.code != 409 or error.reason == "AlreadyExists":
                raise
            # Something newer than our cache exists; its watch event brings the key back.
            log.info("replicaset %s: %s; retrying with the newer version", key, error)
            return CONFLICT_RETRY_SECONDS

    async def _sync(self, key: str) -> float | None:
        namespace, _, name = key.rpartition("/")
        rs = self.replicasets.get(namespace, name)
        if rs is None:
            self.expectations.forget(key)
            return None
        needs_sync = self.expectations.satisfied(key)
        try:
            selector = selector_from_object((rs.get("spec") or {}).get("selector"))
        except ApiError as error:
            log.warning("replicaset %s has an invalid selector: %s", key, error)
            return None
        pods = await self._claim_pods(rs, selector)
        error: Exception | None = None
        deleted: set[str] = set()
        if needs_sync and not is_terminating(rs):
            try:
                deleted = await self._manage_replicas(key, rs, pods)
            except ApiError as failure:
                error = failure
        pods = [p for p in pods if object_key(p) not in deleted]
        updated = await self._update_status(rs, replica_set_status(rs, pods, error))
        if error is not None:
            raise error
        return needs_available_recheck(updated or rs, pods)

    async def _claim_pods(self, rs: Obj, selector: LabelSelector) -> list[Obj]:
        active = [p for p in self.pods.list(rs["metadata"]["namespace"]) if is_pod_active(p)]
        recheck = fresh_owner_check(self.client, REPLICASETS, rs)
        return await ClaimManager(self.client, PODS, rs, selector, recheck).claim(active)

    async def _manage_replicas(self, key: str, rs: Obj, pods: list[Obj]) -> set[str]:
        """Create or delete pods toward spec.replicas; returns the keys of the pods deleted."""
        diff = len(pods) - int((rs.get("spec") or {}).get("replicas") or 0)
        if diff < 0:
            await self._create_pods(key, rs, min(-diff, BURST_REPLICAS))
            return set()
        if diff > 0:
            return await self._delete_pods(key, rs, pods, min(diff, BURST_REPLICAS))
        return set()

    async def _create_pods(self, key: str, rs: Obj, count: int) -> None:
        self.expectations.expect_creations(key, count)
        log.info("replicaset %s: too few replicas, creating %d", key, count)
        created, error = await slow_start_batch(count, SLOW_START_INITIAL_BATCH, lambda: self._create_pod(rs))
        for _ in range(count - created):
            # Pods never created will never be observed.
            self.expectations.creation_observed(key)
        if error is not None:
            raise error

    async def _create_pod(self, rs: Obj) -> None:
        body = pod_from_template((rs.get("spec") or {}).get("template") or {}, rs)
        try:
            pod = await self.client.create(body, rs["metadata"]["namespace"])
        except ApiError as error:
            self.recorder.event(rs, WARNING, "FailedCreate", f"Error creating: {error}")
            raise
        self.recorder.event(rs, NORMAL, "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}")

    async def _delete_pods(self, key: str, rs: Obj, pods: list[Obj], count: int) -> set[str]:
        victims = pods_to_delete(pods, count, self._related_pods(rs, pods))
        victim_keys = [object_key(p) for p in victims]
        self.expectations.expect_deletions(key, victim_keys)
        log.info("replicaset %s: too many replicas, deleting %d", key, count)
        results = await asyncio.gather(*(self._delete_pod(key, rs, p) for p in victims), return_exceptions=True)
        errors = [r for r in results if isinstance(r, Exception)]
        if errors:
            raise errors[0]
        return set(victim_keys)

    async def _delete_pod(self, key: str, rs: Obj, pod: Obj) -> None:
        name = pod["metadata"]["name"]
        try:
            await self.client.delete(PODS, name, pod["metadata"]["namespace"])
        except ApiError as error:
            # The informer will never show this deletion: stop waiting for it.
            self.expectations.deletion_observed(key, object_key(pod))
            if error.code == 404:
                return
            self.recorder.event(rs, WARNING, "FailedDelete", f"Error deleting: {error}")
            raise
        self.recorder.event(rs, NORMAL, "SuccessfulDelete", f"Deleted pod: {name}")

    def _related_pods(self, rs: Obj, own: list[Obj]) -> list[Obj]:
        """The pods of this set and of its siblings (sets with the same controller, e.g. a Deployment's),
        used to spread deletions across nodes."""
        owner = controller_of(rs)
        if owner is None:
            return own
        siblings = self.replicasets.by_index(CONTROLLER_UID_INDEX, owner["uid"])
        related: list[Obj] = []
        for sibling in siblings:
            related += self.pods.by_index(CONTROLLER_UID_INDEX, sibling["metadata"]["uid"])
        return related

    async def _update_status(self, rs: Obj, status: Obj) -> Obj | None:
        """Write the status unless it is already what the API server holds; one retry on a conflict."""
        if _same_status(rs, status):
            return rs
        body = {**rs, "status": status}
        try:
            return await self.client.update(body, subresource="status")
        except ApiError as error:
            if error.code == 404:
                return None
            if error.code != 409:
                raise
        metadata = rs["metadata"]
        fresh = await self.client.get(REPLICASETS, metadata["name"], metadata["namespace"])
        status = {**status, "observedGeneration": fresh["metadata"].get("generation")}
        return await self.client.update({**fresh, "status": status}, subresource="status")


def _same_status(rs: Obj, status: Obj) -> bool:
    current = rs.get("status") or {}
    return current == status or {k: v for k, v in current.items() if v or k == "replicas"} == status


async def start(ctx: ControllerContext) -> None:
    await ReplicaSetController(ctx).controller.run()
