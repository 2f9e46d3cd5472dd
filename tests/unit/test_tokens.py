"""Service-account token issuing and verification, the OIDC authenticator and the token volume admission."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from apiserver.admission.serviceaccount import TOKEN_MOUNT_PATH, mount_token, should_automount
from apiserver.auth.oidc import OidcAuthenticator, OidcSettings
from apiserver.auth.tokens import PODS, SECRETS, SERVICE_ACCOUNTS, ServiceAccountTokenAuthenticator
from skiff.pki.tokens import (
    DEFAULT_ISSUER,
    BoundObject,
    ServiceAccountKeys,
    issue_bound_token,
    issue_legacy_token,
    key_id,
)

ISSUER = DEFAULT_ISSUER
Obj = dict[str, Any]


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


KEY = rsa_key()
OTHER_KEY = rsa_key()


class Objects:
    """A stand-in for the store: (resource, namespace, name) → object."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, str, str], Obj] = {}

    def put(self, resource: str, namespace: str, name: str, uid: str, **extra: Any) -> Obj:
        obj = {"metadata": {"namespace": namespace, "name": name, "uid": uid}, **extra}
        self.items[(resource, namespace, name)] = obj
        return obj

    async def get(self, resource: str, namespace: str, name: str) -> Obj | None:
        return self.items.get((resource, namespace, name))


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def authenticate(authenticator: Any, token: str) -> Any:
    return asyncio.run(authenticator.authenticate({}, f"Bearer {token}"))


@pytest.fixture
def world() -> tuple[Objects, Obj, ServiceAccountTokenAuthenticator, ServiceAccountKeys, Clock]:
    objects = Objects()
    account = objects.put(SERVICE_ACCOUNTS, "team", "builder", "sa-uid-1")
    keys = ServiceAccountKeys(KEY)
    clock = Clock()
    authenticator = ServiceAccountTokenAuthenticator(keys, [ISSUER], [ISSUER, "extra-aud"], objects, clock)
    return objects, account, authenticator, keys, clock


def test_key_id_is_base64url_sha256_of_the_der_public_key() -> None:
    der = KEY.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    expected = base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()
    assert key_id(KEY.public_key()) == expected
    assert key_id(KEY.public_key()) != key_id(OTHER_KEY.public_key())


def test_bound_token_authenticates_as_the_service_account(world: Any) -> None:
    objects, account, authenticator, keys, _clock = world
    objects.put(PODS, "team", "runner", "pod-uid-1")
    issued = issue_bound_token(
        keys, ISSUER, account, [ISSUER], 3600, BoundObject("Pod", "runner", "pod-uid-1"), ("node-a", "node-uid")
    )
    header = jwt.get_unverified_header(issued.token)
    assert header["alg"] == "RS256" and header["kid"] == key_id(KEY.public_key())
    user = authenticate(authenticator, issued.token)
    assert user.name == "system:serviceaccount:team:builder"
    assert user.groups == ("system:serviceaccounts", "system:serviceaccounts:team", "system:authenticated")
    assert user.uid == "sa-uid-1"
    assert user.extra["authentication.kubernetes.io/pod-name"] == ("runner",)
    assert user.extra["authentication.kubernetes.io/pod-uid"] == ("pod-uid-1",)
    assert user.extra["authentication.kubernetes.io/node-name"] == ("node-a",)


def test_tokens_stop_working_when_their_objects_go(world: Any) -> None:
    objects, account, authenticator, keys, clock = world
    objects.put(PODS, "team", "runner", "pod-uid-1")
    token = issue_bound_token(keys, ISSUER, account, [ISSUER], 3600, BoundObject("Pod", "runner", "pod-uid-1")).token
    assert authenticate(authenticator, token) is not None
    # A pod deleted less than a minute ago still backs its tokens; later it does not.
    deleted = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(clock.now - 10))
    objects.items[(PODS, "team", "runner")]["metadata"]["deletionTimestamp"] = deleted
    clock.now += 3
    assert authenticate(authenticator, token) is not None
    clock.now += 60
    assert authenticate(authenticator, token) is None
    # The account recreated under the same name (new uid) does not revive older tokens.
    fresh = issue_bound_token(keys, ISSUER, account, [ISSUER], 3600).token
    assert authenticate(authenticator, fresh) is not None
    objects.put(SERVICE_ACCOUNTS, "team", "builder", "sa-uid-2")
    clock.now += 3
    assert authenticate(authenticator, fresh) is None


def test_recently_verified_token_is_rechecked_after_a_few_seconds(world: Any) -> None:
    objects, account, authenticator, keys, clock = world
    token = issue_bound_token(keys, ISSUER, account, [ISSUER], 3600).token
    assert authenticate(authenticator, token) is not None
    del objects.items[(SERVICE_ACCOUNTS, "team", "builder")]
    clock.now += 3
    assert authenticate(authenticator, token) is None


