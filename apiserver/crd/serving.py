"""Serving custom resources: the API server's CRD controller.

Every API server process follows the CustomResourceDefinitions in the change stream (and reads them from
the store at start), so each replica serves exactly what the stored CRDs say, whichever replica took
the request that created them:

- a CRD whose `Established` condition is True is served: one ResourceType per served version joins the
  resource table (routing, discovery, OpenAPI), with a `CustomResourceStrategy` and the version's schema
  registered as an OpenAPI definition; all versions share one storage key, objects are stored as written
  and served with the requested version's apiVersion (conversion strategy None);
- a CRD without conditions gets them: `NamesAccepted` (False when its names clash with a resource the
  group already serves), then `Established`, with `status.acceptedNames`;
- a CRD being deleted carries the `customresourcecleanup.apiextensions.k8s.io` finalizer; the controller
  deletes every custom object (honouring their own finalizers) and then drops the finalizer, after which
  the CRD row goes and every replica stops serving the resource.

Status writes are idempotent, so replicas on one PostgreSQL database may all run them; a conflict is
retried after reading again.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from apiserver.crd.definition import CLEANUP_FINALIZER, GROUP, condition, is_established
from apiserver.crd.resource import CustomResourceStrategy, DefinitionState
from apiserver.storage.records import Change, KeyNotFound, VersionConflict
from skiff.api import schema as schemas
from skiff.api.kinds import ALL_VERBS, ResourceTable, ResourceType

if TYPE_CHECKING:
    from apiserver.http.server_state import ServerState

log = logging.getLogger("skiff.apiserver.crd")

CRD_KEY = f"{GROUP}/customresourcedefinitions"
OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
LIST_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta"
RETRY_SECONDS = 1.0
Obj = dict[str, Any]


def now_rfc3339() -> str:
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def definition_prefix(group: str) -> str:
    """kube's OpenAPI name prefix of a group: stable.example.com → com.example.stable."""
    return ".".join(reversed(group.split(".")))


@dataclass
class Served:
    """What one CRD currently contributes to the resource table."""

    resources: list[ResourceType] = field(default_factory=list)
    fingerprint: bytes = b""
    state: DefinitionState = field(default_factory=DefinitionState)
    kinds: list[tuple[str, str, str]] = field(default_factory=list)


