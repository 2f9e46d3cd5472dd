"""`skiff netpol check <src> <dst> <port>`: would NetworkPolicies let this connection through, and why.

SRC and DST are pods (NAME or NS/NAME) or IP addresses (an address outside the cluster has no policies
of its own). The answer comes from the proxy's policy engine (`skiff.net.netpol`), the one its filter
rules are rendered from.
"""

from __future__ import annotations

import argparse
import sys

from skiff.cli.trace import cluster_or_exit, fail
from skiff.net.netpol import PolicyEngine, Verdict, named_ports
from skiff.net.state import ClusterState, pod_ip
from skiff.net.trace import TraceError, find_pod


def _address(state: ClusterState, reference: str, namespace: str) -> tuple[str, str]:
    """(IP, description) of a pod reference or a bare address."""
    try:
        key = find_pod(state, reference, namespace)
    except TraceError:
        if reference.count(".") == 3 and all(p.isdigit() for p in reference.split(".")):
            return reference, reference
        raise
    ip = pod_ip(state.pods[key])
    if not ip:
        raise TraceError(f"pod {key} has no IP yet")
    return ip, f"pod {key}"


def check(state: ClusterState, source: str, destination: str, port: str, protocol: str, namespace: str) -> Verdict:
    source_ip, _ = _address(state, source, namespace)
    destination_ip, _ = _address(state, destination, namespace)
    protocol = protocol.upper()
    if port.isdigit():
        number = int(port)
    else:
        pod = state.pod_by_ip(destination_ip)
        found = named_ports(pod, port, protocol) if pod else []
        if not found:
            raise TraceError(f"{destination} has no {protocol} port named {port!r}")
        number = found[0]
    return PolicyEngine(state).evaluate(source_ip, destination_ip, number, protocol)


def format_verdict(verdict: Verdict, source: str, destination: str) -> str:
    word = "ALLOWED" if verdict.allowed else "DENIED"
    lines = [f"{word}  {source} -> {destination} ({verdict.destination}:{verdict.port}/{verdict.protocol})"]
    for side in (verdict.egress, verdict.ingress):
        who = f" ({side.pod})" if side.pod else ""
        state = "allowed" if side.allowed else "denied"
        lines.append(f"  {side.direction.lower():<7}{who}: {state} - {side.reason}")
    if verdict.deciding:
        lines.append(f"  decided by: {', '.join(verdict.deciding)}")
    else:
        lines.append("  decided by: no NetworkPolicy applies (pods are not isolated by default)")
    return "\n".join(lines) + "\n"


def print_rich(text: str, allowed: bool) -> None:
    from rich.console import Console

    console = Console()
    head, _, rest = text.partition("\n")
    style = "bold green" if allowed else "bold red"
    console.print(head, style=style, highlight=False)
    console.print(rest.rstrip("\n"), highlight=False)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="skiff netpol", description="NetworkPolicy tools.")
    commands = parser.add_subparsers(dest="command", required=True)
    checker = commands.add_parser("check", help="the verdict for one connection, and why")
    checker.add_argument("source", help="pod (NAME, NS/NAME) or IP")
    checker.add_argument("destination", help="pod (NAME, NS/NAME) or IP")
    checker.add_argument("port", help="destination port: a number, or a named container port of the destination")
    checker.add_argument("--protocol", default="TCP", choices=["TCP", "UDP", "SCTP", "tcp", "udp", "sctp"])
    checker.add_argument("-n", "--namespace", default="default")
    checker.add_argument("--kubeconfig")
    args = parser.parse_args(argv)
    state = cluster_or_exit(args.kubeconfig)
    try:
        verdict = check(state, args.source, args.destination, args.port, args.protocol, args.namespace)
    except TraceError as error:
        fail(str(error))
        return
    text = format_verdict(verdict, args.source, args.destination)
    if sys.stdout.isatty():
        print_rich(text, verdict.allowed)
    else:
        print(text, end="")
    sys.exit(0 if verdict.allowed else 3)
