"""`skiff kubelet`: run one simulated node (`--node-name`) or several (`--nodes N --node-prefix P`).

Every node of the process shares one pod informer (indexed by `spec.nodeName`), one node informer and
one HTTPS server; each has its own client when `--kubeconfig-dir` holds `node-<name>.kubeconfig`
files (what `skiff pki node NAME` writes), so each node acts as `system:node:<name>` and the Node
authorizer and NodeRestriction apply to it as to a real kubelet.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from pathlib import Path
from typing import Any

from kubelet_sim import tls
from kubelet_sim.config import (
    DEFAULT_FAIL_IMAGE_PATTERNS,
    POD_CIDR_AUTO,
    KubeletConfig,
    NodeConfig,
    Taint,
    node_address,
    parse_duration,
)
from kubelet_sim.kubelet import NodeKubelet
from kubelet_sim.server import KubeletServer
from skiff.api.kinds import BUILTINS
from skiff.client.kubeconfig import ClientConfig, load_kubeconfig
from skiff.client.rest import AsyncClient, default_user_agent
from skiff.runtime import Informer, final_state, index_by_field, make_key

log = logging.getLogger("skiff.kubelet")

PODS = BUILTINS.by_kind("", "v1", "Pod")
NODES = BUILTINS.by_kind("", "v1", "Node")
NODE_NAME_INDEX = "nodeName"


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _key_values(text: str) -> dict[str, str]:
    pairs = [item for item in text.split(",") if item]
    out = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq:
            raise argparse.ArgumentTypeError(f"expected key=value, got {pair!r}")
        out[key] = value
    return out


def _taints(text: str) -> list[Taint]:
    try:
        return [Taint.parse(item) for item in text.split(",") if item]
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="skiff kubelet", description="Run simulated kubelets (nodes).")
    parser.add_argument("--kubeconfig", type=Path, help="credentials for the API server")
    parser.add_argument("--kubeconfig-dir", type=Path, help="per-node kubeconfigs: node-<name>.kubeconfig")
    parser.add_argument("--data-dir", type=Path, required=True, help="node state under DATA/kubelet/<node>/")
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--node-name", help="run one node with this name")
    who.add_argument("--nodes", type=int, help="run this many nodes, named <prefix><index>")
    parser.add_argument("--node-prefix", default="sim-", help="name prefix with --nodes")
    parser.add_argument("--first-node-index", type=int, default=1, help="index of the first node (address, CIDR)")
    parser.add_argument("--node-ip", default="", help="InternalIP (one node only); default 127.0.10.<index>")
    parser.add_argument("--kubelet-port", type=int, default=10250)
    parser.add_argument(
        "--pod-cidr",
        default=POD_CIDR_AUTO,
        help="CIDR to use until the Node has spec.podCIDR: a CIDR, 'auto' (10.244.<index>.0/24) or 'none' (wait)",
    )
    parser.add_argument("--register-pod-cidr", action="store_true", help="write that CIDR into spec.podCIDR")
    parser.add_argument("--cpu", default="4")
    parser.add_argument("--memory", default="8Gi")
    parser.add_argument("--max-pods", type=int, default=110)
    parser.add_argument("--ephemeral-storage", default="100Gi")
    parser.add_argument("--zone", default="", help="topology.kubernetes.io/zone label")
    parser.add_argument("--node-labels", type=_key_values, default={}, help="k=v,k2=v2")
    parser.add_argument("--register-with-taints", type=_taints, default=[], help="key=value:Effect,...")
    parser.add_argument("--node-status-update-frequency", type=_duration, default=10.0)
    parser.add_argument("--node-status-report-frequency", type=_duration, default=60.0)
    parser.add_argument("--node-lease-duration-seconds", type=int, default=40)
    parser.add_argument("--node-lease-renew-interval", type=_duration, default=10.0)
    parser.add_argument("--backoff-base", type=_duration, default=10.0, help="CrashLoop/ImagePull backoff start")
    parser.add_argument("--backoff-max", type=_duration, default=300.0)
    parser.add_argument("--image-pull-duration", type=_duration, default=0.5)
    parser.add_argument(
        "--fail-image-pattern", action="append", default=None, help="images that fail to pull (glob, repeatable)"
    )
    parser.add_argument("--volume-refresh-period", type=_duration, default=5.0)
    parser.add_argument("--workers", type=int, default=16, help="concurrent pod syncs per node")
    parser.add_argument("--tls-cert-file", type=Path)
    parser.add_argument("--tls-private-key-file", type=Path)
    parser.add_argument("--client-ca-file", type=Path, help="CA for client certificates; default: kubeconfig's")
    parser.add_argument("--log-level", default="info")
    return parser


def node_configs(args: argparse.Namespace) -> list[NodeConfig]:
    if args.node_name:
        names = [(args.node_name, args.first_node_index)]
    else:
        names = [
            (f"{args.node_prefix}{i}", i) for i in range(args.first_node_index, args.first_node_index + args.nodes)
        ]
    return [
        NodeConfig(
            name=name,
            index=index,
            address=args.node_ip or node_address(index),
            pod_cidr=args.pod_cidr,
            register_pod_cidr=args.register_pod_cidr,
            cpu=args.cpu,
            memory=args.memory,
            pods=args.max_pods,
            ephemeral_storage=args.ephemeral_storage,
            zone=args.zone,
            labels=dict(args.node_labels),
            taints=list(args.register_with_taints),
        )
        for name, index in names
    ]


def kubelet_config(args: argparse.Namespace) -> KubeletConfig:
    return KubeletConfig(
        data_dir=args.data_dir,
        kubelet_port=args.kubelet_port,
        node_status_update_frequency=args.node_status_update_frequency,
        node_status_report_frequency=args.node_status_report_frequency,
        node_lease_duration_seconds=args.node_lease_duration_seconds,
        node_lease_renew_interval=args.node_lease_renew_interval,
        backoff_base=args.backoff_base,
        backoff_max=args.backoff_max,
        image_pull_duration=args.image_pull_duration,
        fail_image_patterns=tuple(args.fail_image_pattern or DEFAULT_FAIL_IMAGE_PATTERNS),
        volume_refresh_period=args.volume_refresh_period,
        workers=args.workers,
        tls_cert_file=args.tls_cert_file,
        tls_key_file=args.tls_private_key_file,
        client_ca_file=args.client_ca_file,
    )


def client_config_for(args: argparse.Namespace, node: str) -> ClientConfig:
    if args.kubeconfig_dir is not None:
        path = args.kubeconfig_dir / f"node-{node}.kubeconfig"
        if path.exists():
            return load_kubeconfig(str(path))
    if args.kubeconfig is None:
        raise SystemExit(f"skiff kubelet: no kubeconfig for node {node} (--kubeconfig or --kubeconfig-dir)")
    return load_kubeconfig(str(args.kubeconfig))


class KubeletProcess:
    """Every node of this process and what they share."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.config = kubelet_config(args)
        self.nodes = node_configs(args)
        self.clients = {
            n.name: AsyncClient(client_config_for(args, n.name), user_agent=default_user_agent("kubelet"))
            for n in self.nodes
        }
        first = self.clients[self.nodes[0].name]
        single = len(self.nodes) == 1
        selector = f"spec.nodeName={self.nodes[0].name}" if single else "spec.nodeName!="
        self.pods = Informer(first, PODS, field_selector=selector)  # type: ignore[arg-type]
        self.pods.add_indexer(NODE_NAME_INDEX, index_by_field("spec.nodeName"))
        node_selector = f"metadata.name={self.nodes[0].name}" if single else None
        self.node_informer = Informer(first, NODES, field_selector=node_selector)  # type: ignore[arg-type]
        self.kubelets = {n.name: NodeKubelet(n, self.config, self.clients[n.name], self.pods) for n in self.nodes}
        self.pods.add_event_handler(self._pod_changed, lambda _old, new: self._pod_changed(new), self._pod_deleted)
        self.node_informer.add_event_handler(self._node_changed, lambda _old, new: self._node_changed(new))
        self.server = KubeletServer(
            {n.address: self.kubelets[n.name].workers for n in self.nodes}, self.config.kubelet_port, self._tls()
        )

    def _tls(self) -> Any:
        config = self.config
        if config.tls_cert_file and config.tls_key_file:
            cert, key = config.tls_cert_file, config.tls_key_file
        else:
            first = self.nodes[0].name
            cert, key = tls.ensure_serving_cert(config.node_dir(first) / "pki", first, [n.address for n in self.nodes])
        client = self.clients[self.nodes[0].name].config
        ca_file = str(config.client_ca_file) if config.client_ca_file else client.ca_file
        ca_data = None if config.client_ca_file else client.ca_data
        return tls.server_context(cert, key, ca_data, ca_file)

    def _route(self, pod: dict[str, Any]) -> None:
        kubelet = self.kubelets.get((pod.get("spec") or {}).get("nodeName") or "")
        if kubelet is not None:
            metadata = pod.get("metadata") or {}
            kubelet.workers.enqueue(make_key(metadata.get("namespace"), metadata.get("name", "")))

    def _pod_changed(self, pod: dict[str, Any]) -> None:
        self._route(pod)

    def _pod_deleted(self, pod: Any) -> None:
        self._route(final_state(pod))

    def _node_changed(self, node: dict[str, Any]) -> None:
        kubelet = self.kubelets.get((node.get("metadata") or {}).get("name") or "")
        if kubelet is not None:
            kubelet.agent.observe(node)

    async def run(self) -> None:
        await self.server.start()
        self.pods.start()
        self.node_informer.start()
        runs = [asyncio.create_task(k.run(), name=f"kubelet {name}") for name, k in self.kubelets.items()]
        try:
            await asyncio.gather(*runs)
        finally:
            for task in runs:
                task.cancel()
            await asyncio.gather(*runs, return_exceptions=True)
            await self.pods.stop()
            await self.node_informer.stop()
            await self.server.close()
            for client in self.clients.values():
                await client.aclose()


async def run(args: argparse.Namespace) -> None:
    process = KubeletProcess(args)
    main_task = asyncio.create_task(process.run())
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, main_task.cancel)
    # A stopped kubelet leaves its containers as they are (the runtime's state is on disk), as a real
    # one does; it only stops renewing its lease.
    with contextlib.suppress(asyncio.CancelledError):
        await main_task


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.nodes is not None and args.nodes < 1:
        raise SystemExit("skiff kubelet: --nodes must be at least 1")
    if args.node_ip and args.nodes not in (None, 1):
        raise SystemExit("skiff kubelet: --node-ip needs a single node")
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # One line per API request would drown what the kubelet itself has to say.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
