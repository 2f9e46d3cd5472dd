"""Service-account tokens end to end: TokenRequest (JSON, protobuf via kubectl), authenticating with the
tokens, issuer discovery for outside verifiers, legacy Secret tokens and the ServiceAccount admission."""

from __future__ import annotations

import base64
import datetime
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from skiff.pki.tokens import ServiceAccountKeys, issue_legacy_token
from tests.support import ApiServer, Kubectl, free_port, kubectl_binary

MAX_EXPIRATION = 7200
Obj = dict[str, Any]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    # The issuer is the server's own HTTPS address, so an outside verifier can discover its keys.
    port = free_port()
    extra = [
        "--service-account-issuer", f"https://127.0.0.1:{port}",
        "--service-account-max-token-expiration", str(MAX_EXPIRATION),
    ]  # fmt: skip
    api = ApiServer(tmp_path_factory.mktemp("satokens"), port, extra_args=extra).start()
    yield api
    api.stop()


@pytest.fixture
def http(server: ApiServer) -> Iterator[httpx.Client]:
    with server.client(timeout=10) as client:
        yield client


@pytest.fixture
def ns(http: httpx.Client) -> str:
    name = f"sa-{uuid.uuid4().hex[:8]}"
    created = http.post(
        "/api/v1/namespaces", json={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    )
    assert created.status_code == 201, created.text
    return name


def make_account(http: httpx.Client, ns: str, name: str, **fields: Any) -> Obj:
    body = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}, **fields}
    response = http.post(f"/api/v1/namespaces/{ns}/serviceaccounts", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def make_pod(http: httpx.Client, ns: str, name: str, **spec: Any) -> httpx.Response:
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}], **spec},
    }
    return http.post(f"/api/v1/namespaces/{ns}/pods", json=body)


def request_token(http: httpx.Client, ns: str, account: str, **spec: Any) -> httpx.Response:
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}
    return http.post(f"/api/v1/namespaces/{ns}/serviceaccounts/{account}/token", json=body)


def whoami(server: ApiServer, token: str) -> Obj | None:
    """The user the server takes the bearer of `token` to be (a SelfSubjectReview), or None on 401."""
    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    with server.anonymous_client(timeout=10, headers={"Authorization": f"Bearer {token}"}) as client:
        response = client.post("/apis/authentication.k8s.io/v1/selfsubjectreviews", json=review)
    if response.status_code == 401:
        return None
    assert response.status_code == 201, response.text
    return response.json()["status"]["userInfo"]


def identity(server: ApiServer, token: str) -> str | None:
    user = whoami(server, token)
    return None if user is None else user["username"]


