"""The cluster's certificate authority and the certificates and keys issued from it.

On first start the API server creates a CA, its own serving certificate, an admin client certificate,
the service-account signing key pair and an admin kubeconfig under the data directory. Later starts reuse
them, so kubeconfigs handed out earlier keep working; only the serving certificate is re-issued when a
newly requested host name or address is missing from it (or when it nears expiry).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from skiff.pki.files import write_file_atomically
from skiff.pki.kubeconfig import ADMIN_USER, kubeconfig_bytes

CA_COMMON_NAME = "skiff-ca"
ADMIN_GROUP = "system:masters"
CA_VALIDITY_DAYS = 3650
SERVING_VALIDITY_DAYS = 365
# Re-issue the serving certificate at start when it would expire within this window.
SERVING_RENEW_BEFORE = datetime.timedelta(days=30)
# Tolerate small clock differences between the machine that issues and the one that verifies.
CLOCK_SKEW = datetime.timedelta(minutes=5)
IN_CLUSTER_DNS_NAMES = (
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True)
class ClusterPki:
    """Where the cluster's certificates and keys live."""

    directory: Path
    ca_cert: Path
    ca_key: Path
    serving_cert: Path
    serving_key: Path
    admin_cert: Path
    admin_key: Path
    service_account_key: Path
    service_account_pub: Path
    admin_kubeconfig: Path

    @classmethod
    def under(cls, data_dir: Path) -> ClusterPki:
        pki = data_dir / "pki"
        return cls(
            directory=pki,
            ca_cert=pki / "ca.crt",
            ca_key=pki / "ca.key",
            serving_cert=pki / "apiserver.crt",
            serving_key=pki / "apiserver.key",
            admin_cert=pki / "admin.crt",
            admin_key=pki / "admin.key",
            service_account_key=pki / "sa.key",
            service_account_pub=pki / "sa.pub",
            admin_kubeconfig=data_dir / "admin.kubeconfig",
        )

    def ca_pem(self) -> bytes:
        return self.ca_cert.read_bytes()


# ---------------------------------------------------------------------------------------------------
# Files


def _private_key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _load_private_key(path: Path) -> PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise ValueError(f"{path}: unsupported key type")
    return key


def _load_cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _new_ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


# ---------------------------------------------------------------------------------------------------
# Certificate building


