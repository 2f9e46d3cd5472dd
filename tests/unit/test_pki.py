"""The cluster PKI: what the API server creates on first start, reuses later, and what TLS accepts."""

from __future__ import annotations

import ipaddress
import socket
import ssl
import stat
import threading
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from skiff.pki.cluster import (
    ClusterPki,
    ensure_cluster_pki,
    identity_from_certificate,
    issue_client_certificate,
    sign_csr,
)
from skiff.pki.kubeconfig import write_kubeconfig

SERVER_URL = "https://127.0.0.1:6443"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> ClusterPki:
    return ensure_cluster_pki(tmp_path_factory.mktemp("data"), SERVER_URL, ["10.96.0.1", "skiff.example"])


def load_cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def file_bytes(pki: ClusterPki) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(pki.directory.iterdir())}


def extended_usages(cert: x509.Certificate) -> list[x509.ObjectIdentifier]:
    return list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


# --- TLS handshake helper: a one-shot server that requires a client certificate from the cluster CA.


def handshake(pki: ClusterPki, client_context: ssl.SSLContext, server_hostname: str) -> tuple[object, bytes | None]:
    """Connect once; returns (server-side result, client cert DER seen by the server or None)."""
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(pki.serving_cert, pki.serving_key)
    server_context.load_verify_locations(pki.ca_cert)
    server_context.verify_mode = ssl.CERT_REQUIRED
    listener = socket.create_server(("127.0.0.1", 0))
    outcome: dict[str, object] = {}

    def serve() -> None:
        connection, _ = listener.accept()
        try:
            with server_context.wrap_socket(connection, server_side=True) as tls:
                outcome["peer"] = tls.getpeercert(binary_form=True)
                tls.sendall(b"ok")
        except (ssl.SSLError, OSError) as error:
            outcome["error"] = error
            connection.close()

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with (
            socket.create_connection(listener.getsockname()) as raw,
            client_context.wrap_socket(raw, server_hostname=server_hostname) as tls,
        ):
            tls.recv(2)
    except (ssl.SSLError, OSError):
        pass
    thread.join(5)
    listener.close()
    return outcome.get("error"), outcome.get("peer")  # type: ignore[return-value]


def client_context(pki: ClusterPki, cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=pki.ca_cert)
    context.load_cert_chain(cert, key)
    return context


# --- first start


def test_first_start_writes_every_file_with_private_keys_owner_only(pki: ClusterPki) -> None:
    names = set(file_bytes(pki))
    assert names == {
        "ca.crt",
        "ca.key",
        "apiserver.crt",
        "apiserver.key",
        "admin.crt",
        "admin.key",
        "sa.key",
        "sa.pub",
    }
    for key_file in (
        pki.ca_key,
        pki.serving_key,
        pki.admin_key,
        pki.service_account_key,
        pki.admin_kubeconfig,
    ):
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600, key_file
    assert not list(pki.directory.glob(".*")), "no temporary files are left behind"


def test_ca_is_a_ten_year_authority_named_skiff_ca(pki: ClusterPki) -> None:
    ca = load_cert(pki.ca_cert)
    assert ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "skiff-ca"
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    lifetime = ca.not_valid_after_utc - ca.not_valid_before_utc
    assert lifetime.days >= 3650


def test_serving_and_admin_certificates_chain_to_the_ca(pki: ClusterPki) -> None:
    ca = load_cert(pki.ca_cert)
    for path in (pki.serving_cert, pki.admin_cert):
        cert = load_cert(path)
        cert.verify_directly_issued_by(ca)
        assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_serving_certificate_names_every_way_to_reach_the_server(pki: ClusterPki) -> None:
    sans = load_cert(pki.serving_cert).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    dns = set(sans.get_values_for_type(x509.DNSName))
    ips = {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)}
    assert {
        "localhost",
        socket.gethostname().lower(),
        "skiff.example",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    } <= dns
    assert {"127.0.0.1", "::1", "10.96.0.1"} <= ips
    assert "10.96.0.1" not in dns, "an address is an IP SAN, not a DNS name"


def test_usages_separate_server_and_client_certificates(pki: ClusterPki) -> None:
    assert extended_usages(load_cert(pki.serving_cert)) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert extended_usages(load_cert(pki.admin_cert)) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert load_cert(pki.admin_cert).extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature


