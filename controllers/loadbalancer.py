"""Service load balancer controller (`service-lb`): external addresses for LoadBalancer Services.

Skiff has no cloud, so this controller plays the part of one the way MetalLB does on bare metal: it
hands each Service of type LoadBalancer an address from `--load-balancer-ip-pool` (ranges `a-b` or
CIDRs, comma-separated) and writes it to `status.loadBalancer.ingress`. The addresses are data only;
nothing listens on them. A Service asking for `spec.loadBalancerIP` gets that address when it is in the
pool and free; otherwise it stays pending with a warning event. An address goes back to the pool when
its Service is deleted or stops being a LoadBalancer. Services with a `spec.loadBalancerClass` belong to
another implementation and are left alone.

Which address belongs to whom is read from the Services' own status, so a restart loses nothing.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterator
from typing import Any

from controllers.base import ControllerContext
from skiff.api.errors import ApiError
from skiff.runtime import Controller, EventRecorder, Informer, final_state, object_key, split_key

log = logging.getLogger("skiff.controller.service-lb")

SERVICES = ("v1", "Service")
COMPONENT = "service-controller"

Obj = dict[str, Any]
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class AddressPool:
    """An ordered set of addresses given as `a-b` ranges and CIDRs."""

    def __init__(self, text: str) -> None:
        self.ranges: list[tuple[Address, Address]] = []
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            if "/" in part:
                network = ipaddress.ip_network(part, strict=False)
                hosts = list(network.hosts()) if network.num_addresses > 2 else list(network)
                self.ranges.append((hosts[0], hosts[-1]))
                continue
            first_text, _, last_text = part.partition("-")
            first = ipaddress.ip_address(first_text.strip())
            last = ipaddress.ip_address(last_text.strip()) if last_text else first
            if first.version != last.version or last < first:  # type: ignore[operator]
                raise ValueError(f"invalid address range {part!r}")
            self.ranges.append((first, last))

    def __contains__(self, ip: object) -> bool:
        try:
            address = ipaddress.ip_address(str(ip))
        except ValueError:
            return False
        return any(
            first.version == address.version and first <= address <= last  # type: ignore[operator]
            for first, last in self.ranges
        )

    def __iter__(self) -> Iterator[str]:
        for first, last in self.ranges:
            for value in range(int(first), int(last) + 1):
                yield str(ipaddress.ip_address(value))

    def __bool__(self) -> bool:
        return bool(self.ranges)

    def first_free(self, taken: set[str]) -> str | None:
        return next((ip for ip in self if ip not in taken), None)


def wants_address(service: Obj | None) -> bool:
    if service is None:
        return False
    spec = service.get("spec") or {}
    return spec.get("type") == "LoadBalancer" and not spec.get("loadBalancerClass")


def ingress_ips(service: Obj) -> list[str]:
    ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return [entry["ip"] for entry in ingress if entry.get("ip")]


class LoadBalancerController:
    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        self.pool = AddressPool(ctx.options.load_balancer_ip_pool)
        self.services: Informer = ctx.informers.informer(SERVICES)
        self.recorder: EventRecorder = ctx.recorder(COMPONENT)
        # One worker: handing out addresses one Service at a time keeps two from getting the same one.
        self.controller: Controller[str] = Controller("service-lb", self.reconcile, wait_for=[self.services])
        # Addresses written but perhaps not yet seen in the cache: service key → address.
        self.assigned: dict[str, str] = {}
        self.services.add_event_handler(
            on_add=lambda svc: self.controller.enqueue(object_key(svc)),
            on_update=lambda _old, new: self.controller.enqueue(object_key(new)),
            on_delete=self._deleted,
        )

    def _deleted(self, obj: Any) -> None:
        key = object_key(final_state(obj))
        self.assigned.pop(key, None)
        # Another Service may have been waiting for the address this one held.
        for service in self.services.list():
            if wants_address(service) and not ingress_ips(service):
                self.controller.enqueue(object_key(service))

    def taken(self, except_key: str) -> set[str]:
        taken = {ip for key, ip in self.assigned.items() if key != except_key}
        for service in self.services.list():
            if object_key(service) != except_key and wants_address(service):
                taken.update(ingress_ips(service))
        return taken

    async def reconcile(self, key: str) -> None:
        namespace, name = split_key(key)
        service = self.services.get(namespace, name)
        if service is None:
            self.assigned.pop(key, None)
            return
        current = ingress_ips(service)
        if not wants_address(service):
            self.assigned.pop(key, None)
            if current and (service.get("spec") or {}).get("type") != "LoadBalancer":
                await self._write(service, [])
                self.recorder.event(service, "Normal", "DeletedLoadBalancer", "Deleted load balancer")
            return
        taken = self.taken(key)
        requested = (service.get("spec") or {}).get("loadBalancerIP") or ""
        keep = [ip for ip in current if ip in self.pool and ip not in taken and (not requested or ip == requested)]
        if keep:
            self.assigned[key] = keep[0]
            if keep != current:
                await self._write(service, keep[:1])
            return
        if requested:
            if requested not in self.pool:
                message = f"requested loadBalancerIP {requested} is not in the address pool"
                self.recorder.event(service, "Warning", "LoadBalancerIPNotAvailable", message)
                return
            if requested in taken:
                message = f"requested loadBalancerIP {requested} is already in use by another Service"
                self.recorder.event(service, "Warning", "LoadBalancerIPNotAvailable", message)
                return
            address: str | None = requested
        else:
            address = self.pool.first_free(taken)
        if address is None:
            self.recorder.event(service, "Warning", "AllocationFailed", "no address is left in the load balancer pool")
            return
        self.recorder.event(service, "Normal", "EnsuringLoadBalancer", "Ensuring load balancer")
        self.assigned[key] = address
        try:
            await self._write(service, [address])
        except ApiError:
            self.assigned.pop(key, None)
            raise
        self.recorder.event(service, "Normal", "EnsuredLoadBalancer", f"Ensured load balancer with address {address}")
        log.info("service %s: load balancer address %s", key, address)

    async def _write(self, service: Obj, addresses: list[str]) -> None:
        metadata = service["metadata"]
        ingress = [{"ip": ip, "ipMode": "VIP"} for ip in addresses]
        patch = {"status": {"loadBalancer": {"ingress": ingress or None}}}
        try:
            await self.ctx.client.patch(
                SERVICES, metadata["name"], patch, metadata["namespace"], subresource="status", patch_type="merge"
            )
        except ApiError as error:
            if error.code != 404:
                raise


async def start(ctx: ControllerContext) -> None:
    controller = LoadBalancerController(ctx)
    if not controller.pool:
        log.warning("no --load-balancer-ip-pool: LoadBalancer Services stay pending")
    await controller.controller.run()
