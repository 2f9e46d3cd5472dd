"""CertificateSigningRequests end to end with the real kubectl: request, approve, sign, authenticate."""

from __future__ import annotations

import base64
import datetime
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from skiff.pki.kubeconfig import write_kubeconfig
from tests.support import REPO_ROOT, ApiServer, Kubectl, kubectl_binary

CLIENT = "kubernetes.io/kube-apiserver-client"
KUBELET = "kubernetes.io/kube-apiserver-client-kubelet"

pytestmark = pytest.mark.kubectl


@pytest.fixture(scope="module")
def signer(apiserver: ApiServer) -> Iterator[subprocess.Popen[bytes]]:
    log = open(apiserver.data_dir / "csr-signer.log", "ab")  # noqa: SIM115 - the child process owns it
    process = subprocess.Popen(
        [
            sys.executable, "-m", "controllers.manager", "--kubeconfig", str(apiserver.kubeconfig),
            "--controllers", "csrsigning", "--leader-elect", "false",
            "--cluster-signing-cert-file", str(apiserver.ca_cert),
            "--cluster-signing-key-file", str(apiserver.data_dir / "pki" / "ca.key"),
        ],
        stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT,
    )  # fmt: skip
    yield process
    process.terminate()
    process.wait(10)


def key_and_request(common_name: str, groups: list[str]) -> tuple[ec.EllipticCurvePrivateKey, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, g) for g in groups]
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    request = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attributes)).sign(key, hashes.SHA256())
    return key, request.public_bytes(serialization.Encoding.PEM)


def manifest(name: str, request_pem: bytes, signer: str = CLIENT, **spec: object) -> str:
    document = {
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"name": name},
        "spec": {
            "request": base64.b64encode(request_pem).decode(),
            "signerName": signer,
            "usages": ["client auth"],
            **spec,
        },
    }
    return yaml.safe_dump(document)


def get_csr(kubectl: Kubectl, name: str) -> dict:
    return json.loads(kubectl("get", "csr", name, "-o", "json"))