class CustomResourceController:
    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.known: dict[str, Obj] = {}
        self.served: dict[str, Served] = {}
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._queued: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    # -- the change stream ---------------------------------------------------------------------------
    def observe(self, changes: list[Change]) -> None:
        for change in changes:
            if change.resource != CRD_KEY:
                continue
            if change.event == "DELETED":
                self.known.pop(change.name, None)
                self.unserve(change.name)
                continue
            crd = change.obj()
            self.known[change.name] = crd
            self.serve(crd)
            self.enqueue(change.name)

    async def start(self) -> None:
        after: tuple[str, str] | None = None
        while True:
            page = await self.state.store.list(CRD_KEY, None, after=after, limit=500)
            for namespace, name, data in page.rows:
                crd = orjson.loads(data)
                self.known[name] = crd
                self.serve(crd)
                self.enqueue(name)
                after = (namespace, name)
            if not page.more:
                break
        self._task = asyncio.create_task(self._run(), name="crd-controller")

    def enqueue(self, name: str) -> None:
        if name not in self._queued:
            self._queued.add(name)
            self._queue.put_nowait(name)

    def _retry_later(self, name: str) -> None:
        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop().call_later(RETRY_SECONDS, self.enqueue, name)

    async def _run(self) -> None:
        while True:
            name = await self._queue.get()
            self._queued.discard(name)
            try:
                await self.reconcile(name)
            except asyncio.CancelledError:
                raise
            except VersionConflict:
                self.enqueue(name)
            except Exception:
                log.exception("reconciling CustomResourceDefinition %s failed; retrying", name)
                self._retry_later(name)

    # -- serving -------------------------------------------------------------------------------------
    def serve(self, crd: Obj) -> None:
        """Bring the resource table in line with one stored CRD (called for every change, idempotent)."""
        name = crd.get("metadata", {}).get("name", "")
        served = self.served.get(name)
        if not is_established(crd):
            if served is not None and not crd.get("metadata", {}).get("deletionTimestamp"):
                self.unserve(name)
            return
        terminating = bool(crd.get("metadata", {}).get("deletionTimestamp"))
        fingerprint = orjson.dumps([crd.get("spec"), crd.get("status", {}).get("acceptedNames")])
        if served is not None and served.fingerprint == fingerprint:
            served.state.terminating = terminating
            return
        state = served.state if served is not None else DefinitionState()
        state.terminating = terminating
        resources, strategies, definitions, kinds = build_resources(crd, state)
        table: ResourceTable = self.state.resources
        if served is not None:
            for old in served.resources:
                if old not in resources:
                    table.remove(old)
                self.state.install_strategy(old, None)
            for kind in served.kinds:
                if kind not in kinds:
                    schemas.unregister_kind(*kind)
        for resource, strategy in zip(resources, strategies, strict=True):
            table.add(resource)
            self.state.install_strategy(resource, strategy)
        if definitions:
            schemas.register_definitions(definitions)
        self.served[name] = Served(resources, fingerprint, state, kinds)
        log.info("serving %s (%s)", name, ", ".join(r.version for r in resources))

    def unserve(self, name: str) -> None:
        served = self.served.pop(name, None)
        if served is None:
            return
        for resource in served.resources:
            self.state.resources.remove(resource)
            self.state.install_strategy(resource, None)
        for kind in served.kinds:
            schemas.unregister_kind(*kind)
        log.info("stopped serving %s", name)

    # -- reconciling status and deletion ---------------------------------------------------------------
    async def reconcile(self, name: str) -> None:
        store = self.state.store
        stored = await store.get(CRD_KEY, "", name)
        if stored is None:
            return
        crd = stored.obj()
        if crd.get("metadata", {}).get("deletionTimestamp"):
            await self.cleanup(crd, stored.rv)
            return
        status = self.desired_status(crd)
        if status == crd.get("status"):
            return
        updated = copy.deepcopy(crd)
        updated["status"] = status
        result = await store.update(CRD_KEY, "", name, updated, stored.rv)
        # Serve at once from what was stored; the change stream brings the same to every replica.
        self.known[name] = result.obj()
        self.serve(result.obj())

    def desired_status(self, crd: Obj) -> Obj:
        spec = crd.get("spec", {})
        status = copy.deepcopy(crd.get("status") or {})
        names = spec.get("names", {})
        wanted = {
            key: names[key]
            for key in ("plural", "singular", "shortNames", "kind", "listKind", "categories")
            if names.get(key)
        }
        conflict = self.name_conflict(crd, wanted)
        conditions = list(status.get("conditions") or [])
        if conflict is None:
            status["acceptedNames"] = wanted
            conditions = _set_condition(conditions, "NamesAccepted", "True", "NoConflicts", "no conflicts found")
            if not is_established({"status": {"conditions": conditions}}):
                conditions = _set_condition(
                    conditions, "Established", "True", "InitialNamesAccepted", "the initial names have been accepted"
                )
        else:
            reason, message = conflict
            status.setdefault("acceptedNames", {"plural": "", "kind": ""})
            conditions = _set_condition(conditions, "NamesAccepted", "False", reason, message)
            if not is_established({"status": {"conditions": conditions}}):
                conditions = _set_condition(
                    conditions, "Established", "False", "NotAccepted", "not all names are accepted"
                )
        status["conditions"] = conditions
        status.setdefault("storedVersions", [])
        return status

    def name_conflict(self, crd: Obj, wanted: Obj) -> tuple[str, str] | None:
        """Why a CRD's names cannot be accepted: another CRD of the group accepted them, or a built-in
        resource of the group uses them."""
        name = crd.get("metadata", {}).get("name")
        group = crd.get("spec", {}).get("group", "")
        taken_resources: set[str] = set()
        taken_kinds: set[str] = set()
        for other_name, other in self.known.items():
            if other_name == name or other.get("spec", {}).get("group") != group:
                continue
            accepted = other.get("status", {}).get("acceptedNames") or {}
            taken_resources |= {accepted.get("plural", ""), accepted.get("singular", "")}
            taken_resources |= set(accepted.get("shortNames") or [])
            taken_kinds |= {accepted.get("kind", ""), accepted.get("listKind", "")}
        own = set(self.served.get(name, Served()).resources)
        for resource in self.state.resources:
            if resource.group != group or resource in own:
                continue
            taken_resources |= {resource.plural, resource.singular, *resource.short_names}
            taken_kinds |= {resource.kind, resource.list_kind}
        taken_resources.discard("")
        taken_kinds.discard("")
        if wanted.get("plural") in taken_resources:
            return "PluralConflict", f'"{wanted["plural"]}" is already in use'
        if wanted.get("singular") in taken_resources:
            return "SingularConflict", f'"{wanted["singular"]}" is already in use'
        for short in wanted.get("shortNames") or []:
            if short in taken_resources:
                return "ShortNamesConflict", f'"{short}" is already in use'
        if wanted.get("kind") in taken_kinds:
            return "KindConflict", f'"{wanted["kind"]}" is already in use'
        if wanted.get("listKind") in taken_kinds:
            return "ListKindConflict", f'"{wanted["listKind"]}" is already in use'
        return None

    async def cleanup(self, crd: Obj, rv: int) -> None:
        """Delete every custom object of a CRD being deleted, then release its finalizer."""
        store = self.state.store
        name = crd["metadata"]["name"]
        finalizers = list(crd.get("metadata", {}).get("finalizers") or [])
        if CLEANUP_FINALIZER not in finalizers:
            return
        terminating = condition(crd, "Terminating")
        if terminating is None or terminating.get("status") != "True":
            updated = copy.deepcopy(crd)
            updated.setdefault("status", {})["conditions"] = _set_condition(
                list(updated["status"].get("conditions") or []),
                "Terminating",
                "True",
                "InstanceDeletionInProgress",
                "CustomResource deletion is in progress",
            )
            result = await store.update(CRD_KEY, "", name, updated, rv)
            crd, rv = result.obj(), result.rv
        plural = (crd.get("status", {}).get("acceptedNames") or {}).get("plural") or crd["spec"]["names"]["plural"]
        key = f"{crd['spec']['group']}/{plural}"
        remaining = await self._delete_objects(key)
        if remaining:
            self._retry_later(name)
            return
        updated = copy.deepcopy(crd)
        updated["metadata"]["finalizers"] = [f for f in finalizers if f != CLEANUP_FINALIZER]
        if updated["metadata"]["finalizers"]:
            await store.update(CRD_KEY, "", name, updated, rv)
        else:
            updated["metadata"].pop("finalizers")
            with contextlib.suppress(KeyNotFound):
                await store.delete(CRD_KEY, "", name, updated, rv)

    async def _delete_objects(self, key: str) -> int:
        """Delete (or mark, when they have finalizers) the objects under one storage key; returns how
        many are still there."""
        store = self.state.store
        remaining = 0
        after: tuple[str, str] | None = None
        while True:
            page = await store.list(key, None, after=after, limit=500)
            for namespace, name, data in page.rows:
                after = (namespace, name)
                obj = orjson.loads(data)
                metadata = obj.setdefault("metadata", {})
                current = int(metadata.get("resourceVersion") or 0) or None
                try:
                    if metadata.get("finalizers"):
                        remaining += 1
                        if not metadata.get("deletionTimestamp"):
                            metadata["deletionTimestamp"] = now_rfc3339()
                            metadata["deletionGracePeriodSeconds"] = 0
                            await store.update(key, namespace, name, obj, current)
                    else:
                        await store.delete(key, namespace, name, obj, current)
                except (KeyNotFound, VersionConflict):
                    remaining += 1
            if not page.more:
                return remaining


