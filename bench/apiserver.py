"""API server benchmark: creates/s, GETs/s, LIST of 10,000 pods and watch delivery latency.

Starts the API server itself in a temporary data directory, on SQLite and on PostgreSQL (a scratch
database, created and dropped), drives it with the compiled load generator in bench/loadgen (built into
bench/bin/ on first use), and measures the same client load against a bare ASGI endpoint served like the
API server (bench/baseline_asgi.py) to give this machine's HTTP ceiling. Each measurement is repeated
and the median of the repetitions is reported.

    python bench/apiserver.py                     # both backends, 3 repetitions
    python bench/apiserver.py --backends sqlite --reps 1 --duration 5
    python bench/apiserver.py --json results.json --profile-dir /tmp/prof

Figures only; nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import common
from common import (
    BENCH,
    POD_TEMPLATE,
    REPO,
    Target,
    answers,
    apiserver,
    build_loadgen,
    create_namespace,
    free_port,
    loadgen,
    log,
    median,
    profiling,
    running,
)

POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"

LIST_SIZE = 10_000
PAGE_SIZE = 500
CLIENTS = 32
WATCHERS = 100
WATCH_RATE = 200.0

AIMS = {
    "creates_per_s": ">= 1500 (SQLite)",
    "watch_p99_ms": "<= 50",
    "list_whole_p99_ms": "<= 500",
}


# -- servers ----------------------------------------------------------------------------------------


@contextlib.contextmanager
def baseline(data_dir: Path) -> Iterator[Target]:
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    # -P: this folder holds apiserver.py, which must not shadow the apiserver package.
    command = [sys.executable, "-P", str(BENCH / "baseline_asgi.py"), "--data-dir", str(data_dir)]
    command += ["--port", str(port)]
    ready = lambda _pid: answers(url, data_dir, "/")  # noqa: E731
    with running(command, data_dir.parent / "baseline.log", ready, "bare ASGI server") as pid:
        yield Target("bare-asgi", url, data_dir, pid)


@contextlib.contextmanager
def scratch_database() -> Iterator[str]:
    import asyncpg

    name = f"skiff_bench_{os.getpid()}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(POSTGRES_ADMIN_URL)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


# -- measurements -----------------------------------------------------------------------------------


@dataclass
class Settings:
    reps: int
    duration: float
    list_runs: int
    watch_seconds: float
    profile_dir: Path | None
    phases: set[str] = field(default_factory=set)


def create_pod(target: Target, namespace: str, name: str) -> None:
    body = json.loads(POD_TEMPLATE.read_text().replace("{{NAME}}", name))
    with target.client() as client:
        response = client.post(f"/api/v1/namespaces/{namespace}/pods", json=body)
        if response.status_code != 201:
            raise RuntimeError(f"create pod: {response.status_code} {response.text[:300]}")


def repeat(label: str, reps: int, run: Callable[[int], dict[str, Any]]) -> list[dict[str, Any]]:
    results = []
    for rep in range(reps):
        result = run(rep)
        results.append(result)
        log(f"  {label} #{rep + 1}: {brief(result)}")
    return results


def brief(result: dict[str, Any]) -> str:
    cores = f"server {result['server_cores']} cores, client {result['client_cores']} cores"
    if result["mode"] in ("post", "get"):
        lat = result["latency_ms"]
        errors = f", {result['errors']} errors" if result["errors"] else ""
        return f"{result['rps']:.0f}/s, p50 {lat['p50']} ms, p99 {lat['p99']} ms{errors} ({cores})"
    if result["mode"] == "list":
        return (
            f"{result['items_per_list']} items in {result['pages_per_list']} pages, "
            f"list p50 {result['list_ms']['p50']} ms, p99 {result['list_ms']['p99']} ms, "
            f"page p50 {result['page_ms']['p50']} ms ({cores})"
        )
    lat = result["latency_ms"]
    return (
        f"{result['achieved_rate']:.0f} creates/s, {result['events_received']}/{result['events_expected']} events, "
        f"p50 {lat['p50']} ms, p99 {lat['p99']} ms ({cores})"
    )


def load_args(mode: str, path: str, duration: float, extra: list[str] | None = None) -> list[str]:
    args = ["-mode", mode, "-path", path, "-c", str(CLIENTS), "-duration", f"{duration}s"]
    if mode == "post":
        args += ["-body", str(POD_TEMPLATE)]
    return args + (extra or [])


def measure_http(target: Target, settings: Settings, prefix: str) -> dict[str, list[dict[str, Any]]]:
    """Creates/s and GETs/s with 32 concurrent keep-alive clients."""
    runs: dict[str, list[dict[str, Any]]] = {}
    limit = settings.duration + 60
    collection = "/api/v1/namespaces/bench-create/pods"
    if "create" in settings.phases:
        with profiling(target, settings.profile_dir, "create"):
            runs["create"] = repeat(
                f"{target.name} creates, {CLIENTS} clients",
                settings.reps,
                lambda rep: loadgen(
                    target,
                    load_args("post", collection, settings.duration, ["-prefix", f"{prefix}{rep}"]),
                    limit,
                ),
            )
    if "get" in settings.phases:
        path = "/api/v1/namespaces/bench-get/pods/target"
        with profiling(target, settings.profile_dir, "get"):
            runs["get"] = repeat(
                f"{target.name} GETs, {CLIENTS} clients",
                settings.reps,
                lambda _rep: loadgen(target, load_args("get", path, settings.duration), limit),
            )
    return runs


def measure_apiserver(target: Target, settings: Settings) -> dict[str, list[dict[str, Any]]]:
    for namespace in ("bench-create", "bench-get", "bench-list", "bench-watch"):
        create_namespace(target, namespace)
    create_pod(target, "bench-get", "target")
    runs = measure_http(target, settings, "c")

    list_path = "/api/v1/namespaces/bench-list/pods"
    if "list" in settings.phases:
        log(f"  seeding {LIST_SIZE} pods")
        seeded = loadgen(
            target,
            [*load_args("post", list_path, 120), "-prefix", "l", "-n", str(LIST_SIZE)],
            180,
        )
        if seeded["ok"] != LIST_SIZE:
            raise RuntimeError(f"seeding created {seeded['ok']} of {LIST_SIZE} pods")
        log(f"  seeded at {seeded['rps']:.0f}/s")
        for label, limit in (("list_whole", 0), (f"list_pages_{PAGE_SIZE}", PAGE_SIZE)):
            args = ["-mode", "list", "-path", list_path, "-n", str(settings.list_runs), "-limit", str(limit)]
            with profiling(target, settings.profile_dir, label):
                runs[label] = repeat(
                    f"{target.name} LIST {LIST_SIZE}" + (f" in pages of {limit}" if limit else ""),
                    settings.reps,
                    lambda _rep, args=args: loadgen(target, args, 300),  # type: ignore[misc]
                )

    if "watch" in settings.phases:
        watch_path = "/api/v1/namespaces/bench-watch/pods"

        def watch(rep: int) -> dict[str, Any]:
            args = ["-mode", "watch", "-path", watch_path, "-body", str(POD_TEMPLATE), "-prefix", f"w{rep}"]
            args += ["-watchers", str(WATCHERS), "-rate", str(WATCH_RATE), "-c", str(CLIENTS)]
            args += ["-duration", f"{settings.watch_seconds}s", "-grace", "5s"]
            return loadgen(target, args, settings.watch_seconds + 90)

        with profiling(target, settings.profile_dir, "watch"):
            runs["watch"] = repeat(
                f"{target.name} watch, {WATCHERS} watchers, {WATCH_RATE:.0f} creates/s", settings.reps, watch
            )
    return runs


# -- summary ----------------------------------------------------------------------------------------


def pick(runs: dict[str, list[dict[str, Any]]], phase: str, *path: str) -> float | None:
    if phase not in runs:
        return None
    values = []
    for result in runs[phase]:
        value: Any = result
        for key in path:
            value = value[key]
        values.append(float(value))
    return median(values)


def summarise(results: dict[str, dict[str, list[dict[str, Any]]]]) -> dict[str, dict[str, float | None]]:
    ceiling = results.get("bare-asgi", {})
    post_ceiling = pick(ceiling, "create", "rps")
    get_ceiling = pick(ceiling, "get", "rps")
    table: dict[str, dict[str, float | None]] = {}
    for name, runs in results.items():
        row: dict[str, float | None] = {
            "creates_per_s": pick(runs, "create", "rps"),
            "create_p50_ms": pick(runs, "create", "latency_ms", "p50"),
            "create_p99_ms": pick(runs, "create", "latency_ms", "p99"),
            "create_server_cores": pick(runs, "create", "server_cores"),
            "create_client_cores": pick(runs, "create", "client_cores"),
            "gets_per_s": pick(runs, "get", "rps"),
            "get_p50_ms": pick(runs, "get", "latency_ms", "p50"),
            "get_p99_ms": pick(runs, "get", "latency_ms", "p99"),
        }
        if name != "bare-asgi":
            creates, gets = row["creates_per_s"], row["gets_per_s"]
            row["creates_pct_of_ceiling"] = (
                round(100 * creates / post_ceiling, 1) if creates is not None and post_ceiling else None
            )
            row["gets_pct_of_ceiling"] = (
                round(100 * gets / get_ceiling, 1) if gets is not None and get_ceiling else None
            )
            row.update(
                {
                    "list_whole_p50_ms": pick(runs, "list_whole", "list_ms", "p50"),
                    "list_whole_p99_ms": pick(runs, "list_whole", "list_ms", "p99"),
                    "list_paged_p50_ms": pick(runs, f"list_pages_{PAGE_SIZE}", "list_ms", "p50"),
                    "list_paged_p99_ms": pick(runs, f"list_pages_{PAGE_SIZE}", "list_ms", "p99"),
                    "list_page_p50_ms": pick(runs, f"list_pages_{PAGE_SIZE}", "page_ms", "p50"),
                    "list_page_p99_ms": pick(runs, f"list_pages_{PAGE_SIZE}", "page_ms", "p99"),
                    "watch_p50_ms": pick(runs, "watch", "latency_ms", "p50"),
                    "watch_p99_ms": pick(runs, "watch", "latency_ms", "p99"),
                    "watch_from_request_p99_ms": pick(runs, "watch", "from_request_ms", "p99"),
                    "watch_achieved_rate": pick(runs, "watch", "achieved_rate"),
                    "watch_events_missed": pick_missed(runs),
                    "watch_server_cores": pick(runs, "watch", "server_cores"),
                }
            )
        table[name] = row
    return table


def pick_missed(runs: dict[str, list[dict[str, Any]]]) -> float | None:
    if "watch" not in runs:
        return None
    return median([r["events_expected"] - r["events_received"] for r in runs["watch"]])


LABELS = {
    "creates_per_s": "pod creates/s (32 clients)",
    "create_p50_ms": "  create latency p50 ms",
    "create_p99_ms": "  create latency p99 ms",
    "create_server_cores": "  server CPU, cores busy",
    "create_client_cores": "  load generator CPU, cores busy",
    "creates_pct_of_ceiling": "  % of bare ASGI POST/s",
    "gets_per_s": "pod GETs/s (32 clients)",
    "get_p50_ms": "  GET latency p50 ms",
    "get_p99_ms": "  GET latency p99 ms",
    "gets_pct_of_ceiling": "  % of bare ASGI GET/s",
    "list_whole_p50_ms": f"LIST {LIST_SIZE} whole p50 ms",
    "list_whole_p99_ms": f"LIST {LIST_SIZE} whole p99 ms",
    "list_paged_p50_ms": f"LIST {LIST_SIZE} by {PAGE_SIZE}s, all pages p50 ms",
    "list_paged_p99_ms": f"LIST {LIST_SIZE} by {PAGE_SIZE}s, all pages p99 ms",
    "list_page_p50_ms": f"  one page of {PAGE_SIZE} p50 ms",
    "list_page_p99_ms": f"  one page of {PAGE_SIZE} p99 ms",
    "watch_p50_ms": f"watch delivery p50 ms ({WATCHERS} watchers)",
    "watch_p99_ms": f"watch delivery p99 ms ({WATCHERS} watchers)",
    "watch_from_request_p99_ms": "  from create sent, p99 ms",
    "watch_achieved_rate": f"  creates/s achieved (target {WATCH_RATE:.0f})",
    "watch_events_missed": "  events not received",
    "watch_server_cores": "  server CPU, cores busy",
}


def format_table(table: dict[str, dict[str, float | None]], reps: int) -> str:
    columns = list(table)
    keys = [k for k in LABELS if any(table[c].get(k) is not None for c in columns)]
    width = max(len(LABELS[k]) for k in keys) + 2
    head = "".join(f"{c:>12}" for c in columns) + "   aim"
    lines = [f"medians of {reps} runs".ljust(width) + head, "-" * (width + len(head))]
    for key in keys:
        cells = []
        for column in columns:
            value = table[column].get(key)
            cells.append(f"{'':>12}" if value is None else f"{value:>12,.1f}")
        lines.append(LABELS[key].ljust(width) + "".join(cells) + "   " + AIMS.get(key, ""))
    return "\n".join(lines)


# -- main -------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description="Benchmark the Skiff API server on SQLite and PostgreSQL.")
    parser.add_argument("--backends", default="sqlite,postgres", help="comma-separated: sqlite, postgres")
    parser.add_argument("--phases", default="create,get,list,watch", help="comma-separated subset to run")
    parser.add_argument("--reps", type=int, default=3, help="repetitions of each measurement")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per creates/GETs run")
    parser.add_argument("--list-runs", type=int, default=5, help="full lists per LIST repetition")
    parser.add_argument("--watch-seconds", type=float, default=10.0, help="seconds of paced writes per watch run")
    parser.add_argument("--no-baseline", action="store_true", help="skip the bare ASGI ceiling")
    parser.add_argument("--json", type=Path, help="also write all results and the summary here")
    parser.add_argument("--profile-dir", type=Path, help="record py-spy profiles of the server per phase here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data directories")
    parser.add_argument("--source", type=Path, default=REPO, help="tree to run the API server from (default: this)")
    args = parser.parse_args()
    common.use_source(args.source)
    if not 1 <= args.reps <= 10 or not 1 <= args.duration <= 60 or not 1 <= args.watch_seconds <= 60:
        sys.exit("bench: --reps must be 1..10, --duration and --watch-seconds 1..60")
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    settings = Settings(
        reps=args.reps,
        duration=args.duration,
        list_runs=max(1, min(args.list_runs, 50)),
        watch_seconds=args.watch_seconds,
        profile_dir=args.profile_dir,
        phases={p.strip() for p in args.phases.split(",")},
    )
    build_loadgen()
    log(f"API server from {common.SOURCE}")
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="skiff-bench-"))
    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    try:
        for backend in backends:
            data_dir = workdir / backend
            if backend == "sqlite":
                log("SQLite")
                with apiserver(data_dir, None) as target:
                    results[backend] = measure_apiserver(target, settings)
            elif backend == "postgres":
                log("PostgreSQL")
                with scratch_database() as url, apiserver(data_dir, url) as target:
                    results[backend] = measure_apiserver(target, settings)
            else:
                sys.exit(f"bench: unknown backend {backend!r}")
        if not args.no_baseline and {"create", "get"} & settings.phases and backends:
            log("bare ASGI endpoint (the HTTP ceiling)")
            with baseline(workdir / backends[0]) as target:
                results["bare-asgi"] = measure_http(target, settings, "b")
    finally:
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    table = summarise(results)
    print()
    print(format_table(table, settings.reps))
    elapsed = time.monotonic() - started
    print(f"\n{platform.node()}: {os.cpu_count()} CPUs, Python {platform.python_version()}, {elapsed:.0f} s in all")
    if args.json:
        payload = {"summary": table, "runs": results, "reps": settings.reps, "aims": AIMS}
        args.json.write_text(json.dumps(payload, indent=2))
        log(f"wrote {args.json}")


if __name__ == "__main__":
    main()
