"""Pod specs: Kubernetes' defaults and validation, shared by pods and every pod template."""

from __future__ import annotations

import copy
from typing import Any

from skiff.api import validation as v
from skiff.api.errors import Cause
from skiff.api.quantity import QuantityError, parse_quantity

Obj = dict[str, Any]

CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")
PROBES = ("livenessProbe", "readinessProbe", "startupProbe")
VOLUME_SOURCES = (
    "hostPath",
    "emptyDir",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "gitRepo",
    "secret",
    "nfs",
    "iscsi",
    "glusterfs",
    "persistentVolumeClaim",
    "rbd",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "downwardAPI",
    "fc",
    "azureFile",
    "configMap",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "projected",
    "portworxVolume",
    "scaleIO",
    "storageos",
    "csi",
    "ephemeral",
    "image",
)
RESTART_POLICIES = ("Always", "Never", "OnFailure")
DNS_POLICIES = ("ClusterFirst", "ClusterFirstWithHostNet", "Default", "None")
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
PROTOCOLS = ("SCTP", "TCP", "UDP")
TERMINATION_MESSAGE_POLICIES = ("FallbackToLogsOnError", "File")
DEFAULT_FILE_MODE = 0o644  # 420: what `defaultMode` of secret, configMap and projected volumes starts as

# -- defaults ---------------------------------------------------------------------------------------


def default_pod_spec(spec: Obj) -> None:
    """Fill in the defaults kube-apiserver 1.33 applies to every PodSpec."""
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("enableServiceLinks", True)
    if spec.get("serviceAccount") and not spec.get("serviceAccountName"):
        spec["serviceAccountName"] = spec["serviceAccount"]
    for list_name in CONTAINER_LISTS:
        for container in spec.get(list_name) or []:
            _default_container(container, host_network=bool(spec.get("hostNetwork")))
    for volume in spec.get("volumes") or []:
        _default_volume(volume)


def _default_container(container: Obj, host_network: bool) -> None:
    if "image" in container:
        container.setdefault("imagePullPolicy", pull_policy_for(container.get("image") or ""))
    container.setdefault("terminationMessagePath", "/dev/termination-log")
    container.setdefault("terminationMessagePolicy", "File")
    resources = container.setdefault("resources", {})
    _default_requests_from_limits(resources)
    for port in container.get("ports") or []:
        port.setdefault("protocol", "TCP")
        if host_network and "containerPort" in port:
            # With the host's network the container listens on the host port itself.
            port.setdefault("hostPort", port["containerPort"])
    for probe_name in PROBES:
        if isinstance(container.get(probe_name), dict):
            _default_probe(container[probe_name])
    for hook in ("postStart", "preStop"):
        handler = (container.get("lifecycle") or {}).get(hook)
        if isinstance(handler, dict):
            _default_handler(handler)
    for env in container.get("env") or []:
        field_ref = (env.get("valueFrom") or {}).get("fieldRef")
        if isinstance(field_ref, dict):
            field_ref.setdefault("apiVersion", "v1")


def pull_policy_for(image: str) -> str:
    """`Always` for `:latest` or an untagged image, `IfNotPresent` for a pinned tag or digest."""
    name = image.split("@", 1)[0]
    has_digest = "@" in image
    last_segment = name.rsplit("/", 1)[-1]
    tag = last_segment.partition(":")[2]
    if tag == "latest" or (not tag and not has_digest):
        return "Always"
    return "IfNotPresent"


def _default_requests_from_limits(resources: Obj) -> None:
    # A limit without a request means the container asks for exactly its limit.
    limits = resources.get("limits") or {}
    if not limits:
        return
    requests = resources.setdefault("requests", {})
    for name, amount in limits.items():
        requests.setdefault(name, amount)


def _default_probe(probe: Obj) -> None:
    probe.setdefault("timeoutSeconds", 1)
    probe.setdefault("periodSeconds", 10)
    probe.setdefault("successThreshold", 1)
    probe.setdefault("failureThreshold", 3)
    _default_handler(probe)


def _default_handler(handler: Obj) -> None:
    http_get = handler.get("httpGet")
    if isinstance(http_get, dict):
        http_get.setdefault("path", "/")
        http_get.setdefault("scheme", "HTTP")
    grpc = handler.get("grpc")
    if isinstance(grpc, dict):
        grpc.setdefault("service", "")


