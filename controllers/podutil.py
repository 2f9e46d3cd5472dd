"""Pod helpers shared by the workload controllers: readiness and availability, which pods to delete
first, the pod-template hash, and pods stamped out of a template.

These follow kube's `k8s.io/kubernetes/pkg/api/v1/pod` and `pkg/controller` helpers, so a pod counts as
ready, available or expendable here exactly when it would on a real cluster.
"""

from __future__ import annotations

import copy
from datetime import datetime, timedelta
from functools import cmp_to_key
from typing import Any

import orjson

from skiff.api.timefmt import try_parse_time

Obj = dict[str, Any]

# ---------------------------------------------------------------------------------------------------
# Readiness and availability


def ready_condition(pod: Obj) -> Obj | None:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return condition
    return None


def is_pod_ready(pod: Obj) -> bool:
    condition = ready_condition(pod)
    return condition is not None and condition.get("status") == "True"


def ready_since(pod: Obj) -> datetime | None:
    """When a ready pod last became ready (None if it is not ready or the time is unknown)."""
    condition = ready_condition(pod)
    if condition is None or condition.get("status") != "True":
        return None
    return try_parse_time(condition.get("lastTransitionTime"))


def is_pod_available(pod: Obj, min_ready_seconds: int, now: datetime) -> bool:
    """Ready for at least `min_ready_seconds` (kube's IsPodAvailable)."""
    if not is_pod_ready(pod):
        return False
    if not min_ready_seconds:
        return True
    since = ready_since(pod)
    return since is not None and since + timedelta(seconds=min_ready_seconds) < now


def seconds_until_available(pod: Obj, min_ready_seconds: int, now: datetime) -> float | None:
    """For a ready pod that is not yet available: how long until it is; None otherwise."""
    since = ready_since(pod)
    if not min_ready_seconds or since is None or is_pod_available(pod, min_ready_seconds, now):
        return None
    return max(0.0, (since + timedelta(seconds=min_ready_seconds) - now).total_seconds())


def is_pod_active(pod: Obj) -> bool:
    """Not finished (Succeeded/Failed) and not being deleted: the pods a controller counts."""
    phase = (pod.get("status") or {}).get("phase")
    return phase not in ("Succeeded", "Failed") and not (pod.get("metadata") or {}).get("deletionTimestamp")


def is_terminating(obj: Obj) -> bool:
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


def max_container_restarts(pod: Obj) -> int:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return max((int(s.get("restartCount") or 0) for s in statuses), default=0)


# ---------------------------------------------------------------------------------------------------
# Which pods to delete first

_PHASE_ORDINAL = {"Pending": 0, "Unknown": 1, "Running": 2}
_DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"


def _deletion_cost(pod: Obj) -> int:
    raw = ((pod.get("metadata") or {}).get("annotations") or {}).get(_DELETION_COST)
    try:
        return int(raw) if raw is not None else 0
    except ValueError:
        return 0


def _created(pod: Obj) -> datetime | None:
    return try_parse_time((pod.get("metadata") or {}).get("creationTimestamp"))


def _later_first(a: datetime | None, b: datetime | None) -> int:
    """-1 when `a` should be deleted before `b`: a missing time first, then the more recent one."""
    if a == b:
        return 0
    if a is None:
        return -1
    if b is None:
        return 1
    return -1 if a > b else 1


def compare_for_deletion(a: Obj, rank_a: int, b: Obj, rank_b: int) -> int:
    """Negative when `a` is less valuable than `b` (kube's ActivePodsWithRanks ordering)."""
    node_a, node_b = (a.get("spec") or {}).get("nodeName") or "", (b.get("spec") or {}).get("nodeName") or ""
    if node_a != node_b and (not node_a or not node_b):
        return -1 if not node_a else 1
    phase_a = _PHASE_ORDINAL.get((a.get("status") or {}).get("phase") or "Pending", 0)
    phase_b = _PHASE_ORDINAL.get((b.get("status") or {}).get("phase") or "Pending", 0)
    if phase_a != phase_b:
        return -1 if phase_a < phase_b else 1
    ready_a, ready_b = is_pod_ready(a), is_pod_ready(b)
    if ready_a != ready_b:
        return -1 if not ready_a else 1
    if _deletion_cost(a) != _deletion_cost(b):
        return -1 if _deletion_cost(a) < _deletion_cost(b) else 1
    if rank_a != rank_b:
        return -1 if rank_a > rank_b else 1
    if ready_a and ready_b and (order := _later_first(ready_since(a), ready_since(b))):
        return order
    restarts_a, restarts_b = max_container_restarts(a), max_container_restarts(b)
    if restarts_a != restarts_b:
        return -1 if restarts_a > restarts_b else 1
    return _later_first(_created(a), _created(b))


