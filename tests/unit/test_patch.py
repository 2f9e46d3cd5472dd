"""JSON patch, merge patch and strategic merge patch on realistic Deployment and Pod documents."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from skiff.api.errors import ApiError
from skiff.api.patch import (
    apply_json_patch,
    apply_merge_patch,
    apply_strategic_merge_patch,
    merge_patch_value,
)
from skiff.api.patchmeta import FieldPath, PatchMeta, no_patch_meta

POD_SPEC = ("spec", "template", "spec")

# The patch metadata of the Deployment fields these tests touch, as the apps/v1 and core/v1 types tag them.
_DEPLOYMENT_META: dict[FieldPath, PatchMeta] = {
    ("metadata", "finalizers"): ("merge", None),
    (*POD_SPEC, "containers"): ("merge", "name"),
    (*POD_SPEC, "containers", "ports"): ("merge", "containerPort"),
    (*POD_SPEC, "containers", "env"): ("merge", "name"),
    (*POD_SPEC, "volumes"): ("merge,retainKeys", "name"),
    ("spec", "strategy"): ("retainKeys", None),
    (*POD_SPEC, "nodeSelector"): ("replace", None),
}


def deployment_meta(path: FieldPath) -> PatchMeta:
    return _DEPLOYMENT_META.get(path, (None, None))


def smp(doc: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    return apply_strategic_merge_patch(doc, patch, deployment_meta)


def make_deployment() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": "default",
            "labels": {"app": "web", "team": "blue"},
            "finalizers": ["example.com/cleanup", "example.com/audit"],
        },
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
            },
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "nodeSelector": {"disk": "ssd", "zone": "a"},
                    "containers": [
                        {
                            "name": "app",
                            "image": "nginx:1.25",
                            "ports": [
                                {"containerPort": 80, "name": "http"},
                                {"containerPort": 443, "name": "https"},
                            ],
                            "env": [{"name": "MODE", "value": "prod"}, {"name": "DEBUG", "value": "0"}],
                        },
                        {"name": "sidecar", "image": "envoy:1.29"},
                    ],
                    "volumes": [
                        {"name": "config", "configMap": {"name": "web-config"}},
                        {"name": "cache", "emptyDir": {}},
                    ],
                },
            },
        },
    }


def pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["spec"]["template"]["spec"]


def names(items: list[dict[str, Any]]) -> list[str]:
    return [item["name"] for item in items]


# --- JSON patch ----------------------------------------------------------------------------------------


def test_json_patch_applies_operations_in_order() -> None:
    doc = make_deployment()
    result = apply_json_patch(
        doc,
        [
            {"op": "test", "path": "/spec/replicas", "value": 3},
            {"op": "replace", "path": "/spec/replicas", "value": 5},
            {"op": "add", "path": "/metadata/labels/tier", "value": "frontend"},
            {"op": "remove", "path": "/metadata/labels/team"},
            {"op": "add", "path": "/spec/template/spec/containers/-", "value": {"name": "log", "image": "b"}},
            {"op": "move", "from": "/metadata/labels/tier", "path": "/metadata/labels/layer"},
            {"op": "copy", "from": "/spec/replicas", "path": "/metadata/annotations"},
        ],
    )
    assert result["spec"]["replicas"] == 5
    assert result["metadata"]["labels"] == {"app": "web", "layer": "frontend"}
    assert names(pod_spec(result)["containers"]) == ["app", "sidecar", "log"]
    assert result["metadata"]["annotations"] == 5
    assert doc == make_deployment(), "the input document must not change"


def test_json_patch_result_shares_nothing_with_the_request() -> None:
    ops = [{"op": "add", "path": "/metadata/annotations", "value": {"a": "1"}}]
    result = apply_json_patch(make_deployment(), ops)
    result["metadata"]["annotations"]["a"] = "changed"
    assert ops[0]["value"] == {"a": "1"}


def test_kubectl_rollout_undo_style_patch() -> None:
    # The deployment controller always stamps a revision annotation, which undo replaces.
    doc = make_deployment()
    doc["metadata"]["annotations"] = {"deployment.kubernetes.io/revision": "2"}
    template = copy.deepcopy(doc["spec"]["template"])
    template["spec"]["containers"][0]["image"] = "nginx:1.24"
    result = apply_json_patch(
        doc,
        [
            {"op": "replace", "path": "/spec/template", "value": template},
            {
                "op": "replace",
                "path": "/metadata/annotations",
                "value": {"deployment.kubernetes.io/revision": "1"},
            },
        ],
    )
    assert pod_spec(result)["containers"][0]["image"] == "nginx:1.24"
    assert result["metadata"]["annotations"] == {"deployment.kubernetes.io/revision": "1"}


def _rejected_json_patch(ops: Any) -> ApiError:
    with pytest.raises(ApiError) as caught:
        apply_json_patch(make_deployment(), ops)
    return caught.value


def test_failed_test_operation_is_422_with_kube_message() -> None:
    error = _rejected_json_patch(
        [
            {"op": "replace", "path": "/spec/replicas", "value": 9},
            {"op": "test", "path": "/spec/replicas", "value": 3},
        ]
    )
    assert (error.code, error.reason) == (422, "Invalid")
    assert error.message == "the server rejected our request due to an error in our request"
    assert error.status()["details"]["causes"] == [
        {"reason": "UnexpectedServerResponse", "message": "testing value /spec/replicas failed: test failed"}
    ]


@pytest.mark.parametrize(
    "op",
    [
        {"op": "remove", "path": "/metadata/labels/missing"},
        {"op": "replace", "path": "/spec/paused", "value": True},
        {"op": "add", "path": "/status/conditions/0", "value": {}},
        {"op": "move", "from": "/nope", "path": "/spec/x"},
        {"op": "frobnicate", "path": "/spec"},
        {"op": "add", "path": "/spec/x"},
    ],
)
def test_operations_that_cannot_apply_are_422(op: dict[str, Any]) -> None:
    error = _rejected_json_patch([op])
    assert error.code == 422
    assert error.causes and error.causes[0].reason == "UnexpectedServerResponse"


def test_missing_path_message_names_the_path_but_not_the_document() -> None:
    error = _rejected_json_patch([{"op": "remove", "path": "/metadata/labels/missing"}])
    assert error.causes[0].message == 'remove operation does not apply: doc is missing path: "/metadata/labels/missing"'


@pytest.mark.parametrize("body", [{"op": "add", "path": "/a", "value": 1}, "[]", None, [1, 2], [["add"]]])
def test_a_body_that_is_not_an_array_of_operations_is_400(body: Any) -> None:
    error = _rejected_json_patch(body)
    assert (error.code, error.reason) == (400, "BadRequest")


def test_more_than_ten_thousand_operations_is_413() -> None:
    ops = [{"op": "test", "path": "/kind", "value": "Deployment"}] * 10001
    assert _rejected_json_patch(ops).code == 413


def test_replacing_the_whole_document_with_a_non_object_is_422() -> None:
    assert _rejected_json_patch([{"op": "replace", "path": "", "value": [1]}]).code == 422


# --- JSON merge patch ----------------------------------------------------------------------------------


def test_merge_patch_like_kubectl_label_and_scale() -> None:
    doc = make_deployment()
    result = apply_merge_patch(
        doc, {"metadata": {"labels": {"team": None, "tier": "frontend"}}, "spec": {"replicas": 5}}
    )
    assert result["metadata"]["labels"] == {"app": "web", "tier": "frontend"}
    assert result["spec"]["replicas"] == 5
    assert result["spec"]["selector"] == {"matchLabels": {"app": "web"}}
    assert doc == make_deployment()


def test_merge_patch_replaces_lists_wholesale() -> None:
    result = apply_merge_patch(make_deployment(), {"metadata": {"finalizers": ["example.com/only"]}})
    assert result["metadata"]["finalizers"] == ["example.com/only"]


def test_merge_patch_new_objects_lose_their_nulls_and_scalars_replace_objects() -> None:
    result = apply_merge_patch(
        make_deployment(), {"metadata": {"annotations": {"a": "1", "b": None}}, "spec": {"strategy": "x"}}
    )
    assert result["metadata"]["annotations"] == {"a": "1"}
    assert result["spec"]["strategy"] == "x"


def test_merge_patch_value_follows_rfc_7386_for_non_objects() -> None:
    assert merge_patch_value({"a": 1}, [1, 2]) == [1, 2]
    assert merge_patch_value("text", {"a": {"b": None, "c": 1}}) == {"a": {"c": 1}}


@pytest.mark.parametrize("patch", [None, [1], "spec", 3])
def test_merge_patch_must_be_an_object(patch: Any) -> None:
    with pytest.raises(ApiError) as caught:
        apply_merge_patch(make_deployment(), patch)
    assert caught.value.code == 400


def test_merge_patch_result_is_independent_of_both_inputs() -> None:
    doc, patch = make_deployment(), {"spec": {"template": {"metadata": {"labels": {"v": "2"}}}}}
    result = apply_merge_patch(doc, patch)
    result["spec"]["selector"]["matchLabels"]["app"] = "changed"
    result["spec"]["template"]["metadata"]["labels"]["v"] = "changed"
    assert doc == make_deployment()
    assert patch == {"spec": {"template": {"metadata": {"labels": {"v": "2"}}}}}


# --- strategic merge patch: lists merged by key --------------------------------------------------------


def test_set_image_merges_one_container_by_name() -> None:
    doc = make_deployment()
    result = smp(doc, {"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "image": "envoy:1.30"}]}}}})
    containers = pod_spec(result)["containers"]
    assert names(containers) == ["app", "sidecar"]
    assert containers[1] == {"name": "sidecar", "image": "envoy:1.30"}
    assert containers[0] == pod_spec(make_deployment())["containers"][0]
    assert doc == make_deployment(), "the input document must not change"


def test_ports_merge_by_container_port_and_env_by_name() -> None:
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "ports": [{"containerPort": 443, "protocol": "TCP"}],
                            "env": [{"name": "DEBUG", "value": "1"}],
                        }
                    ]
                }
            }
        }
    }
    app = pod_spec(smp(make_deployment(), patch))["containers"][0]
    assert app["ports"] == [
        {"containerPort": 80, "name": "http"},
        {"containerPort": 443, "name": "https", "protocol": "TCP"},
    ]
    assert app["env"] == [{"name": "MODE", "value": "prod"}, {"name": "DEBUG", "value": "1"}]
    assert app["image"] == "nginx:1.25"


def test_new_list_elements_are_placed_where_kube_places_them() -> None:
    containers_patch = [{"name": "init-log", "image": "busybox"}]
    result = smp(make_deployment(), {"spec": {"template": {"spec": {"containers": containers_patch}}}})
    # Without $setElementOrder an element new to the list goes in front of the live ones.
    assert names(pod_spec(result)["containers"]) == ["init-log", "app", "sidecar"]
    containers_patch = [{"name": "app", "image": "nginx:1.26"}, {"name": "metrics", "image": "prom"}]
    result = smp(make_deployment(), {"spec": {"template": {"spec": {"containers": containers_patch}}}})
    # ...and otherwise right after the patch element that precedes it.
    assert names(pod_spec(result)["containers"]) == ["app", "metrics", "sidecar"]


def test_patch_order_wins_over_live_order_for_patched_elements() -> None:
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "sidecar"}, {"name": "app"}]}}}}
    assert names(pod_spec(smp(make_deployment(), patch))["containers"]) == ["sidecar", "app"]


def test_other_lists_are_replaced() -> None:
    doc = make_deployment()
    pod_spec(doc)["tolerations"] = [{"key": "a", "operator": "Exists"}, {"key": "b", "operator": "Exists"}]
    patch = {"spec": {"template": {"spec": {"tolerations": [{"key": "c", "operator": "Exists"}]}}}}
    assert pod_spec(smp(doc, patch))["tolerations"] == [{"key": "c", "operator": "Exists"}]


def test_without_patch_metadata_every_list_is_replaced() -> None:
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "solo", "image": "x"}]}}}}
    result = apply_strategic_merge_patch(make_deployment(), patch, no_patch_meta)
    assert pod_spec(result)["containers"] == [{"name": "solo", "image": "x"}]


# --- strategic merge patch: maps and primitives -------------------------------------------------------


def test_maps_merge_recursively_and_null_deletes() -> None:
    patch = {
        "metadata": {"labels": {"team": None, "tier": "web"}},
        "spec": {"paused": True, "replicas": None},
    }
    result = smp(make_deployment(), patch)
    assert result["metadata"]["labels"] == {"app": "web", "tier": "web"}
    assert result["spec"]["paused"] is True
    assert "replicas" not in result["spec"]
    assert result["spec"]["selector"] == {"matchLabels": {"app": "web"}}


def test_null_for_a_missing_key_leaves_no_trace() -> None:
    result = smp(make_deployment(), {"metadata": {"annotations": None, "labels": {"ghost": None}}})
    assert "annotations" not in result["metadata"]
    assert "ghost" not in result["metadata"]["labels"]


def test_map_with_replace_strategy_is_replaced() -> None:
    result = smp(make_deployment(), {"spec": {"template": {"spec": {"nodeSelector": {"gpu": "true"}}}}})
    assert pod_spec(result)["nodeSelector"] == {"gpu": "true"}


def test_finalizers_merge_as_a_union_of_primitives() -> None:
    result = smp(make_deployment(), {"metadata": {"finalizers": ["example.com/audit", "example.com/backup"]}})
    assert result["metadata"]["finalizers"] == [
        "example.com/cleanup",
        "example.com/audit",
        "example.com/backup",
    ]


def test_delete_from_primitive_list_removes_every_occurrence() -> None:
    doc = make_deployment()
    doc["metadata"]["finalizers"].append("example.com/cleanup")
    result = smp(doc, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["example.com/cleanup"]}})
    assert result["metadata"]["finalizers"] == ["example.com/audit"]


def test_delete_from_primitive_list_does_not_create_a_missing_list() -> None:
    result = smp(make_deployment(), {"spec": {"$deleteFromPrimitiveList/args": ["--verbose"]}})
    assert "args" not in result["spec"]
    assert "$deleteFromPrimitiveList/args" not in result["spec"]


# --- strategic merge patch: $patch directives ----------------------------------------------------------


def test_patch_delete_in_a_list_removes_the_element_by_key() -> None:
    patch = {"spec": {"template": {"spec": {"volumes": [{"name": "cache", "$patch": "delete"}]}}}}
    assert names(pod_spec(smp(make_deployment(), patch))["volumes"]) == ["config"]


def test_patch_replace_in_a_list_replaces_the_whole_list() -> None:
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "only", "image": "x"}, {"$patch": "replace"}]}}}}
    assert pod_spec(smp(make_deployment(), patch))["containers"] == [{"name": "only", "image": "x"}]


def test_patch_merge_in_a_list_element_is_an_ordinary_merge() -> None:
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "n:2", "$patch": "merge"}]}}}}
    app = pod_spec(smp(make_deployment(), patch))["containers"][0]
    assert app["image"] == "n:2" and app["ports"] and "$patch" not in app


def test_patch_replace_in_a_map_replaces_the_map() -> None:
    patch = {"spec": {"strategy": {"$patch": "replace", "type": "Recreate"}}}
    assert smp(make_deployment(), patch)["spec"]["strategy"] == {"type": "Recreate"}


def test_patch_delete_in_a_map_empties_it() -> None:
    result = smp(make_deployment(), {"metadata": {"labels": {"$patch": "delete"}}})
    assert result["metadata"]["labels"] == {}


def test_patch_merge_in_a_map_merges() -> None:
    result = smp(make_deployment(), {"metadata": {"labels": {"$patch": "merge", "tier": "x"}}})
    assert result["metadata"]["labels"] == {"app": "web", "team": "blue", "tier": "x"}


def test_directives_inside_new_elements_are_obeyed_not_stored() -> None:
    doc = make_deployment()
    del pod_spec(doc)["volumes"]
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "volumes": [
                        {"name": "data", "emptyDir": {}},
                        {"name": "ghost", "$patch": "delete"},
                    ]
                }
            }
        }
    }
    assert pod_spec(smp(doc, patch))["volumes"] == [{"name": "data", "emptyDir": {}}]


# --- strategic merge patch: $retainKeys ----------------------------------------------------------------


def test_retain_keys_drops_unlisted_fields_of_a_deployment_strategy() -> None:
    patch = {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}
    assert smp(make_deployment(), patch)["spec"]["strategy"] == {"type": "Recreate"}


def test_retain_keys_on_a_volume_switches_its_source() -> None:
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "volumes": [{"name": "cache", "$retainKeys": ["name", "hostPath"], "hostPath": {"path": "/c"}}]
                }
            }
        }
    }
    volumes = pod_spec(smp(make_deployment(), patch))["volumes"]
    assert volumes[1] == {"name": "cache", "hostPath": {"path": "/c"}}


@pytest.mark.parametrize(
    "strategy_patch",
    [
        {"$retainKeys": "type", "type": "Recreate"},
        {"$retainKeys": ["type"], "rollingUpdate": {"maxSurge": 1}},
    ],
)
def test_malformed_retain_keys_is_400(strategy_patch: dict[str, Any]) -> None:
    with pytest.raises(ApiError) as caught:
        smp(make_deployment(), {"spec": {"strategy": strategy_patch}})
    assert (caught.value.code, caught.value.message) == (400, "invalid patch format of retainKeys")


# --- strategic merge patch: kubectl apply with $setElementOrder ---------------------------------------


def test_kubectl_apply_patch_adds_a_container_and_port_in_the_declared_order() -> None:
    # What kubectl apply sends after the user inserted "metrics" between the two containers and
    # added port 8080 to "app".
    patch = {
        "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
        "spec": {
            "template": {
                "spec": {
                    "$setElementOrder/containers": [
                        {"name": "app"},
                        {"name": "metrics"},
                        {"name": "sidecar"},
                    ],
                    "containers": [
                        {
                            "name": "app",
                            "$setElementOrder/ports": [
                                {"containerPort": 80},
                                {"containerPort": 8080},
                                {"containerPort": 443},
                            ],
                            "ports": [{"containerPort": 8080, "name": "admin"}],
                        },
                        {"name": "metrics", "image": "prom/exporter"},
                    ],
                }
            }
        },
    }
    result = smp(make_deployment(), patch)
    containers = pod_spec(result)["containers"]
    assert names(containers) == ["app", "metrics", "sidecar"]
    assert [p["containerPort"] for p in containers[0]["ports"]] == [80, 8080, 443]
    assert not any(key.startswith("$") for key in containers[0])
    assert not any(key.startswith("$") for key in pod_spec(result))


def test_kubectl_apply_patch_removes_a_container_and_reorders() -> None:
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "app"}],
                    "containers": [{"name": "app", "$patch": "delete"}, {"name": "app", "image": "nginx:2"}],
                }
            }
        }
    }
    containers = pod_spec(smp(make_deployment(), patch))["containers"]
    assert names(containers) == ["sidecar", "app"]
    assert containers[1] == {"name": "app", "image": "nginx:2"}


def test_set_element_order_alone_reorders_and_keeps_server_only_elements() -> None:
    doc = make_deployment()
    pod_spec(doc)["containers"].append({"name": "injected", "image": "mesh"})
    patch = {"spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "sidecar"}, {"name": "app"}]}}}}
    assert names(pod_spec(smp(doc, patch))["containers"]) == ["sidecar", "app", "injected"]


def test_set_element_order_with_primitive_list_add_and_delete() -> None:
    patch = {
        "metadata": {
            "$setElementOrder/finalizers": ["example.com/audit", "example.com/new"],
            "$deleteFromPrimitiveList/finalizers": ["example.com/cleanup"],
            "finalizers": ["example.com/new"],
        }
    }
    assert smp(make_deployment(), patch)["metadata"]["finalizers"] == ["example.com/audit", "example.com/new"]


def test_patch_list_out_of_set_element_order_is_400() -> None:
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "$setElementOrder/containers": [{"name": "app"}, {"name": "sidecar"}],
                    "containers": [{"name": "sidecar", "image": "a"}, {"name": "app", "image": "b"}],
                }
            }
        }
    }
    with pytest.raises(ApiError) as caught:
        smp(make_deployment(), patch)
    assert caught.value.code == 400
    assert "doesn't match $setElementOrder list" in caught.value.message


# --- strategic merge patch: errors and purity ----------------------------------------------------------


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        (
            {"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}},
            "does not contain declared merge key",
        ),
        ({"metadata": {"labels": {"$patch": "explode"}}}, 'unknown patch type: "explode" in map'),
        (
            {"spec": {"template": {"spec": {"volumes": [{"name": "a", "$patch": "keep"}]}}}},
            "unknown patch type",
        ),
        (
            {"metadata": {"$deleteFromPrimitiveListfinalizers": ["a"]}},
            "invalid patch format of primitive list",
        ),
        (
            {"metadata": {"$deleteFromPrimitiveList/finalizers": "a"}},
            "invalid patch format of primitive list",
        ),
        ({"metadata": {"$setElementOrder/finalizers": "a"}}, "invalid patch format of setElementOrder list"),
        ({"metadata": {"finalizers": [{"name": "a"}]}}, "list element types are not identical"),
    ],
)
def test_invalid_strategic_patches_are_400(patch: dict[str, Any], message: str) -> None:
    with pytest.raises(ApiError) as caught:
        smp(make_deployment(), patch)
    assert caught.value.code == 400
    assert message in caught.value.message


def test_lists_of_lists_are_422() -> None:
    with pytest.raises(ApiError) as caught:
        smp(make_deployment(), {"metadata": {"finalizers": [["a"]]}})
    assert caught.value.code == 422
    assert caught.value.causes[0].message == "lists of lists are not supported"


def test_strategic_patch_must_be_an_object() -> None:
    with pytest.raises(ApiError) as caught:
        apply_strategic_merge_patch(make_deployment(), [1], deployment_meta)  # type: ignore[arg-type]
    assert caught.value.code == 400


def test_strategic_patch_mutates_neither_input_and_result_is_independent() -> None:
    doc = make_deployment()
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "$setElementOrder/containers": [{"name": "app"}, {"name": "sidecar"}],
                    "containers": [{"name": "app", "env": [{"name": "NEW", "value": "1"}]}],
                }
            }
        }
    }
    patch_before = copy.deepcopy(patch)
    result = smp(doc, patch)
    assert doc == make_deployment()
    assert patch == patch_before
    pod_spec(result)["containers"][1]["image"] = "changed"
    pod_spec(result)["containers"][0]["env"][-1]["value"] = "changed"
    assert doc == make_deployment()
    assert patch == patch_before
