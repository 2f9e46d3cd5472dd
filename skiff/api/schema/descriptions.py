"""Hand-written descriptions for the kinds and the fields users ask about most.

Keyed by definition short name; the "" entry describes the type itself. The generator copies these
into definitions.json, so `kubectl explain` shows them. Fields without an entry carry no description.
"""

from __future__ import annotations

_KIND_DESCRIPTIONS: dict[str, str] = {
    "Namespace": "A Namespace is a named scope that isolates groups of namespaced objects.",
    "Pod": "A Pod is a group of containers that share a network identity and storage and are scheduled "
    "together onto one node.",
    "Binding": "A Binding assigns an object (usually a pod) to a target such as a node.",
    "Service": "A Service gives a stable virtual address and DNS name to a set of pods chosen by a label "
    "selector, and balances traffic across them.",
    "Endpoints": "Endpoints lists the addresses and ports that currently back a Service.",
    "ConfigMap": "A ConfigMap holds non-secret configuration as key-value pairs for pods to consume.",
    "Secret": "A Secret holds a small amount of sensitive data, such as passwords, tokens or keys.",
    "ServiceAccount": "A ServiceAccount is an identity for processes that run in pods.",
    "Node": "A Node is a machine (here: a simulated kubelet) that runs pods.",
    "Event": "An Event records something that happened to an object, for people and tools to inspect.",
    "PersistentVolume": "A PersistentVolume is a piece of storage provisioned for the cluster.",
    "PersistentVolumeClaim": "A PersistentVolumeClaim is a request for storage by a user.",
    "ResourceQuota": "A ResourceQuota limits the total resources that objects in a namespace may consume.",
    "LimitRange": "A LimitRange sets default and allowed resource amounts per object in a namespace.",
    "ReplicationController": "A ReplicationController keeps a fixed number of pod copies running "
    "(superseded by Deployments and ReplicaSets).",
    "PodTemplate": "A PodTemplate stores a pod template for reuse.",
    "Deployment": "A Deployment declares a desired state for a set of identical pods and rolls ReplicaSets "
    "forward (or back) to reach it.",
    "ReplicaSet": "A ReplicaSet keeps a given number of pods matching its selector running.",
    "StatefulSet": "A StatefulSet runs pods with stable names and per-pod storage, started and updated in order.",
    "DaemonSet": "A DaemonSet runs one copy of a pod on each eligible node.",
    "ControllerRevision": "A ControllerRevision stores an immutable snapshot of a controller's state, used "
    "for rollbacks.",
    "Job": "A Job runs pods until a given number of them finish successfully.",
    "CronJob": "A CronJob creates Jobs on a repeating schedule.",
    "HorizontalPodAutoscaler": "A HorizontalPodAutoscaler adjusts the replica count of a scalable object "
    "based on observed metrics.",
    "StorageClass": "A StorageClass names a kind of storage and how volumes of that kind are provisioned.",
    "CSIDriver": "A CSIDriver describes a storage driver installed in the cluster.",
    "CSINode": "A CSINode lists the storage drivers installed on a node.",
    "VolumeAttachment": "A VolumeAttachment records the intent to attach a volume to a node.",
    "EndpointSlice": "An EndpointSlice holds a subset of the network endpoints behind a Service.",
    "NetworkPolicy": "A NetworkPolicy says which traffic may reach or leave the pods it selects.",
    "Ingress": "An Ingress routes outside HTTP(S) traffic to Services by host and path.",
    "IngressClass": "An IngressClass names an ingress controller and its configuration.",
    "PodDisruptionBudget": "A PodDisruptionBudget limits how many pods of a set voluntary disruptions "
    "may take down at once.",
    "Role": "A Role grants a set of permissions within one namespace.",
    "RoleBinding": "A RoleBinding grants the permissions of a Role or ClusterRole to subjects within a namespace.",
    "ClusterRole": "A ClusterRole grants a set of permissions cluster-wide or, through a RoleBinding, in a namespace.",
    "ClusterRoleBinding": "A ClusterRoleBinding grants the permissions of a ClusterRole to subjects across "
    "the cluster.",
    "PriorityClass": "A PriorityClass maps a name to a scheduling priority for pods.",
    "Lease": "A Lease is a lightweight lock used for leader election and node heartbeats.",
    "CertificateSigningRequest": "A CertificateSigningRequest asks for an X.509 certificate to be signed "
    "by a named signer.",
    "Scale": "Scale is the replica count of a scalable resource, read and written through its scale subresource.",
    "Status": "Status reports the outcome of an operation that returns no object, such as an error.",
}

