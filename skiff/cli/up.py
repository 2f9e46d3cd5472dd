"""`skiff up`: a local cluster from one command.

`skiff up` creates the cluster's PKI and one identity per component, then runs every component as its
own supervised process (restarted with backoff when it exits; logs under DATA/logs/): the API server,
the controller-manager, the scheduler, the cluster DNS server, and per node a kubelet and a proxy. It
waits until every node is Ready, shows a live status and stays in the foreground until Ctrl-C, which
stops every process it started. With `--detach` it returns once the cluster is Ready; `skiff down`
stops it and `skiff status` shows it (`skiff.cli.local.status`). Components are started by module
entry point, never imported; what runs, and as whom, is in `skiff.cli.local`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from skiff.cli.local.identities import apply_addons, issue_identities
from skiff.cli.local.specs import (
    PROCESS_PER_NODE_LIMIT,
    component_specs,
    controller_manager_spec,
    dns_spec,
    node_address,
    node_names,
    node_specs,
    scheduler_spec,
    server_url,
)
from skiff.cli.local.state import (
    STATE_FILE,
    add_common,
    api_ready,
    read_state,
    running_state,
    try_node_conditions,
    usage_lines,
    write_state,
)
from skiff.cli.supervisor import Supervisor

log = logging.getLogger("skiff.up")


# ---------------------------------------------------------------------------------------------------
# Ports and waiting


def port_free(bind: str, port: int, kind: int = socket.SOCK_STREAM) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in bind else socket.AF_INET, kind) as sock:
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((bind, port))
        except OSError:
            return False
    return True


def busy_ports(args: argparse.Namespace) -> list[str]:
    """Every address a component would listen on and cannot, so that `up` fails with a clear message
    instead of a component crash-looping."""
    wanted: list[tuple[str, int, int, str]] = [(args.bind, args.port, socket.SOCK_STREAM, "--port")]
    wanted += [("127.0.0.1", args.dns_port, kind, "--dns-port") for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM)]
    wanted += [
        (node_address(i), args.kubelet_port, socket.SOCK_STREAM, "--kubelet-port") for i in range(1, args.nodes + 1)
    ]
    busy = []
    for bind, port, kind, flag in wanted:
        if not port_free(bind, port, kind):
            busy.append(f"{bind}:{port}/{'udp' if kind == socket.SOCK_DGRAM else 'tcp'} ({flag})")
    return busy


async def wait_until(check: Callable[[], bool], timeout: float, stop: asyncio.Event, period: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not stop.is_set():
        if await asyncio.to_thread(check):
            return True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), period)
    return False


# ---------------------------------------------------------------------------------------------------
# Output


def print_banner(args: argparse.Namespace, elapsed: float) -> None:
    print(f"Skiff is up in {elapsed:.1f}s: {server_url(args)}, {args.nodes} nodes Ready")
    print(f"  dns:        127.0.0.1:{args.dns_port}")
    print("\n".join(usage_lines(args.data_dir)))
    sys.stdout.flush()


def status_view(args: argparse.Namespace, supervisor: Supervisor, nodes: dict[str, str] | None) -> Any:
    """The live status: components, nodes and how to reach the cluster."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    components = Table(title="Components", title_justify="left", expand=False)
    for column in ("NAME", "PID", "STATE", "RESTARTS"):
        components.add_column(column)
    for name, child in supervisor.children.items():
        style = {"running": "green", "restarting": "yellow"}.get(child.state, "red")
        components.add_row(name, str(child.pid or "-"), Text(child.state, style=style), str(child.restarts))
    node_table = Table(title="Nodes", title_justify="left", expand=False)
    node_table.add_column("NAME")
    node_table.add_column("STATUS")
    wanted = node_names(args)
    shown = wanted if len(wanted) <= 12 else wanted[:10]
    for name in shown:
        state = "?" if nodes is None else nodes.get(name, "Missing")
        node_table.add_row(name, Text(state, style="green" if state == "Ready" else "yellow"))
    if len(shown) < len(wanted):
        ready = sum(1 for name in wanted if nodes and nodes.get(name) == "Ready")
        node_table.add_row(f"... {len(wanted) - len(shown)} more", f"{ready}/{len(wanted)} Ready in all")
    footer = Text("\n".join([f"Skiff at {server_url(args)}", *usage_lines(args.data_dir), "", "Ctrl-C stops it."]))
    return Group(components, node_table, footer)


