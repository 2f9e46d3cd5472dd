"""Garbage collector (`garbagecollector`): deletes dependents whose owners are gone, and carries out
foreground and orphan deletion.

The graph of owners and dependents is read from metadata-only informers over every resource the API
server lists in discovery with the list, watch and delete verbs (built-in and custom ones; discovery is
repeated every 30 s, so resources added later are picked up). Each informer cache is indexed by uid and
by owner uid, so "who owns this" and "what does this own" are lookups.

- Background: when an owner goes away (or an ownerReference names a uid that no longer exists), every
  dependent that references it is checked. Each of its owners is verified with a live GET, because the
  cache may lag: a dependent with no remaining owner is deleted (with the propagation its own finalizers
  ask for, Background otherwise); one that still has a live owner only loses the dangling references.
- Foreground: an owner with a deletionTimestamp and the `foregroundDeletion` finalizer has its
  dependents deleted (Foreground for dependents that own objects themselves, so the chain is deleted
  bottom up); once no dependent with `blockOwnerDeletion: true` is left, the finalizer is removed and
  the API server deletes the owner.
- Orphan: an owner with a deletionTimestamp and the `orphan` finalizer has its ownerReference removed
  from every dependent, then the finalizer removed.

Events (core and events.k8s.io) are not tracked, as in Kubernetes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from controllers.base import ControllerContext
from skiff.api.errors import ApiError
from skiff.api.kinds import ResourceType
from skiff.client.builder import PARTIAL_OBJECT_METADATA
from skiff.client.rest import AsyncClient, default_user_agent
from skiff.runtime import (
    Controller,
    DeletedFinalStateUnknown,
    Informer,
    SharedInformerFactory,
    final_state,
    index_by_owner_uid,
)

log = logging.getLogger("skiff.controller.garbagecollector")

ORPHAN = "orphan"
FOREGROUND = "foregroundDeletion"
UID_INDEX = "uid"
OWNER_INDEX = "owner-uid"
# Resources the collector never tracks: events are many, short-lived and never own anything.
IGNORED = frozenset({("", "events"), ("events.k8s.io", "events")})
REQUIRED_VERBS = frozenset({"list", "watch", "delete"})
DISCOVERY_INTERVAL_SECONDS = 30.0
# While an owner waits for blocking dependents, look again this often even if no event arrives.
FOREGROUND_RECHECK_SECONDS = 5.0
ABSENT_OWNER_CACHE_SIZE = 4096
MAX_CONNECTIONS = 1000

Obj = dict[str, Any]


@dataclass(frozen=True)
class ObjectRef:
    """One object, as a work-queue key: its resource, where it lives, and which incarnation (uid)."""

    resource: ResourceType
    namespace: str
    name: str
    uid: str

    def __str__(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.resource.plural}.{self.resource.group or 'core'} {where} ({self.uid})"


def ref_of(resource: ResourceType, obj: Obj) -> ObjectRef:
    metadata = obj.get("metadata") or {}
    return ObjectRef(resource, metadata.get("namespace") or "", metadata.get("name") or "", metadata.get("uid") or "")


# ---------------------------------------------------------------------------------------------------
# Pure rules


def owner_references(obj: Obj) -> list[Obj]:
    return list((obj.get("metadata") or {}).get("ownerReferences") or [])


def finalizers(obj: Obj) -> list[str]:
    return list((obj.get("metadata") or {}).get("finalizers") or [])


def is_deleting(obj: Obj) -> bool:
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


def is_deleting_dependents(obj: Obj) -> bool:
    """Being deleted in the foreground: waiting for its blocking dependents to go first."""
    return is_deleting(obj) and FOREGROUND in finalizers(obj)


def is_orphaning(obj: Obj) -> bool:
    return is_deleting(obj) and ORPHAN in finalizers(obj)


def blocks_owner(dependent: Obj, owner_uid: str) -> bool:
    """Whether `dependent` holds up the foreground deletion of the owner with `owner_uid`."""
    return any(ref.get("uid") == owner_uid and ref.get("blockOwnerDeletion") for ref in owner_references(dependent))


def without_owners(obj: Obj, uids: Iterable[str]) -> list[Obj]:
    """`obj`'s ownerReferences minus those naming `uids`."""
    drop = set(uids)
    return [ref for ref in owner_references(obj) if ref.get("uid") not in drop]


@dataclass
class OwnerStates:
    """A dependent's owners, sorted by what a live read found."""

    solid: list[Obj] = field(default_factory=list)  # exists, same uid, not being deleted in the foreground
    dangling: list[Obj] = field(default_factory=list)  # gone, or the name now belongs to another uid
    waiting: list[Obj] = field(default_factory=list)  # exists and is waiting for its dependents to go


