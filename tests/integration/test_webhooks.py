"""Admission webhooks: MutatingWebhookConfiguration and ValidatingWebhookConfiguration against a real
API server, with a test webhook served over HTTPS by this process.

Each test labels its own namespace and selects it with the webhook's namespaceSelector, so webhooks of
one test never see another test's requests.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import REPO_ROOT, ApiServer, Kubectl, free_port

MUTATING = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"
VALIDATING = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations"


def _load_gencerts() -> Any:
    spec = importlib.util.spec_from_file_location("gencerts", REPO_ROOT / "examples/secrets-injector/gencerts.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class TestWebhook:
    """An HTTPS admission webhook whose answer per path is set by the test; it records every review."""

    def __init__(self, certs: Path) -> None:
        self.reviews: list[dict[str, Any]] = []
        self.answers: dict[str, Any] = {}
        self.delay = 0.0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                review["path"] = self.path
                owner.reviews.append(review)
                path = self.path.split("?", 1)[0]
                if path == "/slow":
                    time.sleep(3)
                answer = owner.answers.get(path, {"allowed": True})
                if callable(answer):
                    answer = answer(review["request"])
                body = json.dumps(
                    {
                        "apiVersion": "admission.k8s.io/v1",
                        "kind": "AdmissionReview",
                        "response": {"uid": review["request"]["uid"], **answer},
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certs / "tls.crt", certs / "tls.key")
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.ca_bundle = base64.b64encode((certs / "ca.crt").read_bytes()).decode()

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("webhook-certs")
    _load_gencerts().generate(out, ["hooks.webhook-test.svc"], [])
    return out


@pytest.fixture(scope="module")
def hook(certs: Path) -> Iterator[TestWebhook]:
    server = TestWebhook(certs)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def http(apiserver: ApiServer) -> Iterator[httpx.Client]:
    with apiserver.client(timeout=60) as client:
        yield client


@pytest.fixture
def ns(http: httpx.Client) -> str:
    name = f"wh-{uuid.uuid4().hex[:8]}"
    body = {"metadata": {"name": name, "labels": {"webhook-test": name}}}
    assert http.post("/api/v1/namespaces", json=body).status_code == 201
    return name


@pytest.fixture
def configs(http: httpx.Client) -> Iterator[list[str]]:
    """Paths of the webhook configurations a test creates; deleted afterwards."""
    created: list[str] = []
    yield created
    for path in created:
        http.delete(path)


def webhook(name: str, ns: str, client_config: dict[str, Any], **extra: Any) -> dict[str, Any]:
    spec = {
        "name": name,
        "admissionReviewVersions": ["v1"],
        "sideEffects": "None",
        "clientConfig": client_config,
        "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}],
        "namespaceSelector": {"matchLabels": {"webhook-test": ns}},
    }
    spec.update(extra)
    return spec


def install(http: httpx.Client, configs: list[str], collection: str, hooks: list[dict[str, Any]]) -> str:
    kind = "MutatingWebhookConfiguration" if collection == MUTATING else "ValidatingWebhookConfiguration"
    name = f"test-{uuid.uuid4().hex[:8]}"
    body = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": name},
        "webhooks": hooks,
    }
    response = http.post(collection, json=body)
    assert response.status_code == 201, response.text
    configs.append(f"{collection}/{name}")
    return name


def pod(name: str, **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {"containers": [{"name": "app", "image": "nginx"}]},
    }


def add_label_patch(request: dict[str, Any]) -> dict[str, Any]:
    ops = [{"op": "add", "path": "/metadata/labels/mutated", "value": "yes"}]
    return {"allowed": True, "patchType": "JSONPatch", "patch": base64.b64encode(json.dumps(ops).encode()).decode()}


def test_mutating_webhook_changes_the_stored_pod(
    http: httpx.Client, hook: TestWebhook, ns: str, configs: list[str]
) -> None:
    hook.answers["/mutate"] = add_label_patch
    install(
        http,
        configs,
        MUTATING,
        [webhook("mutate.test.skiff.dev", ns, {"url": hook.url("/mutate"), "caBundle": hook.ca_bundle})],
    )
    response = http.post(f"/api/v1/namespaces/{ns}/pods", json=pod("mutated", app="web"))
    assert response.status_code == 201, response.text
    assert response.json()["metadata"]["labels"] == {"app": "web", "mutated": "yes"}
    stored = http.get(f"/api/v1/namespaces/{ns}/pods/mutated").json()
    assert stored["metadata"]["labels"]["mutated"] == "yes"
    review = next(r for r in hook.reviews if r["request"].get("namespace") == ns)
    request = review["request"]
    assert review["apiVersion"] == "admission.k8s.io/v1" and review["kind"] == "AdmissionReview"
    assert request["operation"] == "CREATE"
    assert request["kind"] == {"group": "", "version": "v1", "kind": "Pod"}
    assert request["resource"] == {"group": "", "version": "v1", "resource": "pods"}
    assert request["name"] == "mutated"
    assert request["userInfo"]["username"] == "skiff-admin"
    assert request["object"]["metadata"]["name"] == "mutated"
    assert review["path"].endswith("?timeout=10s")


def test_mutation_that_breaks_validation_is_refused(
    http: httpx.Client, hook: TestWebhook, ns: str, configs: list[str]
) -> None:
    ops = [{"op": "replace", "path": "/spec/containers/0/name", "value": "Not_Valid"}]
    hook.answers["/break"] = {
        "allowed": True,
        "patchType": "JSONPatch",
        "patch": base64.b64encode(json.dumps(ops).encode()).decode(),
    }
    install(
        http,
        configs,
        MUTATING,
        [webhook("break.test.skiff.dev", ns, {"url": hook.url("/break"), "caBundle": hook.ca_bundle})],
    )
    response = http.post(f"/api/v1/namespaces/{ns}/pods", json=pod("broken"))
    assert response.status_code == 422
    assert "spec.containers[0].name" in response.json()["message"]
    assert http.get(f"/api/v1/namespaces/{ns}/pods/broken").status_code == 404


def test_validating_webhook_denial_is_shown_by_kubectl(
    http: httpx.Client, hook: TestWebhook, ns: str, configs: list[str], kubectl: Kubectl
) -> None:
    def deny_bad_names(request: dict[str, Any]) -> dict[str, Any]:
        if request["name"].startswith("bad"):
            return {
                "allowed": False,
                "status": {"code": 403, "reason": "Forbidden", "message": "names may not start with bad"},
            }
        return {"allowed": True, "warnings": ["configmaps are checked by the test webhook"]}

    hook.answers["/deny"] = deny_bad_names
    rules = [
        {"operations": ["CREATE", "UPDATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["configmaps"]}
    ]
    install(
        http,
        configs,
        VALIDATING,
        [webhook("deny.test.skiff.dev", ns, {"url": hook.url("/deny"), "caBundle": hook.ca_bundle}, rules=rules)],
    )
    result = kubectl.run("create", "configmap", "bad-config", "-n", ns, "--from-literal=a=b", check=False)
    assert result.returncode != 0
    assert 'admission webhook "deny.test.skiff.dev" denied the request: names may not start with bad' in result.stderr
    manifest = json.dumps(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "bad-applied", "namespace": ns}}
    )
    applied = kubectl.run("apply", "-f", "-", input=manifest, check=False)
    assert applied.returncode != 0
    assert (
        'Error from server (Forbidden): error when creating "STDIN": admission webhook "deny.test.skiff.dev" '
        "denied the request: names may not start with bad" in applied.stderr
    )
    response = http.post(f"/api/v1/namespaces/{ns}/configmaps", json={"metadata": {"name": "bad-two"}})
    assert response.status_code == 403
    assert (
        response.json()["message"]
        == 'admission webhook "deny.test.skiff.dev" denied the request: names may not start with bad'
    )
    fine = http.post(f"/api/v1/namespaces/{ns}/configmaps", json={"metadata": {"name": "good"}})
    assert fine.status_code == 201
    assert fine.headers["warning"] == '299 - "configmaps are checked by the test webhook"'
    created = kubectl.run("create", "configmap", "good-two", "-n", ns, "--from-literal=a=b")
    assert "Warning: configmaps are checked by the test webhook" in created.stderr


def test_denial_without_a_code_is_400(http: httpx.Client, hook: TestWebhook, ns: str, configs: list[str]) -> None:
    hook.answers["/no"] = {"allowed": False}
    install(
        http,
        configs,
        VALIDATING,
        [webhook("no.test.skiff.dev", ns, {"url": hook.url("/no"), "caBundle": hook.ca_bundle})],
    )
    response = http.post(f"/api/v1/namespaces/{ns}/pods", json=pod("refused"))
    assert response.status_code == 400
    assert response.json()["message"] == 'admission webhook "no.test.skiff.dev" denied the request without explanation'


def test_failure_policy_fail_and_ignore_with_the_webhook_down(
    http: httpx.Client, hook: TestWebhook, ns: str, configs: list[str]
) -> None:
    down = f"https://127.0.0.1:{free_port()}/down"
    install(http, configs, VALIDATING, [webhook("fail.test.skiff.dev", ns, {"url": down, "caBundle": hook.ca_bundle})])
    response = http.post(f"/api/v1/namespaces/{ns}/pods", json=pod("blocked"))
    assert response.status_code == 500
    message = response.json()["message"]
    assert message.startswith(
        'Internal error occurred: failed calling webhook "fail.test.skiff.dev": failed to call webhook: Post "'
    )
    assert "connection refused" in message
    assert http.get(f"/api/v1/namespaces/{ns}/pods/blocked").status_code == 404
    http.delete(configs.pop())
    install(
        http,
        configs,
        VALIDATING,
        [webhook("ignore.test.skiff.dev", ns, {"url": down, "caBundle": hook.ca_bundle}, failurePolicy="Ignore")],
    )
    assert http.post(f"/api/v1/namespaces/{ns}/pods", json=pod("let-through")).status_code == 201


def test_a_slow_webhook_times_out(http: httpx.Client, hook: TestWebhook, ns: str, configs: list[str]) -> None:
    config = {"url": hook.url("/slow"), "caBundle": hook.ca_bundle}
    install(http, configs, VALIDATING, [webhook("slow.test.skiff.dev", ns, config, timeoutSeconds=1)])
    started = time.monotonic()
    response = http.post(f"/api/v1/namespaces/{ns}/pods", json=pod("too-slow"))
    assert time.monotonic() - started < 2.9
    assert response.status_code == 500
    assert "?timeout=1s" in response.json()["message"]
    assert response.json()["message"].endswith("context deadline exceeded")
    http.delete(configs.pop())
    install(
        http,
        configs,
        VALIDATING,
        [webhook("slow.test.skiff.dev", ns, config, timeoutSeconds=1, failurePolicy="Ignore")],
    )
    assert http.post(f"/api/v1/namespaces/{ns}/pods", json=pod("slow-but-ignored")).status_code == 201


def test_an_untrusted_serving_certificate_fails_the_call(
    http: httpx.Client, hook: TestWebhook, ns: str, configs: list[str], tmp_path: Path
) -> None:
    _load_gencerts().generate(tmp_path, ["other"], [])
    other_ca = base64.b64encode((tmp_path / "ca.crt").read_bytes()).decode()
    install(
        http, configs, VALIDATING, [webhook("tls.test.skiff.dev", ns, {"url": hook.url("/ok"), "caBundle": other_ca})]
    )
    response = http.post(f"/api/v1/namespaces/{ns}/pods", json=pod("untrusted"))
    assert response.status_code == 500
    assert "certificate verify failed" in response.json()["message"]


def test_service_reference_resolves_through_the_endpointslice(
    http: httpx.Client, hook: TestWebhook, ns: str, configs: list[str]
) -> None:
    hook.answers["/svc"] = add_label_patch
    namespace = "webhook-test"
    if http.get(f"/api/v1/namespaces/{namespace}").status_code == 404:
        http.post("/api/v1/namespaces", json={"metadata": {"name": namespace}})
    service = {"metadata": {"name": "hooks"}, "spec": {"ports": [{"name": "https", "port": 443, "targetPort": 9443}]}}
    assert http.post(f"/api/v1/namespaces/{namespace}/services", json=service).status_code in (201, 409)
    endpoint_slice = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": "hooks-1", "labels": {"kubernetes.io/service-name": "hooks"}},
        "addressType": "IPv4",
        "ports": [{"name": "https", "port": hook.port, "protocol": "TCP"}],
        "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}],
    }
    created = http.post(f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices", json=endpoint_slice)
    assert created.status_code in (201, 409), created.text
    client_config = {
        "service": {"namespace": namespace, "name": "hooks", "path": "/svc"},
        "caBundle": hook.ca_bundle,
    }
    install(http, configs, MUTATING, [webhook("svc.test.skiff.dev", ns, client_config)])
    response = http.post(f"/api/v1/namespaces/{ns}/pods", json=pod("via-service"))
    assert response.status_code == 201, response.text
    assert response.json()["metadata"]["labels"]["mutated"] == "yes"


def test_selectors_and_subresource_rules_decide_which_requests_are_sent(
    http: httpx.Client, hook: TestWebhook, ns: str, configs: list[str]
) -> None:
    hook.answers["/status"] = {"allowed": False, "status": {"message": "status is frozen"}}
    status_rule = [{"operations": ["UPDATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods/status"]}]
    config = {"url": hook.url("/status"), "caBundle": hook.ca_bundle}
    install(
        http,
        configs,
        VALIDATING,
        [
            webhook(
                "status.test.skiff.dev",
                ns,
                config,
                rules=status_rule,
                objectSelector={"matchLabels": {"frozen": "true"}},
            )
        ],
    )
    assert http.post(f"/api/v1/namespaces/{ns}/pods", json=pod("frozen", frozen="true")).status_code == 201
    assert http.post(f"/api/v1/namespaces/{ns}/pods", json=pod("thawed")).status_code == 201
    patch = {"metadata": {"labels": {"touched": "yes"}}}
    headers = {"Content-Type": "application/merge-patch+json"}
    assert (
        http.patch(f"/api/v1/namespaces/{ns}/pods/frozen", content=json.dumps(patch), headers=headers).status_code
        == 200
    )
    status = {"status": {"message": "hello"}}
    frozen = http.patch(f"/api/v1/namespaces/{ns}/pods/frozen/status", content=json.dumps(status), headers=headers)
    assert frozen.status_code == 400
    assert frozen.json()["message"] == 'admission webhook "status.test.skiff.dev" denied the request: status is frozen'
    thawed = http.patch(f"/api/v1/namespaces/{ns}/pods/thawed/status", content=json.dumps(status), headers=headers)
    assert thawed.status_code == 200
    elsewhere = f"wh-other-{uuid.uuid4().hex[:6]}"
    http.post("/api/v1/namespaces", json={"metadata": {"name": elsewhere}})
    assert http.post(f"/api/v1/namespaces/{elsewhere}/pods", json=pod("frozen", frozen="true")).status_code == 201
    other = http.patch(
        f"/api/v1/namespaces/{elsewhere}/pods/frozen/status", content=json.dumps(status), headers=headers
    )
    assert other.status_code == 200  # the namespaceSelector does not match


def test_dry_run_requests_reach_side_effect_free_webhooks(
    http: httpx.Client, hook: TestWebhook, ns: str, configs: list[str]
) -> None:
    hook.answers["/dry"] = add_label_patch
    config = {"url": hook.url("/dry"), "caBundle": hook.ca_bundle}
    install(http, configs, MUTATING, [webhook("dry.test.skiff.dev", ns, config, sideEffects="NoneOnDryRun")])
    response = http.post(f"/api/v1/namespaces/{ns}/pods?dryRun=All", json=pod("dry"))
    assert response.status_code == 201
    assert response.json()["metadata"]["labels"]["mutated"] == "yes"
    assert http.get(f"/api/v1/namespaces/{ns}/pods/dry").status_code == 404
    sent = [r["request"] for r in hook.reviews if r["request"].get("namespace") == ns]
    assert sent[-1]["dryRun"] is True


def test_invalid_webhook_configurations_are_refused(http: httpx.Client, ns: str) -> None:
    body = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": "invalid"},
        "webhooks": [
            webhook("short", ns, {"url": "http://example.com/x"}, timeoutSeconds=31, sideEffects="Some"),
        ],
    }
    response = http.post(VALIDATING, json=body)
    assert response.status_code == 422
    message = response.json()["message"]
    assert 'webhooks[0].name: Invalid value: "short": should be a domain with at least three segments' in message
    assert (
        "webhooks[0].timeoutSeconds: Invalid value: 31: the timeout value must be between 1 and 30 seconds" in message
    )
    assert 'webhooks[0].sideEffects: Unsupported value: "Some"' in message
    assert 'webhooks[0].clientConfig.url: Unsupported value: "http": supported values: "https"' in message
    created = http.post(
        VALIDATING,
        json={
            **body,
            "metadata": {"name": "defaults"},
            "webhooks": [webhook("ok.test.skiff.dev", ns, {"url": "https://example.com/x"})],
        },
    )
    assert created.status_code == 201, created.text
    defaulted = created.json()["webhooks"][0]
    assert defaulted["timeoutSeconds"] == 10
    assert defaulted["failurePolicy"] == "Fail"
    assert defaulted["matchPolicy"] == "Equivalent"
    assert defaulted["rules"][0]["scope"] == "*"
    http.delete(f"{VALIDATING}/defaults")
