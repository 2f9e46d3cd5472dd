"""The OpenAPI documents kubectl reads: v3 index and group-version documents, v2 JSON and protobuf."""

from __future__ import annotations

from typing import Any

import orjson

from apiserver.http import openapi
from skiff.api import schema
from skiff.api.kinds import BUILTIN_RESOURCES, ResourceTable, ResourceType


def refs_in(node: Any) -> set[str]:
    if isinstance(node, dict):
        own = {node["$ref"]} if "$ref" in node else set()
        return own.union(*(refs_in(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(refs_in(item) for item in node))
    return set()


def patch_operations(paths: dict[str, Any]) -> list[dict[str, Any]]:
    return [item["patch"] for item in paths.values() if "patch" in item]


def test_v3_index_lists_group_versions_with_content_hashes() -> None:
    table = ResourceTable()
    index = openapi.openapi_v3_index(table)

    apps = index["paths"]["apis/apps/v1"]["serverRelativeURL"]
    rendered = openapi.openapi_v3_document_json(table, "apps", "v1")
    assert apps == f"/openapi/v3/apis/apps/v1?hash={rendered.etag}"
    assert index["paths"]["api/v1"]["serverRelativeURL"].startswith("/openapi/v3/api/v1?hash=")
    assert "apis/rbac.authorization.k8s.io/v1" in index["paths"]


def test_v3_document_serves_every_deployment_operation() -> None:
    document = openapi.openapi_v3_document(ResourceTable(), "apps", "v1")

    item = document["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]
    collection = document["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments"]
    assert document["openapi"].startswith("3.")
    assert {"get", "put", "patch", "delete", "parameters"} <= set(item)
    assert {"get", "post", "delete"} <= set(collection)
    assert collection["delete"]["x-kubernetes-action"] == "deletecollection"
    assert item["patch"]["x-kubernetes-group-version-kind"] == {
        "group": "apps",
        "kind": "Deployment",
        "version": "v1",
    }
    assert "/apis/apps/v1/deployments" in document["paths"]
    assert "/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale" in document["paths"]


def test_every_v3_patch_operation_offers_field_validation_and_patch_types() -> None:
    document = openapi.openapi_v3_document(ResourceTable(), "apps", "v1")

    for operation in patch_operations(document["paths"]):
        names = {(param["name"], param["in"]) for param in operation["parameters"]}
        assert ("fieldValidation", "query") in names
        assert operation["x-kubernetes-action"] == "patch"
        assert set(operation["requestBody"]["content"]) >= {
            "application/strategic-merge-patch+json",
            "application/merge-patch+json",
            "application/json-patch+json",
            "application/apply-patch+yaml",
        }


def test_v3_components_carry_kind_schemas_and_resolve_every_ref() -> None:
    document = openapi.openapi_v3_document(ResourceTable(), "apps", "v1")
    schemas = document["components"]["schemas"]

    deployment = schemas["io.k8s.api.apps.v1.Deployment"]
    assert {"group": "apps", "kind": "Deployment", "version": "v1"} in deployment["x-kubernetes-group-version-kind"]
    strategy = schemas["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]["strategy"]
    assert strategy["allOf"] == [{"$ref": "#/components/schemas/io.k8s.api.apps.v1.DeploymentStrategy"}]
    assert strategy["description"]
    prefix = "#/components/schemas/"
    assert {ref.removeprefix(prefix) for ref in refs_in(document)} <= set(schemas)
    assert schemas["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]["format"] == "int-or-string"


def test_operations_follow_the_verbs_each_resource_serves() -> None:
    core = openapi.openapi_v3_document(ResourceTable(), "", "v1")["paths"]

    assert set(core["/api/v1/namespaces/{namespace}/bindings"]) == {"post", "parameters"}
    assert "delete" not in core["/api/v1/namespaces"]
    assert "post" in core["/api/v1/namespaces/{namespace}/pods/{name}/eviction"]
    assert core["/api/v1/namespaces/{namespace}/pods/{name}/status"]["patch"]["x-kubernetes-group-version-kind"] == {
        "group": "",
        "kind": "Pod",
        "version": "v1",
    }


def test_unserved_group_versions_have_no_document() -> None:
    assert openapi.openapi_v3_document(ResourceTable(), "example.com", "v1") is None


def test_v2_document_has_definitions_paths_and_field_validation() -> None:
    document = openapi.openapi_v2_document(ResourceTable())

    assert document["swagger"] == "2.0"
    assert {ref.removeprefix("#/definitions/") for ref in refs_in(document)} <= set(document["definitions"])
    patches = patch_operations(document["paths"])
    assert len(patches) > 40
    for operation in patches:
        assert "fieldValidation" in {param["name"] for param in operation["parameters"]}
        assert "x-kubernetes-group-version-kind" in operation
    ports = document["definitions"]["io.k8s.api.core.v1.Container"]["properties"]["ports"]
    assert ports["x-kubernetes-patch-merge-key"] == "containerPort"


def read_fields(data: bytes) -> list[tuple[int, Any]]:
    """A minimal protobuf reader: (field number, int or bytes) pairs of one message."""
    fields, position = [], 0
    while position < len(data):
        key, position = read_varint(data, position)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value, position = read_varint(data, position)
        else:
            assert wire_type == 2
            length, position = read_varint(data, position)
            value, position = data[position : position + length], position + length
        fields.append((number, value))
    return fields


def read_varint(data: bytes, position: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return result, position


def test_v2_protobuf_is_a_gnostic_document() -> None:
    body = openapi.openapi_v2_protobuf(ResourceTable()).body
    document = dict(read_fields(body))

    assert document[1] == b"2.0"
    path_names = [dict(read_fields(entry))[1].decode() for number, entry in read_fields(document[8]) if number == 2]
    assert "/apis/apps/v1/namespaces/{namespace}/deployments/{name}" in path_names
    definition_names = {dict(read_fields(entry))[1].decode() for _, entry in read_fields(document[9])}
    assert "io.k8s.api.apps.v1.Deployment" in definition_names


def test_v2_protobuf_carries_the_gvk_extension_as_yaml() -> None:
    body = openapi.openapi_v2_protobuf(ResourceTable()).body
    paths = read_fields(dict(read_fields(body))[8])
    item = next(
        dict(read_fields(entry))[2]
        for number, entry in paths
        if number == 2 and dict(read_fields(entry))[1] == b"/apis/apps/v1/namespaces/{namespace}/deployments/{name}"
    )
    patch = dict(read_fields(item))[8]
    extensions = [dict(read_fields(value)) for number, value in read_fields(patch) if number == 13]
    gvk = next(ext for ext in extensions if ext[1] == b"x-kubernetes-group-version-kind")

    assert orjson.loads(dict(read_fields(gvk[2]))[2]) == {
        "group": "apps",
        "kind": "Deployment",
        "version": "v1",
    }


def test_v2_accept_header_selects_protobuf() -> None:
    assert openapi.wants_v2_protobuf("application/com.github.proto-openapi.spec.v2@v1.0+protobuf")
    assert not openapi.wants_v2_protobuf("application/json")
    assert "@" not in openapi.OPENAPI_V2_PROTOBUF


def test_documents_follow_a_growing_resource_table_and_new_schemas() -> None:
    table = ResourceTable(BUILTIN_RESOURCES)
    assert "apis/example.com/v1" not in openapi.openapi_v3_index(table)["paths"]
    widget = {
        "type": "object",
        "properties": {"spec": {"type": "object", "properties": {"size": {"type": "integer"}}}},
        "x-kubernetes-group-version-kind": [{"group": "example.com", "kind": "Widget", "version": "v1"}],
    }
    schema.register_definitions({"com.example.v1.Widget": widget})
    try:
        table.add(ResourceType("example.com", "v1", "Widget", "widgets", True))
        index = openapi.openapi_v3_index(table)
        document = openapi.openapi_v3_document(table, "example.com", "v1")

        assert "apis/example.com/v1" in index["paths"]
        assert "com.example.v1.Widget" in document["components"]["schemas"]
        assert "/apis/example.com/v1/namespaces/{namespace}/widgets/{name}" in document["paths"]
    finally:
        schema.unregister_kind("example.com", "v1", "Widget")
