"""RBAC: Roles, ClusterRoles and their bindings decide what a user may do.

The authorizer keeps every Role, ClusterRole, RoleBinding and ClusterRoleBinding in memory, loaded at
start and kept current from the committed change stream (`ServerState.publish`), so every API server
replica, also on a shared PostgreSQL database, decides from the same state. Bindings are indexed by
subject (user or group name, a service account as its user name), so a decision looks only at the
bindings of the requesting user and its groups, never at all bindings.

What a rule allows is in `rbac_rules`; the rules of aggregated ClusterRoles, and writing them back
into the stored roles, in `rbac_aggregation`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from apiserver.auth.authn import UserInfo
from apiserver.auth.authz import Decision
from apiserver.auth.rbac_aggregation import AggregationWriter, aggregate, aggregation_selectors
from apiserver.auth.rbac_rules import (
    CLUSTER_ROLE_BINDINGS_KEY,
    CLUSTER_ROLES_KEY,
    RBAC_KEYS,
    ROLE_BINDINGS_KEY,
    ROLES_KEY,
    SERVICE_ACCOUNT_PREFIX,
    SYSTEM_MASTERS,
    Rule,
    authz_namespace,
    rule_allows,
    rules_of,
)
from apiserver.auth.rbac_rules import forbidden_error as forbidden_error  # the API server's 403s
from apiserver.http.requestinfo import RequestInfo
from apiserver.storage.records import Change
from skiff.api.selectors import LabelSelector

if TYPE_CHECKING:
    from apiserver.storage.store import Store

log = logging.getLogger("skiff.rbac")


# -- the in-memory policy ------------------------------------------------------------------------------
@dataclass(slots=True)
class _Role:
    name: str
    labels: dict[str, str]
    rules: tuple[Rule, ...]
    stored_rules: list[Any]
    selectors: tuple[LabelSelector, ...] | None = None  # set for aggregated ClusterRoles
    resource_version: str = ""


@dataclass(frozen=True, slots=True)
class _Binding:
    namespace: str
    name: str
    role_kind: str
    role_name: str
    subject_keys: tuple[str, ...]


def user_key(name: str) -> str:
    return "u:" + name


def group_key(name: str) -> str:
    return "g:" + name


def subject_keys_of(binding: dict[str, Any], namespace: str) -> tuple[str, ...]:
    keys: list[str] = []
    for subject in binding.get("subjects") or ():
        if not isinstance(subject, dict):
            continue
        kind, name = subject.get("kind"), str(subject.get("name") or "")
        if not name:
            continue
        if kind == "User":
            keys.append(user_key(name))
        elif kind == "Group":
            keys.append(group_key(name))
        elif kind == "ServiceAccount":
            sa_namespace = subject.get("namespace") or namespace
            keys.append(user_key(f"{SERVICE_ACCOUNT_PREFIX}{sa_namespace}:{name}"))
    return tuple(dict.fromkeys(keys))


def keys_of_user(user: UserInfo) -> list[str]:
    return [user_key(user.name), *(group_key(g) for g in user.groups)]


class RbacPolicy:
    """Every RBAC object, indexed for per-request decisions."""

    def __init__(self) -> None:
        self.roles: dict[tuple[str, str], _Role] = {}
        self.cluster_roles: dict[str, _Role] = {}
        self.role_bindings: dict[tuple[str, str], _Binding] = {}
        self.cluster_role_bindings: dict[str, _Binding] = {}
        # subject key → ClusterRoleBinding names; subject key → namespace → RoleBinding names
        self._crb_by_subject: dict[str, set[str]] = {}
        self._rb_by_subject: dict[str, dict[str, set[str]]] = {}
        self._aggregated: dict[str, tuple[Rule, ...]] = {}
        self._aggregation_dirty = True
        self._loaded_rv: dict[str, int] = {}
        self.on_aggregation_change: list[Any] = []
        self.aggregation_writer: AggregationWriter | None = None

    # -- loading and following the change stream --------------------------------------------------
    async def load(self, store: Store) -> None:
        """Read every RBAC object. Changes a list's snapshot already holds are then ignored, per resource."""
        for key in RBAC_KEYS:
            page = await store.list(key, None)
            self._loaded_rv[key] = page.rv
            for namespace, name, data in page.rows:
                self.apply(key, namespace, name, orjson.loads(data))
        self._changed_cluster_roles()

    def observe(self, changes: Iterable[Change]) -> None:
        touched_cluster_roles = False
        for change in changes:
            if change.resource not in RBAC_KEYS or change.rv <= self._loaded_rv.get(change.resource, 0):
                continue
            obj = None if change.event == "DELETED" else change.obj()
            self.apply(change.resource, change.namespace, change.name, obj)
            touched_cluster_roles |= change.resource == CLUSTER_ROLES_KEY
        if touched_cluster_roles:
            self._changed_cluster_roles()

    def apply(self, resource: str, namespace: str, name: str, obj: dict[str, Any] | None) -> None:
        if resource == ROLES_KEY:
            if obj is None:
                self.roles.pop((namespace, name), None)
            else:
                self.roles[(namespace, name)] = self._role(name, obj)
        elif resource == CLUSTER_ROLES_KEY:
            if obj is None:
                self.cluster_roles.pop(name, None)
            else:
                self.cluster_roles[name] = self._role(name, obj, cluster=True)
            self._aggregation_dirty = True
        elif resource == ROLE_BINDINGS_KEY:
            self._unindex(self.role_bindings.pop((namespace, name), None))
            if obj is not None:
                binding = self._binding(namespace, name, obj)
                self.role_bindings[(namespace, name)] = binding
                for key in binding.subject_keys:
                    self._rb_by_subject.setdefault(key, {}).setdefault(namespace, set()).add(name)
        elif resource == CLUSTER_ROLE_BINDINGS_KEY:
            self._unindex(self.cluster_role_bindings.pop(name, None))
            if obj is not None:
                binding = self._binding("", name, obj)
                self.cluster_role_bindings[name] = binding
                for key in binding.subject_keys:
                    self._crb_by_subject.setdefault(key, set()).add(name)

    @staticmethod
    def _role(name: str, obj: dict[str, Any], cluster: bool = False) -> _Role:
        metadata = obj.get("metadata") or {}
        return _Role(
            name,
            dict(metadata.get("labels") or {}),
            rules_of(obj),
            list(obj.get("rules") or []),
            aggregation_selectors(obj) if cluster else None,
            str(metadata.get("resourceVersion", "")),
        )

    @staticmethod
    def _binding(namespace: str, name: str, obj: dict[str, Any]) -> _Binding:
        ref = obj.get("roleRef") or {}
        return _Binding(
            namespace,
            name,
            str(ref.get("kind") or ""),
            str(ref.get("name") or ""),
            subject_keys_of(obj, namespace),
        )

    def _unindex(self, binding: _Binding | None) -> None:
        if binding is None:
            return
        for key in binding.subject_keys:
            if binding.namespace:
                by_namespace = self._rb_by_subject.get(key, {})
                names = by_namespace.get(binding.namespace)
                if names is not None:
                    names.discard(binding.name)
                    if not names:
                        del by_namespace[binding.namespace]
                if not by_namespace:
                    self._rb_by_subject.pop(key, None)
            else:
                names = self._crb_by_subject.get(key)
                if names is not None:
                    names.discard(binding.name)
                    if not names:
                        del self._crb_by_subject[key]

    # -- aggregation ---------------------------------------------------------------------------------
    def _changed_cluster_roles(self) -> None:
        self._aggregation_dirty = True
        self._recompute_aggregation()
        stale = [
            name
            for name, rules in self._aggregated.items()
            if [r.to_dict() for r in rules] != self.cluster_roles[name].stored_rules
        ]
        if stale:
            for callback in self.on_aggregation_change:
                callback(stale)

    def _recompute_aggregation(self) -> None:
        if not self._aggregation_dirty:
            return
        self._aggregation_dirty = False
        self._aggregated = aggregate(self.cluster_roles)

    def aggregated_rules(self, name: str) -> tuple[Rule, ...] | None:
        """The rules an aggregated ClusterRole should hold; None for a role without aggregationRule."""
        self._recompute_aggregation()
        return self._aggregated.get(name)

    def cluster_role_rules(self, name: str) -> tuple[Rule, ...]:
        role = self.cluster_roles.get(name)
        if role is None:
            return ()
        if role.selectors is not None:
            self._recompute_aggregation()
            return self._aggregated.get(name, ())
        return role.rules

    def role_ref_rules(self, kind: str, name: str, namespace: str) -> tuple[Rule, ...] | None:
        """The rules a binding's roleRef grants; None when the role does not exist."""
        if kind == "ClusterRole":
            return self.cluster_role_rules(name) if name in self.cluster_roles else None
        role = self.roles.get((namespace, name))
        return role.rules if role is not None else None

    # -- decisions -----------------------------------------------------------------------------------
    def _bindings_for(self, user: UserInfo, namespace: str) -> Iterator[_Binding]:
        seen: set[tuple[str, str]] = set()
        for key in keys_of_user(user):
            for name in self._crb_by_subject.get(key, ()):
                if ("", name) not in seen:
                    seen.add(("", name))
                    yield self.cluster_role_bindings[name]
            if namespace:
                for name in self._rb_by_subject.get(key, {}).get(namespace, ()):
                    if (namespace, name) not in seen:
                        seen.add((namespace, name))
                        yield self.role_bindings[(namespace, name)]

    def _binding_rules(self, binding: _Binding) -> tuple[Rule, ...]:
        if binding.role_kind == "ClusterRole":
            return self.cluster_role_rules(binding.role_name)
        if binding.role_kind == "Role" and binding.namespace:
            role = self.roles.get((binding.namespace, binding.role_name))
            return role.rules if role is not None else ()
        return ()

    def allows(self, user: UserInfo, info: RequestInfo) -> bool:
        namespace = authz_namespace(info)
        for binding in self._bindings_for(user, namespace):
            for rule in self._binding_rules(binding):
                if rule_allows(rule, info):
                    return True
        return False

    def rules_for(self, user: UserInfo, namespace: str) -> list[Rule]:
        """Every rule that applies to `user` in `namespace` (cluster-wide rules when it is empty)."""
        rules: dict[Rule, None] = {}
        for binding in self._bindings_for(user, namespace):
            for rule in self._binding_rules(binding):
                rules.setdefault(rule, None)
        return list(rules)


