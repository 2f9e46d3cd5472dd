"""`skiff dns`: cluster names answered over UDP and TCP, asked with dig and with a Python resolver."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.resolver
import httpx
import pytest

from tests.support import REPO_ROOT, ApiServer, controller_manager, free_port

MERGE = {"Content-Type": "application/merge-patch+json"}


@pytest.fixture(scope="module")
def dig() -> str:
    found = shutil.which("dig")
    if found is None:
        pytest.fail("dig is not installed (Debian: apt-get install -y dnsutils); the DNS tests need it")
    return found


@pytest.fixture(scope="module")
def dns_port(apiserver: ApiServer) -> Iterator[int]:
    port = free_port()
    log_path = apiserver.data_dir / "dns.log"
    command = [sys.executable, "-m", "skiff", "dns", "--kubeconfig", str(apiserver.kubeconfig), "--port", str(port)]
    with controller_manager(apiserver, "endpointslice"), open(log_path, "ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT)
        try:
            wait_until_answering(port, process, log_path.read_text)
            yield port
        finally:
            process.terminate()
            process.wait(15)


def wait_until_answering(port: int, process: subprocess.Popen[bytes], log: Callable[[], str]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"skiff dns exited with {process.returncode}:\n{log()}")
        try:
            if rcode(port, "kubernetes.default.svc.cluster.local") == dns.rcode.NOERROR:
                return
        except (dns.exception.Timeout, OSError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"skiff dns did not answer in time:\n{log()}")


def rcode(port: int, name: str, kind: str = "A", tcp: bool = False) -> int:
    query = dns.message.make_query(name, kind)
    send = dns.query.tcp if tcp else dns.query.udp
    return send(query, "127.0.0.1", port=port, timeout=2).rcode()


def resolver(port: int) -> dns.resolver.Resolver:
    r = dns.resolver.Resolver(configure=False)
    r.nameservers = ["127.0.0.1"]
    r.port = port
    r.lifetime = 3
    r.cache = None
    return r


def run_dig(dig: str, port: int, *args: str) -> str:
    result = subprocess.run([dig, "@127.0.0.1", "-p", str(port), "+time=2", "+tries=1", *args],
                            capture_output=True, text=True, timeout=20)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def api(apiserver: ApiServer) -> Iterator[httpx.Client]:
    with apiserver.client(timeout=30) as client:
        yield client


@pytest.fixture
def ns(api: httpx.Client) -> str:
    name = f"dns-{uuid.uuid4().hex[:8]}"
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    assert api.post("/api/v1/namespaces", json=body).status_code == 201
    return name


def eventually(check: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def make_service(api: httpx.Client, ns: str, name: str, **spec: Any) -> dict[str, Any]:
    body = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}
    response = api.post(f"/api/v1/namespaces/{ns}/services", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def make_pod(api: httpx.Client, ns: str, name: str, ip: str, ready: bool = True, **spec: Any) -> None:
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "db"}},
        "spec": {
            "containers": [{"name": "db", "image": "postgres", "ports": [{"name": "pg", "containerPort": 5432}]}],
            **spec,
        },
    }
    assert api.post(f"/api/v1/namespaces/{ns}/pods", json=body).status_code == 201
    status = {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
              "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}  # fmt: skip
    response = api.patch(f"/api/v1/namespaces/{ns}/pods/{name}/status", json={"status": status}, headers=MERGE)
    assert response.status_code == 200, response.text


def test_dig_finds_a_service_by_name_over_udp_and_tcp(api: httpx.Client, dig: str, dns_port: int, ns: str) -> None:
    ip = make_service(api, ns, "web", ports=[{"name": "http", "port": 80}])["spec"]["clusterIP"]
    name = f"web.{ns}.svc.cluster.local"
    assert eventually(lambda: run_dig(dig, dns_port, name, "+short").split(), what="the A record") == [ip]
    assert run_dig(dig, dns_port, name, "+short", "+tcp").split() == [ip]
    full = run_dig(dig, dns_port, name)
    assert "status: NOERROR" in full and " aa" in full.split("flags:")[1].split(";")[0]
    assert run_dig(dig, dns_port, "kubernetes.default.svc.cluster.local", "+short").split() == ["10.96.0.1"]


def test_unknown_names_are_nxdomain_and_other_zones_refused(dig: str, dns_port: int, ns: str) -> None:
    assert "status: NXDOMAIN" in run_dig(dig, dns_port, f"nothing.{ns}.svc.cluster.local")
    assert "status: NXDOMAIN" in run_dig(dig, dns_port, "web.nonexistent-ns.svc.cluster.local")
    assert "status: REFUSED" in run_dig(dig, dns_port, "example.com")
    with pytest.raises(dns.resolver.NXDOMAIN):
        resolver(dns_port).resolve(f"nothing.{ns}.svc.cluster.local", "A")


def test_a_headless_service_answers_its_ready_pods(api: httpx.Client, dig: str, dns_port: int, ns: str) -> None:
    make_service(api, ns, "db", clusterIP="None", selector={"app": "db"},
                 ports=[{"name": "pg", "port": 5432, "targetPort": "pg"}])  # fmt: skip
    make_pod(api, ns, "db-0", "10.244.7.10", hostname="db-0", subdomain="db")
    make_pod(api, ns, "db-1", "10.244.7.11")
    make_pod(api, ns, "db-2", "10.244.7.12", ready=False)
    name = f"db.{ns}.svc.cluster.local"

    def answers() -> list[str] | None:
        found = sorted(run_dig(dig, dns_port, name, "+short").split())
        return found if found == ["10.244.7.10", "10.244.7.11"] else None

    eventually(answers, what="the ready pods of the headless service")
    r = resolver(dns_port)
    assert [a.address for a in r.resolve(f"db-0.db.{ns}.svc.cluster.local", "A")] == ["10.244.7.10"]

    srv = r.resolve(f"_pg._tcp.db.{ns}.svc.cluster.local", "SRV")
    assert sorted((record.port, str(record.target)) for record in srv) == [
        (5432, f"10-244-7-11.db.{ns}.svc.cluster.local."),
        (5432, f"db-0.db.{ns}.svc.cluster.local."),
    ]

    # Readiness is followed: db-2 becomes ready and appears.
    status = {"conditions": [{"type": "Ready", "status": "True"}]}
    api.patch(f"/api/v1/namespaces/{ns}/pods/db-2/status", json={"status": status}, headers=MERGE)
    eventually(lambda: "10.244.7.12" in run_dig(dig, dns_port, name, "+short"), what="db-2 in the answer")


def test_srv_pod_and_external_name_records_with_a_python_resolver(api: httpx.Client, dns_port: int, ns: str) -> None:
    ports = [{"name": "http", "port": 80}, {"name": "dns", "port": 53, "protocol": "UDP"}]
    ip = make_service(api, ns, "web", ports=ports)["spec"]["clusterIP"]
    make_service(api, ns, "ext", type="ExternalName", externalName="db.example.com")
    make_pod(api, ns, "p", "10.244.8.5")
    r = resolver(dns_port)
    service_name = f"web.{ns}.svc.cluster.local."

    def srv() -> Any:
        try:
            return r.resolve(f"_http._tcp.web.{ns}.svc.cluster.local", "SRV")
        except dns.resolver.NXDOMAIN:
            return None

    answer = eventually(srv, what="the SRV record")
    assert [(record.port, str(record.target)) for record in answer] == [(80, service_name)]
    udp = r.resolve(f"_dns._udp.web.{ns}.svc.cluster.local", "SRV")
    assert [(record.port, str(record.target)) for record in udp] == [(53, service_name)]
    with pytest.raises(dns.resolver.NXDOMAIN):
        r.resolve(f"_dns._tcp.web.{ns}.svc.cluster.local", "SRV")
    assert [a.address for a in r.resolve(service_name, "A")] == [ip]

    assert [a.address for a in r.resolve(f"10-244-8-5.{ns}.pod.cluster.local", "A")] == ["10.244.8.5"]
    with pytest.raises(dns.resolver.NXDOMAIN):
        r.resolve(f"10-244-8-6.{ns}.pod.cluster.local", "A")

    cname = r.resolve(f"ext.{ns}.svc.cluster.local", "CNAME")
    assert [str(record.target) for record in cname] == ["db.example.com."]


def test_answers_follow_the_cluster(api: httpx.Client, dns_port: int, ns: str) -> None:
    make_service(api, ns, "short-lived", ports=[{"port": 80}])
    name = f"short-lived.{ns}.svc.cluster.local"
    eventually(lambda: rcode(dns_port, name) == dns.rcode.NOERROR, what="the new service to resolve")
    assert api.delete(f"/api/v1/namespaces/{ns}/services/short-lived").status_code == 200
    eventually(lambda: rcode(dns_port, name, tcp=True) == dns.rcode.NXDOMAIN, what="the deleted service to go")
