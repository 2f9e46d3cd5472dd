"""Message layouts of the Kubernetes protobuf encoding, for the kinds that clients send as protobuf.

Field numbers and names follow the upstream `generated.proto` files of k8s.io/api and
k8s.io/apimachinery. Each message is written in a small schema language, one field a line:

    <number> <jsonName> <type> [keep] [inline]

A type is a scalar (`str`, `bytes`, `bool`, `int32`, `int64`), a well-known Kubernetes value
(`quantity`, `time`, `microtime`, `intstr`, `json` for raw JSON bytes, `strlist` for a
message wrapping a list of strings that JSON writes as the bare list), the name of another message,
`[T]` for a repeated field or `{T}` for a map with string keys.

`keep` marks a field whose zero value still appears in Kubernetes' JSON: a pointer in the Go type, or a
field without `omitempty`. Without it a zero scalar is dropped, the way `omitempty` drops it. On a
repeated or map field, `keep` means JSON shows `null` when the list is absent.
`inline` marks an embedded Go struct: protobuf nests it as a message, JSON flattens its fields into the
parent.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Kind(Enum):
    STRING = "str"
    BYTES = "bytes"
    BOOL = "bool"
    INT32 = "int32"
    INT64 = "int64"
    QUANTITY = "quantity"
    TIME = "time"
    MICROTIME = "microtime"
    INTSTR = "intstr"
    JSON = "json"
    STRING_LIST = "strlist"
    MESSAGE = "message"


VARINT_KINDS = frozenset({Kind.BOOL, Kind.INT32, Kind.INT64})


@dataclass(frozen=True, slots=True)
class Field:
    """How one protobuf field maps onto a JSON property."""

    name: str
    kind: Kind
    message: str = ""
    repeated: bool = False
    is_map: bool = False
    keep: bool = False
    inline: bool = False


# ---------------------------------------------------------------------------------------------------
# k8s.io/apimachinery: meta/v1, runtime

_META = """
Quantity
  1 string str keep

IntOrString
  1 type int64 keep
  2 intVal int32 keep
  3 strVal str keep

Timestamp
  1 seconds int64
  2 nanos int32

StringList
  1 items [str]

TypeMeta
  1 apiVersion str
  2 kind str

ObjectMeta
  1 name str
  2 generateName str
  3 namespace str
  4 selfLink str
  5 uid str
  6 resourceVersion str
  7 generation int64
  8 creationTimestamp time
  9 deletionTimestamp time
  10 deletionGracePeriodSeconds int64 keep
  11 labels {str}
  12 annotations {str}
  13 ownerReferences [OwnerReference]
  14 finalizers [str]
  17 managedFields [ManagedFieldsEntry]

OwnerReference
  5 apiVersion str keep
  1 kind str keep
  3 name str keep
  4 uid str keep
  6 controller bool keep
  7 blockOwnerDeletion bool keep

ManagedFieldsEntry
  1 manager str
  2 operation str
  3 apiVersion str
  4 time time
  6 fieldsType str
  7 fieldsV1 json
  8 subresource str

LabelSelector
  1 matchLabels {str}
  2 matchExpressions [LabelSelectorRequirement]

LabelSelectorRequirement
  1 key str keep
  2 operator str keep
  3 values [str]

Condition
  1 type str keep
  2 status str keep
  3 observedGeneration int64
  4 lastTransitionTime time
  5 reason str keep
  6 message str keep

DeleteOptions
  1 gracePeriodSeconds int64 keep
  2 preconditions Preconditions
  3 orphanDependents bool keep
  4 propagationPolicy str keep
  5 dryRun [str]
  6 ignoreStoreReadErrorWithClusterBreakingPotential bool keep

Preconditions
  1 uid str keep
  2 resourceVersion str keep
"""

# ---------------------------------------------------------------------------------------------------
# k8s.io/api/core/v1

_CORE_WORKLOAD = """
PodTemplateSpec
  1 metadata ObjectMeta
  2 spec PodSpec