_FIELD_DESCRIPTIONS: dict[str, dict[str, str]] = {
    "DeploymentSpec": {
        "": "The desired state of a Deployment.",
        "replicas": "How many pods the Deployment should run. Defaults to 1.",
        "selector": "The label selector that finds this Deployment's pods. It must match the template's "
        "labels and cannot change after creation.",
        "template": "The pod template every new pod is created from. Changing it starts a rollout.",
        "strategy": "How existing pods are replaced by new ones when the template changes.",
        "minReadySeconds": "How long a new pod must stay ready, without crashing, before it counts as "
        "available. Defaults to 0.",
        "revisionHistoryLimit": "How many old ReplicaSets to keep so that a rollout can be undone. Defaults to 10.",
        "paused": "When true, template changes do not start a rollout until the Deployment is resumed.",
        "progressDeadlineSeconds": "How long a rollout may go without progress before the Deployment "
        "reports ProgressDeadlineExceeded. Defaults to 600.",
    },
    "DeploymentStrategy": {
        "": "How a Deployment replaces old pods with new ones.",
        "type": 'The strategy: "RollingUpdate" (the default) replaces pods gradually; "Recreate" '
        "deletes all old pods before creating new ones.",
        "rollingUpdate": "Tuning for the RollingUpdate strategy; only set when type is RollingUpdate.",
    },
    "RollingUpdateDeployment": {
        "": "The limits a rolling update keeps while it replaces pods.",
        "maxUnavailable": "How many pods may be unavailable during the update, as a number or a "
        "percentage of the desired replicas (rounded down). Defaults to 25%.",
        "maxSurge": "How many pods may be created above the desired replica count during the update, as "
        "a number or a percentage (rounded up). Defaults to 25%.",
    },
    "ObjectMeta": {
        "": "Metadata that every persisted object carries: identity, labels, annotations and bookkeeping "
        "kept by the server.",
        "name": "The object's name, unique within its namespace (or the cluster, for cluster-scoped "
        "kinds). Cannot be changed.",
        "generateName": "A prefix from which the server generates a unique name when name is empty.",
        "namespace": "The namespace the object lives in. Empty for cluster-scoped kinds.",
        "selfLink": "Deprecated and no longer set.",
        "uid": "A unique identifier the server assigns at creation; never reused.",
        "resourceVersion": "An opaque version the server changes on every write; send it back on update "
        "for optimistic concurrency.",
        "generation": "A counter the server increments when the desired state (spec) changes.",
        "creationTimestamp": "When the server created the object (RFC 3339, UTC).",
        "deletionTimestamp": "When deletion was requested; the object goes away once its finalizers are removed.",
        "deletionGracePeriodSeconds": "How many seconds the object has to shut down gracefully after "
        "deletion was requested.",
        "labels": "Key-value pairs used to organise and select objects.",
        "annotations": "Key-value pairs for arbitrary, non-identifying data that tools attach to objects.",
        "ownerReferences": "The objects this object depends on; when all owners are gone, the garbage "
        "collector deletes it.",
        "finalizers": "Names of pending clean-up steps; deletion waits until the list is empty.",
        "managedFields": "Which field manager set which fields, as tracked by server-side apply.",
    },
    "PodSpec": {
        "": "The desired state of a pod.",
        "volumes": "Volumes that the pod's containers can mount.",
        "initContainers": "Containers that run to completion, one after another, before the regular containers start.",
        "containers": "The containers of the pod. At least one is required.",
        "ephemeralContainers": "Temporary containers added to a running pod for debugging.",
        "restartPolicy": "When containers are restarted: Always (default), OnFailure or Never.",
        "terminationGracePeriodSeconds": "Seconds a pod gets to stop after it is asked to terminate "
        "before it is killed. Defaults to 30.",
        "activeDeadlineSeconds": "Seconds the pod may run before the system marks it failed.",
        "dnsPolicy": "How the pod's DNS is configured: ClusterFirst (default), ClusterFirstWithHostNet, "
        "Default or None.",
        "nodeSelector": "Labels a node must carry for the pod to be scheduled onto it.",
        "serviceAccountName": "The service account the pod runs as.",
        "serviceAccount": "Deprecated alias of serviceAccountName.",
        "automountServiceAccountToken": "Whether the service account token is mounted into the pod.",
        "nodeName": "The node the pod is bound to. Set by the scheduler, or by hand to bypass it.",
        "hostNetwork": "Use the node's network namespace instead of a private one.",
        "hostPID": "Share the node's process namespace.",
        "hostIPC": "Share the node's IPC namespace.",
        "shareProcessNamespace": "Share one process namespace among all containers of the pod.",
        "securityContext": "Security settings that apply to all containers of the pod.",
        "imagePullSecrets": "Secrets with registry credentials used to pull the pod's images.",
        "hostname": "The pod's hostname; defaults to the pod name.",
        "subdomain": "With a headless Service of this name, gives the pod the DNS name "
        "<hostname>.<subdomain>.<namespace>.svc.",
        "affinity": "Scheduling preferences and requirements relative to nodes and other pods.",
        "schedulerName": "The scheduler that places this pod.",
        "tolerations": "Taints this pod tolerates, allowing it onto nodes that carry them.",
        "hostAliases": "Extra entries for the pod's /etc/hosts.",
        "priorityClassName": "The PriorityClass whose priority this pod gets.",
        "priority": "The pod's scheduling priority, filled in from priorityClassName.",
        "dnsConfig": "DNS settings merged into what dnsPolicy produces.",
        "readinessGates": "Extra conditions that must be true before the pod counts as ready.",
        "runtimeClassName": "The RuntimeClass used to run the pod.",
        "enableServiceLinks": "Whether environment variables describing Services are injected. Defaults to true.",
        "preemptionPolicy": "Whether this pod may preempt lower-priority pods: PreemptLowerPriority "
        "(default) or Never.",
        "overhead": "Resources the pod's sandbox uses on top of its containers.",
        "topologySpreadConstraints": "How the pod's replicas are spread across topology domains such as "
        "zones or nodes.",
        "setHostnameAsFQDN": "Set the pod's hostname to its fully qualified domain name.",
        "os": "The operating system the pod's containers need.",
        "hostUsers": "Whether the pod uses the node's user namespace. Defaults to true.",
        "schedulingGates": "While any gate is present, the scheduler leaves the pod unscheduled.",
        "resourceClaims": "Dynamically allocated resources the pod's containers may use.",
        "resources": "Resources for the pod as a whole, shared by its containers.",
        "hostnameOverride": "A hostname to use instead of the one derived from the pod name.",
    },
    "Container": {
        "": "One container of a pod.",
        "name": "The container's name, unique within the pod.",
        "image": "The container image to run.",
        "command": "The entrypoint, replacing the image's ENTRYPOINT. Not run in a shell.",
        "args": "Arguments to the entrypoint, replacing the image's CMD.",
        "workingDir": "The working directory; defaults to the image's.",
        "ports": "Ports the container listens on, for information and for naming in Services.",
        "envFrom": "Sources (ConfigMaps, Secrets) whose keys all become environment variables.",
        "env": "Environment variables set in the container.",
        "resources": "The compute resources the container requests and its limits.",
        "resizePolicy": "How the container reacts when its resources are changed in place.",
        "restartPolicy": "For init containers: Always makes it a sidecar that keeps running.",
        "restartPolicyRules": "Rules that decide, by exit code, whether the container restarts.",
        "volumeMounts": "Pod volumes mounted into the container's filesystem.",
        "volumeDevices": "Block devices from pod volumes exposed to the container.",
        "livenessProbe": "A check that restarts the container when it fails.",
        "readinessProbe": "A check that removes the pod from Service endpoints while it fails.",
        "startupProbe": "A check that holds off the other probes until the container has started.",
        "lifecycle": "Actions run right after the container starts and right before it stops.",
        "terminationMessagePath": "A file whose contents become the container's termination message. "
        "Defaults to /dev/termination-log.",
        "terminationMessagePolicy": "Where the termination message comes from: File (default) or "
        "FallbackToLogsOnError.",
        "imagePullPolicy": "When the image is pulled: Always, IfNotPresent or Never.",
        "securityContext": "Security settings for this container, overriding the pod's.",
        "stdin": "Keep a stdin buffer open for the container.",
        "stdinOnce": "Close stdin after the first attached client disconnects.",
        "tty": "Allocate a terminal for the container; needs stdin.",
    },
    "ServiceSpec": {
        "": "The desired behaviour of a Service.",
        "ports": "The ports the Service exposes and where each one forwards to.",
        "selector": "Labels of the pods that receive the Service's traffic. Without a selector, "
        "endpoints are managed by hand.",
        "clusterIP": 'The virtual IP of the Service; assigned when empty, "None" for a headless Service.',
        "clusterIPs": "The Service's virtual IPs, one per IP family; the first equals clusterIP.",
        "type": "How the Service is exposed: ClusterIP (default), NodePort, LoadBalancer or ExternalName.",
        "externalIPs": "Extra IPs on which nodes accept traffic for this Service.",
        "sessionAffinity": "ClientIP sends a client's requests to the same pod; None (default) does not.",
        "loadBalancerIP": "Deprecated: a requested IP for a LoadBalancer Service.",
        "loadBalancerSourceRanges": "Client CIDRs allowed to reach a LoadBalancer Service.",
        "externalName": "For type ExternalName: the DNS name the Service is an alias of.",
        "externalTrafficPolicy": "Whether outside traffic goes only to node-local endpoints (Local) or "
        "to any (Cluster, the default).",
        "healthCheckNodePort": "The node port a load balancer probes when externalTrafficPolicy is Local.",
        "publishNotReadyAddresses": "Publish endpoints of pods even before they are ready.",
        "sessionAffinityConfig": "Settings for session affinity, such as its timeout.",
        "ipFamilies": "The IP families (IPv4, IPv6) the Service uses.",
        "ipFamilyPolicy": "SingleStack, PreferDualStack or RequireDualStack.",
        "allocateLoadBalancerNodePorts": "Whether a LoadBalancer Service gets node ports. Defaults to true.",
        "loadBalancerClass": "The load balancer implementation that serves this Service.",
        "internalTrafficPolicy": "Whether in-cluster traffic goes only to node-local endpoints (Local) or "
        "to any (Cluster, the default).",
        "trafficDistribution": "A preference for how traffic is spread over endpoints, such as PreferClose.",
    },
    "ServicePort": {
        "": "One port a Service exposes.",
        "name": "The port's name; required when a Service has more than one port.",
        "protocol": "TCP (default), UDP or SCTP.",
        "appProtocol": "The application protocol spoken on the port, as a hint for implementations.",
        "port": "The port the Service listens on.",
        "targetPort": "The pod port traffic is sent to, by number or by container port name. Defaults to port.",
        "nodePort": "For NodePort and LoadBalancer Services: the port opened on every node.",
    },
    "ConfigMap": {
        "apiVersion": "The API version of this object: v1.",
        "kind": "The kind of this object: ConfigMap.",
        "metadata": "The object's metadata.",
        "data": "UTF-8 configuration values by key.",
        "binaryData": "Binary values by key, base64-encoded; keys must not repeat those in data.",
        "immutable": "When true, data and binaryData can no longer change.",
    },
    "Secret": {
        "apiVersion": "The API version of this object: v1.",
        "kind": "The kind of this object: Secret.",
        "metadata": "The object's metadata.",
        "data": "Secret values by key, base64-encoded.",
        "stringData": "Plain-text values by key, written into data on write; never returned on read.",
        "type": "What the secret holds, such as Opaque or kubernetes.io/tls; decides the keys it needs.",
        "immutable": "When true, the data can no longer change.",
    },
    "Deployment": {
        "spec": "The desired state of the Deployment.",
        "status": "The most recently observed state of the Deployment, written by the controller.",
    },
}


def descriptions_for(short_name: str) -> dict[str, str]:
    """The descriptions for one definition: "" for the type, then fields by JSON name."""
    found = dict(_FIELD_DESCRIPTIONS.get(short_name, {}))
    if short_name in _KIND_DESCRIPTIONS:
        found.setdefault("", _KIND_DESCRIPTIONS[short_name])
    return found
