"""`skiff trace <src-pod> <dst>`: follow a connection from a pod through the proxy's rules to a pod.

The cluster is read from the API once; the trace comes from the proxy's own engine and renderers
(`skiff.net.trace`), so it shows the very rules the proxy writes for the node in the chosen mode.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from skiff.api.errors import ApiError
from skiff.api.kinds import BUILTINS
from skiff.client.kubeconfig import KubeconfigError, load_kubeconfig
from skiff.client.rest import Client
from skiff.net.modes import MODES
from skiff.net.state import KINDS, ClusterState
from skiff.net.trace import TraceError, TraceResult, chance, format_plain, trace

RESOURCES = {
    "Service": BUILTINS.by_kind("", "v1", "Service"),
    "EndpointSlice": BUILTINS.by_kind("discovery.k8s.io", "v1", "EndpointSlice"),
    "Node": BUILTINS.by_kind("", "v1", "Node"),
    "Pod": BUILTINS.by_kind("", "v1", "Pod"),
    "Namespace": BUILTINS.by_kind("", "v1", "Namespace"),
    "NetworkPolicy": BUILTINS.by_kind("networking.k8s.io", "v1", "NetworkPolicy"),
}


def load_state(kubeconfig: str | None) -> ClusterState:
    """One list of each kind the proxy watches."""
    state = ClusterState()
    with Client(load_kubeconfig(kubeconfig)) as client:
        for kind in KINDS:
            state.replace(kind, client.list_all(RESOURCES[kind]).get("items") or [])
    return state


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(1)


def cluster_or_exit(kubeconfig: str | None) -> ClusterState:
    try:
        return load_state(kubeconfig)
    except (KubeconfigError, ApiError, OSError) as error:
        fail(str(error))
        raise  # unreachable


def print_rich(result: TraceResult) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(
        f"[bold]trace[/] {result.source} → {result.destination}  [dim]({result.mode} mode, {result.protocol})[/]"
    )
    hops = Table(show_header=True, header_style="bold", expand=True)
    hops.add_column("#", justify="right", width=3)
    hops.add_column("hop", no_wrap=True)
    hops.add_column("what matched", overflow="fold")
    for number, hop in enumerate((h for h in result.hops if h.lines), 1):
        hops.add_row(str(number), hop.title, "\n".join(hop.lines))
    console.print(hops)
    if result.method:
        console.print(f"endpoint choice: [cyan]{result.method}[/]")
    if result.outcome:
        console.print(f"outcome: [yellow]{result.outcome}[/]")
    if not result.candidates:
        return
    table = Table(show_header=True, header_style="bold", expand=True)
    for column in ("endpoint", "pod", "node", "share", "rule", "egress", "ingress", "verdict"):
        table.add_column(column, overflow="fold")
    for c in result.candidates:
        v = c.verdict
        table.add_row(
            c.endpoint.address,
            c.pod or "-",
            c.node or "-",
            f"{c.share * 100:.1f}%",
            chance(c.how, result.mode) or c.how,
            ("[green]allowed[/] " if v.egress.allowed else "[red]denied[/] ") + v.egress.reason,
            ("[green]allowed[/] " if v.ingress.allowed else "[red]denied[/] ") + v.ingress.reason,
            "[green]allowed[/]" if v.allowed else "[red bold]denied[/]",
        )
    console.print(table)


def run(state: ClusterState, args: argparse.Namespace, rich: bool = False) -> str:
    options: dict[str, Any] = {"cluster_cidr": args.cluster_cidr, "scheduler": args.ipvs_scheduler}
    result = trace(
        state,
        args.source,
        args.destination,
        namespace=args.namespace,
        mode=args.mode,
        port=args.port,
        protocol=args.protocol,
        options=options,
    )
    if rich:
        print_rich(result)
        return ""
    return format_plain(result)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="skiff trace",
        description="Trace a connection from a pod: the rules that match on its node, the endpoint choice, "
        "and the NetworkPolicy verdict. DST is a pod, a pod IP, a Service, ClusterIP:port, NodeIP:NodePort "
        "or a load-balancer address.",
    )
    parser.add_argument("source", help="source pod: NAME, NS/NAME or its IP")
    parser.add_argument("destination", help="pod, pod IP, Service, IP:port")
    parser.add_argument("-n", "--namespace", default="default")
    parser.add_argument("--mode", choices=MODES, default="iptables", help="the proxy mode whose rules to show")
    parser.add_argument("--port", help="Service port (name or number) or pod port, when DST does not say")
    parser.add_argument("--protocol", default="TCP", choices=["TCP", "UDP", "SCTP", "tcp", "udp", "sctp"])
    parser.add_argument("--kubeconfig")
    parser.add_argument("--cluster-cidr", default="10.244.0.0/16")
    parser.add_argument("--ipvs-scheduler", default="rr")
    return parser


def main(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    state = cluster_or_exit(args.kubeconfig)
    try:
        text = run(state, args, rich=sys.stdout.isatty())
    except TraceError as error:
        fail(str(error))
    print(text, end="")