PodSpec
  1 volumes [Volume]
  20 initContainers [Container]
  2 containers [Container]
  34 ephemeralContainers [EphemeralContainer]
  3 restartPolicy str
  4 terminationGracePeriodSeconds int64 keep
  5 activeDeadlineSeconds int64 keep
  6 dnsPolicy str
  7 nodeSelector {str}
  8 serviceAccountName str
  9 serviceAccount str
  21 automountServiceAccountToken bool keep
  10 nodeName str
  11 hostNetwork bool
  12 hostPID bool
  13 hostIPC bool
  27 shareProcessNamespace bool keep
  14 securityContext PodSecurityContext
  15 imagePullSecrets [LocalObjectReference]
  16 hostname str
  17 subdomain str
  18 affinity Affinity
  19 schedulerName str
  22 tolerations [Toleration]
  23 hostAliases [HostAlias]
  24 priorityClassName str
  25 priority int32 keep
  26 dnsConfig PodDNSConfig
  28 readinessGates [PodReadinessGate]
  29 runtimeClassName str keep
  30 enableServiceLinks bool keep
  31 preemptionPolicy str keep
  32 overhead {quantity}
  33 topologySpreadConstraints [TopologySpreadConstraint]
  35 setHostnameAsFQDN bool keep
  36 os PodOS
  37 hostUsers bool keep
  38 schedulingGates [PodSchedulingGate]
  39 resourceClaims [PodResourceClaim]
  40 resources ResourceRequirements
  41 hostnameOverride str keep

Container
  1 name str keep
  2 image str
  3 command [str]
  4 args [str]
  5 workingDir str
  6 ports [ContainerPort]
  19 envFrom [EnvFromSource]
  7 env [EnvVar]
  8 resources ResourceRequirements
  23 resizePolicy [ContainerResizePolicy]
  24 restartPolicy str keep
  9 volumeMounts [VolumeMount]
  21 volumeDevices [VolumeDevice]
  10 livenessProbe Probe
  11 readinessProbe Probe
  22 startupProbe Probe
  12 lifecycle Lifecycle
  13 terminationMessagePath str
  20 terminationMessagePolicy str
  14 imagePullPolicy str
  15 securityContext SecurityContext
  16 stdin bool
  17 stdinOnce bool
  18 tty bool

EphemeralContainer
  1 ephemeralContainerCommon Container inline
  2 targetContainerName str

ContainerPort
  1 name str
  2 hostPort int32
  3 containerPort int32 keep
  4 protocol str
  5 hostIP str

ContainerResizePolicy
  1 resourceName str keep
  2 restartPolicy str keep

EnvVar
  1 name str keep
  2 value str
  3 valueFrom EnvVarSource

EnvVarSource
  1 fieldRef ObjectFieldSelector
  2 resourceFieldRef ResourceFieldSelector
  3 configMapKeyRef ConfigMapKeySelector
  4 secretKeyRef SecretKeySelector

EnvFromSource
  1 prefix str
  2 configMapRef ConfigMapEnvSource
  3 secretRef SecretEnvSource

ConfigMapEnvSource
  1 localObjectReference LocalObjectReference inline
  2 optional bool keep

SecretEnvSource
  1 localObjectReference LocalObjectReference inline
  2 optional bool keep

ConfigMapKeySelector
  1 localObjectReference LocalObjectReference inline
  2 key str keep
  3 optional bool keep

SecretKeySelector
  1 localObjectReference LocalObjectReference inline
  2 key str keep
  3 optional bool keep

ObjectFieldSelector
  1 apiVersion str
  2 fieldPath str keep

ResourceFieldSelector
  1 containerName str
  2 resource str keep
  3 divisor quantity

LocalObjectReference
  1 name str

ResourceRequirements
  1 limits {quantity}
  2 requests {quantity}
  3 claims [ResourceClaim]

ResourceClaim
  1 name str keep
  2 request str

VolumeMount
  1 name str keep
  2 readOnly bool
  7 recursiveReadOnly str keep
  3 mountPath str keep
  4 subPath str
  5 mountPropagation str keep
  6 subPathExpr str

VolumeDevice
  1 name str keep
  2 devicePath str keep

Probe
  1 handler ProbeHandler inline
  2 initialDelaySeconds int32
  3 timeoutSeconds int32
  4 periodSeconds int32
  5 successThreshold int32
  6 failureThreshold int32
  7 terminationGracePeriodSeconds int64 keep

ProbeHandler
  1 exec ExecAction
  2 httpGet HTTPGetAction
  3 tcpSocket TCPSocketAction
  4 grpc GRPCAction

LifecycleHandler
  1 exec ExecAction
  2 httpGet HTTPGetAction
  3 tcpSocket TCPSocketAction
  4 sleep SleepAction

Lifecycle
  1 postStart LifecycleHandler
  2 preStop LifecycleHandler
  3 stopSignal str keep

ExecAction
  1 command [str]

HTTPGetAction
  1 path str
  2 port intstr
  3 host str
  4 scheme str
  5 httpHeaders [HTTPHeader]

HTTPHeader
  1 name str keep
  2 value str keep

TCPSocketAction
  1 port intstr
  2 host str

GRPCAction
  1 port int32 keep
  2 service str keep

SleepAction
  1 seconds int64 keep

