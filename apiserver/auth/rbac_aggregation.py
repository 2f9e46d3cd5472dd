"""Aggregated ClusterRoles (`aggregationRule.clusterRoleSelectors`): the union of the rules of the
ClusterRoles their selectors match, and the writer that stores that union in the aggregated role's
`rules`, as kube-controller-manager's clusterrole-aggregation controller does, so that
`kubectl get clusterrole admin -o yaml` shows them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from apiserver.auth.rbac_rules import CLUSTER_ROLES_KEY, Rule
from apiserver.storage.records import VersionConflict
from skiff.api.errors import ApiError
from skiff.api.selectors import LabelSelector, selector_from_object

if TYPE_CHECKING:
    from apiserver.auth.rbac import RbacPolicy
    from apiserver.storage.store import Store

log = logging.getLogger("skiff.rbac")


def aggregation_selectors(obj: dict[str, Any]) -> tuple[LabelSelector, ...] | None:
    rule = obj.get("aggregationRule")
    if not isinstance(rule, dict):
        return None
    selectors = []
    for selector in rule.get("clusterRoleSelectors") or ():
        with contextlib.suppress(ApiError):
            selectors.append(selector_from_object(selector))
    return tuple(selectors)


def aggregate(cluster_roles: Mapping[str, Any]) -> dict[str, tuple[Rule, ...]]:
    """The rules of every aggregated ClusterRole: the union, in name order, of the roles its selectors
    match, themselves aggregated first when they are aggregated too (a cycle stops at the role it
    started from)."""
    aggregated: dict[str, tuple[Rule, ...]] = {}

    def union(name: str, visiting: set[str]) -> tuple[Rule, ...]:
        if name in aggregated:
            return aggregated[name]
        role = cluster_roles[name]
        assert role.selectors is not None
        visiting = visiting | {name}
        rules: dict[Rule, None] = {}
        for other_name in sorted(cluster_roles):
            other = cluster_roles[other_name]
            if other_name in visiting or not any(s.matches(other.labels) for s in role.selectors):
                continue
            source = union(other_name, visiting) if other.selectors is not None else other.rules
            for rule in source:
                rules.setdefault(rule, None)
        aggregated[name] = tuple(rules)
        return aggregated[name]

    for name, role in cluster_roles.items():
        if role.selectors is not None:
            union(name, set())
    return aggregated


class AggregationWriter:
    """Writes the union of an aggregated ClusterRole's selected roles into its stored `rules`."""

    def __init__(self, policy: RbacPolicy, store: Store) -> None:
        self.policy = policy
        self.store = store
        self._pending: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        policy.on_aggregation_change.append(self.schedule)

    def schedule(self, names: list[str]) -> None:
        self._pending.update(names)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run(), name="clusterrole-aggregation")

    async def flush(self) -> None:
        """Write what is pending now (used at start, after the bootstrap policy)."""
        if self._task is not None:
            await asyncio.shield(self._task)
        if self._pending:
            await self._run()

    async def _run(self) -> None:
        while self._pending:
            name = self._pending.pop()
            try:
                await self._write(name)
            except Exception:
                log.exception("could not write the aggregated rules of clusterrole %s", name)

    async def _write(self, name: str) -> None:
        for _attempt in range(5):
            rules = self.policy.aggregated_rules(name)
            if rules is None:
                return
            stored = await self.store.get(CLUSTER_ROLES_KEY, "", name)
            if stored is None:
                return
            obj = stored.obj()
            wanted = [r.to_dict() for r in rules]
            if (obj.get("rules") or []) == wanted:
                return
            obj = {**obj, "rules": wanted}
            try:
                await self.store.update(CLUSTER_ROLES_KEY, "", name, obj, stored.rv)
                return
            except VersionConflict:
                continue
