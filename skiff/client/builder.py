"""Requests for the Kubernetes API: `RequestBuilder` turns a verb on a resource into method, path, query
and body following the API conventions. The sync and async clients in `skiff.client.rest` only send
what it builds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

import orjson

from skiff.api.kinds import BUILTINS, ResourceTable, ResourceType

# A resource named by its ResourceType or by (apiVersion, kind), e.g. ("apps/v1", "Deployment").
ResourceRef = ResourceType | tuple[str, str]
PatchType = Literal["merge", "json", "strategic", "apply"]
Query = list[tuple[str, str]]

PATCH_CONTENT_TYPES: dict[str, str] = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "apply": "application/apply-patch+yaml",
}
JSON = "application/json"
PARTIAL_OBJECT_METADATA = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"


def resource_path(
    resource: ResourceType, namespace: str | None = None, name: str | None = None, subresource: str = ""
) -> str:
    """`/api/v1/namespaces/{ns}/pods/{name}/{sub}` and its cluster-scoped and group forms."""
    parts = ["/apis", resource.group, resource.version] if resource.group else ["/api", resource.version]
    if resource.namespaced and namespace:
        parts += ["namespaces", quote(namespace, safe="")]
    parts.append(resource.plural)
    if name:
        parts.append(quote(name, safe=""))
    elif subresource:
        raise ValueError("a subresource needs the name of its object")
    if subresource:
        parts.append(subresource)
    return "/".join(parts)


@dataclass(frozen=True)
class ApiRequest:
    """One request, ready to send."""

    method: str
    path: str
    params: Query = field(default_factory=list)
    body: bytes | None = None
    content_type: str | None = None
    # Overrides the client's Accept header, e.g. for a server-side Table (`TABLE`).
    accept: str | None = None

    def headers(self) -> dict[str, str]:
        headers = {"Content-Type": self.content_type} if self.content_type else {}
        if self.accept:
            headers["Accept"] = self.accept
        return headers


def _query(**values: str | int | bool | None) -> Query:
    """Query parameters in API spelling; None means absent."""
    out: Query = []
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        out.append((key, str(value)))
    return out


def _dry_run(enabled: bool) -> str | None:
    return "All" if enabled else None


class RequestBuilder:
    """Turns API verbs into requests; shared by the sync and async clients."""

    def __init__(self, default_namespace: str = "default", resources: ResourceTable = BUILTINS) -> None:
        self.default_namespace = default_namespace
        self.resources = resources

    def resource(self, ref: ResourceRef) -> ResourceType:
        if isinstance(ref, ResourceType):
            return ref
        api_version, kind = ref
        found = self.resources.by_api_version(api_version, kind)
        if found is None:
            raise ValueError(f"unknown kind {kind!r} in {api_version!r}: pass its ResourceType instead")
        return found

    def _object_path(
        self, resource: ResourceType, namespace: str | None, name: str | None, subresource: str = ""
    ) -> str:
        return resource_path(resource, namespace or self.default_namespace, name, subresource)

    def _target(
        self, obj: Mapping[str, Any], resource: ResourceRef | None, namespace: str | None
    ) -> tuple[ResourceType, str | None]:
        """The resource and namespace an object is written to: explicit arguments win over its fields."""
        resolved = self.resource(resource or (obj.get("apiVersion", ""), obj.get("kind", "")))
        metadata = obj.get("metadata") or {}
        return resolved, namespace or metadata.get("namespace") or self.default_namespace

    def get(self, ref: ResourceRef, name: str, namespace: str | None, subresource: str = "") -> ApiRequest:
        return ApiRequest("GET", self._object_path(self.resource(ref), namespace, name, subresource))

    def list(
        self,
        ref: ResourceRef,
        namespace: str | None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
        continue_token: str | None = None,
        resource_version: str | None = None,
    ) -> ApiRequest:
        params = _query(
            labelSelector=label_selector,
            fieldSelector=field_selector,
            limit=limit,
            resourceVersion=resource_version,
            **{"continue": continue_token},
        )
        # Without a namespace a namespaced resource is listed across all namespaces.
        return ApiRequest("GET", resource_path(self.resource(ref), namespace), params)

    def watch(
        self,
        ref: ResourceRef,
        namespace: str | None,
        resource_version: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        allow_watch_bookmarks: bool = True,
        timeout_seconds: int | None = None,
    ) -> ApiRequest:
        params = _query(
            watch=True,
            resourceVersion=resource_version,
            labelSelector=label_selector,
            fieldSelector=field_selector,
            allowWatchBookmarks=allow_watch_bookmarks or None,
            timeoutSeconds=timeout_seconds,
        )
        return ApiRequest("GET", resource_path(self.resource(ref), namespace), params)

    def create(
        self,
        obj: Mapping[str, Any],
        resource: ResourceRef | None = None,
        namespace: str | None = None,
        name: str | None = None,
        subresource: str = "",
        field_manager: str | None = None,
        dry_run: bool = False,
    ) -> ApiRequest:
        resolved, target_namespace = self._target(obj, resource, namespace)
        path = resource_path(resolved, target_namespace, name, subresource)
        params = _query(fieldManager=field_manager, dryRun=_dry_run(dry_run))
        return ApiRequest("POST", path, params, orjson.dumps(obj), JSON)

    def update(
        self,
        obj: Mapping[str, Any],
        namespace: str | None = None,
        subresource: str = "",
        field_manager: str | None = None,
        dry_run: bool = False,
    ) -> ApiRequest:
        resolved, target_namespace = self._target(obj, None, namespace)
        name = (obj.get("metadata") or {}).get("name")
        if not name:
            raise ValueError("an update needs metadata.name")
        path = resource_path(resolved, target_namespace, name, subresource)
        params = _query(fieldManager=field_manager, dryRun=_dry_run(dry_run))
        return ApiRequest("PUT", path, params, orjson.dumps(obj), JSON)

    def patch(
        self,
        ref: ResourceRef,
        name: str,
        patch: Any,
        namespace: str | None = None,
        patch_type: PatchType = "merge",
        field_manager: str | None = None,
        force: bool | None = None,
        subresource: str = "",
        dry_run: bool = False,
    ) -> ApiRequest:
        if patch_type not in PATCH_CONTENT_TYPES:
            raise ValueError(f"unknown patch type {patch_type!r}")
        if patch_type == "apply" and not field_manager:
            raise ValueError("server-side apply needs a field manager")
        if force is not None and patch_type != "apply":
            raise ValueError("force applies only to server-side apply")
        # JSON is YAML, so an apply patch is sent as JSON under the apply media type.
        body = patch if isinstance(patch, bytes) else orjson.dumps(patch)
        params = _query(fieldManager=field_manager, force=force, dryRun=_dry_run(dry_run))
        path = self._object_path(self.resource(ref), namespace, name, subresource)
        return ApiRequest("PATCH", path, params, body, PATCH_CONTENT_TYPES[patch_type])

    def delete(
        self,
        ref: ResourceRef,
        name: str,
        namespace: str | None = None,
        propagation_policy: str | None = None,
        grace_period_seconds: int | None = None,
        preconditions: Mapping[str, str] | None = None,
        dry_run: bool = False,
    ) -> ApiRequest:
        options: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if propagation_policy is not None:
            options["propagationPolicy"] = propagation_policy
        if grace_period_seconds is not None:
            options["gracePeriodSeconds"] = grace_period_seconds
        if preconditions:
            options["preconditions"] = dict(preconditions)
        if dry_run:
            options["dryRun"] = ["All"]
        path = self._object_path(self.resource(ref), namespace, name)
        return ApiRequest("DELETE", path, [], orjson.dumps(options), JSON)
