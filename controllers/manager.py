"""`skiff controller-manager`: run the cluster's controllers, under leader election.

Each controller is a module with `start(ctx)`; `--controllers` picks them (`*` for all, `-name` to
leave one out). With leader election (the default) only the holder of the
`kube-system/kube-controller-manager` Lease runs controllers; one that loses the lease exits, as
kube-controller-manager does, so its supervisor restarts it as a candidate.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import ipaddress
import logging
import re
import socket
import sys
import uuid

from controllers.base import ControllerContext, Options
from skiff.client.kubeconfig import load_kubeconfig
from skiff.client.rest import AsyncClient
from skiff.runtime import LeaderElector, SharedInformerFactory
from skiff.runtime.process import run_until_stopped

log = logging.getLogger("skiff.controller-manager")

# name → module with `async def start(ctx)`.
CONTROLLERS: dict[str, str] = {
    "csrsigning": "controllers.csr_signer",
    "deployment": "controllers.deployment",
    "endpoints": "controllers.endpoints",
    "endpointslice": "controllers.endpointslice",
    "garbagecollector": "controllers.garbagecollector",
    "namespace": "controllers.namespace",
    "nodeipam": "controllers.nodeipam",
    "nodelifecycle": "controllers.nodelifecycle",
    "persistentvolume-binder": "controllers.volume.binder",
    "persistentvolume-expander": "controllers.volume.expansion",
    "pv-protection": "controllers.volume.pv_protection",
    "pvc-protection": "controllers.volume.pvc_protection",
    "hostpath-provisioner": "controllers.volume.hostpath",
    "simulated-provisioner": "controllers.volume.simulated",
    "replicaset": "controllers.replicaset",
    "serviceaccount": "controllers.serviceaccount",
    "serviceaccount-token": "controllers.tokens",
    "service-lb": "controllers.loadbalancer",
}
LEASE_NAMESPACE = "kube-system"


def selected(spec: str, available: dict[str, str]) -> list[str]:
    """Resolve a kube-style --controllers value: `*`, names, and `-name` exclusions."""
    names: list[str] = []
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    for part in parts:
        if part == "*":
            names.extend(n for n in available if n not in names)
        elif not part.startswith("-"):
            if part not in available:
                raise SystemExit(f"skiff controller-manager: unknown controller {part!r}")
            if part not in names:
                names.append(part)
    excluded = {p[1:] for p in parts if p.startswith("-")}
    return [n for n in names if n not in excluded]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="skiff controller-manager", description="Run Skiff's controllers.")
    parser.add_argument("--kubeconfig", default=None)
    parser.add_argument("--controllers", default="*", help="comma list: * for all, -name to disable one")
    parser.add_argument("--leader-elect", default="true", choices=["true", "false"])
    parser.add_argument("--leader-elect-lease-duration", type=float, default=15.0)
    parser.add_argument("--leader-elect-renew-deadline", type=float, default=10.0)
    parser.add_argument("--leader-elect-retry-period", type=float, default=2.0)
    parser.add_argument("--leader-elect-resource-name", default="kube-controller-manager")
    parser.add_argument("--cluster-cidr", default="10.244.0.0/16")
    parser.add_argument("--node-cidr-mask-size", type=int, default=24)
    parser.add_argument("--node-monitor-grace-period", type=float, default=40.0)
    parser.add_argument("--node-monitor-period", type=float, default=5.0)
    parser.add_argument("--pod-eviction-timeout", type=float, default=300.0,
                        help="default tolerationSeconds for the not-ready/unreachable NoExecute taints")  # fmt: skip
    parser.add_argument("--root-ca-file", default="", help="CA published as kube-root-ca.crt; default: the "
                        "kubeconfig's CA")  # fmt: skip
    parser.add_argument("--service-account-private-key-file", default="")
    parser.add_argument("--concurrent-syncs", type=int, default=5)
    parser.add_argument("--cluster-signing-cert-file", default="", help="CA certificate the CSR signer issues from")
    parser.add_argument("--cluster-signing-key-file", default="", help="the CA's private key")
    parser.add_argument("--cluster-signing-duration", type=duration_seconds, default=365 * 24 * 3600.0,
                        help="longest certificate lifetime: a Go duration (8760h0m0s) or seconds")  # fmt: skip
    parser.add_argument("--load-balancer-ip-pool", default="",
                        help="addresses for LoadBalancer Services: ranges (a-b) or CIDRs, comma-separated")  # fmt: skip
    parser.add_argument("--volume-data-dir", default="",
                        help="the kubelets' data directory (hostpath volumes go under DATA/kubelet/)")  # fmt: skip
    parser.add_argument("--simulated-storage-capacity", default="100Gi",
                        help="the pool the skiff.dev/simulated provisioner carves volumes from")  # fmt: skip
    parser.add_argument("--log-level", default="info")
    return parser.parse_args(argv)


def options_from(args: argparse.Namespace, ca_pem: str) -> Options:
    return Options(
        cluster_cidr=ipaddress.IPv4Network(args.cluster_cidr),
        node_cidr_mask_size=args.node_cidr_mask_size,
        node_monitor_grace_period=args.node_monitor_grace_period,
        node_monitor_period=args.node_monitor_period,
        pod_eviction_timeout=args.pod_eviction_timeout,
        root_ca_pem=ca_pem,
        service_account_key_file=args.service_account_private_key_file,
        concurrent_syncs=args.concurrent_syncs,
        cluster_signing_cert_file=args.cluster_signing_cert_file,
        cluster_signing_key_file=args.cluster_signing_key_file,
        cluster_signing_duration=args.cluster_signing_duration,
        load_balancer_ip_pool=args.load_balancer_ip_pool,
        volume_data_dir=args.volume_data_dir,
        simulated_storage_capacity=args.simulated_storage_capacity,
    )


_DURATION_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def duration_seconds(text: str) -> float:
    """Seconds in a Go duration (`8760h0m0s`, `90m`, `1.5h`) or a plain number of seconds."""
    try:
        return float(text)
    except ValueError:
        pass
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}")
    return sum(float(number) * _DURATION_UNITS[unit] for number, unit in parts)


def root_ca(args: argparse.Namespace, kubeconfig_ca: bytes | None) -> str:
    if args.root_ca_file:
        with open(args.root_ca_file) as handle:
            return handle.read()
    return kubeconfig_ca.decode() if kubeconfig_ca else ""


async def run_controllers(ctx: ControllerContext, names: list[str]) -> None:
    starts = [importlib.import_module(CONTROLLERS[name]).start for name in names]
    ctx.informers.start()
    tasks = [
        asyncio.create_task(start(ctx), name=f"controller-{name}") for name, start in zip(names, starts, strict=True)
    ]
    log.info("running controllers: %s", ", ".join(names))
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await ctx.informers.shutdown()


async def run(args: argparse.Namespace) -> int:
    config = load_kubeconfig(args.kubeconfig)
    # Every informer's watch holds a connection for its whole life; leave room for the writes beside them.
    client = AsyncClient(config, max_connections=128)
    ca_data = config.ca_data if config.ca_data else None
    if ca_data is None and config.ca_file:
        with open(config.ca_file, "rb") as handle:
            ca_data = handle.read()
    ctx = ControllerContext(client, SharedInformerFactory(client), options_from(args, root_ca(args, ca_data)))
    names = selected(args.controllers, CONTROLLERS)
    if args.leader_elect == "true":
        identity = f"{socket.gethostname()}_{uuid.uuid4()}"
        elector = LeaderElector(
            client,
            LEASE_NAMESPACE,
            args.leader_elect_resource_name,
            identity,
            lease_duration=args.leader_elect_lease_duration,
            renew_deadline=args.leader_elect_renew_deadline,
            retry_period=args.leader_elect_retry_period,
            on_started_leading=lambda: run_controllers(ctx, names),
        )
        work = elector.run()
    else:
        work = run_controllers(ctx, names)
    lost_lease = await run_until_stopped(work)
    await ctx.close()
    if lost_lease:
        log.error("leader election lost; exiting")
        return 1
    return 0


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    sys.exit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
