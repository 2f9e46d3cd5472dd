"""Service-account tokens as the cluster issues them: signing keys, key ids and JWKs, and the JWTs.

Tokens are JWTs signed with the cluster's service-account key (`pki/sa.key`), with a `kid` header derived
from the public key the way kube-apiserver derives it, so that verifiers can pick the key from the JWKS.
Bound tokens (TokenRequest) carry the `kubernetes.io` private claim; legacy tokens (stored in
`kubernetes.io/service-account-token` Secrets by the token controller) carry the older flat
`kubernetes.io/serviceaccount/...` claims and the issuer `kubernetes/serviceaccount`.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

DEFAULT_ISSUER = "https://kubernetes.default.svc.cluster.local"
LEGACY_ISSUER = "kubernetes/serviceaccount"
DEFAULT_EXPIRATION_SECONDS = 3600
MIN_EXPIRATION_SECONDS = 600
MAX_EXPIRATION_SECONDS = 1 << 32
# The projected-volume expiration that the ServiceAccount admission plugin asks for; tokens requested with
# it for a pod are valid for a year but carry a `warnafter` claim, as kube-apiserver does.
WARN_ONLY_EXPIRATION_SECONDS = 3607
EXTENDED_EXPIRATION_SECONDS = 365 * 24 * 3600
LEEWAY_SECONDS = 60

SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"
ALL_SERVICE_ACCOUNTS_GROUP = "system:serviceaccounts"

LEGACY_NAMESPACE = "kubernetes.io/serviceaccount/namespace"
LEGACY_SECRET_NAME = "kubernetes.io/serviceaccount/secret.name"
LEGACY_SA_NAME = "kubernetes.io/serviceaccount/service-account.name"
LEGACY_SA_UID = "kubernetes.io/serviceaccount/service-account.uid"

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey
SigningKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
Obj = dict[str, Any]

_EC_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}


def service_account_username(namespace: str, name: str) -> str:
    return f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}"


# ---------------------------------------------------------------------------------------------------
# Keys


def key_id(public_key: PublicKey) -> str:
    """kube-apiserver's key id: base64url (unpadded) SHA-256 of the DER SubjectPublicKeyInfo."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()