SecurityContext
  1 capabilities Capabilities
  2 privileged bool keep
  3 seLinuxOptions SELinuxOptions
  10 windowsOptions WindowsSecurityContextOptions
  4 runAsUser int64 keep
  8 runAsGroup int64 keep
  5 runAsNonRoot bool keep
  6 readOnlyRootFilesystem bool keep
  7 allowPrivilegeEscalation bool keep
  9 procMount str keep
  11 seccompProfile SeccompProfile
  12 appArmorProfile AppArmorProfile

PodSecurityContext
  1 seLinuxOptions SELinuxOptions
  8 windowsOptions WindowsSecurityContextOptions
  2 runAsUser int64 keep
  6 runAsGroup int64 keep
  3 runAsNonRoot bool keep
  4 supplementalGroups [int64]
  12 supplementalGroupsPolicy str keep
  5 fsGroup int64 keep
  7 sysctls [Sysctl]
  9 fsGroupChangePolicy str keep
  10 seccompProfile SeccompProfile
  11 appArmorProfile AppArmorProfile
  13 seLinuxChangePolicy str keep

Capabilities
  1 add [str]
  2 drop [str]

SELinuxOptions
  1 user str
  2 role str
  3 type str
  4 level str

WindowsSecurityContextOptions
  1 gmsaCredentialSpecName str keep
  2 gmsaCredentialSpec str keep
  3 runAsUserName str keep
  4 hostProcess bool keep

SeccompProfile
  1 type str keep
  2 localhostProfile str keep

AppArmorProfile
  1 type str keep
  2 localhostProfile str keep

Sysctl
  1 name str keep
  2 value str keep

PodOS
  1 name str keep

PodSchedulingGate
  1 name str keep

PodReadinessGate
  1 conditionType str keep

PodResourceClaim
  1 name str keep
  3 resourceClaimName str keep
  4 resourceClaimTemplateName str keep

PodDNSConfig
  1 nameservers [str]
  2 searches [str]
  3 options [PodDNSConfigOption]

PodDNSConfigOption
  1 name str
  2 value str keep

HostAlias
  1 ip str keep
  2 hostnames [str]

Toleration
  1 key str
  2 operator str
  3 value str
  4 effect str
  5 tolerationSeconds int64 keep

TopologySpreadConstraint
  1 maxSkew int32 keep
  2 topologyKey str keep
  3 whenUnsatisfiable str keep
  4 labelSelector LabelSelector
  5 minDomains int32 keep
  6 nodeAffinityPolicy str keep
  7 nodeTaintsPolicy str keep
  8 matchLabelKeys [str]

Affinity
  1 nodeAffinity NodeAffinity
  2 podAffinity PodAffinity
  3 podAntiAffinity PodAntiAffinity

NodeAffinity
  1 requiredDuringSchedulingIgnoredDuringExecution NodeSelector
  2 preferredDuringSchedulingIgnoredDuringExecution [PreferredSchedulingTerm]

NodeSelector
  1 nodeSelectorTerms [NodeSelectorTerm] keep

NodeSelectorTerm
  1 matchExpressions [NodeSelectorRequirement]
  2 matchFields [NodeSelectorRequirement]

NodeSelectorRequirement
  1 key str keep
  2 operator str keep
  3 values [str]

PreferredSchedulingTerm
  1 weight int32 keep
  2 preference NodeSelectorTerm

PodAffinity
  1 requiredDuringSchedulingIgnoredDuringExecution [PodAffinityTerm]
  2 preferredDuringSchedulingIgnoredDuringExecution [WeightedPodAffinityTerm]

PodAntiAffinity
  1 requiredDuringSchedulingIgnoredDuringExecution [PodAffinityTerm]
  2 preferredDuringSchedulingIgnoredDuringExecution [WeightedPodAffinityTerm]

PodAffinityTerm
  1 labelSelector LabelSelector
  2 namespaces [str]
  3 topologyKey str keep
  4 namespaceSelector LabelSelector
  5 matchLabelKeys [str]
  6 mismatchLabelKeys [str]

WeightedPodAffinityTerm
  1 weight int32 keep
  2 podAffinityTerm PodAffinityTerm
"""

_CORE_VOLUMES = """
Volume
  1 name str keep
  2 volumeSource VolumeSource inline

VolumeSource
  1 hostPath HostPathVolumeSource
  2 emptyDir EmptyDirVolumeSource
  5 gitRepo GitRepoVolumeSource
  6 secret SecretVolumeSource
  7 nfs NFSVolumeSource
  10 persistentVolumeClaim PersistentVolumeClaimVolumeSource
  16 downwardAPI DownwardAPIVolumeSource
  19 configMap ConfigMapVolumeSource
  26 projected ProjectedVolumeSource
  28 csi CSIVolumeSource
  29 ephemeral EphemeralVolumeSource
  30 image ImageVolumeSource

