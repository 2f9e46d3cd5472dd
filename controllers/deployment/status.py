"""A Deployment's status: counts summed over its ReplicaSets and the Available and Progressing conditions
that `kubectl rollout status` waits on.

Progressing is True with reason NewReplicaSetCreated / FoundNewReplicaSet / ReplicaSetUpdated while
the rollout moves, NewReplicaSetAvailable once it has completed, and False with
ProgressDeadlineExceeded when it made no progress for `progressDeadlineSeconds`; a paused Deployment
shows Unknown with DeploymentPaused (DeploymentResumed once resumed).
"""

from __future__ import annotations

import copy
from datetime import datetime, timedelta
from typing import Any

from controllers.deployment.rollout import max_unavailable, spec_replicas, status_count, total_replicas, total_status
from skiff.api.timefmt import format_time, now, try_parse_time

Obj = dict[str, Any]

AVAILABLE = "Available"
PROGRESSING = "Progressing"
REPLICA_FAILURE = "ReplicaFailure"

MINIMUM_REPLICAS_AVAILABLE = "MinimumReplicasAvailable"
MINIMUM_REPLICAS_UNAVAILABLE = "MinimumReplicasUnavailable"
NEW_RS_CREATED = "NewReplicaSetCreated"
FOUND_NEW_RS = "FoundNewReplicaSet"
RS_UPDATED = "ReplicaSetUpdated"
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
TIMED_OUT = "ProgressDeadlineExceeded"
PAUSED = "DeploymentPaused"
RESUMED = "DeploymentResumed"
FAILED_RS_CREATE = "ReplicaSetCreateError"

# progressDeadlineSeconds set to the largest int32 means "no deadline".
NO_DEADLINE = 2**31 - 1


# ---------------------------------------------------------------------------------------------------
# Conditions


def new_condition(kind: str, status: str, reason: str, message: str, when: datetime | None = None) -> Obj:
    stamp = format_time(when or now())
    return {
        "type": kind,
        "status": status,
        "lastUpdateTime": stamp,
        "lastTransitionTime": stamp,
        "reason": reason,
        "message": message,
    }


def get_condition(status: Obj, kind: str) -> Obj | None:
    return next((c for c in status.get("conditions") or [] if c.get("type") == kind), None)


def set_condition(status: Obj, condition: Obj) -> None:
    """Add or replace a condition; same status and reason leaves it alone, same status keeps its
    lastTransitionTime."""
    current = get_condition(status, condition["type"])
    if current is not None and current.get("status") == condition["status"]:
        if current.get("reason") == condition["reason"]:
            return
        condition = {**condition, "lastTransitionTime": current.get("lastTransitionTime")}
    remove_condition(status, condition["type"])
    status.setdefault("conditions", []).append(condition)


def remove_condition(status: Obj, kind: str) -> None:
    kept = [c for c in status.get("conditions") or [] if c.get("type") != kind]
    if kept:
        status["conditions"] = kept
    else:
        status.pop("conditions", None)


def has_progress_deadline(deployment: Obj) -> bool:
    deadline = (deployment.get("spec") or {}).get("progressDeadlineSeconds")
    return deadline is not None and int(deadline) != NO_DEADLINE


# ---------------------------------------------------------------------------------------------------
# Counts


def calculate_status(deployment: Obj, all_rss: list[Obj | None], new_rs: Obj | None) -> Obj:
    """Counts over the ReplicaSets, the Available condition, and the other conditions carried over."""
    current = deployment.get("status") or {}
    available = total_status(all_rss, "availableReplicas")
    status: Obj = {
        "observedGeneration": (deployment.get("metadata") or {}).get("generation"),
        "replicas": total_status(all_rss, "replicas"),
        "updatedReplicas": status_count(new_rs, "replicas"),
        "readyReplicas": total_status(all_rss, "readyReplicas"),
        "availableReplicas": available,
        "unavailableReplicas": max(0, total_replicas(all_rss) - available),
    }
    if current.get("collisionCount") is not None:
        status["collisionCount"] = current["collisionCount"]
    if current.get("conditions"):
        status["conditions"] = copy.deepcopy(current["conditions"])
    if available >= spec_replicas(deployment) - max_unavailable(deployment):
        condition = new_condition(AVAILABLE, "True", MINIMUM_REPLICAS_AVAILABLE, "Deployment has minimum availability.")
    else:
        condition = new_condition(
            AVAILABLE, "False", MINIMUM_REPLICAS_UNAVAILABLE, "Deployment does not have minimum availability."
        )
    set_condition(status, condition)
    return compact(status)


def compact(status: Obj) -> Obj:
    """Leave zero counts out, as the API's omitempty fields do."""
    return {key: value for key, value in status.items() if value or key == "collisionCount"}


