"""The path and operation model both OpenAPI documents are rendered from.

Every resource of a group-version becomes paths (collection, item, watch, subresources), each with the
operations its verbs allow, named and described the way kube-openapi names them. The definitions an
operation refers to, and every definition they reach, are what a document carries in its schemas.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from skiff.api import schema
from skiff.api.kinds import ResourceTable, ResourceType

OPENAPI_TITLE = "Kubernetes"
OPENAPI_VERSION = "v1.33.0"

PATCH_MEDIA_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
)
RESPONSE_MEDIA_TYPES = ("application/json", "application/yaml", "application/vnd.kubernetes.protobuf")
WATCH_MEDIA_TYPES = (
    "application/json",
    "application/yaml",
    "application/vnd.kubernetes.protobuf",
    "application/json;stream=watch",
    "application/vnd.kubernetes.protobuf;stream=watch",
)
STATUS = "io.k8s.apimachinery.pkg.apis.meta.v1.Status"
DELETE_OPTIONS = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions"
WATCH_EVENT = "io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent"

# Query parameters: name -> (type, description).
QUERY_PARAMETERS: dict[str, tuple[str, str]] = {
    "pretty": ("string", "If 'true', the output is indented."),
    "dryRun": ("string", "When set to All, the request is validated and admitted but nothing is stored."),
    "fieldManager": ("string", "The name of the actor making the change, recorded in managedFields."),
    "fieldValidation": (
        "string",
        "What to do with unknown or duplicate fields in the body: Ignore drops them, Warn drops them "
        "and returns a Warning header for each, Strict rejects the request with 400 Bad Request.",
    ),
    "force": ("boolean", "For apply requests: take ownership of fields other managers own."),
    "allowWatchBookmarks": ("boolean", "Ask a watch for BOOKMARK events that carry the latest version."),
    "continue": ("string", "The continue token of the previous page of a chunked list."),
    "fieldSelector": ("string", "Only return objects whose fields match this selector."),
    "labelSelector": ("string", "Only return objects whose labels match this selector."),
    "limit": ("integer", "The most objects to return in one page; the rest follow via continue."),
    "resourceVersion": ("string", "Which version of the data the request must see; see the API conventions."),
    "resourceVersionMatch": ("string", "How resourceVersion is applied to a list: Exact or NotOlderThan."),
    "sendInitialEvents": ("boolean", "Start a watch with synthetic ADDED events for the current state."),
    "timeoutSeconds": ("integer", "End a list or watch call after this many seconds."),
    "watch": ("boolean", "Watch for changes instead of listing."),
    "gracePeriodSeconds": ("integer", "Seconds the object has to terminate before it is deleted."),
    "orphanDependents": ("boolean", "Deprecated: use propagationPolicy."),
    "propagationPolicy": ("string", "How dependents are deleted: Orphan, Background or Foreground."),
}
LIST_QUERY = (
    "allowWatchBookmarks",
    "continue",
    "fieldSelector",
    "labelSelector",
    "limit",
    "resourceVersion",
    "resourceVersionMatch",
    "sendInitialEvents",
    "timeoutSeconds",
    "watch",
)
WRITE_QUERY = ("dryRun", "fieldManager", "fieldValidation")
DELETE_QUERY = ("dryRun", "gracePeriodSeconds", "orphanDependents", "propagationPolicy")


@dataclass
class Operation:
    """One HTTP operation on a path, in terms both document versions can render."""

    method: str
    action: str
    operation_id: str
    description: str
    gvk: dict[str, str]
    response: str | None
    response_codes: tuple[str, ...] = ("200",)
    query: tuple[str, ...] = ()
    body: str | None = None
    consumes: tuple[str, ...] = ("*/*",)
    produces: tuple[str, ...] = RESPONSE_MEDIA_TYPES


@dataclass
class PathEntry:
    path_parameters: tuple[str, ...]
    operations: list[Operation] = field(default_factory=list)
    tag: str = ""


RESPONSE_TEXT = {"200": "OK", "201": "Created", "202": "Accepted"}
SECURITY_SCHEMES = {
    "BearerToken": {
        "type": "apiKey",
        "description": "Bearer token authentication: 'Authorization: Bearer <token>'.",
        "name": "authorization",
        "in": "header",
    }
}


# ---------------------------------------------------------------------------------------------------
# Operations of a group-version


def gv_prefix(group: str, version: str) -> str:
    return f"/apis/{group}/{version}" if group else f"/api/{version}"


def _operation_prefix(resource: ResourceType) -> str:
    """The operationId infix kube uses, e.g. AppsV1 or CoreV1 or RbacAuthorizationV1."""
    group = resource.group.removesuffix(".k8s.io").split(".") if resource.group else ["core"]
    return "".join(part.capitalize() for part in group) + resource.version.capitalize()


def _tag(group: str, version: str) -> str:
    base = group.removesuffix(".k8s.io").replace(".", "_") if group else "core"
    return f"{base}_{version}"


class _GroupVersionPaths:
    """Collects the paths and operations of every resource in one group-version."""

    def __init__(self, group: str, version: str) -> None:
        self.prefix = gv_prefix(group, version)
        self.tag = _tag(group, version)
        self.paths: dict[str, PathEntry] = {}

    def add(self, path: str, path_parameters: tuple[str, ...], operation: Operation) -> None:
        entry = self.paths.setdefault(path, PathEntry(path_parameters, tag=self.tag))
        entry.operations.append(operation)

    def add_resource(self, resource: ResourceType) -> None:
        kind_name = schema.definition_name_for(resource.group, resource.version, resource.kind)
        list_name = schema.definition_name_for(resource.group, resource.version, resource.list_kind)
        ns = "/namespaces/{namespace}" if resource.namespaced else ""
        ns_params = ("namespace",) if resource.namespaced else ()
        collection = f"{self.prefix}{ns}/{resource.plural}"
        item = collection + "/{name}"
        gvk = {"group": resource.group, "kind": resource.kind, "version": resource.version}
        names = _OperationNames(resource)
        verbs = set(resource.verbs)
        for path, params, operation in _collection_operations(resource, verbs, names, gvk, kind_name, list_name):
            self.add(path or collection, params or ns_params, operation)
        for path, params, operation in _watch_operations(resource, verbs, names, gvk, self.prefix):
            self.add(path, params, operation)
        for operation in _item_operations(verbs, names, gvk, kind_name):
            self.add(item, ("name", *ns_params), _patch_types_of(resource, operation))
        for subresource in resource.subresources:
            for operation in _subresource_operations(resource, subresource, verbs, names, gvk, kind_name):
                self.add(f"{item}/{subresource}", ("name", *ns_params), _patch_types_of(resource, operation))


def _patch_types_of(resource: ResourceType, operation: Operation) -> Operation:
    """Custom resources take no strategic merge patch (ResourceType.extra says so); kubectl apply reads
    the PATCH operation's media types to choose between a strategic and a JSON merge patch."""
    if operation.method == "patch" and resource.extra.get("strategicMergePatch") == "false":
        operation.consumes = tuple(media for media in operation.consumes if "strategic" not in media)
    return operation


