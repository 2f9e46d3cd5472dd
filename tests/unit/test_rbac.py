"""RBAC rule matching, the policy index, aggregation, escalation coverage, bootstrap reconciliation and the
Node authorizer's graph, without a server."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from apiserver.auth.authn import UserInfo
from apiserver.auth.bootstrap_policy import AUTOUPDATE, CLUSTER_ROLES, reconcile_binding, reconcile_role
from apiserver.auth.node_authz import NodeAuthorizer, NodeGraph, pod_references
from apiserver.auth.rbac import RbacPolicy
from apiserver.auth.rbac_rules import (
    CLUSTER_ROLES_KEY,
    ROLE_BINDINGS_KEY,
    ROLES_KEY,
    Rule,
    forbidden_error,
    missing_rules,
    rule_allows,
)
from apiserver.http.requestinfo import RequestInfo, parse_request
from apiserver.storage.records import Change

ALICE = UserInfo("alice", ("dev", "system:authenticated"))


def attrs(verb: str, resource: str, namespace: str = "", name: str = "", group: str = "", sub: str = "") -> RequestInfo:
    return RequestInfo(True, "", verb, group, "v1", resource, sub, namespace, name)


def rule(**fields: Any) -> Rule:
    return Rule.from_dict(fields)


class Changes:
    """Feeds objects to an index the way the change stream does."""

    def __init__(self) -> None:
        self.rv = 0

    def __call__(self, resource: str, obj: dict[str, Any], event: str = "ADDED") -> list[Change]:
        self.rv += 1
        meta = obj["metadata"]
        return [Change(self.rv, event, resource, meta.get("namespace", ""), meta["name"], orjson.dumps(obj))]


def role(name: str, rules: list[dict[str, Any]], namespace: str = "", labels: dict[str, str] | None = None) -> dict:
    meta: dict[str, Any] = {"name": name, "labels": labels or {}}
    if namespace:
        meta["namespace"] = namespace
    return {"metadata": meta, "rules": rules}


def binding(name: str, kind: str, role_name: str, subjects: list[dict[str, str]], namespace: str = "") -> dict:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    return {"metadata": meta, "roleRef": {"kind": kind, "name": role_name}, "subjects": subjects}


# -- rules -----------------------------------------------------------------------------------------------
def test_subresources_need_their_own_grant_or_a_star_prefix() -> None:
    logs = rule(verbs=["get"], apiGroups=[""], resources=["pods/log"])
    assert rule_allows(logs, attrs("get", "pods", "ns", "p", sub="log"))
    assert not rule_allows(logs, attrs("get", "pods", "ns", "p"))
    any_scale = rule(verbs=["patch"], apiGroups=["apps"], resources=["*/scale"])
    assert rule_allows(any_scale, attrs("patch", "deployments", "ns", "web", "apps", "scale"))
    assert not rule_allows(any_scale, attrs("patch", "deployments", "ns", "web", "apps"))
    pods = rule(verbs=["*"], apiGroups=[""], resources=["pods"])
    assert not rule_allows(pods, attrs("get", "pods", "ns", "p", sub="log"))


def test_resource_names_limit_named_requests_only() -> None:
    one = rule(verbs=["get", "list"], apiGroups=[""], resources=["configmaps"], resourceNames=["app"])
    assert rule_allows(one, attrs("get", "configmaps", "ns", "app"))
    assert not rule_allows(one, attrs("get", "configmaps", "ns", "other"))
    assert not rule_allows(one, attrs("list", "configmaps", "ns"))


def test_groups_and_verbs_must_match() -> None:
    deployments = rule(verbs=["get"], apiGroups=["apps"], resources=["deployments"])
    assert not rule_allows(deployments, attrs("get", "deployments", "ns", "d"))  # core group
    assert not rule_allows(deployments, attrs("delete", "deployments", "ns", "d", "apps"))
    assert rule_allows(rule(verbs=["*"], apiGroups=["*"], resources=["*"]), attrs("escalate", "roles", group="x"))


def test_non_resource_urls_with_trailing_star() -> None:
    discovery = rule(verbs=["get"], nonResourceURLs=["/apis/*", "/version"])
    assert rule_allows(discovery, parse_request("GET", "/apis/apps", False))
    assert rule_allows(discovery, parse_request("GET", "/version", False))
    assert not rule_allows(discovery, parse_request("GET", "/versions", False))
    assert not rule_allows(discovery, parse_request("POST", "/apis/apps", False))
    assert not rule_allows(discovery, attrs("get", "pods", "ns"))


def test_forbidden_message_is_kubes() -> None:
    error = forbidden_error(ALICE, attrs("list", "pods", "ns"))
    assert error.code == 403
    assert (
        error.message
        == 'pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the namespace "ns"'
    )
    scaled = forbidden_error(ALICE, attrs("patch", "deployments", "ns", "web", "apps", "scale"))
    assert scaled.message.startswith(
        'deployments.apps "web" is forbidden: User "alice" cannot patch resource "deployments/scale"'
    )
    own_namespace = forbidden_error(ALICE, parse_request("GET", "/api/v1/namespaces/team", False))
    assert own_namespace.message.endswith('in the namespace "team"')


# -- the index ------------------------------------------------------------------------------------------
def test_role_binding_grants_only_in_its_namespace_and_follows_changes() -> None:
    policy, feed = RbacPolicy(), Changes()
    policy.observe(feed(ROLES_KEY, role("reader", [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}], "a")))
    subjects = [{"kind": "Group", "name": "dev"}]
    policy.observe(feed(ROLE_BINDINGS_KEY, binding("rb", "Role", "reader", subjects, "a")))
    assert policy.allows(ALICE, attrs("get", "pods", "a", "p"))
    assert not policy.allows(ALICE, attrs("get", "pods", "b", "p"))
    assert not policy.allows(UserInfo("bob", ("ops",)), attrs("get", "pods", "a", "p"))
    policy.observe(feed(ROLE_BINDINGS_KEY, binding("rb", "Role", "reader", subjects, "a"), "DELETED"))
    assert not policy.allows(ALICE, attrs("get", "pods", "a", "p"))


def test_service_account_subjects_are_their_user_names() -> None:
    policy, feed = RbacPolicy(), Changes()
    policy.observe(
        feed(CLUSTER_ROLES_KEY, role("lister", [{"verbs": ["list"], "apiGroups": [""], "resources": ["*"]}]))
    )
    subjects = [{"kind": "ServiceAccount", "name": "robot"}]  # namespace defaults to the binding's
    policy.observe(feed(ROLE_BINDINGS_KEY, binding("rb", "ClusterRole", "lister", subjects, "ci")))
    robot = UserInfo("system:serviceaccount:ci:robot", ("system:serviceaccounts", "system:authenticated"))
    assert policy.allows(robot, attrs("list", "secrets", "ci"))
    assert not policy.allows(UserInfo("system:serviceaccount:other:robot"), attrs("list", "secrets", "ci"))


def test_aggregated_cluster_roles_union_their_selected_roles_nested() -> None:
    policy, feed = RbacPolicy(), Changes()
    written: list[list[str]] = []
    policy.on_aggregation_change.append(written.append)
    for obj in CLUSTER_ROLES:
        policy.observe(feed(CLUSTER_ROLES_KEY, obj))
    admin = policy.cluster_role_rules("admin")
    assert any(rule_allows(r, attrs("create", "rolebindings", "ns", group="rbac.authorization.k8s.io")) for r in admin)
    assert any(rule_allows(r, attrs("delete", "secrets", "ns", "s")) for r in admin)  # from edit
    assert any(rule_allows(r, attrs("get", "pods", "ns", "p", sub="log")) for r in admin)  # from view
    view = policy.cluster_role_rules("view")
    assert not any(rule_allows(r, attrs("get", "secrets", "ns", "s")) for r in view)
    extra = role(
        "podtemplate-viewer",
        [{"verbs": ["get"], "apiGroups": [""], "resources": ["podtemplates"]}],
        labels={"rbac.authorization.k8s.io/aggregate-to-view": "true"},
    )
    policy.observe(feed(CLUSTER_ROLES_KEY, extra))
    for name in ("view", "edit", "admin"):
        assert any(rule_allows(r, attrs("get", "podtemplates", "ns", "t")) for r in policy.cluster_role_rules(name))
    assert {"admin", "edit", "view"} <= set(written[-1])  # the stored rules are rewritten


def test_decision_looks_only_at_the_users_own_bindings() -> None:
    policy, feed = RbacPolicy(), Changes()
    policy.observe(feed(CLUSTER_ROLES_KEY, role("r", [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}])))
    for index in range(2000):
        subjects = [{"kind": "User", "name": f"user-{index}"}]
        policy.observe(feed(ROLE_BINDINGS_KEY, binding(f"b{index}", "ClusterRole", "r", subjects, "ns")))
    visited = list(policy._bindings_for(UserInfo("user-7", ("system:authenticated",)), "ns"))
    assert [b.name for b in visited] == ["b7"]


def test_missing_rules_are_compacted_like_kube() -> None:
    owned = [Rule(("get", "list"), ("",), ("pods",))]
    wanted = [Rule(("get", "list", "delete"), ("",), ("pods", "secrets"))]
    described = [r.compact_string() for r in missing_rules(owned, wanted)]
    assert described == [
        '{APIGroups:[""], Resources:["pods"], Verbs:["delete"]}',
        '{APIGroups:[""], Resources:["secrets"], Verbs:["get" "list" "delete"]}',
    ]
    assert missing_rules([Rule(("*",), ("*",), ("*",))], wanted) == []
    assert (
        missing_rules([Rule(("get",), ("apps",), ("*/scale",))], [Rule(("get",), ("apps",), ("deployments/scale",))])
        == []
    )
    star = missing_rules(owned, [Rule(("*",), ("*",), ("*",))])
    assert [r.compact_string() for r in star] == ['{APIGroups:["*"], Resources:["*"], Verbs:["*"]}']


# -- bootstrap reconciliation ------------------------------------------------------------------------------
def test_reconcile_adds_missing_rules_and_keeps_user_changes() -> None:
    wanted = next(r for r in CLUSTER_ROLES if r["metadata"]["name"] == "system:discovery")
    user_rule = {"verbs": ["get"], "nonResourceURLs": ["/custom"]}
    existing = {**wanted, "metadata": {"name": "system:discovery", "labels": {"mine": "yes"}}, "rules": [user_rule]}
    updated = reconcile_role(existing, wanted)
    assert updated is not None
    assert updated["rules"][0] == user_rule and len(updated["rules"]) == 2
    assert updated["metadata"]["labels"]["mine"] == "yes"
    assert reconcile_role(updated, wanted) is None  # nothing left to add
    frozen = {**existing, "metadata": {"name": "system:discovery", "annotations": {AUTOUPDATE: "false"}}}
    assert reconcile_role(frozen, wanted) is None


def test_reconcile_binding_adds_subjects() -> None:
    wanted = binding("b", "ClusterRole", "r", [{"kind": "Group", "name": "system:authenticated"}])
    wanted["metadata"]["labels"] = {}
    existing = binding("b", "ClusterRole", "r", [{"kind": "User", "name": "alice"}])
    updated = reconcile_binding(existing, wanted)
    assert updated is not None and [s["name"] for s in updated["subjects"]] == ["alice", "system:authenticated"]


# -- the node graph ------------------------------------------------------------------------------------------
def pod(name: str, node: str, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns"}, "spec": {"nodeName": node, "containers": [], **spec}}


def test_pod_references_cover_volumes_env_pull_secrets_and_projected_sources() -> None:
    spec = {
        "serviceAccountName": "robot",
        "imagePullSecrets": [{"name": "pull"}],
        "containers": [
            {
                "env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "env-secret", "key": "k"}}}],
                "envFrom": [{"configMapRef": {"name": "env-cm"}}],
            }
        ],
        "volumes": [
            {"name": "s", "secret": {"secretName": "vol-secret"}},
            {"name": "c", "persistentVolumeClaim": {"claimName": "data"}},
            {"name": "p", "projected": {"sources": [{"configMap": {"name": "proj-cm"}}]}},
        ],
    }
    refs = pod_references(pod("p", "n1", **spec))
    assert refs >= {
        ("serviceaccount", "ns", "robot"),
        ("secret", "ns", "pull"),
        ("secret", "ns", "env-secret"),
        ("configmap", "ns", "env-cm"),
        ("secret", "ns", "vol-secret"),
        ("pvc", "ns", "data"),
        ("configmap", "ns", "proj-cm"),
    }


def test_node_authorizer_allows_secrets_only_through_its_pods() -> None:
    graph, feed = NodeGraph(), Changes()
    authorizer = NodeAuthorizer(graph)
    kubelet = UserInfo("system:node:n1", ("system:nodes", "system:authenticated"))
    mounted = pod("p", "n1", volumes=[{"name": "s", "secret": {"secretName": "mounted"}}])

    def decide(info: RequestInfo) -> bool:
        return asyncio.run(authorizer.authorize(kubelet, info)).allowed

    graph.observe(feed("core/pods", mounted))
    assert decide(attrs("get", "secrets", "ns", "mounted"))
    assert not decide(attrs("get", "secrets", "ns", "other"))
    assert not decide(attrs("list", "secrets", "ns"))
    assert decide(attrs("get", "pods", "ns", "anything"))
    graph.observe(feed("core/pods", mounted, "DELETED"))
    assert not decide(attrs("get", "secrets", "ns", "mounted"))
    assert not asyncio.run(authorizer.authorize(ALICE, attrs("get", "pods", "ns"))).allowed


@pytest.mark.parametrize(
    ("name", "namespace", "allowed"),
    [("n1", "kube-node-lease", True), ("n2", "kube-node-lease", False), ("n1", "default", False)],
)
def test_node_authorizer_limits_leases_to_the_nodes_own(name: str, namespace: str, allowed: bool) -> None:
    authorizer = NodeAuthorizer(NodeGraph())
    kubelet = UserInfo("system:node:n1", ("system:nodes",))
    info = attrs("update", "leases", namespace, name, "coordination.k8s.io")
    assert asyncio.run(authorizer.authorize(kubelet, info)).allowed is allowed