def _default_volume(volume: Obj) -> None:
    if not any(source in volume for source in VOLUME_SOURCES):
        volume["emptyDir"] = {}
    for source in ("secret", "configMap", "downwardAPI", "projected"):
        if isinstance(volume.get(source), dict):
            volume[source].setdefault("defaultMode", DEFAULT_FILE_MODE)
    if isinstance(volume.get("hostPath"), dict):
        volume["hostPath"].setdefault("type", "")


def default_pod_template(template: object) -> None:
    if isinstance(template, dict) and isinstance(template.get("spec"), dict):
        default_pod_spec(template["spec"])


# -- QoS --------------------------------------------------------------------------------------------

QOS_RESOURCES = ("cpu", "memory")


def qos_class(spec: Obj) -> str:
    """Guaranteed, Burstable or BestEffort, computed from containers' CPU and memory resources."""
    requests: dict[str, Any] = {}
    limits: dict[str, Any] = {}
    guaranteed = True
    for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        resources = container.get("resources") or {}
        _accumulate(requests, resources.get("requests") or {})
        found = _accumulate(limits, resources.get("limits") or {})
        if set(found) != set(QOS_RESOURCES):
            guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    if guaranteed and all(requests.get(r) == limits.get(r) for r in requests) and len(requests) == len(limits):
        return "Guaranteed"
    return "Burstable"


def _accumulate(totals: dict[str, Any], amounts: Obj) -> list[str]:
    found = []
    for name in QOS_RESOURCES:
        if name not in amounts:
            continue
        try:
            amount = parse_quantity(amounts[name])
        except QuantityError:
            continue
        if amount.is_zero():
            continue
        totals[name] = totals[name] + amount if name in totals else amount
        found.append(name)
    return found


# -- validation -------------------------------------------------------------------------------------


def validate_pod_spec(spec: object, path: str, restart_policies: tuple[str, ...] = RESTART_POLICIES) -> list[Cause]:
    if not isinstance(spec, dict):
        return [v.required(path)]
    volumes, causes = _validate_volumes(spec.get("volumes") or [], v.child(path, "volumes"))
    causes += _validate_containers(spec, path, volumes)
    causes += _validate_restart_policy(spec.get("restartPolicy"), v.child(path, "restartPolicy"), restart_policies)
    causes += v.one_of(v.child(path, "dnsPolicy"), spec.get("dnsPolicy"), DNS_POLICIES)
    causes += v.validate_labels(spec.get("nodeSelector"), v.child(path, "nodeSelector"))
    causes += _validate_optional_names(spec, path)
    causes += _validate_tolerations(spec.get("tolerations") or [], v.child(path, "tolerations"))
    causes += _validate_deadline(spec.get("activeDeadlineSeconds"), v.child(path, "activeDeadlineSeconds"))
    causes += v.non_negative(v.child(path, "terminationGracePeriodSeconds"), spec.get("terminationGracePeriodSeconds"))
    return causes


def _validate_restart_policy(policy: object, path: str, allowed: tuple[str, ...]) -> list[Cause]:
    if not policy:
        return [v.required(path)]
    if policy not in allowed:
        return [v.not_supported(path, policy, allowed)]
    return []


def _validate_optional_names(spec: Obj, path: str) -> list[Cause]:
    causes: list[Cause] = []
    account = spec.get("serviceAccountName")
    if account:
        causes += v.invalid_each(v.child(path, "serviceAccountName"), account, v.dns1123_subdomain(account))
    for field_name in ("hostname", "subdomain"):
        value = spec.get(field_name)
        if value:
            causes += v.invalid_each(v.child(path, field_name), value, v.dns1123_label(value))
    node_name = spec.get("nodeName")
    if node_name:
        causes += v.invalid_each(v.child(path, "nodeName"), node_name, v.dns1123_subdomain(node_name))
    return causes


def _validate_deadline(deadline: object, path: str) -> list[Cause]:
    if deadline is None:
        return []
    if not isinstance(deadline, int) or not 1 <= deadline <= 2**31 - 1:
        return [v.invalid(path, deadline, "must be between 1 and 2147483647, inclusive")]
    return []


