"""Proxy rendering benchmark: full render and one-Service incremental sync, per mode.

    python bench/proxy.py                       # 1,000, 5,000 and 10,000 Services, 10 endpoints each
    python bench/proxy.py --services 1000 --runs 3

Each Service is a ClusterIP Service (every tenth a NodePort) with one port and 10 ready endpoints spread
over 10 nodes; tables are rendered for one of those nodes. Figures, medians over --runs:

- full: rendering every Service and assembling the tables from cold caches (what the first sync does);
- warm: the same with parsed Services and chain-name hashes cached (a periodic full re-render);
- memory: what the rendered fragments and tables hold (tracemalloc, measured in a separate pass);
- incremental: one Service's EndpointSlice changes; re-render that Service and re-assemble;
- write: writing the assembled tables to files (the file backend), for scale.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from proxy.backend import FileBackend
from proxy.proxier import NodeProxier
from skiff.net import names
from skiff.net.modes import MODES, renderer_for
from skiff.net.state import ClusterState

ENDPOINTS = 10
NODES = 10


def build_state(services: int) -> ClusterState:
    state = ClusterState()
    for index in range(1, NODES + 1):
        address = {"type": "InternalIP", "address": f"10.0.0.{index}"}
        node = {"metadata": {"name": f"n{index}"}, "status": {"addresses": [address]}}
        state.upsert("Node", node)
    for i in range(services):
        name = f"svc-{i:05d}"
        spec = {
            "type": "NodePort" if i % 10 == 0 else "ClusterIP",
            "clusterIP": f"10.96.{i // 250}.{i % 250 + 1}",
            "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
        }
        if i % 10 == 0:
            spec["ports"][0]["nodePort"] = 30000 + i // 10
        state.upsert("Service", {"metadata": {"namespace": "bench", "name": name}, "spec": spec})
        state.upsert("EndpointSlice", endpoint_slice(name, i, ENDPOINTS))
    return state


def endpoint_slice(name: str, i: int, count: int, port: int = 8080) -> dict:
    endpoints = []
    for e in range(count):
        node = e % NODES + 1
        ip = f"10.{100 + e}.{i // 250}.{i % 250 + 1}"
        endpoints.append({"addresses": [ip], "conditions": {"ready": True}, "nodeName": f"n{node}"})
    return {
        "metadata": {"namespace": "bench", "name": f"{name}-x", "labels": {"kubernetes.io/service-name": name}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
        "endpoints": endpoints,
    }


def forget(state: ClusterState) -> None:
    """Drop every cache a first sync would not have: parsed ServicePorts and chain-name hashes."""
    state._ports.clear()
    for cached in (names.port_proto_hash, names.endpoint_chain, names.hash_and_truncate):
        cached.cache_clear()


def measure(state: ClusterState, services: int, mode: str, runs: int) -> dict[str, float]:
    full, warm, incremental, write = [], [], [], []
    proxier = NodeProxier("n1", renderer_for(mode))
    for _ in range(runs):
        forget(state)
        gc.collect()
        started = time.perf_counter()
        proxier.sync(state)
        full.append(time.perf_counter() - started)
        started = time.perf_counter()
        proxier.sync(state)
        warm.append(time.perf_counter() - started)
    lines = sum(text.count("\n") for chunks in proxier.tables.files.values() for text in chunks)
    for run in range(max(runs, 5) * 3):
        i = (run * 7919) % services
        name = f"svc-{i:05d}"
        changed = endpoint_slice(name, i, ENDPOINTS - 1 - run % 3, port=8080 + run)
        state.upsert("EndpointSlice", changed)
        started = time.perf_counter()
        result = proxier.sync(state, [f"bench/{name}"])
        incremental.append(time.perf_counter() - started)
        assert result.rendered_services == 1
    with tempfile.TemporaryDirectory() as directory:
        backend = FileBackend(Path(directory))
        for _ in range(runs):
            started = time.perf_counter()
            backend.apply(proxier.tables)
            write.append(time.perf_counter() - started)
    del proxier
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    forget(state)
    kept = NodeProxier("n1", renderer_for(mode))
    kept.sync(state)
    after, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del kept
    return {
        "full": statistics.median(full),
        "warm": statistics.median(warm),
        "incremental": statistics.median(incremental),
        "write": statistics.median(write),
        "memory": (after - before) / 2**20,
        "peak": (peak - before) / 2**20,
        "lines": lines,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--services", type=int, nargs="*", default=[1000, 5000, 10000])
    parser.add_argument("--modes", nargs="*", default=list(MODES))
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    header = f"{'services':>8} {'mode':<9} {'lines':>9} {'full s':>7} {'warm s':>7} {'incr ms':>8} {'write ms':>9}"
    print(header + f" {'mem MiB':>8} {'peak MiB':>9}")
    for count in args.services:
        state = build_state(count)
        for mode in args.modes:
            f = measure(state, count, mode, args.runs)
            print(
                f"{count:>8} {mode:<9} {f['lines']:>9,} {f['full']:>7.3f} {f['warm']:>7.3f} "
                f"{f['incremental'] * 1000:>8.2f} "
                f"{f['write'] * 1000:>9.1f} {f['memory']:>8.1f} {f['peak']:>9.1f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
