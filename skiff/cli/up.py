"""`skiff up`, `skiff down`, `skiff status`: a local cluster from one command."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx

from skiff.cli.supervisor import ProcessSpec, Supervisor

STATE_FILE = "cluster.json"


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "skiff"


def add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, default=default_data_dir(), help="cluster state and logs")


def component_specs(args: argparse.Namespace) -> list[ProcessSpec]:
    data_dir = str(args.data_dir)
    apiserver = ["--data-dir", data_dir, "--port", str(args.port), "--bind", args.bind]
    if args.database:
        apiserver += ["--database", args.database]
    return [ProcessSpec("apiserver", "apiserver", apiserver)]


def controller_manager_spec(args: argparse.Namespace) -> ProcessSpec:
    """The controller-manager as `system:kube-controller-manager` (the kubeconfig `skiff pki components`
    writes), signing CSRs with the cluster CA and service-account tokens with the cluster's key."""
    pki, kubeconfigs = args.data_dir / "pki", args.data_dir / "kubeconfigs"
    flags = ["controller-manager", "--kubeconfig", str(kubeconfigs / "controller-manager.kubeconfig"),
             "--cluster-signing-cert-file", str(pki / "ca.crt"), "--cluster-signing-key-file", str(pki / "ca.key"),
             "--service-account-private-key-file", str(pki / "sa.key")]  # fmt: skip
    return ProcessSpec("controller-manager", "skiff", flags)


def issue_component_identities(args: argparse.Namespace) -> None:
    """Component kubeconfigs through `skiff pki components`; existing ones are kept."""
    command = [sys.executable, "-m", "skiff", "pki", "components", "--data-dir", str(args.data_dir),
               "--server", f"https://127.0.0.1:{args.port}"]  # fmt: skip
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)


def scheduler_spec(args: argparse.Namespace) -> ProcessSpec:
    """The scheduler, as system:kube-scheduler (its `skiff pki components` kubeconfig)."""
    kubeconfig = args.data_dir / "kubeconfigs" / "scheduler.kubeconfig"
    return ProcessSpec("scheduler", "skiff", ["scheduler", "--kubeconfig", str(kubeconfig)])


def node_name(index: int) -> str:
    return f"skiff-node-{index}"


def node_specs(args: argparse.Namespace) -> list[ProcessSpec]:
    """One kubelet process per node, so that stopping one is like losing one machine. Each node acts as
    `system:node:<name>` with the kubeconfig `skiff pki node` wrote under DATA/kubeconfigs/."""
    data_dir, kubeconfigs = str(args.data_dir), str(args.data_dir / "kubeconfigs")
    specs = []
    for index in range(1, args.nodes + 1):
        name = node_name(index)
        flags = ["kubelet", "--node-name", name, "--first-node-index", str(index), "--data-dir", data_dir,
                 "--kubeconfig-dir", kubeconfigs, "--kubelet-port", str(args.kubelet_port)]  # fmt: skip
        specs.append(ProcessSpec(f"kubelet-{name}", "skiff", flags))
    return specs


def proxy_spec(args: argparse.Namespace) -> ProcessSpec:
    """One proxy process for all nodes, as `system:kube-proxy`; tables land under DATA/proxy/<node>/ (see
    `skiff routes`). That identity may read Services, EndpointSlices and Nodes only, so NetworkPolicy
    rendering is off here."""
    kubeconfig = args.data_dir / "kubeconfigs" / "proxy.kubeconfig"
    flags = ["proxy", "--kubeconfig", str(kubeconfig), "--nodes", str(args.nodes), "--node-prefix", "skiff-node-",
             "--data-dir", str(args.data_dir), "--metrics-port", "0", "--network-policies", "false"]  # fmt: skip
    return ProcessSpec("proxy", "skiff", flags)


def issue_node_identities(args: argparse.Namespace) -> None:
    """Node kubeconfigs through `skiff pki node` (run as a program: the launcher does not import the API
    server's PKI code); an existing kubeconfig is kept."""
    for index in range(1, args.nodes + 1):
        command = [sys.executable, "-m", "skiff", "pki", "node", node_name(index), "--data-dir", str(args.data_dir),
                   "--server", f"https://127.0.0.1:{args.port}"]  # fmt: skip
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)


