"""The review APIs over HTTPS: access reviews, rules reviews, SelfSubjectReview, TokenReview and discovery."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.support import ApiServer

AUTHZ = "/apis/authorization.k8s.io/v1"
AUTHN = "/apis/authentication.k8s.io"


@pytest.fixture(scope="module")
def admin(apiserver: ApiServer) -> Iterator[httpx.Client]:
    with apiserver.client(timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def team(admin: httpx.Client) -> str:
    """A namespace where user alice (or group dev) may edit."""
    name = f"rev-{uuid.uuid4().hex[:8]}"
    assert admin.post("/api/v1/namespaces", json={"metadata": {"name": name}}).status_code == 201
    binding = {
        "metadata": {"name": "dev-edit"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "dev"}],
    }
    response = admin.post(f"/apis/rbac.authorization.k8s.io/v1/namespaces/{name}/rolebindings", json=binding)
    assert response.status_code == 201
    return name


def review(kind: str, spec: dict, api_version: str = "authorization.k8s.io/v1") -> dict:
    return {"apiVersion": api_version, "kind": kind, "spec": spec}


def test_subject_access_review_answers_for_another_user(admin: httpx.Client, team: str) -> None:
    def allowed(spec: dict) -> bool:
        response = admin.post(f"{AUTHZ}/subjectaccessreviews", json=review("SubjectAccessReview", spec))
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["kind"] == "SubjectAccessReview" and body["spec"] == spec
        return body["status"]["allowed"]

    edit_secrets = {"verb": "update", "resource": "secrets", "namespace": team}
    assert allowed({"user": "alice", "groups": ["dev"], "resourceAttributes": edit_secrets})
    assert not allowed({"user": "alice", "resourceAttributes": edit_secrets})  # not in dev
    assert not allowed({"user": "alice", "groups": ["dev"], "resourceAttributes": {**edit_secrets, "namespace": "x"}})
    discovery = {"path": "/apis/apps", "verb": "get"}
    assert allowed({"user": "alice", "groups": ["system:authenticated"], "nonResourceAttributes": discovery})
    missing = admin.post(
        f"{AUTHZ}/subjectaccessreviews", json=review("SubjectAccessReview", {"resourceAttributes": {}})
    )
    assert missing.status_code == 422


def test_local_subject_access_review_is_confined_to_its_namespace(admin: httpx.Client, team: str) -> None:
    path = f"{AUTHZ}/namespaces/{team}/localsubjectaccessreviews"
    spec = {"groups": ["dev"], "user": "alice", "resourceAttributes": {"verb": "create", "resource": "pods"}}
    response = admin.post(path, json=review("LocalSubjectAccessReview", spec))
    assert response.status_code == 201
    assert response.json()["status"]["allowed"] is True
    assert response.json()["spec"]["resourceAttributes"]["namespace"] == team
    elsewhere = {**spec, "resourceAttributes": {"verb": "create", "resource": "pods", "namespace": "other"}}
    assert admin.post(path, json=review("LocalSubjectAccessReview", elsewhere)).status_code == 422


def test_self_subject_reviews_report_the_caller(admin: httpx.Client) -> None:
    for version in ("v1", "v1beta1", "v1alpha1"):
        body = review("SelfSubjectReview", {}, f"authentication.k8s.io/{version}")
        response = admin.post(f"{AUTHN}/{version}/selfsubjectreviews", json=body)
        assert response.status_code == 201, (version, response.text)
        user = response.json()["status"]["userInfo"]
        assert user["username"] == "skiff-admin" and "system:masters" in user["groups"]


def test_self_subject_rules_review_lists_rules(admin: httpx.Client, team: str) -> None:
    response = admin.post(
        f"{AUTHZ}/selfsubjectrulesreviews", json=review("SelfSubjectRulesReview", {"namespace": team})
    )
    assert response.status_code == 201
    status = response.json()["status"]
    assert status["incomplete"] is False
    assert {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]} in status["resourceRules"]
    assert {"verbs": ["*"], "nonResourceURLs": ["*"]} in status["nonResourceRules"]


def test_reviews_are_create_only_and_in_discovery(admin: httpx.Client) -> None:
    listed = admin.get(AUTHZ).json()["resources"]
    verbs = {r["name"]: r["verbs"] for r in listed}
    assert verbs["selfsubjectaccessreviews"] == ["create"]
    assert verbs["selfsubjectrulesreviews"] == ["create"]
    assert listed and all(not r["name"].startswith("localsubject") or r["namespaced"] for r in listed)
    groups = {g["name"]: g for g in admin.get("/apis").json()["groups"]}
    assert groups["authentication.k8s.io"]["preferredVersion"]["version"] == "v1"
    assert admin.get(f"{AUTHZ}/selfsubjectaccessreviews").status_code == 405


def test_token_review_authenticates_service_account_tokens(
    apiserver: ApiServer, admin: httpx.Client, team: str
) -> None:
    assert (
        admin.post(f"/api/v1/namespaces/{team}/serviceaccounts", json={"metadata": {"name": "robot"}}).status_code
        == 201
    )
    issued = admin.post(
        f"/api/v1/namespaces/{team}/serviceaccounts/robot/token",
        json={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}},
    )
    assert issued.status_code == 201, issued.text
    token = issued.json()["status"]["token"]
    body = review("TokenReview", {"token": token}, "authentication.k8s.io/v1")
    response = admin.post(f"{AUTHN}/v1/tokenreviews", json=body)
    assert response.status_code == 201
    status = response.json()["status"]
    assert status["authenticated"] is True
    assert status["user"]["username"] == f"system:serviceaccount:{team}:robot"
    assert "system:serviceaccounts" in status["user"]["groups"]
    bogus = admin.post(
        f"{AUTHN}/v1/tokenreviews", json=review("TokenReview", {"token": "x.y.z"}, "authentication.k8s.io/v1")
    )
    assert bogus.status_code == 201
    assert not bogus.json()["status"].get("authenticated", False)
    # The service account itself holds only the default roles.
    with apiserver.anonymous_client(timeout=30) as robot:
        headers = {"Authorization": f"Bearer {token}"}
        assert robot.get(f"/api/v1/namespaces/{team}/secrets", headers=headers).status_code == 403
        mine = robot.post(
            f"{AUTHN}/v1/selfsubjectreviews",
            json=review("SelfSubjectReview", {}, "authentication.k8s.io/v1"),
            headers=headers,
        )
        assert mine.status_code == 201
        assert mine.json()["status"]["userInfo"]["username"] == f"system:serviceaccount:{team}:robot"
