"""EndpointSlice controller (`endpointslice`): the pods a Service selects, as discovery.k8s.io/v1 EndpointSlices.

For every Service with a selector (other than ExternalName), each selected pod that has an IP and has
not finished becomes an endpoint with its conditions (ready, serving, terminating), node, zone and a
reference to the pod. A Service's ports are resolved per pod (a named targetPort is looked up in that
pod's container ports), and pods that resolve to different port numbers go to different slices, as a
slice has one port list. A slice holds at most 100 endpoints.

Updates churn as little as they can: endpoints stay in the slice that holds them, a slice is written only
when its content changes, new endpoints fill free room in existing slices before new slices are made,
and emptied slices are deleted. A Service without endpoints keeps one empty placeholder slice.

The slices carry `kubernetes.io/service-name`, `endpointslice.kubernetes.io/managed-by` and a controller
ownerReference to their Service; those of Services without a selector are left to their owners.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from controllers.base import ControllerContext
from skiff.api.errors import ApiError
from skiff.api.selectors import selector_from_object
from skiff.runtime import Controller, Informer, final_state, index_by_label, make_key, object_key, split_key

log = logging.getLogger("skiff.controller.endpointslice")

SERVICES = ("v1", "Service")
PODS = ("v1", "Pod")
NODES = ("v1", "Node")
SLICES = ("discovery.k8s.io/v1", "EndpointSlice")
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
MANAGED_BY = "endpointslice-controller.k8s.io"
HEADLESS_LABEL = "service.kubernetes.io/headless"
ZONE_LABEL = "topology.kubernetes.io/zone"
MAX_ENDPOINTS_PER_SLICE = 100
SERVICE_INDEX = "service-name"

Obj = dict[str, Any]
PortList = tuple[tuple[str, int, str, str], ...]  # (name, port, protocol, appProtocol)


# -- pods and ports, shared with the Endpoints controller ------------------------------------------
def manages(service: Obj | None) -> bool:
    """Whether the controllers derive this Service's endpoints from pods."""
    if service is None:
        return False
    spec = service.get("spec") or {}
    return spec.get("selector") is not None and spec.get("type") != "ExternalName"


def selects(service: Obj, pod: Obj) -> bool:
    selector = (service.get("spec") or {}).get("selector")
    if not selector:
        return False
    return selector_from_object({"matchLabels": selector}).matches((pod.get("metadata") or {}).get("labels"))


def pod_ip(pod: Obj) -> str:
    """The pod's IPv4 address, or "" when it has none yet."""
    status = pod.get("status") or {}
    candidates = [status.get("podIP")] + [entry.get("ip") for entry in status.get("podIPs") or []]
    for ip in candidates:
        if not ip:
            continue
        try:
            if ipaddress.ip_address(ip).version == 4:
                return str(ip)
        except ValueError:
            continue
    return ""