class _OperationNames:
    """operationIds in kube's style: listAppsV1NamespacedDeployment, readCoreV1Namespace, …"""

    def __init__(self, resource: ResourceType) -> None:
        self.infix = _operation_prefix(resource)
        self.scope = "Namespaced" if resource.namespaced else ""
        self.kind = resource.kind

    def __call__(self, verb: str, suffix: str = "", scope: str | None = None) -> str:
        used_scope = self.scope if scope is None else scope
        return f"{verb}{self.infix}{used_scope}{self.kind}{suffix}"


def _collection_operations(
    resource: ResourceType,
    verbs: set[str],
    names: _OperationNames,
    gvk: dict[str, str],
    kind_name: str | None,
    list_name: str | None,
) -> Iterator[tuple[str, tuple[str, ...], Operation]]:
    kind = resource.kind
    if "list" in verbs:
        yield (
            "",
            (),
            Operation(
                "get",
                "list",
                names("list"),
                f"list or watch objects of kind {kind}",
                gvk,
                list_name,
                query=LIST_QUERY,
                produces=WATCH_MEDIA_TYPES,
            ),
        )
        if resource.namespaced:
            all_path = f"{gv_prefix(resource.group, resource.version)}/{resource.plural}"
            yield (
                all_path,
                ("",),
                Operation(
                    "get",
                    "list",
                    names("list", "ForAllNamespaces", ""),
                    f"list or watch objects of kind {kind}",
                    gvk,
                    list_name,
                    query=LIST_QUERY,
                    produces=WATCH_MEDIA_TYPES,
                ),
            )
    if "create" in verbs:
        yield (
            "",
            (),
            Operation(
                "post",
                "post",
                names("create"),
                f"create a {kind}",
                gvk,
                kind_name,
                ("200", "201", "202"),
                WRITE_QUERY,
                kind_name,
            ),
        )
    if "deletecollection" in verbs:
        yield (
            "",
            (),
            Operation(
                "delete",
                "deletecollection",
                names("deleteCollection"),
                f"delete collection of {kind}",
                gvk,
                STATUS,
                query=DELETE_QUERY + LIST_QUERY,
                body=DELETE_OPTIONS,
            ),
        )


