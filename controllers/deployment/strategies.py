"""What a sync does for each kind of change: a scaling event or a paused Deployment (resize only), a
RollingUpdate step, or a Recreate step (kube's sync.go, rolling.go and recreate.go)."""

from __future__ import annotations

from typing import Any

from controllers.deployment import rollout
from controllers.deployment.status import deployment_complete
from controllers.deployment.sync import DeploymentSync

Obj = dict[str, Any]


async def scale(sync: DeploymentSync, new_rs: Obj | None, old: list[Obj]) -> None:
    """Resize for a changed spec.replicas: the only active ReplicaSet takes it all; otherwise, during a
    rolling update, every active one grows or shrinks in proportion to its size."""
    d = sync.d
    target = rollout.active_or_latest(new_rs, old)
    if target is not None:
        if rollout.spec_replicas(target) != rollout.spec_replicas(d):
            await sync.scale_rs(target, rollout.spec_replicas(d))
        return
    if rollout.is_saturated(d, new_rs):
        for rs in rollout.active(list(old)):
            await sync.scale_to(rs, 0)
        return
    if not rollout.is_rolling_update(d):
        return
    everything = {rs["metadata"]["name"]: rs for rs in rollout.active([*old, new_rs])}
    for name, size in rollout.proportional_sizes(d, list(everything.values())).items():
        await sync.scale_rs(everything[name], size)


async def resize_only(sync: DeploymentSync) -> None:
    """A scaling event, or any sync of a paused Deployment: no new ReplicaSet, no rollout progress."""
    new_rs, old = await sync.new_and_old(create=False)
    await scale(sync, new_rs, old)
    if (sync.d.get("spec") or {}).get("paused"):
        await sync.cleanup(_latest(sync, old))
    await sync.sync_status(_latest_all(sync, new_rs, old), sync.fresh(new_rs))


def _latest(sync: DeploymentSync, rss: list[Obj]) -> list[Obj]:
    return [r for rs in rss if (r := sync.fresh(rs)) is not None]


def _latest_all(sync: DeploymentSync, new_rs: Obj | None, old: list[Obj]) -> list[Obj | None]:
    return [*_latest(sync, old), sync.fresh(new_rs)]


# ---------------------------------------------------------------------------------------------------
# RollingUpdate


async def rolling_update(sync: DeploymentSync) -> None:
    new_rs, old = await sync.new_and_old(create=True)
    assert new_rs is not None
    if await _scale_up_new(sync, new_rs, [*old, new_rs]):
        await sync.sync_rollout_status(_latest_all(sync, new_rs, old), sync.fresh(new_rs))
        return
    if await _scale_down_old(sync, sync.fresh(new_rs), _latest(sync, old)):
        await sync.sync_rollout_status(_latest_all(sync, new_rs, old), sync.fresh(new_rs))
        return
    if deployment_complete(sync.d, sync.d.get("status") or {}):
        await sync.cleanup(_latest(sync, old))
    await sync.sync_rollout_status(_latest_all(sync, new_rs, old), sync.fresh(new_rs))


async def _scale_up_new(sync: DeploymentSync, new_rs: Obj, all_rss: list[Obj]) -> bool:
    desired, current = rollout.spec_replicas(sync.d), rollout.spec_replicas(new_rs)
    if current == desired:
        return False
    if current > desired:
        return await sync.scale_to(new_rs, desired)
    return await sync.scale_to(new_rs, rollout.new_rs_new_replicas(sync.d, all_rss, new_rs))


async def _scale_down_old(sync: DeploymentSync, new_rs: Obj | None, old: list[Obj]) -> bool:
    """Scale old ReplicaSets down within the availability budget: unhealthy pods first, then healthy."""
    old_active = rollout.active(list(old))
    if rollout.total_replicas(old_active) == 0:
        return False
    all_rss: list[Obj | None] = [*old_active, new_rs]
    budget = rollout.max_scaled_down(sync.d, all_rss, new_rs)
    if budget <= 0:
        return False
    cleanup = rollout.unhealthy_cleanup(old_active, budget)
    after_cleanup = rollout.with_sizes(old_active, cleanup)
    healthy = rollout.healthy_scale_down(sync.d, [*after_cleanup, new_rs], after_cleanup)
    scaled = False
    for rs in old_active:
        name = rs["metadata"]["name"]
        size = healthy.get(name, cleanup.get(name))
        if size is not None:
            scaled = await sync.scale_to(sync.fresh(rs) or rs, size) or scaled
    return scaled


# ---------------------------------------------------------------------------------------------------
# Recreate


async def recreate(sync: DeploymentSync, old_pods_running: bool) -> None:
    """Scale every old ReplicaSet to zero, wait until their pods are gone, then bring up the new one."""
    new_rs, old = await sync.new_and_old(create=False)
    scaled_down = False
    for rs in rollout.active(list(old)):
        scaled_down = await sync.scale_to(rs, 0) or scaled_down
    if scaled_down or old_pods_running or rollout.total_status(list(old), "replicas") > 0:
        await sync.sync_rollout_status(_latest_all(sync, new_rs, old), sync.fresh(new_rs))
        return
    if new_rs is None:
        new_rs, old = await sync.new_and_old(create=True)
    assert new_rs is not None
    await sync.scale_to(sync.fresh(new_rs) or new_rs, rollout.spec_replicas(sync.d))
    if deployment_complete(sync.d, sync.d.get("status") or {}):
        await sync.cleanup(_latest(sync, old))
    await sync.sync_rollout_status(_latest_all(sync, new_rs, old), sync.fresh(new_rs))