def pod_finished(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def pod_terminating(pod: Obj) -> bool:
    return bool((pod.get("metadata") or {}).get("deletionTimestamp"))


def pod_ready(pod: Obj) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def find_port(pod: Obj, target: Any, protocol: str) -> int | None:
    """A targetPort as a number for this pod: numbers as they are, names from its container ports."""
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == target and port.get("protocol", "TCP") == protocol:
                return int(port["containerPort"])
    return None


def pod_ports(service: Obj, pod: Obj) -> PortList:
    """The Service's ports as this pod serves them; ports the pod cannot resolve are left out."""
    ports: list[tuple[str, int, str, str]] = []
    for port in (service.get("spec") or {}).get("ports") or []:
        protocol = port.get("protocol", "TCP")
        number = find_port(pod, port.get("targetPort", port.get("port")), protocol)
        if number is not None:
            ports.append((port.get("name") or "", number, protocol, port.get("appProtocol") or ""))
    return tuple(sorted(ports))


def port_dicts(ports: PortList) -> list[Obj]:
    out = []
    for name, number, protocol, app_protocol in ports:
        entry: Obj = {"name": name, "port": number, "protocol": protocol}
        if app_protocol:
            entry["appProtocol"] = app_protocol
        out.append(entry)
    return out


def hostname_for(service: Obj, pod: Obj) -> str:
    """A pod's DNS hostname under a Service: its spec.hostname when its subdomain is the Service."""
    spec = pod.get("spec") or {}
    if spec.get("hostname") and spec.get("subdomain") == (service.get("metadata") or {}).get("name"):
        return str(spec["hostname"])
    return ""


def target_ref(pod: Obj) -> Obj:
    metadata = pod.get("metadata") or {}
    return {"kind": "Pod", "namespace": metadata.get("namespace"), "name": metadata.get("name"),
            "uid": metadata.get("uid")}  # fmt: skip


def selected_pods(service: Obj, pods: Iterable[Obj]) -> list[Obj]:
    return [pod for pod in pods if selects(service, pod) and pod_ip(pod) and not pod_finished(pod)]


# -- desired endpoints -----------------------------------------------------------------------------
def endpoint_for(service: Obj, pod: Obj, zone: str) -> Obj:
    publish_not_ready = bool((service.get("spec") or {}).get("publishNotReadyAddresses"))
    terminating = pod_terminating(pod)
    ready = pod_ready(pod)
    endpoint: Obj = {
        "addresses": [pod_ip(pod)],
        "conditions": {
            "ready": publish_not_ready or (ready and not terminating),
            "serving": publish_not_ready or ready,
            "terminating": terminating,
        },
        "targetRef": target_ref(pod),
    }
    hostname = hostname_for(service, pod)
    if hostname:
        endpoint["hostname"] = hostname
    node = (pod.get("spec") or {}).get("nodeName")
    if node:
        endpoint["nodeName"] = node
    if zone:
        endpoint["zone"] = zone
    return endpoint


def desired_endpoints(service: Obj, pods: Iterable[Obj], zone_of: dict[str, str]) -> dict[PortList, dict[str, Obj]]:
    """Endpoints by port list, each keyed by pod uid."""
    groups: dict[PortList, dict[str, Obj]] = {}
    for pod in selected_pods(service, pods):
        ports = pod_ports(service, pod)
        zone = zone_of.get((pod.get("spec") or {}).get("nodeName") or "", "")
        uid = (pod.get("metadata") or {}).get("uid") or pod_ip(pod)
        groups.setdefault(ports, {})[uid] = endpoint_for(service, pod, zone)
    return groups


def slice_ports(slice_: Obj) -> PortList:
    return tuple(
        sorted(
            (p.get("name") or "", int(p.get("port") or 0), p.get("protocol", "TCP"), p.get("appProtocol") or "")
            for p in slice_.get("ports") or []
        )
    )


def endpoint_key(endpoint: Obj) -> str:
    ref = endpoint.get("targetRef") or {}
    return ref.get("uid") or (endpoint.get("addresses") or [""])[0]


# -- the plan --------------------------------------------------------------------------------------
@dataclass
class SlicePlan:
    create: list[tuple[PortList, list[Obj]]] = field(default_factory=list)
    update: list[tuple[Obj, list[Obj]]] = field(default_factory=list)  # (existing slice, new endpoints)
    delete: list[Obj] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.create or self.update or self.delete)


def plan_slices(
    desired: dict[PortList, dict[str, Obj]], existing: list[Obj], max_per_slice: int = MAX_ENDPOINTS_PER_SLICE
) -> SlicePlan:
    """What to create, update and delete to go from `existing` slices to `desired`, touching few slices."""
    plan = SlicePlan()
    by_ports: dict[PortList, list[Obj]] = {}
    for slice_ in sorted(existing, key=lambda s: (s.get("metadata") or {}).get("name", "")):
        by_ports.setdefault(slice_ports(slice_), []).append(slice_)
    if not desired:
        desired = {(): {}}  # the placeholder: one slice without ports or endpoints
    for ports, slices in by_ports.items():
        if ports not in desired:
            plan.delete.extend(slices)
    for ports, wanted in desired.items():
        slices = by_ports.get(ports, [])
        remaining = dict(wanted)
        kept: list[tuple[Obj, list[Obj], bool]] = []  # (slice, endpoints, changed)
        for slice_ in slices:
            current = slice_.get("endpoints") or []
            new: list[Obj] = []
            changed = False
            for endpoint in current:
                key = endpoint_key(endpoint)
                if key in remaining and len(new) < max_per_slice:
                    replacement = remaining.pop(key)
                    changed |= replacement != endpoint
                    new.append(replacement)
                else:
                    changed = True
            kept.append((slice_, new, changed))
        # New endpoints first fill slices that change anyway, then others with room, then new slices.
        leftovers = list(remaining.values())
        for prefer_changed in (True, False):
            for index, (slice_, new, changed) in enumerate(kept):
                if not leftovers or changed != prefer_changed:
                    continue
                room = max_per_slice - len(new)
                if room > 0:
                    new.extend(leftovers[:room])
                    leftovers = leftovers[room:]
                    kept[index] = (slice_, new, True)
        placeholder_kept = False
        for slice_, new, changed in kept:
            if not new and (wanted or placeholder_kept):
                plan.delete.append(slice_)
                continue
            placeholder_kept = placeholder_kept or not new
            if changed:
                plan.update.append((slice_, new))
        while leftovers:
            plan.create.append((ports, leftovers[:max_per_slice]))
            leftovers = leftovers[max_per_slice:]
        if not wanted and not kept:
            plan.create.append((ports, []))
    return plan