def _validate_tolerations(tolerations: list[Obj], path: str) -> list[Cause]:
    causes: list[Cause] = []
    for position, toleration in enumerate(tolerations):
        item = v.index(path, position)
        key, operator = toleration.get("key", ""), toleration.get("operator") or "Equal"
        if key:
            causes += v.invalid_each(v.child(item, "key"), key, v.qualified_name(key))
        elif operator != "Exists":
            detail = 'operator must be Exists when `key` is empty, which means "match all values and all keys"'
            causes.append(v.invalid(v.child(item, "operator"), operator, detail))
        if operator == "Exists" and toleration.get("value"):
            detail = "value must be empty when `operator` is 'Exists'"
            causes.append(v.invalid(v.child(item, "operator"), toleration["value"], detail))
        causes += v.one_of(v.child(item, "operator"), operator, ("Equal", "Exists"))
        causes += v.one_of(v.child(item, "effect"), toleration.get("effect"), TAINT_EFFECTS)
    return causes


TAINT_EFFECTS = ("NoExecute", "NoSchedule", "PreferNoSchedule")


def _validate_volumes(volumes: list[Obj], path: str) -> tuple[set[str], list[Cause]]:
    names: set[str] = set()
    causes: list[Cause] = []
    for position, volume in enumerate(volumes):
        item = v.index(path, position)
        name = volume.get("name") or ""
        if not name:
            causes.append(v.required(v.child(item, "name")))
        else:
            causes += v.invalid_each(v.child(item, "name"), name, v.dns1123_label(name))
            if name in names:
                causes.append(v.duplicate(v.child(item, "name"), name))
        names.add(name)
        causes += _validate_volume_source(volume, item)
    return names, causes


def _validate_volume_source(volume: Obj, path: str) -> list[Cause]:
    sources = [s for s in VOLUME_SOURCES if volume.get(s) is not None]
    if not sources:
        return [v.required(path, "must specify a volume type")]
    return [v.forbidden(v.child(path, s), "may not specify more than 1 volume type") for s in sources[1:]]


def _validate_containers(spec: Obj, path: str, volumes: set[str]) -> list[Cause]:
    causes: list[Cause] = []
    if not spec.get("containers"):
        causes.append(v.required(v.child(path, "containers")))
    seen: set[str] = set()
    for list_name in ("initContainers", "containers"):
        for position, container in enumerate(spec.get(list_name) or []):
            item = v.index(v.child(path, list_name), position)
            causes += _validate_container_name(container, item, seen)
            causes += validate_container(container, item, volumes, init=list_name == "initContainers")
    return causes


def _validate_container_name(container: Obj, path: str, seen: set[str]) -> list[Cause]:
    name = container.get("name") or ""
    if not name:
        return [v.required(v.child(path, "name"))]
    causes = v.invalid_each(v.child(path, "name"), name, v.dns1123_label(name))
    if name in seen:
        causes.append(v.duplicate(v.child(path, "name"), name))
    seen.add(name)
    return causes


def validate_container(container: Obj, path: str, volumes: set[str], init: bool = False) -> list[Cause]:
    causes: list[Cause] = []
    if not (container.get("image") or "").strip():
        causes.append(v.required(v.child(path, "image")))
    causes += v.one_of(v.child(path, "imagePullPolicy"), container.get("imagePullPolicy"), PULL_POLICIES)
    policy = container.get("terminationMessagePolicy")
    causes += v.one_of(v.child(path, "terminationMessagePolicy"), policy, TERMINATION_MESSAGE_POLICIES)
    causes += _validate_container_restart_policy(container.get("restartPolicy"), path, init)
    causes += _validate_ports(container.get("ports") or [], v.child(path, "ports"))
    causes += _validate_env(container.get("env") or [], v.child(path, "env"))
    causes += _validate_mounts(container.get("volumeMounts") or [], v.child(path, "volumeMounts"), volumes)
    causes += validate_resources(container.get("resources") or {}, v.child(path, "resources"))
    for probe_name in PROBES:
        probe = container.get(probe_name)
        if isinstance(probe, dict):
            causes += _validate_probe(probe, v.child(path, probe_name), probe_name)
    return causes


