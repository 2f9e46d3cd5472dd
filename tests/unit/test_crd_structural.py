"""Structural schemas of custom resources: kube-worded validation messages, pruning, defaulting, the
checks on a CRD's own schema, and the JSONPath subset of printer columns."""

from __future__ import annotations

from typing import Any

from apiserver.crd import jsonpath, structural

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "required": ["size"],
            "properties": {
                "size": {"type": "integer", "minimum": 1, "maximum": 10, "exclusiveMaximum": False},
                "ratio": {"type": "number", "exclusiveMinimum": True, "minimum": 0},
                "name": {"type": "string", "minLength": 2, "maxLength": 5, "pattern": "^[a-z]+$"},
                "email": {"type": "string", "format": "email"},
                "mode": {"type": "string", "enum": ["fast", "slow"], "default": "slow"},
                "maybe": {"type": "string", "nullable": True},
                "items": {"type": "array", "items": {"type": "string"}, "minItems": 1, "uniqueItems": True},
                "template": {
                    "type": "object",
                    "x-kubernetes-embedded-resource": True,
                    "properties": {"spec": {"type": "object", "properties": {"x": {"type": "string"}}}},
                },
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        }
    },
}


def messages(obj: dict[str, Any]) -> list[str]:
    return [f"{c.field}: {c.message}" for c in structural.validate(SCHEMA, obj)]


def test_values_are_checked_with_kubes_wording() -> None:
    found = messages(
        {
            "spec": {
                "size": 11,
                "ratio": 0,
                "name": "ABCDEFG",
                "email": "nope",
                "mode": "medium",
                "items": ["a", "a"],
                "labels": {"a": 1},
            }
        }
    )
    assert "spec.size: Invalid value: 11: spec.size in body should be less than or equal to 10" in found
    assert "spec.ratio: Invalid value: 0: spec.ratio in body should be greater than 0" in found
    assert "spec.name: Too long: may not be more than 5 bytes" in found
    assert "spec.name: Invalid value: \"ABCDEFG\": spec.name in body should match '^[a-z]+$'" in found
    assert 'spec.email: Invalid value: "nope": spec.email in body must be of type email: "nope"' in found
    assert 'spec.mode: Unsupported value: "medium": supported values: "fast", "slow"' in found
    assert 'spec.items[1]: Duplicate value: "a"' in found
    assert 'spec.labels.a: Invalid value: "integer": spec.labels.a in body must be of type string: "integer"' in found


def test_required_null_and_embedded_resources() -> None:
    found = messages({"spec": {"maybe": None, "name": None, "template": {"spec": {}}, "items": []}})
    assert "spec.size: Required value" in found
    assert 'spec.name: Invalid value: "null": spec.name in body must be of type string: "null"' in found
    assert "spec.template.apiVersion: Required value: must not be empty" in found
    assert "spec.items: Invalid value: []string{}: spec.items in body should have at least 1 items" in found
    assert not any(m.startswith("spec.maybe") for m in found)


def test_pruning_keeps_described_preserved_and_object_meta_fields() -> None:
    obj = {
        "apiVersion": "x.example.com/v1",
        "kind": "X",
        "metadata": {"name": "a", "labels": {"k": "v"}, "bogus": 1},
        "spec": {
            "size": 1,
            "extra": True,
            "free": {"anything": {"deep": 1}},
            "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "junk": 1}, "spec": {"y": 1}},
        },
        "top": 1,
    }
    unknown = structural.prune(SCHEMA, obj)
    assert sorted(unknown) == [
        "metadata.bogus",
        "spec.extra",
        "spec.template.metadata.junk",
        "spec.template.spec.y",
        "top",
    ]
    assert obj["spec"]["free"] == {"anything": {"deep": 1}}
    assert obj["metadata"] == {"name": "a", "labels": {"k": "v"}}
    assert obj["spec"]["template"]["metadata"] == {"name": "p"}


def test_defaults_fill_absent_fields_only() -> None:
    obj: dict[str, Any] = {"spec": {"size": 2}}
    structural.apply_defaults(SCHEMA, obj)
    assert obj["spec"]["mode"] == "slow"
    explicit: dict[str, Any] = {"spec": {"size": 2, "mode": "fast"}}
    structural.apply_defaults(SCHEMA, explicit)
    assert explicit["spec"]["mode"] == "fast"


def test_schemas_must_be_structural() -> None:
    path = "spec.versions[0].schema.openAPIV3Schema"
    problems = structural.structural_problems(
        {"type": "object", "properties": {"spec": {"properties": {"a": {"type": "string", "default": 5}}}}}, path
    )
    found = [f"{c.field}: {c.message}" for c in problems]
    assert f"{path}.properties[spec].type: Required value: must not be empty for specified object fields" in found
    assert any(f.startswith(f"{path}.properties[spec].properties[a].default") for f in found)
    assert structural.structural_problems({"type": "object", "x-kubernetes-preserve-unknown-fields": True}, path) == []
    assert [c.message for c in structural.structural_problems(None, path)] == ["Required value: schemas are required"]


def test_jsonpath_subset_of_printer_columns() -> None:
    obj = {
        "spec": {"replicas": 3, "containers": [{"name": "a"}, {"name": "b"}]},
        "status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Synced", "status": "False"}]},
        "metadata": {"labels": {"app.kubernetes.io/name": "web"}},
    }
    assert jsonpath.find(".spec.replicas", obj) == [3]
    assert jsonpath.find(".spec.containers[*].name", obj) == ["a", "b"]
    assert jsonpath.find(".spec.containers[-1].name", obj) == ["b"]
    assert jsonpath.find('.status.conditions[?(@.type=="Ready")].status', obj) == ["True"]
    assert jsonpath.find(".metadata.labels['app.kubernetes.io/name']", obj) == ["web"]
    assert jsonpath.find(".spec.missing", obj) == []
