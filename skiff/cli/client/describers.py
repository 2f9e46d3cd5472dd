"""What `describe` shows for the common kinds: pods, deployments, services and nodes."""

from __future__ import annotations

from typing import Any

from skiff.api.errors import ApiError
from skiff.api.kinds import BUILTINS
from skiff.cli.client.describe_text import (
    NONE,
    Section,
    controlled_by,
    metadata_lines,
    selector_text,
    since,
    timestamp,
)
from skiff.client.rest import Client

Obj = dict[str, Any]
REVISION = "deployment.kubernetes.io/revision"


def _resource(group_version: str, kind: str) -> Any:
    return BUILTINS.by_api_version(group_version, kind)


# -- pods ----------------------------------------------------------------------------------------------


def describe_pod(client: Client, pod: Obj, section: Section) -> None:
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    metadata_lines(section, pod)
    section.kv("Priority", spec.get("priority", 0))
    section.kv("Service Account", spec.get("serviceAccountName"))
    node = spec.get("nodeName")
    section.kv("Node", f"{node}/{status['hostIP']}" if node and status.get("hostIP") else node)
    section.kv("Start Time", timestamp(status.get("startTime")))
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        section.kv("Status", f"Terminating (lasts {since(pod['metadata']['deletionTimestamp'])})")
    else:
        section.kv("Status", status.get("phase"))
    for key in ("reason", "message"):
        if status.get(key):
            section.kv(key.capitalize(), status[key])
    section.kv("IP", status.get("podIP"))
    _pod_ips(section, status)
    section.kv("Controlled By", controlled_by(pod))
    _containers(section, "Init Containers", spec.get("initContainers"), status.get("initContainerStatuses"))
    _containers(section, "Containers", spec.get("containers"), status.get("containerStatuses"))
    _pod_conditions(section, status.get("conditions"))
    _volumes(section, spec.get("volumes"))
    section.kv("QoS Class", status.get("qosClass"))
    section.mapping("Node-Selectors", spec.get("nodeSelector"))
    section.kv("Tolerations", "\n".join(_toleration(t) for t in spec.get("tolerations") or []) or NONE)


def _pod_ips(section: Section, status: Obj) -> None:
    ips = status.get("podIPs") or []
    if not ips:
        section.kv("IPs", NONE)
        return
    section.heading("IPs")
    for entry in ips:
        section.kv("IP", entry.get("ip"), 1)


def _ports(container: Obj) -> str:
    ports = [f"{p.get('containerPort')}/{p.get('protocol', 'TCP')}" for p in container.get("ports") or []]
    return ", ".join(ports) or NONE


def _containers(section: Section, title: str, containers: list[Obj] | None, statuses: list[Obj] | None) -> None:
    if not containers:
        return
    by_name = {s.get("name"): s for s in statuses or []}
    section.heading(title)
    for container in containers:
        status = by_name.get(container.get("name"), {})
        section.heading(container.get("name", ""), 1)
        section.kv("Container ID", status.get("containerID", ""), 2)
        section.kv("Image", container.get("image"), 2)
        section.kv("Image ID", status.get("imageID", ""), 2)
        section.kv("Port", _ports(container), 2)
        if container.get("command"):
            section.kv("Command", "\n".join(container["command"]), 2)
        if container.get("args"):
            section.kv("Args", "\n".join(container["args"]), 2)
        _state(section, "State", status.get("state"))
        if status.get("lastState"):
            _state(section, "Last State", status.get("lastState"))
        section.kv("Ready", "True" if status.get("ready") else "False", 2)
        section.kv("Restart Count", status.get("restartCount", 0), 2)
        _env(section, container)
        _mounts(section, container.get("volumeMounts"))


def _state(section: Section, title: str, state: Obj | None) -> None:
    if not state:
        section.kv(title, "Waiting", 2)
        return
    name, detail = next(iter(state.items()))
    section.kv(title, name.capitalize(), 2)
    for key, label in (("reason", "Reason"), ("message", "Message"), ("exitCode", "Exit Code")):
        if detail.get(key) not in (None, ""):
            section.kv(label, detail[key], 3)
    for key, label in (("startedAt", "Started"), ("finishedAt", "Finished")):
        if detail.get(key):
            section.kv(label, timestamp(detail[key]), 3)