HostPathVolumeSource
  1 path str keep
  2 type str keep

EmptyDirVolumeSource
  1 medium str
  2 sizeLimit quantity

GitRepoVolumeSource
  1 repository str keep
  2 revision str
  3 directory str

NFSVolumeSource
  1 server str keep
  2 path str keep
  3 readOnly bool

PersistentVolumeClaimVolumeSource
  1 claimName str keep
  2 readOnly bool

SecretVolumeSource
  1 secretName str
  2 items [KeyToPath]
  3 defaultMode int32 keep
  4 optional bool keep

ConfigMapVolumeSource
  1 localObjectReference LocalObjectReference inline
  2 items [KeyToPath]
  3 defaultMode int32 keep
  4 optional bool keep

KeyToPath
  1 key str keep
  2 path str keep
  3 mode int32 keep

DownwardAPIVolumeSource
  1 items [DownwardAPIVolumeFile]
  2 defaultMode int32 keep

DownwardAPIVolumeFile
  1 path str keep
  2 fieldRef ObjectFieldSelector
  3 resourceFieldRef ResourceFieldSelector
  4 mode int32 keep

ProjectedVolumeSource
  1 sources [VolumeProjection]
  2 defaultMode int32 keep

VolumeProjection
  1 secret SecretProjection
  2 downwardAPI DownwardAPIProjection
  3 configMap ConfigMapProjection
  4 serviceAccountToken ServiceAccountTokenProjection

SecretProjection
  1 localObjectReference LocalObjectReference inline
  2 items [KeyToPath]
  4 optional bool keep

ConfigMapProjection
  1 localObjectReference LocalObjectReference inline
  2 items [KeyToPath]
  4 optional bool keep

DownwardAPIProjection
  1 items [DownwardAPIVolumeFile]

ServiceAccountTokenProjection
  1 audience str
  2 expirationSeconds int64 keep
  3 path str keep

CSIVolumeSource
  1 driver str keep
  2 readOnly bool keep
  3 fsType str keep
  4 volumeAttributes {str}
  5 nodePublishSecretRef LocalObjectReference

EphemeralVolumeSource
  1 volumeClaimTemplate PersistentVolumeClaimTemplate

PersistentVolumeClaimTemplate
  1 metadata ObjectMeta
  2 spec PersistentVolumeClaimSpec

PersistentVolumeClaimSpec
  1 accessModes [str]
  4 selector LabelSelector
  2 resources VolumeResourceRequirements
  3 volumeName str
  5 storageClassName str keep
  6 volumeMode str keep
  7 dataSource TypedLocalObjectReference
  8 dataSourceRef TypedObjectReference
  9 volumeAttributesClassName str keep

VolumeResourceRequirements
  1 limits {quantity}
  2 requests {quantity}

TypedLocalObjectReference
  1 apiGroup str keep
  2 kind str keep
  3 name str keep

TypedObjectReference
  1 apiGroup str keep
  2 kind str keep
  3 name str keep
  4 namespace str keep

ImageVolumeSource
  1 reference str
  2 pullPolicy str
"""

_CORE_OBJECTS = """
Pod
  1 metadata ObjectMeta
  2 spec PodSpec
  3 status PodStatus

PodStatus
  1 phase str
  2 conditions [PodCondition]
  3 message str
  4 reason str
  11 nominatedNodeName str
  5 hostIP str
  6 podIP str
  7 startTime time
  9 qosClass str

PodCondition
  1 type str keep
  7 observedGeneration int64
  2 status str keep
  3 lastProbeTime time
  4 lastTransitionTime time
  5 reason str
  6 message str

Namespace
  1 metadata ObjectMeta
  2 spec NamespaceSpec
  3 status NamespaceStatus

NamespaceSpec
  1 finalizers [str]

NamespaceStatus
  1 phase str
  2 conditions [NamespaceCondition]

NamespaceCondition
  1 type str keep
  2 status str keep
  4 lastTransitionTime time
  5 reason str
  6 message str

ConfigMap
  1 metadata ObjectMeta
  4 immutable bool keep
  2 data {str}
  3 binaryData {bytes}

Secret
  1 metadata ObjectMeta
  5 immutable bool keep
  2 data {bytes}
  4 stringData {str}
  3 type str

ServiceAccount
  1 metadata ObjectMeta
  2 secrets [ObjectReference]
  3 imagePullSecrets [LocalObjectReference]
  4 automountServiceAccountToken bool keep

