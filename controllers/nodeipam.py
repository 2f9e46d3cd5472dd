"""Node IPAM: give every Node its own pod CIDR from the cluster CIDR, never two alike."""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

from controllers.base import ControllerContext
from skiff.api.errors import ApiError
from skiff.runtime import Controller, EventRecorder, final_state, object_key

log = logging.getLogger("skiff.controller.nodeipam")

NODES = ("v1", "Node")


class CidrAllocator:
    """Hands out the cluster CIDR's subnets in order, skipping those already taken."""

    def __init__(self, cluster: ipaddress.IPv4Network, mask: int) -> None:
        if mask < cluster.prefixlen:
            raise ValueError(f"node CIDR mask /{mask} is larger than the cluster CIDR {cluster}")
        self.cluster = cluster
        self.mask = mask
        self.taken: set[ipaddress.IPv4Network] = set()

    def occupy(self, cidr: str) -> None:
        network = ipaddress.ip_network(cidr, strict=False)
        if isinstance(network, ipaddress.IPv4Network):
            self.taken.add(network)

    def release(self, cidr: str) -> None:
        self.taken.discard(ipaddress.ip_network(cidr, strict=False))  # type: ignore[arg-type]

    def allocate(self) -> ipaddress.IPv4Network | None:
        for subnet in self.cluster.subnets(new_prefix=self.mask):
            if subnet not in self.taken:
                self.taken.add(subnet)
                return subnet
        return None


class NodeIpamController:
    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        self.allocator = CidrAllocator(ctx.options.cluster_cidr, ctx.options.node_cidr_mask_size)
        self.informer = ctx.informers.informer(NODES)
        self.recorder: EventRecorder = ctx.recorder("node-ipam-controller")
        self.controller: Controller[str] = Controller("nodeipam", self.reconcile, wait_for=[self.informer])
        self.informer.add_event_handler(on_add=self._observe, on_update=lambda _o, n: self._observe(n),
                                        on_delete=self._forget)  # fmt: skip

    def _observe(self, node: dict[str, Any]) -> None:
        cidr = node.get("spec", {}).get("podCIDR")
        if cidr:
            self.allocator.occupy(cidr)
        else:
            self.controller.enqueue(object_key(node))

    def _forget(self, node: Any) -> None:
        cidr = final_state(node).get("spec", {}).get("podCIDR")
        if cidr:
            self.allocator.release(cidr)

    async def reconcile(self, name: str) -> None:
        node = self.informer.get(None, name)
        if node is None or node.get("spec", {}).get("podCIDR"):
            return
        subnet = self.allocator.allocate()
        if subnet is None:
            self.recorder.event(node, "Warning", "CIDRNotAvailable", "no pod CIDR is left in the cluster CIDR")
            raise RuntimeError(f"cluster CIDR {self.allocator.cluster} is exhausted")
        patch = {"spec": {"podCIDR": str(subnet), "podCIDRs": [str(subnet)]}}
        try:
            await self.ctx.client.patch(NODES, name, patch)
        except ApiError:
            self.allocator.release(str(subnet))
            raise
        self.recorder.event(node, "Normal", "CIDRAssignmentSucceeded", f"Node {name} got pod CIDR {subnet}")
        log.info("node %s: pod CIDR %s", name, subnet)


async def start(ctx: ControllerContext) -> None:
    await NodeIpamController(ctx).controller.run()
