"""Swagger 2.0: one document of everything served (kubectl's source for `explain` and merge keys)."""

from __future__ import annotations

from typing import Any

from apiserver.http.openapi.paths import (
    OPENAPI_TITLE,
    OPENAPI_VERSION,
    QUERY_PARAMETERS,
    RESPONSE_TEXT,
    SECURITY_SCHEMES,
    Operation,
    definition_roots,
    group_version_paths,
    referenced_definitions,
    rewrite_refs,
)
from skiff.api import schema
from skiff.api.kinds import ResourceTable


def _v2_parameter(name: str, where: str = "query") -> dict[str, Any]:
    if where == "path":
        return {
            "uniqueItems": True,
            "type": "string",
            "description": f"name of the {name}",
            "name": name,
            "in": "path",
            "required": True,
        }
    kind, description = QUERY_PARAMETERS[name]
    return {"uniqueItems": True, "type": kind, "description": description, "name": name, "in": "query"}


def _v2_operation(operation: Operation, tag: str) -> dict[str, Any]:
    parameters = []
    if operation.body:
        parameters.append(
            {
                "name": "body",
                "in": "body",
                "required": True,
                "schema": {"$ref": f"#/definitions/{operation.body}"},
            }
        )
    parameters.extend(_v2_parameter(name) for name in operation.query)
    response_schema = {"$ref": f"#/definitions/{operation.response}"} if operation.response else {"type": "string"}
    responses: dict[str, Any] = {
        code: {"description": RESPONSE_TEXT[code], "schema": response_schema} for code in operation.response_codes
    }
    responses["401"] = {"description": "Unauthorized"}
    return {
        "description": operation.description,
        "consumes": list(operation.consumes),
        "produces": list(operation.produces),
        "schemes": ["https"],
        "tags": [tag],
        "operationId": operation.operation_id,
        "parameters": parameters,
        "responses": responses,
        "x-kubernetes-action": operation.action,
        "x-kubernetes-group-version-kind": operation.gvk,
    }


def build_v2_document(resources: ResourceTable) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    roots: set[str] = set()
    for group, versions in resources.group_versions().items():
        for version in versions:
            gv_paths = group_version_paths(resources, group, version)
            roots.update(definition_roots(gv_paths))
            for path, entry in gv_paths.items():
                item: dict[str, Any] = {op.method: _v2_operation(op, entry.tag) for op in entry.operations}
                item["parameters"] = [_v2_parameter(name, "path") for name in entry.path_parameters if name]
                item["parameters"].append(_v2_parameter("pretty"))
                paths[path] = item
    definitions = schema.all_definitions()
    return {
        "swagger": "2.0",
        "info": {"title": OPENAPI_TITLE, "version": OPENAPI_VERSION},
        "paths": paths,
        "definitions": {
            name: rewrite_refs(definitions[name], "#/definitions/", wrap_siblings=False)
            for name in referenced_definitions(sorted(roots))
        },
        "securityDefinitions": SECURITY_SCHEMES,
        "security": [{"BearerToken": []}],
    }