def _env(section: Section, container: Obj) -> None:
    env = container.get("env") or []
    if not env:
        section.kv("Environment", NONE, 2)
        return
    section.heading("Environment", 2)
    for entry in env:
        value = entry.get("value")
        if value is None and entry.get("valueFrom"):
            source = next(iter(entry["valueFrom"]))
            value = f"<set from {source}>"
        section.kv(entry.get("name", ""), value if value is not None else "", 3)


def _mounts(section: Section, mounts: list[Obj] | None) -> None:
    if not mounts:
        section.kv("Mounts", NONE, 2)
        return
    section.heading("Mounts", 2)
    for mount in mounts:
        mode = "ro" if mount.get("readOnly") else "rw"
        section.text(f"{mount.get('mountPath')} from {mount.get('name')} ({mode})", 3)


def _pod_conditions(section: Section, conditions: list[Obj] | None) -> None:
    if not conditions:
        return
    section.heading("Conditions")
    section.table(["Type", "Status"], [[c.get("type", ""), c.get("status", "")] for c in conditions])


def _volumes(section: Section, volumes: list[Obj] | None) -> None:
    if not volumes:
        section.kv("Volumes", NONE)
        return
    section.heading("Volumes")
    for volume in volumes:
        section.heading(volume.get("name", ""), 1)
        kind = next((k for k in volume if k != "name"), "")
        source = volume.get(kind) or {}
        section.kv("Type", kind[:1].upper() + kind[1:], 2)
        for key, value in source.items():
            if not isinstance(value, dict | list):
                section.kv(key[:1].upper() + key[1:], value, 2)


def _toleration(toleration: Obj) -> str:
    text = toleration.get("key", "")
    if toleration.get("value"):
        text += f"={toleration['value']}"
    if toleration.get("effect"):
        text += f":{toleration['effect']}"
    if toleration.get("operator") == "Exists" and not toleration.get("key"):
        text = "op=Exists" + (f":{toleration['effect']}" if toleration.get("effect") else "")
    if toleration.get("tolerationSeconds") is not None:
        text += f" for {toleration['tolerationSeconds']}s"
    return text


# -- deployments ---------------------------------------------------------------------------------------


def describe_deployment(client: Client, deployment: Obj, section: Section) -> None:
    spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
    meta = deployment.get("metadata") or {}
    section.kv("Name", meta.get("name"))
    section.kv("Namespace", meta.get("namespace"))
    section.kv("CreationTimestamp", timestamp(meta.get("creationTimestamp")))
    section.mapping("Labels", meta.get("labels"))
    section.mapping("Annotations", meta.get("annotations"))
    section.kv("Selector", selector_text(spec.get("selector")))
    section.kv("Replicas", _replicas(spec, status))
    strategy = spec.get("strategy") or {}
    section.kv("StrategyType", strategy.get("type", "RollingUpdate"))
    section.kv("MinReadySeconds", spec.get("minReadySeconds", 0))
    rolling = strategy.get("rollingUpdate")
    if rolling:
        unavailable, surge = rolling.get("maxUnavailable", "25%"), rolling.get("maxSurge", "25%")
        section.kv("RollingUpdateStrategy", f"{unavailable} max unavailable, {surge} max surge")
    pod_template(section, spec.get("template") or {})
    _conditions_table(section, status.get("conditions"))
    old, new = replica_sets(client, deployment)
    section.kv("OldReplicaSets", ", ".join(_rs_text(rs) for rs in old) or NONE)
    section.kv("NewReplicaSet", _rs_text(new) if new else NONE)


def _replicas(spec: Obj, status: Obj) -> str:
    return (
        f"{spec.get('replicas', 1)} desired | {status.get('updatedReplicas', 0)} updated | "
        f"{status.get('replicas', 0)} total | {status.get('availableReplicas', 0)} available | "
        f"{status.get('unavailableReplicas', 0)} unavailable"
    )