def classify(ref: Obj, live_owner: Obj | None) -> str:
    """Whether one ownerReference is "solid", "dangling" or "waiting", given what a GET of the owner returned."""
    if live_owner is None or (live_owner.get("metadata") or {}).get("uid") != ref.get("uid"):
        return "dangling"
    if is_deleting_dependents(live_owner):
        return "waiting"
    return "solid"


@dataclass(frozen=True)
class Decision:
    """What to do with a dependent: nothing, drop some ownerReferences, or delete it with a policy."""

    action: str  # "keep" | "remove-references" | "delete"
    uids: tuple[str, ...] = ()
    policy: str = ""


def decide(dependent: Obj, states: OwnerStates, has_dependents: bool) -> Decision:
    """Kubernetes' rule for a dependent whose owners were just verified."""
    if states.solid:
        stale = tuple(ref["uid"] for ref in [*states.dangling, *states.waiting])
        return Decision("remove-references", stale) if stale else Decision("keep")
    if states.waiting and has_dependents:
        # Our owner waits for us and we own things ourselves: go in the foreground too, so the
        # owner's wait covers the whole subtree.
        return Decision("delete", policy="Foreground")
    own = finalizers(dependent)
    if ORPHAN in own:
        return Decision("delete", policy="Orphan")
    if FOREGROUND in own:
        return Decision("delete", policy="Foreground")
    return Decision("delete", policy="Background")


def deletable_resources(core: Obj, groups: Iterable[Obj]) -> list[ResourceType]:
    """Resources to track from discovery documents: the core `/api/v1` document and each group's
    preferred-version document; only top-level resources that can be listed, watched and deleted."""
    found: list[ResourceType] = []
    seen: set[tuple[str, str]] = set()
    for document in [core, *groups]:
        group, _, version = (document.get("groupVersion") or "v1").rpartition("/")
        for entry in document.get("resources") or []:
            name = entry.get("name") or ""
            if "/" in name or (group, name) in IGNORED or (group, name) in seen:
                continue
            if not set(entry.get("verbs") or []) >= REQUIRED_VERBS:
                continue
            seen.add((group, name))
            found.append(ResourceType(group, version, entry["kind"], name, bool(entry.get("namespaced"))))
    return found


def index_by_uid(obj: Obj) -> list[str]:
    uid = (obj.get("metadata") or {}).get("uid")
    return [uid] if uid else []


# ---------------------------------------------------------------------------------------------------
# The graph


class Graph:
    """Owners and dependents across every tracked resource, read from the informer caches."""

    def __init__(self) -> None:
        self.informers: dict[ResourceType, Informer] = {}
        # (group, kind) → resource, to resolve ownerReferences (any version of a kind names the same object).
        self._by_kind: dict[tuple[str, str], ResourceType] = {}

    def track(self, resource: ResourceType, informer: Informer) -> None:
        for name, index in ((UID_INDEX, index_by_uid), (OWNER_INDEX, index_by_owner_uid)):
            if not informer.cache.has_indexer(name):
                informer.add_indexer(name, index)
        self.informers[resource] = informer
        self._by_kind[(resource.group, resource.kind)] = resource

    def resource_for(self, api_version: str, kind: str) -> ResourceType | None:
        group = api_version.rpartition("/")[0]
        return self._by_kind.get((group, kind))

    def node(self, uid: str) -> tuple[ResourceType, Obj] | None:
        for resource, informer in self.informers.items():
            found = informer.by_index(UID_INDEX, uid)
            if found:
                return resource, found[0]
        return None

    def dependents(self, uid: str) -> list[tuple[ResourceType, Obj]]:
        return [
            (resource, obj)
            for resource, informer in self.informers.items()
            for obj in informer.by_index(OWNER_INDEX, uid)
        ]

    def has_dependents(self, uid: str) -> bool:
        return any(informer.by_index(OWNER_INDEX, uid) for informer in self.informers.values())

    def objects(self) -> Iterable[tuple[ResourceType, Obj]]:
        for resource, informer in list(self.informers.items()):
            for obj in informer.list():
                yield resource, obj


# ---------------------------------------------------------------------------------------------------
# The controller