# -- the controller --------------------------------------------------------------------------------
class ServicePodWatcher:
    """Informers on Services and pods that enqueue a Service when a pod it selects (or selected) changes."""

    def __init__(
        self, ctx: ControllerContext, name: str, reconcile: Any, also_wait_for: Iterable[Informer] = ()
    ) -> None:
        self.ctx = ctx
        self.services: Informer = ctx.informers.informer(SERVICES)
        self.pods: Informer = ctx.informers.informer(PODS)
        self.controller: Controller[str] = Controller(
            name,
            reconcile,
            workers=max(1, ctx.options.concurrent_syncs),
            wait_for=[self.services, self.pods, *also_wait_for],
        )
        self.services.add_event_handler(
            on_add=self._service_changed,
            on_update=lambda _old, new: self._service_changed(new),
            on_delete=lambda obj: self._service_changed(final_state(obj)),
        )
        self.pods.add_event_handler(
            on_add=lambda pod: self.pod_changed(None, pod),
            on_update=self.pod_changed,
            on_delete=lambda obj: self.pod_changed(None, final_state(obj)),
        )

    def _service_changed(self, service: Obj) -> None:
        self.controller.enqueue(object_key(service))

    def pod_changed(self, old: Obj | None, new: Obj) -> None:
        namespace = (new.get("metadata") or {}).get("namespace")
        for service in self.services.list(namespace):
            if selects(service, new) or (old is not None and selects(service, old)):
                self.controller.enqueue(object_key(service))


