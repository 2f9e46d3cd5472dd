"""The per-resource strategies of the API server.

`strategy_for(resource)` gives the rules for one served resource; kinds without special rules get the
plain `Strategy`.
"""

from __future__ import annotations

from apiserver.admission.webhook_config import (
    MutatingWebhookConfigurationStrategy,
    ValidatingWebhookConfigurationStrategy,
)
from apiserver.crd.definition import CustomResourceDefinitionStrategy
from apiserver.registry.base import Column, Strategy
from apiserver.registry.batch import CronJobStrategy, JobStrategy
from apiserver.registry.certificates import CertificateSigningRequestStrategy
from apiserver.registry.cluster import (
    EventStrategy,
    LeaseStrategy,
    LimitRangeStrategy,
    NamespaceStrategy,
    NodeStrategy,
    PriorityClassStrategy,
    ResourceQuotaStrategy,
)
from apiserver.registry.config import ConfigMapStrategy, SecretStrategy, ServiceAccountStrategy
from apiserver.registry.networking import IngressClassStrategy, IngressStrategy, NetworkPolicyStrategy
from apiserver.registry.pods import PodStrategy
from apiserver.registry.policy import HorizontalPodAutoscalerStrategy, PodDisruptionBudgetStrategy
from apiserver.registry.rbac import RoleBindingStrategy, RoleStrategy
from apiserver.registry.services import EndpointSliceStrategy, EndpointsStrategy, ServiceStrategy
from apiserver.registry.storage import (
    CSIDriverStrategy,
    CSINodeStrategy,
    PersistentVolumeClaimStrategy,
    PersistentVolumeStrategy,
    StorageClassStrategy,
    VolumeAttachmentStrategy,
)
from apiserver.registry.workloads import (
    ControllerRevisionStrategy,
    DaemonSetStrategy,
    DeploymentStrategy,
    PodTemplateStrategy,
    ReplicaSetStrategy,
    ReplicationControllerStrategy,
    StatefulSetStrategy,
)
from skiff.api.kinds import ResourceType

__all__ = ["STRATEGIES", "Column", "Strategy", "strategy_for"]

RBAC = "rbac.authorization.k8s.io"
STORAGE = "storage.k8s.io"
NETWORKING = "networking.k8s.io"

STRATEGIES: dict[tuple[str, str], type[Strategy]] = {
    ("", "Namespace"): NamespaceStrategy,
    ("", "Pod"): PodStrategy,
    ("", "Service"): ServiceStrategy,
    ("", "Endpoints"): EndpointsStrategy,
    ("", "ConfigMap"): ConfigMapStrategy,
    ("", "Secret"): SecretStrategy,
    ("", "ServiceAccount"): ServiceAccountStrategy,
    ("", "Node"): NodeStrategy,
    ("", "Event"): EventStrategy,
    ("", "PersistentVolume"): PersistentVolumeStrategy,
    ("", "PersistentVolumeClaim"): PersistentVolumeClaimStrategy,
    ("", "ResourceQuota"): ResourceQuotaStrategy,
    ("", "LimitRange"): LimitRangeStrategy,
    ("", "ReplicationController"): ReplicationControllerStrategy,
    ("", "PodTemplate"): PodTemplateStrategy,
    ("apps", "Deployment"): DeploymentStrategy,
    ("apps", "ReplicaSet"): ReplicaSetStrategy,
    ("apps", "StatefulSet"): StatefulSetStrategy,
    ("apps", "DaemonSet"): DaemonSetStrategy,
    ("apps", "ControllerRevision"): ControllerRevisionStrategy,
    ("batch", "Job"): JobStrategy,
    ("batch", "CronJob"): CronJobStrategy,
    ("autoscaling", "HorizontalPodAutoscaler"): HorizontalPodAutoscalerStrategy,
    (STORAGE, "StorageClass"): StorageClassStrategy,
    (STORAGE, "CSIDriver"): CSIDriverStrategy,
    (STORAGE, "CSINode"): CSINodeStrategy,
    (STORAGE, "VolumeAttachment"): VolumeAttachmentStrategy,
    ("discovery.k8s.io", "EndpointSlice"): EndpointSliceStrategy,
    (NETWORKING, "NetworkPolicy"): NetworkPolicyStrategy,
    (NETWORKING, "Ingress"): IngressStrategy,
    (NETWORKING, "IngressClass"): IngressClassStrategy,
    ("policy", "PodDisruptionBudget"): PodDisruptionBudgetStrategy,
    (RBAC, "Role"): RoleStrategy,
    (RBAC, "ClusterRole"): RoleStrategy,
    (RBAC, "RoleBinding"): RoleBindingStrategy,
    (RBAC, "ClusterRoleBinding"): RoleBindingStrategy,
    ("scheduling.k8s.io", "PriorityClass"): PriorityClassStrategy,
    ("coordination.k8s.io", "Lease"): LeaseStrategy,
    ("events.k8s.io", "Event"): EventStrategy,
    ("certificates.k8s.io", "CertificateSigningRequest"): CertificateSigningRequestStrategy,
    ("apiextensions.k8s.io", "CustomResourceDefinition"): CustomResourceDefinitionStrategy,
    ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"): MutatingWebhookConfigurationStrategy,
    ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"): ValidatingWebhookConfigurationStrategy,
}


def strategy_for(resource: ResourceType) -> Strategy:
    """The strategy that holds `resource`'s rules (the plain `Strategy` for kinds without any)."""
    strategy_class = STRATEGIES.get((resource.group, resource.kind), Strategy)
    strategy = strategy_class(resource)
    if strategy_class is Strategy and resource.has_subresource("status"):
        strategy.status_subresource = True
    return strategy
