"""What `skiff up` runs: one process spec per component, each started by module entry point and acting
with its own identity (the kubeconfigs `identities` issues)."""

from __future__ import annotations

import argparse
from pathlib import Path

from skiff.cli.supervisor import ProcessSpec

NODE_PREFIX = "skiff-node-"
# Up to this many nodes, each node gets its own kubelet and proxy processes (stopping one is like losing
# a machine); beyond it one kubelet process and one proxy process serve all nodes, so that `--nodes 100`
# costs two processes instead of two hundred.
PROCESS_PER_NODE_LIMIT = 10
DNS_USER = "system:skiff-dns"
# Addresses for `type: LoadBalancer` Services; only written to their status, nothing answers on them.
LOAD_BALANCER_POOL = "172.18.255.200-172.18.255.250"


def server_url(args: argparse.Namespace) -> str:
    host = "127.0.0.1" if args.bind in ("0.0.0.0", "::", "") else args.bind
    return f"https://{host}:{args.port}"


def kubeconfig_path(args: argparse.Namespace, name: str) -> Path:
    return args.data_dir / "kubeconfigs" / f"{name}.kubeconfig"


def component_specs(args: argparse.Namespace) -> list[ProcessSpec]:
    """The API server: the one process that touches the database."""
    data_dir = str(args.data_dir)
    apiserver = ["--data-dir", data_dir, "--port", str(args.port), "--bind", args.bind]
    if args.database:
        apiserver += ["--database", args.database]
    return [ProcessSpec("apiserver", "apiserver", apiserver)]


def controller_manager_spec(args: argparse.Namespace) -> ProcessSpec:
    """The controller-manager as `system:kube-controller-manager` (the kubeconfig `skiff pki components`
    writes), signing CSRs with the cluster CA and service-account tokens with the cluster's key."""
    pki = args.data_dir / "pki"
    flags = ["controller-manager", "--kubeconfig", str(kubeconfig_path(args, "controller-manager")),
             "--cluster-signing-cert-file", str(pki / "ca.crt"), "--cluster-signing-key-file", str(pki / "ca.key"),
             "--service-account-private-key-file", str(pki / "sa.key"),
             "--load-balancer-ip-pool", LOAD_BALANCER_POOL, "--volume-data-dir", str(args.data_dir)]  # fmt: skip
    return ProcessSpec("controller-manager", "skiff", flags)


def scheduler_spec(args: argparse.Namespace) -> ProcessSpec:
    """The scheduler, as system:kube-scheduler (its `skiff pki components` kubeconfig)."""
    return ProcessSpec("scheduler", "skiff", ["scheduler", "--kubeconfig", str(kubeconfig_path(args, "scheduler"))])


def dns_spec(args: argparse.Namespace) -> ProcessSpec:
    """Cluster DNS as `system:skiff-dns`, which may only list and watch what it answers from."""
    flags = ["dns", "--kubeconfig", str(kubeconfig_path(args, "dns")), "--bind", "127.0.0.1",
             "--port", str(args.dns_port)]  # fmt: skip
    return ProcessSpec("dns", "skiff", flags)


def node_name(index: int) -> str:
    return f"{NODE_PREFIX}{index}"


def node_names(args: argparse.Namespace) -> list[str]:
    return [node_name(index) for index in range(1, args.nodes + 1)]


def node_address(index: int) -> str:
    """The kubelet's default InternalIP for a node index (see kubelet_sim/README.md)."""
    return f"127.0.10.{index}"


def node_specs(args: argparse.Namespace) -> list[ProcessSpec]:
    """The kubelets and proxies. Each node acts as `system:node:<name>` with the kubeconfig `skiff pki
    node` wrote, each proxy as `system:kube-proxy`; proxy tables land under DATA/proxy/<node>/ (see
    `skiff routes`). One process of each per node, or one of each for all nodes past the limit."""
    data_dir, kubeconfigs = str(args.data_dir), str(args.data_dir / "kubeconfigs")
    proxy_common = ["--kubeconfig", str(kubeconfig_path(args, "proxy")), "--mode", args.proxy_mode,
                    "--data-dir", data_dir, "--metrics-port", "0"]  # fmt: skip
    kubelet_common = ["--data-dir", data_dir, "--kubeconfig-dir", kubeconfigs, "--kubelet-port", str(args.kubelet_port)]
    if args.nodes > PROCESS_PER_NODE_LIMIT:
        many = ["--nodes", str(args.nodes), "--node-prefix", NODE_PREFIX, "--first-node-index", "1"]
        return [
            ProcessSpec("kubelet", "skiff", ["kubelet", *many, *kubelet_common]),
            ProcessSpec("proxy", "skiff", ["proxy", *many, *proxy_common]),
        ]
    specs = []
    for index in range(1, args.nodes + 1):
        name = node_name(index)
        kubelet = ["kubelet", "--node-name", name, "--first-node-index", str(index), *kubelet_common]
        specs.append(ProcessSpec(f"kubelet-{name}", "skiff", kubelet))
        specs.append(ProcessSpec(f"proxy-{name}", "skiff", ["proxy", "--node-name", name, *proxy_common]))
    return specs
