"""OpenAPI 3.0: one document per group-version, listed in the /openapi/v3 index."""

from __future__ import annotations

from typing import Any

from apiserver.http.openapi.paths import (
    OPENAPI_TITLE,
    OPENAPI_VERSION,
    QUERY_PARAMETERS,
    RESPONSE_TEXT,
    SECURITY_SCHEMES,
    Operation,
    PathEntry,
    definition_roots,
    group_version_paths,
    gv_prefix,
    referenced_definitions,
    rewrite_refs,
)
from skiff.api import schema
from skiff.api.kinds import ResourceTable

# kube-openapi publishes these two differently in OpenAPI 3: as a oneOf of the accepted JSON types.
_V3_SPECIAL = {
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": {
        "format": "int-or-string",
        "oneOf": [{"type": "integer"}, {"type": "string"}],
    },
    "io.k8s.apimachinery.pkg.api.resource.Quantity": {"oneOf": [{"type": "string"}, {"type": "number"}]},
}


def _v3_schema(name: str, definition: dict[str, Any]) -> dict[str, Any]:
    if name in _V3_SPECIAL:
        special = dict(_V3_SPECIAL[name])
        if "description" in definition:
            special["description"] = definition["description"]
        return special
    return rewrite_refs(definition, "#/components/schemas/", wrap_siblings=True)


def _v3_parameter(name: str, where: str = "query") -> dict[str, Any]:
    if where == "path":
        return {
            "name": name,
            "in": "path",
            "required": True,
            "description": f"name of the {name}",
            "schema": {"type": "string", "uniqueItems": True},
        }
    kind, description = QUERY_PARAMETERS[name]
    return {
        "name": name,
        "in": "query",
        "description": description,
        "schema": {"type": kind, "uniqueItems": True},
    }


def _v3_content(name: str | None, media_types: tuple[str, ...]) -> dict[str, Any]:
    body_schema = {"$ref": f"#/components/schemas/{name}"} if name else {"type": "string"}
    return {media: {"schema": body_schema} for media in media_types}


def _v3_operation(operation: Operation, tag: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "tags": [tag],
        "description": operation.description,
        "operationId": operation.operation_id,
        "parameters": [_v3_parameter(name) for name in operation.query],
    }
    if operation.body:
        out["requestBody"] = {"content": _v3_content(operation.body, operation.consumes), "required": True}
    responses: dict[str, Any] = {
        code: {
            "description": RESPONSE_TEXT[code],
            "content": _v3_content(operation.response, operation.produces),
        }
        for code in operation.response_codes
    }
    responses["401"] = {"description": "Unauthorized"}
    out["responses"] = responses
    out["x-kubernetes-action"] = operation.action
    out["x-kubernetes-group-version-kind"] = operation.gvk
    return out


def _v3_paths(paths: dict[str, PathEntry]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path, entry in paths.items():
        item: dict[str, Any] = {}
        for operation in entry.operations:
            item[operation.method] = _v3_operation(operation, entry.tag)
        item["parameters"] = [_v3_parameter(name, "path") for name in entry.path_parameters if name]
        item["parameters"].append(_v3_parameter("pretty"))
        out[path] = item
    return out


def build_v3_document(resources: ResourceTable, group: str, version: str) -> dict[str, Any] | None:
    if not resources.in_group_version(group, version):
        return None
    paths = group_version_paths(resources, group, version)
    definitions = schema.all_definitions()
    schemas = {name: _v3_schema(name, definitions[name]) for name in referenced_definitions(definition_roots(paths))}
    return {
        "openapi": "3.0.0",
        "info": {"title": OPENAPI_TITLE, "version": OPENAPI_VERSION},
        "paths": _v3_paths(paths),
        "components": {"schemas": schemas, "securitySchemes": SECURITY_SCHEMES},
        "security": [{"BearerToken": []}],
    }


def v3_path_key(group: str, version: str) -> str:
    """The key of a group-version in the /openapi/v3 index: api/v1 or apis/<group>/<version>."""
    return gv_prefix(group, version).lstrip("/")
