"""The garbage collector's rules: how owners are judged, what happens to a dependent, what is tracked."""

from __future__ import annotations

from typing import Any

from controllers.garbagecollector import (
    Decision,
    OwnerStates,
    blocks_owner,
    classify,
    decide,
    deletable_resources,
    without_owners,
)

Obj = dict[str, Any]


def ref(uid: str, block: bool = False) -> Obj:
    return {"apiVersion": "v1", "kind": "ConfigMap", "name": f"owner-{uid}", "uid": uid,
            **({"blockOwnerDeletion": True} if block else {})}  # fmt: skip


def obj(uid: str, *, deleting: bool = False, finalizers: list[str] | None = None, owners: list[Obj] = ()) -> Obj:
    metadata: Obj = {"name": f"obj-{uid}", "uid": uid, "ownerReferences": list(owners)}
    if deleting:
        metadata["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    if finalizers:
        metadata["finalizers"] = finalizers
    return {"metadata": metadata}


def test_owner_gone_or_recreated_is_dangling() -> None:
    assert classify(ref("a"), None) == "dangling"
    assert classify(ref("a"), obj("b")) == "dangling"  # the name now belongs to another object
    assert classify(ref("a"), obj("a")) == "solid"


def test_owner_deleting_in_the_foreground_is_waiting_but_other_deletions_are_solid() -> None:
    assert classify(ref("a"), obj("a", deleting=True, finalizers=["foregroundDeletion"])) == "waiting"
    assert classify(ref("a"), obj("a", deleting=True, finalizers=["orphan"])) == "solid"
    # The finalizer alone (no deletionTimestamp) does not mean a deletion is under way.
    assert classify(ref("a"), obj("a", finalizers=["foregroundDeletion"])) == "solid"


def test_dependent_with_a_live_owner_only_loses_stale_references() -> None:
    states = OwnerStates(solid=[ref("a")], dangling=[ref("b")], waiting=[ref("c")])
    assert decide(obj("x"), states, has_dependents=False) == Decision("remove-references", ("b", "c"))
    assert decide(obj("x"), OwnerStates(solid=[ref("a")]), has_dependents=True) == Decision("keep")


def test_dependent_without_owners_is_deleted_with_its_own_policy() -> None:
    gone = OwnerStates(dangling=[ref("a")])
    assert decide(obj("x"), gone, has_dependents=True) == Decision("delete", policy="Background")
    assert decide(obj("x", finalizers=["orphan"]), gone, False) == Decision("delete", policy="Orphan")
    assert decide(obj("x", finalizers=["foregroundDeletion"]), gone, False) == Decision("delete", policy="Foreground")


def test_dependent_of_a_foreground_deletion_goes_in_the_foreground_when_it_owns_things() -> None:
    waiting = OwnerStates(waiting=[ref("a")])
    assert decide(obj("x"), waiting, has_dependents=True) == Decision("delete", policy="Foreground")
    assert decide(obj("x"), waiting, has_dependents=False) == Decision("delete", policy="Background")


def test_only_references_with_block_owner_deletion_block() -> None:
    dependent = obj("x", owners=[ref("a", block=True), ref("b")])
    assert blocks_owner(dependent, "a")
    assert not blocks_owner(dependent, "b")
    assert not blocks_owner(dependent, "c")


def test_without_owners_keeps_the_other_references_in_order() -> None:
    dependent = obj("x", owners=[ref("a"), ref("b"), ref("c")])
    assert without_owners(dependent, ["b"]) == [ref("a"), ref("c")]
    assert without_owners(dependent, ["a", "b", "c"]) == []


def test_tracked_resources_come_from_discovery() -> None:
    core = {
        "groupVersion": "v1",
        "resources": [
            {"name": "pods", "kind": "Pod", "namespaced": True, "verbs": ["create", "delete", "get", "list", "watch"]},
            {"name": "pods/status", "kind": "Pod", "namespaced": True, "verbs": ["get", "patch"]},
            {"name": "nodes", "kind": "Node", "namespaced": False, "verbs": ["delete", "list", "watch"]},
            {"name": "events", "kind": "Event", "namespaced": True, "verbs": ["delete", "list", "watch"]},
            {"name": "bindings", "kind": "Binding", "namespaced": True, "verbs": ["create"]},
        ],
    }
    custom = {
        "groupVersion": "example.com/v1",
        "resources": [{"name": "widgets", "kind": "Widget", "namespaced": True, "verbs": ["delete", "list", "watch"]}],
    }
    found = {(r.group, r.version, r.plural, r.kind, r.namespaced) for r in deletable_resources(core, [custom])}
    assert found == {
        ("", "v1", "pods", "Pod", True),
        ("", "v1", "nodes", "Node", False),
        ("example.com", "v1", "widgets", "Widget", True),
    }
