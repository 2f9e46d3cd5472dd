"""Service ClusterIPs and nodePorts, allocated from storage so that every API server agrees.

Each allocated address or port is an internal record in the object store, keyed by its value
(`internal/serviceips/10.96.0.10`, `internal/servicenodeports/30080`) and naming the Service that owns
it. Taking a value is a create of its record, which the store refuses (KeyExists) when the key is
already there, atomically across requests and across API server processes sharing a database. So two
Services never get the same address, whichever replica serves them. The records are taken after
admission and before the Service is written, given back if that write fails, and released when the
Service stops using them (deleted, type changed, port removed).

A crash between taking a value and writing the Service can leave a record without its Service; the
repair loop (`repair_allocations`) releases such leftovers and records values that Services use but
that have no record, as kube-apiserver's repair controllers do.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import orjson

from apiserver.http.objects import now_rfc3339
from apiserver.storage.records import KeyExists, KeyNotFound, VersionConflict
from apiserver.storage.store import Store
from skiff.api import validation as v
from skiff.api.errors import Cause, internal, invalid

if TYPE_CHECKING:
    from apiserver.http.context import RequestContext
    from apiserver.http.server_state import ServerState

log = logging.getLogger("skiff.allocators")

SERVICES_KEY = "core/services"
IP_KEY = "internal/serviceips"
PORT_KEY = "internal/servicenodeports"
NODE_PORT_TYPES = ("NodePort", "LoadBalancer")
HEADLESS = "None"
ALREADY_ALLOCATED_IP = "provided IP is already allocated"
ALREADY_ALLOCATED_PORT = "provided port is already allocated"
RANDOM_TRIES = 8
# A record younger than this may belong to a create still in flight; repair leaves it alone.
REPAIR_GRACE_SECONDS = 60.0

Obj = dict[str, Any]


# -- ranges ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ServiceRanges:
    """The service CIDR and the nodePort range of one API server."""

    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    node_ports: tuple[int, int]

    @property
    def kubernetes_ip(self) -> str:
        """The first address of the range: the `kubernetes` Service's."""
        return str(self.network.network_address + 1)

    @property
    def first_dynamic(self) -> int:
        """Offset of the first address handed out automatically (after the network and the first host)."""
        return 2

    @property
    def last_dynamic(self) -> int:
        """Offset of the last address handed out automatically (IPv4 keeps the broadcast address)."""
        size = self.network.num_addresses
        return size - 2 if self.network.version == 4 else size - 1

    def contains_ip(self, ip: str) -> bool:
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        if address.version != self.network.version or address not in self.network:
            return False
        offset = int(address) - int(self.network.network_address)
        return 1 <= offset <= self.last_dynamic

    def ip_at(self, offset: int) -> str:
        return str(self.network.network_address + offset)

    def contains_port(self, port: int) -> bool:
        return self.node_ports[0] <= port <= self.node_ports[1]

    def range_text(self) -> str:
        return f"{self.node_ports[0]}-{self.node_ports[1]}"


def parse_port_range(text: str) -> tuple[int, int]:
    """`30000-32767` → (30000, 32767); a single port is a range of one."""
    low, _, high = text.strip().partition("-")
    first, last = int(low), int(high or low)
    if not 1 <= first <= last <= 65535:
        raise ValueError(f"invalid port range {text!r}")
    return first, last


@lru_cache(maxsize=8)
def service_ranges(cidr: str, node_port_range: str) -> ServiceRanges:
    network = ipaddress.ip_network(cidr, strict=False)
    if network.num_addresses < 4:
        raise ValueError(f"the service CIDR {cidr} is too small")
    return ServiceRanges(network, parse_port_range(node_port_range))


def ranges_of(state: ServerState) -> ServiceRanges:
    config = state.config
    return service_ranges(config.service_cidr, getattr(config, "service_node_port_range", "30000-32767"))