def test_forged_and_mismatched_tokens_are_refused(world: Any) -> None:
    _objects, account, authenticator, keys, clock = world
    good = jwt.decode(
        issue_bound_token(keys, ISSUER, account, [ISSUER], 3600).token, options={"verify_signature": False}
    )
    public_pem = KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    unsigned = jwt.encode(good, None, algorithm="none")
    assert authenticate(authenticator, unsigned) is None
    # The classic confusion: the public key used as an HMAC secret.
    hmac_token = _hs256(good, public_pem)
    assert authenticate(authenticator, hmac_token) is None
    foreign = jwt.encode(good, OTHER_KEY, algorithm="RS256", headers={"kid": key_id(KEY.public_key())})
    assert authenticate(authenticator, foreign) is None
    wrong_audience = issue_bound_token(keys, ISSUER, account, ["someone-else"], 3600).token
    assert authenticate(authenticator, wrong_audience) is None
    expired = issue_bound_token(keys, ISSUER, account, [ISSUER], 600, now=clock.now - 3600).token
    assert authenticate(authenticator, expired) is None
    other_issuer = issue_bound_token(keys, "https://elsewhere.example", account, [ISSUER], 3600).token
    assert authenticate(authenticator, other_issuer) is None
    assert authenticate(authenticator, "not-a-jwt") is None
    assert asyncio.run(authenticator.authenticate({}, "Basic dXNlcjpwYXNz")) is None


