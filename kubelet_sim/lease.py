"""The node's heartbeat Lease: `kube-node-lease/<node>`, renewed every `--node-lease-renew-interval`.

The node-lifecycle controller judges a node by this Lease: a kubelet that stops (or cannot reach the
API server) stops renewing it, and after `leaseDurationSeconds` the node is considered lost. Renewals
update the last Lease this kubelet wrote, carrying its resourceVersion, and fall back to reading it
again on a conflict, as the kubelet's lease controller does. Failed renewals are retried quickly
(200 ms doubling to 7 s) so a short outage does not let the lease lapse.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from skiff.api.errors import ApiError
from skiff.api.kinds import BUILTINS, ResourceType
from skiff.api.timefmt import format_micro_time
from skiff.client.rest import AsyncClient

log = logging.getLogger("skiff.kubelet.lease")

LEASES: ResourceType = BUILTINS.by_kind("coordination.k8s.io", "v1", "Lease")  # type: ignore[assignment]
NODE_LEASE_NAMESPACE = "kube-node-lease"
RETRY_INITIAL, RETRY_MAX = 0.2, 7.0


class NodeLease:
    def __init__(self, client: AsyncClient, node: str, duration_seconds: int, renew_interval: float) -> None:
        self.client = client
        self.node = node
        self.duration_seconds = duration_seconds
        self.renew_interval = renew_interval
        self.node_uid = ""
        self._lease: dict[str, Any] | None = None

    def _spec(self) -> dict[str, Any]:
        return {
            "holderIdentity": self.node,
            "leaseDurationSeconds": self.duration_seconds,
            "renewTime": format_micro_time(datetime.now(UTC)),
        }

    def _new(self) -> dict[str, Any]:
        metadata: dict[str, Any] = {"name": self.node, "namespace": NODE_LEASE_NAMESPACE}
        if self.node_uid:
            # Owned by the Node, so deleting the Node removes its Lease.
            metadata["ownerReferences"] = [
                {"apiVersion": "v1", "kind": "Node", "name": self.node, "uid": self.node_uid}
            ]
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": metadata, "spec": self._spec()}

    async def renew(self) -> None:
        if self._lease is None:
            try:
                self._lease = await self.client.get(LEASES, self.node, NODE_LEASE_NAMESPACE)
            except ApiError as error:
                if error.code != 404:
                    raise
                self._lease = await self.client.create(self._new())
                return
        lease = {**self._lease, "spec": {**(self._lease.get("spec") or {}), **self._spec()}}
        try:
            self._lease = await self.client.update(lease)
        except ApiError:
            self._lease = None  # read it afresh on the retry (a 409 means someone else wrote it)
            raise

    async def run(self) -> None:
        delay = RETRY_INITIAL
        while True:
            try:
                await self.renew()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("renewing the lease of node %s failed: %s", self.node, error)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)
                continue
            delay = RETRY_INITIAL
            await asyncio.sleep(self.renew_interval)
