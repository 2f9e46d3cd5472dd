"""OpenID Connect ID tokens from an outside identity provider (kube-apiserver's `--oidc-*` flags).

The provider's discovery document and keys are fetched over HTTPS (trusting `--oidc-ca-file` when given) on
first use and cached; a token whose `kid` is not among the cached keys makes the keys be fetched again (at
most once per REFRESH_INTERVAL), so the provider can rotate its signing key without restarting the server.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import ssl
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from apiserver.auth.authn import AUTHENTICATED, UserInfo
from apiserver.auth.tokens import bearer_token

log = logging.getLogger("skiff.auth.oidc")

SUPPORTED_ALGORITHMS = ("RS256", "ES256")
REFRESH_INTERVAL = 2.0
FETCH_TIMEOUT = 10.0
LEEWAY_SECONDS = 60
CACHE_SIZE = 4096
# How long a verified token is trusted without checking it again (kube caches token results for 10s).
SUCCESS_CACHE_SECONDS = 10.0


@dataclass(frozen=True)
class OidcSettings:
    issuer_url: str
    client_id: str
    username_claim: str = "sub"
    # None: kube's default (issuer URL + "#" unless the claim is `email`); "-": no prefix.
    username_prefix: str | None = None
    groups_claim: str = ""
    groups_prefix: str = ""
    ca_file: str = ""

    def effective_username_prefix(self) -> str:
        if self.username_prefix == "-":
            return ""
        if self.username_prefix is not None:
            return self.username_prefix
        return "" if self.username_claim == "email" else f"{self.issuer_url}#"

    def check(self) -> None:
        if not self.issuer_url.startswith("https://"):
            raise ValueError("--oidc-issuer-url must be an https:// URL")
        if not self.client_id:
            raise ValueError("--oidc-client-id is required with --oidc-issuer-url")


class TokenRejected(Exception):
    """An ID token that fails verification; the message never holds the token."""


class OidcAuthenticator:
    def __init__(self, settings: OidcSettings, transport: httpx.AsyncBaseTransport | None = None) -> None:
        settings.check()
        self.settings = settings
        self._transport = transport
        self._keys: dict[str, Any] = {}
        self._unnamed: list[Any] = []
        self._jwks_uri = ""
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()
        self._cache: OrderedDict[str, tuple[UserInfo, float]] = OrderedDict()

    async def authenticate(self, scope: dict[str, Any], authorization: str | None) -> UserInfo | None:
        token = bearer_token(authorization)
        if token is None or token.count(".") != 2:
            return None
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            return None
        if unverified.get("iss") != self.settings.issuer_url:
            return None  # another issuer's token: not for this authenticator
        digest = hashlib.sha256(token.encode()).hexdigest()
        now = time.time()
        cached = self._cache.get(digest)
        if cached is not None and cached[1] > now:
            return cached[0]
        try:
            claims = await self._verify(token, header)
            user = self._user(claims)
        except TokenRejected as problem:
            log.info("OIDC token rejected (sha256 %s…): %s", digest[:12], problem)
            return None
        except (httpx.HTTPError, ValueError, OSError) as problem:
            log.warning("OIDC provider %s unavailable: %s", self.settings.issuer_url, problem)
            return None
        self._cache[digest] = (user, min(float(claims["exp"]), now + SUCCESS_CACHE_SECONDS))
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return user

    # -- verification --------------------------------------------------------------------------------
    async def _verify(self, token: str, header: dict[str, Any]) -> dict[str, Any]:
        algorithm = header.get("alg")
        if algorithm not in SUPPORTED_ALGORITHMS:
            raise TokenRejected(f"signing algorithm {algorithm!r} is not accepted")
        kid = header.get("kid")
        keys = await self._keys_for(kid if isinstance(kid, str) else None)
        if not keys:
            raise TokenRejected("no provider key matches the token")
        last: Exception | None = None
        for key in keys:
            try:
                return jwt.decode(
                    token,
                    key,
                    algorithms=[algorithm],
                    audience=self.settings.client_id,
                    issuer=self.settings.issuer_url,
                    leeway=LEEWAY_SECONDS,
                    options={"require": ["iss", "aud", "exp"]},
                )
            except (jwt.InvalidSignatureError, jwt.InvalidAlgorithmError, jwt.InvalidKeyError) as error:
                last = error
            except jwt.PyJWTError as error:
                raise TokenRejected(f"{type(error).__name__}: {error}") from None
        raise TokenRejected(f"{type(last).__name__}: {last}" if last else "signature does not verify")

    async def _keys_for(self, kid: str | None) -> list[Any]:
        if not self._fetched_at:
            await self._refresh(force=True)
        if kid is None:
            return [*self._keys.values(), *self._unnamed]
        if kid not in self._keys:
            await self._refresh(force=False)
        return [self._keys[kid]] if kid in self._keys else []

    async def _refresh(self, force: bool) -> None:
        async with self._lock:
            if not force and time.monotonic() - self._fetched_at < REFRESH_INTERVAL:
                return
            if force and self._fetched_at:
                return  # fetched by a concurrent request while this one waited
            try:
                async with httpx.AsyncClient(
                    verify=self._tls(), timeout=FETCH_TIMEOUT, transport=self._transport
                ) as client:
                    if not self._jwks_uri:
                        self._jwks_uri = await self._discover(client)
                    response = await client.get(self._jwks_uri)
                    response.raise_for_status()
                    self._load_jwks(response.json())
            finally:
                self._fetched_at = time.monotonic()

    async def _discover(self, client: httpx.AsyncClient) -> str:
        url = self.settings.issuer_url.rstrip("/") + "/.well-known/openid-configuration"
        response = await client.get(url)
        response.raise_for_status()
        document = response.json()
        if document.get("issuer") != self.settings.issuer_url:
            raise ValueError(
                f"the provider's discovery document names issuer {document.get('issuer')!r}, "
                f"not {self.settings.issuer_url!r}"
            )
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not jwks_uri.startswith("https://"):
            raise ValueError("the provider's discovery document has no https jwks_uri")
        return jwks_uri

    def _load_jwks(self, document: Any) -> None:
        keys: dict[str, Any] = {}
        unnamed: list[Any] = []
        for jwk in (document or {}).get("keys", []) if isinstance(document, dict) else []:
            if not isinstance(jwk, dict) or jwk.get("use", "sig") != "sig":
                continue
            try:
                if jwk.get("kty") == "RSA":
                    key = RSAAlgorithm.from_jwk(json.dumps(jwk))
                elif jwk.get("kty") == "EC":
                    key = ECAlgorithm.from_jwk(json.dumps(jwk))
                else:
                    continue
            except (jwt.InvalidKeyError, ValueError, KeyError):
                continue
            if jwk.get("kid"):
                keys[str(jwk["kid"])] = key
            else:
                unnamed.append(key)
        self._keys, self._unnamed = keys, unnamed

    def _tls(self) -> ssl.SSLContext:
        if self.settings.ca_file:
            return ssl.create_default_context(cafile=self.settings.ca_file)
        return ssl.create_default_context()

    # -- identity ------------------------------------------------------------------------------------
    def _user(self, claims: dict[str, Any]) -> UserInfo:
        settings = self.settings
        username = claims.get(settings.username_claim)
        if not isinstance(username, str) or not username:
            raise TokenRejected(f"claim {settings.username_claim!r} is missing or not a string")
        # As kube-apiserver: with `email` as the username, an email_verified claim present must be true.
        if settings.username_claim == "email" and claims.get("email_verified", True) is not True:
            raise TokenRejected("email not verified")
        groups: list[str] = []
        if settings.groups_claim and settings.groups_claim in claims:
            value = claims[settings.groups_claim]
            if isinstance(value, str):
                groups = [value]
            elif isinstance(value, list) and all(isinstance(g, str) for g in value):
                groups = list(value)
            else:
                raise TokenRejected(f"claim {settings.groups_claim!r} is not a string or a list of strings")
        prefixed = tuple(f"{settings.groups_prefix}{g}" for g in groups)
        return UserInfo(f"{settings.effective_username_prefix()}{username}", (*prefixed, AUTHENTICATED))
