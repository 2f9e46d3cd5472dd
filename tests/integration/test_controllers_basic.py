"""The token controller against a real API server and controller-manager: legacy service-account token
Secrets are filled with a working token, the CA and the namespace, and removed with their account."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import jwt
import pytest

from tests.support import ApiServer, controller_manager

NAMESPACE = "tokens"
SECRETS = f"/api/v1/namespaces/{NAMESPACE}/secrets"
ACCOUNTS = f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts"
TOKEN_TYPE = "kubernetes.io/service-account-token"
Obj = dict[str, Any]


@pytest.fixture(scope="module")
def admin(apiserver: ApiServer) -> Iterator[httpx.Client]:
    pki = apiserver.data_dir / "pki"
    flags = ["--service-account-private-key-file", str(pki / "sa.key"), "--root-ca-file", str(pki / "ca.crt")]
    with apiserver.client(timeout=30) as client:
        assert client.post("/api/v1/namespaces", json={"metadata": {"name": NAMESPACE}}).status_code == 201
        with controller_manager(apiserver, "serviceaccount-token", *flags):
            yield client


def eventually(check: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting until {what}")


def token_secret(client: httpx.Client, name: str, account: str) -> Obj:
    body = {"apiVersion": "v1", "kind": "Secret", "type": TOKEN_TYPE,
            "metadata": {"name": name, "annotations": {"kubernetes.io/service-account.name": account}}}  # fmt: skip
    response = client.post(SECRETS, json=body)
    assert response.status_code == 201, response.text
    return response.json()


def filled(client: httpx.Client, name: str) -> Callable[[], Obj | None]:
    def check() -> Obj | None:
        secret = client.get(f"{SECRETS}/{name}").json()
        return secret if (secret.get("data") or {}).get("token") else None

    return check


def whoami(server: ApiServer, token: str) -> str | None:
    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    with server.anonymous_client(timeout=10, headers={"Authorization": f"Bearer {token}"}) as client:
        response = client.post("/apis/authentication.k8s.io/v1/selfsubjectreviews", json=review)
    if response.status_code == 401:
        return None
    assert response.status_code == 201, response.text
    return response.json()["status"]["userInfo"]["username"]


def test_token_secret_is_filled_with_a_working_token(admin: httpx.Client, apiserver: ApiServer) -> None:
    account = admin.post(ACCOUNTS, json={"metadata": {"name": "builder"}}).json()
    token_secret(admin, "builder-token", "builder")

    secret = eventually(filled(admin, "builder-token"), "the token controller fills the secret")
    data = {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}
    assert data["namespace"] == NAMESPACE
    assert data["ca.crt"] == apiserver.ca_cert.read_text()
    assert secret["metadata"]["annotations"]["kubernetes.io/service-account.uid"] == account["metadata"]["uid"]
    claims = jwt.decode(data["token"], options={"verify_signature": False})
    assert claims["iss"] == "kubernetes/serviceaccount"
    assert claims["kubernetes.io/serviceaccount/secret.name"] == "builder-token"
    assert whoami(apiserver, data["token"]) == f"system:serviceaccount:{NAMESPACE}:builder"


def test_token_secrets_go_with_their_account(admin: httpx.Client, apiserver: ApiServer) -> None:
    assert admin.post(ACCOUNTS, json={"metadata": {"name": "short-lived"}}).status_code == 201
    token_secret(admin, "short-lived-token", "short-lived")
    secret = eventually(filled(admin, "short-lived-token"), "the secret is filled")
    token = base64.b64decode(secret["data"]["token"]).decode()

    assert admin.delete(f"{ACCOUNTS}/short-lived").status_code == 200
    eventually(lambda: admin.get(f"{SECRETS}/short-lived-token").status_code == 404, "the secret is deleted")
    assert whoami(apiserver, token) is None


def test_token_secret_for_a_missing_account_is_deleted(admin: httpx.Client) -> None:
    token_secret(admin, "nobody-token", "nobody")
    eventually(lambda: admin.get(f"{SECRETS}/nobody-token").status_code == 404, "the orphan secret is deleted")
