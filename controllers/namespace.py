"""Namespace controller: empty a deleted namespace, then release its `kubernetes` finalizer.

Deletion is asked of every namespaced resource the server lists in discovery (so custom resources are
included), and the namespace is finalized only once nothing is left in it — objects that still carry
finalizers, or pods still shutting down, keep it Terminating, as in Kubernetes.
"""

from __future__ import annotations

import logging
from typing import Any

from controllers.base import ControllerContext
from skiff.api.errors import ApiError
from skiff.api.kinds import ResourceType
from skiff.runtime import Controller, object_key

log = logging.getLogger("skiff.controller.namespace")

NAMESPACES = ("v1", "Namespace")
FINALIZER = "kubernetes"
RECHECK_SECONDS = 2.0


async def namespaced_resources(ctx: ControllerContext) -> list[ResourceType]:
    """Every namespaced resource that supports listing and deletion, from the server's discovery."""
    found: list[ResourceType] = []
    group_versions = ["v1"]
    groups = await ctx.client.get_path("/apis")
    for group in groups.get("groups", []):
        group_versions.append(group["preferredVersion"]["groupVersion"])
    for group_version in group_versions:
        path = f"/api/{group_version}" if group_version == "v1" else f"/apis/{group_version}"
        try:
            document = await ctx.client.get_path(path)
        except ApiError:
            continue
        group, _, version = group_version.rpartition("/")
        for entry in document.get("resources", []):
            verbs = set(entry.get("verbs", []))
            if "/" in entry["name"] or not entry.get("namespaced") or not {"list", "delete"} <= verbs:
                continue
            found.append(ResourceType(group, version, entry["kind"], entry["name"], True))
    return found


class NamespaceController:
    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        self.informer = ctx.informers.informer(NAMESPACES)
        self.controller: Controller[str] = Controller("namespace", self.reconcile, workers=2, wait_for=[self.informer])
        self.informer.add_event_handler(
            on_add=self._enqueue, on_update=lambda _old, new: self._enqueue(new), on_delete=None
        )

    def _enqueue(self, obj: dict[str, Any]) -> None:
        if obj.get("metadata", {}).get("deletionTimestamp"):
            self.controller.enqueue(object_key(obj))

    async def reconcile(self, name: str) -> float | None:
        namespace = self.informer.get(None, name)
        if namespace is None or not namespace.get("metadata", {}).get("deletionTimestamp"):
            return None
        if FINALIZER not in (namespace.get("spec", {}).get("finalizers") or []):
            return None
        remaining = await self._delete_content(name)
        if remaining:
            log.info("namespace %s: waiting for %d object(s) to go", name, remaining)
            return RECHECK_SECONDS
        await self._finalize(namespace)
        return None

    async def _delete_content(self, namespace: str) -> int:
        remaining = 0
        for resource in await namespaced_resources(self.ctx):
            try:
                listed = await self.ctx.client.list(resource, namespace)
            except ApiError as error:
                if error.code in (404, 405):
                    continue
                raise
            for item in listed.get("items", []):
                remaining += 1
                if item.get("metadata", {}).get("deletionTimestamp"):
                    continue
                try:
                    await self.ctx.client.delete(
                        resource, item["metadata"]["name"], namespace, propagation_policy="Background"
                    )
                except ApiError as error:
                    if error.code not in (404, 409):
                        raise
        return remaining

    async def _finalize(self, namespace: dict[str, Any]) -> None:
        finalizers = [f for f in namespace.get("spec", {}).get("finalizers") or [] if f != FINALIZER]
        body = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": namespace["metadata"]["name"]},
            "spec": {"finalizers": finalizers},
        }
        await self.ctx.client.update(body, subresource="finalize")
        log.info("namespace %s: emptied and finalized", namespace["metadata"]["name"])


async def start(ctx: ControllerContext) -> None:
    await NamespaceController(ctx).controller.run()
