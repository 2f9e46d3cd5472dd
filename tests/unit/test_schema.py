"""Schemas of the built-in kinds: unknown and duplicate fields, patch metadata, registration."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from skiff.api import schema
from skiff.api.kinds import BUILTIN_RESOURCES
from skiff.api.patchmeta import no_patch_meta


def deployment() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": "default",
            "labels": {"app": "web", "example.com/tier": "front"},
            "annotations": {"kubernetes.io/change-cause": "first", "anything/at-all": "yes"},
            "finalizers": ["example.com/cleanup"],
            "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "o", "uid": "1"}],
            "managedFields": [{"manager": "kubectl", "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}}],
        },
        "spec": {
            "replicas": 3,
            "revisionHistoryLimit": 5,
            "progressDeadlineSeconds": 600,
            "selector": {
                "matchLabels": {"app": "web"},
                "matchExpressions": [{"key": "a", "operator": "Exists"}],
            },
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": "25%"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "initContainers": [{"name": "init", "image": "busybox", "command": ["true"]}],
                    "containers": [
                        {
                            "name": "web",
                            "image": "nginx:1.27",
                            "imagePullPolicy": "IfNotPresent",
                            "ports": [{"containerPort": 80, "name": "http", "protocol": "TCP"}],
                            "env": [
                                {"name": "A", "value": "1"},
                                {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}},
                            ],
                            "resources": {
                                "limits": {"cpu": "500m", "memory": "128Mi"},
                                "requests": {"cpu": 0.1},
                            },
                            "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 5},
                            "livenessProbe": {"tcpSocket": {"port": 80}},
                            "volumeMounts": [{"name": "config", "mountPath": "/etc/config"}],
                            "securityContext": {"runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}},
                        }
                    ],
                    "volumes": [
                        {"name": "config", "configMap": {"name": "cm"}},
                        {"name": "tmp", "emptyDir": {}},
                    ],
                    "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule"}],
                    "affinity": {
                        "podAntiAffinity": {
                            "preferredDuringSchedulingIgnoredDuringExecution": [
                                {
                                    "weight": 1,
                                    "podAffinityTerm": {
                                        "topologyKey": "kubernetes.io/hostname",
                                        "labelSelector": {"matchLabels": {"app": "web"}},
                                    },
                                }
                            ]
                        }
                    },
                    "topologySpreadConstraints": [
                        {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "ScheduleAnyway"}
                    ],
                    "nodeSelector": {"disk": "ssd"},
                },
            },
        },
        "status": {"replicas": 3, "conditions": [{"type": "Available", "status": "True"}]},
    }


def test_a_real_deployment_manifest_has_no_unknown_fields() -> None:
    assert schema.unknown_fields("apps", "v1", "Deployment", deployment()) == []


def test_typos_are_reported_with_kube_style_paths() -> None:
    manifest = deployment()
    manifest["specs"] = {}
    manifest["metadata"]["labelz"] = {}
    manifest["spec"]["replicaz"] = 2
    manifest["spec"]["template"]["spec"]["containers"][0]["imagePullPolice"] = "Always"
    manifest["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPortt"] = 81

    found = schema.unknown_fields("apps", "v1", "Deployment", manifest)

    assert sorted(found) == [
        "metadata.labelz",
        "spec.replicaz",
        "spec.template.spec.containers[0].imagePullPolice",
        "spec.template.spec.containers[0].ports[0].containerPortt",
        "specs",
    ]


def test_maps_accept_any_key() -> None:
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "labels": {"any.key/x": "1"}, "annotations": {"whatever": "2"}},
        "data": {"app.properties": "a=b", "weird key": "v"},
        "binaryData": {"blob": "AAAA"},
    }
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"pw": "x"}}

    assert schema.unknown_fields("", "v1", "ConfigMap", config_map) == []
    assert schema.unknown_fields("", "v1", "Secret", secret) == []


def test_embedded_raw_objects_accept_anything() -> None:
    revision = {
        "apiVersion": "apps/v1",
        "kind": "ControllerRevision",
        "metadata": {"name": "r"},
        "revision": 1,
        "data": {"spec": {"template": {"anything": ["goes"]}}},
    }

    assert schema.unknown_fields("apps", "v1", "ControllerRevision", revision) == []


def test_service_and_pod_typos() -> None:
    service = {"apiVersion": "v1", "kind": "Service", "spec": {"ports": [{"port": 80, "targetport": 8080}]}}
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "spec": {"containers": [{"name": "a"}, {"name": "b", "imag": "x"}]},
    }

    assert schema.unknown_fields("", "v1", "Service", service) == ["spec.ports[0].targetport"]
    assert schema.unknown_fields("", "v1", "Pod", pod) == ["spec.containers[1].imag"]


def test_kinds_without_a_schema_accept_every_field() -> None:
    assert schema.unknown_fields("example.com", "v1", "Widget", {"spec": {"x": 1}}) == []


def test_every_builtin_kind_has_a_schema_with_its_gvk() -> None:
    for resource in BUILTIN_RESOURCES:
        definition = schema.definition_for(resource.group, resource.version, resource.kind)
        assert definition is not None, resource.kind
        gvks = definition["x-kubernetes-group-version-kind"]
        assert {"group": resource.group, "kind": resource.kind, "version": resource.version} in gvks
        assert "metadata" in definition["properties"], resource.kind


def test_definition_names_follow_kubernetes() -> None:
    assert schema.definition_name_for("apps", "v1", "Deployment") == "io.k8s.api.apps.v1.Deployment"
    assert schema.definition_name_for("", "v1", "Pod") == "io.k8s.api.core.v1.Pod"
    assert schema.definition_name_for("events.k8s.io", "v1", "Event") == "io.k8s.api.events.v1.Event"
    pod_spec = schema.all_definitions()["io.k8s.api.core.v1.PodSpec"]
    assert pod_spec["properties"]["containers"]["items"] == {"$ref": "io.k8s.api.core.v1.Container"}
    meta = schema.definition_for("apps", "v1", "Deployment")["properties"]["metadata"]
    assert meta["$ref"] == "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"


def test_every_reference_resolves() -> None:
    definitions = schema.all_definitions()

    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            own = [node["$ref"]] if "$ref" in node else []
            return own + [ref for value in node.values() for ref in refs(value)]
        if isinstance(node, list):
            return [ref for item in node for ref in refs(item)]
        return []

    missing = {ref for definition in definitions.values() for ref in refs(definition) if ref not in definitions}
    assert missing == set()


def test_special_types_are_typed_as_kubernetes_publishes_them() -> None:
    definitions = schema.all_definitions()
    rolling = definitions["io.k8s.api.apps.v1.RollingUpdateDeployment"]["properties"]
    limits = definitions["io.k8s.api.core.v1.ResourceRequirements"]["properties"]["limits"]

    assert rolling["maxSurge"]["$ref"] == "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
    assert definitions["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]["x-kubernetes-int-or-string"] is True
    assert limits["additionalProperties"] == {"$ref": "io.k8s.apimachinery.pkg.api.resource.Quantity"}
    assert definitions["io.k8s.api.core.v1.PodSpec"]["required"] == ["containers"]


def test_strategy_fields_have_descriptions_for_explain() -> None:
    definitions = schema.all_definitions()
    spec = definitions["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]

    assert "replaced" in spec["strategy"]["description"]
    assert definitions["io.k8s.api.apps.v1.DeploymentStrategy"]["description"]
    assert definitions["io.k8s.api.apps.v1.Deployment"]["description"]


def test_duplicate_keys_are_reported_by_path() -> None:
    body = (
        b'{"kind": "Deployment", "kind": "Deployment", "spec": {"replicas": 1, "replicas": 2,'
        b' "template": {"spec": {"containers": [{"name": "a"}, {"name": "b", "image": "x", "image": "y"}]}}}}'
    )

    assert schema.duplicate_fields(body) == [
        "kind",
        "spec.replicas",
        "spec.template.spec.containers[1].image",
    ]


def test_bodies_without_duplicates_or_not_json_report_nothing() -> None:
    assert schema.duplicate_fields(b'{"a": {"b": 1}, "c": [{"b": 1}, {"b": 2}]}') == []
    assert schema.duplicate_fields(b"{not json") == []


@pytest.mark.parametrize(
    ("kind", "path", "expected"),
    [
        (("apps", "v1", "Deployment"), ("spec", "template", "spec", "containers"), ("merge", "name")),
        (
            ("apps", "v1", "Deployment"),
            ("spec", "template", "spec", "containers", "ports"),
            ("merge", "containerPort"),
        ),
        (("apps", "v1", "Deployment"), ("spec", "template", "spec", "containers", "env"), ("merge", "name")),
        (
            ("apps", "v1", "Deployment"),
            ("spec", "template", "spec", "containers", "volumeMounts"),
            ("merge", "mountPath"),
        ),
        (("apps", "v1", "Deployment"), ("spec", "template", "spec", "volumes"), ("merge,retainKeys", "name")),
        (("apps", "v1", "Deployment"), ("spec", "template", "spec", "tolerations"), (None, None)),
        (("apps", "v1", "Deployment"), ("spec", "strategy"), ("retainKeys", None)),
        (("apps", "v1", "Deployment"), ("metadata", "finalizers"), ("merge", None)),
        (("apps", "v1", "Deployment"), ("metadata", "ownerReferences"), ("merge", "uid")),
        (("apps", "v1", "Deployment"), ("status", "conditions"), ("merge", "type")),
        (("", "v1", "Pod"), ("spec", "containers", "ports"), ("merge", "containerPort")),
        (("", "v1", "Pod"), ("spec", "hostAliases"), ("merge", "ip")),
        (("", "v1", "Service"), ("spec", "ports"), ("merge", "port")),
        (
            ("batch", "v1", "CronJob"),
            ("spec", "jobTemplate", "spec", "template", "spec", "containers"),
            ("merge", "name"),
        ),
        (("apps", "v1", "Deployment"), ("spec", "no", "such", "field"), (None, None)),
    ],
)
def test_patch_meta(kind: tuple[str, str, str], path: tuple[str, ...], expected: tuple[str | None, str | None]) -> None:
    assert schema.patch_meta_for(*kind)(path) == expected


def test_patch_meta_for_unknown_kinds_is_the_empty_lookup() -> None:
    assert schema.patch_meta_for("example.com", "v1", "Widget") is no_patch_meta


def widget_definition(preserve: bool = False) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "type": "object",
        "properties": {
            "size": {"type": "integer"},
            "items": {
                "type": "array",
                "items": {"type": "object", "properties": {"name": {"type": "string"}}},
                "x-kubernetes-patch-strategy": "merge",
                "x-kubernetes-patch-merge-key": "name",
            },
        },
    }
    if preserve:
        spec["x-kubernetes-preserve-unknown-fields"] = True
    return {
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"$ref": "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"},
            "spec": spec,
        },
        "x-kubernetes-group-version-kind": [{"group": "example.com", "kind": "Widget", "version": "v1"}],
    }


def test_custom_kinds_can_register_a_schema() -> None:
    before = schema.schema_generation()
    schema.register_definitions({"com.example.v1.Widget": widget_definition()})
    try:
        widget = {
            "metadata": {"name": "w", "labelz": {}},
            "spec": {"size": 1, "items": [{"name": "a", "x": 1}]},
        }
        assert schema.schema_generation() != before
        assert schema.unknown_fields("example.com", "v1", "Widget", widget) == [
            "metadata.labelz",
            "spec.items[0].x",
        ]
        assert schema.patch_meta_for("example.com", "v1", "Widget")(("spec", "items")) == ("merge", "name")
    finally:
        schema.unregister_kind("example.com", "v1", "Widget")
    assert schema.definition_for("example.com", "v1", "Widget") is None
    assert schema.patch_meta_for("example.com", "v1", "Widget") is no_patch_meta


def test_preserve_unknown_fields_keeps_any_key_but_checks_known_ones() -> None:
    schema.register_definitions({"com.example.v1.Widget": widget_definition(preserve=True)})
    try:
        widget = {"spec": {"free": {"form": 1}, "items": [{"name": "a", "typo": 2}]}}
        assert schema.unknown_fields("example.com", "v1", "Widget", copy.deepcopy(widget)) == ["spec.items[0].typo"]
    finally:
        schema.unregister_kind("example.com", "v1", "Widget")