def _watch_operations(
    resource: ResourceType, verbs: set[str], names: _OperationNames, gvk: dict[str, str], prefix: str
) -> Iterator[tuple[str, tuple[str, ...], Operation]]:
    if "watch" not in verbs:
        return
    ns = "/namespaces/{namespace}" if resource.namespaced else ""
    ns_params = ("namespace",) if resource.namespaced else ()
    collection = f"{prefix}/watch{ns}/{resource.plural}"
    kind = resource.kind
    yield (
        collection,
        ns_params,
        Operation(
            "get",
            "watchlist",
            names("watch", "List"),
            f"watch changes to a list of {kind}",
            gvk,
            WATCH_EVENT,
            query=LIST_QUERY,
            produces=WATCH_MEDIA_TYPES,
        ),
    )
    yield (
        collection + "/{name}",
        ("name", *ns_params),
        Operation(
            "get",
            "watch",
            names("watch"),
            f"watch changes to an object of kind {kind}",
            gvk,
            WATCH_EVENT,
            query=LIST_QUERY,
            produces=WATCH_MEDIA_TYPES,
        ),
    )


def _item_operations(
    verbs: set[str], names: _OperationNames, gvk: dict[str, str], kind_name: str | None
) -> Iterator[Operation]:
    kind = gvk["kind"]
    if "get" in verbs:
        yield Operation("get", "get", names("read"), f"read the specified {kind}", gvk, kind_name)
    if "update" in verbs:
        yield Operation(
            "put",
            "put",
            names("replace"),
            f"replace the specified {kind}",
            gvk,
            kind_name,
            ("200", "201"),
            WRITE_QUERY,
            kind_name,
        )
    if "patch" in verbs:
        yield _patch_operation(names("patch"), f"partially update the specified {kind}", gvk, kind_name)
    if "delete" in verbs:
        yield Operation(
            "delete",
            "delete",
            names("delete"),
            f"delete a {kind}",
            gvk,
            STATUS,
            ("200", "202"),
            DELETE_QUERY,
            DELETE_OPTIONS,
        )


def _patch_operation(operation_id: str, description: str, gvk: dict[str, str], name: str | None) -> Operation:
    return Operation(
        "patch",
        "patch",
        operation_id,
        description,
        gvk,
        name,
        ("200", "201"),
        (*WRITE_QUERY, "force"),
        "io.k8s.apimachinery.pkg.apis.meta.v1.Patch",
        PATCH_MEDIA_TYPES,
    )


# Subresources whose operations mirror the parent's get/update/patch, with the kind they carry.
_MIRRORED_SUBRESOURCES: dict[str, tuple[str, str, str] | None] = {
    "status": None,
    "approval": None,
    "ephemeralcontainers": None,
    "scale": ("autoscaling", "v1", "Scale"),
}
# Subresources that are a single create-like call: verb suffix, body kind.
_POST_SUBRESOURCES: dict[str, tuple[str, str, str]] = {
    "binding": ("", "v1", "Binding"),
    "eviction": ("policy", "v1", "Eviction"),
    "token": ("authentication.k8s.io", "v1", "TokenRequest"),
}