def pod_template(section: Section, template: Obj, level: int = 0) -> None:
    meta, spec = template.get("metadata") or {}, template.get("spec") or {}
    section.heading("Pod Template", level)
    section.mapping("Labels", meta.get("labels"), level + 1)
    if meta.get("annotations"):
        section.mapping("Annotations", meta.get("annotations"), level + 1)
    section.heading("Containers", level + 1)
    for container in spec.get("containers") or []:
        section.heading(container.get("name", ""), level + 2)
        section.kv("Image", container.get("image"), level + 3)
        section.kv("Port", _ports(container), level + 3)
    section.kv("Volumes", ", ".join(v.get("name", "") for v in spec.get("volumes") or []) or NONE, level + 1)


def _conditions_table(section: Section, conditions: list[Obj] | None) -> None:
    if not conditions:
        return
    section.heading("Conditions")
    rows = [[c.get("type", ""), c.get("status", ""), c.get("reason", "")] for c in conditions]
    section.table(["Type", "Status", "Reason"], rows)


def owned_replica_sets(client: Client, deployment: Obj) -> list[Obj]:
    """ReplicaSets matched by the deployment's selector and controlled by it."""
    meta = deployment.get("metadata") or {}
    selector = selector_text((deployment.get("spec") or {}).get("selector"))
    resource = _resource("apps/v1", "ReplicaSet")
    listed = client.list(resource, meta.get("namespace"), label_selector=None if selector == NONE else selector)
    return [
        rs
        for rs in listed.get("items") or []
        if any(ref.get("uid") == meta.get("uid") and ref.get("controller") for ref in _owners(rs))
    ]


def _owners(obj: Obj) -> list[Obj]:
    return (obj.get("metadata") or {}).get("ownerReferences") or []


def revision(obj: Obj) -> int:
    value = ((obj.get("metadata") or {}).get("annotations") or {}).get(REVISION, "0")
    return int(value) if str(value).isdigit() else 0


def replica_sets(client: Client, deployment: Obj) -> tuple[list[Obj], Obj | None]:
    """(old ReplicaSets still holding pods, the new ReplicaSet): new is the one at the current revision."""
    owned = owned_replica_sets(client, deployment)
    current = revision(deployment)
    new = next((rs for rs in owned if current and revision(rs) == current), None)
    if new is None and owned:
        new = max(owned, key=revision)
    old = [rs for rs in owned if rs is not new and (rs.get("spec") or {}).get("replicas", 0)]
    return old, new


def _rs_text(rs: Obj) -> str:
    created = (rs.get("status") or {}).get("replicas", 0)
    wanted = (rs.get("spec") or {}).get("replicas", 0)
    return f"{rs['metadata']['name']} ({created}/{wanted} replicas created)"


# -- services ------------------------------------------------------------------------------------------


def describe_service(client: Client, service: Obj, section: Section) -> None:
    spec = service.get("spec") or {}
    metadata_lines(section, service)
    section.mapping("Selector", spec.get("selector"))
    section.kv("Type", spec.get("type", "ClusterIP"))
    section.kv("IP Family Policy", spec.get("ipFamilyPolicy"))
    section.kv("IP Families", ",".join(spec.get("ipFamilies") or []) or NONE)
    section.kv("IP", spec.get("clusterIP"))
    section.kv("IPs", ",".join(spec.get("clusterIPs") or []) or NONE)
    if spec.get("externalIPs"):
        section.kv("External IPs", ",".join(spec["externalIPs"]))
    ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    if ingress:
        section.kv("LoadBalancer Ingress", ", ".join(i.get("ip") or i.get("hostname", "") for i in ingress))
    endpoints = _endpoints_by_port(client, service)
    for port in spec.get("ports") or []:
        _service_port(section, port, endpoints)
    section.kv("Session Affinity", spec.get("sessionAffinity", "None"))
    if spec.get("externalTrafficPolicy"):
        section.kv("External Traffic Policy", spec["externalTrafficPolicy"])


def _service_port(section: Section, port: Obj, endpoints: dict[str, list[str]]) -> None:
    name = port.get("name") or "<unset>"
    protocol = port.get("protocol", "TCP")
    section.kv("Port", f"{name}  {port.get('port')}/{protocol}")
    target = port.get("targetPort", port.get("port"))
    section.kv("TargetPort", f"{target}/{protocol}")
    if port.get("nodePort"):
        section.kv("NodePort", f"{name}  {port['nodePort']}/{protocol}")
    section.kv("Endpoints", ",".join(endpoints.get(port.get("name") or "", [])))


