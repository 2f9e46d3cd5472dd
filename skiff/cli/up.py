"""`skiff up`, `skiff down`, `skiff status`: a local cluster from one command.

`skiff up` creates the cluster's PKI and one identity per component, then runs every component as its
own supervised process (restarted with backoff when it exits; logs under DATA/logs/): the API server,
the controller-manager, the scheduler, the cluster DNS server, and per node a kubelet and a proxy. It
waits until every node is Ready, shows a live status and stays in the foreground until Ctrl-C, which
stops every process it started. With `--detach` it returns once the cluster is Ready; `skiff down`
stops it and `skiff status` shows it. Components are started by module entry point, never imported.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import yaml

from skiff.cli.supervisor import ProcessSpec, Supervisor

STATE_FILE = "cluster.json"
NODE_PREFIX = "skiff-node-"
# Up to this many nodes, each node gets its own kubelet and proxy processes (stopping one is like losing
# a machine); beyond it one kubelet process and one proxy process serve all nodes, so that `--nodes 100`
# costs two processes instead of two hundred.
PROCESS_PER_NODE_LIMIT = 10
DNS_USER = "system:skiff-dns"
FIELD_MANAGER = "skiff-up"
# Addresses for `type: LoadBalancer` Services; only written to their status, nothing answers on them.
LOAD_BALANCER_POOL = "172.18.255.200-172.18.255.250"

log = logging.getLogger("skiff.up")


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "skiff"


def add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, default=default_data_dir(), help="cluster state and logs")


# ---------------------------------------------------------------------------------------------------
# What runs


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


# ---------------------------------------------------------------------------------------------------
# Identities and the add-on RBAC


def _kubeconfig_server(path: Path) -> str | None:
    with contextlib.suppress(OSError, yaml.YAMLError, AttributeError, TypeError):
        document = yaml.safe_load(path.read_text()) or {}
        for entry in document.get("clusters") or []:
            return str((entry.get("cluster") or {}).get("server"))
    return None


def issue_identities(args: argparse.Namespace) -> list[str]:
    """Create the cluster PKI if missing, then a kubeconfig under DATA/kubeconfigs/ for every component:
    the ones `skiff pki components` and `skiff pki node NAME` issue, and one for the DNS server. Existing
    kubeconfigs are kept unless they point at another address. Returns the names of those issued."""
    from skiff.cli import pki as pki_cli
    from skiff.pki import cluster as cluster_pki

    server = server_url(args)
    pki = cluster_pki.ensure_cluster_pki(args.data_dir, server)
    identities = [
        *pki_cli.COMPONENTS,
        pki_cli.Identity("dns", DNS_USER),
        *(pki_cli.node_identity(name) for name in node_names(args)),
    ]
    issued = []
    for identity in identities:
        path = kubeconfig_path(args, identity.file_name)
        if path.exists() and _kubeconfig_server(path) == server:
            continue
        pki_cli.issue(pki, identity, server)
        issued.append(identity.user)
    return issued


ADDONS_FILE = Path(__file__).with_name("addons.yaml")


def addon_rbac() -> list[dict[str, Any]]:
    """What the DNS server needs to read beyond kube's default roles, granted to its user only."""
    return [doc for doc in yaml.safe_load_all(ADDONS_FILE.read_text()) if doc]


def admin_client(data_dir: Path, timeout: float = 10.0) -> Any:
    from skiff.client.kubeconfig import load_kubeconfig
    from skiff.client.rest import Client

    return Client(load_kubeconfig(str(data_dir / "admin.kubeconfig")), timeout=timeout, user_agent="skiff-up")


def apply_addons(data_dir: Path) -> None:
    with admin_client(data_dir) as client:
        for obj in addon_rbac():
            ref = (obj["apiVersion"], obj["kind"])
            client.patch(ref, obj["metadata"]["name"], obj, patch_type="apply", field_manager=FIELD_MANAGER, force=True)
        ensure_default_storage_class(client)


# The default StorageClass: hostpath directories on the node that runs the pod (WaitForFirstConsumer, as
# kind's local-path class). Created once, and only while no class is marked default, so an administrator
# may replace it, change it or unmark it.
DEFAULT_STORAGE_CLASS: dict[str, Any] = {
    "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
    "metadata": {"name": "standard", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
                 "labels": {"app.kubernetes.io/managed-by": FIELD_MANAGER}},
    "provisioner": "skiff.dev/hostpath", "reclaimPolicy": "Delete", "volumeBindingMode": "WaitForFirstConsumer",
    "allowVolumeExpansion": True,
}  # fmt: skip


def ensure_default_storage_class(client: Any) -> None:
    classes = client.list(("storage.k8s.io/v1", "StorageClass")).get("items") or []
    if any(c.get("metadata", {}).get("name") == "standard" for c in classes):
        return
    marks = ("storageclass.kubernetes.io/is-default-class", "storageclass.beta.kubernetes.io/is-default-class")
    if any((c.get("metadata", {}).get("annotations") or {}).get(mark) == "true" for c in classes for mark in marks):
        return
    client.create(DEFAULT_STORAGE_CLASS)


# ---------------------------------------------------------------------------------------------------
# Readiness


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


def api_ready(data_dir: Path, server: str, timeout: float = 2.0) -> bool:
    ca = data_dir / "pki" / "ca.crt"
    if not ca.exists():
        return False
    with contextlib.suppress(httpx.HTTPError, OSError, ssl.SSLError):
        context = ssl.create_default_context(cafile=str(ca))
        return httpx.get(f"{server}/readyz", verify=context, timeout=timeout).status_code == 200
    return False


