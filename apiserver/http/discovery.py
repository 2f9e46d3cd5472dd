"""API discovery: legacy (/api, /apis, resource lists) and aggregated (apidiscovery.k8s.io v2, v2beta1)."""

from __future__ import annotations

from typing import Any

from skiff.api.kinds import ResourceTable, ResourceType

AGGREGATED_MEDIA = "application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList"

SUBRESOURCE_VERBS: dict[str, tuple[str, ...]] = {
    "status": ("get", "patch", "update"),
    "scale": ("get", "patch", "update"),
    "approval": ("get", "patch", "update"),
    "ephemeralcontainers": ("get", "patch", "update"),
    "binding": ("create",),
    "eviction": ("create",),
    "token": ("create",),
    "log": ("get",),
    "finalize": ("update",),
    "proxy": ("create", "delete", "get", "patch", "update"),
}

# The kind a subresource answers with, as (group, version, kind); None means the parent's own kind.
SUBRESOURCE_KINDS: dict[str, tuple[str, str, str] | None] = {
    "status": None,
    "approval": None,
    "ephemeralcontainers": None,
    "finalize": None,
    "log": None,
    "scale": ("autoscaling", "v1", "Scale"),
    "binding": ("", "v1", "Binding"),
    "eviction": ("policy", "v1", "Eviction"),
    "token": ("authentication.k8s.io", "v1", "TokenRequest"),
    "proxy": None,
}


def aggregated_version(accept: str | None) -> str | None:
    """The apidiscovery version asked for, only when the Accept header names that exact media type."""
    if not accept:
        return None
    for clause in accept.split(","):
        params = {p.strip() for p in clause.split(";")}
        if "g=apidiscovery.k8s.io" in params and "as=APIGroupDiscoveryList" in params:
            for version in ("v2", "v2beta1"):
                if f"v={version}" in params:
                    return version
    return None


def api_versions(server_address: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def _group_entry(group: str, versions: list[str]) -> dict[str, Any]:
    entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": entries, "preferredVersion": entries[0]}


def api_group_list(resources: ResourceTable) -> dict[str, Any]:
    groups = [_group_entry(g, vs) for g, vs in resources.group_versions().items() if g]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(resources: ResourceTable, group: str) -> dict[str, Any] | None:
    versions = resources.group_versions().get(group)
    if not versions:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group_entry(group, versions)}


def api_resource_list(resources: ResourceTable, group: str, version: str) -> dict[str, Any] | None:
    served = sorted(resources.in_group_version(group, version), key=lambda r: r.plural)
    if not served:
        return None
    entries: list[dict[str, Any]] = []
    for resource in served:
        entries.append(_legacy_entry(resource))
        for sub in resource.subresources:
            entries.append(_legacy_subresource_entry(resource, sub))
    group_version = f"{group}/{version}" if group else version
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": entries,
    }


def _legacy_entry(resource: ResourceType) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": resource.plural,
        "singularName": resource.singular,
        "namespaced": resource.namespaced,
        "kind": resource.kind,
        "verbs": list(resource.verbs),
    }
    if resource.short_names:
        entry["shortNames"] = list(resource.short_names)
    if resource.categories:
        entry["categories"] = list(resource.categories)
    return entry


def _legacy_subresource_entry(resource: ResourceType, sub: str) -> dict[str, Any]:
    group, version, kind = SUBRESOURCE_KINDS.get(sub) or (resource.group, resource.version, resource.kind)
    entry: dict[str, Any] = {
        "name": f"{resource.plural}/{sub}",
        "singularName": "",
        "namespaced": resource.namespaced,
        "kind": kind,
        "verbs": list(SUBRESOURCE_VERBS.get(sub, ("get",))),
    }
    if group != resource.group or version != resource.version:
        entry["group"], entry["version"] = group, version
    return entry


def aggregated_list(resources: ResourceTable, legacy_core: bool, version: str) -> dict[str, Any]:
    """The aggregated document for /api (core only) or /apis (every named group)."""
    items = []
    for group, versions in resources.group_versions().items():
        if (group == "") != legacy_core:
            continue
        items.append(
            {
                "metadata": {"name": group} if group else {},
                "versions": [_aggregated_version(resources, group, v) for v in versions],
            }
        )
    return {
        "kind": "APIGroupDiscoveryList",
        "apiVersion": f"apidiscovery.k8s.io/{version}",
        "metadata": {},
        "items": items,
    }


def _aggregated_version(resources: ResourceTable, group: str, version: str) -> dict[str, Any]:
    served = sorted(resources.in_group_version(group, version), key=lambda r: r.plural)
    return {
        "version": version,
        "resources": [_aggregated_resource(r) for r in served],
        "freshness": "Current",
    }


def _aggregated_resource(resource: ResourceType) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "resource": resource.plural,
        "responseKind": {"group": resource.group, "version": resource.version, "kind": resource.kind},
        "scope": resource.scope,
        "singularResource": resource.singular,
        "verbs": list(resource.verbs),
    }
    if resource.short_names:
        entry["shortNames"] = list(resource.short_names)
    if resource.categories:
        entry["categories"] = list(resource.categories)
    if resource.subresources:
        entry["subresources"] = [_aggregated_subresource(resource, sub) for sub in resource.subresources]
    return entry


def _aggregated_subresource(resource: ResourceType, sub: str) -> dict[str, Any]:
    group, version, kind = SUBRESOURCE_KINDS.get(sub) or (resource.group, resource.version, resource.kind)
    return {
        "subresource": sub,
        "responseKind": {"group": group, "version": version, "kind": kind},
        "verbs": list(SUBRESOURCE_VERBS.get(sub, ("get",))),
    }
