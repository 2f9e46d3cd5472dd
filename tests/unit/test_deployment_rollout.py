"""The rolling-update arithmetic: surge and unavailability budgets, scale-up and scale-down steps, and
proportional scaling of a rollout whose size changes."""

from __future__ import annotations

from typing import Any

import pytest

from controllers.deployment import rollout

Obj = dict[str, Any]


def deployment(replicas: int, surge: int | str = "25%", unavailable: int | str = "25%", **status: int) -> Obj:
    return {
        "metadata": {"name": "web", "namespace": "default", "generation": 1},
        "spec": {
            "replicas": replicas,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}},
        },
        "status": dict(status),
    }


def rs(
    name: str,
    replicas: int,
    available: int | None = None,
    created: str = "2024-01-01T00:00:00Z",
    *,
    actual: int | None = None,
    desired: int | None = None,
    max_replicas: int | None = None,
) -> Obj:
    annotations = {}
    if desired is not None:
        annotations[rollout.DESIRED_REPLICAS] = str(desired)
    if max_replicas is not None:
        annotations[rollout.MAX_REPLICAS] = str(max_replicas)
    return {
        "metadata": {"name": name, "uid": f"uid-{name}", "creationTimestamp": created, "annotations": annotations},
        "spec": {"replicas": replicas},
        "status": {
            "replicas": replicas if actual is None else actual,
            "availableReplicas": replicas if available is None else available,
        },
    }


@pytest.mark.parametrize(
    ("surge", "unavailable", "desired", "expected"),
    [
        ("25%", "25%", 10, (3, 2)),  # 2.5 surge rounds up, 2.5 unavailable rounds down
        ("25%", "25%", 4, (1, 1)),
        ("10%", "10%", 5, (1, 0)),
        (0, "10%", 5, (0, 1)),  # both resolve to zero: one pod may be unavailable
        ("0%", "0%", 5, (0, 1)),
        (2, 0, 10, (2, 0)),
        ("100%", "100%", 3, (3, 3)),
    ],
)
def test_fenceposts_round_surge_up_and_unavailable_down(
    surge: int | str, unavailable: int | str, desired: int, expected: tuple[int, int]
) -> None:
    assert rollout.resolve_fenceposts(surge, unavailable, desired) == expected


def test_max_unavailable_never_exceeds_replicas_and_recreate_has_no_budget() -> None:
    assert rollout.max_unavailable(deployment(2, surge=0, unavailable=5)) == 2
    assert rollout.max_unavailable(deployment(0)) == 0
    recreate = {"metadata": {}, "spec": {"replicas": 4, "strategy": {"type": "Recreate"}}}
    assert rollout.max_surge(recreate) == 0
    assert rollout.max_unavailable(recreate) == 0
    assert rollout.new_rs_new_replicas(recreate, [], rs("new", 0)) == 4


def test_new_replica_set_grows_only_within_the_surge() -> None:
    d = deployment(10)
    old, new = rs("old", 10), rs("new", 0)
    assert rollout.new_rs_new_replicas(d, [old, new], new) == 3  # 10 + 3 surge = 13 pods at most
    assert rollout.new_rs_new_replicas(d, [rs("old", 8), rs("new", 3)], rs("new", 3)) == 5
    # never past the desired count, however much room there is
    assert rollout.new_rs_new_replicas(d, [rs("old", 0), rs("new", 8)], rs("new", 8)) == 10


def test_pods_still_going_away_count_against_the_surge() -> None:
    d = deployment(10)
    # the old set was told to shrink to 8 but still holds 10 pods: nothing more may start yet
    old = rs("old", 8, actual=10)
    new = rs("new", 3)
    assert rollout.new_rs_new_replicas(d, [old, new], new) == 3
    settled = rs("old", 8, actual=8)
    assert rollout.new_rs_new_replicas(d, [settled, new], new) == 5


def test_old_sets_shrink_only_while_enough_pods_stay_available() -> None:
    d = deployment(10)
    old, new = rs("old", 10), rs("new", 3, available=0)
    # 13 pods, at least 8 must stay available, 3 new ones not available yet: 2 old ones may go
    assert rollout.max_scaled_down(d, [old, new], new) == 2
    assert rollout.healthy_scale_down(d, [old, new], [old]) == {"old": 8}
    # after that step nothing more until new pods become available
    old8 = rs("old", 8)
    new5 = rs("new", 5, available=0)
    assert rollout.max_scaled_down(d, [old8, new5], new5) == 0
    # three new pods available: three more old ones may go
    new5_ready = rs("new", 5, available=3)
    assert rollout.healthy_scale_down(d, [old8, new5_ready], [old8]) == {"old": 5}


