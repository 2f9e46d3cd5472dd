"""The secrets-injector example end to end: its webhook injects the agent into an annotated pod, a
simulated kubelet sets up the pod's volumes, the agent (run by hand: the simulated runtime runs no
processes) fetches the secret with the pod's own projected token, and the secrets service refuses
forged, expired and other-namespace tokens.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.cluster import eventually, issue
from tests.support import REPO_ROOT, ApiServer, Component, Kubectl, free_port

EXAMPLE = REPO_ROOT / "examples" / "secrets-injector"
NODE = "inject-node-1"
SECRET = "correct-horse-battery-staple"


def _wait_https(url: str, ca: Path, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, verify=str(ca), timeout=2)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not come up")


@pytest.fixture(scope="module")
def cluster(apiserver: ApiServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    work = tmp_path_factory.mktemp("secrets-injector")
    certs = work / "certs"
    subprocess.run(
        [
            sys.executable,
            str(EXAMPLE / "gencerts.py"),
            "--out",
            str(certs),
            "--dns",
            "secrets-injector.secrets-injector.svc",
        ],
        check=True,
        capture_output=True,
    )
    webhook_port, secrets_port = free_port(), free_port()
    tls = ["--cert", str(certs / "tls.crt"), "--key", str(certs / "tls.key")]
    webhook = Component("webhook", [*tls, "--port", str(webhook_port)], work, program=[str(EXAMPLE / "webhook.py")])
    secrets = Component("secrets", [
        "--kubeconfig", str(apiserver.kubeconfig), "--secrets", str(EXAMPLE / "manifests" / "secrets.json"),
        *tls, "--port", str(secrets_port),
    ], work, program=[str(EXAMPLE / "secrets_service.py")])  # fmt: skip
    issue(apiserver, "node", NODE)
    kubelet = Component("kubelet", [
        "kubelet", "--node-name", NODE, "--first-node-index", "77", "--data-dir", str(work / "node"),
        "--kubeconfig-dir", str(apiserver.data_dir / "kubeconfigs"), "--kubelet-port", str(free_port()),
        "--image-pull-duration", "100ms", "--volume-refresh-period", "1s", "--node-status-update-frequency", "1s",
    ], work)  # fmt: skip
    for component in (webhook, secrets, kubelet):
        component.start()
    try:
        _wait_https(f"https://127.0.0.1:{webhook_port}/healthz", certs / "ca.crt")
        _wait_https(f"https://127.0.0.1:{secrets_port}/", certs / "ca.crt")
        yield {
            "work": work,
            "certs": certs,
            "webhook_port": webhook_port,
            "secrets_url": f"https://127.0.0.1:{secrets_port}",
            "node_dir": work / "node" / "kubelet" / NODE,
        }
    finally:
        for component in (kubelet, secrets, webhook):
            component.stop()


@pytest.fixture(scope="module")
def http(apiserver: ApiServer) -> Iterator[httpx.Client]:
    with apiserver.client(timeout=30) as client:
        yield client


def apply_example(kubectl: Kubectl, cluster: dict[str, Any]) -> None:
    bundle = base64.b64encode((cluster["certs"] / "ca.crt").read_bytes()).decode()
    injector = (EXAMPLE / "manifests" / "injector.yaml").read_text()
    injector = injector.replace("CA_BUNDLE", bundle).replace("port: 8443", f"port: {cluster['webhook_port']}")
    kubectl("apply", "-f", "-", input=injector)
    kubectl("apply", "-f", str(EXAMPLE / "manifests" / "app.yaml"))


def publish_root_ca(http: httpx.Client, apiserver: ApiServer, namespace: str) -> None:
    """What the controller-manager's root-CA publisher does; pods' token volumes need it."""
    body = {"metadata": {"name": "kube-root-ca.crt"}, "data": {"ca.crt": apiserver.ca_cert.read_text()}}
    assert http.post(f"/api/v1/namespaces/{namespace}/configmaps", json=body).status_code in (201, 409)


def create_pod(http: httpx.Client, cluster: dict[str, Any]) -> dict[str, Any]:
    pod = yaml.safe_load((EXAMPLE / "manifests" / "pod.yaml").read_text())
    pod["metadata"]["annotations"]["vault.hashicorp.com/service"] = cluster["secrets_url"]
    pod["spec"]["nodeName"] = NODE
    response = http.post("/api/v1/namespaces/team-a/pods", json=pod)
    assert response.status_code == 201, response.text
    return response.json()


def token_for(http: httpx.Client, namespace: str, account: str) -> str:
    if http.get(f"/api/v1/namespaces/{namespace}").status_code == 404:
        http.post("/api/v1/namespaces", json={"metadata": {"name": namespace}})
    http.post(f"/api/v1/namespaces/{namespace}/serviceaccounts", json={"metadata": {"name": account}})
    request = {"spec": {"expirationSeconds": 3600}}
    response = http.post(f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token", json=request)
    assert response.status_code == 201, response.text
    return response.json()["status"]["token"]


def ask(cluster: dict[str, Any], namespace: str, token: str) -> httpx.Response:
    return httpx.get(
        f"{cluster['secrets_url']}/v1/secrets/{namespace}/db-password",
        headers={"Authorization": f"Bearer {token}"},
        verify=str(cluster["certs"] / "ca.crt"),
    )


def test_injected_pod_gets_its_secret_through_the_agent(
    cluster: dict[str, Any], kubectl: Kubectl, http: httpx.Client, apiserver: ApiServer
) -> None:
    apply_example(kubectl, cluster)
    publish_root_ca(http, apiserver, "team-a")
    created = create_pod(http, cluster)
    spec = created["spec"]
    assert created["metadata"]["annotations"]["vault.hashicorp.com/agent-inject-status"] == "injected"
    assert [c["name"] for c in spec["initContainers"]] == ["vault-agent-init"]
    assert [c["name"] for c in spec["containers"]] == ["web", "vault-agent"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["vault-secrets"]["emptyDir"] == {"medium": "Memory"}
    token_source = volumes["vault-token"]["projected"]["sources"][0]["serviceAccountToken"]
    assert token_source["path"] == "token"
    for container in spec["initContainers"] + spec["containers"]:
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        assert mounts["vault-secrets"] == "/vault/secrets"

    def running() -> bool:
        pod = http.get("/api/v1/namespaces/team-a/pods/web").json()
        return pod.get("status", {}).get("phase") == "Running"

    try:
        eventually(running, 60, "the pod to run")
    except AssertionError:
        raise AssertionError(json.dumps(http.get("/api/v1/namespaces/team-a/pods/web").json().get("status"))) from None
    uid = created["metadata"]["uid"]
    volumes_dir = cluster["node_dir"] / "pods" / uid / "volumes"
    secrets_dir = volumes_dir / "kubernetes.io~empty-dir" / "vault-secrets"
    token_file = volumes_dir / "kubernetes.io~projected" / "vault-token" / "token"
    assert secrets_dir.is_dir()
    eventually(token_file.exists, 30, "the projected token")
    result = subprocess.run(
        [sys.executable, str(EXAMPLE / "agent.py"), "--service-url", cluster["secrets_url"],
         "--ca-file", str(cluster["certs"] / "ca.crt"), "--token-file", str(token_file), "--namespace", "team-a",
         "--out-dir", str(secrets_dir), "--secret", "db-password=db-password", "--once"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (secrets_dir / "db-password").read_text() == SECRET
    # The pod's token is bound to the pod's namespace: it cannot read team-b's secret.
    assert ask(cluster, "team-b", token_file.read_text()).status_code == 403


def test_pods_without_the_annotation_are_left_alone(
    cluster: dict[str, Any], kubectl: Kubectl, http: httpx.Client
) -> None:
    apply_example(kubectl, cluster)
    pod = {"metadata": {"name": "plain"}, "spec": {"containers": [{"name": "app", "image": "nginx"}]}}
    created = http.post("/api/v1/namespaces/team-a/pods", json=pod).json()
    assert [c["name"] for c in created["spec"]["containers"]] == ["app"]
    assert "initContainers" not in created["spec"]


def test_secrets_service_refuses_forged_expired_and_foreign_tokens(
    cluster: dict[str, Any], apiserver: ApiServer, http: httpx.Client
) -> None:
    good = token_for(http, "team-a", "reader")
    allowed = ask(cluster, "team-a", good)
    assert allowed.status_code == 200
    assert allowed.json()["value"] == SECRET

    foreign = token_for(http, "team-b", "reader")
    refused = ask(cluster, "team-a", foreign)
    assert refused.status_code == 403
    assert "system:serviceaccount:team-b:reader" in refused.json()["reason"]
    assert ask(cluster, "team-b", foreign).json()["value"] == "team-b-only"

    header = jwt.get_unverified_header(good)
    claims = jwt.decode(good, options={"verify_signature": False})
    forger = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    forged = jwt.encode(claims, forger, algorithm="ES256", headers={"kid": header.get("kid")})
    assert ask(cluster, "team-a", forged).status_code == 401

    now = int(time.time())
    expired_claims = {**claims, "iat": now - 7200, "nbf": now - 7200, "exp": now - 3600}
    signing_key = (apiserver.data_dir / "pki" / "sa.key").read_bytes()
    expired = jwt.encode(expired_claims, signing_key, algorithm=header["alg"], headers={"kid": header.get("kid")})
    answer = ask(cluster, "team-a", expired)
    assert answer.status_code == 401
    assert answer.json()["error"] == "unauthorized"
    assert ask(cluster, "team-a", "not-a-token").status_code == 401
    assert json.loads(ask(cluster, "team-a", good).text)["name"] == "db-password"