def wait_condition(kubectl: Kubectl, name: str, condition: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition in condition_types(get_csr(kubectl, name)):
            return
        time.sleep(0.2)
    raise AssertionError(f"{name} never got a {condition} condition: {get_csr(kubectl, name)}")


def wait_issued(kubectl: Kubectl, name: str, timeout: float = 20) -> x509.Certificate:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = get_csr(kubectl, name).get("status") or {}
        if status.get("certificate"):
            return x509.load_pem_x509_certificate(base64.b64decode(status["certificate"]))
        time.sleep(0.2)
    raise AssertionError(f"{name} was not signed: {get_csr(kubectl, name)}")


def condition_types(obj: dict) -> list[str]:
    return [c["type"] for c in (obj.get("status") or {}).get("conditions") or []]


def test_a_user_gets_a_certificate_and_authenticates_with_it(
    apiserver: ApiServer, kubectl: Kubectl, signer: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    key, request_pem = key_and_request("jane", ["dev"])
    created = kubectl("create", "-f", "-", input=manifest("jane", request_pem, expirationSeconds=3600))
    assert "created" in created
    pending = get_csr(kubectl, "jane")
    # The requester is who created the request, as the API server saw it.
    assert pending["spec"]["username"] == "skiff-admin"
    assert "system:masters" in pending["spec"]["groups"]
    assert "Pending" in kubectl("get", "csr", "jane")

    assert "approved" in kubectl("certificate", "approve", "jane")
    cert = wait_issued(kubectl, "jane")
    assert "Approved,Issued" in kubectl("get", "csr", "jane")
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "jane"
    ca = x509.load_pem_x509_certificate(apiserver.ca_cert.read_bytes())
    cert.verify_directly_issued_by(ca)
    lifetime = cert.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
    assert datetime.timedelta(minutes=55) < lifetime <= datetime.timedelta(hours=1)

    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    issued = base64.b64decode(get_csr(kubectl, "jane")["status"]["certificate"])
    kubeconfig = write_kubeconfig(
        tmp_path / "jane.kubeconfig", apiserver.url, apiserver.ca_cert.read_bytes(), issued, key_pem, user="jane"
    )
    jane = Kubectl(kubectl_binary(), kubeconfig)
    whoami = json.loads(jane("auth", "whoami", "-o", "json"))
    assert whoami["status"]["userInfo"]["username"] == "jane"
    assert "dev" in whoami["status"]["userInfo"]["groups"]


def test_denied_failed_and_foreign_requests_get_no_certificate(
    kubectl: Kubectl, signer: subprocess.Popen[bytes]
) -> None:
    _key, denied_pem = key_and_request("mallory", ["dev"])
    kubectl("create", "-f", "-", input=manifest("mallory", denied_pem))
    assert "denied" in kubectl("certificate", "deny", "mallory")

    # The kubelet signer only signs system:node:<name> in system:nodes.
    _key, bad_kubelet_pem = key_and_request("jane", ["system:nodes"])
    kubectl("create", "-f", "-", input=manifest("fake-node", bad_kubelet_pem, KUBELET))
    kubectl("certificate", "approve", "fake-node")

    # A signer this cluster does not implement is left to whoever implements it.
    _key, foreign_pem = key_and_request("svc", [])
    kubectl("create", "-f", "-", input=manifest("foreign", foreign_pem, "example.com/custom"))
    kubectl("certificate", "approve", "foreign")

    # Once this one is issued (and the refusal recorded) the signer has seen the others.
    _key, node_pem = key_and_request("system:node:worker-1", ["system:nodes"])
    kubectl("create", "-f", "-", input=manifest("node-worker-1", node_pem, KUBELET))
    kubectl("certificate", "approve", "node-worker-1")
    node_cert = wait_issued(kubectl, "node-worker-1")
    assert node_cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "system:nodes"

    wait_condition(kubectl, "fake-node", "Failed")
    denied = get_csr(kubectl, "mallory")
    assert condition_types(denied) == ["Denied"] and "certificate" not in denied.get("status", {})
    failed = get_csr(kubectl, "fake-node")
    assert condition_types(failed) == ["Approved", "Failed"] and "certificate" not in failed["status"]
    reason = next(c for c in failed["status"]["conditions"] if c["type"] == "Failed")
    assert reason["reason"] == "SignerValidationFailure" and "system:node:" in reason["message"]
    foreign = get_csr(kubectl, "foreign")
    assert condition_types(foreign) == ["Approved"] and "certificate" not in foreign["status"]
    assert "Denied" in kubectl("get", "csr", "mallory")


def test_a_decision_cannot_be_reversed(apiserver: ApiServer, kubectl: Kubectl) -> None:
    _key, request_pem = key_and_request("eve", [])
    kubectl("create", "-f", "-", input=manifest("eve", request_pem))
    kubectl("certificate", "deny", "eve")
    approval = "/apis/certificates.k8s.io/v1/certificatesigningrequests/eve/approval"
    approved = {"type": "Approved", "status": "True", "reason": "Changed", "message": "changed my mind"}
    with apiserver.client(timeout=30) as client:
        both = get_csr(kubectl, "eve")
        both["status"]["conditions"].append(approved)
        response = client.put(approval, json=both)
        assert response.status_code == 422, response.text
        assert "mutually exclusive" in response.json()["message"]
        replaced = get_csr(kubectl, "eve")
        replaced["status"]["conditions"] = [approved]
        response = client.put(approval, json=replaced)
        assert response.status_code == 422, response.text
        assert 'may not remove a condition of type "Denied"' in response.json()["message"]
    assert condition_types(get_csr(kubectl, "eve")) == ["Denied"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"request": base64.b64encode(b"not a request").decode()}, "CERTIFICATE REQUEST"),
        ({"expirationSeconds": 300}, "may not specify a duration less than 600 seconds"),
        ({"usages": ["client auth", "flying"]}, 'Unsupported value: "flying"'),
    ],
)
def test_invalid_requests_are_refused(kubectl: Kubectl, spec: dict, message: str) -> None:
    _key, request_pem = key_and_request("someone", [])
    document = yaml.safe_load(manifest("invalid", request_pem))
    document["spec"].update(spec)
    result = kubectl.run("create", "-f", "-", input=yaml.safe_dump(document), check=False)
    assert result.returncode != 0
    assert "is invalid" in result.stderr and message in result.stderr


def test_requests_for_system_masters_are_forbidden(kubectl: Kubectl) -> None:
    _key, request_pem = key_and_request("root", ["system:masters"])
    result = kubectl.run("create", "-f", "-", input=manifest("root", request_pem), check=False)
    assert result.returncode != 0
    assert "Forbidden" in result.stderr and "system:masters" in result.stderr


def test_the_requester_cannot_be_forged(kubectl: Kubectl) -> None:
    _key, request_pem = key_and_request("forged", [])
    document = yaml.safe_load(manifest("forged", request_pem, username="someone-else", groups=["admins"]))
    kubectl("create", "-f", "-", input=yaml.safe_dump(document))
    stored = get_csr(kubectl, "forged")
    assert stored["spec"]["username"] == "skiff-admin"
    assert "admins" not in stored["spec"]["groups"]