def test_admin_identity_is_skiff_admin_in_system_masters(pki: ClusterPki) -> None:
    der = load_cert(pki.admin_cert).public_bytes(serialization.Encoding.DER)
    assert identity_from_certificate(der) == ("skiff-admin", ["system:masters"])


def test_service_account_key_pair_is_rsa_2048_and_matches(pki: ClusterPki) -> None:
    private = serialization.load_pem_private_key(pki.service_account_key.read_bytes(), None)
    public = serialization.load_pem_public_key(pki.service_account_pub.read_bytes())
    assert isinstance(private, rsa.RSAPrivateKey)
    assert private.key_size == 2048
    assert private.public_key().public_numbers() == public.public_numbers()  # type: ignore[union-attr]


def test_admin_kubeconfig_embeds_ca_client_cert_and_server(pki: ClusterPki) -> None:
    document = yaml.safe_load(pki.admin_kubeconfig.read_text())
    assert document["current-context"] == "skiff"
    assert document["contexts"] == [{"name": "skiff", "context": {"cluster": "skiff", "user": "skiff-admin"}}]
    cluster = document["clusters"][0]["cluster"]
    assert cluster["server"] == SERVER_URL
    assert "certificate-authority-data" in cluster
    assert set(document["users"][0]["user"]) == {"client-certificate-data", "client-key-data"}


# --- TLS


@pytest.mark.parametrize("hostname", ["localhost", "127.0.0.1", "kubernetes.default.svc"])
def test_tls_handshake_with_admin_certificate_identifies_the_admin(pki: ClusterPki, hostname: str) -> None:
    error, peer = handshake(pki, client_context(pki, pki.admin_cert, pki.admin_key), hostname)
    assert error is None
    assert peer is not None
    assert identity_from_certificate(peer) == ("skiff-admin", ["system:masters"])


def test_client_refuses_a_name_the_serving_certificate_does_not_cover(pki: ClusterPki) -> None:
    context = client_context(pki, pki.admin_cert, pki.admin_key)
    with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
        _connect_strict(pki, context, "not-a-cluster-name.example")


def _connect_strict(pki: ClusterPki, context: ssl.SSLContext, hostname: str) -> None:
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(pki.serving_cert, pki.serving_key)
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        connection, _ = listener.accept()
        try:
            server_context.wrap_socket(connection, server_side=True).close()
        except (ssl.SSLError, OSError):
            connection.close()

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with socket.create_connection(listener.getsockname()) as raw:
            context.wrap_socket(raw, server_hostname=hostname)
    finally:
        thread.join(5)
        listener.close()


def test_server_rejects_a_client_certificate_from_another_ca(
    pki: ClusterPki, tmp_path_factory: pytest.TempPathFactory
) -> None:
    stranger = ensure_cluster_pki(tmp_path_factory.mktemp("other"), SERVER_URL)
    context = ssl.create_default_context(cafile=pki.ca_cert)
    context.load_cert_chain(stranger.admin_cert, stranger.admin_key)
    error, peer = handshake(pki, context, "localhost")
    assert isinstance(error, ssl.SSLError)
    assert peer is None


# --- later starts


def test_restart_reuses_every_file_unchanged(pki: ClusterPki) -> None:
    before = file_bytes(pki)
    kubeconfig = pki.admin_kubeconfig.read_bytes()
    again = ensure_cluster_pki(pki.directory.parent, SERVER_URL, ["10.96.0.1", "skiff.example"])
    assert file_bytes(again) == before
    assert again.admin_kubeconfig.read_bytes() == kubeconfig


def test_new_name_reissues_only_the_serving_certificate(tmp_path: Path) -> None:
    first = ensure_cluster_pki(tmp_path, SERVER_URL, ["old.example"])
    before = file_bytes(first)
    second = ensure_cluster_pki(tmp_path, SERVER_URL, ["new.example", "192.168.7.7"])
    after = file_bytes(second)
    changed = {name for name in before if before[name] != after[name]}
    assert changed == {"apiserver.crt", "apiserver.key"}
    sans = load_cert(second.serving_cert).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"new.example", "old.example"} <= set(sans.get_values_for_type(x509.DNSName))
    assert ipaddress.ip_address("192.168.7.7") in sans.get_values_for_type(x509.IPAddress)
    load_cert(second.serving_cert).verify_directly_issued_by(load_cert(second.ca_cert))