def _subresource_operations(
    resource: ResourceType,
    subresource: str,
    verbs: set[str],
    names: _OperationNames,
    parent_gvk: dict[str, str],
    kind_name: str | None,
) -> Iterator[Operation]:
    suffix = subresource.capitalize()
    if subresource in _MIRRORED_SUBRESOURCES:
        carried = _MIRRORED_SUBRESOURCES[subresource]
        gvk = dict(zip(("group", "version", "kind"), carried, strict=True)) if carried else parent_gvk
        name = schema.definition_name_for(*carried) if carried else kind_name
        what = f"{subresource} of the specified {resource.kind}"
        if "get" in verbs:
            yield Operation("get", "get", names("read", suffix), f"read {what}", gvk, name)
        if "update" in verbs:
            yield Operation(
                "put",
                "put",
                names("replace", suffix),
                f"replace {what}",
                gvk,
                name,
                ("200", "201"),
                WRITE_QUERY,
                name,
            )
        if "patch" in verbs:
            yield _patch_operation(names("patch", suffix), f"partially update {what}", gvk, name)
    elif subresource in _POST_SUBRESOURCES:
        carried = _POST_SUBRESOURCES[subresource]
        gvk = dict(zip(("group", "version", "kind"), carried, strict=True))
        name = schema.definition_name_for(*carried)
        yield Operation(
            "post",
            "post",
            names("create", suffix),
            f"create {subresource} of a {resource.kind}",
            gvk,
            name,
            ("200", "201", "202"),
            WRITE_QUERY,
            name,
        )
    elif subresource == "finalize" and "update" in verbs:
        yield Operation(
            "put",
            "put",
            names("replace", suffix),
            f"replace finalize of the specified {resource.kind}",
            parent_gvk,
            kind_name,
            ("200", "201"),
            WRITE_QUERY,
            kind_name,
        )
    elif subresource == "log":
        yield Operation(
            "get",
            "get",
            names("read", "Log"),
            f"read log of the specified {resource.kind}",
            parent_gvk,
            None,
            produces=("text/plain", "application/json"),
        )


def group_version_paths(resources: ResourceTable, group: str, version: str) -> dict[str, PathEntry]:
    collector = _GroupVersionPaths(group, version)
    for resource in sorted(resources.in_group_version(group, version), key=lambda r: r.plural):
        collector.add_resource(resource)
    return collector.paths


def referenced_definitions(roots: list[str]) -> list[str]:
    """The named definitions and every definition they reach, in a stable order."""
    definitions = schema.all_definitions()
    seen: dict[str, None] = {}
    pending = list(roots)
    while pending:
        name = pending.pop()
        if name in seen or name not in definitions:
            continue
        seen[name] = None
        pending.extend(_refs_in(definitions[name]))
    return sorted(seen)


def _refs_in(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value.rsplit("/", 1)[-1]
            else:
                yield from _refs_in(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs_in(item)


def definition_roots(paths: dict[str, PathEntry]) -> list[str]:
    roots = {STATUS}
    for entry in paths.values():
        for operation in entry.operations:
            roots.update(name for name in (operation.response, operation.body) if name)
    return sorted(roots)


# ---------------------------------------------------------------------------------------------------
# Schema rewriting


def rewrite_refs(node: Any, prefix: str, wrap_siblings: bool) -> Any:
    """Copy a schema with bare `$ref` names made into `prefix + name`. With wrap_siblings (OpenAPI 3),
    a `$ref` with sibling keys becomes `allOf: [{$ref}]` beside them, since 3.0 ignores `$ref` siblings."""
    if isinstance(node, list):
        return [rewrite_refs(item, prefix, wrap_siblings) for item in node]
    if not isinstance(node, dict):
        return node
    # A "$ref" key holding a schema is a property of that name (JSONSchemaProps has one), not a reference.
    is_ref = isinstance(node.get("$ref"), str)
    out = {
        key: rewrite_refs(value, prefix, wrap_siblings) for key, value in node.items() if key != "$ref" or not is_ref
    }
    if is_ref:
        ref = {"$ref": prefix + node["$ref"].rsplit("/", 1)[-1]}
        if wrap_siblings and out:
            out["allOf"] = [ref]
        else:
            out.update(ref)
    return out
