"""`skiff pki`: creating the cluster PKI and issuing user, component and node identities."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from skiff.cli.main import main as skiff


def kubeconfig_identity(path: Path) -> tuple[x509.Certificate, str]:
    document = yaml.safe_load(path.read_text())
    user = document["users"][0]["user"]
    cert = x509.load_pem_x509_certificate(base64.b64decode(user["client-certificate-data"]))
    return cert, document["clusters"][0]["cluster"]["server"]


def subject(cert: x509.Certificate) -> tuple[str, list[str]]:
    common = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    orgs = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    return str(common), [str(o) for o in orgs]


@pytest.fixture
def data_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    skiff(["pki", "init", "--data-dir", str(tmp_path), "--server", "https://10.0.0.5:6443"])
    capsys.readouterr()
    return tmp_path


def test_init_creates_then_keeps_the_ca(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    skiff(["pki", "init", "--data-dir", str(tmp_path), "--tls-san", "api.example.com"])
    first = capsys.readouterr().out
    assert "Created the cluster PKI" in first
    ca_before = (tmp_path / "pki" / "ca.crt").read_bytes()
    assert (tmp_path / "admin.kubeconfig").exists()
    skiff(["pki", "init", "--data-dir", str(tmp_path)])
    second = capsys.readouterr().out
    assert "Using the existing cluster PKI" in second
    assert (tmp_path / "pki" / "ca.crt").read_bytes() == ca_before


def test_show_prints_ca_fingerprint_expiry_and_sans(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    skiff(["pki", "show", "--data-dir", str(data_dir)])
    out = capsys.readouterr().out
    ca = x509.load_pem_x509_certificate((data_dir / "pki" / "ca.crt").read_bytes())
    assert "CN=skiff-ca" in out
    assert ca.fingerprint(hashes.SHA256()).hex(":").upper() in out
    assert f"{ca.not_valid_after_utc:%Y-%m-%d}" in out
    assert "10.0.0.5" in out and "kubernetes.default.svc" in out


def test_user_gets_a_kubeconfig_with_its_name_and_groups(data_dir: Path) -> None:
    out = data_dir / "alice.kubeconfig"
    skiff(["pki", "user", "alice", "--group", "dev", "--group", "ops", "--data-dir", str(data_dir), "--out", str(out)])
    cert, server = kubeconfig_identity(out)
    assert subject(cert) == ("alice", ["dev", "ops"])
    assert server == "https://10.0.0.5:6443"  # taken from the admin kubeconfig
    ca = x509.load_pem_x509_certificate((data_dir / "pki" / "ca.crt").read_bytes())
    cert.verify_directly_issued_by(ca)
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usages) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_components_get_their_system_identities(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    skiff(["pki", "components", "--data-dir", str(data_dir)])
    expected = {
        "controller-manager": "system:kube-controller-manager",
        "scheduler": "system:kube-scheduler",
        "proxy": "system:kube-proxy",
    }
    for file_name, user in expected.items():
        cert, _ = kubeconfig_identity(data_dir / "kubeconfigs" / f"{file_name}.kubeconfig")
        assert subject(cert) == (user, [])
    before = (data_dir / "kubeconfigs" / "scheduler.kubeconfig").read_bytes()
    capsys.readouterr()
    skiff(["pki", "components", "--data-dir", str(data_dir)])
    assert "kept" in capsys.readouterr().out
    assert (data_dir / "kubeconfigs" / "scheduler.kubeconfig").read_bytes() == before
    skiff(["pki", "components", "--data-dir", str(data_dir), "--force"])
    assert (data_dir / "kubeconfigs" / "scheduler.kubeconfig").read_bytes() != before


def test_node_identity_is_in_system_nodes(data_dir: Path) -> None:
    skiff(["pki", "node", "worker-1", "--data-dir", str(data_dir)])
    cert, _ = kubeconfig_identity(data_dir / "kubeconfigs" / "node-worker-1.kubeconfig")
    assert subject(cert) == ("system:node:worker-1", ["system:nodes"])


def test_issuing_without_a_ca_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="skiff pki init"):
        skiff(["pki", "user", "bob", "--data-dir", str(tmp_path)])
