"""The rolling-update arithmetic: how far the new ReplicaSet may grow, how far old ones may shrink, and
how a change of `spec.replicas` in the middle of a rollout is spread over all of them.

Pure functions over Deployment and ReplicaSet objects (plain dicts), following kube's
`pkg/controller/deployment/util`. Two estimates are deliberately more careful than kube's, because the
caches they read may lag: a ReplicaSet counts as holding max(spec.replicas, status.replicas) pods when
the surge budget is checked (its pods may not all be gone yet after a scale-down), and as offering at
most min(status.availableReplicas, spec.replicas) available pods when the unavailability budget is
checked (the surplus ones are about to be deleted).
"""

from __future__ import annotations

import math
import re
from typing import Any

Obj = dict[str, Any]
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
_PERCENT = re.compile(r"^(\d+)%$")


# ---------------------------------------------------------------------------------------------------
# Reading objects


def spec_replicas(obj: Obj | None) -> int:
    if obj is None:
        return 0
    value = (obj.get("spec") or {}).get("replicas")
    return 1 if value is None else int(value)


def status_count(obj: Obj | None, field: str) -> int:
    return int(((obj or {}).get("status") or {}).get(field) or 0)


def annotation_int(obj: Obj, name: str) -> int | None:
    raw = ((obj.get("metadata") or {}).get("annotations") or {}).get(name)
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


def _created_key(obj: Obj) -> tuple[str, str]:
    metadata = obj.get("metadata") or {}
    return (metadata.get("creationTimestamp") or "", metadata.get("name") or "")


def by_creation(rss: list[Obj]) -> list[Obj]:
    """Oldest first; ties by name (kube's ReplicaSetsByCreationTimestamp)."""
    return sorted(rss, key=_created_key)


def active(rss: list[Obj | None]) -> list[Obj]:
    """The ReplicaSets that should have pods (kube's FilterActiveReplicaSets)."""
    return [rs for rs in rss if rs is not None and spec_replicas(rs) > 0]


def total_replicas(rss: list[Obj | None]) -> int:
    return sum(spec_replicas(rs) for rs in rss if rs is not None)


def total_status(rss: list[Obj | None], field: str) -> int:
    return sum(status_count(rs, field) for rs in rss if rs is not None)


# ---------------------------------------------------------------------------------------------------
# maxSurge and maxUnavailable


def scaled_value(value: int | str | None, total: int, round_up: bool) -> int:
    """An IntOrString against `total`: a number as is, a percentage rounded up or down."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    match = _PERCENT.match(value)
    if match is None:
        return int(value)
    exact = int(match.group(1)) * total / 100
    return math.ceil(exact) if round_up else math.floor(exact)


def resolve_fenceposts(surge: int | str | None, unavailable: int | str | None, desired: int) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) for `desired` pods: surge rounds up, unavailable down; when both come
    to zero, one pod may be unavailable so the rollout can move at all."""
    max_surge = scaled_value(surge, desired, True)
    max_unavailable = scaled_value(unavailable, desired, False)
    if max_surge == 0 and max_unavailable == 0:
        max_unavailable = 1
    return max_surge, max_unavailable


def is_rolling_update(deployment: Obj) -> bool:
    strategy = (deployment.get("spec") or {}).get("strategy") or {}
    return strategy.get("type", "RollingUpdate") == "RollingUpdate"


def _rolling(deployment: Obj) -> Obj:
    return ((deployment.get("spec") or {}).get("strategy") or {}).get("rollingUpdate") or {}


def max_surge(deployment: Obj) -> int:
    if not is_rolling_update(deployment):
        return 0
    rolling = _rolling(deployment)
    surge, _ = resolve_fenceposts(
        rolling.get("maxSurge", "25%"), rolling.get("maxUnavailable", "25%"), spec_replicas(deployment)
    )
    return surge


def max_unavailable(deployment: Obj) -> int:
    desired = spec_replicas(deployment)
    if not is_rolling_update(deployment) or desired == 0:
        return 0
    rolling = _rolling(deployment)
    _, unavailable = resolve_fenceposts(rolling.get("maxSurge", "25%"), rolling.get("maxUnavailable", "25%"), desired)
    return min(unavailable, desired)


# ---------------------------------------------------------------------------------------------------
# Scaling the new ReplicaSet up and the old ones down


def pods_held(rs: Obj | None) -> int:
    """Pods a ReplicaSet may have right now: its target, or more while a scale-down is still under way."""
    return max(spec_replicas(rs), status_count(rs, "replicas")) if rs is not None else 0


def available_held(rs: Obj | None) -> int:
    """Available pods a ReplicaSet can be counted on for: none of those it is about to delete."""
    return min(status_count(rs, "availableReplicas"), spec_replicas(rs)) if rs is not None else 0


def new_rs_new_replicas(deployment: Obj, all_rss: list[Obj | None], new_rs: Obj) -> int:
    """The size the new ReplicaSet may grow to now (kube's NewRSNewReplicas)."""
    desired = spec_replicas(deployment)
    if not is_rolling_update(deployment):
        return desired
    name = new_rs["metadata"]["name"]
    others = [rs for rs in all_rss if rs is not None and rs["metadata"]["name"] != name]
    current = sum(pods_held(rs) for rs in others) + spec_replicas(new_rs)
    max_total = desired + max_surge(deployment)
    if current >= max_total:
        return spec_replicas(new_rs)
    return spec_replicas(new_rs) + min(max_total - current, desired - spec_replicas(new_rs))


