"""The kubelet's Node: registration, status with conditions and heartbeats, and the pod CIDR.

At start the kubelet creates its Node or, when one exists (a restart), adopts it: labels, addresses,
capacity and nodeInfo are brought up to date; taints and spec.podCIDR are only set on creation, as
the kubelet's `--register-with-taints` does. The status is recomputed every
`--node-status-update-frequency` and written when it changed or when the last report is older than
`--node-status-report-frequency`; each write refreshes the conditions' lastHeartbeatTime.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import platform
import time
import uuid
from collections.abc import Callable
from typing import Any

from kubelet_sim.config import KUBELET_VERSION, OS_IMAGE, RUNTIME_VERSION, KubeletConfig, NodeConfig, go_arch
from kubelet_sim.podstatus import rfc3339
from skiff.api.errors import ApiError
from skiff.api.kinds import BUILTINS, ResourceType
from skiff.client.rest import AsyncClient
from skiff.runtime import NORMAL, EventRecorder

log = logging.getLogger("skiff.kubelet.node")

NODES: ResourceType = BUILTINS.by_kind("", "v1", "Node")  # type: ignore[assignment]
# (type, status, reason, message) of a healthy simulated node.
HEALTHY_CONDITIONS = (
    ("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
    ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
    ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
    ("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
)
STATUS_RETRY_SECONDS = 2.0


def node_reference(name: str) -> dict[str, Any]:
    # The kubelet files node events under the node's name as uid; `kubectl describe node` looks there.
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "uid": name}}


class NodeAgent:
    def __init__(
        self,
        config: NodeConfig,
        kubelet: KubeletConfig,
        client: AsyncClient,
        recorder: EventRecorder,
        on_pod_cidr: Callable[[str], None],
    ) -> None:
        self.config = config
        self.kubelet = kubelet
        self.client = client
        self.recorder = recorder
        self.on_pod_cidr = on_pod_cidr
        self.uid = ""
        self.pod_cidr: str | None = None
        self._boot_id = str(uuid.uuid4())
        self._last_reported: dict[str, Any] | None = None
        self._last_report_time = 0.0
        self._transitions: dict[str, str] = {}

    @property
    def name(self) -> str:
        return self.config.name

    # -- the Node object ----------------------------------------------------------------------------------

    def labels(self) -> dict[str, str]:
        labels = {
            "kubernetes.io/hostname": self.name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": go_arch(),
            "beta.kubernetes.io/os": "linux",
            "beta.kubernetes.io/arch": go_arch(),
        }
        if self.config.zone:
            labels["topology.kubernetes.io/zone"] = self.config.zone
        labels.update(self.config.labels)
        return labels

    def capacity(self) -> dict[str, str]:
        config = self.config
        return {
            "cpu": config.cpu,
            "memory": config.memory,
            "pods": str(config.pods),
            "ephemeral-storage": config.ephemeral_storage,
        }

    def node_info(self) -> dict[str, str]:
        digest = hashlib.sha256(self.name.encode()).hexdigest()
        return {
            "machineID": digest[:32],
            "systemUUID": str(uuid.UUID(digest[:32])),
            "bootID": self._boot_id,
            "kernelVersion": platform.release(),
            "osImage": OS_IMAGE,
            "containerRuntimeVersion": RUNTIME_VERSION,
            "kubeletVersion": KUBELET_VERSION,
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": go_arch(),
        }

    def status(self, heartbeat: str) -> dict[str, Any]:
        conditions = []
        for kind, state, reason, message in HEALTHY_CONDITIONS:
            transition = self._transitions.setdefault(f"{kind}={state}", heartbeat or rfc3339(time.time()))
            conditions.append(
                {
                    "type": kind,
                    "status": state,
                    "lastHeartbeatTime": heartbeat,
                    "lastTransitionTime": transition,
                    "reason": reason,
                    "message": message,
                }
            )
        return {
            "capacity": self.capacity(),
            "allocatable": self.capacity(),
            "conditions": conditions,
            "addresses": [
                {"type": "InternalIP", "address": self.config.address},
                {"type": "Hostname", "address": self.name},
            ],
            # DaemonEndpoint's JSON field is spelled `Port`, capitalised, in the Kubernetes API.
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.kubelet.kubelet_port}},
            "nodeInfo": self.node_info(),
        }

    def _new_node(self) -> dict[str, Any]:
        spec: dict[str, Any] = {}
        if self.config.taints:
            spec["taints"] = [taint.to_dict() for taint in self.config.taints]
        cidr = self.config.fallback_pod_cidr()
        if self.config.register_pod_cidr and cidr:
            spec["podCIDR"], spec["podCIDRs"] = cidr, [cidr]
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": self.name, "labels": self.labels()},
            "spec": spec,
            "status": self.status(rfc3339(time.time())),
        }

    async def register(self) -> None:
        """Create the Node, or adopt the one a previous run registered; retried until it works."""
        self.recorder.event(node_reference(self.name), NORMAL, "Starting", "Starting kubelet.")
        while True:
            try:
                node = await self._create_or_adopt()
                break
            except (ApiError, OSError) as error:
                log.warning("registering node %s failed: %s; retrying", self.name, error)
                await asyncio.sleep(STATUS_RETRY_SECONDS)
        self.observe(node)
        reference = node_reference(self.name)
        for _kind, _state, reason, _message in HEALTHY_CONDITIONS[:3]:
            event_reason = reason.replace("Kubelet", "Node")
            self.recorder.event(reference, NORMAL, event_reason, f"Node {self.name} status is now: {event_reason}")
        self.recorder.event(reference, NORMAL, "NodeAllocatableEnforced", "Updated Node Allocatable limit across pods")
        self.recorder.event(reference, NORMAL, "NodeReady", f"Node {self.name} status is now: NodeReady")

    async def _create_or_adopt(self) -> dict[str, Any]:
        try:
            created = await self.client.create(self._new_node())
        except ApiError as error:
            if error.code != 409:
                raise
        else:
            log.info("registered node %s", self.name)
            self.recorder.event(
                node_reference(self.name), NORMAL, "RegisteredNode", f"Registered Node {self.name} with the API server"
            )
            self._last_reported, self._last_report_time = created.get("status"), time.monotonic()
            return created
        existing = await self.client.get(NODES, self.name)
        labels = {**((existing.get("metadata") or {}).get("labels") or {}), **self.labels()}
        if labels != (existing.get("metadata") or {}).get("labels"):
            existing = await self.client.patch(NODES, self.name, {"metadata": {"labels": labels}})
        self._carry_transitions(existing)
        heartbeat = rfc3339(time.time())
        status = self.status(heartbeat)
        updated = await self.client.patch(NODES, self.name, {"status": status}, subresource="status")
        self._last_reported, self._last_report_time = status, time.monotonic()
        log.info("adopted existing node %s", self.name)
        return updated

    def _carry_transitions(self, node: dict[str, Any]) -> None:
        for condition in (node.get("status") or {}).get("conditions") or []:
            key = f"{condition.get('type')}={condition.get('status')}"
            if condition.get("lastTransitionTime"):
                self._transitions[key] = condition["lastTransitionTime"]

    def observe(self, node: dict[str, Any]) -> None:
        """Take in the Node as the API server has it (after registration and from the node informer)."""
        metadata = node.get("metadata") or {}
        if metadata.get("name") != self.name:
            return
        self.uid = metadata.get("uid") or self.uid
        cidr = (node.get("spec") or {}).get("podCIDR") or self.config.fallback_pod_cidr()
        if cidr != self.pod_cidr and cidr:
            log.info("node %s uses pod CIDR %s", self.name, cidr)
            self.pod_cidr = cidr
            self.on_pod_cidr(cidr)

    # -- heartbeats ---------------------------------------------------------------------------------------

    async def status_loop(self) -> None:
        while True:
            await asyncio.sleep(self.kubelet.node_status_update_frequency)
            try:
                await self.report_status()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("updating the status of node %s failed: %s", self.name, error)

    async def report_status(self, force: bool = False) -> None:
        status = self.status("")
        previous = dict(self._last_reported or {})
        unchanged = _without_heartbeats(status) == _without_heartbeats(previous)
        due = time.monotonic() - self._last_report_time >= self.kubelet.node_status_report_frequency
        if unchanged and not due and not force:
            return
        status = self.status(rfc3339(time.time()))
        await self.client.patch(NODES, self.name, {"status": status}, subresource="status")
        self._last_reported, self._last_report_time = status, time.monotonic()


def _without_heartbeats(status: dict[str, Any]) -> dict[str, Any]:
    conditions = [{k: v for k, v in c.items() if k != "lastHeartbeatTime"} for c in status.get("conditions") or []]
    return {**status, "conditions": conditions}
