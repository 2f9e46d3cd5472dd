"""One kubelet process simulating many nodes: its idle cost, and how fast it brings bound pods to Running.

    python bench/kubelet.py                                # 1,000 nodes, 60 s idle, 30,000 pods
    python bench/kubelet.py --nodes 1000 --pods 5000 --reps 3 --json kubelet.json --profile-dir /tmp/prof

Each repetition starts a fresh cluster in a temporary data directory (SQLite): the API server and one
`skiff kubelet --nodes N --node-prefix sim-` process, each node acting as `system:node:<name>` with the
identity `skiff pki node` issues. Nothing else runs: no scheduler, no controller-manager.

1. Idle: once every node is Ready, the kubelet only heartbeats (Lease renewals every 10 s, node status
   every 10 s, written when changed or every minute). Over --idle-seconds it reports the kubelet's CPU
   share (CPU seconds / wall seconds, from /proc/<pid>/stat; 1.0 = one core) and RSS (VmRSS from
   /proc/<pid>/status), and the API server's CPU share for the same window.
2. Pods: --pods pods, already bound (spec.nodeName set, round-robin over the nodes, no service-account
   token volume), are created by the Go load generator on 32 connections. Times run from the first
   create to the moment a watch on the namespace delivered each pod as Running; pods/s is pods / that
   time. The create rate alone is reported beside it, to show whether creating was the limit.

--profile-dir records the kubelet with py-spy (50 Hz) during the idle window and the pods phase of the
first repetition.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import common
from common import (
    PodWatcher,
    Target,
    apiserver,
    build_loadgen,
    component,
    create,
    issue_identities,
    kubelet_command,
    loadgen,
    log,
    median,
    process_cpu,
    process_rss_mib,
    profiling_pid,
    wait_nodes_ready,
)

NAMESPACE = "bench-kubelet"
NODE_PREFIX = "sim-"
CLIENTS = 32
KWOK = "KWOK publishes 10,000 pods Running on one node within 120 s"


def pod_template(path: Path) -> Path:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "{{NAME}}", "labels": {"app": "bench"}},
        "spec": {
            "nodeName": NODE_PREFIX + "{{SLOT}}",
            "automountServiceAccountToken": False,
            "containers": [
                {"name": "web", "image": "nginx:1.25", "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}
            ],
        },
    }
    path.write_text(json.dumps(pod))
    return path


def sample(pid: int, seconds: float) -> dict[str, float]:
    """CPU share and RSS of `pid` over `seconds` (RSS sampled every second; the median and the maximum)."""
    rss: list[float] = []
    cpu_before, began = process_cpu(pid), time.monotonic()
    deadline = began + seconds
    while time.monotonic() < deadline:
        rss.append(process_rss_mib(pid))
        time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
    wall = time.monotonic() - began
    return {
        "cpu_share": round((process_cpu(pid) - cpu_before) / wall, 3),
        "rss_mib": median(rss),
        "rss_max_mib": max(rss),
    }


def one_run(workdir: Path, args: argparse.Namespace, profile: Path | None, label: str) -> dict[str, Any]:
    data_dir = workdir / label / "data"
    data_dir.parent.mkdir(parents=True)
    result: dict[str, Any] = {"nodes": args.nodes, "pods": args.pods}
    with contextlib.ExitStack() as stack:
        target: Target = stack.enter_context(apiserver(data_dir, name="apiserver"))
        began = time.monotonic()
        issue_identities(data_dir, [f"{NODE_PREFIX}{i}" for i in range(1, args.nodes + 1)], components=False)
        log(f"  {label}: {args.nodes} node identities in {time.monotonic() - began:.0f} s")
        kubelet_args = kubelet_command(data_dir, args.nodes, NODE_PREFIX)
        kubelet = stack.enter_context(
            component("kubelet_sim.main", kubelet_args, data_dir.parent / "kubelet.log", "kubelet")
        )
        result["nodes_ready_s"] = round(wait_nodes_ready(target, args.nodes, args.timeout), 1)
        log(f"  {label}: {args.nodes} nodes Ready in {result['nodes_ready_s']} s; settling {args.settle:.0f} s")
        time.sleep(args.settle)

        server_before = process_cpu(target.pid)
        idle_began = time.monotonic()
        with profiling_pid(kubelet, profile / "kubelet-idle" if profile else None, rate=50):
            idle = sample(kubelet, args.idle_seconds)
        idle["apiserver_cpu_share"] = round(
            (process_cpu(target.pid) - server_before) / (time.monotonic() - idle_began), 3
        )
        result["idle"] = idle
        log(
            f"  {label}: idle kubelet {idle['cpu_share']:.3f} cores, RSS {idle['rss_mib']:.0f} MiB; "
            f"API server {idle['apiserver_cpu_share']:.3f} cores"
        )
        if args.pods == 0:
            return result

        with target.client() as client:
            create(
                client, "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
            )
            sa = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}}
            create(client, f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts", sa)
        body = pod_template(data_dir.parent / "pod.json")
        watcher = PodWatcher(target, NAMESPACE, args.timeout + 120).start()
        stack.callback(watcher.stop)
        cpu_before = {"kubelet": process_cpu(kubelet), "apiserver": process_cpu(target.pid)}
        with profiling_pid(kubelet, profile / "kubelet-pods" if profile else None, rate=50):
            t0 = time.monotonic()
            post = ["-mode", "post", "-path", f"/api/v1/namespaces/{NAMESPACE}/pods", "-body", str(body)]
            post += ["-slots", str(args.nodes), "-n", str(args.pods), "-c", str(CLIENTS), "-prefix", "p"]
            post += ["-duration", f"{args.timeout}s", "-max-duration", f"{args.timeout}s"]
            created = loadgen(target, post, args.timeout + 60)
            complete = watcher.wait("running", created["ok"], args.timeout - (time.monotonic() - t0))
            wall = time.monotonic() - t0
        running = sorted(watcher.running.values())
        total = (running[-1] - t0) if running else wall
        result.update(
            {
                "created": created["ok"],
                "create_errors": created["errors"],
                "create_s": created["elapsed_s"],
                "creates_per_s": created["rps"],
                "complete": complete,
                "running": len(running),
                "total_s": round(total, 1),
                "pods_per_s": round(len(running) / total, 1) if total else None,
                "kubelet_cores": round((process_cpu(kubelet) - cpu_before["kubelet"]) / wall, 2),
                "apiserver_cores": round((process_cpu(target.pid) - cpu_before["apiserver"]) / wall, 2),
                "kubelet_rss_mib_after": round(process_rss_mib(kubelet), 1),
            }
        )
        if not complete:
            log(f"  {label}: only {len(running)} of {created['ok']} pods Running after {args.timeout:.0f} s")
    return result


def brief(r: dict[str, Any]) -> str:
    if "running" not in r:
        return "idle only"
    return (
        f"{r['running']}/{r['pods']} Running in {r['total_s']} s = {r['pods_per_s']} pods/s (created at "
        f"{r['creates_per_s']:.0f}/s, all in {r['create_s']} s); kubelet {r['kubelet_cores']} cores, API server "
        f"{r['apiserver_cores']} cores; kubelet RSS {r['kubelet_rss_mib_after']} MiB after"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="One kubelet process simulating many nodes: idle cost, pods/s.")
    parser.add_argument("--nodes", type=int, default=1000, help="nodes the one kubelet process simulates")
    parser.add_argument("--pods", type=int, default=30_000, help="bound pods to bring to Running (0: idle only)")
    parser.add_argument("--idle-seconds", type=float, default=60, help="idle measurement window")
    parser.add_argument("--settle", type=float, default=90, help="seconds between all nodes Ready and the idle window")
    parser.add_argument("--reps", type=int, default=1, help="repetitions, each on a fresh cluster")
    parser.add_argument("--timeout", type=float, default=1200, help="seconds allowed for nodes Ready, and for pods")
    parser.add_argument("--json", type=Path, help="also write every run and the summary here")
    parser.add_argument("--profile-dir", type=Path, help="py-spy the kubelet during the first repetition")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data directories and logs")
    parser.add_argument("--source", type=Path, default=common.REPO, help="tree to run the components from")
    args = parser.parse_args()
    if not (1 <= args.nodes <= 5000 and 0 <= args.pods <= 100_000 and 1 <= args.reps <= 10):
        sys.exit("bench: --nodes 1..5000, --pods 0..100000, --reps 1..10")
    if not (5 <= args.idle_seconds <= 600 and 0 <= args.settle <= 300 and 30 <= args.timeout <= 3600):
        sys.exit("bench: --idle-seconds 5..600, --settle 0..300, --timeout 30..3600")
    common.stop_on_sigterm()
    common.use_source(args.source)
    build_loadgen()
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="skiff-bench-kubelet-"))
    runs: list[dict[str, Any]] = []
    try:
        for rep in range(args.reps):
            result = one_run(workdir, args, args.profile_dir if rep == 0 else None, f"run{rep}")
            runs.append(result)
            log(f"  #{rep + 1}: {brief(result)}")
    finally:
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    def med(*path: str) -> float | None:
        values = []
        for r in runs:
            value: Any = r
            for key in path:
                value = value.get(key) if isinstance(value, dict) else None
            if value is not None:
                values.append(float(value))
        return round(statistics.median(values), 3) if values else None

    summary = {
        "nodes_ready_s": med("nodes_ready_s"),
        "idle_kubelet_cpu_share": med("idle", "cpu_share"),
        "idle_kubelet_rss_mib": med("idle", "rss_mib"),
        "idle_apiserver_cpu_share": med("idle", "apiserver_cpu_share"),
        "pods_total_s": med("total_s"),
        "pods_per_s": med("pods_per_s"),
        "creates_per_s": med("creates_per_s"),
        "kubelet_cores": med("kubelet_cores"),
        "apiserver_cores": med("apiserver_cores"),
        "kubelet_rss_mib_after": med("kubelet_rss_mib_after"),
    }
    labels = {
        "nodes_ready_s": f"{args.nodes} nodes Ready after start, s",
        "idle_kubelet_cpu_share": f"idle kubelet CPU, cores ({args.idle_seconds:.0f} s)",
        "idle_kubelet_rss_mib": "idle kubelet RSS, MiB",
        "idle_apiserver_cpu_share": "idle API server CPU, cores",
        "pods_total_s": f"{args.pods:,} bound pods to Running, s",
        "pods_per_s": "  pods Running per s",
        "creates_per_s": "  pod creates per s (load generator)",
        "kubelet_cores": "  kubelet CPU, cores",
        "apiserver_cores": "  API server CPU, cores",
        "kubelet_rss_mib_after": "  kubelet RSS with the pods, MiB",
    }
    print()
    print(f"one kubelet process, {args.nodes} nodes; medians of {len(runs)} run(s)")
    print("-" * 60)
    for key, label in labels.items():
        value = summary[key]
        if value is not None:
            print(f"{label:<46}{value:>12,.3f}" if "share" in key else f"{label:<46}{value:>12,.1f}")
    print(f"\n{KWOK} (~83 pods/s).")
    elapsed = time.monotonic() - started
    print(f"{platform.node()}: {os.cpu_count()} CPUs, Python {platform.python_version()}, {elapsed:.0f} s in all")
    common.write_json(args.json, {"summary": summary, "runs": runs, "args": {k: str(v) for k, v in vars(args).items()}})


if __name__ == "__main__":
    main()
