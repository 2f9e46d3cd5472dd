"""RBAC: Roles, ClusterRoles and their bindings decide what a user may do.

The authorizer keeps every Role, ClusterRole, RoleBinding and ClusterRoleBinding in memory, loaded at
start and kept current from the committed change stream (`ServerState.publish`), so every API server
replica, also on a shared PostgreSQL database, decides from the same state. Bindings are indexed by
subject (user or group name, a service account as its user name), so a decision looks only at the
bindings of the requesting user and its groups, never at all bindings.

Aggregated ClusterRoles (`aggregationRule.clusterRoleSelectors`) get the union of the rules of the
ClusterRoles their selectors match, computed here whenever a ClusterRole changes; the API server
also writes that union into the aggregated role's `rules`, as kube-controller-manager's
clusterrole-aggregation controller does, so `kubectl get clusterrole admin -o yaml` shows them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from apiserver.auth.authn import UserInfo
from apiserver.auth.authz import Decision
from apiserver.http.requestinfo import RequestInfo
from apiserver.storage.store import Change, VersionConflict
from skiff.api.errors import ApiError
from skiff.api.selectors import LabelSelector, selector_from_object

if TYPE_CHECKING:
    from apiserver.storage.store import Store

log = logging.getLogger("skiff.rbac")

RBAC_GROUP = "rbac.authorization.k8s.io"
ROLES_KEY = f"{RBAC_GROUP}/roles"
CLUSTER_ROLES_KEY = f"{RBAC_GROUP}/clusterroles"
ROLE_BINDINGS_KEY = f"{RBAC_GROUP}/rolebindings"
CLUSTER_ROLE_BINDINGS_KEY = f"{RBAC_GROUP}/clusterrolebindings"
RBAC_KEYS = (ROLES_KEY, CLUSTER_ROLES_KEY, ROLE_BINDINGS_KEY, CLUSTER_ROLE_BINDINGS_KEY)

SYSTEM_MASTERS = "system:masters"
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"


# -- rules ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Rule:
    """One PolicyRule, with its lists as tuples (in the order the object gives them)."""

    verbs: tuple[str, ...]
    api_groups: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    resource_names: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, rule: dict[str, Any]) -> Rule:
        def strings(key: str) -> tuple[str, ...]:
            value = rule.get(key) or ()
            return tuple(str(v) for v in value) if isinstance(value, list | tuple) else ()

        return cls(
            strings("verbs"),
            strings("apiGroups"),
            strings("resources"),
            strings("resourceNames"),
            strings("nonResourceURLs"),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"verbs": list(self.verbs)}
        if self.api_groups:
            out["apiGroups"] = list(self.api_groups)
        if self.resources:
            out["resources"] = list(self.resources)
        if self.resource_names:
            out["resourceNames"] = list(self.resource_names)
        if self.non_resource_urls:
            out["nonResourceURLs"] = list(self.non_resource_urls)
        return out

    def compact_string(self) -> str:
        """The rule as kube prints a missing permission: `{APIGroups:[""], Resources:["pods"], Verbs:["get"]}`."""
        parts = []
        for label, values in (
            ("APIGroups", self.api_groups),
            ("Resources", self.resources),
            ("NonResourceURLs", self.non_resource_urls),
            ("ResourceNames", self.resource_names),
            ("Verbs", self.verbs),
        ):
            if values:
                parts.append(f"{label}:{go_quote_list(values)}")
        return "{" + ", ".join(parts) + "}"


def go_quote_list(values: Iterable[str]) -> str:
    """Go's `%q` of a []string: `["a" "b"]`."""
    return "[" + " ".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values) + "]"


def rules_of(obj: dict[str, Any]) -> tuple[Rule, ...]:
    return tuple(Rule.from_dict(r) for r in obj.get("rules") or () if isinstance(r, dict))


def authz_namespace(info: RequestInfo) -> str:
    """The namespace a request is authorized in: a namespace's own name for `namespaces/<name>`."""
    if info.is_resource and not info.namespace and info.resource == "namespaces" and not info.group:
        return info.name
    return info.namespace


def forbidden_error(user: UserInfo, info: RequestInfo, reason: str = "", verb: str = "") -> ApiError:
    """kube-apiserver's 403 for a request the authorizers did not allow."""
    verb = verb or info.verb
    if not info.is_resource:
        message = f'forbidden: User "{user.name}" cannot {verb} path "{info.path}"'
        return ApiError(403, "Forbidden", f"{message}: {reason}" if reason else message)
    target = f"{info.resource}.{info.group}" if info.group else info.resource
    subject = f'{target} "{info.name}"' if info.name else target
    resource = f"{info.resource}/{info.subresource}" if info.subresource else info.resource
    namespace = authz_namespace(info)
    scope = f' in the namespace "{namespace}"' if namespace else " at the cluster scope"
    message = (
        f'{subject} is forbidden: User "{user.name}" cannot {verb} resource "{resource}" '
        f'in API group "{info.group}"{scope}'
    )
    if reason:
        message += f": {reason}"
    return ApiError(403, "Forbidden", message, info.name or None, info.group, info.resource)


