"""Dynamic provisioning throughput: claims created at once until every one is Bound.

    python bench/storage.py                  # 1,000 claims, 3 runs
    python bench/storage.py --claims 200 --reps 5 --keep

Each run starts a fresh API server (SQLite, temporary data directory) and the controller-manager with
the storage controllers only (`persistentvolume-binder`, both provisioners, `pv-protection`,
`pvc-protection`) as `system:kube-controller-manager`. It creates a StorageClass (`skiff.dev/simulated`,
Immediate, a pool large enough for every claim), then POSTs N claims of 1Gi from 16 threads as fast as
the API server takes them, and follows the namespace's claims on a watch stream. Times are measured
from the first create request:

- bound: until the watch shows the last claim Bound; claims/s is N / bound;
- created: until the last create returned;
- cores: the controller-manager's and the API server's CPU seconds over the time to all Bound.

The median of the runs is reported. Figures only; nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import common
from common import Target, apiserver, component, create, create_namespace, issue_identities, log, median

NAMESPACE = "bench-storage"
CLASS = "bench-simulated"
THREADS = 16
LOG_LEVEL = "warning"
CONTROLLERS = "persistentvolume-binder,simulated-provisioner,hostpath-provisioner,pv-protection,pvc-protection"


def claim(index: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": f"data-{index}"},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": CLASS,
            "resources": {"requests": {"storage": "1Gi"}},
        },
    }


class BoundWatcher(threading.Thread):
    """Follows the namespace's claims and notes when the watch shows the `count`-th one Bound."""

    def __init__(self, target: Target, count: int) -> None:
        super().__init__(daemon=True)
        self.target, self.count = target, count
        self.bound: set[str] = set()
        self.done_at: float | None = None
        self.ready = threading.Event()
        self.finished = threading.Event()

    def run(self) -> None:
        path = f"/api/v1/namespaces/{NAMESPACE}/persistentvolumeclaims"
        with self.target.client(timeout=600) as client:
            version = client.get(path).json()["metadata"]["resourceVersion"]
            params = {"watch": "true", "resourceVersion": version, "timeoutSeconds": "600"}
            with client.stream("GET", path, params=params) as stream:
                self.ready.set()
                for line in stream.iter_lines():
                    if not line:
                        continue
                    event = json.loads(line)
                    obj = event.get("object") or {}
                    if (obj.get("status") or {}).get("phase") == "Bound":
                        self.bound.add(obj["metadata"]["name"])
                        if len(self.bound) >= self.count:
                            self.done_at = time.monotonic()
                            self.finished.set()
                            return


def one_run(work: Path, claims: int, index: int) -> dict[str, float]:
    data_dir = work / f"run-{index}" / "data"
    data_dir.mkdir(parents=True)
    with apiserver(data_dir) as target:
        issue_identities(data_dir, [])
        create_namespace(target, NAMESPACE)
        storage_class = {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": CLASS},
                         "provisioner": "skiff.dev/simulated", "volumeBindingMode": "Immediate"}  # fmt: skip
        with target.client() as client:
            create(client, "/apis/storage.k8s.io/v1/storageclasses", storage_class)
        kubeconfig = data_dir / "kubeconfigs" / "controller-manager.kubeconfig"
        args = ["--kubeconfig", str(kubeconfig), "--controllers", CONTROLLERS, "--leader-elect", "false",
                "--simulated-storage-capacity", f"{claims * 2}Gi", "--log-level", LOG_LEVEL]  # fmt: skip
        log_path = data_dir.parent / "controller-manager.log"
        with component("controllers.manager", args, log_path, "controller-manager") as pid:
            time.sleep(2.0)  # let its informers list before the burst
            watcher = BoundWatcher(target, claims)
            watcher.start()
            watcher.ready.wait(30)
            cpu_before, api_before = common.process_cpu(pid), common.process_cpu(target.pid)
            started = time.monotonic()
            path = f"/api/v1/namespaces/{NAMESPACE}/persistentvolumeclaims"

            def post(batch: range) -> None:
                with target.client() as client:
                    for i in batch:
                        create(client, path, claim(i), ok=(201,))

            step = (claims + THREADS - 1) // THREADS
            with ThreadPoolExecutor(THREADS) as pool:
                list(pool.map(post, [range(s, min(s + step, claims)) for s in range(0, claims, step)]))
            created = time.monotonic() - started
            if not watcher.finished.wait(600):
                raise RuntimeError(f"only {len(watcher.bound)} of {claims} claims were Bound after 600s")
            assert watcher.done_at is not None
            bound = watcher.done_at - started
            cores = (common.process_cpu(pid) - cpu_before) / bound
            api_cores = (common.process_cpu(target.pid) - api_before) / bound
    return {"bound_s": bound, "created_s": created, "claims_per_s": claims / bound, "cm_cores": cores,
            "api_cores": api_cores}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--claims", type=int, default=1000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the data directories and logs")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="skiff-bench-storage-"))
    runs = []
    try:
        for index in range(args.reps):
            result = one_run(work, args.claims, index)
            runs.append(result)
            log(
                f"run {index + 1}: {args.claims} claims Bound in {result['bound_s']:.2f}s "
                f"({result['claims_per_s']:.0f} claims/s; creates done at {result['created_s']:.2f}s; "
                f"controller-manager {result['cm_cores']:.2f} cores, API server {result['api_cores']:.2f} cores)"
            )
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            with contextlib.suppress(OSError):
                shutil.rmtree(work)
    print(f"\n{args.claims} claims, dynamic provisioning (skiff.dev/simulated, Immediate), median of {len(runs)}:")
    for key, label in (("bound_s", "all Bound (s)"), ("claims_per_s", "claims/s"), ("created_s", "creates done (s)"),
                       ("cm_cores", "controller-manager cores"), ("api_cores", "API server cores")):  # fmt: skip
        print(f"  {label:<26} {median([r[key] for r in runs]):.2f}")


if __name__ == "__main__":
    sys.exit(main())
