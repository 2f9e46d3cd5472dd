"""delete and deletecollection: preconditions, propagation policy, grace periods, finalizers."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.responses import Response

from apiserver.admission import admit
from apiserver.allocators import release_service
from apiserver.http.codec import load_json, load_yaml, media_type
from apiserver.http.context import RequestContext
from apiserver.http.objects import pending_finalizers
from apiserver.http.reads import collect, request_filter
from apiserver.http.responses import object_response, success_status, value_response
from apiserver.storage.records import KeyNotFound, Stored, VersionConflict
from skiff.api.errors import ApiError, bad_request, conflict, not_found

ORPHAN = "orphan"
FOREGROUND = "foregroundDeletion"
POLICIES = ("Orphan", "Background", "Foreground")
MAX_RETRIES = 8


@dataclass
class DeleteOptions:
    propagation: str | None = None
    grace_seconds: int | None = None
    uid: str | None = None
    resource_version: str | None = None
    orphan_dependents: bool | None = None


async def parse_delete_options(ctx: RequestContext) -> DeleteOptions:
    raw = await ctx.body()
    body: Any = {}
    if raw.strip():
        kind = media_type(ctx.request.headers.get("content-type"))
        body = load_yaml(raw) if kind.endswith("yaml") else load_json(raw)
        if not isinstance(body, dict):
            raise bad_request("the delete options must be an object")
    options = DeleteOptions()
    options.propagation = body.get("propagationPolicy") or ctx.query.get("propagationPolicy")
    orphan = body.get("orphanDependents", ctx.query.get("orphanDependents"))
    if orphan is not None:
        options.orphan_dependents = str(orphan).lower() == "true"
    if options.propagation is None and orphan is not None:
        options.propagation = "Orphan" if str(orphan).lower() == "true" else "Background"
    if options.propagation is not None and options.propagation not in POLICIES:
        raise bad_request(f'propagationPolicy: Unsupported value: "{options.propagation}"')
    grace = body.get("gracePeriodSeconds", ctx.query.get("gracePeriodSeconds"))
    if grace is not None:
        try:
            options.grace_seconds = max(int(grace), 0)
        except (TypeError, ValueError):
            raise bad_request(f"gracePeriodSeconds: Invalid value: {grace!r}") from None
    preconditions = body.get("preconditions") or {}
    options.uid = preconditions.get("uid")
    options.resource_version = preconditions.get("resourceVersion")
    if body.get("dryRun"):
        ctx.body_dry_run = True
    return options


async def handle_delete(ctx: RequestContext) -> Response:
    options = await parse_delete_options(ctx)
    stored, deleted = await delete_object(ctx, ctx.info.name, options)
    # kube answers 202 only for a pending deletion that explicitly asked not to orphan dependents.
    status = 202 if not deleted and options.orphan_dependents is False else 200
    if deleted and not ctx.strategy.return_deleted_object:
        metadata = stored.obj().get("metadata", {})
        details = {"name": metadata.get("name"), "group": ctx.resource.group, "kind": ctx.resource.plural,
                   "uid": metadata.get("uid")}  # fmt: skip
        if not details["group"]:
            del details["group"]
        return value_response(ctx, success_status(details), status)
    return object_response(ctx, stored.data, stored._obj, status)


async def delete_object(ctx: RequestContext, name: str, options: DeleteOptions) -> tuple[Stored, bool]:
    """Delete one object; returns its final state and whether it is gone (else deletion is pending)."""
    resource = ctx.resource
    store = ctx.state.store
    key = (ctx.storage_key(), ctx.namespace, name)
    for _attempt in range(MAX_RETRIES):
        current = await store.get(*key)
        if current is None:
            raise not_found(resource.plural, name, resource.group)
        obj = current.obj()
        _check_preconditions(ctx, name, obj, options)
        await admit(ctx, "DELETE", None, obj)
        ctx.strategy.prepare_for_delete(obj)
        pending = _mark_for_deletion(obj, options)
        if ctx.dry_run:
            return current, not pending
        try:
            if pending:
                return await store.update(*key, obj, current.rv), False
            deleted = await store.delete(*key, obj, current.rv)
            await release_service(ctx.state, key[0], obj)
            return deleted, True
        except VersionConflict:
            continue
        except KeyNotFound:
            raise not_found(resource.plural, name, resource.group) from None
    raise conflict(resource.plural, name, resource.group, "the object kept changing during deletion")


def _check_preconditions(ctx: RequestContext, name: str, obj: dict[str, Any], options: DeleteOptions) -> None:
    metadata = obj.get("metadata", {})
    resource = ctx.resource
    if options.uid is not None and options.uid != metadata.get("uid"):
        raise conflict(
            resource.plural,
            name,
            resource.group,
            f"Precondition failed: UID in precondition: {options.uid}, UID in object meta: {metadata.get('uid')}",
        )
    if options.resource_version is not None and options.resource_version != metadata.get("resourceVersion"):
        raise conflict(
            resource.plural,
            name,
            resource.group,
            f"Precondition failed: ResourceVersion in precondition: {options.resource_version}, "
            f"ResourceVersion in object meta: {metadata.get('resourceVersion')}",
        )


def _mark_for_deletion(obj: dict[str, Any], options: DeleteOptions) -> bool:
    """Apply deletion to `obj` in place; True when the object must stay for now (finalizers, grace)."""
    metadata = obj.setdefault("metadata", {})
    finalizers = list(metadata.get("finalizers") or [])
    if options.propagation == "Orphan" and ORPHAN not in finalizers:
        finalizers.append(ORPHAN)
    elif options.propagation == "Foreground" and FOREGROUND not in finalizers:
        finalizers.append(FOREGROUND)
    already_deleting = bool(metadata.get("deletionTimestamp"))
    if already_deleting and not (metadata.get("finalizers") or []) and options.grace_seconds == 0:
        return False
    grace = _grace_period(obj, options)
    if finalizers != list(metadata.get("finalizers") or []):
        metadata["finalizers"] = finalizers
    if obj.get("kind") == "Namespace":
        obj.setdefault("status", {})["phase"] = "Terminating"
    if not pending_finalizers(obj) and not grace:
        return False
    if not already_deleting:
        metadata["deletionTimestamp"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + grace))
        metadata["deletionGracePeriodSeconds"] = grace
    elif grace < int(metadata.get("deletionGracePeriodSeconds") or 0):
        metadata["deletionGracePeriodSeconds"] = grace
    return True


def _grace_period(obj: dict[str, Any], options: DeleteOptions) -> int:
    """Only pods bound to a node are deleted gracefully: their kubelet must stop the containers first."""
    if obj.get("kind") != "Pod" or not obj.get("spec", {}).get("nodeName"):
        return 0
    if obj.get("status", {}).get("phase") in ("Succeeded", "Failed"):
        return 0
    if options.grace_seconds is not None:
        return options.grace_seconds
    return int(obj.get("spec", {}).get("terminationGracePeriodSeconds", 30))


async def handle_deletecollection(ctx: RequestContext) -> Response:
    options = await parse_delete_options(ctx)
    flt = request_filter(ctx)
    rv, rows, _ = await collect(ctx, flt, ctx.namespace or None, None, None)
    items = []
    for row in rows:
        name = orjson.loads(row)["metadata"]["name"]
        try:
            stored, _deleted = await delete_object(ctx, name, options)
        except ApiError as error:
            if error.code == 404:
                continue
            raise
        items.append(stored.obj())
    value = {
        "kind": ctx.resource.list_kind,
        "apiVersion": ctx.resource.api_version,
        "metadata": {"resourceVersion": str(rv)},
        "items": items,
    }
    return value_response(ctx, value)