# -- the authorizer --------------------------------------------------------------------------------------
class RBACAuthorizer:
    """Allows what a user's roles grant; `system:masters` may do everything, like kube's superuser group."""

    def __init__(self, policy: RbacPolicy) -> None:
        self.policy = policy

    async def authorize(self, user: UserInfo, info: RequestInfo) -> Decision:
        if SYSTEM_MASTERS in user.groups or self.policy.allows(user, info):
            return Decision(True, "")
        return Decision(False, "")


# -- wiring ------------------------------------------------------------------------------------------------
AUTHORIZATION_MODES = ("Node", "RBAC", "AlwaysAllow")


def parse_authorization_modes(text: str) -> list[str]:
    """`--authorization-mode`: a comma-separated list of Node, RBAC and AlwaysAllow, in order."""
    modes = [m.strip() for m in text.split(",") if m.strip()]
    if not modes:
        raise ValueError("at least one authorization mode is required")
    for mode in modes:
        if mode not in AUTHORIZATION_MODES:
            raise ValueError(f"unknown authorization mode {mode!r}; choose from {', '.join(AUTHORIZATION_MODES)}")
    if len(set(modes)) != len(modes):
        raise ValueError("an authorization mode may be given only once")
    return modes


def _safely(observe: Any) -> Any:
    def call(changes: list[Change]) -> None:
        try:
            observe(changes)
        except Exception:
            log.exception("could not apply changes to an authorization index")

    return call