def eventually_refused(server: ApiServer, token: str, seconds: float = 8.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if identity(server, token) is None:
            return True
        time.sleep(0.5)
    return False


def claims_of(token: str) -> Obj:
    return jwt.decode(token, options={"verify_signature": False})


# -- TokenRequest --------------------------------------------------------------------------------------
def test_token_request_returns_a_signed_token_for_the_account(server: ApiServer, http: httpx.Client, ns: str) -> None:
    account = make_account(http, ns, "builder")
    before = datetime.datetime.now(datetime.UTC)
    response = request_token(http, ns, "builder")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["kind"] == "TokenRequest" and body["apiVersion"] == "authentication.k8s.io/v1"
    assert body["spec"]["audiences"] == [server.url] and body["spec"]["expirationSeconds"] == 3600
    expires = datetime.datetime.fromisoformat(body["status"]["expirationTimestamp"].replace("Z", "+00:00"))
    assert abs((expires - before).total_seconds() - 3600) < 10
    token = body["status"]["token"]
    claims = claims_of(token)
    assert claims["iss"] == server.url and claims["aud"] == [server.url]
    assert claims["sub"] == f"system:serviceaccount:{ns}:builder"
    assert claims["exp"] - claims["iat"] == 3600 and claims["nbf"] == claims["iat"] and claims["jti"]
    assert claims["kubernetes.io"] == {
        "namespace": ns,
        "serviceaccount": {"name": "builder", "uid": account["metadata"]["uid"]},
    }
    user = whoami(server, token)
    assert user is not None and user["username"] == f"system:serviceaccount:{ns}:builder"
    assert user["uid"] == account["metadata"]["uid"]
    assert user["groups"] == ["system:serviceaccounts", f"system:serviceaccounts:{ns}", "system:authenticated"]


def test_token_request_refusals(http: httpx.Client, ns: str) -> None:
    make_account(http, ns, "builder")
    missing = request_token(http, ns, "ghost")
    assert missing.status_code == 404 and missing.json()["message"] == 'serviceaccounts "ghost" not found'
    short = request_token(http, ns, "builder", expirationSeconds=599)
    assert short.status_code == 422
    assert "may not specify a duration less than 10 minutes" in short.json()["message"]
    no_pod = request_token(http, ns, "builder", boundObjectRef={"kind": "Pod", "apiVersion": "v1", "name": "nope"})
    assert no_pod.status_code == 404 and no_pod.json()["message"] == 'pods "nope" not found'
    odd = request_token(
        http, ns, "builder", boundObjectRef={"kind": "Deployment", "apiVersion": "apps/v1", "name": "x"}
    )
    assert odd.status_code == 400 and "cannot bind token to object of type" in odd.json()["message"]
    assert make_pod(http, ns, "worker", serviceAccountName="builder").status_code == 201
    stale = request_token(
        http, ns, "builder", boundObjectRef={"kind": "Pod", "apiVersion": "v1", "name": "worker", "uid": "not-it"}
    )
    assert stale.status_code == 409 and "does not match the UID in record" in stale.json()["message"]
    make_account(http, ns, "other")
    wrong_account = request_token(
        http, ns, "other", boundObjectRef={"kind": "Pod", "apiVersion": "v1", "name": "worker"}
    )
    assert wrong_account.status_code == 400
    long = request_token(http, ns, "builder", expirationSeconds=MAX_EXPIRATION * 10)
    assert long.status_code == 201
    assert long.json()["spec"]["expirationSeconds"] == MAX_EXPIRATION
    assert f"shortened to {MAX_EXPIRATION} seconds" in long.headers.get("warning", "")


def test_pod_bound_token_carries_the_pod_and_dies_with_it(server: ApiServer, http: httpx.Client, ns: str) -> None:
    make_account(http, ns, "builder")
    pod = make_pod(http, ns, "worker", serviceAccountName="builder", nodeName="node-a")
    assert pod.status_code == 201, pod.text
    pod_uid = pod.json()["metadata"]["uid"]
    ref = {"kind": "Pod", "apiVersion": "v1", "name": "worker", "uid": pod_uid}
    response = request_token(http, ns, "builder", boundObjectRef=ref, audiences=[server.url, "vault"])
    assert response.status_code == 201, response.text
    token = response.json()["status"]["token"]
    private = claims_of(token)["kubernetes.io"]
    assert private["pod"] == {"name": "worker", "uid": pod_uid}
    assert private["node"]["name"] == "node-a"
    user = whoami(server, token)
    assert user is not None
    assert user["extra"]["authentication.kubernetes.io/pod-name"] == ["worker"]
    assert user["extra"]["authentication.kubernetes.io/pod-uid"] == [pod_uid]
    assert user["extra"]["authentication.kubernetes.io/node-name"] == ["node-a"]
    deleted = http.delete(f"/api/v1/namespaces/{ns}/pods/worker", params={"gracePeriodSeconds": "0"})
    assert deleted.status_code == 200, deleted.text
    assert eventually_refused(server, token)


def test_token_of_a_deleted_or_recreated_account_is_refused(server: ApiServer, http: httpx.Client, ns: str) -> None:
    make_account(http, ns, "temp")
    token = request_token(http, ns, "temp").json()["status"]["token"]
    assert identity(server, token) is not None
    assert http.delete(f"/api/v1/namespaces/{ns}/serviceaccounts/temp").status_code == 200
    make_account(http, ns, "temp")
    assert eventually_refused(server, token)


def test_forged_tokens_get_401_and_never_reach_the_log(server: ApiServer, http: httpx.Client, ns: str) -> None:
    make_account(http, ns, "builder")
    claims = claims_of(request_token(http, ns, "builder").json()["status"]["token"])
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = (server.data_dir / "pki" / "sa.pub").read_bytes()
    forged = {
        "unsigned": jwt.encode(claims, None, algorithm="none"),
        "foreign key": jwt.encode(claims, stranger, algorithm="RS256"),
        "hs256": _hs256(claims, public_pem),
        "expired": jwt.encode({**claims, "exp": int(time.time()) - 7200}, stranger, algorithm="RS256"),
        "garbage": ".".join(uuid.uuid4().hex for _ in range(3)),
    }
    for label, token in forged.items():
        with server.anonymous_client(timeout=10, headers={"Authorization": f"Bearer {token}"}) as client:
            response = client.get(f"/api/v1/namespaces/{ns}/serviceaccounts")
        assert response.status_code == 401, (label, response.text)
        assert response.json()["reason"] == "Unauthorized"
    log = server.log_path.read_text(errors="replace")
    for token in forged.values():
        assert token not in log and token.split(".")[1] not in log


def _hs256(claims: Obj, secret: bytes) -> str:
    import hashlib
    import hmac
    import json

    def b64(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    signing_input = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + b"." + b64(json.dumps(claims).encode())
    return (signing_input + b"." + b64(hmac.new(secret, signing_input, hashlib.sha256).digest())).decode()


# -- issuer discovery ----------------------------------------------------------------------------------
def test_outside_verifier_checks_a_token_from_the_issuer_url_alone(
    server: ApiServer, http: httpx.Client, ns: str
) -> None:
    make_account(http, ns, "builder")
    token = request_token(http, ns, "builder", audiences=["https://vault.example"]).json()["status"]["token"]
    issuer = claims_of(token)["iss"]
    # No client certificate and no token: discovery is public.
    with httpx.Client(verify=server.tls(with_client_cert=False), timeout=10) as outsider:
        discovery = outsider.get(f"{issuer}/.well-known/openid-configuration")
        assert discovery.status_code == 200, discovery.text
        document = discovery.json()
        assert document["issuer"] == issuer
        assert document["response_types_supported"] == ["id_token"]
        assert document["subject_types_supported"] == ["public"]
        assert document["id_token_signing_alg_values_supported"] == ["RS256"]
        keys = outsider.get(document["jwks_uri"])
        assert keys.status_code == 200 and keys.headers["content-type"].startswith("application/jwk-set+json")
    kid = jwt.get_unverified_header(token)["kid"]
    (jwk,) = [k for k in keys.json()["keys"] if k["kid"] == kid]
    assert jwk["use"] == "sig" and jwk["alg"] == "RS256"
    verified = jwt.decode(
        token, jwt.PyJWK(jwk).key, algorithms=["RS256"], audience="https://vault.example", issuer=issuer
    )
    assert verified["sub"] == f"system:serviceaccount:{ns}:builder"
    # A token minted for another audience is not accepted by the API server itself.
    assert identity(server, token) is None


# -- legacy Secret tokens ------------------------------------------------------------------------------
def test_legacy_secret_token_works_while_the_secret_holds_it(server: ApiServer, http: httpx.Client, ns: str) -> None:
    account = make_account(http, ns, "legacy")
    keys = ServiceAccountKeys.from_files(server.data_dir / "pki" / "sa.key")
    token = issue_legacy_token(keys, ns, "legacy", account["metadata"]["uid"], "legacy-token")
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "legacy-token", "annotations": {"kubernetes.io/service-account.name": "legacy"}},
        "type": "kubernetes.io/service-account-token",
        "data": {"token": base64.b64encode(token.encode()).decode()},
    }
    created = http.post(f"/api/v1/namespaces/{ns}/secrets", json=secret)
    assert created.status_code == 201, created.text
    assert identity(server, token) == f"system:serviceaccount:{ns}:legacy"
    assert http.delete(f"/api/v1/namespaces/{ns}/secrets/legacy-token").status_code == 200
    assert eventually_refused(server, token)