def test_availability_is_not_counted_for_pods_about_to_be_deleted() -> None:
    d = deployment(10)
    shrinking = rs("old", 8, available=10)  # status not caught up with the scale-down yet
    new = rs("new", 5, available=0)
    assert rollout.healthy_scale_down(d, [shrinking, new], [shrinking]) == {}


def test_unhealthy_old_pods_are_removed_first_oldest_set_first() -> None:
    first = rs("a", 3, available=1, created="2024-01-01T00:00:00Z")
    second = rs("b", 4, available=2, created="2024-01-02T00:00:00Z")
    assert rollout.unhealthy_cleanup([second, first], budget=3) == {"a": 1, "b": 3}
    assert rollout.unhealthy_cleanup([second, first], budget=10) == {"a": 1, "b": 2}
    assert rollout.unhealthy_cleanup([rs("c", 2)], budget=5) == {}


def test_healthy_scale_down_takes_oldest_sets_first() -> None:
    d = deployment(6, surge=0, unavailable=2)
    oldest = rs("a", 2, created="2024-01-01T00:00:00Z")
    older = rs("b", 4, created="2024-01-02T00:00:00Z")
    new = rs("new", 0, created="2024-01-03T00:00:00Z")
    assert rollout.healthy_scale_down(d, [oldest, older, new], [older, oldest]) == {"a": 0}


def test_scaling_event_is_seen_in_the_desired_replicas_annotation() -> None:
    assert rollout.is_scaling_event(deployment(10), [rs("a", 5, desired=5)])
    assert not rollout.is_scaling_event(deployment(10), [rs("a", 10, desired=10), rs("b", 0, desired=3)])
    assert not rollout.is_scaling_event(deployment(10), [rs("a", 10)])


def test_only_active_set_takes_the_whole_size() -> None:
    new, old = rs("new", 0), rs("old", 4)
    assert rollout.active_or_latest(new, [old]) is old
    assert rollout.active_or_latest(rs("new", 2), [old]) is None
    newest_old = rs("b", 0, created="2024-02-01T00:00:00Z")
    assert rollout.active_or_latest(None, [rs("a", 0), newest_old]) is newest_old


def test_proportional_scale_up_mid_rollout_keeps_each_sets_share() -> None:
    # 10 replicas mid-rollout (old 8 + new 5 = 13 = 10 + surge 3), then scaled to 20 (max 25)
    d = deployment(20)
    old = rs("old", 8, created="2024-01-01T00:00:00Z", desired=10, max_replicas=13)
    new = rs("new", 5, created="2024-01-02T00:00:00Z", desired=10, max_replicas=13)
    sizes = rollout.proportional_sizes(d, [old, new])
    assert sizes == {"old": 15, "new": 10}
    assert sum(sizes.values()) == 25


def test_proportional_scale_down_mid_rollout() -> None:
    d = deployment(5)  # max 5 + 2 = 7
    old = rs("old", 8, created="2024-01-01T00:00:00Z", desired=10, max_replicas=13)
    new = rs("new", 5, created="2024-01-02T00:00:00Z", desired=10, max_replicas=13)
    sizes = rollout.proportional_sizes(d, [old, new])
    assert sum(sizes.values()) == 7
    assert sizes == {"old": 4, "new": 3}
    assert list(sizes) == ["old", "new"]  # the largest is resized first


def test_proportional_leftover_goes_to_the_largest_and_ties_favour_newer_when_growing() -> None:
    d = deployment(4, surge=1, unavailable=0)  # max 5, was 3 + 1 = 4
    older = rs("a", 2, created="2024-01-01T00:00:00Z", desired=3, max_replicas=4)
    newer = rs("b", 2, created="2024-01-02T00:00:00Z", desired=3, max_replicas=4)
    sizes = rollout.proportional_sizes(d, [older, newer])
    assert sum(sizes.values()) == 5
    assert next(iter(sizes)) == "b"
    assert sizes["b"] == 3


def test_scaling_to_zero_empties_every_set() -> None:
    d = deployment(0)
    sizes = rollout.proportional_sizes(
        d, [rs("a", 3, desired=4, max_replicas=5), rs("b", 2, desired=4, max_replicas=5)]
    )
    assert sizes == {"a": 0, "b": 0}


def test_rounding_is_half_away_from_zero() -> None:
    assert rollout.round_half_away(2.5) == 3
    assert rollout.round_half_away(-2.5) == -3
    assert rollout.round_half_away(2.4) == 2
