"""The `default/kubernetes` Service and the API servers behind it.

The first API server creates the Service with the first address of the service range (port 443 to the
API servers' port). Every API server then keeps a short-lived record of its own address in storage
(`internal/apiserverleases/<ip>:<port>`, renewed every few seconds) and rewrites the `kubernetes`
Endpoints and EndpointSlice from the records that are still fresh, so the list follows the replicas
that run: one that stops cleanly removes itself at once, one that dies drops out when its record
expires. This is kube-apiserver's lease endpoint reconciler.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from typing import TYPE_CHECKING, Any

import orjson

from apiserver.allocators import IP_KEY, claim_for, ranges_of
from apiserver.http.objects import now_rfc3339
from apiserver.storage.records import KeyExists, KeyNotFound, VersionConflict

if TYPE_CHECKING:
    from apiserver.http.server_state import ServerState

log = logging.getLogger("skiff.apiserver.endpoints")

NAME = "kubernetes"
NAMESPACE = "default"
SERVICES_KEY = "core/services"
ENDPOINTS_KEY = "core/endpoints"
SLICES_KEY = "discovery.k8s.io/endpointslices"
LEASES_KEY = "internal/apiserverleases"
LEASE_TTL_SECONDS = 15.0
RECONCILE_INTERVAL_SECONDS = 5.0
SERVICE_NAME_LABEL = "kubernetes.io/service-name"

Obj = dict[str, Any]


def _metadata(name: str, labels: dict[str, str] | None = None) -> Obj:
    metadata: Obj = {
        "name": name,
        "namespace": NAMESPACE,
        "uid": str(uuid.uuid4()),
        "creationTimestamp": now_rfc3339(),
    }
    if labels:
        metadata["labels"] = labels
    return metadata


def kubernetes_service(cluster_ip: str, target_port: int) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(NAME, {"component": "apiserver", "provider": "kubernetes"}),
        "spec": {
            "type": "ClusterIP",
            "clusterIP": cluster_ip,
            "clusterIPs": [cluster_ip],
            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": target_port}],
            "sessionAffinity": "None",
            "ipFamilies": ["IPv6" if ":" in cluster_ip else "IPv4"],
            "ipFamilyPolicy": "SingleStack",
            "internalTrafficPolicy": "Cluster",
        },
        "status": {"loadBalancer": {}},
    }


async def ensure_kubernetes_service(state: ServerState) -> None:
    """Create `default/kubernetes` with the range's first address unless it exists."""
    store = state.store
    if await store.get(SERVICES_KEY, NAMESPACE, NAME) is not None:
        return
    ip = ranges_of(state).kubernetes_ip
    service = kubernetes_service(ip, state.config.port)
    if not await claim_for(store, service, IP_KEY, ip):
        log.error("the kubernetes Service cannot have %s: another Service holds it", ip)
        return
    try:
        await store.create(SERVICES_KEY, NAMESPACE, NAME, service)
    except KeyExists:
        # Another API server created it first, with its own record of the address; drop ours.
        current = await store.get(IP_KEY, "", ip)
        if current is not None and current.obj().get("owner", {}).get("uid") == service["metadata"]["uid"]:
            with contextlib.suppress(KeyNotFound, VersionConflict):
                await store.delete(IP_KEY, "", ip, current.obj(), current.rv)


def advertise_address(state: ServerState) -> str:
    config = state.config
    address = getattr(config, "advertise_address", "") or config.bind
    return "127.0.0.1" if address in ("", "0.0.0.0", "::") else address


