"""`skiff proxy`: the node network agent for one node (`--node-name`) or several (`--nodes N`).

It watches Services, EndpointSlices, Nodes, Pods, Namespaces and NetworkPolicies through the API, and
keeps each node's tables (iptables, IPVS or nftables mode) rendered under DATA/proxy/<node>/ and served
at `/tables/<node>/<mode>` beside `/metrics`. Changes are coalesced: a burst of events leads to one sync,
at most one per `--min-sync-period`, re-rendering only the Services that changed; every
`--sync-period` everything is re-rendered.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import time
from pathlib import Path
from typing import Any

from proxy.backend import Backend, FileBackend
from proxy.metrics import ProxyMetrics
from proxy.proxier import NodeProxier
from proxy.server import ProxyHttp, http_server
from skiff.api.kinds import BUILTINS
from skiff.client.kubeconfig import load_kubeconfig
from skiff.client.rest import AsyncClient, default_user_agent
from skiff.net.ipvs import SCHEDULERS
from skiff.net.modes import MODES, renderer_for
from skiff.net.render import Tables
from skiff.net.state import NODES_CHANGE, POLICY_CHANGE, ClusterState
from skiff.runtime import SharedInformerFactory, final_state

log = logging.getLogger("skiff.proxy")

POLICY_KINDS = ("Pod", "Namespace", "NetworkPolicy")

RESOURCES = {
    "Service": BUILTINS.by_kind("", "v1", "Service"),
    "EndpointSlice": BUILTINS.by_kind("discovery.k8s.io", "v1", "EndpointSlice"),
    "Node": BUILTINS.by_kind("", "v1", "Node"),
    "Pod": BUILTINS.by_kind("", "v1", "Pod"),
    "Namespace": BUILTINS.by_kind("", "v1", "Namespace"),
    "NetworkPolicy": BUILTINS.by_kind("networking.k8s.io", "v1", "NetworkPolicy"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="skiff proxy", description="Render each node's service routing tables.")
    parser.add_argument("--kubeconfig", help="credentials for the API server")
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--node-name", help="proxy for this node")
    who.add_argument("--nodes", type=int, help="proxy for this many nodes, named <prefix><index>")
    parser.add_argument("--node-prefix", default="sim-", help="name prefix with --nodes")
    parser.add_argument("--first-node-index", type=int, default=1)
    parser.add_argument("--mode", choices=MODES, default="iptables")
    parser.add_argument("--data-dir", type=Path, required=True, help="tables are written under DATA/proxy/<node>/")
    parser.add_argument(
        "--cluster-cidr", default="10.244.0.0/16", help="pod CIDR (traffic from elsewhere is masqueraded)"
    )
    parser.add_argument("--ipvs-scheduler", choices=SCHEDULERS, default="rr")
    parser.add_argument("--masquerade-bit", type=int, default=14)
    parser.add_argument("--min-sync-period", type=float, default=1.0, help="seconds between syncs, at least")
    parser.add_argument("--sync-period", type=float, default=30.0, help="seconds between full re-renders")
    parser.add_argument("--metrics-port", type=int, default=10249, help="port for /metrics and /tables (0: off)")
    parser.add_argument("--metrics-bind-address", default="127.0.0.1")
    parser.add_argument(
        "--network-policies",
        choices=["true", "false"],
        default="true",
        help="watch Pods, Namespaces and NetworkPolicies and render policy filter rules (needs read access to them)",
    )
    parser.add_argument("--log-level", default="info")
    return parser


def node_names(args: argparse.Namespace) -> list[str]:
    if args.node_name:
        return [args.node_name]
    return [f"{args.node_prefix}{i}" for i in range(args.first_node_index, args.first_node_index + args.nodes)]


class Proxy:
    """The sync loop: informer events mark Services (or policies, or everything) dirty; syncs apply them."""

    def __init__(
        self,
        nodes: list[str],
        mode: str,
        backend: Backend,
        options: dict[str, Any],
        min_sync_period: float = 1.0,
        sync_period: float = 30.0,
        metrics: ProxyMetrics | None = None,
    ) -> None:
        self.state = ClusterState()
        self.mode = mode
        self.backend = backend
        self.proxiers = {node: NodeProxier(node, renderer_for(mode), options) for node in nodes}
        self.min_sync_period = min_sync_period
        self.sync_period = sync_period
        self.metrics = metrics or ProxyMetrics()
        self.dirty: set[str] = set()
        self.policies_dirty = False
        self.full = True
        self._wake = asyncio.Event()
        self._last_sync = 0.0

    # -- events -------------------------------------------------------------------------------------

    def changed(self, what: set[str]) -> None:
        for item in what:
            if item.startswith("service:"):
                self.dirty.add(item.removeprefix("service:"))
                self.metrics.service_changes.inc()
            elif item == POLICY_CHANGE:
                self.policies_dirty = True
            elif item == NODES_CHANGE:
                self.full = True
        if what:
            self._wake.set()

    def handlers(self, kind: str) -> dict[str, Any]:
        return {
            "on_add": lambda obj: self.changed(self.state.upsert(kind, obj)),
            "on_update": lambda old, new: self.changed(self.state.upsert(kind, new)),
            "on_delete": lambda obj: self.changed(self.state.delete(kind, final_state(obj))),
        }

    # -- syncing ------------------------------------------------------------------------------------

    def tables(self, node: str) -> Tables | None:
        proxier = self.proxiers.get(node)
        return proxier.tables if proxier else None

    async def sync_once(self) -> None:
        full, services, policies = self.full, self.dirty, self.policies_dirty
        self.full, self.dirty, self.policies_dirty = False, set(), False
        for proxier in self.proxiers.values():
            started = time.perf_counter()
            result = proxier.sync(self.state, None if full else sorted(services), policies)
            await asyncio.to_thread(self.backend.apply, result.tables)
            elapsed = time.perf_counter() - started
            self.metrics.observe(result.tables, elapsed, result.rendered_services, time.time())
            log.debug(
                "synced %s (%s): %d services in %.3fs", proxier.node, self.mode, result.rendered_services, elapsed
            )

    async def run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.sync_period)
            if not self._wake.is_set():
                self.full = True  # the periodic full re-render
            # Coalesce a burst: no two syncs closer than min_sync_period.
            pause = self._last_sync + self.min_sync_period - time.monotonic()
            if pause > 0:
                await asyncio.sleep(pause)
            self._wake.clear()
            self._last_sync = time.monotonic()
            try:
                await self.sync_once()
            except Exception:
                log.exception("sync failed; everything is re-rendered next time")
                self.full = True
                self._wake.set()


async def run(args: argparse.Namespace) -> None:
    config = load_kubeconfig(args.kubeconfig)
    client = AsyncClient(config, user_agent=default_user_agent("skiff-proxy"))
    options = {
        "cluster_cidr": args.cluster_cidr,
        "scheduler": args.ipvs_scheduler,
        "masquerade_bit": args.masquerade_bit,
    }
    proxy = Proxy(
        node_names(args),
        args.mode,
        FileBackend(args.data_dir),
        options,
        min_sync_period=args.min_sync_period,
        sync_period=args.sync_period,
    )
    factory = SharedInformerFactory(client)
    for kind, resource in RESOURCES.items():
        if args.network_policies == "false" and kind in POLICY_KINDS:
            continue
        factory.informer(resource).add_event_handler(**proxy.handlers(kind))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    server = None
    tasks: list[asyncio.Task[Any]] = []
    if args.metrics_port:
        app = ProxyHttp(proxy.tables, lambda: list(proxy.proxiers), proxy.metrics)
        server = http_server(app, args.metrics_bind_address, args.metrics_port)
        tasks.append(asyncio.create_task(server.serve()))
    factory.start()
    try:
        await factory.wait_for_cache_sync()
        log.info("proxying %s in %s mode", ", ".join(proxy.proxiers), args.mode)
        tasks.append(asyncio.create_task(proxy.run()))
        await stop.wait()
    finally:
        if server is not None:
            server.should_exit = True
        for task in tasks[1:] if server is not None else tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await factory.shutdown()
        await client.aclose()


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