ObjectReference
  1 kind str
  2 namespace str
  3 name str
  4 uid str
  5 apiVersion str
  6 resourceVersion str
  7 fieldPath str

Service
  1 metadata ObjectMeta
  2 spec ServiceSpec
  3 status ServiceStatus

ServiceSpec
  1 ports [ServicePort]
  2 selector {str}
  3 clusterIP str
  18 clusterIPs [str]
  4 type str
  5 externalIPs [str]
  7 sessionAffinity str
  8 loadBalancerIP str
  9 loadBalancerSourceRanges [str]
  10 externalName str
  11 externalTrafficPolicy str
  12 healthCheckNodePort int32
  13 publishNotReadyAddresses bool
  14 sessionAffinityConfig SessionAffinityConfig
  19 ipFamilies [str]
  17 ipFamilyPolicy str keep
  20 allocateLoadBalancerNodePorts bool keep
  21 loadBalancerClass str keep
  22 internalTrafficPolicy str keep
  23 trafficDistribution str keep

ServicePort
  1 name str
  2 protocol str
  6 appProtocol str keep
  3 port int32 keep
  4 targetPort intstr
  5 nodePort int32

SessionAffinityConfig
  1 clientIP ClientIPConfig

ClientIPConfig
  1 timeoutSeconds int32 keep

ServiceStatus
  1 loadBalancer LoadBalancerStatus
  2 conditions [Condition]

LoadBalancerStatus
  1 ingress [LoadBalancerIngress]

LoadBalancerIngress
  1 ip str
  2 hostname str
  3 ipMode str keep
  4 ports [PortStatus]

PortStatus
  1 port int32 keep
  2 protocol str keep
  3 error str keep

ResourceQuota
  1 metadata ObjectMeta
  2 spec ResourceQuotaSpec
  3 status ResourceQuotaStatus

ResourceQuotaSpec
  1 hard {quantity}
  2 scopes [str]
  3 scopeSelector ScopeSelector

ScopeSelector
  1 matchExpressions [ScopedResourceSelectorRequirement]

ScopedResourceSelectorRequirement
  1 scopeName str keep
  2 operator str keep
  3 values [str]

ResourceQuotaStatus
  1 hard {quantity}
  2 used {quantity}

Event
  1 metadata ObjectMeta
  2 involvedObject ObjectReference
  3 reason str
  4 message str
  5 source EventSource
  6 firstTimestamp time
  7 lastTimestamp time
  8 count int32
  9 type str
  10 eventTime microtime
  11 series EventSeries
  12 action str
  13 related ObjectReference
  14 reportingComponent str keep
  15 reportingInstance str keep

EventSource
  1 component str
  2 host str

EventSeries
  1 count int32
  2 lastObservedTime microtime
"""

# ---------------------------------------------------------------------------------------------------
# apps/v1, batch/v1, policy/v1, scheduling/v1, coordination/v1, events.k8s.io/v1

_WORKLOADS = """
Deployment
  1 metadata ObjectMeta
  2 spec DeploymentSpec
  3 status DeploymentStatus

DeploymentSpec
  1 replicas int32 keep
  2 selector LabelSelector
  3 template PodTemplateSpec
  4 strategy DeploymentStrategy
  5 minReadySeconds int32
  6 revisionHistoryLimit int32 keep
  7 paused bool
  9 progressDeadlineSeconds int32 keep

DeploymentStrategy
  1 type str
  2 rollingUpdate RollingUpdateDeployment

RollingUpdateDeployment
  1 maxUnavailable intstr
  2 maxSurge intstr

DeploymentStatus
  1 observedGeneration int64
  2 replicas int32
  3 updatedReplicas int32
  7 readyReplicas int32
  4 availableReplicas int32
  5 unavailableReplicas int32
  9 terminatingReplicas int32 keep
  6 conditions [DeploymentCondition]
  8 collisionCount int32 keep

DeploymentCondition
  1 type str keep
  2 status str keep
  6 lastUpdateTime time
  7 lastTransitionTime time
  4 reason str
  5 message str

Job
  1 metadata ObjectMeta
  2 spec JobSpec
  3 status JobStatus

JobSpec
  1 parallelism int32 keep
  2 completions int32 keep
  3 activeDeadlineSeconds int64 keep
  11 podFailurePolicy PodFailurePolicy
  15 successPolicy SuccessPolicy
  7 backoffLimit int32 keep
  12 backoffLimitPerIndex int32 keep
  13 maxFailedIndexes int32 keep
  4 selector LabelSelector
  5 manualSelector bool keep
  6 template PodTemplateSpec
  8 ttlSecondsAfterFinished int32 keep
  9 completionMode str keep
  10 suspend bool keep
  14 podReplacementPolicy str keep
  16 managedBy str keep