def rule_allows(rule: Rule, info: RequestInfo) -> bool:
    """Kubernetes' RuleAllows: verb, then API group, resource (with subresource) and name, or URL."""
    verbs = rule.verbs
    if "*" not in verbs and info.verb not in verbs:
        return False
    if not info.is_resource:
        return _url_matches(rule.non_resource_urls, info.path)
    groups = rule.api_groups
    if "*" not in groups and info.group not in groups:
        return False
    if not _resource_matches(rule.resources, info.resource, info.subresource):
        return False
    return not rule.resource_names or info.name in rule.resource_names


def _resource_matches(resources: tuple[str, ...], resource: str, subresource: str) -> bool:
    combined = f"{resource}/{subresource}" if subresource else resource
    for candidate in resources:
        if candidate == "*" or candidate == combined:
            return True
        if subresource and candidate.startswith("*/") and candidate[2:] == subresource:
            return True
    return False


def _url_matches(urls: tuple[str, ...], path: str) -> bool:
    for url in urls:
        if url == "*" or url == path:
            return True
        if url.endswith("*") and path.startswith(url[:-1]):
            return True
    return False


# -- coverage (escalation checks) ------------------------------------------------------------------------
def _breakdown(rule: Rule) -> Iterator[Rule]:
    """Split a rule into rules of one verb, group, resource and name (or one URL), as kube's Covers does."""
    if rule.non_resource_urls:
        for url in rule.non_resource_urls:
            for verb in rule.verbs:
                yield Rule((verb,), non_resource_urls=(url,))
        return
    names: tuple[str, ...] = rule.resource_names or ("",)
    for group in rule.api_groups:
        for resource in rule.resources:
            for name in names:
                for verb in rule.verbs:
                    yield Rule((verb,), (group,), (resource,), (name,) if name else ())


def _covers(owner: Rule, wanted: Rule) -> bool:
    if "*" not in owner.verbs and not all(v in owner.verbs for v in wanted.verbs):
        return False
    if wanted.non_resource_urls:
        return all(
            any(o == u or o == "*" or (o.endswith("*") and u.startswith(o[:-1])) for o in owner.non_resource_urls)
            for u in wanted.non_resource_urls
        )
    if "*" not in owner.api_groups and not all(g in owner.api_groups for g in wanted.api_groups):
        return False
    if "*" not in owner.resources:
        for resource in wanted.resources:
            if resource in owner.resources:
                continue
            if "/" not in resource or f"*/{resource.split('/', 1)[1]}" not in owner.resources:
                return False
    if not owner.resource_names:
        return True
    return bool(wanted.resource_names) and all(n in owner.resource_names for n in wanted.resource_names)


def missing_rules(owned: Iterable[Rule], requested: Iterable[Rule]) -> list[Rule]:
    """The parts of `requested` that no rule in `owned` covers, compacted (verbs merged) and sorted."""
    owned = list(owned)
    missing: list[Rule] = []
    seen: set[Rule] = set()
    for rule in requested:
        for atom in _breakdown(rule):
            if atom in seen:
                continue
            seen.add(atom)
            if not any(_covers(o, atom) for o in owned):
                missing.append(atom)
    return _compact(missing)


def _compact(rules: list[Rule]) -> list[Rule]:
    merged: dict[tuple[Any, ...], list[str]] = {}
    for rule in rules:
        key = (rule.api_groups, rule.resources, rule.resource_names, rule.non_resource_urls)
        verbs = merged.setdefault(key, [])
        verbs.extend(v for v in rule.verbs if v not in verbs)
    out = [Rule(tuple(verbs), *key) for key, verbs in merged.items()]
    return sorted(out, key=lambda r: r.compact_string())


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


def _aggregation_selectors(obj: dict[str, Any]) -> tuple[LabelSelector, ...] | None:
    rule = obj.get("aggregationRule")
    if not isinstance(rule, dict):
        return None
    selectors = []
    for selector in rule.get("clusterRoleSelectors") or ():
        with contextlib.suppress(ApiError):
            selectors.append(selector_from_object(selector))
    return tuple(selectors)


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
            _aggregation_selectors(obj) if cluster else None,
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
        aggregated: dict[str, tuple[Rule, ...]] = {}

        def union(name: str, visiting: set[str]) -> tuple[Rule, ...]:
            if name in aggregated:
                return aggregated[name]
            role = self.cluster_roles[name]
            assert role.selectors is not None
            visiting = visiting | {name}
            rules: dict[Rule, None] = {}
            for other_name in sorted(self.cluster_roles):
                other = self.cluster_roles[other_name]
                if other_name in visiting or not any(s.matches(other.labels) for s in role.selectors):
                    continue
                source = union(other_name, visiting) if other.selectors is not None else other.rules
                for rule in source:
                    rules.setdefault(rule, None)
            aggregated[name] = tuple(rules)
            return aggregated[name]

        for name, role in self.cluster_roles.items():
            if role.selectors is not None:
                union(name, set())
        self._aggregated = aggregated

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