# -- kubectl -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("minor", [33, 27])
def test_kubectl_create_token(server: ApiServer, http: httpx.Client, ns: str, minor: int) -> None:
    kubectl = Kubectl(kubectl_binary(minor), Path(server.kubeconfig))
    make_account(http, ns, "robot")
    token = kubectl("create", "token", "robot", "-n", ns, "--duration", "20m").strip()
    claims = claims_of(token)
    assert claims["sub"] == f"system:serviceaccount:{ns}:robot" and claims["exp"] - claims["iat"] == 1200
    assert identity(server, token) == f"system:serviceaccount:{ns}:robot"
    assert make_pod(http, ns, "job", serviceAccountName="robot").status_code == 201
    bound = kubectl("create", "token", "robot", "-n", ns, "--bound-object-kind", "Pod", "--bound-object-name", "job")
    assert claims_of(bound.strip())["kubernetes.io"]["pod"]["name"] == "job"
    short = kubectl.run("create", "token", "robot", "-n", ns, "--duration", "5m", check=False)
    assert short.returncode != 0 and "may not specify a duration less than 10 minutes" in short.stderr


# -- ServiceAccount admission ----------------------------------------------------------------------------
def test_new_pods_run_as_default_with_the_token_volume_mounted(http: httpx.Client, ns: str) -> None:
    response = make_pod(http, ns, "plain", initContainers=[{"name": "setup", "image": "busybox"}])
    assert response.status_code == 201, response.text
    spec = response.json()["spec"]
    assert spec["serviceAccountName"] == "default" and spec["serviceAccount"] == "default"
    (volume,) = [v for v in spec["volumes"] if v["name"].startswith("kube-api-access-")]
    assert volume["projected"]["defaultMode"] == 420
    assert volume["projected"]["sources"] == [
        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {
            "downwardAPI": {
                "items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]
            }
        },
    ]
    mount = {"name": volume["name"], "readOnly": True, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}
    assert spec["containers"][0]["volumeMounts"] == [mount]
    assert spec["initContainers"][0]["volumeMounts"] == [mount]