PodFailurePolicy
  1 rules [PodFailurePolicyRule] keep

PodFailurePolicyRule
  1 action str keep
  2 onExitCodes PodFailurePolicyOnExitCodesRequirement
  3 onPodConditions [PodFailurePolicyOnPodConditionsPattern]

PodFailurePolicyOnExitCodesRequirement
  1 containerName str keep
  2 operator str keep
  3 values [int32] keep

PodFailurePolicyOnPodConditionsPattern
  1 type str keep
  2 status str

SuccessPolicy
  1 rules [SuccessPolicyRule] keep

SuccessPolicyRule
  1 succeededIndexes str keep
  2 succeededCount int32 keep

JobStatus
  1 conditions [JobCondition]
  2 startTime time
  3 completionTime time
  4 active int32
  5 succeeded int32
  6 failed int32
  11 terminating int32 keep
  7 completedIndexes str
  10 failedIndexes str keep
  9 ready int32 keep

JobCondition
  1 type str keep
  2 status str keep
  3 lastProbeTime time
  4 lastTransitionTime time
  5 reason str
  6 message str

CronJob
  1 metadata ObjectMeta
  2 spec CronJobSpec
  3 status CronJobStatus

CronJobSpec
  1 schedule str keep
  8 timeZone str keep
  2 startingDeadlineSeconds int64 keep
  3 concurrencyPolicy str
  4 suspend bool keep
  5 jobTemplate JobTemplateSpec
  6 successfulJobsHistoryLimit int32 keep
  7 failedJobsHistoryLimit int32 keep

JobTemplateSpec
  1 metadata ObjectMeta
  2 spec JobSpec

CronJobStatus
  1 active [ObjectReference]
  4 lastScheduleTime time
  5 lastSuccessfulTime time

PodDisruptionBudget
  1 metadata ObjectMeta
  2 spec PodDisruptionBudgetSpec
  3 status PodDisruptionBudgetStatus

PodDisruptionBudgetSpec
  1 minAvailable intstr
  2 selector LabelSelector
  3 maxUnavailable intstr
  4 unhealthyPodEvictionPolicy str keep

PodDisruptionBudgetStatus
  1 observedGeneration int64
  2 disruptedPods {time}
  3 disruptionsAllowed int32 keep
  4 currentHealthy int32 keep
  5 desiredHealthy int32 keep
  6 expectedPods int32 keep
  7 conditions [Condition]

Eviction
  1 metadata ObjectMeta
  2 deleteOptions DeleteOptions

PriorityClass
  1 metadata ObjectMeta
  2 value int32 keep
  3 globalDefault bool
  4 description str
  5 preemptionPolicy str keep

Lease
  1 metadata ObjectMeta
  2 spec LeaseSpec

LeaseSpec
  1 holderIdentity str keep
  2 leaseDurationSeconds int32 keep
  3 acquireTime microtime
  4 renewTime microtime
  5 leaseTransitions int32 keep
  6 strategy str keep
  7 preferredHolder str keep

events.Event
  1 metadata ObjectMeta
  2 eventTime microtime
  3 series events.EventSeries
  4 reportingController str
  5 reportingInstance str
  6 action str
  7 reason str
  8 regarding ObjectReference
  9 related ObjectReference
  10 note str
  11 type str
  12 deprecatedSource EventSource
  13 deprecatedFirstTimestamp time
  14 deprecatedLastTimestamp time
  15 deprecatedCount int32

events.EventSeries
  1 count int32 keep
  2 lastObservedTime microtime
"""

# ---------------------------------------------------------------------------------------------------
# rbac.authorization.k8s.io/v1, networking.k8s.io/v1

_RBAC_AND_NETWORKING = """
PolicyRule
  1 verbs [str] keep
  2 apiGroups [str]
  3 resources [str]
  4 resourceNames [str]
  5 nonResourceURLs [str]

Role
  1 metadata ObjectMeta
  2 rules [PolicyRule] keep

ClusterRole
  1 metadata ObjectMeta
  2 rules [PolicyRule] keep
  3 aggregationRule AggregationRule

AggregationRule
  1 clusterRoleSelectors [LabelSelector]

RoleBinding
  1 metadata ObjectMeta
  2 subjects [Subject]
  3 roleRef RoleRef

ClusterRoleBinding
  1 metadata ObjectMeta
  2 subjects [Subject]
  3 roleRef RoleRef