def node_conditions(data_dir: Path) -> dict[str, str]:
    """Each Node's Ready condition: `Ready`, `NotReady` or `Unknown`."""
    with admin_client(data_dir, timeout=5) as client:
        nodes = client.list(("v1", "Node")).get("items") or []
    states = {}
    for node in nodes:
        ready = "Unknown"
        for condition in (node.get("status") or {}).get("conditions") or []:
            if condition.get("type") == "Ready":
                ready = {"True": "Ready", "False": "NotReady"}.get(condition.get("status"), "Unknown")
        states[node["metadata"]["name"]] = ready
    return states


def try_node_conditions(data_dir: Path) -> dict[str, str] | None:
    try:
        return node_conditions(data_dir)
    except Exception:  # the API server is (re)starting: not an answer yet
        return None


async def wait_until(check: Callable[[], bool], timeout: float, stop: asyncio.Event, period: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not stop.is_set():
        if await asyncio.to_thread(check):
            return True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), period)
    return False


# ---------------------------------------------------------------------------------------------------
# State shared with `skiff status` / `skiff down` and with `up --detach`


def read_state(data_dir: Path) -> dict[str, Any] | None:
    with contextlib.suppress(FileNotFoundError, json.JSONDecodeError, OSError):
        state = json.loads((data_dir / STATE_FILE).read_text())
        return state if isinstance(state, dict) else None
    return None


def write_state(args: argparse.Namespace, supervisor: Supervisor, ready: bool) -> None:
    state = {
        "pid": os.getpid(),
        "server": server_url(args),
        "port": args.port,
        "dns": f"127.0.0.1:{args.dns_port}",
        "nodes": node_names(args),
        "ready": ready,
        "components": {
            name: {"pid": child.pid, "state": child.state, "restarts": child.restarts}
            for name, child in supervisor.children.items()
        },
    }
    path = args.data_dir / STATE_FILE
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(state, indent=1))
    temporary.replace(path)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running_state(data_dir: Path) -> dict[str, Any] | None:
    state = read_state(data_dir)
    if state is None or not alive(int(state.get("pid") or 0)):
        return None
    return state


# ---------------------------------------------------------------------------------------------------
# Output


def usage_lines(data_dir: Path) -> list[str]:
    kubeconfig = data_dir / "admin.kubeconfig"
    return [
        f"  kubeconfig: {kubeconfig}",
        f"  logs:       {data_dir / 'logs'}",
        "",
        "Point kubectl at it:",
        f"  export KUBECONFIG={kubeconfig}",
        "  kubectl get nodes",
    ]


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


def down(args: argparse.Namespace) -> int:
    state = running_state(args.data_dir)
    if state is None:
        print(f"No cluster is running from {args.data_dir}.")
        return 0
    pid = int(state["pid"])
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if alive(pid):
        os.kill(pid, signal.SIGKILL)
    # Whatever the supervisor could not stop (it was killed) goes with its process group.
    for component in (state.get("components") or {}).values():
        child_pid = component.get("pid") if isinstance(component, dict) else None
        if child_pid and alive(int(child_pid)):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(int(child_pid), signal.SIGKILL)
    with contextlib.suppress(FileNotFoundError):
        (args.data_dir / STATE_FILE).unlink()
    print("Skiff stopped.")
    return 0


def status(args: argparse.Namespace) -> int:
    state = running_state(args.data_dir)
    if state is None:
        print(f"No cluster is running from {args.data_dir}.")
        return 3
    server = str(state.get("server") or f"https://127.0.0.1:{state.get('port')}")
    ready = api_ready(args.data_dir, server)
    nodes = try_node_conditions(args.data_dir) if ready else None
    wanted = list(state.get("nodes") or [])
    nodes_ready = nodes is not None and all(nodes.get(name) == "Ready" for name in wanted)
    verdict = "Ready" if ready and nodes_ready else "NotReady"
    print(f"Skiff at {server}: {verdict} (supervisor pid {state['pid']})")
    print(f"\n{'COMPONENT':<28} {'PID':<8} {'STATE':<11} RESTARTS")
    for name, component in (state.get("components") or {}).items():
        pid = component.get("pid")
        shown = component.get("state", "?") if pid and alive(int(pid)) else "stopped"
        print(f"{name:<28} {pid or '-'!s:<8} {shown:<11} {component.get('restarts', 0)}")
    print(f"\n{'NODE':<28} STATUS")
    if nodes is None:
        print(f"{'(the API server does not answer)':<28}")
    else:
        for name in sorted(set(wanted) | set(nodes), key=lambda n: (len(n), n)):
            print(f"{name:<28} {nodes.get(name, 'Missing')}")
    print()
    print("\n".join(usage_lines(args.data_dir)))
    return 0 if verdict == "Ready" else 1


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


def main_down(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="skiff down", description="Stop a local Skiff cluster.")
    add_common(parser)
    args = parser.parse_args(argv)
    args.data_dir = args.data_dir.expanduser().resolve()
    sys.exit(down(args))


def main_status(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="skiff status", description="Show a local Skiff cluster.")
    add_common(parser)
    args = parser.parse_args(argv)
    args.data_dir = args.data_dir.expanduser().resolve()
    sys.exit(status(args))