class EndpointSliceController:
    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        self.nodes: Informer = ctx.informers.informer(NODES)
        self.slices: Informer = ctx.informers.informer(SLICES, label_selector=f"{MANAGED_BY_LABEL}={MANAGED_BY}")
        self.slices.add_indexer(SERVICE_INDEX, index_by_label(SERVICE_NAME_LABEL))
        self.watch = ServicePodWatcher(ctx, "endpointslice", self.reconcile, [self.nodes, self.slices])
        self.services, self.pods = self.watch.services, self.watch.pods
        self.controller = self.watch.controller
        self.slices.add_event_handler(on_delete=self._slice_deleted)
        self.nodes.add_event_handler(on_update=self._node_changed)
        # What this controller wrote, by Service and slice: the generation it made, or None for a delete.
        # A cache that has not caught up with our own writes must not be planned from (it would make
        # duplicate slices); entries go once the cache shows them.
        self.written: dict[str, dict[str, int | None]] = {}

    def _slice_deleted(self, obj: Any) -> None:
        slice_ = final_state(obj)
        name = (slice_.get("metadata", {}).get("labels") or {}).get(SERVICE_NAME_LABEL)
        if name:
            service_key = make_key(slice_["metadata"].get("namespace"), name)
            self.written.get(service_key, {}).pop(object_key(slice_), None)
            self.controller.enqueue(service_key)

    def _node_changed(self, old: Obj, new: Obj) -> None:
        if (old.get("metadata", {}).get("labels") or {}).get(ZONE_LABEL) == (
            new.get("metadata", {}).get("labels") or {}
        ).get(ZONE_LABEL):
            return
        node = new["metadata"]["name"]
        for pod in self.pods.list():
            if (pod.get("spec") or {}).get("nodeName") == node:
                self.watch.pod_changed(None, pod)

    def _cache_is_stale(self, service_key: str, slices: list[Obj]) -> bool:
        written = self.written.get(service_key)
        if not written:
            return False
        present = {object_key(s): s for s in slices}
        stale = False
        for key, generation in list(written.items()):
            cached = present.get(key)
            if generation is None:
                caught_up = cached is None
            else:
                caught_up = cached is not None and int(cached["metadata"].get("generation") or 0) >= generation
            if caught_up:
                del written[key]
            else:
                stale = True
        if not written:
            self.written.pop(service_key, None)
        return stale

    def zones(self) -> dict[str, str]:
        return {
            node["metadata"]["name"]: (node["metadata"].get("labels") or {}).get(ZONE_LABEL, "")
            for node in self.nodes.list()
        }

    async def reconcile(self, key: str) -> float | None:
        try:
            return await self._sync(key)
        except ApiError as error:
            if error.code != 409:
                raise
            # Our cache is behind the slices (or another writer got there first): look again shortly.
            return 0.2

    async def _sync(self, key: str) -> float | None:
        namespace, name = split_key(key)
        service = self.services.get(namespace, name)
        slices = [
            s for s in self.slices.by_index(SERVICE_INDEX, name) if s.get("metadata", {}).get("namespace") == namespace
        ]
        if self._cache_is_stale(key, slices):
            return 0.2
        if not manages(service):
            for slice_ in slices:
                await self._delete(slice_)
            return None
        assert service is not None
        owned = [s for s in slices if _owned_by(s, service)]
        for slice_ in slices:
            if slice_ not in owned:
                await self._delete(slice_)
        desired = desired_endpoints(service, self.pods.list(namespace), self.zones())
        plan = plan_slices(desired, owned)
        labels = slice_labels(service)
        # Updates and creates before deletes, so that consumers never see a moment without endpoints.
        updates = {id(existing): endpoints for existing, endpoints in plan.update}
        for slice_ in owned:
            if slice_ in plan.delete:
                continue
            endpoints = updates.get(id(slice_))
            if endpoints is None and (slice_["metadata"].get("labels") or {}) == labels:
                continue
            updated = {**slice_, "metadata": {**slice_["metadata"], "labels": labels}}
            if endpoints is not None:
                updated["endpoints"] = endpoints
            self._remember(key, await self.ctx.client.update(updated, namespace))
        for ports, endpoints in plan.create:
            self._remember(key, await self.ctx.client.create(new_slice(service, ports, endpoints), namespace))
        for slice_ in plan.delete:
            await self._delete(slice_)
        return None

    def _remember(self, service_key: str, written: Obj) -> None:
        generation = int(written.get("metadata", {}).get("generation") or 0)
        self.written.setdefault(service_key, {})[object_key(written)] = generation

    async def _delete(self, slice_: Obj) -> None:
        metadata = slice_["metadata"]
        try:
            await self.ctx.client.delete(SLICES, metadata["name"], metadata["namespace"])
        except ApiError as error:
            if error.code != 404:
                raise
        name = (metadata.get("labels") or {}).get(SERVICE_NAME_LABEL, "")
        self.written.setdefault(make_key(metadata["namespace"], name), {})[object_key(slice_)] = None


def _owned_by(slice_: Obj, service: Obj) -> bool:
    uid = service.get("metadata", {}).get("uid")
    return any(ref.get("uid") == uid for ref in slice_.get("metadata", {}).get("ownerReferences") or [])


def slice_labels(service: Obj) -> dict[str, str]:
    metadata = service.get("metadata") or {}
    labels = {
        k: v for k, v in (metadata.get("labels") or {}).items() if k not in (SERVICE_NAME_LABEL, MANAGED_BY_LABEL)
    }
    labels[SERVICE_NAME_LABEL] = metadata.get("name", "")
    labels[MANAGED_BY_LABEL] = MANAGED_BY
    if (service.get("spec") or {}).get("clusterIP") == "None":
        labels[HEADLESS_LABEL] = ""
    return labels


def new_slice(service: Obj, ports: PortList, endpoints: list[Obj]) -> Obj:
    metadata = service.get("metadata") or {}
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "generateName": f"{metadata.get('name')}-",
            "namespace": metadata.get("namespace"),
            "labels": slice_labels(service),
            "ownerReferences": [
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "name": metadata.get("name"),
                    "uid": metadata.get("uid"),
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": port_dicts(ports),
    }


async def start(ctx: ControllerContext) -> None:
    await EndpointSliceController(ctx).controller.run()