def _hs256(claims: Obj, secret: bytes) -> str:
    import hmac

    def b64(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    signing_input = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + b"." + b64(json.dumps(claims).encode())
    return (signing_input + b"." + b64(hmac.new(secret, signing_input, hashlib.sha256).digest())).decode()


def test_rotation_keeps_old_tokens_valid_while_the_old_key_is_listed(world: Any) -> None:
    objects, account, _authenticator, old_keys, clock = world
    old_token = issue_bound_token(old_keys, ISSUER, account, [ISSUER], 3600).token
    rotated = ServiceAccountKeys(OTHER_KEY, [KEY.public_key()])
    authenticator = ServiceAccountTokenAuthenticator(rotated, [ISSUER], [ISSUER], objects, clock)
    new_token = issue_bound_token(rotated, ISSUER, account, [ISSUER], 3600).token
    assert jwt.get_unverified_header(new_token)["kid"] == key_id(OTHER_KEY.public_key())
    assert authenticate(authenticator, old_token) is not None
    assert authenticate(authenticator, new_token) is not None
    assert {k["kid"] for k in rotated.jwks()["keys"]} == {key_id(KEY.public_key()), key_id(OTHER_KEY.public_key())}
    retired = ServiceAccountTokenAuthenticator(ServiceAccountKeys(OTHER_KEY), [ISSUER], [ISSUER], objects, clock)
    assert authenticate(retired, old_token) is None


def test_jwks_verifies_issued_tokens(world: Any) -> None:
    _objects, account, _authenticator, keys, _clock = world
    token = issue_bound_token(keys, ISSUER, account, [ISSUER], 3600).token
    (jwk,) = keys.jwks()["keys"]
    assert jwk["use"] == "sig" and jwk["alg"] == "RS256" and jwk["kty"] == "RSA"
    claims = jwt.decode(token, jwt.PyJWK(jwk).key, algorithms=["RS256"], audience=ISSUER, issuer=ISSUER)
    assert claims["sub"] == "system:serviceaccount:team:builder"


def test_legacy_secret_token_is_valid_while_the_secret_holds_it(world: Any) -> None:
    objects, _account, authenticator, keys, clock = world
    token = issue_legacy_token(keys, "team", "builder", "sa-uid-1", "builder-token")
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["iss"] == "kubernetes/serviceaccount"
    assert claims["kubernetes.io/serviceaccount/secret.name"] == "builder-token"
    secret = objects.put(
        SECRETS, "team", "builder-token", "secret-uid", data={"token": base64.b64encode(token.encode()).decode()}
    )
    user = authenticate(authenticator, token)
    assert user is not None and user.name == "system:serviceaccount:team:builder"
    secret["data"]["token"] = base64.b64encode(b"something else").decode()
    clock.now += 3
    assert authenticate(authenticator, token) is None


def test_ec_signing_key_issues_es256_tokens() -> None:
    objects = Objects()
    account = objects.put(SERVICE_ACCOUNTS, "team", "builder", "uid")
    keys = ServiceAccountKeys(ec.generate_private_key(ec.SECP256R1()))
    token = issue_bound_token(keys, ISSUER, account, [ISSUER], 3600).token
    assert jwt.get_unverified_header(token)["alg"] == "ES256"
    authenticator = ServiceAccountTokenAuthenticator(keys, [ISSUER], [ISSUER], objects)
    assert authenticate(authenticator, token) is not None


# -- OIDC ----------------------------------------------------------------------------------------------
IDP = "https://idp.example"


class Provider:
    """An identity provider behind an httpx mock transport."""

    def __init__(self) -> None:
        self.key = rsa_key()
        self.kid = "one"
        self.fetches = 0

    def jwks(self) -> Obj:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        return {"keys": [{**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}]}

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/.well-known/openid-configuration":
            return httpx.Response(200, json={"issuer": IDP, "jwks_uri": f"{IDP}/keys"})
        self.fetches += 1
        return httpx.Response(200, json=self.jwks())

    def mint(self, **claims: Any) -> str:
        now = int(time.time())
        body = {"iss": IDP, "aud": "skiff", "sub": "alice", "iat": now, "exp": now + 600, **claims}
        return jwt.encode(body, self.key, algorithm="RS256", headers={"kid": self.kid})


def oidc(provider: Provider, **settings: Any) -> OidcAuthenticator:
    return OidcAuthenticator(OidcSettings(IDP, "skiff", **settings), transport=httpx.MockTransport(provider.handle))


def test_oidc_username_prefix_and_groups_follow_kube_defaults() -> None:
    provider = Provider()
    user = authenticate(oidc(provider, groups_claim="groups"), provider.mint(groups=["dev", "ops"]))
    assert user.name == f"{IDP}#alice" and user.groups == ("dev", "ops", "system:authenticated")
    by_email = oidc(provider, username_claim="email", groups_claim="groups", groups_prefix="oidc:")
    user = authenticate(by_email, provider.mint(email="alice@example.com", email_verified=True, groups="dev"))
    assert user.name == "alice@example.com" and user.groups == ("oidc:dev", "system:authenticated")
    assert authenticate(by_email, provider.mint(email="alice@example.com", email_verified=False)) is None
    assert authenticate(oidc(provider, username_prefix="-"), provider.mint()).name == "alice"
    assert authenticate(oidc(provider, username_prefix="corp:"), provider.mint()).name == "corp:alice"


def test_oidc_refuses_wrong_audience_expired_and_unknown_keys() -> None:
    provider = Provider()
    authenticator = oidc(provider)
    assert authenticate(authenticator, provider.mint(aud="another-client")) is None
    assert authenticate(authenticator, provider.mint(exp=int(time.time()) - 3600)) is None
    assert authenticate(authenticator, provider.mint(iss="https://other.example")) is None
    stranger = jwt.encode({"iss": IDP, "aud": "skiff", "sub": "x", "exp": int(time.time()) + 60}, OTHER_KEY, "RS256")
    assert authenticate(authenticator, stranger) is None


def test_oidc_picks_up_a_rotated_key_by_refetching_on_an_unknown_kid() -> None:
    provider = Provider()
    authenticator = oidc(provider)
    assert authenticate(authenticator, provider.mint()) is not None
    provider.key, provider.kid = rsa_key(), "two"
    time.sleep(2.1)  # the refresh interval
    assert authenticate(authenticator, provider.mint(sub="bob")).name == f"{IDP}#bob"
    fetches = provider.fetches
    # A burst of tokens naming an unknown key refetches at most once per interval.
    for _ in range(5):
        assert authenticate(authenticator, _with_kid(provider, "nope")) is None
    assert provider.fetches <= fetches + 1


def _with_kid(provider: Provider, kid: str) -> str:
    now = int(time.time())
    body = {"iss": IDP, "aud": "skiff", "sub": "eve", "iat": now, "exp": now + 600}
    return jwt.encode(body, provider.key, algorithm="RS256", headers={"kid": kid})


# -- admission -----------------------------------------------------------------------------------------
def test_token_volume_is_mounted_in_every_container_unless_already_mounted() -> None:
    spec: Obj = {
        "initContainers": [{"name": "init"}],
        "containers": [
            {"name": "app"},
            {"name": "own", "volumeMounts": [{"name": "mine", "mountPath": TOKEN_MOUNT_PATH}]},
        ],
        "volumes": [{"name": "mine", "emptyDir": {}}],
    }
    mount_token(spec)
    (volume,) = [v for v in spec["volumes"] if v["name"].startswith("kube-api-access-")]
    assert len(volume["name"]) == len("kube-api-access-") + 5
    sources = volume["projected"]["sources"]
    assert sources[0] == {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}}
    assert volume["projected"]["defaultMode"] == 420
    mount = {"name": volume["name"], "readOnly": True, "mountPath": TOKEN_MOUNT_PATH}
    assert spec["initContainers"][0]["volumeMounts"] == [mount]
    assert spec["containers"][0]["volumeMounts"] == [mount]
    assert spec["containers"][1]["volumeMounts"] == [{"name": "mine", "mountPath": TOKEN_MOUNT_PATH}]


def test_pod_automount_setting_wins_over_the_account() -> None:
    assert should_automount({"automountServiceAccountToken": False}, {}) is False
    assert should_automount({"automountServiceAccountToken": False}, {"automountServiceAccountToken": True}) is True
    assert should_automount(None, {"automountServiceAccountToken": False}) is False
    assert should_automount(None, {}) is True
