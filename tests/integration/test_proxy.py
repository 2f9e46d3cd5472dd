"""The proxy as a process against a real API server: tables for two nodes, kept current as an
EndpointSlice changes; `skiff trace` and `skiff routes` reading the same cluster."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import REPO_ROOT, ApiServer, free_port


def wait_for(condition: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def node(name: str, ip: str, cidr: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name},
        "spec": {"podCIDR": cidr, "podCIDRs": [cidr]},
    }, {"status": {"addresses": [{"type": "InternalIP", "address": ip}]}}


def endpoint(ip: str, node_name: str, pod: str) -> dict:
    return {
        "addresses": [ip],
        "conditions": {"ready": True, "serving": True, "terminating": False},
        "nodeName": node_name,
        "targetRef": {"kind": "Pod", "namespace": "default", "name": pod},
    }


@pytest.fixture(scope="module")
def cluster(apiserver: ApiServer) -> Iterator[httpx.Client]:
    with apiserver.client(timeout=10) as client:
        for name, ip, cidr in (("pn1", "10.0.0.1", "10.244.1.0/24"), ("pn2", "10.0.0.2", "10.244.2.0/24")):
            body, status = node(name, ip, cidr)
            assert client.post("/api/v1/nodes", json=body).status_code == 201
            patched = client.patch(
                f"/api/v1/nodes/{name}/status", json=status, headers={"Content-Type": "application/merge-patch+json"}
            )
            assert patched.status_code == 200, patched.text
        service = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "type": "NodePort",
                "clusterIP": "10.96.0.50",
                "selector": {"app": "web"},
                "ports": [{"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30180}],
            },
        }
        created = client.post("/api/v1/namespaces/default/services", json=service)
        assert created.status_code == 201, created.text
        endpoint_slice = {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {"name": "web-1", "namespace": "default", "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [endpoint("10.244.1.5", "pn1", "web-a"), endpoint("10.244.2.5", "pn2", "web-b")],
        }
        created = client.post("/apis/discovery.k8s.io/v1/namespaces/default/endpointslices", json=endpoint_slice)
        assert created.status_code == 201, created.text
        yield client


@pytest.fixture(scope="module")
def proxy(
    apiserver: ApiServer, cluster: httpx.Client, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, int]]:
    data_dir = tmp_path_factory.mktemp("proxy")
    port = free_port()
    command = [
        sys.executable, "-m", "skiff", "proxy", "--kubeconfig", str(apiserver.kubeconfig), "--nodes", "2",
        "--node-prefix", "pn", "--mode", "iptables", "--data-dir", str(data_dir), "--metrics-port", str(port),
        "--min-sync-period", "0.2",
    ]  # fmt: skip
    log = open(data_dir / "proxy.log", "wb")  # noqa: SIM115 - the child process owns it
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT)
    try:
        yield data_dir, port
    finally:
        process.terminate()
        try:
            assert process.wait(15) == 0, (data_dir / "proxy.log").read_text()
        finally:
            if process.poll() is None:
                process.kill()


def rules(data_dir: Path, node_name: str) -> str:
    path = data_dir / "proxy" / node_name / "iptables.rules"
    return path.read_text() if path.exists() else ""


def test_tables_for_two_nodes_follow_an_endpoint_slice_change(
    proxy: tuple[Path, int], cluster: httpx.Client, apiserver: ApiServer
) -> None:
    data_dir, port = proxy
    for name in ("pn1", "pn2"):
        wait_for(lambda name=name: "--to-destination 10.244.2.5:8080" in rules(data_dir, name), what=f"{name} tables")
        text = rules(data_dir, name)
        assert '-A KUBE-SERVICES -m comment --comment "default/web:http cluster IP" -m tcp -p tcp -d 10.96.0.50' in text
        assert "-A KUBE-NODEPORTS -m comment --comment default/web:http -m tcp -p tcp --dport 30180" in text
        assert "--probability 0.5000000000" in text

    # A third endpoint: both nodes' tables move to three equal shares.
    path = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/web-1"
    current = cluster.get(path).json()
    current["endpoints"].append(endpoint("10.244.2.6", "pn2", "web-c"))
    assert cluster.put(path, json=current).status_code == 200
    for name in ("pn1", "pn2"):
        wait_for(lambda name=name: "--to-destination 10.244.2.6:8080" in rules(data_dir, name), what=f"{name} update")
        assert "--probability 0.3333333333" in rules(data_dir, name)

    served = httpx.get(f"http://127.0.0.1:{port}/tables/pn2/iptables", timeout=5)
    assert served.status_code == 200 and "--to-destination 10.244.2.6:8080" in served.text
    metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    assert 'kubeproxy_sync_proxy_rules_total{mode="iptables",node="pn1",table="nat"}' in metrics

    # The slice goes away: the Service has no endpoints and is rejected.
    assert cluster.delete(path).status_code == 200
    wait_for(lambda: "default/web:http has no endpoints" in rules(data_dir, "pn1"), what="REJECT rule")

    env = {**os.environ, "KUBECONFIG": str(apiserver.kubeconfig)}
    routes = subprocess.run(
        [sys.executable, "-m", "skiff", "routes", "--node", "pn1", "--proxy-url", f"http://127.0.0.1:{port}"],
        capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=30,
    )  # fmt: skip
    assert routes.returncode == 0, routes.stderr
    assert routes.stdout.startswith("# iptables-save\n*filter\n")
    assert "has no endpoints" in routes.stdout


def test_trace_reads_the_cluster_from_the_api(apiserver: ApiServer, cluster: httpx.Client) -> None:
    pods = [
        ("client", "10.244.1.9", "pn1", {"app": "client"}),
        ("db", "10.244.2.9", "pn2", {"app": "db"}),
    ]
    for name, ip, node_name, labels in pods:
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "labels": labels},
            "spec": {
                "nodeName": node_name,
                "containers": [{"name": "c", "image": "busybox", "ports": [{"containerPort": 5432}]}],
            },
        }
        assert cluster.post("/api/v1/namespaces/default/pods", json=pod).status_code == 201
        status = {"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}}
        patched = cluster.patch(
            f"/api/v1/namespaces/default/pods/{name}/status", json=status,
            headers={"Content-Type": "application/merge-patch+json"},
        )  # fmt: skip
        assert patched.status_code == 200, patched.text
    deny = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "db-deny", "namespace": "default"},
        "spec": {"podSelector": {"matchLabels": {"app": "db"}}},
    }
    assert cluster.post("/apis/networking.k8s.io/v1/namespaces/default/networkpolicies", json=deny).status_code == 201
    result = subprocess.run(
        [sys.executable, "-m", "skiff", "trace", "client", "db", "--kubeconfig", str(apiserver.kubeconfig)],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=30,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "pod default/client  IP 10.244.1.9  node pn1" in result.stdout
    assert "isolated for ingress by default/db-deny" in result.stdout
    assert "verdict: denied" in result.stdout
