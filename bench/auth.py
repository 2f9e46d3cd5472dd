"""Authentication and authorization cost: GETs/s of one ConfigMap per identity, with RBAC and without.

    python bench/auth.py                          # 3 repetitions, 8 s per measurement
    python bench/auth.py --reps 5 --bindings 1000 --json auth.json --profile-dir /tmp/prof

One cluster (SQLite, in a temporary data directory) holds a ConfigMap `bench-auth/target` and
`--bindings` RoleBindings for other users, spread over 50 namespaces, plus the two that let this
benchmark's service account and user read ConfigMaps in `bench-auth`. Three identities GET the
ConfigMap with 32 keep-alive connections (the Go load generator):

- admin: the admin client certificate (system:masters);
- service account: a bearer token from the TokenRequest API for `bench-auth/reader`;
- RBAC user: a client certificate from `skiff pki user bench-reader`, allowed only by its RoleBinding.

After seeding, the stopped server's data directory is copied, and two API servers run side by side over
the same data: one with the default authorizers (Node,RBAC), one with `--authorization-mode
AlwaysAllow`. Each repetition measures every identity on both servers in adjacent windows (alternating
which goes first); an identity's ratio is its RBAC GETs/s over its AlwaysAllow GETs/s from the same
repetition, and the table shows the medians. The idle server costs next to nothing while the other is
measured. --profile-dir adds one uncounted pass per server under py-spy.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import common
import yaml
from common import Identity, Target, apiserver, build_loadgen, create, loadgen, log, median, profiling_pid

NAMESPACE = "bench-auth"
CONFIGMAP_PATH = f"/api/v1/namespaces/{NAMESPACE}/configmaps/target"
OTHER_NAMESPACES = 50
CLIENTS = 32
USER = "bench-reader"
SERVICE_ACCOUNT = "reader"
IDENTITIES = ("admin", "service-account", "rbac-user")
MODES = {"rbac": [], "always-allow": ["--authorization-mode", "AlwaysAllow"]}
AIM = 0.8


def role(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"namespace": namespace, "name": "configmap-reader"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}],
    }


def binding(namespace: str, name: str, subject: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"namespace": namespace, "name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "configmap-reader"},
        "subjects": [subject],
    }


def user_subject(name: str) -> dict[str, str]:
    return {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": name}


def seed(target: Target, bindings: int, workdir: Path) -> dict[str, Identity]:
    """The ConfigMap, the RoleBindings, and the three identities (files under `workdir`)."""
    namespaces = [NAMESPACE] + [f"bench-auth-{i:02d}" for i in range(1, OTHER_NAMESPACES)]
    rbac = "/apis/rbac.authorization.k8s.io/v1/namespaces"
    with target.client(timeout=60.0) as client:
        for namespace in namespaces:
            body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
            create(client, "/api/v1/namespaces", body)
            create(client, f"{rbac}/{namespace}/roles", role(namespace))
        configmap = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "target"}, "data": {"k": "v"}}
        create(client, f"/api/v1/namespaces/{NAMESPACE}/configmaps", configmap)
        began = time.monotonic()
        for i in range(bindings):
            namespace = namespaces[i % len(namespaces)]
            create(client, f"{rbac}/{namespace}/rolebindings", binding(namespace, f"other-{i}", user_subject(f"u{i}")))
        log(f"  {bindings} RoleBindings for other users in {time.monotonic() - began:.1f} s")
        sa = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": SERVICE_ACCOUNT}}
        create(client, f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts", sa)
        sa_subject = {"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": NAMESPACE}
        create(client, f"{rbac}/{NAMESPACE}/rolebindings", binding(NAMESPACE, "reader-sa", sa_subject))
        create(client, f"{rbac}/{NAMESPACE}/rolebindings", binding(NAMESPACE, "reader-user", user_subject(USER)))
        request = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": 7200},
        }
        token = create(
            client, f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts/{SERVICE_ACCOUNT}/token", request, (201,)
        )
    token_file = workdir / "reader.token"
    token_file.write_text(token["status"]["token"])
    token_file.chmod(0o600)
    return {
        "admin": target.admin,
        "service-account": Identity(token_file=token_file),
        "rbac-user": user_identity(target, workdir),
    }


def user_identity(target: Target, workdir: Path) -> Identity:
    """`skiff pki user bench-reader`: a kubeconfig whose certificate and key go into files for the loader."""
    kubeconfig = workdir / f"{USER}.kubeconfig"
    command = [sys.executable, "-m", "skiff.cli.main", "pki", "user", USER, "--data-dir", str(target.data_dir)]
    subprocess.run([*command, "--out", str(kubeconfig)], check=True, capture_output=True, cwd=common.SOURCE, timeout=60)
    user = yaml.safe_load(kubeconfig.read_text())["users"][0]["user"]
    cert, key = workdir / f"{USER}.crt", workdir / f"{USER}.key"
    cert.write_bytes(base64.b64decode(user["client-certificate-data"]))
    key.write_bytes(base64.b64decode(user["client-key-data"]))
    key.chmod(0o600)
    return Identity(cert, key)


def warm_up(target: Target, identities: dict[str, Identity]) -> None:
    """A few hundred GETs per identity, which must all answer 200 (and fill any per-identity caches)."""
    for name, identity in identities.items():
        warm = loadgen(target, ["-mode", "get", "-path", CONFIGMAP_PATH, "-c", "4", "-n", "300"], 60, identity)
        if warm["errors"]:
            raise RuntimeError(f"{name} on {target.name}: {warm['status']} {warm.get('first_error', '')}")


def measure(target: Target, identity: Identity, duration: float) -> dict[str, Any]:
    args = ["-mode", "get", "-path", CONFIGMAP_PATH, "-c", str(CLIENTS), "-duration", f"{duration}s"]
    return loadgen(target, args, duration + 60, identity)


def main() -> None:
    parser = argparse.ArgumentParser(description="GETs/s per identity, with RBAC and with AlwaysAllow.")
    parser.add_argument("--reps", type=int, default=5, help="measurement pairs per identity")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per GET measurement")
    parser.add_argument("--bindings", type=int, default=1000, help="RoleBindings for other users")
    parser.add_argument("--json", type=Path, help="also write every repetition and the summary here")
    parser.add_argument("--profile-dir", type=Path, help="py-spy each server in an extra, uncounted pass")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data directory")
    parser.add_argument("--source", type=Path, default=common.REPO, help="tree to run the API server from")
    args = parser.parse_args()
    if not 1 <= args.reps <= 10 or not 1 <= args.duration <= 60 or not 0 <= args.bindings <= 20_000:
        sys.exit("bench: --reps 1..10, --duration 1..60, --bindings 0..20000")
    common.stop_on_sigterm()
    common.use_source(args.source)
    build_loadgen()
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="skiff-bench-auth-"))
    runs: list[dict[str, dict[str, dict[str, Any]]]] = []
    try:
        log(f"seeding: {args.bindings} RoleBindings over {OTHER_NAMESPACES} namespaces")
        with apiserver(workdir / "rbac", name="seed") as target:
            identities = seed(target, args.bindings, workdir)
        # The same data for the second server: a copy of the stopped first one (database, PKI, keys).
        shutil.copytree(workdir / "rbac", workdir / "always-allow")
        with contextlib.ExitStack() as stack:
            targets = {
                mode: stack.enter_context(apiserver(workdir / mode, extra_args=extra, name=mode))
                for mode, extra in MODES.items()
            }
            for target in targets.values():
                warm_up(target, identities)
            for mode, target in targets.items():
                stem = args.profile_dir / f"auth-{mode}" if args.profile_dir else None
                with profiling_pid(target.pid, stem):
                    for identity in identities.values():
                        measure(target, identity, args.duration)
            for rep in range(args.reps):
                run: dict[str, dict[str, dict[str, Any]]] = {mode: {} for mode in MODES}
                for name, identity in identities.items():
                    # Adjacent windows, alternating which server goes first, so drift on a shared
                    # machine does not favour one side.
                    order = list(MODES) if rep % 2 == 0 else list(reversed(MODES))
                    for mode in order:
                        result = run[mode][name] = measure(targets[mode], identity, args.duration)
                        lat = result["latency_ms"]
                        log(
                            f"  #{rep + 1} {mode:<12} {name:<15} {result['rps']:>7.0f}/s p50 {lat['p50']} ms "
                            f"p99 {lat['p99']} ms (server {result['server_cores']} cores, "
                            f"client {result['client_cores']} cores)"
                        )
                runs.append(run)
    finally:
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    summary: dict[str, dict[str, float]] = {}
    for name in IDENTITIES:
        summary[name] = {
            "rbac_gets_per_s": median([r["rbac"][name]["rps"] for r in runs]),
            "always_allow_gets_per_s": median([r["always-allow"][name]["rps"] for r in runs]),
            "ratio": median([r["rbac"][name]["rps"] / r["always-allow"][name]["rps"] for r in runs]),
            "rbac_p50_ms": median([r["rbac"][name]["latency_ms"]["p50"] for r in runs]),
            "always_allow_p50_ms": median([r["always-allow"][name]["latency_ms"]["p50"] for r in runs]),
            "rbac_server_cores": median([r["rbac"][name]["server_cores"] for r in runs]),
        }
    print()
    print(f"GET {CONFIGMAP_PATH}, {CLIENTS} connections, {args.bindings + 2} RoleBindings; medians of {args.reps} runs")
    head = f"{'identity':<17}{'RBAC/s':>9}{'AlwaysAllow/s':>15}{'ratio':>8}{'p50 RBAC ms':>13}{'p50 AA ms':>11}"
    print(head + f"{'server cores':>14}   aim")
    print("-" * (len(head) + 20))
    for name, row in summary.items():
        print(
            f"{name:<17}{row['rbac_gets_per_s']:>9,.0f}{row['always_allow_gets_per_s']:>15,.0f}{row['ratio']:>8.2f}"
            f"{row['rbac_p50_ms']:>13.1f}{row['always_allow_p50_ms']:>11.1f}{row['rbac_server_cores']:>14.2f}"
            f"   ratio >= {AIM}"
        )
    elapsed = time.monotonic() - started
    print(f"\n{platform.node()}: {os.cpu_count()} CPUs, Python {platform.python_version()}, {elapsed:.0f} s in all")
    common.write_json(args.json, {"summary": summary, "runs": runs, "reps": args.reps, "bindings": args.bindings})


if __name__ == "__main__":
    main()
