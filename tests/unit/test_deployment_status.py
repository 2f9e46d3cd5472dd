"""A Deployment's status as kubectl reads it: counts, the Available condition and the Progressing
condition through a rollout, its completion and its deadline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from controllers.deployment import status

Obj = dict[str, Any]
NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def deployment(replicas: int = 4, current: Obj | None = None, generation: int = 2) -> Obj:
    return {
        "metadata": {"name": "web", "generation": generation},
        "spec": {
            "replicas": replicas,
            "progressDeadlineSeconds": 600,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
        },
        "status": current or {},
    }


def rs(name: str, replicas: int, ready: int, available: int, failure: Obj | None = None) -> Obj:
    conditions = [failure] if failure else []
    return {
        "metadata": {"name": name},
        "spec": {"replicas": replicas},
        "status": {
            "replicas": replicas,
            "readyReplicas": ready,
            "availableReplicas": available,
            "conditions": conditions,
        },
    }


def progressing(current: Obj) -> Obj | None:
    return status.get_condition(current, status.PROGRESSING)


def test_counts_are_summed_over_replica_sets() -> None:
    d = deployment(4)
    old, new = rs("old", 2, 2, 2), rs("new", 3, 1, 0)
    result = status.calculate_status(d, [old, new], new)
    assert result["replicas"] == 5
    assert result["updatedReplicas"] == 3
    assert result["readyReplicas"] == 3
    assert result["availableReplicas"] == 2
    assert result["unavailableReplicas"] == 3
    assert result["observedGeneration"] == 2
    available = status.get_condition(result, status.AVAILABLE)
    assert available is not None
    assert (available["status"], available["reason"]) == ("False", "MinimumReplicasUnavailable")


def test_available_once_within_max_unavailable() -> None:
    d = deployment(4)  # one may be unavailable
    new = rs("new", 4, 3, 3)
    available = status.get_condition(status.calculate_status(d, [new], new), status.AVAILABLE)
    assert available is not None
    assert (available["status"], available["reason"], available["message"]) == (
        "True",
        "MinimumReplicasAvailable",
        "Deployment has minimum availability.",
    )


def test_progress_then_completion() -> None:
    d = deployment(4)
    new = rs("web-abc", 4, 2, 2)
    moving = status.rollout_status(d, [rs("old", 1, 1, 1), new], new, NOW)
    condition = progressing(moving)
    assert condition is not None
    assert (condition["status"], condition["reason"]) == ("True", "ReplicaSetUpdated")
    assert condition["message"] == 'ReplicaSet "web-abc" is progressing.'
    done_d = deployment(4, moving)
    finished = rs("web-abc", 4, 4, 4)
    done = status.rollout_status(done_d, [finished], finished, NOW)
    condition = progressing(done)
    assert condition is not None
    assert (condition["reason"], condition["message"]) == (
        "NewReplicaSetAvailable",
        'ReplicaSet "web-abc" has successfully progressed.',
    )
    assert status.deployment_complete(done_d, done)


def test_no_progress_past_the_deadline_times_out() -> None:
    started = status.new_condition(status.PROGRESSING, "True", status.RS_UPDATED, "x", NOW - timedelta(seconds=601))
    current = {
        "replicas": 4,
        "updatedReplicas": 2,
        "readyReplicas": 4,
        "availableReplicas": 4,
        "observedGeneration": 2,
        "conditions": [started],
    }
    d = deployment(4, current)
    new = rs("web-abc", 2, 2, 2)
    result = status.rollout_status(d, [rs("old", 2, 2, 2), new], new, NOW)
    condition = progressing(result)
    assert condition is not None
    assert (condition["status"], condition["reason"]) == ("False", "ProgressDeadlineExceeded")
    assert condition["message"] == 'ReplicaSet "web-abc" has timed out progressing.'


def test_a_stuck_rollout_is_rechecked_at_its_deadline() -> None:
    started = status.new_condition(status.PROGRESSING, "True", status.RS_UPDATED, "x", NOW - timedelta(seconds=100))
    d = deployment(4, {"conditions": [started]})
    wait = status.requeue_for_deadline(d, {"replicas": 4, "updatedReplicas": 2}, NOW)
    assert wait is not None
    assert 500 < wait <= 501


def test_replica_failure_is_carried_from_the_new_replica_set() -> None:
    failure = {
        "type": "ReplicaFailure",
        "status": "True",
        "reason": "FailedCreate",
        "message": "quota",
        "lastTransitionTime": "2024-05-01T11:00:00Z",
    }
    new = rs("new", 2, 0, 0, failure)
    result = status.rollout_status(deployment(2), [new], new, NOW)
    carried = status.get_condition(result, "ReplicaFailure")
    assert carried is not None
    assert (carried["reason"], carried["message"]) == ("FailedCreate", "quota")
    healthy = rs("new", 2, 0, 0)
    healed = status.rollout_status(deployment(2, result), [healthy], healthy, NOW)
    assert status.get_condition(healed, "ReplicaFailure") is None


def test_set_condition_keeps_transition_time_when_status_is_unchanged() -> None:
    current: Obj = {}
    status.set_condition(current, status.new_condition("Progressing", "True", "A", "a", NOW))
    status.set_condition(current, status.new_condition("Progressing", "True", "B", "b", NOW + timedelta(hours=1)))
    condition = progressing(current)
    assert condition is not None
    assert condition["reason"] == "B"
    assert condition["lastTransitionTime"] == "2024-05-01T12:00:00Z"
    assert condition["lastUpdateTime"] == "2024-05-01T13:00:00Z"