class GarbageCollector:
    def __init__(self, ctx: ControllerContext, metadata_client: AsyncClient) -> None:
        self.ctx = ctx
        self.client = ctx.client
        self.metadata = metadata_client
        self.informers = SharedInformerFactory(metadata_client)
        self.graph = Graph()
        self.synced = False
        self._absent: OrderedDict[tuple[str, str], None] = OrderedDict()
        workers = max(ctx.options.concurrent_syncs, 1)
        self.deleter: Controller[ObjectRef] = Controller("garbagecollector-delete", self.attempt_to_delete, workers)
        self.orphaner: Controller[ObjectRef] = Controller("garbagecollector-orphan", self.attempt_to_orphan, 1)

    # -- discovery and informers -------------------------------------------------------------------
    async def discover(self) -> list[ResourceType]:
        core = await self.client.get_path("/api/v1")
        documents = []
        for group in (await self.client.get_path("/apis")).get("groups") or []:
            group_version = (group.get("preferredVersion") or {}).get("groupVersion")
            if not group_version:
                continue
            try:
                documents.append(await self.client.get_path(f"/apis/{group_version}"))
            except ApiError as error:
                log.warning("discovery of %s failed: %s", group_version, error)
        return deletable_resources(core, documents)

    async def sync_resources(self) -> list[Informer]:
        """Track resources discovery lists that are not tracked yet; returns their new informers."""
        started: list[Informer] = []
        for resource in await self.discover():
            if resource in self.graph.informers:
                continue
            informer = self.informers.informer(resource)
            self.graph.track(resource, informer)
            informer.add_event_handler(
                on_add=lambda obj, r=resource: self.on_change(r, None, obj),
                on_update=lambda old, new, r=resource: self.on_change(r, old, new),
                on_delete=lambda obj, r=resource: self.on_delete(r, obj),
            )
            started.append(informer)
            if self.synced:
                log.info("tracking %s", resource.plural + (f".{resource.group}" if resource.group else ""))
        return started

    async def rediscover_forever(self) -> None:
        while True:
            await asyncio.sleep(DISCOVERY_INTERVAL_SECONDS)
            try:
                await self.sync_resources()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("resource discovery failed: %s", error)

    # -- informer events -------------------------------------------------------------------------------
    def on_change(self, resource: ResourceType, old: Obj | None, new: Obj) -> None:
        ref = ref_of(resource, new)
        if is_orphaning(new):
            self.orphaner.enqueue(ref)
        if is_deleting_dependents(new):
            self.deleter.enqueue(ref)
        if not self.synced:
            return  # the sweep after the first sync looks at every object
        self._check_owners(ref, new)
        if old is not None:
            # A dependent that dropped (or stopped blocking) an owner may be what that owner waits for.
            for owner in owner_references(old):
                self._wake_waiting_owner(owner.get("uid") or "")

    def on_delete(self, resource: ResourceType, deleted: Obj | DeletedFinalStateUnknown) -> None:
        obj = final_state(deleted)
        uid = (obj.get("metadata") or {}).get("uid") or ""
        for dependent_resource, dependent in self.graph.dependents(uid):
            self.deleter.enqueue(ref_of(dependent_resource, dependent))
        for owner in owner_references(obj):
            self._wake_waiting_owner(owner.get("uid") or "")

    def _check_owners(self, ref: ObjectRef, obj: Obj) -> None:
        """Queue `obj` when one of its owners is unknown here or is deleting its dependents."""
        for owner in owner_references(obj):
            found = self.graph.node(owner.get("uid") or "")
            if found is None or is_deleting_dependents(found[1]):
                self.deleter.enqueue(ref)
                return

    def _wake_waiting_owner(self, uid: str) -> None:
        found = self.graph.node(uid) if uid else None
        if found is not None and is_deleting_dependents(found[1]):
            self.deleter.enqueue(ref_of(*found))

    def sweep(self) -> None:
        """After the first sync: queue every object whose owner is missing or deleting dependents."""
        for resource, obj in self.graph.objects():
            self._check_owners(ref_of(resource, obj), obj)

    # -- live reads ------------------------------------------------------------------------------------
    async def get_live(self, ref: ObjectRef) -> Obj | None:
        """The object's metadata as stored now; None when it is gone or its name holds another uid."""
        try:
            obj = await self.metadata.get(ref.resource, ref.name, ref.namespace or None)
        except ApiError as error:
            if error.code in (404, 410):
                return None
            raise
        return obj if (obj.get("metadata") or {}).get("uid") == ref.uid else None

    async def owner_state(self, dependent: ObjectRef, owner: Obj) -> str:
        uid = owner.get("uid") or ""
        resource = self.graph.resource_for(owner.get("apiVersion") or "", owner.get("kind") or "")
        if resource is None:
            raise LookupError(f"{dependent}: owner kind {owner.get('kind')!r} in {owner.get('apiVersion')!r} "
                              "is not served (yet)")  # fmt: skip
        if resource.namespaced and not dependent.namespace:
            return "dangling"  # a cluster-scoped object cannot be owned by a namespaced one
        namespace = dependent.namespace if resource.namespaced else ""
        if (uid, namespace) in self._absent:
            return "dangling"
        live = await self.get_live(ObjectRef(resource, namespace, owner.get("name") or "", uid))
        state = classify(owner, live)
        if state == "dangling":
            self._absent[(uid, namespace)] = None
            while len(self._absent) > ABSENT_OWNER_CACHE_SIZE:
                self._absent.popitem(last=False)
        return state

    # -- attempt to delete -----------------------------------------------------------------------------
    async def attempt_to_delete(self, ref: ObjectRef) -> float | None:
        latest = await self.get_live(ref)
        if latest is None:
            return None
        if is_deleting(latest):
            if FOREGROUND in finalizers(latest):
                return await self.process_deleting_dependents(ref, latest)
            return None
        owners = owner_references(latest)
        if not owners:
            return None
        states = OwnerStates()
        for owner in owners:
            getattr(states, await self.owner_state(ref, owner)).append(owner)
        decision = decide(latest, states, self.graph.has_dependents(ref.uid))
        if decision.action == "remove-references":
            log.info("%s: removing references to owners %s", ref, ", ".join(decision.uids))
            await self.patch_owner_references(ref, latest, without_owners(latest, decision.uids))
        elif decision.action == "delete":
            log.info("%s: no owner is left; deleting (propagation %s)", ref, decision.policy)
            await self.delete(ref, decision.policy)
        return None

    async def process_deleting_dependents(self, ref: ObjectRef, owner: Obj) -> float | None:
        """Foreground deletion of `owner`: delete its dependents; release it once none blocks it."""
        dependents = self.graph.dependents(ref.uid)
        blocking = [d for d in dependents if blocks_owner(d[1], ref.uid)]
        if not blocking:
            log.info("%s: no blocking dependents left; removing the %s finalizer", ref, FOREGROUND)
            await self.remove_finalizer(ref, owner, FOREGROUND)
            return None
        for resource, dependent in dependents:
            if not is_deleting(dependent):
                self.deleter.enqueue(ref_of(resource, dependent))
        return FOREGROUND_RECHECK_SECONDS

    # -- attempt to orphan -----------------------------------------------------------------------------
    async def attempt_to_orphan(self, ref: ObjectRef) -> None:
        owner = await self.get_live(ref)
        if owner is None or not is_orphaning(owner):
            return
        for resource, cached in self.graph.dependents(ref.uid):
            dependent = ref_of(resource, cached)
            latest = await self.get_live(dependent)
            if latest is None or all(o.get("uid") != ref.uid for o in owner_references(latest)):
                continue
            await self.patch_owner_references(dependent, latest, without_owners(latest, [ref.uid]))
        log.info("%s: dependents orphaned; removing the %s finalizer", ref, ORPHAN)
        await self.remove_finalizer(ref, owner, ORPHAN)

    # -- writes ----------------------------------------------------------------------------------------
    async def patch_owner_references(self, ref: ObjectRef, latest: Obj, remaining: list[Obj]) -> None:
        # The resourceVersion read is the precondition: a concurrent change gets 409 and a retry.
        metadata = {"ownerReferences": remaining or None, "resourceVersion": latest["metadata"]["resourceVersion"]}
        await self._patch(ref, {"metadata": metadata})

    async def remove_finalizer(self, ref: ObjectRef, latest: Obj, finalizer: str) -> None:
        remaining = [f for f in finalizers(latest) if f != finalizer]
        metadata = {"finalizers": remaining or None, "resourceVersion": latest["metadata"]["resourceVersion"]}
        await self._patch(ref, {"metadata": metadata})

    async def _patch(self, ref: ObjectRef, patch: Obj) -> None:
        try:
            await self.client.patch(ref.resource, ref.name, patch, ref.namespace or None)
        except ApiError as error:
            if error.code != 404:
                raise

    async def delete(self, ref: ObjectRef, policy: str) -> None:
        try:
            await self.client.delete(
                ref.resource, ref.name, ref.namespace or None, propagation_policy=policy, preconditions={"uid": ref.uid}
            )
        except ApiError as error:
            # 404: already gone; 409: the name now holds another object, which is not ours to judge.
            if error.code not in (404, 409):
                raise

    # -- running ---------------------------------------------------------------------------------------
    async def run(self) -> None:
        initial = await self.sync_resources()
        self.informers.start()
        await asyncio.gather(*(informer.wait_synced() for informer in initial))
        self.synced = True
        log.info("graph built from %d resources; collecting", len(initial))
        self.sweep()
        tasks = [
            asyncio.create_task(self.deleter.run(), name="gc-delete"),
            asyncio.create_task(self.orphaner.run(), name="gc-orphan"),
            asyncio.create_task(self.rediscover_forever(), name="gc-discovery"),
        ]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.informers.shutdown()


async def start(ctx: ControllerContext) -> None:
    # One watch per tracked resource holds one connection each (HTTP/1.1), plus the workers' reads.
    metadata_client = AsyncClient(
        ctx.client.config,
        accept=PARTIAL_OBJECT_METADATA,
        user_agent=default_user_agent("garbage-collector"),
        max_connections=MAX_CONNECTIONS,
    )
    try:
        await GarbageCollector(ctx, metadata_client).run()
    finally:
        with contextlib.suppress(Exception):
            await metadata_client.aclose()
