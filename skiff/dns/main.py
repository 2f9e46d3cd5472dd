"""`skiff dns --kubeconfig K [--port 10053] [--bind 127.0.0.1] [--cluster-domain cluster.local]`

A DNS server for the cluster's names on UDP and TCP. It lists and watches Services, EndpointSlices and
pods through the API and answers from those caches, so an answer follows the cluster within a watch
event. Until the caches are filled it answers SERVFAIL. It does not forward other names: they get
REFUSED, so point a stub resolver at it for the cluster domain only.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from typing import Any

from skiff.client.kubeconfig import load_kubeconfig
from skiff.client.rest import AsyncClient, default_user_agent
from skiff.dns.resolver import DEFAULT_TTL, SERVICE_NAME_LABEL, ClusterView, Resolver
from skiff.dns.server import DnsServer
from skiff.runtime import Informer, SharedInformerFactory, index_by_field, index_by_label

log = logging.getLogger("skiff.dns")

SERVICES = ("v1", "Service")
SLICES = ("discovery.k8s.io/v1", "EndpointSlice")
PODS = ("v1", "Pod")
POD_IP_INDEX = "podIP"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="skiff dns", description="Serve cluster DNS for Services and pods.")
    parser.add_argument("--kubeconfig", default=None)
    parser.add_argument("--bind", default="127.0.0.1", help="address to listen on (UDP and TCP)")
    parser.add_argument("--port", type=int, default=10053)
    parser.add_argument("--cluster-domain", default="cluster.local")
    parser.add_argument("--ttl", type=int, default=DEFAULT_TTL, help="seconds clients may cache an answer")
    parser.add_argument("--log-level", default="info")
    return parser.parse_args(argv)


def cluster_view(informers: SharedInformerFactory) -> tuple[ClusterView, list[Informer]]:
    services = informers.informer(SERVICES)
    slices = informers.informer(SLICES)
    slices.add_indexer(SERVICE_NAME_LABEL, index_by_label(SERVICE_NAME_LABEL))
    pods = informers.informer(PODS)
    pods.add_indexer(POD_IP_INDEX, index_by_field("status.podIP"))

    def slices_of(namespace: str, name: str) -> list[dict[str, Any]]:
        return [s for s in slices.by_index(SERVICE_NAME_LABEL, name) if s["metadata"].get("namespace") == namespace]

    view = ClusterView(
        service=services.get,
        slices_of=slices_of,
        pods_with_ip=lambda ip: pods.by_index(POD_IP_INDEX, ip),
        namespace_has_services=lambda namespace: bool(services.list(namespace)),
    )
    return view, [services, slices, pods]


async def run(args: argparse.Namespace) -> int:
    client = AsyncClient(load_kubeconfig(args.kubeconfig), user_agent=default_user_agent("skiff-dns"))
    informers = SharedInformerFactory(client)
    view, watched = cluster_view(informers)
    resolver = Resolver(view, args.cluster_domain, args.ttl)
    server = DnsServer(resolver, lambda: all(i.has_synced() for i in watched), args.bind, args.port)
    try:
        await server.start()
    except OSError as error:
        print(f"skiff dns: cannot listen on {args.bind}:{args.port}: {error}", file=sys.stderr)
        await client.aclose()
        return 1
    informers.start()
    log.info("serving DNS for %s on %s:%d (UDP and TCP)", args.cluster_domain, args.bind, args.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await server.close()
        await informers.shutdown()
        await client.aclose()
    return 0


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    sys.exit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