def port_free(bind: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((bind, port))
        except OSError:
            return False
    return True


def wait_ready(data_dir: Path, port: int, timeout: float) -> bool:
    ca = data_dir / "pki" / "ca.crt"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ca.exists():
            with contextlib.suppress(httpx.HTTPError, OSError, ssl.SSLError):
                context = ssl.create_default_context(cafile=str(ca))
                if httpx.get(f"https://127.0.0.1:{port}/readyz", verify=context, timeout=2).status_code == 200:
                    return True
        time.sleep(0.1)
    return False


def print_banner(data_dir: Path, port: int, started: float) -> None:
    kubeconfig = data_dir / "admin.kubeconfig"
    print(f"Skiff is up in {time.monotonic() - started:.1f}s: https://127.0.0.1:{port}")
    print(f"  data:       {data_dir}")
    print(f"  logs:       {data_dir / 'logs'}")
    print(f"  kubeconfig: {kubeconfig}")
    print()
    print("Point kubectl at it:")
    print(f"  export KUBECONFIG={kubeconfig}")
    print("  kubectl get namespaces")


def write_state(data_dir: Path, supervisor: Supervisor, port: int) -> None:
    state = {
        "pid": os.getpid(),
        "port": port,
        "components": {name: child.pid for name, child in supervisor.children.items()},
    }
    (data_dir / STATE_FILE).write_text(json.dumps(state))


async def run_foreground(args: argparse.Namespace) -> int:
    started = time.monotonic()
    args.data_dir.mkdir(parents=True, exist_ok=True)
    if not port_free(args.bind, args.port):
        print(f"skiff up: port {args.port} is in use (another cluster? try --port)", file=sys.stderr)
        return 1
    supervisor = Supervisor(args.data_dir / "logs")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        for spec in component_specs(args):
            await supervisor.start(spec)
        write_state(args.data_dir, supervisor, args.port)
        ready = await asyncio.to_thread(wait_ready, args.data_dir, args.port, args.timeout)
        if not ready:
            print(f"skiff up: the cluster did not become ready; see {args.data_dir / 'logs'}", file=sys.stderr)
            return 1
        await asyncio.to_thread(issue_component_identities, args)
        await supervisor.start(controller_manager_spec(args))
        await supervisor.start(scheduler_spec(args))
        write_state(args.data_dir, supervisor, args.port)
        if args.nodes:
            await asyncio.to_thread(issue_node_identities, args)
            for spec in node_specs(args):
                await supervisor.start(spec)
            await supervisor.start(proxy_spec(args))
            write_state(args.data_dir, supervisor, args.port)
        if not args.quiet:
            print_banner(args.data_dir, args.port, started)
            print("\nPress Ctrl-C to stop the cluster.")
        await stop.wait()
    finally:
        await supervisor.stop()
        with contextlib.suppress(FileNotFoundError):
            (args.data_dir / STATE_FILE).unlink()
    if not args.quiet:
        print("Skiff stopped.")
    return 0


def run_detached(args: argparse.Namespace) -> int:
    """Start the supervisor in the background and return once the cluster is ready."""
    started = time.monotonic()
    args.data_dir.mkdir(parents=True, exist_ok=True)
    (args.data_dir / "logs").mkdir(exist_ok=True)
    command = [sys.executable, "-m", "skiff", "up", "--data-dir", str(args.data_dir), "--port", str(args.port),
               "--bind", args.bind, "--quiet"]  # fmt: skip
    if args.database:
        command += ["--database", args.database]
    command += ["--nodes", str(args.nodes), "--kubelet-port", str(args.kubelet_port)]
    with open(args.data_dir / "logs" / "up.log", "ab") as log_file:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
        )
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            print(f"skiff up: the cluster failed to start; see {args.data_dir / 'logs'}", file=sys.stderr)
            return 1
        if wait_ready(args.data_dir, args.port, 0.5):
            print_banner(args.data_dir, args.port, started)
            print(f"\nStop it with: skiff down --data-dir {args.data_dir}")
            return 0
    process.terminate()
    print("skiff up: the cluster did not become ready in time", file=sys.stderr)
    return 1


def read_state(data_dir: Path) -> dict[str, object] | None:
    with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
        return json.loads((data_dir / STATE_FILE).read_text())
    return None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def down(args: argparse.Namespace) -> int:
    state = read_state(args.data_dir)
    if state is None or not alive(int(state["pid"])):  # type: ignore[arg-type]
        print(f"No cluster is running from {args.data_dir}.")
        return 0
    pid = int(state["pid"])  # type: ignore[arg-type]
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if alive(pid):
        os.kill(pid, signal.SIGKILL)
    print("Skiff stopped.")
    return 0


def status(args: argparse.Namespace) -> int:
    state = read_state(args.data_dir)
    if state is None or not alive(int(state["pid"])):  # type: ignore[arg-type]
        print(f"No cluster is running from {args.data_dir}.")
        return 3
    port = int(state["port"])  # type: ignore[arg-type]
    ready = wait_ready(args.data_dir, port, 2)
    print(f"Cluster at https://127.0.0.1:{port}: {'Ready' if ready else 'NotReady'}")
    components = state.get("components") or {}
    for name, pid in components.items():  # type: ignore[union-attr]
        print(f"  {name:<20} pid {pid:<8} {'running' if pid and alive(int(pid)) else 'stopped'}")
    print(f"  kubeconfig: {args.data_dir / 'admin.kubeconfig'}")
    return 0 if ready else 1


def main_up(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="skiff up", description="Start a local Skiff cluster.")
    add_common(parser)
    parser.add_argument("--port", type=int, default=6443)
    parser.add_argument("--bind", default="127.0.0.1")
    parser.add_argument("--database", default="", help="PostgreSQL URL; default: SQLite in the data dir")
    parser.add_argument("--detach", action="store_true", help="return once the cluster is ready")
    parser.add_argument("--nodes", type=int, default=1, help="simulated nodes (one kubelet process each)")
    parser.add_argument("--kubelet-port", type=int, default=10250, help="kubelet HTTPS port on each node's address")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for readiness")
    parser.add_argument("--quiet", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
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