def _endpoints_by_port(client: Client, service: Obj) -> dict[str, list[str]]:
    """Ready addresses per port name, from the service's EndpointSlices."""
    meta = service.get("metadata") or {}
    resource = _resource("discovery.k8s.io/v1", "EndpointSlice")
    try:
        slices = client.list(
            resource, meta.get("namespace"), label_selector=f"kubernetes.io/service-name={meta.get('name')}"
        ).get("items")
    except ApiError:
        return {}
    found: dict[str, list[str]] = {}
    for endpoint_slice in slices or []:
        for port in endpoint_slice.get("ports") or []:
            for endpoint in endpoint_slice.get("endpoints") or []:
                if (endpoint.get("conditions") or {}).get("ready", True):
                    for address in endpoint.get("addresses") or []:
                        found.setdefault(port.get("name") or "", []).append(f"{address}:{port.get('port')}")
    return found


# -- nodes ---------------------------------------------------------------------------------------------


def describe_node(client: Client, node: Obj, section: Section) -> None:
    spec, status = node.get("spec") or {}, node.get("status") or {}
    meta = node.get("metadata") or {}
    section.kv("Name", meta.get("name"))
    roles = [k.rpartition("/")[2] for k in meta.get("labels") or {} if k.startswith("node-role.kubernetes.io/")]
    section.kv("Roles", ",".join(roles) or NONE)
    section.mapping("Labels", meta.get("labels"))
    section.mapping("Annotations", meta.get("annotations"))
    section.kv("CreationTimestamp", timestamp(meta.get("creationTimestamp")))
    taints = [
        f"{t.get('key')}{'=' + t['value'] if t.get('value') else ''}:{t.get('effect')}"
        for t in spec.get("taints") or []
    ]
    section.kv("Taints", "\n".join(taints) or NONE)
    section.kv("Unschedulable", bool(spec.get("unschedulable")))
    _node_conditions(section, status.get("conditions"))
    section.heading("Addresses")
    for address in status.get("addresses") or []:
        section.kv(address.get("type", ""), address.get("address"), 1)
    for title, key in (("Capacity", "capacity"), ("Allocatable", "allocatable")):
        section.heading(title)
        for name, value in (status.get(key) or {}).items():
            section.kv(name, value, 1)
    _system_info(section, status.get("nodeInfo") or {})
    section.kv("PodCIDR", spec.get("podCIDR"))
    section.kv("PodCIDRs", ",".join(spec.get("podCIDRs") or []) or NONE)
    _node_pods(client, meta.get("name", ""), section)


def _node_conditions(section: Section, conditions: list[Obj] | None) -> None:
    section.heading("Conditions")
    rows = [
        [c.get("type", ""), c.get("status", ""), since(c.get("lastHeartbeatTime")), c.get("reason", ""),
         c.get("message", "")]
        for c in conditions or []
    ]  # fmt: skip
    section.table(["Type", "Status", "LastHeartbeat", "Reason", "Message"], rows)


def _system_info(section: Section, info: Obj) -> None:
    if not info:
        return
    section.heading("System Info")
    labels = {
        "machineID": "Machine ID",
        "kernelVersion": "Kernel Version",
        "osImage": "OS Image",
        "operatingSystem": "Operating System",
        "architecture": "Architecture",
        "containerRuntimeVersion": "Container Runtime Version",
        "kubeletVersion": "Kubelet Version",
    }
    for key, label in labels.items():
        if info.get(key):
            section.kv(label, info[key], 1)


def _node_pods(client: Client, node_name: str, section: Section) -> None:
    resource = _resource("v1", "Pod")
    pods = client.list(resource, None, field_selector=f"spec.nodeName={node_name}").get("items") or []
    running = [p for p in pods if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]
    section.kv("Non-terminated Pods", f"({len(running)} in total)")
    rows = [[p["metadata"].get("namespace", ""), p["metadata"]["name"], since(p["metadata"].get("creationTimestamp"))]
            for p in running]  # fmt: skip
    if rows:
        section.table(["Namespace", "Name", "Age"], rows)


DESCRIBERS = {
    ("", "Pod"): describe_pod,
    ("apps", "Deployment"): describe_deployment,
    ("", "Service"): describe_service,
    ("", "Node"): describe_node,
}
