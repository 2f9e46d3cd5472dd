"""Deployment to Ready pods: the controller-manager, the scheduler and simulated kubelets together.

    python bench/controllers.py                               # 1,000 replicas on 50 nodes x3, 5,000 on 200 x1
    python bench/controllers.py --scenarios 1000/50 --reps 3
    python bench/controllers.py --json ctl.json --profile-dir /tmp/prof   # plus one profiled run per scenario

Each run starts a fresh cluster in a temporary data directory (SQLite): the API server, one `skiff
kubelet --nodes N` process whose nodes each act as `system:node:<name>`, `skiff scheduler` and `skiff
controller-manager` (all controllers, no leader election) with their `skiff pki components` identities.
Once every node is Ready, it creates a Deployment of R replicas (one container, 10m CPU) and follows
the namespace's pods on a watch stream. Times are when the watch delivered each change, measured from
the Deployment's create request:

- total: until the last pod is Ready; end-to-end pods/s is R / total;
- created: until the last pod exists (the Deployment and ReplicaSet controllers);
- scheduler pods/s: (R - 1) / (last pod bound - first pod bound); when pods are bound as fast as they
  are created, this is the creation rate, not the scheduler's ceiling, which the created-to-bound lag
  (p50, p99) shows;
- cores busy: CPU seconds of each component's process over the run's wall time; and, beside it, the
  time its threads were runnable but waiting for a CPU (/proc/<pid>/task/*/schedstat) over wall time:
  on a shared machine, the cores it wanted and did not get.

With --profile-dir, one more run per scenario (not counted in the figures) records every component with
py-spy at 50 Hz; summarise with bench/pyspy_top.py.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shutil
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
    component,
    create,
    issue_identities,
    kubeconfig_of,
    kubelet_command,
    log,
    median,
    process_cpu,
    process_wait,
    profiling_pid,
    wait_nodes_ready,
)

NAMESPACE = "bench-deploy"
NODE_PREFIX = "sim-"
AIM_PODS_PER_S = 200


def deployment(replicas: int) -> dict[str, Any]:
    labels = {"app": "bench"}
    container = {"name": "web", "image": "nginx:1.25", "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "bench"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}},
        },
    }


def wait_service_account(target: Target, namespace: str, timeout: float) -> None:
    """The service-account controller makes `default` in a new namespace; pods are refused until then."""
    deadline = time.monotonic() + timeout
    with target.client() as client:
        while time.monotonic() < deadline:
            if client.get(f"/api/v1/namespaces/{namespace}/serviceaccounts/default").status_code == 200:
                return
            time.sleep(0.2)
    raise RuntimeError(f"no default ServiceAccount in {namespace} after {timeout:.0f} s")


def one_run(
    workdir: Path, replicas: int, nodes: int, timeout: float, profile: Path | None, label: str
) -> dict[str, Any]:
    data_dir = workdir / label / "data"
    data_dir.parent.mkdir(parents=True)
    began = time.monotonic()
    with contextlib.ExitStack() as stack:
        target = stack.enter_context(apiserver(data_dir, name="apiserver"))
        issue_identities(data_dir, [f"{NODE_PREFIX}{i}" for i in range(1, nodes + 1)])
        logs = data_dir.parent
        pids = {"apiserver": target.pid}
        kubelet_args = kubelet_command(data_dir, nodes, NODE_PREFIX, ["--max-pods", "250"])
        pids["kubelet"] = stack.enter_context(
            component("kubelet_sim.main", kubelet_args, logs / "kubelet.log", "kubelet")
        )
        nodes_s = wait_nodes_ready(target, nodes, 300)
        common_args = ["--leader-elect", "false"]
        scheduler = ["--kubeconfig", str(kubeconfig_of(data_dir, "scheduler")), *common_args]
        pids["scheduler"] = stack.enter_context(
            component("controllers.scheduler.main", scheduler, logs / "scheduler.log", "scheduler")
        )
        pki = data_dir / "pki"
        manager = ["--kubeconfig", str(kubeconfig_of(data_dir, "controller-manager")), *common_args]
        manager += ["--service-account-private-key-file", str(pki / "sa.key")]
        manager += [
            "--cluster-signing-cert-file",
            str(pki / "ca.crt"),
            "--cluster-signing-key-file",
            str(pki / "ca.key"),
        ]
        pids["controller-manager"] = stack.enter_context(
            component("controllers.manager", manager, logs / "controller-manager.log", "controller-manager")
        )
        with target.client() as client:
            create(
                client, "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
            )
        wait_service_account(target, NAMESPACE, 60)
        time.sleep(2.0)  # let the scheduler and the controllers finish their initial lists
        log(f"  {label}: cluster up in {time.monotonic() - began:.0f} s ({nodes} nodes Ready in {nodes_s:.0f} s)")

        watcher = stack.enter_context(contextlib.closing(_Stopping(PodWatcher(target, NAMESPACE, timeout + 60))))
        for name, pid in pids.items():
            if profile is not None:
                stack.enter_context(profiling_pid(pid, profile / f"controllers-{replicas}x{nodes}-{name}", rate=50))
        cpu_before = {name: process_cpu(pid) for name, pid in pids.items()}
        wait_before = {name: process_wait(pid) for name, pid in pids.items()}
        t0 = time.monotonic()
        with target.client() as client:
            create(client, f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments", deployment(replicas), (201,))
        complete = watcher.inner.wait("ready", replicas, timeout)
        wall = time.monotonic() - t0
        cores = {name: round((process_cpu(pid) - cpu_before[name]) / wall, 2) for name, pid in pids.items()}
        waiting = {name: round((process_wait(pid) - wait_before[name]) / wall, 2) for name, pid in pids.items()}
        w = watcher.inner
        if not complete:
            log(f"  {label}: only {len(w.ready)} of {replicas} pods Ready after {timeout:.0f} s ({w.error or ''})")
        scheduled = sorted(w.scheduled.values())
        result = {
            "replicas": replicas,
            "nodes": nodes,
            "complete": complete,
            "ready": len(w.ready),
            "total_s": round(max(w.ready.values(), default=t0) - t0, 2),
            "first_created_s": round(min(w.seen.values(), default=t0) - t0, 2),
            "created_s": round(max(w.seen.values(), default=t0) - t0, 2),
            "first_bound_s": round(scheduled[0] - t0, 2) if scheduled else None,
            "bound_s": round(scheduled[-1] - t0, 2) if scheduled else None,
            "scheduler_pods_per_s": (
                round((len(scheduled) - 1) / (scheduled[-1] - scheduled[0]), 1) if len(scheduled) > 1 else None
            ),
            "bind_lag_p50_s": lag(w.seen, w.scheduled, 50),
            "bind_lag_p99_s": lag(w.seen, w.scheduled, 99),
            "watch_events": w.events,
            "cores": cores,
            "cpu_wait_cores": waiting,
        }
        result["pods_per_s"] = round(len(w.ready) / result["total_s"], 1) if result["total_s"] else None
        return result


def lag(first: dict[str, float], then: dict[str, float], percentile: int) -> float | None:
    """A percentile (nearest rank) of then[pod] - first[pod] over the pods in both, in seconds."""
    gaps = sorted(then[name] - first[name] for name in then.keys() & first.keys())
    if not gaps:
        return None
    return round(gaps[min(len(gaps) - 1, max(0, -(-percentile * len(gaps) // 100) - 1))], 3)


class _Stopping:
    """Closes (stops) a PodWatcher when the `with` block ends."""

    def __init__(self, watcher: PodWatcher) -> None:
        self.inner = watcher.start()

    def close(self) -> None:
        self.inner.stop()


def brief(r: dict[str, Any]) -> str:
    cores = ", ".join(f"{k} {v} (+{r['cpu_wait_cores'][k]} waiting)" for k, v in r["cores"].items())
    return (
        f"{r['ready']}/{r['replicas']} Ready in {r['total_s']} s = {r['pods_per_s']} pods/s; all created at "
        f"{r['created_s']} s, bound {r['first_bound_s']}..{r['bound_s']} s = scheduler {r['scheduler_pods_per_s']}"
        f" pods/s (created to bound p50 {r.get('bind_lag_p50_s')} s, p99 {r.get('bind_lag_p99_s')} s);"
        f" cores busy: {cores}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="Deployment create to every pod Ready, with simulated nodes.")
    parser.add_argument("--scenarios", default="1000/50,5000/200", help="REPLICAS/NODES, comma-separated")
    parser.add_argument("--reps", default="3,1", help="runs per scenario, comma-separated (last one repeats)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds a run may take to get all pods Ready")
    parser.add_argument("--json", type=Path, help="also write every run and the summary here")
    parser.add_argument(
        "--profile-dir", type=Path, help="one extra, profiled run per scenario (py-spy, all components)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary data directories and logs")
    parser.add_argument("--source", type=Path, default=common.REPO, help="tree to run the components from")
    args = parser.parse_args()
    common.stop_on_sigterm()
    common.use_source(args.source)
    scenarios = [tuple(int(x) for x in s.split("/")) for s in args.scenarios.split(",") if s]
    reps = [int(r) for r in args.reps.split(",")]
    reps += [reps[-1]] * (len(scenarios) - len(reps))
    if not all(1 <= r <= 10 for r in reps) or not all(1 <= n <= 2000 and 1 <= p <= 50_000 for p, n in scenarios):
        sys.exit("bench: --reps 1..10; scenarios up to 50,000 replicas on 2,000 nodes")
    if not 10 <= args.timeout <= 3600:
        sys.exit("bench: --timeout 10..3600")
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="skiff-bench-controllers-"))
    runs: dict[str, list[dict[str, Any]]] = {}
    profiled: dict[str, dict[str, Any]] = {}
    try:
        for (replicas, nodes), count in zip(scenarios, reps, strict=True):
            key = f"{replicas}/{nodes}"
            log(f"{replicas} replicas on {nodes} nodes, {count} run(s)")
            runs[key] = []
            for rep in range(count):
                result = one_run(workdir, replicas, nodes, args.timeout, None, f"{replicas}x{nodes}-{rep}")
                runs[key].append(result)
                log(f"  #{rep + 1}: {brief(result)}")
            if args.profile_dir:
                result = one_run(workdir, replicas, nodes, args.timeout, args.profile_dir, f"{replicas}x{nodes}-prof")
                profiled[key] = result
                log(f"  profiled: {brief(result)}")
    finally:
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    summary: dict[str, dict[str, Any]] = {}
    for key, results in runs.items():
        summary[key] = {
            "runs": len(results),
            "complete_runs": sum(1 for r in results if r["complete"]),
            "total_s": median([r["total_s"] for r in results]),
            "pods_per_s": median([r["pods_per_s"] or 0 for r in results]),
            "created_s": median([r["created_s"] for r in results]),
            "scheduler_pods_per_s": median([r["scheduler_pods_per_s"] or 0 for r in results]),
            "cores": {name: median([r["cores"][name] for r in results]) for name in results[0]["cores"]},
            "cpu_wait_cores": {
                name: median([r["cpu_wait_cores"][name] for r in results]) for name in results[0]["cpu_wait_cores"]
            },
        }
    print()
    head = f"{'replicas/nodes':<16}{'runs':>5}{'total s':>9}{'pods/s':>8}{'created s':>11}{'sched pods/s':>14}"
    print(head + "   cores busy+waiting for a CPU (apiserver / kubelet / scheduler / controller-manager)")
    print("-" * (len(head) + 64))
    for key, row in summary.items():
        cores = " / ".join(f"{v:.2f}+{row['cpu_wait_cores'][k]:.2f}" for k, v in row["cores"].items())
        runs_text = f"{row['complete_runs']}/{row['runs']}"
        print(
            f"{key:<16}{runs_text:>5}{row['total_s']:>9.1f}{row['pods_per_s']:>8.1f}{row['created_s']:>11.1f}"
            f"{row['scheduler_pods_per_s']:>14.1f}   {cores}"
        )
    print(f"\nmedians; aim: >= {AIM_PODS_PER_S} pods/s end to end. runs = complete/attempted.")
    elapsed = time.monotonic() - started
    print(f"{platform.node()}: {os.cpu_count()} CPUs, Python {platform.python_version()}, {elapsed:.0f} s in all")
    common.write_json(args.json, {"summary": summary, "runs": runs, "profiled": profiled})


if __name__ == "__main__":
    main()