def _subject(common_name: str, organizations: Iterable[str] = ()) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations]
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key: CertificatePublicKeyTypes, days: float
) -> x509.CertificateBuilder:
    now = _now()
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _key_usage(
    digital_signature: bool = True, key_encipherment: bool = False, cert_sign: bool = False
) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _create_ca() -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _new_ec_key()
    name = _subject(CA_COMMON_NAME)
    cert = (
        _builder(name, name, key.public_key(), CA_VALIDITY_DAYS)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert, key


@dataclass(frozen=True)
class _Authority:
    cert: x509.Certificate
    key: PrivateKey

    @classmethod
    def load(cls, pki: ClusterPki) -> _Authority:
        return cls(_load_cert(pki.ca_cert), _load_private_key(pki.ca_key))

    def sign(
        self,
        subject: x509.Name,
        public_key: CertificatePublicKeyTypes,
        days: float,
        extended_usages: Sequence[x509.ObjectIdentifier],
        key_usage: x509.KeyUsage,
        alt_names: x509.SubjectAlternativeName | None = None,
    ) -> x509.Certificate:
        ca_ski = self.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        builder = (
            _builder(subject, self.cert.subject, public_key, days)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(key_usage, critical=True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        )
        if extended_usages:
            builder = builder.add_extension(x509.ExtendedKeyUsage(list(extended_usages)), critical=False)
        if alt_names is not None:
            builder = builder.add_extension(alt_names, critical=False)
        return builder.sign(self.key, hashes.SHA256())


# ---------------------------------------------------------------------------------------------------
# Subject alternative names


def _parse_san(value: str) -> x509.GeneralName:
    value = value.strip().strip("[]")
    try:
        return x509.IPAddress(ipaddress.ip_address(value))
    except ValueError:
        return x509.DNSName(value.lower())


def serving_alt_names(server_url: str, extra_sans: Sequence[str] = ()) -> list[x509.GeneralName]:
    """Every name and address a client may use to reach the API server, without duplicates."""
    candidates = ["localhost", "127.0.0.1", "::1", socket.gethostname(), *IN_CLUSTER_DNS_NAMES]
    url_host = urlsplit(server_url).hostname
    if url_host:
        candidates.append(url_host)
    candidates.extend(extra_sans)
    names: list[x509.GeneralName] = []
    for candidate in candidates:
        if not candidate.strip():
            continue
        name = _parse_san(candidate)
        if name not in names:
            names.append(name)
    return names


def _cert_alt_names(cert: x509.Certificate) -> list[x509.GeneralName]:
    try:
        return list(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        return []


# ---------------------------------------------------------------------------------------------------
# Ensuring each piece exists


def _ensure_ca(pki: ClusterPki) -> tuple[_Authority, bool]:
    if pki.ca_cert.exists() and pki.ca_key.exists():
        return _Authority.load(pki), False
    cert, key = _create_ca()
    write_file_atomically(pki.ca_key, _private_key_pem(key))
    write_file_atomically(pki.ca_cert, _cert_pem(cert), 0o644)
    return _Authority(cert, key), True


def _serving_cert_is_current(pki: ClusterPki, authority: _Authority, wanted: Sequence[x509.GeneralName]) -> bool:
    if not (pki.serving_cert.exists() and pki.serving_key.exists()):
        return False
    cert = _load_cert(pki.serving_cert)
    try:
        cert.verify_directly_issued_by(authority.cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    if cert.not_valid_after_utc - _now() < SERVING_RENEW_BEFORE:
        return False
    present = _cert_alt_names(cert)
    return all(name in present for name in wanted)


def _issue_serving_cert(pki: ClusterPki, authority: _Authority, alt_names: list[x509.GeneralName]) -> None:
    key = _new_ec_key()
    cert = authority.sign(
        _subject("skiff-apiserver"),
        key.public_key(),
        SERVING_VALIDITY_DAYS,
        [ExtendedKeyUsageOID.SERVER_AUTH],
        _key_usage(),
        x509.SubjectAlternativeName(alt_names),
    )
    write_file_atomically(pki.serving_key, _private_key_pem(key))
    write_file_atomically(pki.serving_cert, _cert_pem(cert), 0o644)


def _ensure_admin_cert(pki: ClusterPki, authority: _Authority, force: bool) -> None:
    if not force and pki.admin_cert.exists() and pki.admin_key.exists():
        return
    cert_pem, key_pem = _issue_client(authority, ADMIN_USER, [ADMIN_GROUP], CA_VALIDITY_DAYS)
    write_file_atomically(pki.admin_key, key_pem)
    write_file_atomically(pki.admin_cert, cert_pem, 0o644)


def _ensure_service_account_keys(pki: ClusterPki) -> None:
    if pki.service_account_key.exists() and pki.service_account_pub.exists():
        return
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    write_file_atomically(pki.service_account_key, _private_key_pem(key))
    write_file_atomically(pki.service_account_pub, public_pem, 0o644)


def ensure_cluster_pki(data_dir: Path, server_url: str, extra_sans: Sequence[str] = ()) -> ClusterPki:
    """Create (first start) or reuse (later starts) the CA, certificates, keys and admin kubeconfig."""
    pki = ClusterPki.under(Path(data_dir))
    pki.directory.mkdir(parents=True, exist_ok=True)
    os.chmod(pki.directory, 0o700)
    authority, ca_is_new = _ensure_ca(pki)
    wanted = serving_alt_names(server_url, extra_sans)
    if ca_is_new or not _serving_cert_is_current(pki, authority, wanted):
        # Keep names issued earlier so clients that already use them keep working.
        previous = _cert_alt_names(_load_cert(pki.serving_cert)) if pki.serving_cert.exists() else []
        _issue_serving_cert(pki, authority, [*wanted, *(n for n in previous if n not in wanted)])
    _ensure_admin_cert(pki, authority, force=ca_is_new)
    _ensure_service_account_keys(pki)
    _write_admin_kubeconfig(pki, server_url)
    return pki


def _write_admin_kubeconfig(pki: ClusterPki, server_url: str) -> None:
    # Rewritten on every start so it follows the server URL; left alone when nothing changed.
    before = pki.admin_kubeconfig.read_bytes() if pki.admin_kubeconfig.exists() else None
    content = kubeconfig_bytes(
        server_url,
        pki.ca_pem(),
        cert_pem=pki.admin_cert.read_bytes(),
        key_pem=pki.admin_key.read_bytes(),
        user=ADMIN_USER,
    )
    if content != before:
        write_file_atomically(pki.admin_kubeconfig, content)


# ---------------------------------------------------------------------------------------------------
# Issuing certificates


def _issue_client(authority: _Authority, common_name: str, groups: Sequence[str], days: int) -> tuple[bytes, bytes]:
    key = _new_ec_key()
    cert = authority.sign(
        _subject(common_name, groups),
        key.public_key(),
        days,
        [ExtendedKeyUsageOID.CLIENT_AUTH],
        _key_usage(),
    )
    return _cert_pem(cert), _private_key_pem(key)


def issue_client_certificate(
    pki: ClusterPki, common_name: str, groups: Sequence[str], days: int = 365
) -> tuple[bytes, bytes]:
    """A new key and a client certificate for user `common_name` in `groups`; returns (cert PEM, key PEM)."""
    return _issue_client(_Authority.load(pki), common_name, groups, days)


# certificates.k8s.io/v1 key usage names → X.509 extended key usages.
_EXTENDED_USAGES = {
    "client auth": ExtendedKeyUsageOID.CLIENT_AUTH,
    "server auth": ExtendedKeyUsageOID.SERVER_AUTH,
    "code signing": ExtendedKeyUsageOID.CODE_SIGNING,
    "email protection": ExtendedKeyUsageOID.EMAIL_PROTECTION,
    "timestamping": ExtendedKeyUsageOID.TIME_STAMPING,
    "ocsp signing": ExtendedKeyUsageOID.OCSP_SIGNING,
}
_KEY_USAGES = {"digital signature", "key encipherment", "signing"}


def sign_csr(pki: ClusterPki, csr_pem: bytes, usages: Sequence[str], days: float = 365) -> bytes:
    """Sign a PEM certificate request with the cluster CA, keeping its subject and alternative names.

    `usages` are the names a CertificateSigningRequest lists ("client auth", "digital signature", ...).
    Raises ValueError for a malformed request, a bad self-signature or an unknown usage.
    """
    csr = x509.load_pem_x509_csr(csr_pem)
    if not csr.is_signature_valid:
        raise ValueError("the certificate request's signature is invalid")
    unknown = [u for u in usages if u not in _EXTENDED_USAGES and u not in _KEY_USAGES]
    if unknown:
        raise ValueError(f"unsupported key usages: {', '.join(unknown)}")
    try:
        alt_names = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        alt_names = None
    cert = _Authority.load(pki).sign(
        csr.subject,
        csr.public_key(),
        days,
        [_EXTENDED_USAGES[u] for u in usages if u in _EXTENDED_USAGES],
        _key_usage(key_encipherment="key encipherment" in usages),
        alt_names,
    )
    return _cert_pem(cert)


def identity_from_certificate(der: bytes) -> tuple[str, list[str]]:
    """The user (subject CN) and groups (subject O values) that a verified client certificate names."""
    subject = x509.load_der_x509_certificate(der).subject
    common_names = subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    user = str(common_names[0].value) if common_names else ""
    groups = [str(a.value) for a in subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    return user, groups
