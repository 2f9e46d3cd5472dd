"""create, update and patch: decode → default → validate → admit → store."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from starlette.responses import Response

from apiserver.admission import admit
from apiserver.allocators import service_allocations
from apiserver.http.codec import (
    APPLY_PATCH,
    JSON_PATCH,
    MERGE_PATCH,
    PATCH_TYPES,
    STRATEGIC_PATCH,
    decode_object,
    dump_json,
    load_json,
    load_yaml,
    media_type,
    unsupported_media_type,
)
from apiserver.http.context import RequestContext
from apiserver.http.objects import (
    carry_update_metadata,
    check_metadata_shape,
    check_type_meta,
    deep_copy,
    now_rfc3339,
    pending_finalizers,
    prepare_create_metadata,
    same_content,
)
from apiserver.http.reads import read_object
from apiserver.http.responses import object_response
from apiserver.storage.records import KeyExists, KeyNotFound, Stored, VersionConflict
from skiff.api import schema, validation
from skiff.api.apply import server_side_apply
from skiff.api.errors import ApiError, already_exists, bad_request, invalid, not_found, stale_resource_version
from skiff.api.managedfields import record_update, reset_fields_for
from skiff.api.patch import apply_json_patch, apply_merge_patch, apply_strategic_merge_patch

MAX_CONFLICT_RETRIES = 8
Obj = dict[str, Any]


# -- shared steps --------------------------------------------------------------------------------------
def check_fields(ctx: RequestContext, obj: Obj, raw: bytes | None, patched: bool = False) -> None:
    """Server-side field validation: unknown and duplicate fields, per the fieldValidation parameter.
    Values of the wrong JSON type are refused whatever the mode, as decoding into a typed object does:
    400 for a request body, 422 for the result of a patch (`patched`)."""
    mode = ctx.field_validation
    resource = ctx.resource
    # Like decoding into a typed object, unknown fields never reach storage, whatever the mode.
    mistyped: list[tuple[str, Any, str]] = []
    unknown = ctx.strategy.prune_unknown_fields(obj, mistyped)
    if mistyped:
        path, value, expected = mistyped[0]
        problem = "json: " + schema.type_error_message(path, value, expected)
        if patched:
            raise invalid("", "", "", [validation.invalid("patch", value, problem)])
        kind = resource.kind
        raise bad_request(f'{kind} in version "{resource.version}" cannot be handled as a {kind}: {problem}')
    if mode == "Ignore":
        return
    problems = [f'unknown field "{path}"' for path in unknown]
    if raw is not None and raw[:1] == b"{":
        problems += [f'duplicate field "{path}"' for path in schema.duplicate_fields(raw)]
    if not problems:
        return
    if mode == "Strict":
        raise bad_request("strict decoding error: " + ", ".join(problems))
    ctx.warnings.extend(p for p in problems if p not in ctx.warnings)


def validate(ctx: RequestContext, obj: Obj, old: Obj | None) -> None:
    strategy = ctx.strategy
    causes = strategy.validate_metadata(obj)
    causes += strategy.validate(obj)
    # A binding is the one sanctioned change to a pod's spec.nodeName; it skips the update rules that
    # would otherwise freeze the pod spec.
    if old is not None and ctx.info.subresource != "binding":
        causes += strategy.validate_update(obj, old)
    if causes:
        name = obj.get("metadata", {}).get("name", "")
        raise invalid(ctx.resource.kind, name, ctx.resource.group, causes)


def patch_lookup(ctx: RequestContext) -> Any:
    resource = ctx.resource
    return schema.patch_meta_for(resource.group, resource.version, resource.kind)


def tracked_subresource(ctx: RequestContext) -> str:
    return ctx.info.subresource if ctx.info.subresource in ("status", "scale") else ""


def track_fields(ctx: RequestContext, new: Obj, old: Obj | None) -> None:
    subresource = tracked_subresource(ctx)
    record_update(
        new,
        old,
        ctx.field_manager,
        "Update",
        ctx.resource.api_version,
        now_rfc3339(),
        patch_lookup(ctx),
        subresource,
        ignored_fields=reset_fields_for(subresource, ctx.strategy.status_subresource),
    )


def check_namespace_matches(ctx: RequestContext, obj: Obj) -> None:
    metadata = obj.get("metadata", {})
    body_namespace = metadata.get("namespace")
    if ctx.resource.namespaced and body_namespace and body_namespace != ctx.namespace:
        raise bad_request("the namespace of the provided object does not match the namespace sent on the request")


# -- create --------------------------------------------------------------------------------------------
async def handle_create(ctx: RequestContext) -> Response:
    raw = await ctx.body()
    obj = decode_object(raw, ctx.request.headers.get("content-type"))
    check_fields(ctx, obj, raw)
    stored = await create_object(ctx, obj)
    return object_response(ctx, stored.data, stored._obj, 201)


async def create_object(ctx: RequestContext, obj: Obj, track: bool = True) -> Stored:
    """Create `obj`; `track=False` keeps managedFields that server-side apply already computed."""
    resource = ctx.resource
    managed = obj.get("metadata", {}).get("managedFields")
    check_type_meta(obj, resource)
    check_metadata_shape(obj)
    check_namespace_matches(ctx, obj)
    if resource.namespaced and not ctx.namespace:
        raise bad_request("the server could not find the requested resource: a namespace is required")
    metadata = prepare_create_metadata(obj, ctx.namespace)
    ctx.strategy.prepare_for_create(obj)
    ctx.strategy.default(obj)
    validate(ctx, obj, None)
    await admit(ctx, "CREATE", obj, None)
    if track:
        track_fields(ctx, obj, None)
    elif managed is not None:
        metadata["managedFields"] = managed
    name = metadata["name"]
    async with service_allocations(ctx, obj, None):
        if ctx.dry_run:
            return Stored(0, _dump(obj), obj)
        try:
            return await ctx.state.store.create(ctx.storage_key(), ctx.namespace, name, obj)
        except KeyExists:
            raise already_exists(resource.plural, name, resource.group) from None


def _dump(obj: Obj) -> bytes:
    return dump_json(obj)


# -- update --------------------------------------------------------------------------------------------
async def handle_update(ctx: RequestContext) -> Response:
    raw = await ctx.body()
    obj = decode_object(raw, ctx.request.headers.get("content-type"))
    check_fields(ctx, obj, raw)
    check_type_meta(obj, ctx.resource)
    check_metadata_shape(obj)
    check_namespace_matches(ctx, obj)
    body_name = obj["metadata"].get("name")
    if body_name != ctx.info.name:
        raise bad_request(f"the name of the object ({body_name}) does not match the name on the URL ({ctx.info.name})")
    requested_rv = _parse_rv(obj["metadata"].get("resourceVersion"))
    stored, status = await replace_object(ctx, lambda _old: deep_copy(obj), requested_rv, retry=False)
    return object_response(ctx, stored.data, stored._obj, status)


def _parse_rv(value: Any) -> int | None:
    if value in (None, ""):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise bad_request(f"resourceVersion: Invalid value: {value!r}: must be a number") from None


async def replace_object(
    ctx: RequestContext,
    mutate: Callable[[Obj], Obj],
    requested_rv: int | None,
    retry: bool = True,
    subresource: str | None = None,
) -> tuple[Stored, int]:
    """Read, mutate, validate and write back, retrying on conflicts unless the client pinned a version."""
    subresource = ctx.info.subresource if subresource is None else subresource
    for _attempt in range(MAX_CONFLICT_RETRIES):
        current = await read_object(ctx)
        old = current.obj()
        if requested_rv is not None and requested_rv != current.rv:
            raise stale_resource_version(ctx.resource.plural, ctx.info.name, ctx.resource.group)
        new = mutate(deep_copy(old))
        try:
            return await write_update(ctx, new, old, current, subresource)
        except VersionConflict:
            if requested_rv is not None or not retry:
                raise stale_resource_version(ctx.resource.plural, ctx.info.name, ctx.resource.group) from None
            await asyncio.sleep(0)
    raise stale_resource_version(ctx.resource.plural, ctx.info.name, ctx.resource.group)


async def write_update(
    ctx: RequestContext, new: Obj, old: Obj, current: Stored, subresource: str, track: bool = True
) -> tuple[Stored, int]:
    strategy = ctx.strategy
    managed = new.get("metadata", {}).get("managedFields")
    check_type_meta(new, ctx.resource)
    carry_update_metadata(new, old)
    if subresource == "status":
        strategy.prepare_for_status_update(new, old)
    elif subresource != "binding":  # a binding sets spec.nodeName and the PodScheduled condition together
        strategy.prepare_for_update(new, old)
    strategy.default(new)
    if subresource != "status" and strategy.generation_changed(new, old):
        new["metadata"]["generation"] = int(old.get("metadata", {}).get("generation", 1)) + 1
    validate(ctx, new, old)
    await admit(ctx, "UPDATE", new, old)
    new["metadata"]["resourceVersion"] = old["metadata"].get("resourceVersion")
    if not track and managed is not None:
        new["metadata"]["managedFields"] = managed
    # A value sealed with an older encryption key is written again even when unchanged (key rotation).
    if same_content(new, old) and not current.stale:
        return current, 200
    if track:
        track_fields(ctx, new, old)
    store = ctx.state.store
    key = (ctx.storage_key(), ctx.namespace, ctx.info.name)
    try:
        async with service_allocations(ctx, new, old):
            if ctx.dry_run:
                return Stored(current.rv, _dump(new), new), 200
            if _deletion_complete(new):
                return await store.delete(*key, new, current.rv), 200
            return await store.update(*key, new, current.rv), 200
    except KeyNotFound:
        raise not_found(ctx.resource.plural, ctx.info.name, ctx.resource.group) from None


def _deletion_complete(obj: Obj) -> bool:
    """An object being deleted goes away once its last finalizer is removed."""
    return bool(obj.get("metadata", {}).get("deletionTimestamp")) and not pending_finalizers(obj)


# -- patch ---------------------------------------------------------------------------------------------
async def handle_patch(ctx: RequestContext) -> Response:
    content_type = media_type(ctx.request.headers.get("content-type"))
    if content_type not in PATCH_TYPES:
        raise unsupported_media_type(content_type)
    raw = await ctx.body()
    if content_type == APPLY_PATCH:
        return await apply_patch(ctx, raw)
    patch = load_json(raw)
    requested_rv = None
    if isinstance(patch, dict):
        requested_rv = _parse_rv((patch.get("metadata") or {}).get("resourceVersion"))
    apply = _patcher(ctx, content_type, patch)

    def mutate(old: Obj) -> Obj:
        new = apply(old)
        if not isinstance(new, dict):
            raise bad_request("the patch must result in an object")
        check_fields(ctx, new, None, patched=True)
        return new

    stored, status = await replace_object(ctx, mutate, requested_rv)
    return object_response(ctx, stored.data, stored._obj, status)


def _patcher(ctx: RequestContext, content_type: str, patch: Any) -> Callable[[Obj], Obj]:
    if content_type == JSON_PATCH:
        return lambda old: apply_json_patch(old, patch)
    if not isinstance(patch, dict):
        raise bad_request("the patch must be a JSON object")
    if content_type == MERGE_PATCH:
        return lambda old: apply_merge_patch(old, patch)
    if content_type == STRATEGIC_PATCH and ctx.strategy.strategic_merge_patch:
        lookup = patch_lookup(ctx)
        return lambda old: apply_strategic_merge_patch(old, patch, lookup)
    raise unsupported_media_type(content_type)


async def apply_patch(ctx: RequestContext, raw: bytes) -> Response:
    """Server-side apply: create when absent, else merge the applied configuration by field ownership."""
    applied = load_yaml(raw)
    if not isinstance(applied, dict):
        raise bad_request("the applied configuration must be an object")
    manager = ctx.query.get("fieldManager")
    if not manager:
        raise bad_request("PATCH requests with an apply patch must set fieldManager")
    force = ctx.flag("force")
    check_fields(ctx, applied, None)
    lookup = patch_lookup(ctx)
    now = now_rfc3339()
    api_version = ctx.resource.api_version
    subresource = tracked_subresource(ctx)
    scope = {
        "subresource": subresource,
        "ignored_fields": reset_fields_for(subresource, ctx.strategy.status_subresource),
    }
    for _attempt in range(MAX_CONFLICT_RETRIES):
        current = await ctx.state.store.get(ctx.storage_key(), ctx.namespace, ctx.info.name)
        if current is None:
            obj = server_side_apply(None, applied, manager, force, api_version, now, lookup, **scope)
            obj.setdefault("metadata", {})["name"] = ctx.info.name
            try:
                stored = await create_object(ctx, obj, track=False)
            except ApiError as error:
                if error.reason == "AlreadyExists":
                    continue
                raise
            return object_response(ctx, stored.data, stored._obj, 201)
        old = current.obj()
        new = server_side_apply(deep_copy(old), applied, manager, force, api_version, now, lookup, **scope)
        try:
            stored, status = await write_update(ctx, new, old, current, ctx.info.subresource, track=False)
        except VersionConflict:
            continue
        return object_response(ctx, stored.data, stored._obj, status)
    raise stale_resource_version(ctx.resource.plural, ctx.info.name, ctx.resource.group)
