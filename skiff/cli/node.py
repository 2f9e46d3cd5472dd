"""`skiff node`: one machine of a cluster, a kubelet and a proxy under one supervisor.

    skiff node --node-name node-1 --data-dir /var/lib/skiff --kubeconfig-dir /etc/skiff/kubeconfigs \\
               --node-ip 172.31.250.21

This is what each node container of the docker-compose topology runs. The kubelet acts as
`system:node:<name>` (KUBECONFIG_DIR/node-<name>.kubeconfig, written by `skiff pki node`) and the proxy
as `system:kube-proxy` (KUBECONFIG_DIR/proxy.kubeconfig, written by `skiff pki components`). Both are
restarted with backoff when they exit; SIGTERM or Ctrl-C stops both. Their output goes to this
process's output (what `docker compose logs` shows) unless --log-dir is given.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import socket
import sys
from pathlib import Path

from skiff.cli.supervisor import ProcessSpec, Supervisor

log = logging.getLogger("skiff.node")


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="skiff node", description="Run one node: a kubelet and a proxy.")
    parser.add_argument("--node-name", required=True, help="the Node's name")
    parser.add_argument("--data-dir", type=Path, required=True, help="node state: DATA/kubelet/, DATA/proxy/")
    parser.add_argument("--kubeconfig-dir", type=Path, default=None,
                        help="holds node-<name>.kubeconfig and proxy.kubeconfig (DATA/kubeconfigs)")  # fmt: skip
    parser.add_argument("--kubeconfig", type=Path, default=None, help="the kubelet's kubeconfig")
    parser.add_argument(
        "--proxy-kubeconfig", type=Path, default=None, help="the proxy's kubeconfig (overrides the dir)"
    )
    parser.add_argument("--node-index", type=int, default=1, help="picks the default address and pod CIDR")
    parser.add_argument("--node-ip", default="",
                        help="the node's InternalIP, as an address or a host name to resolve "
                        "(default: the kubelet's, 127.0.10.<index>)")  # fmt: skip
    parser.add_argument("--kubelet-port", type=int, default=10250)
    parser.add_argument("--proxy-mode", choices=["iptables", "ipvs", "nftables"], default="iptables")
    parser.add_argument("--proxy-metrics-port", type=int, default=10249,
                        help="the proxy's /metrics and /tables on the node's address (0: off)")  # fmt: skip
    parser.add_argument("--network-policies", choices=["true", "false"], default="true",
                        help="render NetworkPolicy rules (the proxy's identity must read pods, namespaces and "
                        "policies: see skiff/cli/addons.yaml)")  # fmt: skip
    parser.add_argument("--log-dir", type=Path, default=None, help="write each component's log file here")
    return parser


def resolve(address: str) -> str:
    """An IPv4 address for a host name (a container's own service name, say), or the address itself."""
    try:
        return socket.gethostbyname(address)
    except OSError as error:
        raise SystemExit(f"skiff node: cannot resolve --node-ip {address!r}: {error}") from error


def specs(args: argparse.Namespace) -> list[ProcessSpec]:
    kubeconfigs = args.kubeconfig_dir or args.data_dir / "kubeconfigs"
    kubelet_config = args.kubeconfig or kubeconfigs / f"node-{args.node_name}.kubeconfig"
    proxy_config = args.proxy_kubeconfig or kubeconfigs / "proxy.kubeconfig"
    kubelet = ["kubelet", "--kubeconfig", str(kubelet_config), "--node-name", args.node_name,
               "--first-node-index", str(args.node_index), "--data-dir", str(args.data_dir),
               "--kubelet-port", str(args.kubelet_port)]  # fmt: skip
    node_ip = resolve(args.node_ip) if args.node_ip else ""
    if node_ip:
        kubelet += ["--node-ip", node_ip]
    proxy = ["proxy", "--kubeconfig", str(proxy_config), "--node-name", args.node_name, "--mode", args.proxy_mode,
             "--data-dir", str(args.data_dir), "--metrics-port", str(args.proxy_metrics_port),
             "--metrics-bind-address", node_ip or "127.0.0.1", "--network-policies", args.network_policies]  # fmt: skip
    return [ProcessSpec("kubelet", "skiff", kubelet), ProcessSpec("proxy", "skiff", proxy)]


async def run(args: argparse.Namespace) -> int:
    supervisor = Supervisor(args.log_dir)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        for spec in specs(args):
            await supervisor.start(spec)
        log.info("node %s: kubelet pid %s, proxy pid %s", args.node_name,
                 supervisor.children["kubelet"].pid, supervisor.children["proxy"].pid)  # fmt: skip
        await stop.wait()
    finally:
        await supervisor.stop()
    return 0


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.exit(asyncio.run(run(args)))
