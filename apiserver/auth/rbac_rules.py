"""RBAC rules: what one PolicyRule grants, whether it allows a request, and which of a set of rules
another set does not cover (the escalation check: nobody grants what they do not hold)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from apiserver.auth.authn import UserInfo
from apiserver.http.requestinfo import RequestInfo
from skiff.api.errors import ApiError

RBAC_GROUP = "rbac.authorization.k8s.io"
ROLES_KEY = f"{RBAC_GROUP}/roles"
CLUSTER_ROLES_KEY = f"{RBAC_GROUP}/clusterroles"
ROLE_BINDINGS_KEY = f"{RBAC_GROUP}/rolebindings"
CLUSTER_ROLE_BINDINGS_KEY = f"{RBAC_GROUP}/clusterrolebindings"
RBAC_KEYS = (ROLES_KEY, CLUSTER_ROLES_KEY, ROLE_BINDINGS_KEY, CLUSTER_ROLE_BINDINGS_KEY)

SYSTEM_MASTERS = "system:masters"
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"


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
