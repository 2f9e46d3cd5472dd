"""The scheduling loop and the informer handlers that keep the cache and the queue current.

Pods are scheduled one at a time; a decision involves no I/O, so it sees a consistent cache. The chosen
node is assumed at once and the binding is posted in the background, with at most `max_inflight_bindings`
in flight; the loop waits for a free slot before taking the next pod.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Mapping
from typing import Any

import httpx

from controllers.scheduler.algorithm import Algorithm
from controllers.scheduler.binder import PODS, Binder
from controllers.scheduler.cache import SchedulerCache
from controllers.scheduler.failure import FitError
from controllers.scheduler.framework import Handle
from controllers.scheduler.plugins import default_filters, default_pre_binds, default_scores
from controllers.scheduler.podinfo import (
    DEFAULT_SCHEDULER,
    KubeObject,
    PodInfo,
    assigned_node,
    is_deleting,
    is_terminal,
    responsible_for,
)
from controllers.scheduler.queue import DEFAULT_INITIAL_BACKOFF, DEFAULT_MAX_BACKOFF, SchedulingQueue
from skiff.api.errors import ApiError
from skiff.api.kinds import BUILTINS, ResourceType
from skiff.client.rest import AsyncClient
from skiff.runtime import DeletedFinalStateUnknown, SharedInformerFactory, final_state, object_key, split_key

log = logging.getLogger("skiff.scheduler")

NODES: ResourceType = BUILTINS.by_kind("", "v1", "Node")  # type: ignore[assignment]
DEFAULT_MAX_INFLIGHT_BINDINGS = 32


def _ready(node: Mapping[str, Any]) -> str:
    for condition in (node.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return str(condition.get("status"))
    return ""


def node_change_may_help(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Only changes that can make a pod fit (not heartbeats): allocatable, labels, taints, cordon, Ready."""
    old_status, new_status = old.get("status") or {}, new.get("status") or {}
    old_spec, new_spec = old.get("spec") or {}, new.get("spec") or {}
    return (
        old_status.get("allocatable") != new_status.get("allocatable")
        or (old.get("metadata") or {}).get("labels") != (new.get("metadata") or {}).get("labels")
        or old_spec.get("taints") != new_spec.get("taints")
        or bool(old_spec.get("unschedulable")) != bool(new_spec.get("unschedulable"))
        or _ready(old) != _ready(new)
    )


def _spec_or_labels_changed(old: KubeObject | None, new: KubeObject) -> bool:
    if old is None:
        return False
    labels = (old.get("metadata") or {}).get("labels"), (new.get("metadata") or {}).get("labels")
    return old.get("spec") != new.get("spec") or labels[0] != labels[1]


def _priority(pod: KubeObject) -> int:
    return int((pod.get("spec") or {}).get("priority") or 0)