async def install_authorization(state: Any) -> None:
    """Build the authorizer chain from `--authorization-mode`, loading the indexes it needs.

    Runs before the server follows the change stream, so the indexes miss no change.
    """
    from apiserver.auth.authz import AlwaysAllow, AuthorizerChain
    from apiserver.auth.node_authz import NodeAuthorizer, NodeGraph

    authorizers: list[Any] = []
    for mode in parse_authorization_modes(state.config.authorization_mode):
        if mode == "AlwaysAllow":
            authorizers.append(AlwaysAllow())
        elif mode == "Node":
            graph = NodeGraph()
            await graph.load(state.store)
            state.change_observers.append(_safely(graph.observe))
            authorizers.append(NodeAuthorizer(graph))
        elif mode == "RBAC":
            policy = RbacPolicy()
            policy.aggregation_writer = AggregationWriter(policy, state.store)
            await policy.load(state.store)
            state.change_observers.append(_safely(policy.observe))
            state.rbac_policy = policy
            authorizers.append(RBACAuthorizer(policy))
    state.authz = authorizers[0] if len(authorizers) == 1 else AuthorizerChain(authorizers)


async def reconcile_bootstrap_policy(state: Any) -> None:
    """With RBAC on: create or complete the default roles and bindings, then the aggregated roles' rules."""
    from apiserver.auth.bootstrap_policy import ensure_bootstrap_policy

    policy: RbacPolicy | None = state.rbac_policy
    if policy is None:
        return
    await ensure_bootstrap_policy(state.store)
    # On PostgreSQL the changes arrive through the log tailer; let them reach the index first.
    await state.hub.wait_for(await state.store.current_rv(), 10.0)
    if policy.aggregation_writer is not None:
        await policy.aggregation_writer.flush()