def algorithm_for(key: PublicKey | SigningKey) -> str:
    if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        return "RS256"
    name = key.curve.name
    if name not in _EC_ALGORITHMS:
        raise ValueError(f"unsupported elliptic curve {name} for service-account tokens")
    return _EC_ALGORITHMS[name]


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def public_jwk(public_key: PublicKey) -> Obj:
    """The public key as a JSON Web Key, with the same `kid` that tokens carry."""
    jwk: Obj = {"use": "sig", "kid": key_id(public_key), "alg": algorithm_for(public_key)}
    if isinstance(public_key, rsa.RSAPublicKey):
        numbers = public_key.public_numbers()
        jwk.update(kty="RSA", n=_b64url_uint(numbers.n), e=_b64url_uint(numbers.e))
    else:
        point = public_key.public_numbers()
        size = (public_key.curve.key_size + 7) // 8
        jwk.update(
            kty="EC",
            crv={"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}[public_key.curve.name],
            x=base64.urlsafe_b64encode(point.x.to_bytes(size, "big")).rstrip(b"=").decode(),
            y=base64.urlsafe_b64encode(point.y.to_bytes(size, "big")).rstrip(b"=").decode(),
        )
    return jwk


def load_public_keys(path: Path) -> list[PublicKey]:
    """Every public key in a PEM file of public keys, private keys or certificates."""
    data = path.read_bytes()
    keys: list[PublicKey] = []
    for block in _pem_blocks(data):
        kind = block.split(b"\n", 1)[0]
        loaded: Any
        if b"CERTIFICATE" in kind:
            loaded = x509.load_pem_x509_certificate(block).public_key()
        elif b"PRIVATE KEY" in kind:
            loaded = serialization.load_pem_private_key(block, password=None).public_key()
        else:
            loaded = serialization.load_pem_public_key(block)
        if not isinstance(loaded, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
            raise ValueError(f"{path}: only RSA and ECDSA keys can verify service-account tokens")
        keys.append(loaded)
    if not keys:
        raise ValueError(f"{path}: no PEM keys found")
    return keys


def _pem_blocks(data: bytes) -> list[bytes]:
    blocks: list[bytes] = []
    rest = data
    while True:
        start = rest.find(b"-----BEGIN ")
        if start < 0:
            return blocks
        end_marker = rest.find(b"-----END ", start)
        if end_marker < 0:
            return blocks
        end = rest.find(b"-----", end_marker + 9)
        if end < 0:
            return blocks
        blocks.append(rest[start : end + 5] + b"\n")
        rest = rest[end + 5 :]


def load_signing_key(path: Path) -> SigningKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path}: the service-account signing key must be RSA or ECDSA")
    return key


@dataclass
class ServiceAccountKeys:
    """The signing key and the public keys that tokens may be verified with (old keys during a rotation)."""

    signing_key: SigningKey
    verification_keys: list[PublicKey] = field(default_factory=list)

    def __post_init__(self) -> None:
        own = self.signing_key.public_key()
        if all(key_id(k) != key_id(own) for k in self.verification_keys):
            self.verification_keys.insert(0, own)
        self.signing_kid = key_id(own)
        self.signing_algorithm = algorithm_for(self.signing_key)
        self._by_kid = {key_id(k): k for k in self.verification_keys}

    @classmethod
    def from_files(cls, signing_key_file: Path, verification_key_files: Sequence[Path] = ()) -> ServiceAccountKeys:
        keys: list[PublicKey] = []
        for path in verification_key_files:
            keys.extend(load_public_keys(path))
        return cls(load_signing_key(signing_key_file), keys)

    def candidates(self, kid: str | None) -> list[PublicKey]:
        """The key a token's `kid` names, or every key when it names none we know (as kube tries them all)."""
        if kid and kid in self._by_kid:
            return [self._by_kid[kid]]
        return list(self.verification_keys)

    def jwks(self) -> Obj:
        return {"keys": [public_jwk(k) for k in self.verification_keys]}

    def sign(self, claims: Obj) -> str:
        headers = {"kid": self.signing_kid, "typ": None}
        return jwt.encode(claims, self.signing_key, algorithm=self.signing_algorithm, headers=headers)


# ---------------------------------------------------------------------------------------------------
# Issuing


@dataclass(frozen=True)
class BoundObject:
    kind: str  # "Pod" or "Secret"
    name: str
    uid: str


@dataclass(frozen=True)
class IssuedToken:
    token: str
    issued_at: datetime.datetime
    expiration: datetime.datetime


def rfc3339(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def issue_bound_token(
    keys: ServiceAccountKeys,
    issuer: str,
    service_account: Obj,
    audiences: Sequence[str],
    expiration_seconds: int,
    bound: BoundObject | None = None,
    node: tuple[str, str] | None = None,
    warn_after_seconds: int = 0,
    now: float | None = None,
) -> IssuedToken:
    """A TokenRequest token for `service_account`, optionally bound to a pod (and its node) or a secret."""
    issued_at = int(now if now is not None else time.time())
    metadata = service_account.get("metadata", {})
    namespace, name = metadata.get("namespace", ""), metadata.get("name", "")
    private: Obj = {
        "namespace": namespace,
        "serviceaccount": {"name": name, "uid": metadata.get("uid", "")},
    }
    if bound is not None:
        private[bound.kind.lower()] = {"name": bound.name, "uid": bound.uid}
    if node is not None:
        node_name, node_uid = node
        private["node"] = {"name": node_name, **({"uid": node_uid} if node_uid else {})}
    if warn_after_seconds:
        private["warnafter"] = issued_at + warn_after_seconds
    claims: Obj = {
        "aud": list(audiences),
        "exp": issued_at + expiration_seconds,
        "iat": issued_at,
        "iss": issuer,
        "jti": str(uuid.uuid4()),
        "kubernetes.io": private,
        "nbf": issued_at,
        "sub": service_account_username(namespace, name),
    }
    issued = datetime.datetime.fromtimestamp(issued_at, datetime.UTC)
    return IssuedToken(keys.sign(claims), issued, issued + datetime.timedelta(seconds=expiration_seconds))


def issue_legacy_token(
    keys: ServiceAccountKeys, namespace: str, service_account_name: str, service_account_uid: str, secret_name: str
) -> str:
    """A non-expiring token for a `kubernetes.io/service-account-token` Secret (the token controller stores it
    under the Secret's `token` key); valid while the Secret holds exactly this token and the account exists."""
    claims = {
        "iss": LEGACY_ISSUER,
        LEGACY_NAMESPACE: namespace,
        LEGACY_SECRET_NAME: secret_name,
        LEGACY_SA_NAME: service_account_name,
        LEGACY_SA_UID: service_account_uid,
        "sub": service_account_username(namespace, service_account_name),
    }
    return keys.sign(claims)