Subject
  1 kind str keep
  2 apiGroup str
  3 name str keep
  4 namespace str

RoleRef
  1 apiGroup str keep
  2 kind str keep
  3 name str keep

Ingress
  1 metadata ObjectMeta
  2 spec IngressSpec
  3 status IngressStatus

IngressSpec
  4 ingressClassName str keep
  1 defaultBackend IngressBackend
  2 tls [IngressTLS]
  3 rules [IngressRule]

IngressBackend
  4 service IngressServiceBackend
  3 resource TypedLocalObjectReference

IngressServiceBackend
  1 name str keep
  2 port ServiceBackendPort

ServiceBackendPort
  1 name str
  2 number int32

IngressTLS
  1 hosts [str]
  2 secretName str

IngressRule
  1 host str
  2 ingressRuleValue IngressRuleValue inline

IngressRuleValue
  1 http HTTPIngressRuleValue

HTTPIngressRuleValue
  1 paths [HTTPIngressPath] keep

HTTPIngressPath
  1 path str
  3 pathType str keep
  2 backend IngressBackend

IngressStatus
  1 loadBalancer IngressLoadBalancerStatus

IngressLoadBalancerStatus
  1 ingress [IngressLoadBalancerIngress]

IngressLoadBalancerIngress
  1 ip str
  2 hostname str
  4 ports [IngressPortStatus]

IngressPortStatus
  1 port int32 keep
  2 protocol str keep
  3 error str keep
"""

# ---------------------------------------------------------------------------------------------------
# authentication.k8s.io/v1 and v1beta1, authorization.k8s.io/v1

_AUTH = """
TokenRequest
  1 metadata ObjectMeta
  2 spec TokenRequestSpec
  3 status TokenRequestStatus

TokenRequestSpec
  1 audiences [str] keep
  4 expirationSeconds int64 keep
  3 boundObjectRef BoundObjectReference

BoundObjectReference
  1 kind str
  2 apiVersion str
  3 name str
  4 uid str

TokenRequestStatus
  1 token str keep
  2 expirationTimestamp time

SelfSubjectReview
  1 metadata ObjectMeta
  2 status SelfSubjectReviewStatus

SelfSubjectReviewStatus
  1 userInfo UserInfo

UserInfo
  1 username str
  2 uid str
  3 groups [str]
  4 extra {strlist}

SelfSubjectAccessReview
  1 metadata ObjectMeta
  2 spec SelfSubjectAccessReviewSpec
  3 status SubjectAccessReviewStatus

SelfSubjectAccessReviewSpec
  1 resourceAttributes ResourceAttributes
  2 nonResourceAttributes NonResourceAttributes

ResourceAttributes
  1 namespace str
  2 verb str
  3 group str
  4 version str
  5 resource str
  6 subresource str
  7 name str
  8 fieldSelector FieldSelectorAttributes
  9 labelSelector LabelSelectorAttributes

FieldSelectorAttributes
  1 rawSelector str
  2 requirements [FieldSelectorRequirement]

FieldSelectorRequirement
  1 key str keep
  2 operator str keep
  3 values [str]

LabelSelectorAttributes
  1 rawSelector str
  2 requirements [LabelSelectorRequirement]

NonResourceAttributes
  1 path str
  2 verb str

SubjectAccessReviewStatus
  1 allowed bool keep
  4 denied bool
  2 reason str
  3 evaluationError str

SelfSubjectRulesReview
  1 metadata ObjectMeta
  2 spec SelfSubjectRulesReviewSpec
  3 status SubjectRulesReviewStatus

SelfSubjectRulesReviewSpec
  1 namespace str

SubjectRulesReviewStatus
  1 resourceRules [ResourceRule] keep
  2 nonResourceRules [NonResourceRule] keep
  3 incomplete bool keep
  4 evaluationError str

ResourceRule
  1 verbs [str] keep
  2 apiGroups [str]
  3 resources [str]
  4 resourceNames [str]

NonResourceRule
  1 verbs [str] keep
  2 nonResourceURLs [str]
"""

# certificates.k8s.io/v1: `kubectl certificate approve|deny` sends the whole request to /approval.
_CERTIFICATES = """
CertificateSigningRequest
  1 metadata ObjectMeta
  2 spec CertificateSigningRequestSpec
  3 status CertificateSigningRequestStatus

CertificateSigningRequestSpec
  1 request bytes keep
  7 signerName str keep
  8 expirationSeconds int32
  5 usages [str]
  2 username str
  3 uid str
  4 groups [str]
  6 extra {strlist}

CertificateSigningRequestStatus
  1 conditions [CertificateSigningRequestCondition]
  2 certificate bytes