def _set_condition(conditions: list[Obj], kind: str, status: str, reason: str, message: str) -> list[Obj]:
    out = []
    found = False
    for item in conditions:
        if item.get("type") == kind:
            found = True
            if item.get("status") == status and item.get("reason") == reason and item.get("message") == message:
                out.append(item)
                continue
            changed = item.get("status") != status
            item = {
                "type": kind,
                "status": status,
                "lastTransitionTime": now_rfc3339() if changed else item.get("lastTransitionTime", now_rfc3339()),
                "reason": reason,
                "message": message,
            }
        out.append(item)
    if not found:
        out.append(
            {"type": kind, "status": status, "lastTransitionTime": now_rfc3339(), "reason": reason, "message": message}
        )
    return out


def build_resources(
    crd: Obj, state: DefinitionState
) -> tuple[list[ResourceType], list[CustomResourceStrategy], dict[str, Obj], list[tuple[str, str, str]]]:
    """The resource types, strategies and OpenAPI definitions of a CRD's served versions."""
    spec = crd["spec"]
    group = spec["group"]
    accepted = crd.get("status", {}).get("acceptedNames") or spec["names"]
    kind = accepted.get("kind") or spec["names"]["kind"]
    list_kind = accepted.get("listKind") or f"{kind}List"
    versions = [ver for ver in spec.get("versions") or [] if ver.get("served")]
    multi_version = len(spec.get("versions") or []) > 1
    resources: list[ResourceType] = []
    strategies: list[CustomResourceStrategy] = []
    definitions: dict[str, Obj] = {}
    kinds: list[tuple[str, str, str]] = []
    for version in versions:
        subresources = version.get("subresources") or {}
        subs = tuple(sub for sub in ("status", "scale") if sub in subresources)
        resource = ResourceType(
            group=group,
            version=version["name"],
            kind=kind,
            plural=accepted.get("plural") or spec["names"]["plural"],
            namespaced=spec.get("scope") == "Namespaced",
            short_names=tuple(accepted.get("shortNames") or ()),
            categories=tuple(accepted.get("categories") or ()),
            subresources=subs,
            verbs=ALL_VERBS,
            list_kind=list_kind,
            singular=accepted.get("singular") or kind.lower(),
            extra={"strategicMergePatch": "false"},
        )
        schema = (version.get("schema") or {}).get("openAPIV3Schema") or {"type": "object"}
        strategy = CustomResourceStrategy(
            resource,
            schema,
            status="status" in subresources,
            scale=subresources.get("scale"),
            printer_columns=list(version.get("additionalPrinterColumns") or []),
            definition=state,
            multi_version=multi_version,
        )
        resources.append(resource)
        strategies.append(strategy)
        prefix = f"{definition_prefix(group)}.{version['name']}"
        definitions[f"{prefix}.{kind}"] = _kind_definition(schema, group, version["name"], kind)
        definitions[f"{prefix}.{list_kind}"] = _list_definition(f"{prefix}.{kind}", group, version["name"], list_kind)
        kinds += [(group, version["name"], kind), (group, version["name"], list_kind)]
    return resources, strategies, definitions, kinds