# ---------------------------------------------------------------------------------------------------
# up


def configure_logging(args: argparse.Namespace, interactive: bool) -> None:
    """Supervisor messages go to the terminal, or to DATA/logs/up.log under the live view."""
    (args.data_dir / "logs").mkdir(parents=True, exist_ok=True)
    if interactive:
        handler: logging.Handler = logging.FileHandler(args.data_dir / "logs" / "up.log")
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("skiff")
    root.addHandler(handler)
    root.setLevel(logging.INFO)


async def run_foreground(args: argparse.Namespace) -> int:
    started = time.monotonic()
    args.data_dir.mkdir(parents=True, exist_ok=True)
    interactive = sys.stdout.isatty() and not args.quiet
    configure_logging(args, interactive)
    running = running_state(args.data_dir)
    if running is not None:
        print(f"skiff up: a cluster is already running from {args.data_dir} (pid {running['pid']})", file=sys.stderr)
        return 1
    busy = busy_ports(args)
    if busy:
        print(f"skiff up: in use: {', '.join(busy)} (another cluster? pick other ports)", file=sys.stderr)
        return 1
    if not args.quiet:
        print(f"Starting Skiff in {args.data_dir} with {args.nodes} nodes ...", flush=True)
    issued = await asyncio.to_thread(issue_identities, args)
    if issued:
        log.info("issued identities for %s", ", ".join(issued[:5]) + (" ..." if len(issued) > 5 else ""))

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    ready = False
    supervisor = Supervisor(args.data_dir / "logs", on_change=lambda _child: write_state(args, supervisor, ready))
    server = server_url(args)
    try:
        for spec in component_specs(args):
            await supervisor.start(spec)
        if not await wait_until(lambda: api_ready(args.data_dir, server), args.timeout, stop, 0.1):
            return fail_start(args, stop, "the API server did not become ready")
        await asyncio.to_thread(apply_addons, args.data_dir)
        for spec in [controller_manager_spec(args), scheduler_spec(args), dns_spec(args), *node_specs(args)]:
            await supervisor.start(spec)
        wanted = set(node_names(args))

        def all_ready() -> bool:
            nodes = try_node_conditions(args.data_dir)
            return nodes is not None and all(nodes.get(name) == "Ready" for name in wanted)

        remaining = max(args.timeout - (time.monotonic() - started), 1.0)
        if not await wait_until(all_ready, remaining, stop, 0.25):
            return fail_start(args, stop, f"the nodes did not all become Ready within {args.timeout:.0f}s")
        ready = True
        write_state(args, supervisor, ready)
        if interactive:
            await live_status(args, supervisor, stop)
        else:
            if not args.quiet:
                print_banner(args, time.monotonic() - started)
                print("\nPress Ctrl-C to stop the cluster.", flush=True)
            await stop.wait()
    finally:
        if not args.quiet:
            print("Stopping Skiff ...", flush=True)
        await supervisor.stop()
        with contextlib.suppress(FileNotFoundError):
            (args.data_dir / STATE_FILE).unlink()
    if not args.quiet:
        print("Skiff stopped.")
    return 0


def fail_start(args: argparse.Namespace, stop: asyncio.Event, reason: str) -> int:
    if stop.is_set():
        return 130
    print(f"skiff up: {reason}; see the logs in {args.data_dir / 'logs'}", file=sys.stderr)
    return 1


