"""Subresources that are not plain views of the object: scale, binding and namespace finalize."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from apiserver.http.codec import (
    JSON_PATCH,
    MERGE_PATCH,
    STRATEGIC_PATCH,
    decode_object,
    load_json,
    media_type,
    unsupported_media_type,
)
from apiserver.http.context import RequestContext
from apiserver.http.objects import now_rfc3339
from apiserver.http.reads import read_object
from apiserver.http.responses import success_status, value_response
from apiserver.http.writes import replace_object
from skiff.api.errors import ApiError, Cause, bad_request, conflict, invalid
from skiff.api.patch import apply_json_patch, apply_merge_patch, apply_strategic_merge_patch
from skiff.api.patchmeta import no_patch_meta
from skiff.api.selectors import selector_to_string

Obj = dict[str, Any]


# -- scale ---------------------------------------------------------------------------------------------
DEFAULT_SCALE_PATHS = (".spec.replicas", ".status.replicas", ".spec.selector")


def _path_value(obj: Obj, path: str) -> Any:
    value: Any = obj
    for part in path.strip(".").split(".") if path else ():
        value = value.get(part) if isinstance(value, dict) else None
    return value if path else None


def _set_path_value(obj: Obj, path: str, value: Any) -> None:
    *parents, last = path.strip(".").split(".")
    for part in parents:
        obj = obj.setdefault(part, {})
    obj[last] = value


def scale_of(obj: Obj, paths: tuple[str, str, str] = DEFAULT_SCALE_PATHS) -> Obj:
    """The autoscaling/v1 Scale view of an object; `paths` say where replicas and the selector live."""
    spec_path, status_path, selector_path = paths
    metadata = obj.get("metadata", {})
    selector = _path_value(obj, selector_path)
    status: Obj = {"replicas": int(_path_value(obj, status_path) or 0)}
    if selector:
        status["selector"] = selector_to_string(selector) if isinstance(selector, dict) else str(selector)
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            key: metadata[key]
            for key in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if key in metadata
        },
        "spec": {"replicas": int(_path_value(obj, spec_path) or 0)},
        "status": status,
    }


async def handle_scale(ctx: RequestContext) -> Response:
    paths = ctx.strategy.scale_paths
    if ctx.info.verb == "get":
        stored = await read_object(ctx)
        return value_response(ctx, scale_of(stored.obj(), paths))
    raw = await ctx.body()
    content_type = media_type(ctx.request.headers.get("content-type"))
    if ctx.info.verb == "update":
        wanted = decode_object(raw, content_type)
        requested = wanted.get("metadata", {}).get("resourceVersion") or None
        requested_rv = int(requested) if requested and str(requested).isdigit() else None
        apply = lambda scale: wanted  # noqa: E731 - a replacement ignores the current scale
    else:
        patch = load_json(raw)
        requested_rv = None
        apply = _scale_patcher(content_type, patch)

    def mutate(obj: Obj) -> Obj:
        new_scale = apply(scale_of(obj, paths))
        replicas = new_scale.get("spec", {}).get("replicas")
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise invalid(
                "Scale",
                ctx.info.name,
                "autoscaling",
                [
                    Cause(
                        "FieldValueInvalid",
                        f"Invalid value: {replicas!r}: must be greater than or equal to 0",
                        "spec.replicas",
                    )
                ],
            )
        _set_path_value(obj, paths[0], replicas)
        return obj

    stored, _ = await replace_object(ctx, mutate, requested_rv, subresource="scale")
    return value_response(ctx, scale_of(stored.obj(), paths))


def _scale_patcher(content_type: str, patch: Any) -> Any:
    if content_type == JSON_PATCH:
        return lambda scale: apply_json_patch(scale, patch)
    if content_type == MERGE_PATCH:
        return lambda scale: apply_merge_patch(scale, patch)
    if content_type == STRATEGIC_PATCH:
        return lambda scale: apply_strategic_merge_patch(scale, patch, no_patch_meta)
    raise unsupported_media_type(content_type)


# -- binding -------------------------------------------------------------------------------------------
async def handle_binding(ctx: RequestContext, pod_name: str | None = None) -> Response:
    """Assign a pod to a node, once: what the scheduler does through `pods/binding`."""
    binding = decode_object(await ctx.body(), ctx.request.headers.get("content-type"))
    name = pod_name or binding.get("metadata", {}).get("name", "")
    target = binding.get("target") or {}
    node = target.get("name")
    if not node:
        raise invalid("Binding", name, "", [Cause("FieldValueRequired", "Required value", "target.name")])
    if pod_name and binding.get("metadata", {}).get("name", pod_name) != pod_name:
        raise bad_request("the name of the binding does not match the pod")
    ctx.info.name = name

    def mutate(pod: Obj) -> Obj:
        current = pod.get("spec", {}).get("nodeName")
        if current:
            raise conflict("pods", name, "", f'pod {name} is already assigned to node "{current}"')
        if pod.get("metadata", {}).get("deletionTimestamp"):
            raise conflict("pods", name, "", "pod is being deleted, cannot be assigned to a host")
        pod.setdefault("spec", {})["nodeName"] = node
        _set_scheduled_condition(pod)
        return pod

    await replace_object(ctx, mutate, None, subresource="binding")
    return value_response(ctx, success_status(), 201)


def _set_scheduled_condition(pod: Obj) -> None:
    conditions = [c for c in pod.setdefault("status", {}).get("conditions", []) if c.get("type") != "PodScheduled"]
    conditions.append(
        {"type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": now_rfc3339()}
    )
    pod["status"]["conditions"] = conditions


# -- namespace finalize --------------------------------------------------------------------------------
async def handle_finalize(ctx: RequestContext) -> Response:
    wanted = decode_object(await ctx.body(), ctx.request.headers.get("content-type"))
    finalizers = wanted.get("spec", {}).get("finalizers") or []
    if not isinstance(finalizers, list):
        raise bad_request("spec.finalizers must be a list")

    def mutate(namespace: Obj) -> Obj:
        namespace.setdefault("spec", {})["finalizers"] = finalizers
        if not finalizers:
            namespace["spec"].pop("finalizers")
        return namespace

    stored, _ = await replace_object(ctx, mutate, None, subresource="finalize")
    return value_response(ctx, stored.obj())


def unsupported_subresource(ctx: RequestContext) -> ApiError:
    return ApiError(
        405 if ctx.resource.has_subresource(ctx.info.subresource) else 404,
        "MethodNotAllowed" if ctx.resource.has_subresource(ctx.info.subresource) else "NotFound",
        f"the server does not allow this method on the requested resource ({ctx.info.resource}/{ctx.info.subresource})",
    )


async def handle_legacy_binding(ctx: RequestContext) -> Response:
    """POST /namespaces/{ns}/bindings: the older form of pods/{name}/binding, naming the pod in the body."""
    pods = ctx.state.resources.by_path("", "v1", "pods")
    assert pods is not None
    ctx.resource, ctx.strategy = pods, ctx.state.strategy(pods)
    ctx.info.resource, ctx.info.subresource = "pods", "binding"
    return await handle_binding(ctx, None)
