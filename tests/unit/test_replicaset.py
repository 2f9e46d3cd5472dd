"""ReplicaSet controller pieces: which pods go first, status counts, slow-start batches, expectations
and pods made from a template."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from controllers.expectations import Expectations
from controllers.podutil import is_pod_available, pod_from_template, pods_to_delete
from controllers.replicaset import replica_set_status, slow_start_batch
from skiff.api.errors import ApiError

Obj = dict[str, Any]
NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def stamp(seconds_ago: float) -> str:
    return (NOW - timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def pod(
    name: str,
    *,
    node: str = "n1",
    phase: str = "Running",
    ready_for: float | None = 60,
    restarts: int = 0,
    age: float = 120,
    labels: dict[str, str] | None = None,
) -> Obj:
    conditions = []
    if ready_for is not None:
        conditions.append({"type": "Ready", "status": "True", "lastTransitionTime": stamp(ready_for)})
    else:
        conditions.append({"type": "Ready", "status": "False", "lastTransitionTime": stamp(age)})
    return {
        "metadata": {
            "name": name,
            "namespace": "default",
            "creationTimestamp": stamp(age),
            "labels": labels if labels is not None else {"app": "web"},
        },
        "spec": {"nodeName": node},
        "status": {"phase": phase, "conditions": conditions, "containerStatuses": [{"restartCount": restarts}]},
    }


def names(pods: list[Obj]) -> list[str]:
    return [p["metadata"]["name"] for p in pods]


def test_least_valuable_pods_are_deleted_first() -> None:
    pods = [
        pod("old-ready", ready_for=600, age=700),
        pod("unassigned", node="", phase="Pending", ready_for=None),
        pod("pending", phase="Pending", ready_for=None),
        pod("not-ready", ready_for=None),
        pod("ready-briefly", ready_for=5),
        pod("restarting", ready_for=600, age=700, restarts=4),
    ]
    random.Random(7).shuffle(pods)
    order = names(pods_to_delete(pods, 6, related=[]))
    assert order == ["unassigned", "pending", "not-ready", "ready-briefly", "restarting", "old-ready"]
    assert names(pods_to_delete(pods, 2, related=[])) == ["unassigned", "pending"]


def test_newer_pods_go_before_older_ones_when_otherwise_equal() -> None:
    pods = [pod("older", ready_for=60, age=300), pod("newer", ready_for=60, age=100)]
    assert names(pods_to_delete(pods, 1, related=[])) == ["newer"]


def test_doubled_up_pods_go_before_lone_ones() -> None:
    crowded = [pod("a", node="n1"), pod("b", node="n1")]
    lone = pod("c", node="n2")
    assert names(pods_to_delete([lone, *crowded], 1))[0] in {"a", "b"}


def test_availability_waits_for_min_ready_seconds() -> None:
    assert is_pod_available(pod("p", ready_for=10), 0, NOW)
    assert not is_pod_available(pod("p", ready_for=10), 30, NOW)
    assert is_pod_available(pod("p", ready_for=31), 30, NOW)
    assert not is_pod_available(pod("p", ready_for=None), 0, NOW)


def replica_set(replicas: int, min_ready: int = 0, conditions: list[Obj] | None = None) -> Obj:
    return {
        "metadata": {"name": "web-abc", "generation": 3, "namespace": "default", "uid": "u1"},
        "spec": {
            "replicas": replicas,
            "minReadySeconds": min_ready,
            "template": {"metadata": {"labels": {"app": "web", "tier": "fe"}}},
        },
        "status": {"conditions": conditions or []},
    }


def test_status_counts_labelled_ready_and_available_pods() -> None:
    pods = [
        pod("a", ready_for=100, labels={"app": "web", "tier": "fe"}),
        pod("b", ready_for=5, labels={"app": "web", "tier": "fe"}),
        pod("c", ready_for=None, labels={"app": "web"}),
    ]
    result = replica_set_status(replica_set(3, min_ready=30), pods, None, NOW)
    assert result == {
        "replicas": 3,
        "fullyLabeledReplicas": 2,
        "readyReplicas": 2,
        "availableReplicas": 1,
        "observedGeneration": 3,
    }


def test_failed_creates_show_as_replica_failure_until_a_sync_succeeds() -> None:
    error = ApiError(403, "Forbidden", 'pods "web-abc-" is forbidden: exceeded quota')
    failed = replica_set_status(replica_set(3), [pod("a")], error, NOW)
    (condition,) = failed["conditions"]
    assert condition["type"] == "ReplicaFailure"
    assert condition["reason"] == "FailedCreate"
    assert condition["message"] == 'pods "web-abc-" is forbidden: exceeded quota'
    healed = replica_set_status(replica_set(3, conditions=[condition]), [pod("a")], None, NOW)
    assert "conditions" not in healed


async def test_slow_start_doubles_batches_and_stops_after_a_failing_batch() -> None:
    calls: list[int] = []

    async def create() -> None:
        calls.append(1)

    assert await slow_start_batch(10, 1, create) == (10, None)
    assert len(calls) == 10

    attempts = 0

    async def fail_after_three() -> None:
        nonlocal attempts
        attempts += 1
        if attempts > 3:
            raise ApiError(403, "Forbidden", "quota")

    created, error = await slow_start_batch(100, 1, fail_after_three)
    # batches of 1 and 2 succeed; the batch of 4 fails once 3 pods exist: 7 attempts, not 100
    assert attempts == 7
    assert created == 3
    assert isinstance(error, ApiError)


def test_expectations_hold_until_observed_or_expired() -> None:
    clock = [0.0]
    expectations = Expectations(timeout=300, clock=lambda: clock[0])
    assert expectations.satisfied("ns/web")
    expectations.expect_creations("ns/web", 2)
    assert not expectations.satisfied("ns/web")
    expectations.creation_observed("ns/web")
    assert not expectations.satisfied("ns/web")
    expectations.creation_observed("ns/web")
    assert expectations.satisfied("ns/web")
    expectations.expect_deletions("ns/web", ["ns/p1", "ns/p2"])
    expectations.deletion_observed("ns/web", "ns/p1")
    expectations.deletion_observed("ns/web", "ns/p1")  # the same pod twice counts once
    assert expectations.pending("ns/web") == (0, 1)
    assert not expectations.satisfied("ns/web")
    clock[0] = 301
    assert expectations.satisfied("ns/web")


@pytest.mark.parametrize("field", ["labels", "annotations"])
def test_pods_from_a_template_carry_its_metadata_and_a_controller_reference(field: str) -> None:
    owner = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web-abc", "uid": "u1"}}
    template = {"metadata": {field: {"k": "v"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}
    made = pod_from_template(template, owner)
    assert made["metadata"]["generateName"] == "web-abc-"
    assert made["metadata"][field] == {"k": "v"}
    assert made["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "name": "web-abc",
            "uid": "u1",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    made["spec"]["containers"][0]["image"] = "changed"
    assert template["spec"]["containers"][0]["image"] == "i"