# -- what a Service uses ---------------------------------------------------------------------------
def needs_cluster_ip(spec: Obj) -> bool:
    return spec.get("type") != "ExternalName" and spec.get("clusterIP") != HEADLESS


def needs_node_ports(spec: Obj) -> bool:
    kind = spec.get("type")
    return kind == "NodePort" or (kind == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts", True))


def needs_health_check_port(spec: Obj) -> bool:
    return spec.get("type") == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local"


def used_values(obj: Obj | None) -> set[tuple[str, str]]:
    """The (record key, value) pairs a stored Service holds."""
    if obj is None:
        return set()
    spec = obj.get("spec") or {}
    used: set[tuple[str, str]] = set()
    if spec.get("type") != "ExternalName":
        used |= {(IP_KEY, ip) for ip in spec.get("clusterIPs") or [] if ip and ip != HEADLESS}
        if spec.get("clusterIP") and spec["clusterIP"] != HEADLESS:
            used.add((IP_KEY, spec["clusterIP"]))
    used |= {(PORT_KEY, str(p["nodePort"])) for p in spec.get("ports") or [] if p.get("nodePort")}
    if spec.get("healthCheckNodePort"):
        used.add((PORT_KEY, str(spec["healthCheckNodePort"])))
    return used


def _owner(obj: Obj) -> Obj:
    metadata = obj.get("metadata") or {}
    return {"namespace": metadata.get("namespace", ""), "name": metadata.get("name", ""), "uid": metadata.get("uid")}


def _record(key: str, value: str, owner: Obj) -> Obj:
    kind = "ServiceIPAllocation" if key == IP_KEY else "ServiceNodePortAllocation"
    return {
        "apiVersion": "internal.skiff.dev/v1",
        "kind": kind,
        "metadata": {"name": value, "uid": str(uuid.uuid4()), "creationTimestamp": now_rfc3339()},
        "owner": owner,
        "createdAt": time.time(),
    }


# -- the allocator ---------------------------------------------------------------------------------
@dataclass
class Allocation:
    """Values one request took; given back if the request fails."""

    store: Store
    owner: Obj
    taken: list[tuple[str, str]] = field(default_factory=list)

    async def rollback(self) -> None:
        await release(self.store, self.taken, self.owner.get("uid"))
        self.taken.clear()


class ServiceAllocator:
    def __init__(self, store: Store, ranges: ServiceRanges, dry_run: bool = False) -> None:
        self.store = store
        self.ranges = ranges
        self.dry_run = dry_run

    async def claim(self, allocation: Allocation, key: str, value: str) -> bool:
        """Take `value` for the owner; False when another holds it. Dry runs only look."""
        if self.dry_run:
            return await self.store.get(key, "", value) is None
        try:
            await self.store.create(key, "", value, _record(key, value, allocation.owner))
        except KeyExists:
            return False
        allocation.taken.append((key, value))
        return True

    async def allocate_ip(self, allocation: Allocation) -> str:
        low, high = self.ranges.first_dynamic, self.ranges.last_dynamic
        for _ in range(RANDOM_TRIES):
            ip = self.ranges.ip_at(random.randint(low, high))
            if await self.claim(allocation, IP_KEY, ip):
                return ip
        for ip in await self._free(IP_KEY, (self.ranges.ip_at(o) for o in range(low, high + 1))):
            if await self.claim(allocation, IP_KEY, ip):
                return ip
        raise internal("failed to allocate a serviceIP: range is full")

    async def allocate_port(self, allocation: Allocation, avoid: set[int]) -> int:
        low, high = self.ranges.node_ports
        for _ in range(RANDOM_TRIES):
            port = random.randint(low, high)
            if port not in avoid and await self.claim(allocation, PORT_KEY, str(port)):
                return port
        for text in await self._free(PORT_KEY, (str(p) for p in range(low, high + 1) if p not in avoid)):
            if await self.claim(allocation, PORT_KEY, text):
                return int(text)
        raise internal("failed to allocate a nodePort: range is full")

    async def _free(self, key: str, candidates: Iterable[str], limit: int = 64) -> list[str]:
        """Some values no record holds, from one read of the records (the range is nearly full)."""
        page = await self.store.list(key, "")
        taken = {name for _namespace, name, _data in page.rows}
        free: list[str] = []
        for value in candidates:
            if value not in taken:
                free.append(value)
                if len(free) >= limit:
                    break
        random.shuffle(free)
        return free


async def release(store: Store, values: Iterable[tuple[str, str]], owner_uid: str | None) -> None:
    """Delete the records of `values` that `owner_uid` holds; others' records are left alone."""
    for key, value in values:
        with contextlib.suppress(KeyNotFound, VersionConflict):
            current = await store.get(key, "", value)
            if current is None:
                continue
            record = current.obj()
            if owner_uid is not None and (record.get("owner") or {}).get("uid") != owner_uid:
                continue
            await store.delete(key, "", value, record, current.rv)


async def _assign(allocator: ServiceAllocator, allocation: Allocation, new: Obj, old: Obj | None) -> list[Cause]:
    """Take what `new` needs that `old` did not hold; fill in automatic values. Returns refusals."""
    spec = new.setdefault("spec", {})
    held = used_values(old)
    ranges = allocator.ranges
    causes: list[Cause] = []
    if spec.get("type") == "ExternalName":
        if spec.get("clusterIP") or spec.get("clusterIPs"):
            detail = "must be empty when `type` is 'ExternalName'"
            causes.append(v.invalid("spec.clusterIPs", spec.get("clusterIPs") or [spec.get("clusterIP")], detail))
    elif needs_cluster_ip(spec):
        ip = spec.get("clusterIP") or (spec.get("clusterIPs") or [""])[0]
        if not ip:
            ip = await allocator.allocate_ip(allocation)
            spec["clusterIP"], spec["clusterIPs"] = ip, [ip]
            spec["ipFamilies"] = ["IPv6" if ":" in ip else "IPv4"]
        elif (IP_KEY, ip) not in held:
            if not ranges.contains_ip(ip):
                detail = f"the provided IP ({ip}) is not in the valid range. The range of valid IPs is {ranges.network}"
                causes.append(v.invalid("spec.clusterIPs", ip, detail))
            elif not await allocator.claim(allocation, IP_KEY, ip):
                causes.append(v.invalid("spec.clusterIPs", ip, ALREADY_ALLOCATED_IP))
    causes += await _assign_node_ports(allocator, allocation, spec, held)
    return causes


async def _assign_node_ports(
    allocator: ServiceAllocator, allocation: Allocation, spec: Obj, held: set[tuple[str, str]]
) -> list[Cause]:
    ranges = allocator.ranges
    causes: list[Cause] = []
    ports = spec.get("ports") or []
    claimed: dict[int, str] = {}  # nodePort → protocol set already taken by this request

    async def take(path: str, port: int, protocol: str) -> None:
        if not ranges.contains_port(port):
            detail = f"provided port is not in the valid range. The range of valid ports is {ranges.range_text()}"
            causes.append(v.invalid(path, port, detail))
            return
        if port in claimed:
            if protocol in claimed[port]:
                causes.append(v.duplicate(path, port))
            claimed[port] += protocol
            return
        claimed[port] = protocol
        if (PORT_KEY, str(port)) in held:
            return
        if not await allocator.claim(allocation, PORT_KEY, str(port)):
            causes.append(v.invalid(path, port, ALREADY_ALLOCATED_PORT))

    if needs_node_ports(spec):
        for position, port in enumerate(ports):
            if port.get("nodePort"):
                await take(f"spec.ports[{position}].nodePort", int(port["nodePort"]), port.get("protocol", "TCP"))
        for port in ports:
            if not port.get("nodePort"):
                port["nodePort"] = await allocator.allocate_port(allocation, set(claimed))
                claimed[port["nodePort"]] = port.get("protocol", "TCP")
    if spec.get("healthCheckNodePort"):
        if not needs_health_check_port(spec):
            detail = "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'"
            causes.append(v.invalid("spec.healthCheckNodePort", spec["healthCheckNodePort"], detail))
        else:
            await take("spec.healthCheckNodePort", int(spec["healthCheckNodePort"]), "health")
    elif needs_health_check_port(spec):
        spec["healthCheckNodePort"] = await allocator.allocate_port(allocation, set(claimed))
    return causes


@contextlib.asynccontextmanager
async def service_allocations(ctx: RequestContext, new: Obj, old: Obj | None) -> AsyncIterator[None]:
    """Around the write of a Service: take what it needs first, give it back if the write fails, and
    release what the old version held and the new one does not once it succeeds. Other resources pass."""
    if ctx.resource.storage_key != SERVICES_KEY:
        yield
        return
    store = ctx.state.store
    allocator = ServiceAllocator(store, ranges_of(ctx.state), dry_run=ctx.dry_run)
    allocation = Allocation(store, _owner(new))
    try:
        causes = await _assign(allocator, allocation, new, old)
        if causes:
            raise invalid("Service", new.get("metadata", {}).get("name", ""), "", causes)
        yield
    except BaseException:
        await asyncio.shield(allocation.rollback())
        raise
    if old is not None and not ctx.dry_run:
        metadata = new.get("metadata") or {}
        gone = bool(metadata.get("deletionTimestamp")) and not metadata.get("finalizers")
        still_used = set() if gone else used_values(new)
        await release(store, used_values(old) - still_used, (old.get("metadata") or {}).get("uid"))


async def release_service(state: ServerState, resource_key: str, obj: Obj) -> None:
    """After a Service is deleted: give back everything it held."""
    if resource_key != SERVICES_KEY:
        return
    await release(state.store, used_values(obj), (obj.get("metadata") or {}).get("uid"))


async def claim_for(store: Store, service: Obj, key: str, value: str) -> bool:
    """Record `value` for `service` (bootstrap and repair); False when another Service holds it."""
    owner = _owner(service)
    try:
        await store.create(key, "", value, _record(key, value, owner))
    except KeyExists:
        current = await store.get(key, "", value)
        return current is None or (current.obj().get("owner") or {}).get("uid") == owner.get("uid")
    return True


# -- repair ----------------------------------------------------------------------------------------
async def repair_allocations(store: Store, now: float | None = None) -> tuple[int, int]:
    """Release records no Service uses and record values Services use without a record.

    Returns (released, recorded)."""
    now = time.time() if now is None else now
    services = await store.list(SERVICES_KEY, None)
    using: dict[tuple[str, str], Obj] = {}
    for _namespace, _name, data in services.rows:
        service = orjson.loads(data)
        for pair in used_values(service):
            using.setdefault(pair, service)
    released = recorded = 0
    for key in (IP_KEY, PORT_KEY):
        page = await store.list(key, "")
        present = set()
        for _namespace, value, data in page.rows:
            present.add((key, value))
            record = orjson.loads(data)
            owner_uid = (record.get("owner") or {}).get("uid")
            service = using.get((key, value))
            in_use = service is not None and (service.get("metadata") or {}).get("uid") == owner_uid
            if in_use or now - float(record.get("createdAt") or 0) < REPAIR_GRACE_SECONDS:
                continue
            await release(store, [(key, value)], owner_uid)
            released += 1
        for pair, service in using.items():
            if pair[0] == key and pair not in present:
                if await claim_for(store, service, *pair):
                    recorded += 1
                else:
                    log.error("%s %s is used by more than one Service", key, pair[1])
    return released, recorded


async def repair_forever(store: Store, interval: float = 180.0) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            released, recorded = await repair_allocations(store)
            if released or recorded:
                log.info("service allocations repaired: %d released, %d recorded", released, recorded)
        except Exception:
            log.exception("repairing service allocations failed; will retry")