class ApiServerEndpoints:
    """Keeps this API server's lease fresh and the `kubernetes` Endpoints and EndpointSlice current."""

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.ip = advertise_address(state)
        self.port = state.config.port
        self.lease_name = f"{self.ip}:{self.port}"

    async def renew(self) -> None:
        store = self.state.store
        record = {
            "apiVersion": "internal.skiff.dev/v1",
            "kind": "ApiServerLease",
            "metadata": {"name": self.lease_name, "uid": str(uuid.uuid4())},
            "ip": self.ip,
            "port": self.port,
            "expires": time.time() + LEASE_TTL_SECONDS,
        }
        current = await store.get(LEASES_KEY, "", self.lease_name)
        with contextlib.suppress(KeyExists, KeyNotFound, VersionConflict):
            if current is None:
                await store.create(LEASES_KEY, "", self.lease_name, record)
            else:
                record["metadata"]["uid"] = current.obj()["metadata"].get("uid", record["metadata"]["uid"])
                await store.update(LEASES_KEY, "", self.lease_name, record, current.rv)

    async def remove(self) -> None:
        store = self.state.store
        current = await store.get(LEASES_KEY, "", self.lease_name)
        if current is not None:
            with contextlib.suppress(KeyNotFound, VersionConflict):
                await store.delete(LEASES_KEY, "", self.lease_name, current.obj(), current.rv)
        await self.reconcile()

    async def live_servers(self) -> list[tuple[str, int]]:
        page = await self.state.store.list(LEASES_KEY, "")
        now = time.time()
        servers = set()
        for _namespace, _name, data in page.rows:
            lease = orjson.loads(data)
            if float(lease.get("expires", 0)) > now:
                servers.add((str(lease["ip"]), int(lease["port"])))
        return sorted(servers)

    async def reconcile(self) -> None:
        servers = await self.live_servers()
        by_port: dict[int, list[str]] = {}
        for ip, port in servers:
            by_port.setdefault(port, []).append(ip)
        subsets = [
            {
                "addresses": [{"ip": ip} for ip in ips],
                "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
            }
            for port, ips in sorted(by_port.items())
        ]
        await self._write(ENDPOINTS_KEY, NAME, self._endpoints(subsets))
        groups = sorted(by_port.items())
        wanted: dict[str, tuple[int | None, list[str]]] = {
            self._slice_name(index, port): (port, ips) for index, (port, ips) in enumerate(groups)
        }
        if not wanted:
            wanted = {NAME: (None, [])}
        for name, (port, ips) in wanted.items():
            await self._write(SLICES_KEY, name, self._slice(name, port, ips))
        page = await self.state.store.list(SLICES_KEY, NAMESPACE)
        for _namespace, name, data in page.rows:
            existing = orjson.loads(data)
            ours = (existing.get("metadata", {}).get("labels") or {}).get(SERVICE_NAME_LABEL) == NAME
            if ours and name not in wanted and not (existing.get("metadata", {}).get("ownerReferences")):
                await self._delete(SLICES_KEY, name)

    @staticmethod
    def _slice_name(index: int, port: int) -> str:
        return NAME if index == 0 else f"{NAME}-{port}"

    @staticmethod
    def _endpoints(subsets: list[Obj]) -> Obj:
        endpoints: Obj = {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": _metadata(NAME, {"endpointslice.kubernetes.io/skip-mirror": "true"}),
        }
        if subsets:
            endpoints["subsets"] = subsets
        return endpoints

    @staticmethod
    def _slice(name: str, port: int | None, ips: list[str]) -> Obj:
        return {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {**_metadata(name, {SERVICE_NAME_LABEL: NAME}), "generation": 1},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [ip], "conditions": {"ready": True}} for ip in ips],
            "ports": [] if port is None else [{"name": "https", "port": port, "protocol": "TCP"}],
        }

    async def _write(self, key: str, name: str, desired: Obj) -> None:
        store = self.state.store
        current = await store.get(key, NAMESPACE, name)
        with contextlib.suppress(KeyExists, KeyNotFound, VersionConflict):
            if current is None:
                await store.create(key, NAMESPACE, name, desired)
                return
            old = current.obj()
            if all(old.get(field) == desired.get(field) for field in ("subsets", "endpoints", "ports")):
                return
            metadata = old["metadata"]
            desired["metadata"] = {**desired["metadata"], "uid": metadata.get("uid"),
                                   "creationTimestamp": metadata.get("creationTimestamp")}  # fmt: skip
            if "generation" in metadata:
                desired["metadata"]["generation"] = int(metadata["generation"]) + 1
            await store.update(key, NAMESPACE, name, desired, current.rv)

    async def _delete(self, key: str, name: str) -> None:
        store = self.state.store
        current = await store.get(key, NAMESPACE, name)
        if current is not None:
            with contextlib.suppress(KeyNotFound, VersionConflict):
                await store.delete(key, NAMESPACE, name, current.obj(), current.rv)

    async def run_forever(self) -> None:
        while True:
            try:
                await ensure_kubernetes_service(self.state)  # put back if someone deleted it
                await self.renew()
                await self.reconcile()
            except Exception:
                log.exception("updating the kubernetes endpoints failed; will retry")
            await asyncio.sleep(RECONCILE_INTERVAL_SECONDS)