def _validate_container_restart_policy(policy: object, path: str, init: bool) -> list[Cause]:
    if policy is None:
        return []
    if not init:
        return [v.forbidden(v.child(path, "restartPolicy"), "may not be set for non-init containers")]
    return v.one_of(v.child(path, "restartPolicy"), policy, ("Always",), allow_empty=False)


def _validate_ports(ports: list[Obj], path: str) -> list[Cause]:
    causes: list[Cause] = []
    names: set[str] = set()
    for position, port in enumerate(ports):
        item = v.index(path, position)
        name = port.get("name")
        if name:
            causes += v.invalid_each(v.child(item, "name"), name, v.port_name(name))
            if name in names:
                causes.append(v.duplicate(v.child(item, "name"), name))
            names.add(name)
        container_port = port.get("containerPort")
        if container_port is None:
            causes.append(v.required(v.child(item, "containerPort")))
        else:
            causes += v.invalid_each(v.child(item, "containerPort"), container_port, v.port_number(container_port))
        host_port = port.get("hostPort")
        if host_port:
            causes += v.invalid_each(v.child(item, "hostPort"), host_port, v.port_number(host_port))
        causes += v.one_of(v.child(item, "protocol"), port.get("protocol"), PROTOCOLS, allow_empty=False)
    return causes


def _validate_env(env: list[Obj], path: str) -> list[Cause]:
    causes: list[Cause] = []
    for position, variable in enumerate(env):
        item = v.index(path, position)
        name = variable.get("name") or ""
        if not name:
            causes.append(v.required(v.child(item, "name")))
        else:
            causes += v.invalid_each(v.child(item, "name"), name, v.env_var_name(name))
        if variable.get("value") and variable.get("valueFrom"):
            detail = "may not be specified when `value` is not empty"
            causes.append(v.invalid(v.child(item, "valueFrom"), "", detail))
    return causes


def _validate_mounts(mounts: list[Obj], path: str, volumes: set[str]) -> list[Cause]:
    causes: list[Cause] = []
    mount_paths: set[str] = set()
    for position, mount in enumerate(mounts):
        item = v.index(path, position)
        name = mount.get("name") or ""
        if not name:
            causes.append(v.required(v.child(item, "name")))
        elif name not in volumes:
            causes.append(v.not_found(v.child(item, "name"), name))
        mount_path = mount.get("mountPath") or ""
        if not mount_path:
            causes.append(v.required(v.child(item, "mountPath")))
        elif mount_path in mount_paths:
            causes.append(v.invalid(v.child(item, "mountPath"), mount_path, "must be unique"))
        mount_paths.add(mount_path)
    return causes


def _validate_probe(probe: Obj, path: str, probe_name: str) -> list[Cause]:
    handlers = [h for h in ("exec", "httpGet", "tcpSocket", "grpc") if probe.get(h) is not None]
    causes: list[Cause] = []
    if not handlers:
        causes.append(v.required(path, "must specify a handler type"))
    causes += [v.forbidden(v.child(path, h), "may not specify more than 1 handler type") for h in handlers[1:]]
    for field_name in ("initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold"):
        causes += v.non_negative(v.child(path, field_name), probe.get(field_name))
    if probe_name != "readinessProbe" and probe.get("successThreshold", 1) != 1:
        causes.append(v.invalid(v.child(path, "successThreshold"), probe["successThreshold"], "must be 1"))
    return causes


STANDARD_CONTAINER_RESOURCES = ("cpu", "memory", "ephemeral-storage")
# Extended resources (GPUs and the like) cannot be overcommitted: request must equal limit.
OVERCOMMITTABLE_PREFIXES = ("cpu", "memory", "ephemeral-storage", "hugepages-")


def validate_resources(resources: Obj, path: str) -> list[Cause]:
    limits_path, requests_path = v.child(path, "limits"), v.child(path, "requests")
    limits, causes = _parse_amounts(resources.get("limits") or {}, limits_path)
    requests, request_causes = _parse_amounts(resources.get("requests") or {}, requests_path)
    causes += request_causes
    for name, request in requests.items():
        limit = limits.get(name)
        overcommittable = name.startswith(OVERCOMMITTABLE_PREFIXES)
        if limit is None:
            if not overcommittable:
                causes.append(v.required(limits_path, "Limit must be set for non overcommitable resources"))
        elif not overcommittable and request != limit:
            causes.append(v.invalid(requests_path, str(request), f"must be equal to {name} limit of {limit}"))
        elif request > limit:
            detail = f"must be less than or equal to {name} limit of {limit}"
            causes.append(v.invalid(requests_path, str(request), detail))
    return causes


