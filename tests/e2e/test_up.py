"""`skiff up`, `skiff status`, `skiff down`: the local cluster as its user drives it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import REPO_ROOT, Kubectl, free_port, kubectl_binary

pytestmark = pytest.mark.kubectl


@dataclass
class LocalCluster:
    data_dir: Path
    port: int
    kubelet_port: int
    dns_port: int

    def flags(self) -> list[str]:
        return ["--data-dir", str(self.data_dir), "--port", str(self.port), "--kubelet-port", str(self.kubelet_port),
                "--dns-port", str(self.dns_port)]  # fmt: skip

    def skiff(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "skiff", *args], capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT
        )

    def up(self, *extra: str) -> subprocess.CompletedProcess[str]:
        result = self.skiff("up", "--detach", *self.flags(), *extra)
        assert result.returncode == 0, f"skiff up failed:\n{result.stdout}\n{result.stderr}\n{self.logs()}"
        return result

    def down(self) -> subprocess.CompletedProcess[str]:
        return self.skiff("down", "--data-dir", str(self.data_dir), timeout=60)

    def status(self) -> subprocess.CompletedProcess[str]:
        return self.skiff("status", "--data-dir", str(self.data_dir), timeout=30)

    def state(self) -> dict[str, object]:
        return json.loads((self.data_dir / "cluster.json").read_text())

    def kubectl(self) -> Kubectl:
        return Kubectl(kubectl_binary(), self.data_dir / "admin.kubeconfig")

    def logs(self) -> str:
        up_log = self.data_dir / "logs" / "up.log"
        return up_log.read_text(errors="replace")[-3000:] if up_log.exists() else ""


def new_cluster(tmp_path: Path) -> LocalCluster:
    return LocalCluster(tmp_path / "skiff data", free_port(), free_port(), free_port())


def processes_of(data_dir: Path) -> list[str]:
    """Every process whose command line names the data directory."""
    ps = subprocess.run(["ps", "-ww", "-eo", "pid=,args="], capture_output=True, text=True, check=True).stdout
    return [line.strip() for line in ps.splitlines() if str(data_dir) in line]


def wait_for_no_processes(data_dir: Path, timeout: float = 30) -> list[str]:
    deadline = time.monotonic() + timeout
    while (left := processes_of(data_dir)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def wait_until(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    local = new_cluster(tmp_path_factory.mktemp("up"))
    local.up("--nodes", "3")
    yield local
    local.down()
    wait_for_no_processes(local.data_dir)


def ready_deployment(kubectl: Kubectl, name: str, replicas: int = 3, timeout: str = "90s") -> None:
    kubectl("create", "deployment", name, "--image=nginx", f"--replicas={replicas}")
    kubectl("rollout", "status", f"deployment/{name}", f"--timeout={timeout}", timeout=120)
    ready = kubectl("get", "deployment", name, "-o", "jsonpath={.status.readyReplicas}")
    assert ready == str(replicas)


def test_up_detach_returns_with_every_node_ready_and_kubectl_works(cluster: LocalCluster) -> None:
    kubectl = cluster.kubectl()
    nodes = kubectl("get", "nodes", "--no-headers").splitlines()
    assert [line.split()[:2] for line in nodes] == [[f"skiff-node-{i}", "Ready"] for i in (1, 2, 3)]
    assert "default" in kubectl("get", "namespaces")
    ready_deployment(kubectl, "first")
    # DNS and per-node proxies are part of the cluster.
    state = cluster.state()
    assert set(state["components"]) == {  # type: ignore[arg-type]
        "apiserver", "controller-manager", "scheduler", "dns",
        *(f"{kind}-skiff-node-{i}" for kind in ("kubelet", "proxy") for i in (1, 2, 3)),
    }  # fmt: skip


def test_status_shows_components_nodes_and_the_kubeconfig(cluster: LocalCluster) -> None:
    result = cluster.status()
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert f"https://127.0.0.1:{cluster.port}: Ready" in out
    for component in (
        "apiserver",
        "controller-manager",
        "scheduler",
        "dns",
        "kubelet-skiff-node-2",
        "proxy-skiff-node-3",
    ):
        line = next(line for line in out.splitlines() if line.startswith(component + " "))
        assert "running" in line
    for node in ("skiff-node-1", "skiff-node-2", "skiff-node-3"):
        assert any(line.split() == [node, "Ready"] for line in out.splitlines())
    assert f"export KUBECONFIG={cluster.data_dir / 'admin.kubeconfig'}" in out


def test_a_killed_component_is_restarted_and_the_cluster_recovers(cluster: LocalCluster) -> None:
    components = cluster.state()["components"]
    scheduler_pid = components["scheduler"]["pid"]  # type: ignore[index]
    os.kill(scheduler_pid, signal.SIGKILL)

    def restarted() -> bool:
        scheduler = cluster.state()["components"]["scheduler"]  # type: ignore[index]
        return scheduler["restarts"] >= 1 and scheduler["pid"] != scheduler_pid and scheduler["state"] == "running"

    wait_until(restarted, 30, "the supervisor to restart the scheduler")
    status = cluster.status().stdout
    line = next(line for line in status.splitlines() if line.startswith("scheduler "))
    assert line.split()[-1] == "1" and "running" in line
    # The new scheduler takes the lease over once the dead one's expires, and schedules new pods.
    ready_deployment(cluster.kubectl(), "after-crash", timeout="110s")


def test_down_stops_every_process_and_up_brings_the_same_cluster_back(cluster: LocalCluster) -> None:
    kubectl = cluster.kubectl()
    kubectl("create", "configmap", "keepsake", "--from-literal=answer=42")
    assert len(processes_of(cluster.data_dir)) >= 11  # the supervisor and its ten components
    result = cluster.down()
    assert result.returncode == 0 and "Skiff stopped." in result.stdout
    assert wait_for_no_processes(cluster.data_dir) == []
    assert cluster.status().returncode == 3
    cluster.up("--nodes", "3")
    assert kubectl("get", "configmap", "keepsake", "-o", "jsonpath={.data.answer}") == "42"
    assert "first" in kubectl("get", "deployments")
    assert len(kubectl("get", "nodes", "--no-headers").splitlines()) == 3


def test_a_second_up_on_a_running_data_dir_is_refused(cluster: LocalCluster) -> None:
    result = cluster.skiff("up", "--detach", *cluster.flags())
    assert result.returncode == 1
    assert "already running" in result.stderr


def test_ctrl_c_on_a_foreground_up_leaves_no_process(tmp_path: Path) -> None:
    local = new_cluster(tmp_path)
    process = subprocess.Popen(
        [sys.executable, "-m", "skiff", "up", "--nodes", "2", *local.flags()],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO_ROOT,
    )
    try:
        wait_until(
            lambda: (local.data_dir / "cluster.json").exists() and local.state().get("ready"), 90, "a Ready cluster"
        )
        assert len(processes_of(local.data_dir)) >= 8  # up, API server, 3 controllers/DNS, 2 kubelets, 2 proxies
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0
    assert f"export KUBECONFIG={local.data_dir / 'admin.kubeconfig'}" in out
    assert "Skiff stopped." in out
    assert wait_for_no_processes(local.data_dir) == []
    assert not (local.data_dir / "cluster.json").exists()


def test_up_refuses_a_port_in_use(tmp_path: Path) -> None:
    local = new_cluster(tmp_path)
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", local.port))
        busy.listen()
        result = local.skiff("up", "--nodes", "1", *local.flags())
    assert result.returncode == 1
    assert f"127.0.0.1:{local.port}/tcp (--port)" in result.stderr
    assert processes_of(local.data_dir) == []