def pods_to_delete(pods: list[Obj], count: int, related: list[Obj] | None = None) -> list[Obj]:
    """The `count` least valuable pods. A pod is ranked by how many related active pods share its node
    (doubled-up pods go first)."""
    on_node: dict[str, int] = {}
    for pod in related if related is not None else pods:
        if is_pod_active(pod):
            node = (pod.get("spec") or {}).get("nodeName") or ""
            on_node[node] = on_node.get(node, 0) + 1
    ranked = [(pod, on_node.get((pod.get("spec") or {}).get("nodeName") or "", 0)) for pod in pods]
    ranked.sort(key=cmp_to_key(lambda x, y: compare_for_deletion(x[0], x[1], y[0], y[1])))
    return [pod for pod, _ in ranked[:count]]


# ---------------------------------------------------------------------------------------------------
# The pod-template hash

POD_TEMPLATE_HASH = "pod-template-hash"
# rand.SafeEncodeString's alphabet: no vowels (no words) and no look-alikes (0/o, 1/l, 3/e).
_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_FNV32_OFFSET = 0x811C9DC5
_FNV32_PRIME = 0x01000193


def fnv32a(data: bytes, value: int = _FNV32_OFFSET) -> int:
    for byte in data:
        value = ((value ^ byte) * _FNV32_PRIME) & 0xFFFFFFFF
    return value


def safe_encode(text: str) -> str:
    return "".join(_SAFE_ALPHABET[byte % len(_SAFE_ALPHABET)] for byte in text.encode())


def compute_hash(template: Obj, collision_count: int | None = None) -> str:
    """kube's ComputeHash: FNV-32a over the template (here its canonical JSON, keys sorted), then the
    collision count as four little-endian bytes when there is one, written out in the safe alphabet."""
    value = fnv32a(orjson.dumps(template, option=orjson.OPT_SORT_KEYS))
    if collision_count is not None:
        value = fnv32a(int(collision_count & 0xFFFFFFFF).to_bytes(4, "little"), value)
    return safe_encode(str(value))


def without_hash_label(template: Obj | None) -> Obj:
    """The template with the pod-template-hash label taken out (kube's EqualIgnoreHash compares these)."""
    clean = copy.deepcopy(template or {})
    labels = (clean.get("metadata") or {}).get("labels")
    if labels is not None:
        labels.pop(POD_TEMPLATE_HASH, None)
        if not labels:
            clean["metadata"].pop("labels")
    return clean


def equal_ignore_hash(a: Obj | None, b: Obj | None) -> bool:
    return without_hash_label(a) == without_hash_label(b)


# ---------------------------------------------------------------------------------------------------
# Owner references and pods from a template


def controller_of(obj: Obj) -> Obj | None:
    for owner in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if owner.get("controller"):
            return owner
    return None


def controller_ref(owner: Obj) -> Obj:
    """A controller ownerReference to `owner` (which blocks the owner's foreground deletion)."""
    metadata = owner["metadata"]
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": metadata["name"],
        "uid": metadata["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def pod_from_template(template: Obj, owner: Obj) -> Obj:
    """A new pod for `owner` (kube's GetPodFromTemplate): the template's labels, annotations and
    finalizers, a generated name after the owner's, and a controller reference to it."""
    template_meta = template.get("metadata") or {}
    metadata: Obj = {
        "generateName": f"{owner['metadata']['name']}-",
        "ownerReferences": [controller_ref(owner)],
    }
    for key in ("labels", "annotations", "finalizers"):
        if template_meta.get(key):
            metadata[key] = copy.deepcopy(template_meta[key])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": copy.deepcopy(template.get("spec") or {})}
