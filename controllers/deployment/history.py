"""Revision history: which ReplicaSet is the new one, revision numbers and the annotations a Deployment
passes on to its ReplicaSets, and which old ReplicaSets `revisionHistoryLimit` lets go.

`kubectl rollout history` lists a Deployment's ReplicaSets by their `deployment.kubernetes.io/revision`
annotation, and `rollout undo` copies an old ReplicaSet's template back into the Deployment. That old
ReplicaSet then becomes the new one again and is given the next revision number; the number it had
moves to its `revision-history` annotation.
"""

from __future__ import annotations

import copy
from typing import Any

from controllers.deployment.rollout import DESIRED_REPLICAS, MAX_REPLICAS, by_creation
from controllers.podutil import equal_ignore_hash

Obj = dict[str, Any]

REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
CHANGE_CAUSE = "kubernetes.io/change-cause"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
ROLLBACK_TO = "deprecated.deployment.rollback.to"
# Annotations that describe a ReplicaSet itself and are never copied from its Deployment.
NOT_COPIED = frozenset({LAST_APPLIED, REVISION, REVISION_HISTORY, DESIRED_REPLICAS, MAX_REPLICAS, ROLLBACK_TO})
MAX_REVISION_HISTORY_CHARS = 2000


def annotations(obj: Obj) -> dict[str, str]:
    return (obj.get("metadata") or {}).get("annotations") or {}


def revision_of(obj: Obj) -> int:
    try:
        return int(annotations(obj).get(REVISION, "0"))
    except ValueError:
        return 0


def max_revision(rss: list[Obj]) -> int:
    return max((revision_of(rs) for rs in rss), default=0)


def find_new_rs(deployment: Obj, rss: list[Obj]) -> Obj | None:
    """The oldest ReplicaSet whose template equals the Deployment's (pod-template-hash aside)."""
    template = (deployment.get("spec") or {}).get("template")
    for rs in by_creation(rss):
        if equal_ignore_hash((rs.get("spec") or {}).get("template"), template):
            return rs
    return None


def old_rss(rss: list[Obj], new_rs: Obj | None) -> list[Obj]:
    new_uid = (new_rs or {}).get("metadata", {}).get("uid")
    return [rs for rs in rss if rs["metadata"].get("uid") != new_uid]


def copy_deployment_annotations(deployment: Obj, rs_annotations: dict[str, str]) -> bool:
    """Copy the Deployment's annotations (change-cause among them) onto a ReplicaSet's; True if any changed."""
    changed = False
    for key, value in annotations(deployment).items():
        if key in NOT_COPIED or rs_annotations.get(key) == value:
            continue
        rs_annotations[key] = value
        changed = True
    return changed


def set_replicas_annotations(rs_annotations: dict[str, str], desired: int, max_replicas: int) -> bool:
    changed = False
    for key, value in ((DESIRED_REPLICAS, str(desired)), (MAX_REPLICAS, str(max_replicas))):
        if rs_annotations.get(key) != value:
            rs_annotations[key] = value
            changed = True
    return changed


def _append_history(rs_annotations: dict[str, str], old_revision: str) -> None:
    history = [r for r in rs_annotations.get(REVISION_HISTORY, "").split(",") if r]
    history.append(old_revision)
    while len(",".join(history)) > MAX_REVISION_HISTORY_CHARS and len(history) > 1:
        history.pop(0)
    rs_annotations[REVISION_HISTORY] = ",".join(history)


def set_new_rs_annotations(
    deployment: Obj, rs_annotations: dict[str, str], new_revision: int, exists: bool, max_replicas: int
) -> bool:
    """Bring the new ReplicaSet's annotations up to date: the Deployment's own, a revision no lower than
    `new_revision` (an older one moves to the revision history), and on creation the replica counts."""
    changed = copy_deployment_annotations(deployment, rs_annotations)
    old = rs_annotations.get(REVISION, "")
    try:
        old_number = int(old) if old else 0
    except ValueError:
        return changed
    if old_number < new_revision:
        rs_annotations[REVISION] = str(new_revision)
        changed = True
        if old:
            _append_history(rs_annotations, old)
    if not exists:
        desired = int((deployment.get("spec") or {}).get("replicas", 1))
        changed = set_replicas_annotations(rs_annotations, desired, max_replicas) or changed
    return changed


def with_annotations(obj: Obj, new_annotations: dict[str, str]) -> Obj:
    updated = copy.deepcopy(obj)
    updated.setdefault("metadata", {})["annotations"] = new_annotations
    return updated


def history_to_clean(deployment: Obj, old: list[Obj]) -> list[Obj]:
    """Old ReplicaSets beyond `revisionHistoryLimit`, lowest revision first, that have no pods left."""
    limit = (deployment.get("spec") or {}).get("revisionHistoryLimit")
    if limit is None:
        return []
    alive = [rs for rs in old if not rs["metadata"].get("deletionTimestamp")]
    excess = len(alive) - int(limit)
    if excess <= 0:
        return []
    ordered = sorted(alive, key=lambda rs: (revision_of(rs), rs["metadata"].get("creationTimestamp") or ""))
    return [rs for rs in ordered[:excess] if _empty_and_settled(rs)]


def _empty_and_settled(rs: Obj) -> bool:
    status = rs.get("status") or {}
    generation = rs["metadata"].get("generation") or 0
    return (
        not status.get("replicas")
        and not (rs.get("spec") or {}).get("replicas")
        and int(status.get("observedGeneration") or 0) >= generation
    )
