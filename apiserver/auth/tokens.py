"""Service-account tokens: issuing (TokenRequest, legacy Secret tokens) and authenticating them.

Tokens are JWTs signed with the cluster's service-account key (`pki/sa.key`), with a `kid` header derived
from the public key the way kube-apiserver derives it, so that verifiers can pick the key from the JWKS.
Bound tokens (TokenRequest) carry the `kubernetes.io` private claim; legacy tokens (stored in
`kubernetes.io/service-account-token` Secrets) carry the older flat `kubernetes.io/serviceaccount/...` claims
and the issuer `kubernetes/serviceaccount`.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from apiserver.auth.authn import AUTHENTICATED, UserInfo

log = logging.getLogger("skiff.auth.serviceaccount")

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
# A bound object deleted longer ago than this no longer backs its tokens (kube uses the same minute).
DELETION_GRACE_SECONDS = 60
# How long a verified token's object checks (account, pod, secret still there) are trusted before re-reading.
RECHECK_SECONDS = 2.0
CACHE_SIZE = 4096

SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"
ALL_SERVICE_ACCOUNTS_GROUP = "system:serviceaccounts"
EXTRA_POD_NAME = "authentication.kubernetes.io/pod-name"
EXTRA_POD_UID = "authentication.kubernetes.io/pod-uid"
EXTRA_NODE_NAME = "authentication.kubernetes.io/node-name"
EXTRA_NODE_UID = "authentication.kubernetes.io/node-uid"
EXTRA_CREDENTIAL_ID = "authentication.kubernetes.io/credential-id"

LEGACY_NAMESPACE = "kubernetes.io/serviceaccount/namespace"
LEGACY_SECRET_NAME = "kubernetes.io/serviceaccount/secret.name"
LEGACY_SA_NAME = "kubernetes.io/serviceaccount/service-account.name"
LEGACY_SA_UID = "kubernetes.io/serviceaccount/service-account.uid"

SERVICE_ACCOUNTS = "core/serviceaccounts"
PODS = "core/pods"
SECRETS = "core/secrets"
NODES = "core/nodes"

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey
SigningKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
Obj = dict[str, Any]

_RSA_ALGORITHMS = ("RS256", "RS384", "RS512")
_EC_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}


def service_account_username(namespace: str, name: str) -> str:
    return f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}"


def service_account_groups(namespace: str) -> tuple[str, ...]:
    return (ALL_SERVICE_ACCOUNTS_GROUP, f"{ALL_SERVICE_ACCOUNTS_GROUP}:{namespace}", AUTHENTICATED)


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def token_digest(token: str) -> str:
    """What caches and logs may hold in place of a token."""
    return hashlib.sha256(token.encode()).hexdigest()


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


# ---------------------------------------------------------------------------------------------------
# Authenticating


class ObjectReader(Protocol):
    async def get(self, resource: str, namespace: str, name: str) -> Any: ...


class InvalidToken(Exception):
    """A service-account token that is not (or no longer) valid; the message never holds the token."""


@dataclass
class _Checks:
    """What must still hold for a verified token to authenticate."""

    namespace: str
    account: str
    account_uid: str
    pod: tuple[str, str] | None = None
    secret: tuple[str, str] | None = None
    # Legacy tokens: the secret must still hold this very token.
    legacy_secret: str = ""


@dataclass
class _Entry:
    user: UserInfo
    checks: _Checks
    expires_at: float
    checked_at: float


class ServiceAccountTokenAuthenticator:
    """Authenticates `Authorization: Bearer <jwt>` service-account tokens issued by this cluster."""

    def __init__(
        self,
        keys: ServiceAccountKeys,
        issuers: Sequence[str],
        audiences: Sequence[str],
        objects: ObjectReader,
        clock: Any = time.time,
    ) -> None:
        self.keys = keys
        self.issuers = frozenset(issuers)
        self.audiences = list(audiences)
        self.objects = objects
        self.clock = clock
        self._cache: OrderedDict[str, _Entry] = OrderedDict()

    async def authenticate(self, scope: dict[str, Any], authorization: str | None) -> UserInfo | None:
        token = bearer_token(authorization)
        if token is None or token.count(".") != 2:
            return None
        digest = token_digest(token)
        now = self.clock()
        entry = self._cache.get(digest)
        try:
            if entry is None or entry.expires_at <= now:
                entry = self._verify(token, now)
                if entry is None:
                    return None  # not ours: another authenticator (OIDC) may know the issuer
                await self._check_objects(entry.checks, token)
                entry.checked_at = now
                self._remember(digest, entry)
            elif now - entry.checked_at > RECHECK_SECONDS:
                await self._check_objects(entry.checks, token)
                entry.checked_at = now
        except InvalidToken as problem:
            self._cache.pop(digest, None)
            log.info("service account token rejected (sha256 %s…): %s", digest[:12], problem)
            return None
        return entry.user

    def _remember(self, digest: str, entry: _Entry) -> None:
        self._cache[digest] = entry
        self._cache.move_to_end(digest)
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)

    # -- signature and claims ----------------------------------------------------------------------------
    def _verify(self, token: str, now: float) -> _Entry | None:
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            return None
        issuer = unverified.get("iss")
        if not isinstance(issuer, str) or (issuer not in self.issuers and issuer != LEGACY_ISSUER):
            return None
        algorithm = header.get("alg")
        claims = self._check_signature(token, header.get("kid"), algorithm, issuer == LEGACY_ISSUER, now)
        if issuer == LEGACY_ISSUER:
            return self._legacy_entry(claims, now)
        return self._bound_entry(claims, now)

    def _check_signature(self, token: str, kid: Any, algorithm: Any, legacy: bool, now: float) -> Obj:
        if not isinstance(algorithm, str) or not (algorithm in _RSA_ALGORITHMS or algorithm.startswith("ES")):
            raise InvalidToken(f"signing algorithm {algorithm!r} is not accepted")
        options: Any = {"require": [] if legacy else ["exp", "iat", "nbf"], "verify_aud": not legacy}
        last_error: Exception | None = None
        for key in self.keys.candidates(kid if isinstance(kid, str) else None):
            allowed = list(_RSA_ALGORITHMS) if isinstance(key, rsa.RSAPublicKey) else [algorithm_for(key)]
            if algorithm not in allowed:
                continue
            try:
                return jwt.decode(
                    token,
                    key,
                    algorithms=allowed,
                    audience=None if legacy else self.audiences,
                    options=options,
                    leeway=LEEWAY_SECONDS,
                )
            except jwt.InvalidSignatureError as error:
                last_error = error
            except jwt.PyJWTError as error:
                raise InvalidToken(_describe(error)) from None
        raise InvalidToken(_describe(last_error) if last_error else "no key matches the token's algorithm")

    def _bound_entry(self, claims: Obj, now: float) -> _Entry:
        private = claims.get("kubernetes.io")
        if not isinstance(private, dict):
            raise InvalidToken("token has no kubernetes.io claim")
        namespace = private.get("namespace")
        account = private.get("serviceaccount") or {}
        if not isinstance(namespace, str) or not isinstance(account, dict) or not account.get("name"):
            raise InvalidToken("token does not name a service account")
        name, uid = str(account["name"]), str(account.get("uid", ""))
        if claims.get("sub") != service_account_username(namespace, name):
            raise InvalidToken("token subject does not match its service account")
        checks = _Checks(namespace, name, uid)
        extra: dict[str, tuple[str, ...]] = {}
        pod = private.get("pod")
        if isinstance(pod, dict) and pod.get("name"):
            checks.pod = (str(pod["name"]), str(pod.get("uid", "")))
            extra[EXTRA_POD_NAME] = (checks.pod[0],)
            extra[EXTRA_POD_UID] = (checks.pod[1],)
        secret = private.get("secret")
        if isinstance(secret, dict) and secret.get("name"):
            checks.secret = (str(secret["name"]), str(secret.get("uid", "")))
        node = private.get("node")
        if isinstance(node, dict) and node.get("name"):
            extra[EXTRA_NODE_NAME] = (str(node["name"]),)
            if node.get("uid"):
                extra[EXTRA_NODE_UID] = (str(node["uid"]),)
        if claims.get("jti"):
            extra[EXTRA_CREDENTIAL_ID] = (f"JTI={claims['jti']}",)
        user = UserInfo(service_account_username(namespace, name), service_account_groups(namespace), uid, extra)
        expires_at = float(claims["exp"]) + LEEWAY_SECONDS
        return _Entry(user, checks, expires_at, now)

    def _legacy_entry(self, claims: Obj, now: float) -> _Entry:
        values = [claims.get(k) for k in (LEGACY_NAMESPACE, LEGACY_SA_NAME, LEGACY_SA_UID, LEGACY_SECRET_NAME)]
        if not all(isinstance(v, str) and v for v in values):
            raise InvalidToken("legacy token is missing service account claims")
        namespace, name, uid, secret = (str(v) for v in values)
        if claims.get("sub") != service_account_username(namespace, name):
            raise InvalidToken("token subject does not match its service account")
        checks = _Checks(namespace, name, uid, legacy_secret=secret)
        user = UserInfo(service_account_username(namespace, name), service_account_groups(namespace), uid, {})
        # Legacy tokens do not expire; the cache entry still lapses so the signature is checked again.
        return _Entry(user, checks, now + 300.0, now)

    # -- the objects behind the token -----------------------------------------------------------------
    async def _check_objects(self, checks: _Checks, token: str) -> None:
        now = self.clock()
        account = await self._live(SERVICE_ACCOUNTS, checks.namespace, checks.account, now)
        if account is None:
            raise InvalidToken(f"service account {checks.namespace}/{checks.account} no longer exists")
        if checks.account_uid and account.get("metadata", {}).get("uid") != checks.account_uid:
            raise InvalidToken(f"service account {checks.namespace}/{checks.account} was recreated")
        for resource, ref in ((PODS, checks.pod), (SECRETS, checks.secret)):
            if ref is None:
                continue
            bound = await self._live(resource, checks.namespace, ref[0], now)
            if bound is None or bound.get("metadata", {}).get("uid") != ref[1]:
                raise InvalidToken(f"bound object {resource.split('/')[1]} {checks.namespace}/{ref[0]} is gone")
        if checks.legacy_secret:
            secret = await self._live(SECRETS, checks.namespace, checks.legacy_secret, now)
            if secret is None:
                raise InvalidToken(f"secret {checks.namespace}/{checks.legacy_secret} no longer exists")
            stored = (secret.get("data") or {}).get("token", "")
            try:
                held = base64.b64decode(stored) if stored else b""
            except ValueError:
                held = b""
            if not hmac.compare_digest(held, token.encode()):
                raise InvalidToken(f"secret {checks.namespace}/{checks.legacy_secret} holds a different token")

    async def _live(self, resource: str, namespace: str, name: str, now: float) -> Obj | None:
        """The object, unless it is missing or was deleted more than a minute ago."""
        stored = await self.objects.get(resource, namespace, name)
        if stored is None:
            return None
        obj: Obj = stored.obj() if hasattr(stored, "obj") else stored
        deleted = obj.get("metadata", {}).get("deletionTimestamp")
        if deleted and _parse_time(deleted) < now - DELETION_GRACE_SECONDS:
            return None
        return obj


def _parse_time(value: str) -> float:
    try:
        return datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def _describe(error: Exception) -> str:
    # pyjwt messages name the failed check (expired, audience, signature), never the token itself.
    return f"{type(error).__name__}: {error}"


def audiences_or_default(audiences: Iterable[str], issuers: Sequence[str]) -> list[str]:
    """The API server's audiences: the configured ones, else its issuers (kube's --api-audiences default)."""
    listed = [a for a in audiences if a]
    return listed or [i for i in issuers if i]