async def live_status(args: argparse.Namespace, supervisor: Supervisor, stop: asyncio.Event) -> None:
    from rich.live import Live

    nodes = await asyncio.to_thread(try_node_conditions, args.data_dir)
    with Live(status_view(args, supervisor, nodes), refresh_per_second=2, screen=False) as live:
        polled = time.monotonic()
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
            if time.monotonic() - polled >= 2.0:
                nodes = await asyncio.to_thread(try_node_conditions, args.data_dir)
                polled = time.monotonic()
            live.update(status_view(args, supervisor, nodes))


def forwarded_flags(args: argparse.Namespace) -> list[str]:
    flags = ["--data-dir", str(args.data_dir), "--port", str(args.port), "--bind", args.bind,
             "--nodes", str(args.nodes), "--kubelet-port", str(args.kubelet_port), "--dns-port", str(args.dns_port),
             "--proxy-mode", args.proxy_mode, "--timeout", str(args.timeout)]  # fmt: skip
    if args.database:
        flags += ["--database", args.database]
    return flags


def run_detached(args: argparse.Namespace) -> int:
    """Start the supervisor in the background and return once every node is Ready."""
    started = time.monotonic()
    args.data_dir.mkdir(parents=True, exist_ok=True)
    (args.data_dir / "logs").mkdir(exist_ok=True)
    running = running_state(args.data_dir)
    if running is not None:
        print(f"skiff up: a cluster is already running from {args.data_dir} (pid {running['pid']})", file=sys.stderr)
        return 1
    command = [sys.executable, "-m", "skiff", "up", *forwarded_flags(args), "--quiet"]
    log_path = args.data_dir / "logs" / "up.log"
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
        )
    deadline = time.monotonic() + args.timeout + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-5:]
            print("skiff up: the cluster failed to start:\n  " + "\n  ".join(tail), file=sys.stderr)
            return 1
        state = read_state(args.data_dir)
        if state and state.get("pid") == process.pid and state.get("ready"):
            print_banner(args, time.monotonic() - started)
            print(f"\nStop it with: skiff down --data-dir {args.data_dir}")
            return 0
        time.sleep(0.1)
    process.terminate()
    print(f"skiff up: the cluster did not become ready in time; see {args.data_dir / 'logs'}", file=sys.stderr)
    return 1


# ---------------------------------------------------------------------------------------------------
# down and status

# ---------------------------------------------------------------------------------------------------
# Entry points


def up_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="skiff up", description="Start a local Skiff cluster.")
    add_common(parser)
    parser.add_argument("--port", type=int, default=6443, help="the API server's HTTPS port")
    parser.add_argument("--bind", default="127.0.0.1", help="the API server's address")
    parser.add_argument("--database", default="", help="PostgreSQL URL; default: SQLite in the data dir")
    parser.add_argument("--detach", action="store_true", help="return once the cluster is ready")
    parser.add_argument("--nodes", type=int, default=3,
                        help=f"simulated nodes (a kubelet and a proxy process each up to {PROCESS_PER_NODE_LIMIT}, "
                        "one of each for all nodes beyond)")  # fmt: skip
    parser.add_argument("--kubelet-port", type=int, default=10250, help="kubelet HTTPS port on each node's address")
    parser.add_argument("--dns-port", type=int, default=10053, help="cluster DNS port on 127.0.0.1 (UDP and TCP)")
    parser.add_argument("--proxy-mode", choices=["iptables", "ipvs", "nftables"], default="iptables")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for every node to be Ready")
    parser.add_argument("--quiet", action="store_true", help=argparse.SUPPRESS)
    return parser


def main_up(argv: list[str]) -> None:
    args = up_parser().parse_args(argv)
    if args.nodes < 0:
        raise SystemExit("skiff up: --nodes must not be negative")
    args.data_dir = args.data_dir.expanduser().resolve()
    if args.detach:
        sys.exit(run_detached(args))
    sys.exit(asyncio.run(run_foreground(args)))