def _parse_amounts(amounts: Obj, path: str) -> tuple[dict[str, Any], list[Cause]]:
    parsed: dict[str, Any] = {}
    causes: list[Cause] = []
    for name, raw in amounts.items():
        item = v.key(path, name)
        causes += _validate_resource_name(name, item)
        try:
            amount = parse_quantity(raw)
        except QuantityError as error:
            causes.append(v.invalid(item, raw, str(error)))
            continue
        if amount.sign() < 0:
            causes.append(v.invalid(item, str(amount), "must be greater than or equal to 0"))
        parsed[name] = amount
    return parsed, causes


def _validate_resource_name(name: str, path: str) -> list[Cause]:
    causes = v.invalid_each(path, name, v.qualified_name(name))
    if causes:
        return causes
    standard = name in STANDARD_CONTAINER_RESOURCES or name.startswith("hugepages-")
    extended = "/" in name and not name.startswith(("kubernetes.io/", "requests."))
    if not standard and not extended:
        return [v.invalid(path, name, "must be a standard resource for containers")]
    return []


# -- pod templates ----------------------------------------------------------------------------------


def validate_pod_template(template: object, path: str, restart_policies: tuple[str, ...] = ("Always",)) -> list[Cause]:
    """A workload's pod template: labels and the pod spec (restartPolicy limited as kube does)."""
    if not isinstance(template, dict):
        return [v.required(path)]
    labels = (template.get("metadata") or {}).get("labels")
    causes = v.validate_labels(labels, v.child(path, "metadata", "labels"))
    annotations = (template.get("metadata") or {}).get("annotations")
    causes += v.validate_annotations(annotations, v.child(path, "metadata", "annotations"))
    causes += validate_pod_spec(template.get("spec"), v.child(path, "spec"), restart_policies)
    return causes


# -- pod updates ------------------------------------------------------------------------------------

POD_UPDATE_FORBIDDEN = (
    "pod updates may not change fields other than `spec.containers[*].image`,"
    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,"
    "`spec.tolerations` (only additions to existing tolerations),"
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"
)


def validate_pod_spec_update(new_spec: Obj, old_spec: Obj) -> list[Cause]:
    """A running pod's spec is fixed but for images, the deadline and new tolerations."""
    causes = _validate_deadline_update(new_spec.get("activeDeadlineSeconds"), old_spec.get("activeDeadlineSeconds"))
    comparable = copy.deepcopy(new_spec)
    for list_name in CONTAINER_LISTS:
        _copy_images(comparable.get(list_name) or [], old_spec.get(list_name) or [])
    comparable["activeDeadlineSeconds"] = old_spec.get("activeDeadlineSeconds")
    old_tolerations = old_spec.get("tolerations") or []
    if all(t in (new_spec.get("tolerations") or []) for t in old_tolerations):
        comparable["tolerations"] = old_tolerations
    if _without_nulls(comparable) != _without_nulls(old_spec):
        causes.append(v.forbidden("spec", POD_UPDATE_FORBIDDEN))
    return causes


def _copy_images(new_containers: list[Obj], old_containers: list[Obj]) -> None:
    for new, old in zip(new_containers, old_containers, strict=False):
        if "image" in old:
            new["image"] = old["image"]


def _without_nulls(spec: Obj) -> Obj:
    return {k: value for k, value in spec.items() if value is not None and value != []}


def _validate_deadline_update(new: object, old: object) -> list[Cause]:
    path = "spec.activeDeadlineSeconds"
    if old is None or new == old:
        return []
    if new is None:
        return [v.invalid(path, "null", "must not update from a positive integer to nil value")]
    if isinstance(new, int) and isinstance(old, int) and new > old:
        return [v.invalid(path, new, "must be less than or equal to previous value")]
    return []
