"""docker-compose.yml, proven without a Docker engine.

The file is checked against the Compose specification's schema (the one Debian's docker-compose ships,
where it is installed) and for the structure the topology depends on; every command in it must be a
real `skiff` subcommand with flags that subcommand has. Then the very same topology runs as local
processes: each service with a fixed address gets its own loopback address (172.28.53.N becomes
127.0.20.N, a service name in a URL or a host flag becomes that address, `--bind 0.0.0.0` binds it),
the shared volume becomes a temporary directory, and a scratch PostgreSQL database stands in for the
postgres service. The pki job runs first, then the rest in `depends_on` order, until a Deployment of
three pods is Ready and every node's proxy routes its Service to the three pods.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import REPO_ROOT, Kubectl, kubectl_binary, postgres_database

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
# Debian's docker-compose package carries the Compose specification's JSON schema.
SPEC_SCHEMA = Path("/usr/lib/python3/dist-packages/compose/config/compose_spec.json")
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
LOOPBACK_PREFIX = "127.0.20."
HOST_FLAGS = {"--tls-san", "--advertise-address", "--node-ip", "--server"}


@cache
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


def skiff_services() -> dict[str, dict[str, Any]]:
    return {name: s for name, s in services().items() if s.get("image", "").startswith("skiff")}


def commands(service: dict[str, Any]) -> list[list[str]]:
    """Each `skiff` invocation of a service: its command after the `skiff` entrypoint, or the commands
    of a `sh -c` script."""
    entrypoint = service.get("entrypoint")
    if entrypoint and entrypoint[0] == "sh":
        script = service["command"][0]
        return [shlex.split(part) for part in script.split(";") if part.strip()]
    return [["skiff", *service["command"]]]


# ---------------------------------------------------------------------------------------------------
# The file itself


def test_compose_file_follows_the_specification() -> None:
    document = compose()
    if SPEC_SCHEMA.exists():
        import jsonschema

        jsonschema.Draft7Validator(json.loads(SPEC_SCHEMA.read_text())).validate(document)
    names = set(services())
    assert {"postgres", "pki", "apiserver-1", "apiserver-2", "controller-manager-1", "controller-manager-2",
            "scheduler", "node-1", "node-2", "node-3"} <= names  # fmt: skip
    assert services()["postgres"]["image"].startswith("postgres:")
    assert "pg_isready" in " ".join(services()["postgres"]["healthcheck"]["test"])
    assert services()["pki"]["restart"] == "no"
    for name, service in services().items():
        for dependency, rule in (service.get("depends_on") or {}).items():
            assert dependency in names, f"{name} depends on unknown {dependency}"
            assert rule["condition"] in CONDITIONS
        for mount in service.get("volumes") or []:
            assert mount.split(":")[0] in document["volumes"], f"{name}: unknown volume in {mount}"
        for network in service.get("networks") or {}:
            assert network in document["networks"]
    for replica in ("apiserver-1", "apiserver-2"):
        service = services()[replica]
        assert "/readyz" in " ".join(service["healthcheck"]["test"])
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert service["depends_on"]["pki"]["condition"] == "service_completed_successfully"
    for name, service in services().items():
        if name.startswith(("controller-manager", "scheduler", "node-")):
            assert any(rule["condition"] == "service_healthy" for rule in service["depends_on"].values())
    # Fixed addresses lie in the subnet and outside the range handed out to the other containers.
    ipam = document["networks"]["skiff"]["ipam"]["config"][0]
    subnet, dynamic = ipaddress.ip_network(ipam["subnet"]), ipaddress.ip_network(ipam["ip_range"])
    fixed = [
        s["networks"]["skiff"]["ipv4_address"] for s in services().values() if (s.get("networks") or {}).get("skiff")
    ]
    assert len(fixed) == len(set(fixed)) == 5
    for address in map(ipaddress.ip_address, fixed):
        assert address in subnet and address not in dynamic


def test_leader_election_is_on_for_every_replicated_controller() -> None:
    for name in ("controller-manager-1", "controller-manager-2", "scheduler"):
        argv = commands(services()[name])[0]
        assert argv[argv.index("--leader-elect") + 1] == "true"


@cache
def help_flags(*subcommand: str) -> frozenset[str]:
    result = subprocess.run(
        [sys.executable, "-m", "skiff", *subcommand, "--help"], capture_output=True, text=True, cwd=REPO_ROOT
    )
    assert result.returncode == 0, f"skiff {' '.join(subcommand)} --help failed:\n{result.stderr}"
    return frozenset(re.findall(r"(?<![\w-])(--[a-z0-9][a-z0-9-]*)", result.stdout))


def test_every_command_is_a_skiff_subcommand_with_real_flags() -> None:
    checked = 0
    for name, service in skiff_services().items():
        for argv in commands(service):
            assert argv[0] == "skiff", f"{name}: {argv}"
            subcommand = argv[1:3] if argv[1] == "pki" else argv[1:2]
            known = help_flags(*subcommand)
            used = [arg.split("=")[0] for arg in argv if arg.startswith("--")]
            unknown = [flag for flag in used if flag not in known]
            assert not unknown, f"{name}: `skiff {' '.join(subcommand)}` has no {unknown}"
            checked += 1
    assert checked == 14  # six in the pki job, one in each of the other eight skiff services


# ---------------------------------------------------------------------------------------------------
# The topology as local processes


class Topology:
    """Rewrites the compose services into local commands and runs them."""

    def __init__(self, root: Path, database_url: str) -> None:
        self.root = root
        self.database_url = database_url
        self.volumes = {name: root / name for name in compose()["volumes"]}
        for directory in self.volumes.values():
            directory.mkdir()
        self.addresses: dict[str, str] = {}
        for name, service in services().items():
            fixed = ((service.get("networks") or {}).get("skiff") or {}).get("ipv4_address")
            if fixed:
                self.addresses[name] = self.loopback(fixed)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    @staticmethod
    def loopback(fixed: str) -> str:
        return LOOPBACK_PREFIX + fixed.rsplit(".", 1)[1]

    def mounts(self, service: dict[str, Any]) -> dict[str, Path]:
        return {m.split(":")[1]: self.volumes[m.split(":")[0]] for m in service.get("volumes") or []}

    def rewrite(self, service_name: str, argv: list[str]) -> list[str]:
        service = services()[service_name]
        mounts = self.mounts(service)
        out: list[str] = []
        for index, arg in enumerate(argv):
            previous = argv[index - 1] if index else ""
            if previous == "--database":
                arg = self.database_url
            elif arg == "0.0.0.0":
                arg = self.addresses[service_name]
            for container_path, directory in mounts.items():
                if arg == container_path or arg.startswith(container_path + "/"):
                    arg = str(directory) + arg[len(container_path) :]
            arg = re.sub(r"\b172\.28\.53\.(\d+)\b", lambda m: LOOPBACK_PREFIX + m.group(1), arg)
            for host, address in self.addresses.items():
                arg = arg.replace(f"://{host}:", f"://{address}:")
                if previous in HOST_FLAGS and arg == host:
                    arg = address
            out.append(arg)
        return out

    def command(self, service_name: str, argv: list[str]) -> list[str]:
        assert argv[0] == "skiff"
        return [sys.executable, "-m", "skiff", *self.rewrite(service_name, argv)[1:]]

    def run_job(self, name: str) -> None:
        for argv in commands(services()[name]):
            result = subprocess.run(self.command(name, argv), capture_output=True, text=True, cwd=REPO_ROOT)
            assert result.returncode == 0, f"{name}: {argv} failed:\n{result.stdout}\n{result.stderr}"

    def start(self, name: str) -> None:
        argv = commands(services()[name])[0]
        with open(self.root / f"{name}.log", "ab") as log:
            self.processes[name] = subprocess.Popen(
                self.command(name, argv), stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT, start_new_session=True
            )

    def healthy(self, name: str) -> bool:
        test = services()[name]["healthcheck"]["test"]
        assert test[0] == "CMD" and test[1] == "python"
        script = test[-1].replace("localhost", self.addresses[name])
        for container_path, directory in self.mounts(services()[name]).items():
            script = script.replace(container_path, str(directory))
        return subprocess.run([sys.executable, *test[2:-1], script], capture_output=True).returncode == 0

    def wait_healthy(self, name: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            process = self.processes[name]
            assert process.poll() is None, f"{name} exited:\n{self.log(name)}"
            if self.healthy(name):
                return
            time.sleep(0.5)
        raise AssertionError(f"{name} did not become healthy:\n{self.log(name)}")

    def log(self, name: str) -> str:
        path = self.root / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def start_order() -> list[str]:
    """Services after the ones they depend on (the pki job and postgres are handled apart)."""
    order: list[str] = []
    pending = [name for name in skiff_services() if name != "pki"]
    while pending:
        for name in pending:
            needs = set(services()[name].get("depends_on") or {}) - {"postgres", "pki"}
            if needs <= set(order):
                order.append(name)
                pending.remove(name)
                break
        else:
            raise AssertionError(f"depends_on has a cycle among {pending}")
    return order


@pytest.fixture(scope="module")
def topology(tmp_path_factory: pytest.TempPathFactory, require_postgres: None) -> Iterator[Topology]:
    with postgres_database() as url:
        cluster = Topology(tmp_path_factory.mktemp("compose"), url)
        try:
            cluster.run_job("pki")
            for name in start_order():
                cluster.start(name)
                if "healthcheck" in services()[name]:
                    cluster.wait_healthy(name)
            yield cluster
        finally:
            cluster.stop()


def wait_for(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


@pytest.mark.postgres
@pytest.mark.kubectl
def test_the_topology_serves_a_deployment_with_routes_on_every_node(topology: Topology) -> None:
    data = topology.volumes["skiff-data"]
    kubectl = Kubectl(kubectl_binary(), data / "admin.kubeconfig")
    nodes = ["node-1", "node-2", "node-3"]

    def nodes_ready() -> bool:
        out = kubectl.run("get", "nodes", "-o", "json", check=False)
        if out.returncode:
            return False
        items = json.loads(out.stdout)["items"]
        ready = {
            n["metadata"]["name"]
            for n in items
            if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions", []))
        }
        return ready >= set(nodes)

    wait_for(nodes_ready, 60, "three Ready nodes")
    # Both replicas advertise themselves in the kubernetes Service.
    endpoints = wait_for(
        lambda: (
            len(kubectl("get", "endpoints", "kubernetes", "-o", "jsonpath={.subsets[*].addresses[*].ip}").split()) == 2
            and kubectl("get", "endpoints", "kubernetes", "-o", "jsonpath={.subsets[*].addresses[*].ip}")
        ),
        30,
        "both API servers in the kubernetes endpoints",
    )
    assert set(endpoints.split()) == {topology.addresses["apiserver-1"], topology.addresses["apiserver-2"]}

    kubectl("create", "deployment", "web", "--image=nginx", "--replicas=3")
    kubectl("expose", "deployment", "web", "--port=80")
    kubectl("rollout", "status", "deployment/web", "--timeout=90s", timeout=100)
    cluster_ip = kubectl("get", "service", "web", "-o", "jsonpath={.spec.clusterIP}")
    pod_ips = kubectl("get", "pods", "-l", "app=web", "-o", "jsonpath={.items[*].status.podIP}").split()
    assert len(pod_ips) == 3
    # The pods spread over the nodes, which run through both API servers.
    hosts = set(kubectl("get", "pods", "-l", "app=web", "-o", "jsonpath={.items[*].spec.nodeName}").split())
    assert hosts <= set(nodes) and len(hosts) >= 2

    def routed(node: str) -> bool:
        rules = data / "proxy" / node / "iptables.rules"
        text = rules.read_text() if rules.exists() else ""
        return cluster_ip in text and all(ip in text for ip in pod_ips)

    for node in nodes:
        wait_for(lambda node=node: routed(node), 30, f"{node}'s proxy to route {cluster_ip} to {pod_ips}")

    # One controller-manager and one scheduler lead; the second controller-manager stands by.
    holder = kubectl("get", "lease", "-n", "kube-system", "kube-controller-manager", "-o",
                     "jsonpath={.spec.holderIdentity}")  # fmt: skip
    assert holder
    for name in ("controller-manager-1", "controller-manager-2", "scheduler"):
        assert topology.processes[name].poll() is None, f"{name} exited:\n{topology.log(name)}"
