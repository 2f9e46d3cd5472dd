"""The garbage collector against a real API server and controller-manager: Background, Foreground and
Orphan propagation, several owners, and dependents of owners that never existed."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.support import ApiServer, controller_manager

NAMESPACE = "gc"
CONFIGMAPS = f"/api/v1/namespaces/{NAMESPACE}/configmaps"
SECRETS = f"/api/v1/namespaces/{NAMESPACE}/secrets"
Obj = dict[str, Any]


@pytest.fixture(scope="module")
def admin(apiserver: ApiServer) -> Iterator[httpx.Client]:
    with apiserver.client(timeout=30) as client:
        created = client.post("/api/v1/namespaces", json={"metadata": {"name": NAMESPACE}})
        assert created.status_code == 201, created.text
        with controller_manager(apiserver, "garbagecollector"):
            yield client


def owner_ref(owner: Obj, block: bool = False) -> Obj:
    ref = {
        "apiVersion": owner.get("apiVersion", "v1"),
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
    }
    if block:
        ref["blockOwnerDeletion"] = True
    return ref


def create(client: httpx.Client, path: str, kind: str, name: str, owners: list[Obj] = (), **extra: Any) -> Obj:
    metadata: Obj = {"name": name, **extra.pop("metadata", {})}
    if owners:
        metadata["ownerReferences"] = list(owners)
    response = client.post(path, json={"apiVersion": "v1", "kind": kind, "metadata": metadata, **extra})
    assert response.status_code == 201, response.text
    return response.json()


def delete(client: httpx.Client, path: str, name: str, policy: str | None = None) -> httpx.Response:
    body = {"kind": "DeleteOptions", "apiVersion": "v1", **({"propagationPolicy": policy} if policy else {})}
    response = client.request("DELETE", f"{path}/{name}", json=body)
    assert response.status_code in (200, 202), response.text
    return response


def get(client: httpx.Client, path: str, name: str) -> Obj | None:
    response = client.get(f"{path}/{name}")
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    return response.json()


def eventually(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting until {what}")


def gone(client: httpx.Client, path: str, name: str) -> Callable[[], bool]:
    return lambda: get(client, path, name) is None


def test_background_deletion_collects_secret_and_configmap_dependents(admin: httpx.Client) -> None:
    owner = create(admin, CONFIGMAPS, "ConfigMap", "bg-owner")
    create(admin, SECRETS, "Secret", "bg-secret", [owner_ref(owner)], stringData={"k": "v"})
    create(admin, CONFIGMAPS, "ConfigMap", "bg-config", [owner_ref(owner)])
    bystander = create(admin, CONFIGMAPS, "ConfigMap", "bg-bystander")

    delete(admin, CONFIGMAPS, "bg-owner")
    eventually(gone(admin, SECRETS, "bg-secret"), "the owned secret is collected")
    eventually(gone(admin, CONFIGMAPS, "bg-config"), "the owned configmap is collected")
    assert get(admin, CONFIGMAPS, "bg-bystander")["metadata"]["uid"] == bystander["metadata"]["uid"]


def test_background_deletion_follows_a_three_level_chain(admin: httpx.Client) -> None:
    top = create(admin, CONFIGMAPS, "ConfigMap", "chain-top")
    middle = create(admin, CONFIGMAPS, "ConfigMap", "chain-middle", [owner_ref(top)])
    create(admin, SECRETS, "Secret", "chain-bottom", [owner_ref(middle)])

    delete(admin, CONFIGMAPS, "chain-top", "Background")
    eventually(gone(admin, CONFIGMAPS, "chain-middle"), "the middle of the chain is collected")
    eventually(gone(admin, SECRETS, "chain-bottom"), "the bottom of the chain is collected")


def test_foreground_deletion_waits_for_blocking_dependents(admin: httpx.Client) -> None:
    top = create(admin, CONFIGMAPS, "ConfigMap", "fg-top")
    middle = create(admin, CONFIGMAPS, "ConfigMap", "fg-middle", [owner_ref(top, block=True)])
    # The bottom is held by a finalizer of its own, so the whole chain has to wait for it.
    create(admin, SECRETS, "Secret", "fg-bottom", [owner_ref(middle, block=True)],
           metadata={"finalizers": ["example.com/hold"]})  # fmt: skip

    pending = delete(admin, CONFIGMAPS, "fg-top", "Foreground").json()
    assert pending["metadata"]["deletionTimestamp"]
    assert "foregroundDeletion" in pending["metadata"]["finalizers"]

    def bottom_terminating() -> bool:
        bottom = get(admin, SECRETS, "fg-bottom")
        return bottom is not None and bool(bottom["metadata"].get("deletionTimestamp"))

    eventually(bottom_terminating, "the bottom of the chain is being deleted")
    time.sleep(1.0)
    for path, name in ((CONFIGMAPS, "fg-top"), (CONFIGMAPS, "fg-middle")):
        waiting = get(admin, path, name)
        assert waiting is not None, f"{name} went before its blocking dependent"
        assert waiting["metadata"]["deletionTimestamp"]
        assert waiting["metadata"]["finalizers"] == ["foregroundDeletion"]

    response = admin.patch(f"{SECRETS}/fg-bottom", json={"metadata": {"finalizers": None}},
                           headers={"Content-Type": "application/merge-patch+json"})  # fmt: skip
    assert response.status_code == 200, response.text
    eventually(gone(admin, SECRETS, "fg-bottom"), "the bottom is deleted once released")
    eventually(gone(admin, CONFIGMAPS, "fg-middle"), "the middle follows its dependent")
    eventually(gone(admin, CONFIGMAPS, "fg-top"), "the owner goes last")


def test_foreground_owner_without_dependents_is_deleted(admin: httpx.Client) -> None:
    create(admin, CONFIGMAPS, "ConfigMap", "fg-alone")
    delete(admin, CONFIGMAPS, "fg-alone", "Foreground")
    eventually(gone(admin, CONFIGMAPS, "fg-alone"), "an owner with nothing to wait for is deleted")


def test_orphan_deletion_keeps_dependents_and_drops_the_reference(admin: httpx.Client) -> None:
    owner = create(admin, CONFIGMAPS, "ConfigMap", "orphan-owner")
    other = create(admin, CONFIGMAPS, "ConfigMap", "orphan-other-owner")
    create(admin, SECRETS, "Secret", "orphan-secret", [owner_ref(owner)])
    create(admin, CONFIGMAPS, "ConfigMap", "orphan-config", [owner_ref(owner), owner_ref(other)])

    delete(admin, CONFIGMAPS, "orphan-owner", "Orphan")
    eventually(gone(admin, CONFIGMAPS, "orphan-owner"), "the owner is deleted once its dependents are orphaned")
    secret = get(admin, SECRETS, "orphan-secret")
    assert secret is not None and "ownerReferences" not in secret["metadata"]
    config = get(admin, CONFIGMAPS, "orphan-config")
    assert config is not None and config["metadata"]["ownerReferences"] == [owner_ref(other)]
    time.sleep(1.0)  # and they stay
    assert get(admin, SECRETS, "orphan-secret") is not None


def test_dependent_with_several_owners_lives_while_one_remains(admin: httpx.Client) -> None:
    first = create(admin, CONFIGMAPS, "ConfigMap", "multi-first")
    second = create(admin, SECRETS, "Secret", "multi-second")
    create(admin, CONFIGMAPS, "ConfigMap", "multi-dependent", [owner_ref(first), owner_ref(second)])

    delete(admin, CONFIGMAPS, "multi-first")

    def only_second_left() -> bool:
        dependent = get(admin, CONFIGMAPS, "multi-dependent")
        assert dependent is not None, "collected although one owner remains"
        return dependent["metadata"].get("ownerReferences") == [owner_ref(second)]

    eventually(only_second_left, "the dangling reference is removed")
    delete(admin, SECRETS, "multi-second")
    eventually(gone(admin, CONFIGMAPS, "multi-dependent"), "collected once the last owner is gone")


def test_reference_to_an_owner_that_never_existed_is_collected(admin: httpx.Client) -> None:
    ghost = {"apiVersion": "v1", "kind": "ConfigMap", "name": "ghost", "uid": "00000000-0000-0000-0000-0000000000aa"}
    create(admin, SECRETS, "Secret", "ghost-dependent", [ghost])
    eventually(gone(admin, SECRETS, "ghost-dependent"), "a dependent of a non-existent owner is collected")


def test_reference_to_a_recreated_owner_counts_as_gone(admin: httpx.Client) -> None:
    # The name exists, but as another object (another uid): the reference is to something gone.
    current = create(admin, CONFIGMAPS, "ConfigMap", "reborn")
    stale = {**owner_ref(current), "uid": "00000000-0000-0000-0000-0000000000bb"}
    create(admin, CONFIGMAPS, "ConfigMap", "reborn-dependent", [stale])
    eventually(gone(admin, CONFIGMAPS, "reborn-dependent"), "a dependent of an older incarnation is collected")
    assert get(admin, CONFIGMAPS, "reborn") is not None
