"""Facts about the built-in types that the Python client's models do not carry.

The generator (`python -m skiff.api.schema.generate`) combines these tables with the model classes of
the `kubernetes` package. The facts come from the `patchStrategy`/`patchMergeKey`/`listType` tags and the
field types of k8s.io/api and k8s.io/apimachinery.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ListFacts:
    """How a list field merges: strategic-merge-patch strategy and key, server-side-apply list type."""

    strategy: str | None = None
    merge_key: str | None = None
    list_type: str | None = None
    map_keys: tuple[str, ...] = ()


def _merge_map(*keys: str, strategy: str = "merge") -> ListFacts:
    return ListFacts(strategy, keys[0], "map", keys)


_CONDITIONS = _merge_map("type")
_BY_NAME = _merge_map("name")

# (definition short name, JSON field) -> list facts. Lists not named here are replaced whole.
LIST_FACTS: dict[tuple[str, str], ListFacts] = {
    ("ObjectMeta", "finalizers"): ListFacts("merge", None, "set"),
    ("MutatingWebhookConfiguration", "webhooks"): _BY_NAME,
    ("ValidatingWebhookConfiguration", "webhooks"): _BY_NAME,
    ("ObjectMeta", "ownerReferences"): _merge_map("uid"),
    ("PodSpec", "volumes"): _merge_map("name", strategy="merge,retainKeys"),
    ("PodSpec", "initContainers"): _BY_NAME,
    ("PodSpec", "containers"): _BY_NAME,
    ("PodSpec", "ephemeralContainers"): _BY_NAME,
    ("PodSpec", "imagePullSecrets"): _BY_NAME,
    ("PodSpec", "hostAliases"): _merge_map("ip"),
    ("PodSpec", "topologySpreadConstraints"): ListFacts(
        "merge", "topologyKey", "map", ("topologyKey", "whenUnsatisfiable")
    ),
    ("PodSpec", "schedulingGates"): _BY_NAME,
    ("PodSpec", "resourceClaims"): _merge_map("name", strategy="merge,retainKeys"),
    ("PodSpec", "tolerations"): ListFacts(list_type="atomic"),
    ("Container", "ports"): ListFacts("merge", "containerPort", "map", ("containerPort", "protocol")),
    ("Container", "env"): _BY_NAME,
    ("Container", "volumeMounts"): _merge_map("mountPath"),
    ("Container", "volumeDevices"): _merge_map("devicePath"),
    ("EphemeralContainer", "ports"): ListFacts("merge", "containerPort", "map", ("containerPort", "protocol")),
    ("EphemeralContainer", "env"): _BY_NAME,
    ("EphemeralContainer", "volumeMounts"): _merge_map("mountPath"),
    ("EphemeralContainer", "volumeDevices"): _merge_map("devicePath"),
    ("PodStatus", "conditions"): _CONDITIONS,
    ("PodStatus", "podIPs"): _merge_map("ip"),
    ("PodStatus", "hostIPs"): ListFacts("merge", "ip", "atomic"),
    ("PodStatus", "resourceClaimStatuses"): _merge_map("name", strategy="merge,retainKeys"),
    ("ServiceSpec", "ports"): ListFacts("merge", "port", "map", ("port", "protocol")),
    ("ServiceStatus", "conditions"): _CONDITIONS,
    ("ServiceAccount", "secrets"): _BY_NAME,
    ("NodeSpec", "podCIDRs"): ListFacts("merge", None, "set"),
    ("NodeStatus", "conditions"): _CONDITIONS,
    ("NodeStatus", "addresses"): _CONDITIONS,
    ("NamespaceStatus", "conditions"): _CONDITIONS,
    ("PersistentVolumeClaimStatus", "conditions"): _CONDITIONS,
    ("ReplicationControllerStatus", "conditions"): _CONDITIONS,
    ("DeploymentStatus", "conditions"): _CONDITIONS,
    ("ReplicaSetStatus", "conditions"): _CONDITIONS,
    ("StatefulSetStatus", "conditions"): _CONDITIONS,
    ("DaemonSetStatus", "conditions"): _CONDITIONS,
    ("JobStatus", "conditions"): ListFacts("merge", "type", "atomic"),
    ("HorizontalPodAutoscalerStatus", "conditions"): _CONDITIONS,
    ("PodDisruptionBudgetStatus", "conditions"): _CONDITIONS,
    ("CertificateSigningRequestStatus", "conditions"): ListFacts(None, None, "map", ("type",)),
}

# Fields whose patch strategy applies to an object rather than a list.
OBJECT_STRATEGIES: dict[tuple[str, str], str] = {
    ("DeploymentSpec", "strategy"): "retainKeys",
}

# Python client class -> attribute names that hold resource quantities (the client types them as str).
QUANTITY_FIELDS: dict[str, tuple[str, ...]] = {
    "V1ResourceRequirements": ("limits", "requests"),
    "V1VolumeResourceRequirements": ("limits", "requests"),
    "V1ResourceQuotaSpec": ("hard",),
    "V1ResourceQuotaStatus": ("hard", "used"),
    "V1LimitRangeItem": ("default", "default_request", "max", "min", "max_limit_request_ratio"),
    "V1NodeStatus": ("capacity", "allocatable"),
    "V1PersistentVolumeSpec": ("capacity",),
    "V1PersistentVolumeClaimStatus": ("capacity", "allocated_resources"),
    "V1PodSpec": ("overhead",),
    "V1EmptyDirVolumeSource": ("size_limit",),
    "V1ContainerStatus": ("allocated_resources",),
    "V2MetricTarget": ("average_value", "value"),
    "V2MetricValueStatus": ("average_value", "value"),
}

# Timestamps with microsecond precision (metav1.MicroTime) rather than metav1.Time.
MICRO_TIME_FIELDS: dict[str, tuple[str, ...]] = {
    "V1LeaseSpec": ("acquire_time", "renew_time"),
    "CoreV1Event": ("event_time",),
    "CoreV1EventSeries": ("last_observed_time",),
    "EventsV1Event": ("event_time",),
    "EventsV1EventSeries": ("last_observed_time",),
}

# Fields the client types as a bare `object`, by what they really are.
INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
RAW_EXTENSION = "io.k8s.apimachinery.pkg.runtime.RawExtension"
FIELDS_V1 = "io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1"
# Any JSON value (a CRD schema's default, enum and example values; items and additionalProperties).
JSON_VALUE = "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSON"
QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
TIME = "io.k8s.apimachinery.pkg.apis.meta.v1.Time"
MICRO_TIME = "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime"
PATCH = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch"

OBJECT_FIELDS: dict[tuple[str, str], str] = {
    ("V1ManagedFieldsEntry", "fields_v1"): FIELDS_V1,
    ("V1CustomResourceSubresources", "status"): RAW_EXTENSION,
    ("V1JSONSchemaProps", "default"): JSON_VALUE,
    ("V1JSONSchemaProps", "enum"): JSON_VALUE,
    ("V1JSONSchemaProps", "dependencies"): JSON_VALUE,
    ("V1JSONSchemaProps", "example"): JSON_VALUE,
    ("V1JSONSchemaProps", "items"): JSON_VALUE,
    ("V1JSONSchemaProps", "additional_properties"): JSON_VALUE,
    ("V1JSONSchemaProps", "additional_items"): JSON_VALUE,
    ("V1ControllerRevision", "data"): RAW_EXTENSION,
    ("V1WatchEvent", "object"): RAW_EXTENSION,
    ("V1HTTPGetAction", "port"): INT_OR_STRING,
    ("V1TCPSocketAction", "port"): INT_OR_STRING,
    ("V1ServicePort", "target_port"): INT_OR_STRING,
    ("V1RollingUpdateDeployment", "max_surge"): INT_OR_STRING,
    ("V1RollingUpdateDeployment", "max_unavailable"): INT_OR_STRING,
    ("V1RollingUpdateStatefulSetStrategy", "max_unavailable"): INT_OR_STRING,
    ("V1RollingUpdateDaemonSet", "max_surge"): INT_OR_STRING,
    ("V1RollingUpdateDaemonSet", "max_unavailable"): INT_OR_STRING,
    ("V1NetworkPolicyPort", "port"): INT_OR_STRING,
    ("V1PodDisruptionBudgetSpec", "max_unavailable"): INT_OR_STRING,
    ("V1PodDisruptionBudgetSpec", "min_available"): INT_OR_STRING,
}

# Types of k8s.io/apimachinery's meta/v1 package; every other type lives in the package of the first
# group (in GROUP_PACKAGES order) whose kinds reach it.
META_TYPES: frozenset[str] = frozenset(
    {
        "ObjectMeta",
        "ListMeta",
        "LabelSelector",
        "LabelSelectorRequirement",
        "ManagedFieldsEntry",
        "OwnerReference",
        "Condition",
        "Status",
        "StatusDetails",
        "StatusCause",
        "DeleteOptions",
        "Preconditions",
        "WatchEvent",
    }
)

# API group -> Go package segment in definition names (io.k8s.api.<segment>.<version>.<Type>).
GROUP_PACKAGES: dict[str, str] = {
    "": "core",
    "apps": "apps",
    "batch": "batch",
    "autoscaling": "autoscaling",
    "policy": "policy",
    "authentication.k8s.io": "authentication",
    "authorization.k8s.io": "authorization",
    "storage.k8s.io": "storage",
    "discovery.k8s.io": "discovery",
    "networking.k8s.io": "networking",
    "rbac.authorization.k8s.io": "rbac",
    "scheduling.k8s.io": "scheduling",
    "coordination.k8s.io": "coordination",
    "events.k8s.io": "events",
    "certificates.k8s.io": "certificates",
    "admissionregistration.k8s.io": "admissionregistration",
    "apiextensions.k8s.io": "apiextensions",
}

# Kinds that subresources and error replies use, beyond the table of served resources:
# (group, version, kind, Python client class).
EXTRA_KINDS: tuple[tuple[str, str, str, str], ...] = (
    ("", "v1", "Status", "V1Status"),
    ("", "v1", "DeleteOptions", "V1DeleteOptions"),
    ("", "v1", "WatchEvent", "V1WatchEvent"),
    ("autoscaling", "v1", "Scale", "V1Scale"),
    ("policy", "v1", "Eviction", "V1Eviction"),
    ("authentication.k8s.io", "v1", "TokenRequest", "AuthenticationV1TokenRequest"),
)
