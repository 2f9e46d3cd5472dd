"""RBAC, the Node authorizer, NodeRestriction, impersonation and escalation prevention, driven with the
real kubectl (1.33 and 1.27) as users that hold exactly the roles each test gives them."""

from __future__ import annotations

import ssl
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from skiff.pki.cluster import ClusterPki, issue_client_certificate
from skiff.pki.kubeconfig import write_kubeconfig
from tests.support import ApiServer, Kubectl, free_port, kubectl_binary

RBAC = "/apis/rbac.authorization.k8s.io/v1"


@pytest.fixture(scope="module")
def admin(apiserver: ApiServer) -> Iterator[httpx.Client]:
    with apiserver.client(timeout=30) as client:
        yield client


def issue(server: ApiServer, name: str, groups: tuple[str, ...]) -> tuple[Path, Path]:
    cert, key = issue_client_certificate(ClusterPki.under(server.data_dir), name, groups)
    slug = name.replace(":", "-")
    cert_path, key_path = server.data_dir / f"{slug}.crt", server.data_dir / f"{slug}.key"
    cert_path.write_bytes(cert)
    key_path.write_bytes(key)
    return cert_path, key_path


def user_kubectl(server: ApiServer, name: str, groups: tuple[str, ...] = (), minor: int = 33) -> Kubectl:
    """kubectl with its own kubeconfig holding a client certificate for `name` in `groups`."""
    cert, key = issue_client_certificate(ClusterPki.under(server.data_dir), name, groups)
    home = server.data_dir / f"home-{name.replace(':', '-')}-{uuid.uuid4().hex[:6]}"
    home.mkdir()
    path = write_kubeconfig(home / "config", server.url, server.ca_cert.read_bytes(), cert, key, user=name)
    return Kubectl(kubectl_binary(minor), path)


def user_client(server: ApiServer, name: str, groups: tuple[str, ...] = ()) -> httpx.Client:
    cert, key = issue(server, name, groups)
    context = ssl.create_default_context(cafile=str(server.ca_cert))
    context.load_cert_chain(str(cert), str(key))
    return httpx.Client(base_url=server.url, verify=context, timeout=30)


def namespace(admin: httpx.Client) -> str:
    name = f"rbac-{uuid.uuid4().hex[:8]}"
    assert admin.post("/api/v1/namespaces", json={"metadata": {"name": name}}).status_code == 201
    return name


