"""CertificateSigningRequest rules that signers and the API server share: decoding requests, conditions,
the built-in signers' checks, and signing with the cluster CA.

Pure functions on plain objects; they need nothing of the API server (the signer controller reads and
writes CSRs through the API and signs with the CA files it is given).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from skiff.pki.cluster import ClusterPki, sign_csr

KUBE_APISERVER_CLIENT = "kubernetes.io/kube-apiserver-client"
KUBE_APISERVER_CLIENT_KUBELET = "kubernetes.io/kube-apiserver-client-kubelet"
# The signers this project implements; CSRs for any other signer are left for someone else to sign.
BUILTIN_SIGNERS = frozenset({KUBE_APISERVER_CLIENT, KUBE_APISERVER_CLIENT_KUBELET})
NODE_USER_PREFIX = "system:node:"
NODES_GROUP = "system:nodes"
MASTERS_GROUP = "system:masters"
MIN_EXPIRATION_SECONDS = 600
DEFAULT_SIGNING_SECONDS = 365 * 24 * 3600

APPROVED, DENIED, FAILED = "Approved", "Denied", "Failed"
APPROVAL_TYPES = frozenset({APPROVED, DENIED})
# Condition types that, once present, only ever have status "True".
TERMINAL_TYPES = frozenset({APPROVED, DENIED, FAILED})

# certificates.k8s.io/v1 KeyUsage values.
KEY_USAGES = (
    "signing",
    "digital signature",
    "content commitment",
    "key encipherment",
    "key agreement",
    "data encipherment",
    "cert sign",
    "crl sign",
    "encipher only",
    "decipher only",
    "any",
    "server auth",
    "client auth",
    "code signing",
    "email protection",
    "s/mime",
    "ipsec end system",
    "ipsec tunnel",
    "ipsec user",
    "timestamping",
    "ocsp signing",
    "microsoft sgc",
    "netscape sgc",
)
CLIENT_SIGNER_USAGES = frozenset({"client auth", "digital signature", "key encipherment"})

Obj = dict[str, Any]


class RequestError(ValueError):
    """spec.request is not a base64-encoded PEM certificate request with a valid signature."""


# -- the request ------------------------------------------------------------------------------------
def request_pem(spec_request: Any) -> bytes:
    """The PEM bytes that spec.request (base64 on the wire) carries."""
    if not isinstance(spec_request, str) or not spec_request:
        raise RequestError("must be a base64-encoded PEM certificate request")
    try:
        return base64.b64decode(spec_request, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError("must be base64-encoded") from None


def decode_request(spec_request: Any) -> x509.CertificateSigningRequest:
    pem = request_pem(spec_request)
    if b"-----BEGIN CERTIFICATE REQUEST-----" not in pem:
        raise RequestError("PEM block type must be CERTIFICATE REQUEST")
    try:
        csr = x509.load_pem_x509_csr(pem)
    except ValueError as error:
        raise RequestError(f"could not parse the certificate request: {error}") from None
    if not csr.is_signature_valid:
        raise RequestError("the certificate request's signature is invalid")
    return csr


def subject_of(csr: x509.CertificateSigningRequest) -> tuple[str, list[str]]:
    """(common name, organizations) of a request: the user and groups a client certificate would carry."""
    names = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    common_name = str(names[0].value) if names else ""
    return common_name, [str(a.value) for a in csr.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]


def _has_alt_names(csr: x509.CertificateSigningRequest) -> bool:
    try:
        return len(csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value) > 0
    except x509.ExtensionNotFound:
        return False


# -- conditions -------------------------------------------------------------------------------------
def conditions(obj: Obj) -> list[Obj]:
    return list((obj.get("status") or {}).get("conditions") or [])


def has_condition(obj: Obj, condition_type: str) -> bool:
    return any(c.get("type") == condition_type and c.get("status", "True") == "True" for c in conditions(obj))


def certificate_pem(obj: Obj) -> bytes:
    """The issued certificate (PEM), or b"" when none was issued yet."""
    value = (obj.get("status") or {}).get("certificate") or ""
    return base64.b64decode(value) if value else b""


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(condition_type: str, reason: str, message: str, now: str | None = None) -> Obj:
    stamp = now or now_rfc3339()
    return {
        "type": condition_type,
        "status": "True",
        "reason": reason,
        "message": message,
        "lastUpdateTime": stamp,
        "lastTransitionTime": stamp,
    }


# -- the signers ------------------------------------------------------------------------------------
def signer_refusal(signer: str, csr: x509.CertificateSigningRequest, usages: Sequence[str]) -> str | None:
    """Why a built-in signer will not sign this request, or None when it will."""
    unsupported = [u for u in usages if u not in CLIENT_SIGNER_USAGES]
    if "client auth" not in usages:
        return 'usages must include "client auth"'
    if unsupported:
        return f"usages not allowed for {signer}: {', '.join(unsupported)}"
    if signer == KUBE_APISERVER_CLIENT_KUBELET:
        common_name, organizations = subject_of(csr)
        if not common_name.startswith(NODE_USER_PREFIX) or len(common_name) == len(NODE_USER_PREFIX):
            return f'subject common name must start with "{NODE_USER_PREFIX}" and name the node'
        if organizations != [NODES_GROUP]:
            return f'subject organization must be exactly "{NODES_GROUP}"'
        if _has_alt_names(csr):
            return "a kubelet client certificate may not carry subject alternative names"
        if "key encipherment" in usages and not isinstance(csr.public_key(), rsa.RSAPublicKey):
            return '"key encipherment" applies only to RSA keys'
    return None


def should_sign(obj: Obj) -> bool:
    """Approved, not denied or failed, no certificate yet, and for a signer this project implements."""
    if (obj.get("spec") or {}).get("signerName") not in BUILTIN_SIGNERS:
        return False
    if has_condition(obj, DENIED) or has_condition(obj, FAILED) or not has_condition(obj, APPROVED):
        return False
    return not (obj.get("status") or {}).get("certificate")


@dataclass(frozen=True)
class SigningOutcome:
    certificate: bytes = b""  # PEM, when issued
    failure: str = ""  # why the signer refused, when not


def ca_files(ca_cert: Path, ca_key: Path) -> ClusterPki:
    """A PKI view for signing with a CA given as two files (the signer's --ca-cert/--ca-key)."""
    return dataclasses.replace(ClusterPki.under(Path(ca_cert).parent.parent), ca_cert=ca_cert, ca_key=ca_key)


def sign(obj: Obj, pki: ClusterPki, max_seconds: int = DEFAULT_SIGNING_SECONDS) -> SigningOutcome:
    """Issue the certificate an approved request asks for, or say why the signer refuses it."""
    spec = obj.get("spec") or {}
    usages = list(spec.get("usages") or [])
    try:
        csr = decode_request(spec.get("request"))
    except RequestError as error:
        return SigningOutcome(failure=str(error))
    refusal = signer_refusal(spec.get("signerName", ""), csr, usages)
    if refusal is not None:
        return SigningOutcome(failure=refusal)
    requested = spec.get("expirationSeconds")
    seconds = min(int(requested), max_seconds) if isinstance(requested, int) else max_seconds
    pem = sign_csr(pki, csr.public_bytes(serialization.Encoding.PEM), usages, days=seconds / 86400)
    return SigningOutcome(certificate=pem)


def with_certificate(obj: Obj, certificate: bytes) -> Obj:
    out = dict(obj)
    out["status"] = {**(obj.get("status") or {}), "certificate": base64.b64encode(certificate).decode("ascii")}
    return out


def with_condition(obj: Obj, item: Obj) -> Obj:
    out = dict(obj)
    status = dict(obj.get("status") or {})
    status["conditions"] = [*(c for c in conditions(obj) if c.get("type") != item["type"]), item]
    out["status"] = status
    return out
