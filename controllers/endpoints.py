"""Endpoints controller (`endpoints`): the legacy v1 Endpoints of each Service with a selector.

The same pods the EndpointSlice controller lists, in the older shape that `kubectl get endpoints` and
`kubectl describe service` read: subsets of addresses (ready pods) and notReadyAddresses, grouped by the
port numbers each pod resolves the Service's ports to. Terminating pods are left out unless the Service
publishes not-ready addresses. A Service's Endpoints go away with it; Services without a selector are
left alone, so their hand-written Endpoints stay as their owners wrote them.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Iterable
from typing import Any

from controllers.base import ControllerContext
from controllers.endpointslice import (
    HEADLESS_LABEL,
    ServicePodWatcher,
    hostname_for,
    manages,
    pod_ip,
    pod_ports,
    pod_ready,
    pod_terminating,
    port_dicts,
    selected_pods,
    target_ref,
)
from skiff.api.errors import ApiError
from skiff.runtime import Informer, final_state, object_key, split_key

log = logging.getLogger("skiff.controller.endpoints")

ENDPOINTS = ("v1", "Endpoints")
MAX_ADDRESSES = 1000
OVER_CAPACITY = "endpoints.kubernetes.io/over-capacity"
CONFLICT_RETRY_SECONDS = 0.2

Obj = dict[str, Any]


def desired_subsets(service: Obj, pods: Iterable[Obj]) -> tuple[list[Obj], bool]:
    """The Endpoints subsets for `service`, and whether addresses beyond the 1000 limit were dropped."""
    publish_not_ready = bool((service.get("spec") or {}).get("publishNotReadyAddresses"))
    groups: dict[tuple[Any, ...], tuple[list[Obj], list[Obj]]] = {}
    total = 0
    truncated = False
    for pod in sorted(selected_pods(service, pods), key=pod_ip):
        if pod_terminating(pod) and not publish_not_ready:
            continue
        if total >= MAX_ADDRESSES:
            truncated = True
            break
        address: Obj = {"ip": pod_ip(pod)}
        hostname = hostname_for(service, pod)
        if hostname:
            address["hostname"] = hostname
        node = (pod.get("spec") or {}).get("nodeName")
        if node:
            address["nodeName"] = node
        address["targetRef"] = target_ref(pod)
        ready, not_ready = groups.setdefault(pod_ports(service, pod), ([], []))
        (ready if publish_not_ready or pod_ready(pod) else not_ready).append(address)
        total += 1
    subsets = []
    for ports, (ready, not_ready) in sorted(groups.items()):
        subset: Obj = {}
        if ready:
            subset["addresses"] = ready
        if not_ready:
            subset["notReadyAddresses"] = not_ready
        if ports:
            subset["ports"] = port_dicts(ports)
        subsets.append(subset)
    return subsets, truncated


def endpoints_labels(service: Obj) -> dict[str, str]:
    labels = dict((service.get("metadata") or {}).get("labels") or {})
    if (service.get("spec") or {}).get("clusterIP") == "None":
        labels[HEADLESS_LABEL] = ""
    return labels


class EndpointsController:
    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        self.endpoints: Informer = ctx.informers.informer(ENDPOINTS)
        self.watch = ServicePodWatcher(ctx, "endpoints", self.reconcile, [self.endpoints])
        self.services, self.pods = self.watch.services, self.watch.pods
        self.controller = self.watch.controller
        # Someone else changing or deleting a Service's Endpoints gets them put back.
        self.endpoints.add_event_handler(
            on_update=lambda _old, new: self.controller.enqueue(object_key(new)),
            on_delete=lambda obj: self.controller.enqueue(object_key(final_state(obj))),
        )

    async def reconcile(self, key: str) -> float | None:
        namespace, name = split_key(key)
        service = self.services.get(namespace, name)
        current = self.endpoints.get(namespace, name)
        if service is None:
            if current is not None:
                try:
                    await self.ctx.client.delete(ENDPOINTS, name, namespace)
                except ApiError as error:
                    if error.code != 404:
                        raise
            return None
        if not manages(service):
            return None
        subsets, truncated = desired_subsets(service, self.pods.list(namespace))
        labels = endpoints_labels(service)
        annotations = dict((current or {}).get("metadata", {}).get("annotations") or {})
        if truncated:
            annotations[OVER_CAPACITY] = "truncated"
        else:
            annotations.pop(OVER_CAPACITY, None)
        if current is None:
            endpoints: Obj = {
                "apiVersion": "v1",
                "kind": "Endpoints",
                "metadata": {"name": name, "namespace": namespace, "labels": labels},
                "subsets": subsets,
            }
            if annotations:
                endpoints["metadata"]["annotations"] = annotations
            return await self._write(self.ctx.client.create(endpoints, namespace))
        metadata = current.get("metadata") or {}
        unchanged = (
            (current.get("subsets") or []) == subsets
            and (metadata.get("labels") or {}) == labels
            and (metadata.get("annotations") or {}) == annotations
        )
        if unchanged:
            return None
        updated = {**current, "subsets": subsets, "metadata": {**metadata, "labels": labels}}
        updated["metadata"]["annotations"] = annotations
        return await self._write(self.ctx.client.update(updated, namespace))

    async def _write(self, request: Awaitable[Obj]) -> float | None:
        """Send a write; a conflict means the cache is behind, so look again shortly (quietly)."""
        try:
            await request
        except ApiError as error:
            if error.code != 409:
                raise
            return CONFLICT_RETRY_SECONDS
        return None


async def start(ctx: ControllerContext) -> None:
    await EndpointsController(ctx).controller.run()