def test_pod_naming_a_missing_account_is_forbidden(http: httpx.Client, ns: str) -> None:
    response = make_pod(http, ns, "lost", serviceAccountName="nobody")
    assert response.status_code == 403
    assert response.json()["message"] == (
        f'pods "lost" is forbidden: error looking up service account {ns}/nobody: serviceaccount "nobody" not found'
    )
    assert http.get(f"/api/v1/namespaces/{ns}/pods/lost").status_code == 404


def test_automount_opt_out_on_the_account_and_pod_override(http: httpx.Client, ns: str) -> None:
    make_account(http, ns, "quiet", automountServiceAccountToken=False, imagePullSecrets=[{"name": "registry"}])
    quiet = make_pod(http, ns, "quiet", serviceAccountName="quiet").json()["spec"]
    assert not any(v["name"].startswith("kube-api-access-") for v in quiet.get("volumes", []))
    assert "volumeMounts" not in quiet["containers"][0]
    assert quiet["imagePullSecrets"] == [{"name": "registry"}]
    loud = make_pod(http, ns, "loud", serviceAccountName="quiet", automountServiceAccountToken=True).json()["spec"]
    assert any(v["name"].startswith("kube-api-access-") for v in loud["volumes"])


def test_rotated_signing_key_keeps_old_tokens_valid(tmp_path: Path) -> None:
    port = free_port()
    issuer = f"https://127.0.0.1:{port}"
    first = ApiServer(tmp_path / "cluster", port, extra_args=["--service-account-issuer", issuer]).start()
    try:
        with first.client(timeout=10) as http:
            make_account(http, "default", "keeper")
            old_token = request_token(http, "default", "keeper").json()["status"]["token"]
    finally:
        first.stop()
    new_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    new_key_file = tmp_path / "sa-2.key"
    new_key_file.write_bytes(
        new_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    old_pub = tmp_path / "cluster" / "pki" / "sa.pub"
    rotated = ApiServer(
        tmp_path / "cluster",
        port,
        extra_args=[
            "--service-account-issuer", issuer,
            "--service-account-signing-key-file", str(new_key_file),
            "--service-account-key-file", str(old_pub),
        ],
    ).start()  # fmt: skip
    try:
        with rotated.client(timeout=10) as http:
            new_token = request_token(http, "default", "keeper").json()["status"]["token"]
            kids = {k["kid"] for k in httpx.get(f"{issuer}/openid/v1/jwks", verify=rotated.tls(False)).json()["keys"]}
        assert jwt.get_unverified_header(new_token)["kid"] != jwt.get_unverified_header(old_token)["kid"]
        assert kids == {jwt.get_unverified_header(t)["kid"] for t in (old_token, new_token)}
        assert identity(rotated, old_token) is not None
        assert identity(rotated, new_token) is not None
    finally:
        rotated.stop()


def test_token_review_checks_the_reviewers_audience(http: httpx.Client, ns: str) -> None:
    make_account(http, ns, "app")
    for_vault = request_token(http, ns, "app", audiences=["vault"]).json()["status"]["token"]
    for_api = request_token(http, ns, "app").json()["status"]["token"]

    def review(token: str, audiences: list[str]) -> Obj:
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                "spec": {"token": token, "audiences": audiences}}  # fmt: skip
        response = http.post("/apis/authentication.k8s.io/v1/tokenreviews", json=body)
        assert response.status_code == 201, response.text
        return response.json()["status"]

    accepted = review(for_vault, ["vault", "other"])
    assert accepted["authenticated"] is True
    assert accepted["audiences"] == ["vault"]
    assert accepted["user"]["username"] == f"system:serviceaccount:{ns}:app"
    assert not review(for_vault, ["other"]).get("authenticated")
    assert not review(for_api, ["vault"]).get("authenticated")  # a token for the API server is not for vault
