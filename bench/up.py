"""`skiff up` figures: time to a Ready cluster and to a working kubectl, and each component's idle RSS.

    python bench/up.py                         # 3 and 100 nodes, 3 runs each, SQLite
    python bench/up.py --nodes 3 --runs 5

Each run starts `skiff up --detach` on a fresh data directory with free ports and measures:
- ready: from the command's start until it returns (every node Ready);
- kubectl: from the command's start until `kubectl get nodes` first lists every node Ready;
- restart: a second `skiff up --detach` on the same data directory, until Ready;
- RSS of every component (the supervisor included) after the cluster sat idle for --idle seconds.
Figures are the median over the runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def kubectl_sees_ready_nodes(kubeconfig: Path, nodes: int) -> bool:
    result = subprocess.run(
        ["kubectl", "get", "nodes", "--no-headers"],
        capture_output=True,
        text=True,
        env={**os.environ, "KUBECONFIG": str(kubeconfig)},
    )
    lines = result.stdout.splitlines()
    return result.returncode == 0 and len(lines) == nodes and all(line.split()[1] == "Ready" for line in lines)


def one_run(nodes: int, idle: float) -> dict[str, float]:
    data_dir = Path(tempfile.mkdtemp(prefix="skiff-bench-up-"))
    flags = ["--data-dir", str(data_dir), "--nodes", str(nodes), "--port", str(free_port()),
             "--kubelet-port", str(free_port()), "--dns-port", str(free_port()), "--timeout", "300"]  # fmt: skip
    up = [sys.executable, "-m", "skiff", "up", "--detach", *flags]
    down = [sys.executable, "-m", "skiff", "down", "--data-dir", str(data_dir)]
    figures: dict[str, float] = {}
    try:
        started = time.monotonic()
        process = subprocess.Popen(up, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=REPO_ROOT)
        kubectl_at: float | None = None
        deadline = started + 300
        while (process.poll() is None or kubectl_at is None) and time.monotonic() < deadline:
            kubeconfig = data_dir / "admin.kubeconfig"
            if kubectl_at is None and kubeconfig.exists() and kubectl_sees_ready_nodes(kubeconfig, nodes):
                kubectl_at = time.monotonic() - started
            if process.poll() is not None and process.returncode != 0:
                raise RuntimeError(f"skiff up failed: {process.stderr.read().decode() if process.stderr else ''}")
            time.sleep(0.05)
        if kubectl_at is None:
            raise RuntimeError("kubectl never listed every node Ready")
        figures["kubectl_s"] = kubectl_at
        time.sleep(idle)
        state = json.loads((data_dir / "cluster.json").read_text())
        figures["rss:supervisor"] = rss_mib(int(state["pid"]))
        for name, component in state["components"].items():
            figures[f"rss:{name}"] = rss_mib(int(component["pid"]))
        subprocess.run(down, check=True, capture_output=True, cwd=REPO_ROOT)
        started = time.monotonic()
        subprocess.run(up, check=True, capture_output=True, cwd=REPO_ROOT)
        figures["restart_s"] = time.monotonic() - started
    finally:
        subprocess.run(down, capture_output=True, cwd=REPO_ROOT)
        shutil.rmtree(data_dir, ignore_errors=True)
    return figures


def ready_time(nodes: int) -> float:
    """Time `skiff up --detach` alone (it returns when every node is Ready)."""
    data_dir = Path(tempfile.mkdtemp(prefix="skiff-bench-up-"))
    flags = ["--data-dir", str(data_dir), "--nodes", str(nodes), "--port", str(free_port()),
             "--kubelet-port", str(free_port()), "--dns-port", str(free_port()), "--timeout", "300"]  # fmt: skip
    try:
        started = time.monotonic()
        subprocess.run([sys.executable, "-m", "skiff", "up", "--detach", *flags], check=True, capture_output=True,
                       cwd=REPO_ROOT)  # fmt: skip
        return time.monotonic() - started
    finally:
        subprocess.run([sys.executable, "-m", "skiff", "down", "--data-dir", str(data_dir)], capture_output=True)
        shutil.rmtree(data_dir, ignore_errors=True)


def report(nodes: int, runs: list[dict[str, float]], ready: list[float]) -> None:
    print(f"\n{nodes} nodes, SQLite, median of {len(runs)} runs")
    print(f"  up --detach until every node is Ready:   {statistics.median(ready):6.2f} s")
    print(f"  until kubectl lists every node Ready:     {statistics.median(r['kubectl_s'] for r in runs):6.2f} s")
    print(f"  second up on the same data directory:     {statistics.median(r['restart_s'] for r in runs):6.2f} s")
    names = [key for key in runs[0] if key.startswith("rss:")]
    total = 0.0
    print("  idle RSS (MiB):")
    for key in names:
        value = statistics.median(r.get(key, 0.0) for r in runs)
        total += value
        print(f"    {key[4:]:<28} {value:7.1f}")
    print(f"    {'total':<28} {total:7.1f}  ({len(names)} processes)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, action="append", help="node counts (default 3 and 100)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--idle", type=float, default=5.0, help="seconds idle before reading RSS")
    args = parser.parse_args()
    for nodes in args.nodes or [3, 100]:
        runs = [one_run(nodes, args.idle) for _ in range(args.runs)]
        ready = [ready_time(nodes) for _ in range(args.runs)]
        report(nodes, runs, ready)


if __name__ == "__main__":
    main()
