"""The table of built-in resource types: one entry per kind.

Everything that needs to know "what kinds exist" — routing, discovery, OpenAPI, clients — reads this
table, so adding a kind is one entry here plus, optionally, a strategy in the API server's registry.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
CREATE_ONLY_VERBS = ("create",)


@dataclass(frozen=True)
class ResourceType:
    """One REST resource (a kind in one group/version) as served by the API server."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    list_kind: str = ""
    singular: str = ""
    extra: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if not self.list_kind:
            object.__setattr__(self, "list_kind", self.kind + "List")
        if not self.singular:
            object.__setattr__(self, "singular", self.kind.lower())

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_version(self) -> str:
        return self.api_version

    @property
    def storage_key(self) -> str:
        """The key under which objects of this resource are stored (group/plural, version-free)."""
        return f"{self.group}/{self.plural}" if self.group else f"core/{self.plural}"

    @property
    def scope(self) -> str:
        return "Namespaced" if self.namespaced else "Cluster"

    def has_subresource(self, name: str) -> bool:
        return name in self.subresources


def _r(
    group: str,
    version: str,
    kind: str,
    plural: str,
    namespaced: bool = True,
    short: Iterable[str] = (),
    cats: Iterable[str] = (),
    subs: Iterable[str] = (),
    verbs: Iterable[str] = ALL_VERBS,
) -> ResourceType:
    return ResourceType(
        group=group,
        version=version,
        kind=kind,
        plural=plural,
        namespaced=namespaced,
        short_names=tuple(short),
        categories=tuple(cats),
        subresources=tuple(subs),
        verbs=tuple(verbs),
    )


ALL = ("all",)

BUILTIN_RESOURCES: tuple[ResourceType, ...] = (
    # core/v1
    _r(
        "",
        "v1",
        "Namespace",
        "namespaces",
        False,
        ["ns"],
        subs=["status", "finalize"],
        verbs=("create", "delete", "get", "list", "patch", "update", "watch"),
    ),
    _r(
        "",
        "v1",
        "Pod",
        "pods",
        True,
        ["po"],
        ALL,
        ["status", "binding", "log", "eviction", "ephemeralcontainers"],
    ),
    _r("", "v1", "Binding", "bindings", True, verbs=CREATE_ONLY_VERBS),
    _r(
        "",
        "v1",
        "Service",
        "services",
        True,
        ["svc"],
        ALL,
        ["status", "proxy"],
        verbs=("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"),
    ),
    _r("", "v1", "Endpoints", "endpoints", True, ["ep"]),
    _r("", "v1", "ConfigMap", "configmaps", True, ["cm"]),
    _r("", "v1", "Secret", "secrets", True),
    _r("", "v1", "ServiceAccount", "serviceaccounts", True, ["sa"], subs=["token"]),
    _r("", "v1", "Node", "nodes", False, ["no"], subs=["status", "proxy"]),
    _r("", "v1", "Event", "events", True, ["ev"]),
    _r("", "v1", "PersistentVolume", "persistentvolumes", False, ["pv"], subs=["status"]),
    _r("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", True, ["pvc"], subs=["status"]),
    _r("", "v1", "ResourceQuota", "resourcequotas", True, ["quota"], subs=["status"]),
    _r("", "v1", "LimitRange", "limitranges", True, ["limits"]),
    _r("", "v1", "ReplicationController", "replicationcontrollers", True, ["rc"], ALL, ["status", "scale"]),
    _r("", "v1", "PodTemplate", "podtemplates", True),
    # apps/v1
    _r("apps", "v1", "Deployment", "deployments", True, ["deploy"], ALL, ["status", "scale"]),
    _r("apps", "v1", "ReplicaSet", "replicasets", True, ["rs"], ALL, ["status", "scale"]),
    _r("apps", "v1", "StatefulSet", "statefulsets", True, ["sts"], ALL, ["status", "scale"]),
    _r("apps", "v1", "DaemonSet", "daemonsets", True, ["ds"], ALL, ["status"]),
    _r("apps", "v1", "ControllerRevision", "controllerrevisions", True),
    # batch/v1
    _r("batch", "v1", "Job", "jobs", True, (), ALL, ["status"]),
    _r("batch", "v1", "CronJob", "cronjobs", True, ["cj"], ALL, ["status"]),
    # autoscaling
    _r(
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        True,
        ["hpa"],
        ALL,
        ["status"],
    ),
    # storage.k8s.io/v1
    _r("storage.k8s.io", "v1", "StorageClass", "storageclasses", False, ["sc"]),
    _r("storage.k8s.io", "v1", "CSIDriver", "csidrivers", False),
    _r("storage.k8s.io", "v1", "CSINode", "csinodes", False),
    _r("storage.k8s.io", "v1", "VolumeAttachment", "volumeattachments", False, subs=["status"]),
    # discovery.k8s.io/v1
    _r("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", True),
    # networking.k8s.io/v1
    _r("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", True, ["netpol"]),
    _r("networking.k8s.io", "v1", "Ingress", "ingresses", True, ["ing"], subs=["status"]),
    _r("networking.k8s.io", "v1", "IngressClass", "ingressclasses", False),
    # policy/v1
    _r("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", True, ["pdb"], subs=["status"]),
    # rbac.authorization.k8s.io/v1
    _r("rbac.authorization.k8s.io", "v1", "Role", "roles", True),
    _r("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", True),
    _r("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", False),
    _r("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", False),
    # scheduling.k8s.io/v1
    _r("scheduling.k8s.io", "v1", "PriorityClass", "priorityclasses", False, ["pc"]),
    # coordination.k8s.io/v1
    _r("coordination.k8s.io", "v1", "Lease", "leases", True),
    _r("events.k8s.io", "v1", "Event", "events", True, ["ev"]),
    # certificates.k8s.io/v1
    _r(
        "certificates.k8s.io",
        "v1",
        "CertificateSigningRequest",
        "certificatesigningrequests",
        False,
        ["csr"],
        subs=["status", "approval"],
    ),
    # admissionregistration.k8s.io/v1 and apiextensions.k8s.io/v1
    _r(
        "admissionregistration.k8s.io",
        "v1",
        "MutatingWebhookConfiguration",
        "mutatingwebhookconfigurations",
        False,
        cats=["api-extensions"],
    ),
    _r(
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingWebhookConfiguration",
        "validatingwebhookconfigurations",
        False,
        cats=["api-extensions"],
    ),
    _r(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        False,
        ["crd", "crds"],
        ["api-extensions"],
        ["status"],
    ),
    # authentication.k8s.io and authorization.k8s.io: reviews, answered and never stored
    _r("authentication.k8s.io", "v1", "TokenReview", "tokenreviews", False, verbs=CREATE_ONLY_VERBS),
    _r("authentication.k8s.io", "v1", "SelfSubjectReview", "selfsubjectreviews", False, verbs=CREATE_ONLY_VERBS),
    _r("authentication.k8s.io", "v1beta1", "SelfSubjectReview", "selfsubjectreviews", False, verbs=CREATE_ONLY_VERBS),
    _r("authentication.k8s.io", "v1alpha1", "SelfSubjectReview", "selfsubjectreviews", False, verbs=CREATE_ONLY_VERBS),
    _r("authorization.k8s.io", "v1", "SubjectAccessReview", "subjectaccessreviews", False, verbs=CREATE_ONLY_VERBS),
    _r(
        "authorization.k8s.io",
        "v1",
        "LocalSubjectAccessReview",
        "localsubjectaccessreviews",
        True,
        verbs=CREATE_ONLY_VERBS,
    ),
    _r(
        "authorization.k8s.io",
        "v1",
        "SelfSubjectAccessReview",
        "selfsubjectaccessreviews",
        False,
        verbs=CREATE_ONLY_VERBS,
    ),
    _r(
        "authorization.k8s.io",
        "v1",
        "SelfSubjectRulesReview",
        "selfsubjectrulesreviews",
        False,
        verbs=CREATE_ONLY_VERBS,
    ),
)