def bind(admin: httpx.Client, ns: str, role: str, user: str, kind: str = "ClusterRole") -> None:
    body = {
        "metadata": {"name": f"{user}-{role}-{uuid.uuid4().hex[:4]}"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }
    response = admin.post(f"{RBAC}/namespaces/{ns}/rolebindings", json=body)
    assert response.status_code == 201, response.text


def cluster_role(admin: httpx.Client, name: str, rules: list[dict], labels: dict[str, str] | None = None) -> None:
    body = {"metadata": {"name": name, "labels": labels or {}}, "rules": rules}
    response = admin.post(f"{RBAC}/clusterroles", json=body)
    assert response.status_code == 201, response.text


def bind_cluster(admin: httpx.Client, role: str, user: str) -> None:
    body = {
        "metadata": {"name": f"{user}-{role}-{uuid.uuid4().hex[:4]}"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }
    response = admin.post(f"{RBAC}/clusterrolebindings", json=body)
    assert response.status_code == 201, response.text


def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.1)


def can_i(kubectl: Kubectl, *args: str) -> str:
    result = kubectl.run("auth", "can-i", *args, check=False)
    return result.stdout.strip()


# -- can-i, whoami, edit/view ------------------------------------------------------------------------------
@pytest.mark.parametrize("minor", [33, 27])
def test_can_i_answers_from_the_users_bindings(apiserver: ApiServer, admin: httpx.Client, minor: int) -> None:
    ns, other = namespace(admin), namespace(admin)
    user = f"alice-{minor}"
    bind(admin, ns, "edit", user)
    kubectl = user_kubectl(apiserver, user, ("dev",), minor)
    assert can_i(kubectl, "create", "deployments", "-n", ns) == "yes"
    assert can_i(kubectl, "get", "pods", "--subresource=log", "-n", ns) == "yes"
    assert can_i(kubectl, "create", "rolebindings", "-n", ns) == "no"  # edit cannot grant access
    assert can_i(kubectl, "list", "secrets", "-n", other) == "no"
    assert kubectl.run("auth", "can-i", "list", "secrets", "-n", other, check=False).returncode == 1


@pytest.mark.parametrize("minor", [33, 27])
def test_can_i_list_shows_the_rules_in_a_namespace(apiserver: ApiServer, admin: httpx.Client, minor: int) -> None:
    ns = namespace(admin)
    user = f"lister-{minor}"
    bind(admin, ns, "view", user)
    kubectl = user_kubectl(apiserver, user, (), minor)
    listing = kubectl("auth", "can-i", "--list", "-n", ns)
    lines = {" ".join(line.split()) for line in listing.splitlines()}
    assert "deployments.apps [] [] [get list watch]" in lines
    assert "selfsubjectaccessreviews.authorization.k8s.io [] [] [create]" in lines
    assert any(line.startswith("[/api/*] [] [get]") for line in lines), listing
    assert not any(line.startswith("secrets ") for line in lines)  # view does not read secrets


@pytest.mark.parametrize("minor", [33, 27])
def test_whoami_reports_the_certificate_identity(apiserver: ApiServer, minor: int) -> None:
    kubectl = user_kubectl(apiserver, "alice", ("dev",), minor)
    output = kubectl("auth", "whoami")
    assert "alice" in output and "dev" in output and "system:authenticated" in output


def test_edit_user_cannot_read_secrets_in_another_namespace(apiserver: ApiServer, admin: httpx.Client) -> None:
    ns, other = namespace(admin), namespace(admin)
    bind(admin, ns, "edit", "carol")
    kubectl = user_kubectl(apiserver, "carol", ("dev",))
    kubectl("create", "secret", "generic", "mine", "--from-literal=a=b", "-n", ns)
    assert "mine" in kubectl("get", "secrets", "-n", ns)
    result = kubectl.run("get", "secrets", "-n", other, check=False)
    assert result.returncode != 0
    assert (
        'Error from server (Forbidden): secrets is forbidden: User "carol" cannot list resource "secrets" '
        f'in API group "" in the namespace "{other}"'
    ) in result.stderr
    with user_client(apiserver, "carol", ("dev",)) as carol:
        response = carol.get(f"/api/v1/namespaces/{other}/secrets/anything")
        assert response.status_code == 403
        assert response.json()["reason"] == "Forbidden"


def test_aggregated_roles_show_and_follow_their_sources(apiserver: ApiServer, admin: httpx.Client) -> None:
    kubectl = Kubectl(kubectl_binary(), apiserver.kubeconfig)
    shown = yaml.safe_load(kubectl("get", "clusterrole", "admin", "-o", "yaml"))
    resources = {r for rule in shown["rules"] for r in rule.get("resources", [])}
    assert {"rolebindings", "secrets", "deployments", "pods/log"} <= resources
    ns = namespace(admin)
    bind(admin, ns, "view", "dave")
    dave = user_kubectl(apiserver, "dave")
    assert can_i(dave, "list", "podtemplates", "-n", ns) == "no"
    name = f"podtemplate-viewer-{uuid.uuid4().hex[:6]}"
    rules = [{"apiGroups": [""], "resources": ["podtemplates"], "verbs": ["get", "list", "watch"]}]
    cluster_role(admin, name, rules, {"rbac.authorization.k8s.io/aggregate-to-view": "true"})
    assert can_i(dave, "list", "podtemplates", "-n", ns) == "yes"

    def view_shows_it() -> bool:
        view = admin.get(f"{RBAC}/clusterroles/view").json()
        return any("podtemplates" in rule.get("resources", []) for rule in view["rules"])

    eventually(view_shows_it)


# -- escalation -------------------------------------------------------------------------------------------
def test_namespace_admin_cannot_bind_itself_to_cluster_admin(apiserver: ApiServer, admin: httpx.Client) -> None:
    ns = namespace(admin)
    bind(admin, ns, "admin", "erin")
    kubectl = user_kubectl(apiserver, "erin", ("dev",))
    result = kubectl.run(
        "create", "rolebinding", "root", "--clusterrole=cluster-admin", "--user=erin", "-n", ns, check=False
    )
    assert result.returncode != 0
    assert 'rolebindings.rbac.authorization.k8s.io "root" is forbidden' in result.stderr
    assert (
        'user "erin" (groups=["dev" "system:authenticated"]) is attempting to grant RBAC permissions not '
        "currently held:" in result.stderr
    )
    assert '{APIGroups:["*"], Resources:["*"], Verbs:["*"]}' in result.stderr
    result = kubectl.run(
        "create", "clusterrolebinding", "root", "--clusterrole=cluster-admin", "--user=erin", check=False
    )
    assert result.returncode != 0 and "is forbidden" in result.stderr
    # Granting what it holds is fine: view in its own namespace.
    kubectl("create", "rolebinding", "viewers", "--clusterrole=view", "--user=frank", "-n", ns)
    assert admin.get(f"{RBAC}/namespaces/{ns}/rolebindings/viewers").status_code == 200


def test_role_update_cannot_escalate_unless_allowed_to(apiserver: ApiServer, admin: httpx.Client) -> None:
    ns = namespace(admin)
    bind(admin, ns, "admin", "gina")
    kubectl = user_kubectl(apiserver, "gina")

    def role_yaml(*resources: str) -> str:
        return yaml.safe_dump(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": {"name": "helper", "namespace": ns},
                "rules": [{"apiGroups": [""], "resources": list(resources), "verbs": ["get", "update"]}],
            }
        )

    kubectl("apply", "-f", "-", input=role_yaml("pods"))
    result = kubectl.run("apply", "-f", "-", input=role_yaml("pods", "resourcequotas"), check=False)
    assert result.returncode != 0
    assert "attempting to grant RBAC permissions not currently held" in result.stderr
    assert '{APIGroups:[""], Resources:["resourcequotas"], Verbs:["update"]}' in result.stderr
    rules = admin.get(f"{RBAC}/namespaces/{ns}/roles/helper").json()["rules"]
    assert rules[0]["resources"] == ["pods"]  # unchanged
    # The escalate verb on roles lets a user write rules beyond its own.
    name = f"role-escalator-{uuid.uuid4().hex[:6]}"
    cluster_role(
        admin, name, [{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"], "verbs": ["escalate"]}]
    )
    bind(admin, ns, name, "gina")
    kubectl("apply", "-f", "-", input=role_yaml("pods", "resourcequotas"))


# -- impersonation ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("minor", [33, 27])
def test_admin_impersonates_a_user_and_groups(apiserver: ApiServer, admin: httpx.Client, minor: int) -> None:
    ns, other = namespace(admin), namespace(admin)
    bind(admin, ns, "edit", "heidi")
    kubectl = Kubectl(kubectl_binary(minor), apiserver.kubeconfig)
    kubectl("--as", "heidi", "get", "pods", "-n", ns)
    result = kubectl.run("--as", "heidi", "get", "secrets", "-n", other, check=False)
    assert result.returncode != 0
    assert 'User "heidi" cannot list resource "secrets"' in result.stderr
    whoami = kubectl("--as", "heidi", "--as-group", "dev", "auth", "whoami")
    assert "heidi" in whoami and "dev" in whoami


def test_impersonation_needs_the_impersonate_verb(apiserver: ApiServer, admin: httpx.Client) -> None:
    ns = namespace(admin)
    bind(admin, ns, "edit", "ivan")
    kubectl = user_kubectl(apiserver, "ivan")
    result = kubectl.run("--as", "judy", "get", "pods", "-n", ns, check=False)
    assert result.returncode != 0 and "Error from server (Forbidden)" in result.stderr
    with user_client(apiserver, "ivan", ()) as ivan:
        response = ivan.get(f"/api/v1/namespaces/{ns}/pods", headers={"Impersonate-User": "judy"})
        assert response.status_code == 403
        assert response.json()["message"] == (
            'users "judy" is forbidden: User "ivan" cannot impersonate resource "users" in API group "" '
            "at the cluster scope"
        )
    name = f"impersonate-judy-{uuid.uuid4().hex[:6]}"
    cluster_role(
        admin, name, [{"apiGroups": [""], "resources": ["users"], "verbs": ["impersonate"], "resourceNames": ["judy"]}]
    )
    bind_cluster(admin, name, "ivan")
    bind(admin, ns, "view", "judy")
    kubectl("--as", "judy", "get", "pods", "-n", ns)
    # Groups need their own grant.
    result = kubectl.run("--as", "judy", "--as-group", "system:masters", "get", "pods", "-n", ns, check=False)
    assert result.returncode != 0
    with user_client(apiserver, "ivan", ()) as ivan:
        headers = {"Impersonate-User": "judy", "Impersonate-Group": "system:masters"}
        response = ivan.get(f"/api/v1/namespaces/{ns}/secrets", headers=headers)
        assert response.status_code == 403
        assert response.json()["message"].startswith('groups "system:masters" is forbidden: User "ivan"')


# -- kubelets ------------------------------------------------------------------------------------------------
def test_kubelet_reads_only_secrets_its_pods_use(apiserver: ApiServer, admin: httpx.Client) -> None:
    ns = namespace(admin)
    node = f"n-{uuid.uuid4().hex[:6]}"
    for name in ("mounted", "unused"):
        body = {"metadata": {"name": name}, "stringData": {"k": "v"}}
        assert admin.post(f"/api/v1/namespaces/{ns}/secrets", json=body).status_code == 201
    pod = {
        "metadata": {"name": "web"},
        "spec": {
            "nodeName": node,
            "containers": [{"name": "web", "image": "nginx"}],
            "volumes": [{"name": "s", "secret": {"secretName": "mounted"}}],
        },
    }
    assert admin.post(f"/api/v1/namespaces/{ns}/pods", json=pod).status_code == 201
    kubelet = user_kubectl(apiserver, f"system:node:{node}", ("system:nodes",))
    assert "mounted" in kubelet("get", "secret", "mounted", "-n", ns)
    result = kubelet.run("get", "secret", "unused", "-n", ns, check=False)
    assert result.returncode != 0
    assert (
        f'secrets "unused" is forbidden: User "system:node:{node}" cannot get resource "secrets" in API group "" '
        f"in the namespace \"{ns}\": no relationship found between node '{node}' and this object"
    ) in result.stderr
    # Once the pod is gone, so is the access.
    assert admin.delete(f"/api/v1/namespaces/{ns}/pods/web", params={"gracePeriodSeconds": "0"}).status_code == 200
    eventually(lambda: kubelet.run("get", "secret", "mounted", "-n", ns, check=False).returncode != 0)


def test_kubelet_changes_only_its_own_node_and_pods(apiserver: ApiServer, admin: httpx.Client) -> None:
    ns = namespace(admin)
    mine, theirs = f"n-{uuid.uuid4().hex[:6]}", f"n-{uuid.uuid4().hex[:6]}"
    for name in (mine, theirs):
        assert admin.post("/api/v1/nodes", json={"metadata": {"name": name}}).status_code == 201
        pod = {
            "metadata": {"name": f"p-{name}"},
            "spec": {"nodeName": name, "containers": [{"name": "c", "image": "x"}]},
        }
        assert admin.post(f"/api/v1/namespaces/{ns}/pods", json=pod).status_code == 201
    merge = {"Content-Type": "application/merge-patch+json"}
    with user_client(apiserver, f"system:node:{mine}", ("system:nodes",)) as kubelet:
        label = {"metadata": {"labels": {"ready": "yes"}}}
        assert kubelet.patch(f"/api/v1/nodes/{mine}", json=label, headers=merge).status_code == 200
        denied = kubelet.patch(f"/api/v1/nodes/{theirs}", json=label, headers=merge)
        assert denied.status_code == 403
        assert denied.json()["message"] == (
            f'nodes "{theirs}" is forbidden: node "{mine}" is not allowed to modify node "{theirs}"'
        )
        restricted = {"metadata": {"labels": {"node-restriction.kubernetes.io/pool": "gold"}}}
        response = kubelet.patch(f"/api/v1/nodes/{mine}", json=restricted, headers=merge)
        assert response.status_code == 403 and "is not allowed to modify labels" in response.json()["message"]
        status = {"status": {"phase": "Running"}}
        own_status = kubelet.patch(f"/api/v1/namespaces/{ns}/pods/p-{mine}/status", json=status, headers=merge)
        assert own_status.status_code == 200 and own_status.json()["status"]["phase"] == "Running"
        other_status = kubelet.patch(f"/api/v1/namespaces/{ns}/pods/p-{theirs}/status", json=status, headers=merge)
        assert other_status.status_code == 403
        assert kubelet.delete(f"/api/v1/namespaces/{ns}/pods/p-{theirs}").status_code == 403
        assert kubelet.get(f"/api/v1/namespaces/{ns}/pods").status_code == 200
        plain = {
            "metadata": {"name": "sneaky"},
            "spec": {"nodeName": mine, "containers": [{"name": "c", "image": "x"}]},
        }
        created = kubelet.post(f"/api/v1/namespaces/{ns}/pods", json=plain)
        assert created.status_code == 403 and "can only create mirror pods" in created.json()["message"]
        lease = {"metadata": {"name": theirs}, "spec": {"holderIdentity": mine}}
        assert (
            kubelet.post("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", json=lease).status_code
            == 403
        )
        lease["metadata"]["name"] = mine
        assert (
            kubelet.post("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", json=lease).status_code
            == 201
        )


# -- bootstrap policy -------------------------------------------------------------------------------------
def test_bootstrap_policy_is_reconciled_without_losing_user_changes(tmp_path: Path) -> None:
    server = ApiServer(tmp_path / "server", free_port()).start()
    try:
        with server.client(timeout=30) as admin:
            role = admin.get(f"{RBAC}/clusterroles/system:discovery").json()
            role["rules"] = [{"verbs": ["get"], "nonResourceURLs": ["/custom"]}]  # drops the default rule
            assert admin.put(f"{RBAC}/clusterroles/system:discovery", json=role).status_code == 200
            frozen = admin.get(f"{RBAC}/clusterroles/system:basic-user").json()
            frozen["metadata"]["annotations"]["rbac.authorization.kubernetes.io/autoupdate"] = "false"
            frozen["rules"] = []
            assert admin.put(f"{RBAC}/clusterroles/system:basic-user", json=frozen).status_code == 200
            assert admin.delete(f"{RBAC}/clusterrolebindings/system:discovery").status_code == 200
        server.stop()
        server.start()
        with server.client(timeout=30) as admin:
            rules = admin.get(f"{RBAC}/clusterroles/system:discovery").json()["rules"]
            assert rules[0]["nonResourceURLs"] == ["/custom"]  # the user's rule stays
            assert any("/apis/*" in rule.get("nonResourceURLs", []) for rule in rules)  # the default is back
            assert admin.get(f"{RBAC}/clusterroles/system:basic-user").json().get("rules") in (None, [])
            assert admin.get(f"{RBAC}/clusterrolebindings/system:discovery").status_code == 200
    finally:
        server.stop()
