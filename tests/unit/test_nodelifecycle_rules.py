"""Node lifecycle rules: lifecycle taints from the Ready condition, toleration matching, eviction times."""

from __future__ import annotations

from typing import Any

from controllers.nodelifecycle import eviction_time, reconciled_taints, toleration_matches, unknown_conditions

Obj = dict[str, Any]
STAMP = "2024-01-01T00:00:00Z"
ADDED = 1704067200.0  # STAMP as epoch seconds
UNREACHABLE = {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute", "timeAdded": STAMP}


def node(ready: str | None, taints: list[Obj] | None = None) -> Obj:
    conditions = [{"type": "Ready", "status": ready}] if ready else []
    return {"spec": {"taints": taints or []}, "status": {"conditions": conditions}}


def pod(tolerations: list[Obj] | None) -> Obj:
    return {"spec": {"tolerations": tolerations} if tolerations is not None else {}}


def test_taints_follow_the_ready_condition_and_keep_foreign_taints() -> None:
    foreign = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}
    taints = reconciled_taints(node("Unknown", [foreign]), STAMP)
    assert taints == [
        foreign,
        {"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"},
        {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute", "timeAdded": STAMP},
    ]
    # Unknown → False swaps unreachable for not-ready; True removes ours and only ours.
    swapped = reconciled_taints(node("False", taints), STAMP)
    assert swapped is not None and {t["key"] for t in swapped} == {"dedicated", "node.kubernetes.io/not-ready"}
    assert reconciled_taints(node("True", swapped), STAMP) == [foreign]
    assert reconciled_taints(node("True", [foreign]), STAMP) is None
    # A node that never reported is left to the grace period.
    assert reconciled_taints(node(None), STAMP) is None


def test_unknown_conditions_mark_every_kubelet_condition() -> None:
    current = node("True")
    current["status"]["conditions"].append({"type": "MemoryPressure", "status": "False"})
    conditions = unknown_conditions(current, STAMP)
    assert conditions is not None
    by_type = {c["type"]: c for c in conditions}
    assert set(by_type) == {"Ready", "MemoryPressure", "DiskPressure", "PIDPressure"}
    assert all(c["status"] == "Unknown" for c in conditions)
    assert by_type["Ready"]["reason"] == "NodeStatusUnknown"
    assert by_type["DiskPressure"]["reason"] == "NodeStatusNeverUpdated"
    assert unknown_conditions({"status": {"conditions": conditions}}, STAMP) is None


def test_toleration_matching() -> None:
    assert toleration_matches({"operator": "Exists"}, UNREACHABLE)
    assert toleration_matches({"key": "node.kubernetes.io/unreachable", "operator": "Exists"}, UNREACHABLE)
    assert not toleration_matches({"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule",
                                   "operator": "Exists"}, UNREACHABLE)  # fmt: skip
    assert not toleration_matches({"key": "other", "operator": "Exists"}, UNREACHABLE)
    assert not toleration_matches({"key": "", "operator": "Equal"}, UNREACHABLE)
    assert toleration_matches({"key": "k", "value": "v"}, {"key": "k", "value": "v", "effect": "NoExecute"})
    assert not toleration_matches({"key": "k", "value": "w"}, {"key": "k", "value": "v", "effect": "NoExecute"})


def test_eviction_time() -> None:
    limited = {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
               "tolerationSeconds": 30}  # fmt: skip
    forever = {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"}
    now = ADDED + 5
    assert eviction_time(pod([limited]), [UNREACHABLE], 300, now) == ADDED + 30
    assert eviction_time(pod([forever]), [UNREACHABLE], 300, now) is None
    # The shortest matching toleration counts only when none of them is unlimited.
    assert eviction_time(pod([limited, forever]), [UNREACHABLE], 300, now) is None
    # A taint nothing tolerates evicts at once; a pod with no tolerations gets the default timeout.
    assert eviction_time(pod([{"key": "other", "operator": "Exists"}]), [UNREACHABLE], 300, now) == now
    assert eviction_time(pod(None), [UNREACHABLE], 300, now) == ADDED + 300
    # NoSchedule taints never evict.
    assert eviction_time(pod([]), [{**UNREACHABLE, "effect": "NoSchedule"}], 300, now) is None
