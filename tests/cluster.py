"""A cluster for end-to-end tests: the module's API server plus the processes that make it a cluster
(kubelets, the scheduler, the controller-manager), each a `skiff` process with its own identity and
log. Each test module says which controllers run, how many nodes there are and which flags differ."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from tests.support import REPO_ROOT, ApiServer, Component, Kubectl, free_port


class HasLogs(Protocol):
    def volume_dir(self, node: str, pv: str) -> Path:
        """The directory of a hostpath volume on a node."""
        return self.node_data / "kubelet" / node / "host" / "var/lib/skiff/volumes" / pv

    def pod_volume_dir(self, pod: dict[str, Any], volume: str) -> Path:
        """Where the kubelet links a pod's claim-backed volume."""
        node, uid = pod["spec"]["nodeName"], pod["metadata"]["uid"]
        return self.node_data / "kubelet" / node / "pods" / uid / "volumes" / "kubernetes.io~pvc" / volume

    def logs(self) -> str: ...


def issue(server: ApiServer, *args: str) -> None:
    """`skiff pki ARGS` on the server's data directory, e.g. `issue(server, "node", "n-1")`."""
    command = [sys.executable, "-m", "skiff", "pki", *args, "--data-dir", str(server.data_dir)]
    subprocess.run(command, check=True, capture_output=True, cwd=REPO_ROOT)


def eventually(
    check: Callable[[], Any], timeout: float, what: str, cluster: HasLogs | None = None, period: float = 0.25
) -> Any:
    """The first truthy result of `check`; fails after `timeout` seconds with the cluster's logs."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s\n{cluster.logs() if cluster else ''}")
        time.sleep(period)


def condition(obj: dict[str, Any], kind: str) -> str:
    """The status of an object's condition of type `kind`, or "" without one."""
    for entry in (obj.get("status") or {}).get("conditions") or []:
        if entry.get("type") == kind:
            return entry.get("status", "")
    return ""


def ready_nodes(kubectl: Kubectl) -> set[str]:
    nodes = json.loads(kubectl("get", "nodes", "-o", "json"))["items"]
    return {n["metadata"]["name"] for n in nodes if condition(n, "Ready") == "True"}


class Cluster:
    """Kubelets for `count` nodes named `prefix + index` (one process for all of them, or one per node), a
    scheduler without leader election and a controller-manager running `controllers`. Node data (pod
    directories, hostpath volumes) lives under `work/nodes`, logs under `work`."""

    def __init__(
        self,
        server: ApiServer,
        work: Path,
        *,
        prefix: str,
        first_index: int,
        count: int,
        controllers: str,
        kubelet_per_node: bool = False,
        kubelet_flags: Sequence[str] = (),
        scheduler_flags: Sequence[str] = (),
        manager_flags: Sequence[str] = ("--leader-elect", "false"),
    ) -> None:
        self.server = server
        self.log_dir = work
        self.node_data = work / "nodes"
        self.nodes = [f"{prefix}{index}" for index in range(first_index, first_index + count)]
        self.controllers = controllers
        self.manager_flags = list(manager_flags)
        self.kubeconfigs = server.data_dir / "kubeconfigs"
        kubelet_common = ["--data-dir", str(self.node_data), "--kubeconfig-dir", str(self.kubeconfigs),
                          "--kubelet-port", str(free_port()), "--node-status-update-frequency", "1s",
                          *kubelet_flags]  # fmt: skip
        if kubelet_per_node:
            self.kubelets = {}
            for offset, name in enumerate(self.nodes):
                args = ["kubelet", "--node-name", name, "--first-node-index", str(first_index + offset)]
                self.kubelets[name] = Component(f"kubelet-{name}", [*args, *kubelet_common], work)
        else:
            args = ["kubelet", "--nodes", str(count), "--node-prefix", prefix, "--first-node-index", str(first_index)]
            self.kubelets = {"": Component("kubelet", [*args, *kubelet_common], work)}
        self.scheduler = Component("scheduler", [
            "scheduler", "--kubeconfig", str(self.kubeconfigs / "scheduler.kubeconfig"), "--leader-elect", "false",
            *scheduler_flags,
        ], work)  # fmt: skip
        self.manager = self.controller_manager("controller-manager", self.kubeconfigs / "controller-manager.kubeconfig")

    def controller_manager(self, name: str, kubeconfig: Path) -> Component:
        """A controller-manager like the cluster's own, acting with another kubeconfig."""
        args = ["controller-manager", "--kubeconfig", str(kubeconfig), "--controllers", self.controllers]
        return Component(name, [*args, *self.manager_flags], self.log_dir)

    @property
    def components(self) -> list[Component]:
        return [*self.kubelets.values(), self.scheduler, self.manager]

    def start(self) -> Cluster:
        for node in self.nodes:
            issue(self.server, "node", node)
        issue(self.server, "components")
        for component in self.components:
            component.start()
        return self

    def stop(self) -> None:
        for component in reversed(self.components):
            component.stop()

    def volume_dir(self, node: str, pv: str) -> Path:
        """The directory of a hostpath volume on a node."""
        return self.node_data / "kubelet" / node / "host" / "var/lib/skiff/volumes" / pv

    def pod_volume_dir(self, pod: dict[str, Any], volume: str) -> Path:
        """Where the kubelet links a pod's claim-backed volume."""
        node, uid = pod["spec"]["nodeName"], pod["metadata"]["uid"]
        return self.node_data / "kubelet" / node / "pods" / uid / "volumes" / "kubernetes.io~pvc" / volume

    def logs(self) -> str:
        return "\n".join(f"--- {c.name}\n{c.log()[-3000:]}" for c in reversed(self.components))


@contextlib.contextmanager
def ready_cluster(cluster: Cluster, kubectl: Kubectl, timeout: float = 60) -> Iterator[Cluster]:
    """Start the cluster, wait until each of its nodes is Ready, and stop it afterwards."""
    cluster.start()
    try:
        eventually(lambda: ready_nodes(kubectl) == set(cluster.nodes), timeout, "every node Ready", cluster)
        yield cluster
    finally:
        cluster.stop()
