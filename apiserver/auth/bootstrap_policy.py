"""The default RBAC policy every cluster has, reconciled at each API server start.

Like kube-apiserver's bootstrap policy: missing roles and bindings are created; existing ones get the
rules, labels, annotations, aggregation selectors and subjects they lack added, never removed, so
changes a user made stay. An object annotated `rbac.authorization.kubernetes.io/autoupdate: "false"`
is left alone entirely.
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Any

from apiserver.auth.rbac_rules import CLUSTER_ROLE_BINDINGS_KEY, CLUSTER_ROLES_KEY, RBAC_GROUP, Rule, missing_rules
from apiserver.http.objects import now_rfc3339
from apiserver.storage.records import KeyExists, KeyNotFound, VersionConflict

if TYPE_CHECKING:
    from apiserver.storage.store import Store

log = logging.getLogger("skiff.rbac")

AUTOUPDATE = "rbac.authorization.kubernetes.io/autoupdate"
BOOTSTRAPPING = {"kubernetes.io/bootstrapping": "rbac-defaults"}
AGGREGATE_TO = "rbac.authorization.k8s.io/aggregate-to-"

READ = ("get", "list", "watch")
WRITE = ("create", "delete", "deletecollection", "patch", "update")
ALL = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")

AUTHENTICATED = "system:authenticated"
UNAUTHENTICATED = "system:unauthenticated"


def r(
    verbs: tuple[str, ...] | str, groups: tuple[str, ...] | str, *resources: str, names: tuple[str, ...] = ()
) -> Rule:
    verbs = (verbs,) if isinstance(verbs, str) else verbs
    groups = (groups,) if isinstance(groups, str) else groups
    return Rule(tuple(verbs), tuple(groups), tuple(resources), names)


def urls(verbs: tuple[str, ...] | str, *paths: str) -> Rule:
    return Rule((verbs,) if isinstance(verbs, str) else tuple(verbs), non_resource_urls=tuple(paths))


# -- roles -----------------------------------------------------------------------------------------------
VIEW_RULES = (
    r(READ, "", "pods", "replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts",
      "services", "services/status", "endpoints", "persistentvolumeclaims", "persistentvolumeclaims/status",
      "configmaps"),
    r(READ, "", "limitranges", "resourcequotas", "bindings", "events", "pods/status", "resourcequotas/status",
      "namespaces/status", "replicationcontrollers/status", "pods/log"),
    r(READ, "", "namespaces"),
    r(READ, "discovery.k8s.io", "endpointslices"),
    r(READ, "apps", "controllerrevisions", "statefulsets", "statefulsets/scale", "statefulsets/status",
      "daemonsets", "daemonsets/status", "deployments", "deployments/scale", "deployments/status",
      "replicasets", "replicasets/scale", "replicasets/status"),
    r(READ, "autoscaling", "horizontalpodautoscalers", "horizontalpodautoscalers/status"),
    r(READ, "batch", "cronjobs", "cronjobs/status", "jobs", "jobs/status"),
    r(READ, "policy", "poddisruptionbudgets", "poddisruptionbudgets/status"),
    r(READ, "networking.k8s.io", "ingresses", "ingresses/status", "networkpolicies"),
    r(READ, "coordination.k8s.io", "leases"),
    r(READ, "events.k8s.io", "events"),
)  # fmt: skip

EDIT_RULES = (
    r(READ, "", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy", "secrets", "services/proxy"),
    r("impersonate", "", "serviceaccounts"),
    r(WRITE, "", "pods", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy"),
    r("create", "", "pods/eviction"),
    r(WRITE, "", "configmaps", "events", "persistentvolumeclaims", "replicationcontrollers",
      "replicationcontrollers/scale", "secrets", "serviceaccounts", "services", "services/proxy"),
    r("create", "", "serviceaccounts/token"),
    r(WRITE, "apps", "daemonsets", "deployments", "deployments/rollback", "deployments/scale", "replicasets",
      "replicasets/scale", "statefulsets", "statefulsets/scale"),
    r(WRITE, "autoscaling", "horizontalpodautoscalers"),
    r(WRITE, "batch", "cronjobs", "jobs"),
    r(WRITE, "policy", "poddisruptionbudgets"),
    r(WRITE, "networking.k8s.io", "ingresses", "networkpolicies"),
    r(WRITE, "coordination.k8s.io", "leases"),
)  # fmt: skip

ADMIN_RULES = (
    r("create", "authorization.k8s.io", "localsubjectaccessreviews"),
    r(ALL, RBAC_GROUP, "rolebindings", "roles"),
)

NODE_RULES = (
    # What a kubelet needs; the Node authorizer applies these to node identities, after its
    # object-by-object checks (secrets, config maps, volumes, tokens, leases only for its own pods).
    r(("create", "get", "list", "watch"), "", "nodes"),
    r(("update", "patch"), "", "nodes/status"),
    r(("update", "patch"), "", "nodes"),
    r(("create", "update", "patch"), "", "events"),
    r(("create", "update", "patch"), "events.k8s.io", "events"),
    r(READ, "", "pods"),
    r(("create", "delete"), "", "pods"),
    r(("update", "patch"), "", "pods/status"),
    r("create", "", "pods/eviction"),
    r(READ, "", "services", "endpoints"),
    r("get", "", "secrets", "configmaps", "persistentvolumeclaims", "persistentvolumes"),
    r(("update", "patch"), "", "persistentvolumeclaims/status"),
    r("create", "", "serviceaccounts/token"),
    r("create", "authentication.k8s.io", "tokenreviews"),
    r("create", "authorization.k8s.io", "subjectaccessreviews", "localsubjectaccessreviews"),
    r(("create", "get", "list", "watch"), "certificates.k8s.io", "certificatesigningrequests"),
    r(("get", "create", "update", "patch", "delete"), "coordination.k8s.io", "leases"),
    r(("get", "list", "watch"), "storage.k8s.io", "volumeattachments", "csidrivers"),
    r(("get", "create", "update", "patch", "delete"), "storage.k8s.io", "csinodes"),
    r(READ, "node.k8s.io", "runtimeclasses"),
)

CONTROLLER_MANAGER_RULES = (
    # kube's role for kube-controller-manager (list/watch everything, leader election, tokens), plus what
    # Skiff's controllers write: they run under this one identity rather than a service account each.
    r(("list", "watch"), "*", "*"),
    # The garbage collector reads owners and patches or deletes dependents of every kind, as kube's
    # generic-garbage-collector role allows.
    r(("get", "patch", "update", "delete"), "*", "*"),
    r(("create", "patch", "update"), ("", "events.k8s.io"), "events"),
    r("create", "coordination.k8s.io", "leases"),
    r(("get", "update"), "coordination.k8s.io", "leases", names=("kube-controller-manager",)),
    r(("create", "get", "update"), "", "secrets", "serviceaccounts"),
    r("create", "", "serviceaccounts/token"),
    r("delete", "", "secrets"),
    r("get", "", "configmaps", "namespaces"),
    r("create", "authentication.k8s.io", "tokenreviews"),
    r("create", "authorization.k8s.io", "subjectaccessreviews"),
    r(("get", "update", "patch", "delete"), "", "namespaces"),
    r("update", "", "namespaces/finalize", "namespaces/status"),
    r("deletecollection", "*", "*"),
    r(("get", "create", "update", "patch", "delete"), "", "pods", "endpoints", "replicationcontrollers",
      "persistentvolumeclaims", "persistentvolumes", "services", "configmaps"),
    r(("update", "patch"), "", "pods/status", "replicationcontrollers/status", "services/status",
      "persistentvolumeclaims/status", "persistentvolumes/status", "resourcequotas/status"),
    r(("get", "update", "patch", "delete"), "", "nodes"),
    r(("update", "patch"), "", "nodes/status"),
    r(("get", "create", "update", "patch", "delete"), "apps", "deployments", "replicasets", "statefulsets",
      "daemonsets", "controllerrevisions"),
    r(("update", "patch"), "apps", "deployments/status", "replicasets/status", "statefulsets/status",
      "daemonsets/status", "deployments/finalizers", "replicasets/finalizers", "statefulsets/finalizers",
      "daemonsets/finalizers"),
    r(("get", "create", "update", "patch", "delete"), "batch", "jobs", "cronjobs"),
    r(("update", "patch"), "batch", "jobs/status", "cronjobs/status", "jobs/finalizers"),
    r(("get", "create", "update", "patch", "delete"), "discovery.k8s.io", "endpointslices"),
    r(("get", "update", "patch"), "autoscaling", "horizontalpodautoscalers", "horizontalpodautoscalers/status"),
    r(("get", "update", "patch"), "apps", "deployments/scale", "replicasets/scale", "statefulsets/scale"),
    r(("update", "patch"), "policy", "poddisruptionbudgets/status"),
    r(("get", "update", "patch"), "certificates.k8s.io", "certificatesigningrequests",
      "certificatesigningrequests/status", "certificatesigningrequests/approval"),
    r("update", "rbac.authorization.k8s.io", "clusterroles"),
)  # fmt: skip

SCHEDULER_RULES = (
    r(("create", "patch", "update"), ("", "events.k8s.io"), "events"),
    r("create", "coordination.k8s.io", "leases"),
    r(("get", "update"), "coordination.k8s.io", "leases", names=("kube-scheduler",)),
    r(READ, "", "nodes"),
    r(("delete", "get", "list", "watch"), "", "pods"),
    r("create", "", "bindings", "pods/binding"),
    r(("patch", "update"), "", "pods/status"),
    r(READ, "", "replicationcontrollers", "services", "namespaces", "persistentvolumeclaims",
      "persistentvolumes"),
    r(READ, "apps", "replicasets", "statefulsets"),
    r(READ, "policy", "poddisruptionbudgets"),
    r("create", "authentication.k8s.io", "tokenreviews"),
    r("create", "authorization.k8s.io", "subjectaccessreviews"),
    r(READ, "storage.k8s.io", "csinodes", "csidrivers", "storageclasses"),
    r(READ, "", "configmaps"),
)  # fmt: skip

PROXIER_RULES = (
    r(("list", "watch"), "", "services", "endpoints"),
    r(READ, "", "nodes"),
    r(("create", "patch", "update"), ("", "events.k8s.io"), "events"),
    r(("list", "watch"), "discovery.k8s.io", "endpointslices"),
    # Skiff's proxy also renders NetworkPolicy into each node's filter rules, so it reads what policies select.
    r(("list", "watch"), "", "pods", "namespaces"),
    r(("list", "watch"), "networking.k8s.io", "networkpolicies"),
)


def cluster_role(
    name: str,
    rules: tuple[Rule, ...] = (),
    labels: dict[str, str] | None = None,
    aggregate_from: str | None = None,
) -> dict[str, Any]:
    role: dict[str, Any] = {
        "apiVersion": f"{RBAC_GROUP}/v1",
        "kind": "ClusterRole",
        "metadata": {
            "name": name,
            "labels": {**BOOTSTRAPPING, **(labels or {})},
            "annotations": {AUTOUPDATE: "true"},
        },
    }
    if aggregate_from is not None:
        selector = {"matchLabels": {f"{AGGREGATE_TO}{aggregate_from}": "true"}}
        role["aggregationRule"] = {"clusterRoleSelectors": [selector]}
        role["rules"] = []
    else:
        role["rules"] = [rule.to_dict() for rule in rules]
    return role


def cluster_role_binding(name: str, role: str, *subjects: tuple[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": f"{RBAC_GROUP}/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": name, "labels": dict(BOOTSTRAPPING), "annotations": {AUTOUPDATE: "true"}},
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": role},
        "subjects": [{"apiGroup": RBAC_GROUP, "kind": kind, "name": subject} for kind, subject in subjects],
    }


def _aggregate_label(to: str) -> dict[str, str]:
    return {f"{AGGREGATE_TO}{to}": "true"}


CLUSTER_ROLES: tuple[dict[str, Any], ...] = (
    cluster_role("cluster-admin", (r("*", "*", "*"), urls("*", "*"))),
    cluster_role("admin", aggregate_from="admin"),
    cluster_role("edit", labels=_aggregate_label("admin"), aggregate_from="edit"),
    cluster_role("view", labels=_aggregate_label("edit"), aggregate_from="view"),
    cluster_role("system:aggregate-to-admin", ADMIN_RULES, _aggregate_label("admin")),
    cluster_role("system:aggregate-to-edit", EDIT_RULES, _aggregate_label("edit")),
    cluster_role("system:aggregate-to-view", VIEW_RULES, _aggregate_label("view")),
    cluster_role(
        "system:basic-user",
        (
            r("create", "authorization.k8s.io", "selfsubjectaccessreviews", "selfsubjectrulesreviews"),
            r("create", "authentication.k8s.io", "selfsubjectreviews"),
        ),
    ),
    cluster_role(
        "system:discovery",
        (
            urls(
                "get",
                "/api",
                "/api/*",
                "/apis",
                "/apis/*",
                "/healthz",
                "/livez",
                "/openapi",
                "/openapi/*",
                "/readyz",
                "/version",
                "/version/",
            ),
        ),
    ),
    cluster_role("system:public-info-viewer", (urls("get", "/healthz", "/livez", "/readyz", "/version", "/version/"),)),
    cluster_role(
        "system:service-account-issuer-discovery",
        (
            urls(
                "get",
                "/.well-known/openid-configuration",
                "/.well-known/openid-configuration/",
                "/openid/v1/jwks",
                "/openid/v1/jwks/",
            ),
        ),
    ),
    cluster_role(
        "system:monitoring", (urls("get", "/metrics", "/livez", "/readyz", "/healthz", "/livez/*", "/readyz/*"),)
    ),
    cluster_role("system:kube-controller-manager", CONTROLLER_MANAGER_RULES),
    cluster_role("system:kube-scheduler", SCHEDULER_RULES),
    # kube's system:volume-scheduler: the scheduler marks claims with the node it picked for their pods.
    cluster_role(
        "system:volume-scheduler",
        (
            r((*READ, "patch", "update"), "", "persistentvolumeclaims", "persistentvolumes"),
            r(READ, "storage.k8s.io", "storageclasses"),
        ),
    ),
    cluster_role("system:node", NODE_RULES),
    cluster_role("system:node-proxier", PROXIER_RULES),
)

CLUSTER_ROLE_BINDINGS: tuple[dict[str, Any], ...] = (
    cluster_role_binding("cluster-admin", "cluster-admin", ("Group", "system:masters")),
    cluster_role_binding("system:basic-user", "system:basic-user", ("Group", AUTHENTICATED)),
    cluster_role_binding("system:discovery", "system:discovery", ("Group", AUTHENTICATED)),
    cluster_role_binding(
        "system:public-info-viewer",
        "system:public-info-viewer",
        ("Group", AUTHENTICATED),
        ("Group", UNAUTHENTICATED),
    ),
    cluster_role_binding(
        "system:service-account-issuer-discovery",
        "system:service-account-issuer-discovery",
        ("Group", "system:serviceaccounts"),
    ),
    cluster_role_binding("system:monitoring", "system:monitoring", ("Group", "system:monitoring")),
    cluster_role_binding(
        "system:kube-controller-manager", "system:kube-controller-manager", ("User", "system:kube-controller-manager")
    ),
    cluster_role_binding("system:kube-scheduler", "system:kube-scheduler", ("User", "system:kube-scheduler")),
    cluster_role_binding("system:volume-scheduler", "system:volume-scheduler", ("User", "system:kube-scheduler")),
    # As in kube, the system:node binding has no subjects: the Node authorizer grants kubelets these rules
    # together with its per-object checks. Binding the role to system:nodes would let every kubelet read
    # every secret in the cluster.
    cluster_role_binding("system:node", "system:node"),
    cluster_role_binding("system:node-proxier", "system:node-proxier", ("User", "system:kube-proxy")),
)


# -- reconciliation --------------------------------------------------------------------------------------
def _new_metadata(obj: dict[str, Any]) -> dict[str, Any]:
    created = {**obj, "metadata": {**obj["metadata"], "uid": str(uuid.uuid4()), "creationTimestamp": now_rfc3339()}}
    return created


def reconcile_role(existing: dict[str, Any], wanted: dict[str, Any]) -> dict[str, Any] | None:
    """The role with what `wanted` adds, or None when nothing is missing (or autoupdate is off)."""
    metadata = existing.get("metadata") or {}
    if (metadata.get("annotations") or {}).get(AUTOUPDATE) == "false":
        return None
    new = {**existing, "metadata": _merged_metadata(metadata, wanted["metadata"])}
    if "aggregationRule" in wanted:
        have = list(((existing.get("aggregationRule") or {}).get("clusterRoleSelectors")) or [])
        add = [s for s in wanted["aggregationRule"]["clusterRoleSelectors"] if s not in have]
        if add or "aggregationRule" not in existing:
            new["aggregationRule"] = {"clusterRoleSelectors": have + add}
    else:
        have_rules = [Rule.from_dict(x) for x in existing.get("rules") or [] if isinstance(x, dict)]
        add_rules = [x for x in wanted["rules"] if missing_rules(have_rules, [Rule.from_dict(x)])]
        if add_rules:
            new["rules"] = list(existing.get("rules") or []) + add_rules
    return None if new == existing else new


def reconcile_binding(existing: dict[str, Any], wanted: dict[str, Any]) -> dict[str, Any] | None:
    metadata = existing.get("metadata") or {}
    if (metadata.get("annotations") or {}).get(AUTOUPDATE) == "false":
        return None
    new = {**existing, "metadata": _merged_metadata(metadata, wanted["metadata"])}
    have = list(existing.get("subjects") or [])
    add = [s for s in wanted["subjects"] if s not in have]
    if add:
        new["subjects"] = have + add
    return None if new == existing else new


def _merged_metadata(have: dict[str, Any], wanted: dict[str, Any]) -> dict[str, Any]:
    merged = dict(have)
    for key in ("labels", "annotations"):
        current = dict(have.get(key) or {})
        for k, v in wanted.get(key, {}).items():
            current.setdefault(k, v)
        if current:
            merged[key] = current
    return merged


async def ensure_bootstrap_policy(store: Store) -> None:
    """Create or complete the default roles and bindings (several API servers may do this at once)."""
    for key, objects, reconcile in (
        (CLUSTER_ROLES_KEY, CLUSTER_ROLES, reconcile_role),
        (CLUSTER_ROLE_BINDINGS_KEY, CLUSTER_ROLE_BINDINGS, reconcile_binding),
    ):
        for wanted in objects:
            name = wanted["metadata"]["name"]
            for _attempt in range(5):
                try:
                    stored = await store.get(key, "", name)
                    if stored is None:
                        await store.create(key, "", name, _new_metadata(wanted))
                        break
                    current = stored.obj()
                    if key == CLUSTER_ROLE_BINDINGS_KEY and current.get("roleRef") != wanted["roleRef"]:
                        if (current.get("metadata", {}).get("annotations") or {}).get(AUTOUPDATE) == "false":
                            break
                        # roleRef cannot change: replace the binding, as kube's reconciliation does.
                        await store.delete(key, "", name, current, stored.rv)
                        continue
                    updated = reconcile(current, wanted)
                    if updated is not None:
                        await store.update(key, "", name, updated, stored.rv)
                    break
                except (KeyExists, KeyNotFound, VersionConflict):
                    continue  # another API server wrote it at the same time; look again
            else:
                log.warning("could not reconcile %s %s with the bootstrap policy", key, name)