CertificateSigningRequestCondition
  1 type str keep
  6 status str keep
  2 reason str
  3 message str
  4 lastUpdateTime time
  5 lastTransitionTime time
"""

# The message that encodes each (apiVersion, kind) a client may send.
TOP_LEVEL: dict[tuple[str, str], str] = {
    ("v1", "Namespace"): "Namespace",
    ("v1", "Pod"): "Pod",
    ("v1", "ConfigMap"): "ConfigMap",
    ("v1", "Secret"): "Secret",
    ("v1", "Service"): "Service",
    ("v1", "ServiceAccount"): "ServiceAccount",
    ("v1", "ResourceQuota"): "ResourceQuota",
    ("v1", "Event"): "Event",
    ("apps/v1", "Deployment"): "Deployment",
    ("batch/v1", "Job"): "Job",
    ("batch/v1", "CronJob"): "CronJob",
    ("policy/v1", "PodDisruptionBudget"): "PodDisruptionBudget",
    ("policy/v1", "Eviction"): "Eviction",
    ("scheduling.k8s.io/v1", "PriorityClass"): "PriorityClass",
    ("coordination.k8s.io/v1", "Lease"): "Lease",
    ("events.k8s.io/v1", "Event"): "events.Event",
    ("rbac.authorization.k8s.io/v1", "Role"): "Role",
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): "ClusterRole",
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): "RoleBinding",
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): "ClusterRoleBinding",
    ("networking.k8s.io/v1", "Ingress"): "Ingress",
    ("authentication.k8s.io/v1", "TokenRequest"): "TokenRequest",
    ("authentication.k8s.io/v1", "SelfSubjectReview"): "SelfSubjectReview",
    ("authentication.k8s.io/v1beta1", "SelfSubjectReview"): "SelfSubjectReview",
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview"): "SelfSubjectAccessReview",
    ("authorization.k8s.io/v1", "SelfSubjectRulesReview"): "SelfSubjectRulesReview",
    ("certificates.k8s.io/v1", "CertificateSigningRequest"): "CertificateSigningRequest",
}


def _parse_type(text: str) -> tuple[Kind, str, bool, bool]:
    """Split a schema type into (kind, message name, repeated, map)."""
    repeated = text.startswith("[") and text.endswith("]")
    is_map = text.startswith("{") and text.endswith("}")
    inner = text[1:-1] if repeated or is_map else text
    try:
        return Kind(inner), "", repeated, is_map
    except ValueError:
        return Kind.MESSAGE, inner, repeated, is_map


def _parse_field(line: str) -> tuple[int, Field]:
    number, name, type_text, *flags = line.split()
    kind, message, repeated, is_map = _parse_type(type_text)
    unknown_flags = set(flags) - {"keep", "inline"}
    if unknown_flags:
        raise ValueError(f"unknown flags {sorted(unknown_flags)} in schema line {line!r}")
    field = Field(name, kind, message, repeated, is_map, "keep" in flags, "inline" in flags)
    return int(number), field


def _parse_schema(text: str) -> dict[str, dict[int, Field]]:
    messages: dict[str, dict[int, Field]] = {}
    current: dict[int, Field] = {}
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if not line:
            continue
        if not raw_line.startswith(" "):
            current = messages.setdefault(line, {})
            continue
        number, field = _parse_field(line)
        current[number] = field
    return messages


def _check_references(messages: dict[str, dict[int, Field]]) -> None:
    """Fail at import, not on a client's request, when the schema names a message it does not define."""
    for name, fields in messages.items():
        for field in fields.values():
            if field.kind is Kind.MESSAGE and field.message not in messages:
                raise ValueError(f"message {name}.{field.name} refers to undefined {field.message}")
    for message in TOP_LEVEL.values():
        if message not in messages:
            raise ValueError(f"top-level message {message} is not defined")


def _build() -> dict[str, dict[int, Field]]:
    messages: dict[str, dict[int, Field]] = {}
    for part in (
        _META,
        _CORE_WORKLOAD,
        _CORE_VOLUMES,
        _CORE_OBJECTS,
        _WORKLOADS,
        _RBAC_AND_NETWORKING,
        _AUTH,
        _CERTIFICATES,
    ):
        messages.update(_parse_schema(part))
    _check_references(messages)
    return messages


MESSAGES: dict[str, dict[int, Field]] = _build()

# Per message, the JSON names of lists that JSON shows as null when they are absent.
NULL_WHEN_ABSENT: dict[str, tuple[str, ...]] = {
    name: tuple(f.name for f in fields.values() if f.keep and (f.repeated or f.is_map))
    for name, fields in MESSAGES.items()
}