def deployment_complete(deployment: Obj, status: Obj) -> bool:
    desired = spec_replicas(deployment)
    return (
        int(status.get("updatedReplicas") or 0) == desired
        and int(status.get("replicas") or 0) == desired
        and int(status.get("availableReplicas") or 0) == desired
        and int(status.get("observedGeneration") or 0) >= int(deployment["metadata"].get("generation") or 0)
    )


def deployment_progressing(deployment: Obj, status: Obj) -> bool:
    """Any sign of progress since the status the Deployment carries now."""
    old = deployment.get("status") or {}

    def count(source: Obj, field: str) -> int:
        return int(source.get(field) or 0)

    old_old = count(old, "replicas") - count(old, "updatedReplicas")
    new_old = count(status, "replicas") - count(status, "updatedReplicas")
    return (
        count(status, "updatedReplicas") > count(old, "updatedReplicas")
        or new_old < old_old
        or count(status, "readyReplicas") > count(old, "readyReplicas")
        or count(status, "availableReplicas") > count(old, "availableReplicas")
    )


def deployment_timed_out(deployment: Obj, status: Obj, when: datetime) -> bool:
    if not has_progress_deadline(deployment):
        return False
    condition = get_condition(status, PROGRESSING)
    if condition is None or condition.get("reason") == NEW_RS_AVAILABLE:
        return False
    if condition.get("reason") == TIMED_OUT:
        return True
    updated = try_parse_time(condition.get("lastUpdateTime"))
    deadline = timedelta(seconds=int(deployment["spec"]["progressDeadlineSeconds"]))
    return updated is not None and updated + deadline < when


# ---------------------------------------------------------------------------------------------------
# The rollout's status


def _rs_word(deployment: Obj, new_rs: Obj | None) -> str:
    if new_rs is not None:
        return f'ReplicaSet "{new_rs["metadata"]["name"]}"'
    return f'Deployment "{deployment["metadata"]["name"]}"'


def rollout_status(deployment: Obj, all_rss: list[Obj | None], new_rs: Obj | None, when: datetime | None = None) -> Obj:
    """The status after a rollout step, with the Progressing condition judged (kube's syncRolloutStatus)."""
    when = when or now()
    status = calculate_status(deployment, all_rss, new_rs)
    if not has_progress_deadline(deployment):
        remove_condition(status, PROGRESSING)
    current = get_condition(deployment.get("status") or {}, PROGRESSING)
    complete_before = (
        status.get("replicas", 0) == status.get("updatedReplicas", 0)
        and current is not None
        and current.get("reason") == NEW_RS_AVAILABLE
    )
    if has_progress_deadline(deployment) and not complete_before:
        _judge_progress(deployment, status, new_rs, current, when)
    _carry_replica_failure(status, all_rss, new_rs)
    return status


def _judge_progress(deployment: Obj, status: Obj, new_rs: Obj | None, current: Obj | None, when: datetime) -> None:
    who = _rs_word(deployment, new_rs)
    if deployment_complete(deployment, status):
        set_condition(
            status, new_condition(PROGRESSING, "True", NEW_RS_AVAILABLE, f"{who} has successfully progressed.", when)
        )
    elif deployment_progressing(deployment, status):
        condition = new_condition(PROGRESSING, "True", RS_UPDATED, f"{who} is progressing.", when)
        if current is not None:
            if current.get("status") == "True":
                condition["lastTransitionTime"] = current.get("lastTransitionTime")
            remove_condition(status, PROGRESSING)
        set_condition(status, condition)
    elif deployment_timed_out(deployment, status, when):
        set_condition(status, new_condition(PROGRESSING, "False", TIMED_OUT, f"{who} has timed out progressing.", when))


def _carry_replica_failure(status: Obj, all_rss: list[Obj | None], new_rs: Obj | None) -> None:
    """A ReplicaFailure on the new ReplicaSet (else on any) shows on the Deployment too."""
    for candidates in ([new_rs], all_rss):
        for rs in candidates:
            failure = get_condition((rs or {}).get("status") or {}, REPLICA_FAILURE)
            if failure is not None:
                stamp = failure.get("lastTransitionTime")
                set_condition(status, {**failure, "lastUpdateTime": stamp, "lastTransitionTime": stamp})
                return
    remove_condition(status, REPLICA_FAILURE)


def requeue_for_deadline(deployment: Obj, status: Obj, when: datetime | None = None) -> float | None:
    """Seconds until the progress deadline should be checked again, when the rollout is still going."""
    current = get_condition(deployment.get("status") or {}, PROGRESSING)
    if not has_progress_deadline(deployment) or current is None:
        return None
    if deployment_complete(deployment, status) or current.get("reason") == TIMED_OUT:
        return None
    updated = try_parse_time(current.get("lastUpdateTime"))
    if updated is None:
        return None
    deadline = updated + timedelta(seconds=int(deployment["spec"]["progressDeadlineSeconds"]))
    remaining = (deadline - (when or now())).total_seconds()
    return max(remaining, 0.0) + 1.0
