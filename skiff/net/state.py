"""The proxy's picture of the cluster: the objects it watches, indexed for what rendering and tracing ask.

The proxy fills it from informer events; `skiff trace` and `skiff netpol check` fill it from one list of
each kind. Each change reports what it affects — one Service (`service:<ns>/<name>`), the NetworkPolicy
picture (`policy`) or every Service (`nodes`) — so the proxy re-renders only that.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from skiff.net.model import SERVICE_NAME_LABEL, NodeContext, ServicePort, node_ips, service_ports

KubeObject = dict[str, Any]

SERVICE, SLICE, NODE, POD, NAMESPACE, POLICY = "Service", "EndpointSlice", "Node", "Pod", "Namespace", "NetworkPolicy"
KINDS = (SERVICE, SLICE, NODE, POD, NAMESPACE, POLICY)
POLICY_CHANGE = "policy"
NODES_CHANGE = "nodes"


def key_of(obj: KubeObject) -> str:
    metadata = obj.get("metadata") or {}
    namespace = metadata.get("namespace") or ""
    return f"{namespace}/{metadata.get('name', '')}" if namespace else metadata.get("name", "")


def _slice_service(obj: KubeObject) -> str | None:
    metadata = obj.get("metadata") or {}
    name = (metadata.get("labels") or {}).get(SERVICE_NAME_LABEL)
    return f"{metadata.get('namespace') or 'default'}/{name}" if name else None


def pod_ip(pod: KubeObject) -> str:
    status = pod.get("status") or {}
    if status.get("phase") in ("Succeeded", "Failed"):
        return ""
    return status.get("podIP") or ""


class ClusterState:
    def __init__(self) -> None:
        self.objects: dict[str, dict[str, KubeObject]] = {kind: {} for kind in KINDS}
        self.slices_by_service: dict[str, set[str]] = {}
        self.pods_by_ip: dict[str, str] = {}
        self._ports: dict[str, list[ServicePort]] = {}  # built once per change, shared by every node

    # -- writes -------------------------------------------------------------------------------------

    def upsert(self, kind: str, obj: KubeObject) -> set[str]:
        """Store an object; returns what changed (service keys, `policy`, `nodes`)."""
        key = key_of(obj)
        old = self.objects[kind].get(key)
        self.objects[kind][key] = obj
        return self._changed(kind, key, old, obj)

    def delete(self, kind: str, obj: KubeObject) -> set[str]:
        key = key_of(obj)
        old = self.objects[kind].pop(key, None)
        return self._changed(kind, key, old or obj, None)

    def replace(self, kind: str, objects: Iterable[KubeObject]) -> None:
        for obj in list(self.objects[kind].values()):
            self.delete(kind, obj)
        for obj in objects:
            self.upsert(kind, obj)

    def _changed(self, kind: str, key: str, old: KubeObject | None, new: KubeObject | None) -> set[str]:
        if kind == SERVICE:
            self._ports.pop(key, None)
            return {"service:" + key}
        if kind == SLICE:
            affected = set()
            for obj in (old, new):
                service = _slice_service(obj) if obj is not None else None
                if service is not None:
                    affected.add("service:" + service)
            before = _slice_service(old) if old is not None else None
            after = _slice_service(new) if new is not None else None
            for item in affected:
                self._ports.pop(item.removeprefix("service:"), None)
            if before is not None:
                self.slices_by_service.get(before, set()).discard(key)
            if after is not None:
                self.slices_by_service.setdefault(after, set()).add(key)
            return affected
        if kind == POD:
            if old is not None and pod_ip(old) and self.pods_by_ip.get(pod_ip(old)) == key:
                del self.pods_by_ip[pod_ip(old)]
            if new is not None and pod_ip(new):
                self.pods_by_ip[pod_ip(new)] = key
            return {POLICY_CHANGE}
        if kind in (NAMESPACE, POLICY):
            return {POLICY_CHANGE}
        return {NODES_CHANGE, POLICY_CHANGE}

    # -- reads --------------------------------------------------------------------------------------

    @property
    def services(self) -> dict[str, KubeObject]:
        return self.objects[SERVICE]

    @property
    def pods(self) -> dict[str, KubeObject]:
        return self.objects[POD]

    @property
    def nodes(self) -> dict[str, KubeObject]:
        return self.objects[NODE]

    @property
    def namespaces(self) -> dict[str, KubeObject]:
        return self.objects[NAMESPACE]

    @property
    def policies(self) -> dict[str, KubeObject]:
        return self.objects[POLICY]

    def slices_for(self, service_key: str) -> list[KubeObject]:
        slices = self.objects[SLICE]
        return [slices[k] for k in sorted(self.slices_by_service.get(service_key, ())) if k in slices]

    def service_ports(self, service_key: str) -> list[ServicePort]:
        found = self._ports.get(service_key)
        if found is None:
            service = self.services.get(service_key)
            found = [] if service is None else service_ports(service, self.slices_for(service_key))
            self._ports[service_key] = found
        return found

    def all_service_ports(self) -> list[ServicePort]:
        return [sp for key in sorted(self.services) for sp in self.service_ports(key)]

    def node_context(self, name: str, **options: Any) -> NodeContext:
        node = self.nodes.get(name)
        return NodeContext(name=name, ips=node_ips(node) if node else (), **options)

    def pod_by_ip(self, ip: str) -> KubeObject | None:
        key = self.pods_by_ip.get(ip)
        return self.pods.get(key) if key else None

    def node_of_ip(self, ip: str) -> str | None:
        for name, node in self.nodes.items():
            if ip in node_ips(node):
                return name
        return None
