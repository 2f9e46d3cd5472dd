"""RBAC: Roles, ClusterRoles and their bindings."""

from __future__ import annotations

from typing import Any

from apiserver.registry import printing as p
from apiserver.registry.base import AGE_COLUMN, NAME_COLUMN, Column, Obj, Strategy, age_of
from apiserver.registry.cluster import CREATED_AT_COLUMN, created_at
from skiff.api import validation as v
from skiff.api.errors import Cause

RBAC_GROUP = "rbac.authorization.k8s.io"
SUBJECT_KINDS = ("ServiceAccount", "User", "Group")


class RoleStrategy(Strategy):
    """Roles and ClusterRoles: a list of rules, each granting verbs on resources or URLs."""

    tracks_generation = False

    name_rule = staticmethod(v.name_is_path_segment)

    def validate(self, obj: Obj) -> list[Cause]:
        causes: list[Cause] = []
        namespaced = self.resource.namespaced
        aggregated = obj.get("aggregationRule") is not None
        for position, rule in enumerate(obj.get("rules") or []):
            causes += validate_policy_rule(rule, f"rules[{position}]", namespaced)
        if aggregated:
            selectors = (obj.get("aggregationRule") or {}).get("clusterRoleSelectors") or []
            for position, selector in enumerate(selectors):
                path = f"aggregationRule.clusterRoleSelectors[{position}]"
                causes += v.validate_label_selector(selector, path)
        return causes

    def table_columns(self) -> list[Column]:
        return [NAME_COLUMN, CREATED_AT_COLUMN]

    def table_row(self, obj: Obj) -> list[Any]:
        return [p.name(obj), created_at(obj)]


def validate_policy_rule(rule: Obj, path: str, namespaced: bool) -> list[Cause]:
    causes: list[Cause] = []
    if not rule.get("verbs"):
        causes.append(v.required(f"{path}.verbs", "verbs must contain at least one value"))
    urls = rule.get("nonResourceURLs") or []
    if urls:
        if namespaced:
            causes.append(
                v.invalid(f"{path}.nonResourceURLs", urls, "namespaced rules cannot apply to non-resource URLs")
            )
        if rule.get("apiGroups") or rule.get("resources") or rule.get("resourceNames"):
            detail = "rules cannot apply to both regular resources and non-resource URLs"
            causes.append(v.invalid(f"{path}.nonResourceURLs", urls, detail))
        return causes
    if not rule.get("apiGroups"):
        causes.append(v.required(f"{path}.apiGroups", "resource rules must supply at least one api group"))
    if not rule.get("resources"):
        causes.append(v.required(f"{path}.resources", "resource rules must supply at least one resource"))
    return causes


class RoleBindingStrategy(Strategy):
    """RoleBindings and ClusterRoleBindings: who gets the rules of which role."""

    tracks_generation = False

    name_rule = staticmethod(v.name_is_path_segment)

    def validate(self, obj: Obj) -> list[Cause]:
        causes = self._validate_role_ref(obj.get("roleRef") or {})
        for position, subject in enumerate(obj.get("subjects") or []):
            causes += self._validate_subject(subject, f"subjects[{position}]")
        return causes

    def _validate_role_ref(self, ref: Obj) -> list[Cause]:
        causes = v.one_of("roleRef.apiGroup", ref.get("apiGroup", ""), (RBAC_GROUP,), allow_empty=False)
        kinds = ("Role", "ClusterRole") if self.resource.namespaced else ("ClusterRole",)
        causes += v.one_of("roleRef.kind", ref.get("kind", ""), kinds, allow_empty=False)
        name = ref.get("name") or ""
        if not name:
            causes.append(v.required("roleRef.name"))
        else:
            causes += v.invalid_each("roleRef.name", name, v.path_segment_name(name))
        return causes

    def _validate_subject(self, subject: Obj, path: str) -> list[Cause]:
        name, kind = subject.get("name") or "", subject.get("kind")
        causes = [] if name else [v.required(f"{path}.name")]
        if kind == "ServiceAccount":
            if name:
                causes += v.invalid_each(f"{path}.name", name, v.dns1123_subdomain(name))
            causes += v.one_of(f"{path}.apiGroup", subject.get("apiGroup", ""), ("",))
            if not self.resource.namespaced and not subject.get("namespace"):
                causes.append(v.required(f"{path}.namespace"))
        elif kind in ("User", "Group"):
            causes += v.one_of(f"{path}.apiGroup", subject.get("apiGroup", ""), (RBAC_GROUP,), allow_empty=False)
        else:
            causes.append(v.not_supported(f"{path}.kind", kind, SUBJECT_KINDS))
        return causes

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        if new.get("roleRef") != old.get("roleRef"):
            return [v.invalid("roleRef", new.get("roleRef"), "cannot change roleRef")]
        return []

    def table_columns(self) -> list[Column]:
        return [
            NAME_COLUMN,
            p.column("Role", description="The role the binding grants."),
            AGE_COLUMN,
            p.column("Users", description="Users in the binding.", wide=True),
            p.column("Groups", description="Groups in the binding.", wide=True),
            p.column("ServiceAccounts", description="ServiceAccounts in the binding.", wide=True),
        ]

    def table_row(self, obj: Obj) -> list[Any]:
        ref = obj.get("roleRef") or {}
        subjects = obj.get("subjects") or []
        users = [s.get("name", "") for s in subjects if s.get("kind") == "User"]
        groups = [s.get("name", "") for s in subjects if s.get("kind") == "Group"]
        accounts = [
            f"{s.get('namespace', '')}/{s.get('name', '')}" for s in subjects if s.get("kind") == "ServiceAccount"
        ]
        role = f"{ref.get('kind', '')}/{ref.get('name', '')}"
        return [p.name(obj), role, age_of(obj), ", ".join(users), ", ".join(groups), ", ".join(accounts)]
