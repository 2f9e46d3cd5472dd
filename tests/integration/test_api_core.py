"""The REST API over HTTPS against a real API server process: verbs, errors, patches, selectors."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.support import ApiServer

PODS = "/api/v1/namespaces/{ns}/pods"
DEPLOYMENTS = "/apis/apps/v1/namespaces/{ns}/deployments"


@pytest.fixture(scope="module")
def http(apiserver: ApiServer) -> Iterator[httpx.Client]:
    with apiserver.client(timeout=30) as client:
        yield client


@pytest.fixture
def ns(http: httpx.Client) -> str:
    name = f"t-{uuid.uuid4().hex[:8]}"
    response = http.post("/api/v1/namespaces", json={"metadata": {"name": name}})
    assert response.status_code == 201, response.text
    return name


def pod(name: str, labels: dict[str, str] | None = None, image: str = "nginx:1.27") -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"containers": [{"name": "web", "image": image}]},
    }


def deployment(name: str, replicas: int = 2) -> dict:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}]},
            },
        },
    }


def test_unauthenticated_requests_get_401_except_health(apiserver: ApiServer) -> None:
    with apiserver.anonymous_client() as anonymous:
        for path in ("/api/v1/pods", "/api", "/apis/apps/v1/deployments", "/metrics", "/openapi/v3"):
            response = anonymous.get(path)
            assert response.status_code == 401, path
            assert response.json()["reason"] == "Unauthorized"
        assert anonymous.get("/healthz").text == "ok"
        assert anonymous.get("/version").json()["minor"] == "33"


def test_create_get_list_update_delete(http: httpx.Client, ns: str) -> None:
    created = http.post(PODS.format(ns=ns), json=pod("a"))
    assert created.status_code == 201, created.text
    body = created.json()
    meta = body["metadata"]
    assert meta["namespace"] == ns and meta["uid"] and meta["creationTimestamp"]
    assert int(meta["resourceVersion"]) > 0
    assert body["spec"]["restartPolicy"] == "Always"  # defaulted
    assert body["spec"]["containers"][0]["imagePullPolicy"] == "IfNotPresent"

    got = http.get(f"{PODS.format(ns=ns)}/a").json()
    assert got["metadata"]["uid"] == meta["uid"]

    listed = http.get(PODS.format(ns=ns)).json()
    assert listed["kind"] == "PodList"
    assert [p["metadata"]["name"] for p in listed["items"]] == ["a"]
    assert int(listed["metadata"]["resourceVersion"]) >= int(meta["resourceVersion"])

    got["metadata"]["labels"] = {"tier": "web"}
    updated = http.put(f"{PODS.format(ns=ns)}/a", json=got)
    assert updated.status_code == 200, updated.text
    assert int(updated.json()["metadata"]["resourceVersion"]) > int(meta["resourceVersion"])

    deleted = http.delete(f"{PODS.format(ns=ns)}/a")
    assert deleted.status_code == 200
    missing = http.get(f"{PODS.format(ns=ns)}/a")
    assert missing.status_code == 404
    assert missing.json() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'pods "a" not found',
        "reason": "NotFound",
        "details": {"name": "a", "kind": "pods"},
        "code": 404,
    }


def test_stale_update_is_409_and_changes_nothing(http: httpx.Client, ns: str) -> None:
    first = http.post(PODS.format(ns=ns), json=pod("c")).json()
    first["metadata"]["labels"] = {"v": "1"}
    assert http.put(f"{PODS.format(ns=ns)}/c", json=first).status_code == 200
    first["metadata"]["labels"] = {"v": "stale"}
    response = http.put(f"{PODS.format(ns=ns)}/c", json=first)
    assert response.status_code == 409
    status = response.json()
    assert status["reason"] == "Conflict"
    assert "the object has been modified" in status["message"]
    assert http.get(f"{PODS.format(ns=ns)}/c").json()["metadata"]["labels"] == {"v": "1"}


def test_duplicate_create_is_409_already_exists(http: httpx.Client, ns: str) -> None:
    assert http.post(PODS.format(ns=ns), json=pod("dup")).status_code == 201
    response = http.post(PODS.format(ns=ns), json=pod("dup"))
    assert response.status_code == 409
    assert response.json()["reason"] == "AlreadyExists"
    assert response.json()["message"] == 'pods "dup" already exists'


def test_generate_name_and_dry_run(http: httpx.Client, ns: str) -> None:
    body = pod("")
    body["metadata"] = {"generateName": "web-"}
    made = http.post(PODS.format(ns=ns), json=body).json()
    assert made["metadata"]["name"].startswith("web-") and len(made["metadata"]["name"]) == 9
    dry = http.post(PODS.format(ns=ns), params={"dryRun": "All"}, json=pod("ghost"))
    assert dry.status_code == 201
    assert http.get(f"{PODS.format(ns=ns)}/ghost").status_code == 404


def test_invalid_objects_are_422_with_causes(http: httpx.Client, ns: str) -> None:
    bad = pod("Bad_Name")
    response = http.post(PODS.format(ns=ns), json=bad)
    assert response.status_code == 422
    status = response.json()
    assert status["reason"] == "Invalid"
    assert any(c["field"] == "metadata.name" for c in status["details"]["causes"])
    no_containers = {"metadata": {"name": "empty"}, "spec": {"containers": []}}
    response = http.post(PODS.format(ns=ns), json=no_containers)
    assert response.status_code == 422
    assert http.get(f"{PODS.format(ns=ns)}/empty").status_code == 404


def test_bad_input_gets_clear_status_codes(http: httpx.Client, ns: str) -> None:
    path = PODS.format(ns=ns)
    headers = {"Content-Type": "application/json"}
    assert http.post(path, content=b"{not json", headers=headers).status_code == 400
    assert http.post(path, content=b"x" * (3 * 1024 * 1024 + 10), headers=headers).status_code == 413
    weird = http.post(path, content=b"<pod/>", headers={"Content-Type": "application/xml"})
    assert weird.status_code == 415 and weird.json()["reason"] == "UnsupportedMediaType"
    assert http.get(f"/api/v1/namespaces/{ns}/nonsense").status_code == 404
    assert http.put(PODS.format(ns=ns), json=pod("x")).status_code == 405
    text = '{"metadata":{"name":"deep"},"spec":' + '{"a":' * 5000 + "{}" + "}" * 5000 + "}"
    assert http.post(path, content=text.encode(), headers=headers).status_code == 400
    assert http.get(f"{path}/deep").status_code == 404
    assert http.get("/healthz").status_code == 200


def test_missing_namespace_is_404(http: httpx.Client) -> None:
    response = http.post(PODS.format(ns="no-such-namespace"), json=pod("a"))
    assert response.status_code == 404
    assert response.json()["message"] == 'namespaces "no-such-namespace" not found'


def test_strict_field_validation(http: httpx.Client, ns: str) -> None:
    body = deployment("strict")
    body["spec"]["replicaz"] = 3
    strict = http.post(DEPLOYMENTS.format(ns=ns), params={"fieldValidation": "Strict"}, json=body)
    assert strict.status_code == 400
    assert 'unknown field "spec.replicaz"' in strict.json()["message"]
    warn = http.post(DEPLOYMENTS.format(ns=ns), params={"fieldValidation": "Warn"}, json=body)
    assert warn.status_code == 201
    assert "spec.replicaz" in warn.headers["warning"]
    assert "replicaz" not in warn.json()["spec"]


def test_patch_types(http: httpx.Client, ns: str) -> None:
    path = DEPLOYMENTS.format(ns=ns)
    assert http.post(path, json=deployment("p")).status_code == 201
    merge = http.patch(
        f"{path}/p",
        content=b'{"metadata":{"labels":{"a":"1"}},"spec":{"replicas":4}}',
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert merge.status_code == 200 and merge.json()["spec"]["replicas"] == 4
    strategic = http.patch(
        f"{path}/p",
        content=json.dumps(
            {"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "image": "busybox"}]}}}}
        ).encode(),
        headers={"Content-Type": "application/strategic-merge-patch+json"},
    )
    names = [c["name"] for c in strategic.json()["spec"]["template"]["spec"]["containers"]]
    assert sorted(names) == ["sidecar", "web"]
    json_patch = http.patch(
        f"{path}/p",
        content=b'[{"op":"test","path":"/spec/replicas","value":4},{"op":"replace","path":"/spec/replicas","value":1}]',
        headers={"Content-Type": "application/json-patch+json"},
    )
    assert json_patch.status_code == 200 and json_patch.json()["spec"]["replicas"] == 1
    failed = http.patch(
        f"{path}/p",
        content=b'[{"op":"test","path":"/spec/replicas","value":99},{"op":"replace","path":"/spec/replicas","value":7}]',
        headers={"Content-Type": "application/json-patch+json"},
    )
    assert failed.status_code == 422
    assert http.get(f"{path}/p").json()["spec"]["replicas"] == 1


def test_generation_bumps_on_spec_changes_only(http: httpx.Client, ns: str) -> None:
    path = DEPLOYMENTS.format(ns=ns)
    created = http.post(path, json=deployment("g")).json()
    assert created["metadata"]["generation"] == 1
    labelled = http.patch(
        f"{path}/g",
        content=b'{"metadata":{"labels":{"x":"y"}}}',
        headers={"Content-Type": "application/merge-patch+json"},
    ).json()
    assert labelled["metadata"]["generation"] == 1
    scaled = http.patch(
        f"{path}/g",
        content=b'{"spec":{"replicas":5}}',
        headers={"Content-Type": "application/merge-patch+json"},
    ).json()
    assert scaled["metadata"]["generation"] == 2


def test_scale_subresource(http: httpx.Client, ns: str) -> None:
    path = DEPLOYMENTS.format(ns=ns)
    http.post(path, json=deployment("s", 2))
    scale = http.get(f"{path}/s/scale").json()
    assert scale["kind"] == "Scale" and scale["spec"]["replicas"] == 2
    assert scale["status"]["selector"] == "app=s"
    patched = http.patch(
        f"{path}/s/scale",
        content=b'{"spec":{"replicas":5}}',
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert patched.status_code == 200 and patched.json()["spec"]["replicas"] == 5
    assert http.get(f"{path}/s").json()["spec"]["replicas"] == 5


def test_status_subresource_split(http: httpx.Client, ns: str) -> None:
    path = DEPLOYMENTS.format(ns=ns)
    http.post(path, json=deployment("st"))
    current = http.get(f"{path}/st").json()
    current["status"] = {"replicas": 7}
    current["spec"]["replicas"] = 9
    through_status = http.put(f"{path}/st/status", json=current).json()
    assert through_status["status"]["replicas"] == 7
    assert through_status["spec"]["replicas"] == 2  # spec changes through /status are ignored
    through_main = http.get(f"{path}/st").json()
    through_main["status"] = {"replicas": 1}
    after = http.put(f"{path}/st", json=through_main).json()
    assert after["status"]["replicas"] == 7  # status changes through the main resource are ignored


def test_label_and_field_selectors_and_paging(http: httpx.Client, ns: str) -> None:
    path = PODS.format(ns=ns)
    for i in range(7):
        http.post(path, json=pod(f"p{i}", {"parity": "even" if i % 2 == 0 else "odd", "i": str(i)}))
    even = http.get(path, params={"labelSelector": "parity=even"}).json()["items"]
    assert [p["metadata"]["name"] for p in even] == ["p0", "p2", "p4", "p6"]
    setbased = http.get(path, params={"labelSelector": "i in (1,2),parity!=odd"}).json()["items"]
    assert [p["metadata"]["name"] for p in setbased] == ["p2"]
    by_name = http.get(path, params={"fieldSelector": "metadata.name=p3"}).json()["items"]
    assert [p["metadata"]["name"] for p in by_name] == ["p3"]
    assert http.get(path, params={"fieldSelector": "spec.bogus=x"}).status_code == 400
    assert http.get(path, params={"labelSelector": "a in (b"}).status_code == 400
    names: list[str] = []
    params = {"limit": "3"}
    while True:
        page = http.get(path, params=params).json()
        names += [p["metadata"]["name"] for p in page["items"]]
        token = page["metadata"].get("continue")
        if not token:
            break
        params = {"limit": "3", "continue": token}
    assert names == [f"p{i}" for i in range(7)]


def test_finalizers_hold_deletion(http: httpx.Client, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps"
    http.post(path, json={"metadata": {"name": "held", "finalizers": ["example.com/hold"]}, "data": {"a": "b"}})
    response = http.delete(f"{path}/held")
    assert response.status_code == 200
    assert response.json()["metadata"]["deletionTimestamp"]
    held = http.get(f"{path}/held").json()
    assert held["metadata"]["deletionTimestamp"]
    released = http.patch(
        f"{path}/held",
        content=b'{"metadata":{"finalizers":null}}',
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert released.status_code == 200
    assert http.get(f"{path}/held").status_code == 404


def test_delete_preconditions(http: httpx.Client, ns: str) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps"
    http.post(path, json={"metadata": {"name": "pre"}})
    response = http.request("DELETE", f"{path}/pre", json={"preconditions": {"uid": "not-the-uid"}})
    assert response.status_code == 409
    assert http.get(f"{path}/pre").status_code == 200


def test_terminating_namespace_refuses_creates(http: httpx.Client) -> None:
    name = f"term-{uuid.uuid4().hex[:6]}"
    http.post("/api/v1/namespaces", json={"metadata": {"name": name}})
    response = http.delete(f"/api/v1/namespaces/{name}")
    assert response.status_code in (200, 202)
    namespace = http.get(f"/api/v1/namespaces/{name}").json()
    assert namespace["status"]["phase"] == "Terminating"
    refused = http.post(PODS.format(ns=name), json=pod("late"))
    assert refused.status_code == 403
    assert "because it is being terminated" in refused.json()["message"]


def test_system_namespaces_exist(http: httpx.Client) -> None:
    names = {n["metadata"]["name"] for n in http.get("/api/v1/namespaces").json()["items"]}
    assert {"default", "kube-system", "kube-public", "kube-node-lease"} <= names


def test_watch_from_list_resource_version(apiserver: ApiServer, http: httpx.Client, ns: str) -> None:
    path = PODS.format(ns=ns)
    http.post(path, json=pod("before"))
    listed = http.get(path).json()
    rv = listed["metadata"]["resourceVersion"]
    events: list[dict] = []
    ready = threading.Event()

    def watch() -> None:
        with (
            apiserver.client(timeout=30) as client,
            client.stream(
                "GET", path, params={"watch": "true", "resourceVersion": rv, "timeoutSeconds": "5"}
            ) as stream,
        ):
            assert stream.headers["content-type"].startswith("application/json")
            ready.set()
            for line in stream.iter_lines():
                if line:
                    events.append(json.loads(line))
                    if len(events) == 3:
                        return

    thread = threading.Thread(target=watch)
    thread.start()
    ready.wait(10)
    http.post(path, json=pod("after"))
    http.patch(
        f"{path}/after",
        content=b'{"metadata":{"labels":{"x":"1"}}}',
        headers={"Content-Type": "application/merge-patch+json"},
    )
    http.delete(f"{path}/after")
    thread.join(15)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "after"),
        ("MODIFIED", "after"),
        ("DELETED", "after"),
    ]
    versions = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert versions == sorted(versions) and versions[0] > int(rv)


def test_watch_without_version_sends_current_state_and_bookmarks(
    apiserver: ApiServer, http: httpx.Client, ns: str
) -> None:
    path = PODS.format(ns=ns)
    http.post(path, json=pod("one"))
    types: list[str] = []
    with (
        apiserver.client(timeout=30) as client,
        client.stream(
            "GET", path, params={"watch": "1", "allowWatchBookmarks": "true", "timeoutSeconds": "3"}
        ) as stream,
    ):
        for line in stream.iter_lines():
            if line:
                types.append(json.loads(line)["type"])
    assert types[0] == "ADDED"
    assert "BOOKMARK" in types


def test_discovery_and_openapi(http: httpx.Client) -> None:
    core = http.get("/api/v1").json()
    pods = next(r for r in core["resources"] if r["name"] == "pods")
    assert pods["shortNames"] == ["po"] and pods["categories"] == ["all"]
    assert any(r["name"] == "pods/log" for r in core["resources"])
    groups = {g["name"] for g in http.get("/apis").json()["groups"]}
    assert {"apps", "batch", "rbac.authorization.k8s.io", "coordination.k8s.io"} <= groups
    aggregated_type = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    aggregated = http.get("/apis", headers={"Accept": aggregated_type})
    assert aggregated.headers["content-type"] == aggregated_type
    assert aggregated.json()["kind"] == "APIGroupDiscoveryList"
    index = http.get("/openapi/v3").json()
    assert "apis/apps/v1" in index["paths"]
    document = http.get(index["paths"]["apis/apps/v1"]["serverRelativeURL"]).json()
    assert "io.k8s.api.apps.v1.Deployment" in document["components"]["schemas"]


def test_table_output(http: httpx.Client, ns: str) -> None:
    http.post(DEPLOYMENTS.format(ns=ns), json=deployment("tbl", 3))
    table = http.get(
        DEPLOYMENTS.format(ns=ns), headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}
    ).json()
    assert table["kind"] == "Table"
    columns = [c["name"] for c in table["columnDefinitions"]]
    assert columns[:5] == ["Name", "Ready", "Up-to-date", "Available", "Age"]
    row = table["rows"][0]
    assert row["cells"][0] == "tbl"
    assert row["object"]["kind"] == "PartialObjectMetadata"


def test_metrics_count_requests(http: httpx.Client) -> None:
    text = http.get("/metrics").text
    assert "apiserver_request_total" in text
    assert 'verb="create"' in text


def test_binding_assigns_a_node_once(http: httpx.Client, ns: str) -> None:
    path = PODS.format(ns=ns)
    http.post(path, json=pod("bound"))
    binding = {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": "bound"},
        "target": {"kind": "Node", "name": "n1"},
    }
    response = http.post(f"{path}/bound/binding", json=binding)
    assert response.status_code == 201, response.text
    bound = http.get(f"{path}/bound").json()
    assert bound["spec"]["nodeName"] == "n1"
    scheduled = [c for c in bound["status"]["conditions"] if c["type"] == "PodScheduled"]
    assert scheduled and scheduled[0]["status"] == "True"
    again = http.post(f"{path}/bound/binding", json={**binding, "target": {"kind": "Node", "name": "n2"}})
    assert again.status_code == 409
    assert http.get(f"{path}/bound").json()["spec"]["nodeName"] == "n1"
    http.post(path, json=pod("legacy"))
    legacy = http.post(f"/api/v1/namespaces/{ns}/bindings", json={**binding, "metadata": {"name": "legacy"}})
    assert legacy.status_code == 201, legacy.text
    assert http.get(f"{path}/legacy").json()["spec"]["nodeName"] == "n1"