class Scheduler:
    def __init__(
        self,
        client: AsyncClient,
        informers: SharedInformerFactory,
        binder: Binder,
        *,
        scheduler_name: str = DEFAULT_SCHEDULER,
        max_inflight_bindings: int = DEFAULT_MAX_INFLIGHT_BINDINGS,
        initial_backoff: float = DEFAULT_INITIAL_BACKOFF,
        max_backoff: float = DEFAULT_MAX_BACKOFF,
        rng: random.Random | None = None,
    ) -> None:
        self.scheduler_name = scheduler_name
        self.binder = binder
        self.cache = SchedulerCache()
        self.queue = SchedulingQueue(initial_backoff, max_backoff)
        handle = Handle(self.cache, informers, client)
        self.algorithm = Algorithm(self.cache, default_filters(handle), default_scores(handle), rng)
        self.pre_binds = default_pre_binds(handle)
        self.pods = informers.informer(PODS)
        self.nodes = informers.informer(NODES)
        self._slots = asyncio.Semaphore(max_inflight_bindings)
        self._tasks: set[asyncio.Task[None]] = set()
        self.nodes.add_event_handler(self._node_added, self._node_updated, self._node_deleted)
        self.pods.add_event_handler(self._pod_added, self._pod_updated, self._pod_deleted)

    # ------------------------------------------------------------------------------------------------
    # Informer handlers

    def _node_added(self, node: KubeObject) -> None:
        self.cache.set_node(node)
        self.queue.move_all()

    def _node_updated(self, old: KubeObject, new: KubeObject) -> None:
        self.cache.set_node(new)
        if node_change_may_help(old, new):
            self.queue.move_all()

    def _node_deleted(self, node: KubeObject | DeletedFinalStateUnknown) -> None:
        self.cache.remove_node((final_state(node).get("metadata") or {}).get("name") or "")

    def _pod_added(self, pod: KubeObject) -> None:
        self._pod_changed(None, pod)

    def _pod_updated(self, old: KubeObject, new: KubeObject) -> None:
        self._pod_changed(old, new)

    def _pod_deleted(self, deleted: KubeObject | DeletedFinalStateUnknown) -> None:
        key = object_key(final_state(deleted))
        self.queue.delete(key)
        if self.cache.remove_pod(key) is not None:
            self.queue.move_all()

    def _pod_changed(self, old: KubeObject | None, pod: KubeObject) -> None:
        key, node = object_key(pod), assigned_node(pod)
        if node:
            self.queue.delete(key)
            self._track_assigned(old, pod, key, node)
        elif responsible_for(pod, self.scheduler_name):
            if _spec_or_labels_changed(old, pod):
                self.queue.update(key, _priority(pod))
            else:
                self.queue.add(key, _priority(pod))
        else:
            self.queue.delete(key)
            if is_deleting(pod) and self.cache.remove_pod(key) is not None:
                self.queue.move_all()

    def _track_assigned(self, old: KubeObject | None, pod: KubeObject, key: str, node: str) -> None:
        if is_terminal(pod):
            if self.cache.remove_pod(key) is not None:
                self.queue.move_all()  # a finished pod frees its resources
            return
        unchanged = old is not None and not _spec_or_labels_changed(old, pod)
        if unchanged and self.cache.placement(key) == node and not self.cache.is_assumed(key):
            return  # a status update of a pod we already count
        self.cache.add_pod(PodInfo.of(pod), node)

    # ------------------------------------------------------------------------------------------------
    # The loop

    async def run(self) -> None:
        """Wait for the caches, then schedule until cancelled."""
        await self.nodes.wait_synced()
        await self.pods.wait_synced()
        log.info("caches synced: %d node(s), %d pending pod(s)", len(self.cache.schedulable_nodes()), len(self.queue))
        try:
            while True:
                await self._slots.acquire()
                key = await self.queue.pop()
                if not self.schedule_one(key):
                    self._slots.release()
                await asyncio.sleep(0)  # let informer events in between pods
        finally:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def schedule_one(self, key: str) -> bool:
        """Decide for one pod; True when a binding was started (it holds a slot until it finishes)."""
        namespace, name = split_key(key)
        pod = self.pods.get(namespace, name)
        if pod is None or not responsible_for(pod, self.scheduler_name):
            self.queue.done(key)
            self.queue.delete(key)
            return False
        if self.cache.is_assumed(key):
            self.queue.done(key)  # bound a moment ago; the informer has not caught up yet
            return False
        info = PodInfo.of(pod)
        try:
            decision = self.algorithm.schedule(info)
        except FitError as error:
            self._unschedulable(pod, key, error.message())
            return False
        self.cache.assume(info, decision.node)
        self._spawn(self._bind(info, decision.node))
        return True

    def _unschedulable(self, pod: KubeObject, key: str, message: str) -> None:
        delay = self.queue.backoff(key)
        log.info("pod %s is unschedulable (retry in %.0fs): %s", key, delay, message)
        self._spawn(self._report(pod, message))

    async def _report(self, pod: KubeObject, message: str) -> None:
        try:
            await self.binder.report_unschedulable(pod, message)
        except (ApiError, httpx.HTTPError, OSError) as error:
            log.warning("could not update the status of pod %s: %s", object_key(pod), error)

    async def _bind(self, pod: PodInfo, node: str) -> None:
        try:
            for plugin in self.pre_binds:
                await plugin.pre_bind(pod, node)
            await self.binder.bind(pod, node)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            self._binding_failed(pod, node, error)
        else:
            log.debug("bound %s to %s", pod.key, node)
            self.queue.succeeded(pod.key)
        finally:
            self._slots.release()

    def _binding_failed(self, pod: PodInfo, node: str, error: Exception) -> None:
        if self.cache.forget(pod.key):
            self.queue.move_all()  # what it held is free again
        gone_or_taken = isinstance(error, ApiError) and error.code in (404, 409)
        if gone_or_taken:
            log.info("not binding %s to %s: %s", pod.key, node, error)
        else:
            log.warning("binding %s to %s failed: %s", pod.key, node, error)
            self.binder.report_error(pod.obj, f"Binding rejected: {error}")
        self.queue.backoff(pod.key)

    def _spawn(self, work: Any) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