def _kind_definition(schema: Obj, group: str, version: str, kind: str) -> Obj:
    definition = copy.deepcopy(schema)
    properties = definition.setdefault("properties", {})
    properties["apiVersion"] = {
        "type": "string",
        "description": "APIVersion defines the versioned schema of this representation of an object.",
    }
    properties["kind"] = {"type": "string", "description": "Kind is a string value representing the REST resource."}
    properties["metadata"] = {
        "description": "Standard object's metadata.",
        "allOf": [{"$ref": OBJECT_META}],
    }
    definition["x-kubernetes-group-version-kind"] = [{"group": group, "kind": kind, "version": version}]
    return definition


def _list_definition(item: str, group: str, version: str, list_kind: str) -> Obj:
    return {
        "description": f"{list_kind} is a list of {item.rsplit('.', 1)[-1]}",
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": {"type": "string", "description": "APIVersion of this representation."},
            "items": {"type": "array", "items": {"$ref": item}, "description": "List of objects."},
            "kind": {"type": "string", "description": "Kind of this list."},
            "metadata": {"description": "Standard list metadata.", "allOf": [{"$ref": LIST_META}]},
        },
        "x-kubernetes-group-version-kind": [{"group": group, "kind": list_kind, "version": version}],
    }


async def install_custom_resources(state: ServerState) -> CustomResourceController:
    """Follow CRDs from the change stream and the store; call before the change stream starts."""
    state.resources = ResourceTable(list(state.resources))  # a table of this server's own
    controller = CustomResourceController(state)
    state.change_observers.append(controller.observe)
    await controller.start()
    return controller