# Preferred-version order of groups as kube-apiserver lists them in discovery.
GROUP_ORDER: tuple[str, ...] = (
    "",
    "apps",
    "events.k8s.io",
    "authentication.k8s.io",
    "authorization.k8s.io",
    "autoscaling",
    "batch",
    "certificates.k8s.io",
    "networking.k8s.io",
    "policy",
    "rbac.authorization.k8s.io",
    "storage.k8s.io",
    "admissionregistration.k8s.io",
    "apiextensions.k8s.io",
    "scheduling.k8s.io",
    "coordination.k8s.io",
    "discovery.k8s.io",
)


class ResourceTable:
    """Lookup of resource types by group/version/plural, kind and short name."""

    def __init__(self, resources: Iterable[ResourceType] = BUILTIN_RESOURCES) -> None:
        self._by_path: dict[tuple[str, str, str], ResourceType] = {}
        self._by_kind: dict[tuple[str, str, str], ResourceType] = {}
        for resource in resources:
            self.add(resource)

    def add(self, resource: ResourceType) -> None:
        self._by_path[(resource.group, resource.version, resource.plural)] = resource
        self._by_kind[(resource.group, resource.version, resource.kind)] = resource

    def remove(self, resource: ResourceType) -> None:
        self._by_path.pop((resource.group, resource.version, resource.plural), None)
        self._by_kind.pop((resource.group, resource.version, resource.kind), None)

    def by_path(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._by_path.get((group, version, plural))

    def by_kind(self, group: str, version: str, kind: str) -> ResourceType | None:
        return self._by_kind.get((group, version, kind))

    def by_api_version(self, api_version: str, kind: str) -> ResourceType | None:
        group, _, version = api_version.rpartition("/")
        return self.by_kind(group, version, kind)

    def __iter__(self):
        return iter(self._by_path.values())

    def group_versions(self) -> dict[str, list[str]]:
        """Served versions per group, in discovery order."""
        versions: dict[str, list[str]] = {}
        for resource in self._by_path.values():
            served = versions.setdefault(resource.group, [])
            if resource.version not in served:
                served.append(resource.version)
        order = {group: index for index, group in enumerate(GROUP_ORDER)}
        return dict(sorted(versions.items(), key=lambda item: (order.get(item[0], len(order)), item[0])))

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        return [r for r in self._by_path.values() if r.group == group and r.version == version]

    def resolve(self, name: str) -> list[ResourceType]:
        """Resolve a user-typed resource name (plural, singular, kind, short name, `plural.group`)."""
        name = name.lower()
        plural_part, _, group_part = name.partition(".")
        matches = []
        for resource in self._by_path.values():
            names = {resource.plural, resource.singular, resource.kind.lower(), *resource.short_names}
            if group_part:
                if plural_part in names and resource.group == group_part:
                    matches.append(resource)
            elif name in names:
                matches.append(resource)
        return matches


BUILTINS = ResourceTable()
