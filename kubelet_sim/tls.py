"""The kubelet's HTTPS identity: its serving certificate and whom it lets read logs.

Without `--tls-cert-file` the kubelet makes itself a self-signed serving certificate (kept under
`DATA/kubelet/<node>/pki/`), as a kubelet does by default. The API server does not verify kubelet
serving certificates (kube-apiserver's default without `--kubelet-certificate-authority`); it reaches
the kubelet at the node's InternalIP. Clients must present a certificate signed by the cluster CA
(`--client-ca-file`, default: the CA in the kubelet's kubeconfig) naming the API server's kubelet
client (`system:kube-apiserver-kubelet-client`) or a member of `system:masters`.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import socket
import ssl
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

APISERVER_CLIENT = "system:kube-apiserver-kubelet-client"
ADMIN_GROUP = "system:masters"
VALIDITY_DAYS = 365


def _wanted_names(addresses: Sequence[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [x509.DNSName(socket.gethostname()), x509.DNSName("localhost")]
    names += [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
    return names


def _covers(cert_path: Path, wanted: list[x509.GeneralName]) -> bool:
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    if cert.not_valid_after_utc - datetime.datetime.now(datetime.UTC) < datetime.timedelta(days=7):
        return False
    try:
        present = list(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        return False
    return all(name in present for name in wanted)


def ensure_serving_cert(directory: Path, node: str, addresses: Sequence[str]) -> tuple[Path, Path]:
    """A self-signed serving certificate for the node's addresses (reused while it still covers them)."""
    cert_path, key_path = directory / "kubelet.crt", directory / "kubelet.key"
    wanted = _wanted_names(addresses)
    if cert_path.exists() and key_path.exists() and _covers(cert_path, wanted):
        return cert_path, key_path
    key = ec.generate_private_key(ec.SECP256R1())
    # The kubelet names its self-signed certificate `<host>@<unix time>`.
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{node}@{int(time.time())}")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALIDITY_DAYS))
        .add_extension(x509.SubjectAlternativeName(wanted), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _write(key_path, key_pem, 0o600)
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return cert_path, key_path


def _write(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(temporary, mode)
    os.replace(temporary, path)


def server_context(cert: Path, key: Path, client_ca_pem: bytes | None, client_ca_file: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert), str(key))
    cadata = client_ca_pem.decode("ascii") if client_ca_pem else None
    context.load_verify_locations(cafile=client_ca_file, cadata=cadata)
    # Optional at the TLS level so that a client without a certificate gets a 401 it can read.
    context.verify_mode = ssl.CERT_OPTIONAL
    return context


def peer_identity(peer: dict[str, Any] | None) -> tuple[str, list[str]] | None:
    """(user, groups) from a verified peer certificate (ssl's getpeercert() form), or None."""
    if not peer:
        return None
    user, groups = "", []
    for rdn in peer.get("subject", ()):
        for attribute, value in rdn:
            if attribute == "commonName":
                user = value
            elif attribute == "organizationName":
                groups.append(value)
    return user, groups


def allowed(identity: tuple[str, list[str]]) -> bool:
    user, groups = identity
    return user == APISERVER_CLIENT or ADMIN_GROUP in groups
