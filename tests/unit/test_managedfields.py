"""Field ownership (metadata.managedFields) and server-side apply."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from skiff.api.apply import server_side_apply
from skiff.api.errors import ApiError
from skiff.api.managedfields import fields_of, record_update, reset_fields_for
from skiff.api.patchmeta import FieldPath, PatchMeta

T0 = "2024-05-01T10:00:00Z"
T1 = "2024-05-01T10:00:01Z"
T2 = "2024-05-01T10:00:02Z"
T3 = "2024-05-01T10:00:03Z"

SHAPES: dict[FieldPath, PatchMeta] = {
    ("spec", "template", "spec", "containers"): ("merge", "name"),
    ("spec", "template", "spec", "containers", "ports"): ("merge", "containerPort,protocol"),
    ("metadata", "finalizers"): ("merge", None),
}


def lookup(path: FieldPath) -> PatchMeta:
    return SHAPES.get(path, (None, None))


def deployment(replicas: int = 1, image: str = "nginx:1.25") -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "uid": "u-1", "resourceVersion": "7"},
        "spec": {
            "replicas": replicas,
            "template": {"spec": {"containers": [{"name": "web", "image": image}]}},
        },
    }


def config(spec: dict[str, Any] | None = None, **metadata: Any) -> dict[str, Any]:
    applied: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", **metadata},
    }
    if spec is not None:
        applied["spec"] = spec
    return applied


def entries(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f"{e['manager']}/{e['operation']}": e for e in obj["metadata"].get("managedFields", [])}


def owned(obj: dict[str, Any], key: str) -> dict[str, Any]:
    return entries(obj)[key]["fieldsV1"]


def created(obj: dict[str, Any], manager: str = "kubectl-create") -> dict[str, Any]:
    new = copy.deepcopy(obj)
    record_update(new, None, manager, "Update", "apps/v1", T0, lookup)
    return new


def updated(old: dict[str, Any], change: Any, manager: str, now: str = T1) -> dict[str, Any]:
    new = copy.deepcopy(old)
    change(new)
    record_update(new, old, manager, "Update", "apps/v1", now, lookup)
    return new


def set_replicas(n: int) -> Any:
    return lambda obj: obj["spec"].__setitem__("replicas", n)


# --- create, update, patch -----------------------------------------------------------------------


def test_create_records_an_update_entry_for_the_creator() -> None:
    obj = created(deployment())
    [entry] = obj["metadata"]["managedFields"]
    assert list(entry) == ["manager", "operation", "apiVersion", "time", "fieldsType", "fieldsV1"]
    assert entry["manager"] == "kubectl-create"
    assert entry["operation"] == "Update"
    assert entry["time"] == T0
    spec = entry["fieldsV1"]["f:spec"]
    assert spec["f:replicas"] == {}
    containers = spec["f:template"]["f:spec"]["f:containers"]
    assert containers['k:{"name":"web"}'] == {".": {}, "f:image": {}, "f:name": {}}
    assert "f:metadata" not in entry["fieldsV1"]  # name, namespace, uid, resourceVersion are the server's


def test_update_transfers_the_changed_field_to_the_writer() -> None:
    obj = created(deployment())
    scaled = updated(obj, set_replicas(3), "kubectl-scale")
    assert "f:replicas" not in owned(scaled, "kubectl-create/Update")["f:spec"]
    assert owned(scaled, "kubectl-scale/Update") == {"f:spec": {"f:replicas": {}}}
    assert [e["manager"] for e in scaled["metadata"]["managedFields"]] == ["kubectl-create", "kubectl-scale"]


def test_manager_that_loses_every_field_drops_out() -> None:
    obj = created(deployment())
    scaled = updated(obj, set_replicas(3), "kubectl-scale")
    rescaled = updated(scaled, set_replicas(4), "hpa", T2)
    assert "kubectl-scale/Update" not in entries(rescaled)
    assert owned(rescaled, "hpa/Update") == {"f:spec": {"f:replicas": {}}}


def test_removing_a_field_takes_it_from_its_owner() -> None:
    obj = created(deployment())
    trimmed = updated(obj, lambda o: o["spec"].pop("replicas"), "editor")
    assert "f:replicas" not in owned(trimmed, "kubectl-create/Update")["f:spec"]
    assert "editor/Update" not in entries(trimmed)


def test_update_that_changes_nothing_keeps_the_entry_time() -> None:
    obj = created(deployment())
    same = updated(obj, lambda o: None, "kubectl-create")
    assert entries(same)["kubectl-create/Update"]["time"] == T0


def test_managed_fields_sent_as_one_empty_entry_are_cleared() -> None:
    obj = created(deployment())

    def clear(o: dict[str, Any]) -> None:
        o["metadata"]["managedFields"] = [{}]

    assert "managedFields" not in updated(obj, clear, "kubectl-edit")["metadata"]


def test_managed_fields_sent_as_empty_list_are_kept() -> None:
    obj = created(deployment())

    def empty(o: dict[str, Any]) -> None:
        o["metadata"]["managedFields"] = []

    assert "kubectl-create/Update" in entries(updated(obj, empty, "kubectl-edit"))


def test_status_writes_are_tracked_per_subresource() -> None:
    obj = created(deployment())
    obj["status"] = {}
    new = copy.deepcopy(obj)
    new["status"] = {"replicas": 1}
    ignored = reset_fields_for("status", has_status_subresource=True)
    record_update(new, obj, "deployment-controller", "Update", "apps/v1", T1, lookup, "status", ignored_fields=ignored)
    entry = entries(new)["deployment-controller/Update"]
    assert entry["subresource"] == "status"
    assert entry["fieldsV1"] == {"f:status": {"f:replicas": {}}}


def test_fields_of_leaves_out_server_owned_metadata_and_optionally_status() -> None:
    obj = deployment()
    obj["metadata"]["labels"] = {"app": "web"}
    obj["metadata"]["finalizers"] = ["a"]
    obj["status"] = {"replicas": 1}
    fields = fields_of(obj, lookup, ignore_status=True)
    assert fields["f:metadata"] == {"f:finalizers": {'v:"a"': {}}, "f:labels": {"f:app": {}}}
    assert "f:status" not in fields
    assert "f:status" in fields_of(obj, lookup)


# --- server-side apply ---------------------------------------------------------------------------


def test_apply_create_builds_the_object_and_an_apply_entry() -> None:
    obj = server_side_apply(
        None, config({"replicas": 2}, labels={"app": "web"}), "kubectl", False, "apps/v1", T0, lookup
    )
    assert obj["spec"] == {"replicas": 2}
    [entry] = obj["metadata"]["managedFields"]
    assert entry["operation"] == "Apply"
    assert entry["time"] == T0
    assert entry["fieldsV1"] == {"f:metadata": {"f:labels": {"f:app": {}}}, "f:spec": {"f:replicas": {}}}


def test_apply_does_not_change_the_caller_objects() -> None:
    live = created(deployment())
    before = copy.deepcopy(live)
    applied = config({"replicas": 1})
    server_side_apply(live, applied, "kubectl", False, "apps/v1", T1, lookup)
    assert live == before
    assert applied == config({"replicas": 1})


def test_apply_removes_a_field_it_no_longer_applies() -> None:
    first = server_side_apply(None, config(labels={"a": "1", "b": "2"}), "kubectl", False, "apps/v1", T0, lookup)
    second = server_side_apply(first, config(labels={"a": "1"}), "kubectl", False, "apps/v1", T1, lookup)
    assert second["metadata"]["labels"] == {"a": "1"}
    assert owned(second, "kubectl/Apply") == {"f:metadata": {"f:labels": {"f:a": {}}}}


def test_apply_drops_a_map_it_emptied() -> None:
    first = server_side_apply(None, config(labels={"a": "1"}), "kubectl", False, "apps/v1", T0, lookup)
    second = server_side_apply(first, config({"replicas": 1}), "kubectl", False, "apps/v1", T1, lookup)
    assert "labels" not in second["metadata"]


def test_apply_keeps_a_field_it_gave_up_when_another_manager_owns_it() -> None:
    first = server_side_apply(None, config(labels={"a": "1"}), "kubectl", False, "apps/v1", T0, lookup)
    shared = server_side_apply(first, config(labels={"a": "1"}), "helm", False, "apps/v1", T1, lookup)
    second = server_side_apply(shared, config(labels={}), "kubectl", False, "apps/v1", T2, lookup)
    assert second["metadata"]["labels"] == {"a": "1"}
    assert owned(second, "helm/Apply") == {"f:metadata": {"f:labels": {"f:a": {}}}}


def test_applying_the_value_another_manager_set_shares_the_field() -> None:
    live = created(deployment(replicas=3))
    obj = server_side_apply(live, config({"replicas": 3}), "kubectl", False, "apps/v1", T1, lookup)
    assert "f:replicas" in owned(obj, "kubectl/Apply")["f:spec"]
    assert "f:replicas" in owned(obj, "kubectl-create/Update")["f:spec"]


def test_apply_conflict_is_a_409_in_kube_format() -> None:
    live = updated(created(deployment()), set_replicas(3), "kubectl-client-side-apply")
    with pytest.raises(ApiError) as caught:
        server_side_apply(live, config({"replicas": 5}), "kubectl", False, "apps/v1", T2, lookup)
    assert caught.value.status() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using apps/v1: '
        ".spec.replicas",
        "reason": "Conflict",
        "details": {
            "causes": [
                {
                    "reason": "FieldManagerConflict",
                    "message": 'conflict with "kubectl-client-side-apply" using apps/v1',
                    "field": ".spec.replicas",
                }
            ]
        },
        "code": 409,
    }


def test_several_conflicts_are_listed_by_manager() -> None:
    live = updated(created(deployment()), set_replicas(3), "kubectl-scale")
    applied = config({"replicas": 5, "template": {"spec": {"containers": [{"name": "web", "image": "x"}]}}})
    with pytest.raises(ApiError) as caught:
        server_side_apply(live, applied, "kubectl", False, "apps/v1", T2, lookup)
    assert caught.value.message == (
        'Apply failed with 2 conflicts: conflicts with "kubectl-create" using apps/v1:\n'
        '- .spec.template.spec.containers[name="web"].image\n'
        'conflicts with "kubectl-scale" using apps/v1:\n'
        "- .spec.replicas"
    )
    assert [c.field for c in caught.value.causes] == [
        '.spec.template.spec.containers[name="web"].image',
        ".spec.replicas",
    ]


def test_conflict_between_two_appliers_names_the_applier_without_version() -> None:
    live = server_side_apply(None, config({"replicas": 1}), "helm", False, "apps/v1", T0, lookup)
    with pytest.raises(ApiError) as caught:
        server_side_apply(live, config({"replicas": 2}), "kubectl", False, "apps/v1", T1, lookup)
    assert caught.value.message == 'Apply failed with 1 conflict: conflict with "helm": .spec.replicas'


def test_forced_apply_takes_the_field_over() -> None:
    live = updated(created(deployment()), set_replicas(3), "kubectl-scale")
    obj = server_side_apply(live, config({"replicas": 5}), "kubectl", True, "apps/v1", T2, lookup)
    assert obj["spec"]["replicas"] == 5
    assert "kubectl-scale/Update" not in entries(obj)
    assert "f:replicas" not in owned(obj, "kubectl-create/Update")["f:spec"]
    assert owned(obj, "kubectl/Apply") == {"f:spec": {"f:replicas": {}}}


def test_apply_merges_containers_by_name() -> None:
    live = created(deployment())

    def add_sidecar(o: dict[str, Any]) -> None:
        o["spec"]["template"]["spec"]["containers"].append({"name": "log", "image": "fluent"})

    live = updated(live, add_sidecar, "injector")
    applied = config({"template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.25"}]}}})
    obj = server_side_apply(live, applied, "kubectl", False, "apps/v1", T2, lookup)
    assert obj["spec"]["template"]["spec"]["containers"] == [
        {"name": "web", "image": "nginx:1.25"},
        {"name": "log", "image": "fluent"},
    ]
    assert owned(obj, "kubectl/Apply")["f:spec"]["f:template"]["f:spec"]["f:containers"] == {
        'k:{"name":"web"}': {".": {}, "f:image": {}, "f:name": {}}
    }


def test_apply_removes_a_container_it_no_longer_applies() -> None:
    two = {"template": {"spec": {"containers": [{"name": "web", "image": "a"}, {"name": "log", "image": "b"}]}}}
    first = server_side_apply(None, config(two), "kubectl", False, "apps/v1", T0, lookup)
    one = {"template": {"spec": {"containers": [{"name": "web", "image": "a"}]}}}
    second = server_side_apply(first, config(one), "kubectl", False, "apps/v1", T1, lookup)
    assert second["spec"]["template"]["spec"]["containers"] == [{"name": "web", "image": "a"}]


def test_given_up_container_stays_while_another_manager_owns_part_of_it() -> None:
    two = {"template": {"spec": {"containers": [{"name": "web", "image": "a"}, {"name": "log", "image": "b"}]}}}
    first = server_side_apply(None, config(two), "kubectl", False, "apps/v1", T0, lookup)

    def retag_log(o: dict[str, Any]) -> None:
        o["spec"]["template"]["spec"]["containers"][1]["image"] = "c"

    edited = updated(first, retag_log, "kubectl-set")
    one = {"template": {"spec": {"containers": [{"name": "web", "image": "a"}]}}}
    second = server_side_apply(edited, config(one), "kubectl", False, "apps/v1", T2, lookup)
    assert second["spec"]["template"]["spec"]["containers"] == [
        {"name": "web", "image": "a"},
        {"name": "log", "image": "c"},
    ]


def test_ports_without_protocol_name_the_defaulted_live_port() -> None:
    live = created(deployment())

    def add_port(o: dict[str, Any]) -> None:
        o["spec"]["template"]["spec"]["containers"][0]["ports"] = [{"containerPort": 80, "protocol": "TCP"}]

    live = updated(live, add_port, "kubectl-edit")
    port = {"containerPort": 80, "name": "http"}
    applied = config({"template": {"spec": {"containers": [{"name": "web", "ports": [port]}]}}})
    obj = server_side_apply(live, applied, "kubectl", False, "apps/v1", T2, lookup)
    assert obj["spec"]["template"]["spec"]["containers"][0]["ports"] == [
        {"containerPort": 80, "protocol": "TCP", "name": "http"}
    ]


def test_atomic_list_is_replaced_whole() -> None:
    args = {"template": {"spec": {"containers": [{"name": "web", "args": ["a", "b"]}]}}}
    first = server_side_apply(None, config(args), "kubectl", False, "apps/v1", T0, lookup)
    args["template"]["spec"]["containers"][0]["args"] = ["c"]
    second = server_side_apply(first, config(args), "kubectl", False, "apps/v1", T1, lookup)
    assert second["spec"]["template"]["spec"]["containers"][0]["args"] == ["c"]


def test_finalizers_are_a_set_shared_between_appliers() -> None:
    first = server_side_apply(None, config(finalizers=["a"]), "one", False, "apps/v1", T0, lookup)
    both = server_side_apply(first, config(finalizers=["b"]), "two", False, "apps/v1", T1, lookup)
    assert both["metadata"]["finalizers"] == ["a", "b"]
    assert owned(both, "two/Apply") == {"f:metadata": {"f:finalizers": {'v:"b"': {}}}}
    dropped = server_side_apply(both, config(finalizers=[]), "one", False, "apps/v1", T2, lookup)
    assert dropped["metadata"]["finalizers"] == ["b"]


def test_no_op_apply_keeps_the_entry_time() -> None:
    first = server_side_apply(None, config({"replicas": 1}), "kubectl", False, "apps/v1", T0, lookup)
    again = server_side_apply(first, config({"replicas": 1}), "kubectl", False, "apps/v1", T3, lookup)
    assert entries(again)["kubectl/Apply"]["time"] == T0


@pytest.mark.parametrize(
    ("applied", "message"),
    [
        ({"apiVersion": "apps/v1", "metadata": {"name": "web"}}, "Object 'Kind' is missing"),
        ({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {}}, "metadata.name: Required value"),
        (
            {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "managedFields": []}},
            "metadata.managedFields must be nil",
        ),
        (
            config({"template": {"spec": {"containers": [{"image": "x"}]}}}),
            ".spec.template.spec.containers: element 0: associative list with keys has an element that "
            'omits key field "name"',
        ),
        (
            config({"template": {"spec": {"containers": [{"name": "a"}, {"name": "a"}]}}}),
            '.spec.template.spec.containers: duplicate entries for key [name="a"]',
        ),
    ],
)
def test_bad_apply_configuration_is_a_400(applied: dict[str, Any], message: str) -> None:
    with pytest.raises(ApiError) as caught:
        server_side_apply(None, applied, "kubectl", False, "apps/v1", T0, lookup)
    assert caught.value.code == 400
    assert message in caught.value.message