def max_scaled_down(deployment: Obj, all_rss: list[Obj | None], new_rs: Obj | None) -> int:
    """How many old pods may go now without breaking the availability budget."""
    min_available = spec_replicas(deployment) - max_unavailable(deployment)
    new_unavailable = spec_replicas(new_rs) - status_count(new_rs, "availableReplicas") if new_rs else 0
    return total_replicas(all_rss) - min_available - new_unavailable


def unhealthy_cleanup(old_rss: list[Obj], budget: int) -> dict[str, int]:
    """Scale old ReplicaSets down by their unavailable pods first, oldest first, within `budget` (those
    pods count against availability already, and would otherwise block the rollout)."""
    sizes: dict[str, int] = {}
    removed = 0
    for rs in by_creation(old_rss):
        if removed >= budget:
            break
        replicas, available = spec_replicas(rs), status_count(rs, "availableReplicas")
        if replicas == 0 or replicas <= available:
            continue
        step = min(budget - removed, replicas - available)
        sizes[rs["metadata"]["name"]] = replicas - step
        removed += step
    return sizes


def healthy_scale_down(deployment: Obj, all_rss: list[Obj | None], old_rss: list[Obj]) -> dict[str, int]:
    """Scale old ReplicaSets down, oldest first, as far as the available pods above the minimum allow."""
    min_available = spec_replicas(deployment) - max_unavailable(deployment)
    available = sum(available_held(rs) for rs in all_rss)
    if available <= min_available:
        return {}
    sizes: dict[str, int] = {}
    budget, removed = available - min_available, 0
    for rs in by_creation(old_rss):
        if removed >= budget:
            break
        replicas = spec_replicas(rs)
        if replicas == 0:
            continue
        step = min(replicas, budget - removed)
        sizes[rs["metadata"]["name"]] = replicas - step
        removed += step
    return sizes


def with_sizes(rss: list[Obj], sizes: dict[str, int]) -> list[Obj]:
    """Copies of `rss` with the planned sizes applied (for planning the next step)."""
    planned = []
    for rs in rss:
        size = sizes.get(rs["metadata"]["name"])
        planned.append(rs if size is None else {**rs, "spec": {**(rs.get("spec") or {}), "replicas": size}})
    return planned


# ---------------------------------------------------------------------------------------------------
# Proportional scaling


def is_scaling_event(deployment: Obj, rss: list[Obj | None]) -> bool:
    """Whether spec.replicas changed since the active ReplicaSets were last sized for it."""
    desired = spec_replicas(deployment)
    for rs in active(rss):
        annotated = annotation_int(rs, DESIRED_REPLICAS)
        if annotated is not None and annotated != desired:
            return True
    return False


def is_saturated(deployment: Obj, rs: Obj | None) -> bool:
    """The new ReplicaSet is fully sized for the current spec and all its pods are available."""
    if rs is None:
        return False
    desired = spec_replicas(deployment)
    return (
        spec_replicas(rs) == desired
        and annotation_int(rs, DESIRED_REPLICAS) == desired
        and status_count(rs, "availableReplicas") == desired
    )


def active_or_latest(new_rs: Obj | None, old_rss: list[Obj]) -> Obj | None:
    """The only active ReplicaSet, or the newest when none is active; None when several are active."""
    if new_rs is None and not old_rss:
        return None
    newest_first = list(reversed(by_creation(old_rss)))
    running = active([*newest_first, new_rs])
    if len(running) == 1:
        return running[0]
    if not running:
        return new_rs if new_rs is not None else newest_first[0]
    return None


def round_half_away(value: float) -> int:
    return math.floor(value + 0.5) if value >= 0 else math.ceil(value - 0.5)


def rs_fraction(rs: Obj, deployment: Obj) -> int:
    """How much `rs` should grow (or shrink) for the deployment's new size, in proportion to its share
    of the size it was last scaled for (its max-replicas annotation)."""
    desired = spec_replicas(deployment)
    if desired == 0:
        return -spec_replicas(rs)
    new_max = desired + max_surge(deployment)
    old_max = annotation_int(rs, MAX_REPLICAS) or 0
    if old_max == 0:
        old_max = status_count(deployment, "replicas")
        if old_max == 0:
            return 0
    return round_half_away(spec_replicas(rs) * new_max / old_max) - spec_replicas(rs)


def proportion(rs: Obj, deployment: Obj, to_add: int, added: int) -> int:
    if spec_replicas(rs) == 0 or to_add == 0 or to_add == added:
        return 0
    fraction, allowed = rs_fraction(rs, deployment), to_add - added
    return min(fraction, allowed) if to_add > 0 else max(fraction, allowed)


def _by_size(rss: list[Obj], newer_first: bool) -> list[Obj]:
    """Largest first; among equals the newer first when scaling up, the older first when scaling down."""
    ordered = by_creation(rss)
    if newer_first:
        ordered.reverse()
    return sorted(ordered, key=lambda rs: -spec_replicas(rs))


def proportional_sizes(deployment: Obj, rss: list[Obj | None]) -> dict[str, int]:
    """New sizes for every active ReplicaSet so that together they hold replicas + maxSurge, each
    keeping its share; the rounding leftover goes to the largest (kube's `scale`). The order of the
    result is the order to apply them in."""
    running = active(rss)
    desired = spec_replicas(deployment)
    allowed = desired + max_surge(deployment) if desired > 0 else 0
    to_add = allowed - total_replicas(running)
    ordered = _by_size(running, newer_first=to_add > 0)
    sizes: dict[str, int] = {}
    added = 0
    for rs in ordered:
        share = proportion(rs, deployment, to_add, added) if to_add else 0
        sizes[rs["metadata"]["name"]] = spec_replicas(rs) + share
        added += share
    if ordered and to_add:
        first = ordered[0]["metadata"]["name"]
        sizes[first] = max(0, sizes[first] + to_add - added)
    return sizes