def test_new_server_url_updates_the_admin_kubeconfig(tmp_path: Path) -> None:
    ensure_cluster_pki(tmp_path, SERVER_URL)
    pki = ensure_cluster_pki(tmp_path, "https://10.1.2.3:7443")
    document = yaml.safe_load(pki.admin_kubeconfig.read_text())
    assert document["clusters"][0]["cluster"]["server"] == "https://10.1.2.3:7443"
    sans = load_cert(pki.serving_cert).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("10.1.2.3") in sans.get_values_for_type(x509.IPAddress)


def test_a_lost_ca_regenerates_everything_signed_by_it(tmp_path: Path) -> None:
    pki = ensure_cluster_pki(tmp_path, SERVER_URL)
    pki.ca_cert.unlink()
    pki.ca_key.unlink()
    pki = ensure_cluster_pki(tmp_path, SERVER_URL)
    ca = load_cert(pki.ca_cert)
    load_cert(pki.serving_cert).verify_directly_issued_by(ca)
    load_cert(pki.admin_cert).verify_directly_issued_by(ca)


# --- issuing


def test_issued_client_certificate_carries_user_and_groups(pki: ClusterPki) -> None:
    cert_pem, key_pem = issue_client_certificate(pki, "jane", ["dev", "ops"], days=30)
    cert = x509.load_pem_x509_certificate(cert_pem)
    cert.verify_directly_issued_by(load_cert(pki.ca_cert))
    assert extended_usages(cert) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert identity_from_certificate(cert.public_bytes(serialization.Encoding.DER)) == (
        "jane",
        ["dev", "ops"],
    )
    assert 29 <= (cert.not_valid_after_utc - cert.not_valid_before_utc).days <= 31
    key = serialization.load_pem_private_key(key_pem, None)
    assert key.public_key().public_numbers() == cert.public_key().public_numbers()  # type: ignore[union-attr]


def test_issued_client_certificate_completes_a_handshake(pki: ClusterPki, tmp_path: Path) -> None:
    cert_pem, key_pem = issue_client_certificate(pki, "system:node:n1", ["system:nodes"])
    (tmp_path / "n1.crt").write_bytes(cert_pem)
    (tmp_path / "n1.key").write_bytes(key_pem)
    error, peer = handshake(pki, client_context(pki, tmp_path / "n1.crt", tmp_path / "n1.key"), "localhost")
    assert error is None
    assert identity_from_certificate(peer or b"") == ("system:node:n1", ["system:nodes"])


def _csr(common_name: str, org: str) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(subject)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("n1.example")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return request.public_bytes(serialization.Encoding.PEM)


def test_sign_csr_keeps_subject_and_names_and_applies_usages(pki: ClusterPki) -> None:
    usages = ["digital signature", "key encipherment", "client auth", "server auth"]
    cert = x509.load_pem_x509_certificate(sign_csr(pki, _csr("system:node:n1", "system:nodes"), usages, 10))
    cert.verify_directly_issued_by(load_cert(pki.ca_cert))
    assert identity_from_certificate(cert.public_bytes(serialization.Encoding.DER)) == (
        "system:node:n1",
        ["system:nodes"],
    )
    assert set(extended_usages(cert)) == {ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH}
    assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_encipherment
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["n1.example"]


def test_sign_csr_rejects_unknown_usages_and_garbage(pki: ClusterPki) -> None:
    with pytest.raises(ValueError, match="unsupported key usages: world domination"):
        sign_csr(pki, _csr("x", "y"), ["client auth", "world domination"], 10)
    with pytest.raises(ValueError):
        sign_csr(pki, b"-----BEGIN CERTIFICATE REQUEST-----\nnope\n-----END CERTIFICATE REQUEST-----\n", [], 1)


def test_write_kubeconfig_with_token_is_private(pki: ClusterPki, tmp_path: Path) -> None:
    path = write_kubeconfig(
        tmp_path / "sa.kubeconfig",
        "https://skiff.example:6443",
        pki.ca_pem(),
        token="abc.def.ghi",
        user="robot",
        context="robot@skiff",
        namespace="team-a",
    )
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    document = yaml.safe_load(path.read_text())
    assert document["users"] == [{"name": "robot", "user": {"token": "abc.def.ghi"}}]
    assert document["contexts"][0] == {
        "name": "robot@skiff",
        "context": {"cluster": "skiff", "user": "robot", "namespace": "team-a"},
    }
