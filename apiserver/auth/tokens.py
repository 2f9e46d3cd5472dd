"""Authenticating service-account tokens (bound and legacy) issued by this cluster.

How tokens are signed and issued lives in `skiff.pki.tokens`, shared with the token controller.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import logging
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from apiserver.auth.authn import AUTHENTICATED, UserInfo
from skiff.pki.tokens import (
    ALL_SERVICE_ACCOUNTS_GROUP,
    LEEWAY_SECONDS,
    LEGACY_ISSUER,
    LEGACY_NAMESPACE,
    LEGACY_SA_NAME,
    LEGACY_SA_UID,
    LEGACY_SECRET_NAME,
    ServiceAccountKeys,
    algorithm_for,
    service_account_username,
)

log = logging.getLogger("skiff.auth.serviceaccount")

# A bound object deleted longer ago than this no longer backs its tokens (kube uses the same minute).
DELETION_GRACE_SECONDS = 60
# How long a verified token's object checks (account, pod, secret still there) are trusted before re-reading.
RECHECK_SECONDS = 2.0
CACHE_SIZE = 4096

EXTRA_POD_NAME = "authentication.kubernetes.io/pod-name"
EXTRA_POD_UID = "authentication.kubernetes.io/pod-uid"
EXTRA_NODE_NAME = "authentication.kubernetes.io/node-name"
EXTRA_NODE_UID = "authentication.kubernetes.io/node-uid"
EXTRA_CREDENTIAL_ID = "authentication.kubernetes.io/credential-id"

SERVICE_ACCOUNTS = "core/serviceaccounts"
PODS = "core/pods"
SECRETS = "core/secrets"
NODES = "core/nodes"

Obj = dict[str, Any]

_RSA_ALGORITHMS = ("RS256", "RS384", "RS512")


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
    async def review(self, token: str, audiences: Sequence[str]) -> tuple[UserInfo, list[str]] | None:
        """TokenReview with `spec.audiences`: verify the token for those audiences instead of the API
        server's own, and name the ones it was issued for. None when the token is not valid for them."""
        if token.count(".") != 2:
            return None
        try:
            entry = self._verify(token, self.clock(), audiences)
            if entry is None:
                return None
            await self._check_objects(entry.checks, token)
        except InvalidToken as problem:
            log.info("service account token rejected in review (sha256 %s…): %s", token_digest(token)[:12], problem)
            return None
        claimed = jwt.decode(token, options={"verify_signature": False}).get("aud") or []
        claimed = [claimed] if isinstance(claimed, str) else list(claimed)
        # A legacy token carries no audience: it is valid for the API server's own audiences only.
        valid_for = claimed or self.audiences
        matched = [a for a in audiences if a in valid_for]
        return (entry.user, matched) if matched else None

    def _verify(self, token: str, now: float, audiences: Sequence[str] | None = None) -> _Entry | None:
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            return None
        issuer = unverified.get("iss")
        if not isinstance(issuer, str) or (issuer not in self.issuers and issuer != LEGACY_ISSUER):
            return None
        algorithm = header.get("alg")
        legacy = issuer == LEGACY_ISSUER
        claims = self._check_signature(token, header.get("kid"), algorithm, legacy, list(audiences or self.audiences))
        if issuer == LEGACY_ISSUER:
            return self._legacy_entry(claims, now)
        return self._bound_entry(claims, now)

    def _check_signature(self, token: str, kid: Any, algorithm: Any, legacy: bool, audiences: list[str]) -> Obj:
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
                    audience=None if legacy else audiences,
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
