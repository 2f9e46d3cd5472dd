"""Claiming objects for a controller: adopt matching orphans, release owned objects that stopped
matching (kube's ControllerRefManager).

An object belongs to the controller named by its controller ownerReference. A controller adopts an
orphan its selector matches — unless either is being deleted — and lets go of an object it owns once
its selector no longer matches. Both are patches carrying the object's resourceVersion, so a stale
cache makes them fail with a conflict (and the sync is retried) rather than overwrite someone else's
claim.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from controllers.podutil import controller_of, controller_ref, is_terminating
from skiff.api.errors import ApiError
from skiff.api.selectors import LabelSelector
from skiff.client.builder import ResourceRef
from skiff.client.rest import AsyncClient
from skiff.runtime import index_by_controller_uid

log = logging.getLogger("skiff.controller.ownerrefs")

Obj = dict[str, Any]
Recheck = Callable[[], Awaitable[bool]]


class ClaimManager:
    """Claims objects of one resource for `owner` by `selector`."""

    def __init__(
        self, client: AsyncClient, resource: ResourceRef, owner: Obj, selector: LabelSelector, recheck: Recheck
    ) -> None:
        self.client = client
        self.resource = resource
        self.owner = owner
        self.selector = selector
        self._recheck = recheck
        self._can_adopt: bool | None = None

    @property
    def owner_uid(self) -> str:
        return self.owner["metadata"]["uid"]

    async def claim(self, objects: list[Obj]) -> list[Obj]:
        """The objects that belong to the owner after adopting and releasing as needed."""
        claimed: list[Obj] = []
        for obj in objects:
            kept = await self._claim_one(obj)
            if kept is not None:
                claimed.append(kept)
        return claimed

    async def _claim_one(self, obj: Obj) -> Obj | None:
        matches = self.selector.matches((obj.get("metadata") or {}).get("labels") or {})
        owner = controller_of(obj)
        if owner is not None:
            if owner.get("uid") != self.owner_uid:
                return None
            if matches:
                return obj
            if not is_terminating(self.owner):
                await self._release(obj)
            return None
        if not matches or is_terminating(self.owner) or is_terminating(obj):
            return None
        return await self._adopt(obj)

    async def _adopt(self, obj: Obj) -> Obj | None:
        if not await self._may_adopt():
            return None
        references = [*((obj.get("metadata") or {}).get("ownerReferences") or []), controller_ref(self.owner)]
        adopted = await self._patch_owners(obj, references)
        if adopted is not None:
            log.info("%s adopted %s", self._describe_owner(), obj["metadata"]["name"])
        return adopted

    async def _release(self, obj: Obj) -> None:
        references = [r for r in obj["metadata"].get("ownerReferences") or [] if r.get("uid") != self.owner_uid]
        released = await self._patch_owners(obj, references or None)
        if released is not None:
            log.info("%s released %s", self._describe_owner(), obj["metadata"]["name"])

    async def _patch_owners(self, obj: Obj, references: list[Obj] | None) -> Obj | None:
        metadata = obj["metadata"]
        patch = {"metadata": {"ownerReferences": references, "resourceVersion": metadata.get("resourceVersion")}}
        try:
            return await self.client.patch(self.resource, metadata["name"], patch, metadata.get("namespace"))
        except ApiError as error:
            if error.code in (404, 422):
                return None  # gone, or being deleted: nothing to claim
            raise

    async def _may_adopt(self) -> bool:
        """Adopt only for an owner that still exists as this very object and is not being deleted (a
        fresh read, since the cache may be behind a deletion)."""
        if self._can_adopt is None:
            self._can_adopt = await self._recheck()
        return self._can_adopt

    def _describe_owner(self) -> str:
        metadata = self.owner["metadata"]
        return f"{self.owner.get('kind', 'owner')} {metadata.get('namespace')}/{metadata['name']}"


def fresh_owner_check(client: AsyncClient, resource: ResourceRef, owner: Obj) -> Recheck:
    """A recheck that reads the owner from the API server."""

    async def recheck() -> bool:
        metadata = owner["metadata"]
        try:
            fresh = await client.get(resource, metadata["name"], metadata.get("namespace"))
        except ApiError as error:
            if error.code == 404:
                return False
            raise
        return fresh["metadata"].get("uid") == metadata["uid"] and not is_terminating(fresh)

    return recheck


CONTROLLER_UID_INDEX = "controller-uid"


def ensure_controller_index(informer: Any) -> None:
    """File the informer's objects by their controller's uid (once, however many controllers share it)."""
    if not informer.cache.has_indexer(CONTROLLER_UID_INDEX):
        informer.add_indexer(CONTROLLER_UID_INDEX, index_by_controller_uid)
