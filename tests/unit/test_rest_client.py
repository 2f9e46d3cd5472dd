"""The REST client against canned servers: request shapes, Status errors, watch streams, TLS."""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvicorn

from skiff.api.errors import ApiError, not_found
from skiff.api.kinds import BUILTINS, ResourceType
from skiff.client.builder import resource_path
from skiff.client.kubeconfig import ClientConfig, load_kubeconfig
from skiff.client.rest import AsyncClient, Client
from skiff.pki.cluster import ClusterPki, ensure_cluster_pki

POD = ("v1", "Pod")
DEPLOYMENT = ("apps/v1", "Deployment")
CONFIG = ClientConfig(server="https://skiff.test:6443", namespace="team-a", token="t0ken")

Handler = Callable[[httpx.Request], httpx.Response]


class Recorder:
    """A fake API server: answers from a handler and remembers every request."""

    def __init__(self, handler: Handler | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self._handler = handler or (lambda request: json_response(200, {"kind": "Pod"}))

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        return self._handler(request)

    @property
    def last(self) -> httpx.Request:
        return self.requests[-1]

    def last_body(self) -> Any:
        return orjson.loads(self.last.content)


def json_response(code: int, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(
        code, content=orjson.dumps(body), headers={"Content-Type": "application/json", **(headers or {})}
    )


def client_for(recorder: Recorder, config: ClientConfig = CONFIG) -> Client:
    return Client(config, transport=httpx.MockTransport(recorder))


def pod(name: str, namespace: str | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": {"containers": []}}


def event_line(event_type: str, obj: dict[str, Any]) -> bytes:
    return orjson.dumps({"type": event_type, "object": obj}) + b"\n"


# --- paths


@pytest.mark.parametrize(
    ("ref", "namespace", "name", "subresource", "path"),
    [
        (POD, "default", "web", "", "/api/v1/namespaces/default/pods/web"),
        (POD, None, None, "", "/api/v1/pods"),
        (DEPLOYMENT, "prod", "api", "scale", "/apis/apps/v1/namespaces/prod/deployments/api/scale"),
        (("v1", "Node"), "ignored", "n1", "status", "/api/v1/nodes/n1/status"),
        (
            ("rbac.authorization.k8s.io/v1", "ClusterRole"),
            None,
            "view",
            "",
            "/apis/rbac.authorization.k8s.io/v1/clusterroles/view",
        ),
        (("v1", "Namespace"), None, "kube-system", "", "/api/v1/namespaces/kube-system"),
    ],
)
def test_resource_paths_follow_api_conventions(
    ref: tuple[str, str], namespace: str | None, name: str | None, subresource: str, path: str
) -> None:
    resource = BUILTINS.by_api_version(*ref)
    assert resource is not None
    assert resource_path(resource, namespace, name, subresource) == path


def test_get_sends_auth_agent_and_accept_and_decodes_the_object() -> None:
    recorder = Recorder(lambda r: json_response(200, pod("web", "team-a")))
    with client_for(recorder) as client:
        obj = client.get(POD, "web")
    assert obj == pod("web", "team-a")
    request = recorder.last
    assert request.url == "https://skiff.test:6443/api/v1/namespaces/team-a/pods/web"
    assert request.headers["Authorization"] == "Bearer t0ken"
    assert request.headers["User-Agent"].startswith("skiff/")
    assert request.headers["Accept"] == "application/json"


def test_custom_resource_types_are_addressable() -> None:
    widgets = ResourceType("example.com", "v1alpha1", "Widget", "widgets", True)
    recorder = Recorder()
    with client_for(recorder) as client:
        client.get(widgets, "w1", "ns1")
        with pytest.raises(ValueError, match="unknown kind 'Widget'"):
            client.get(("example.com/v1alpha1", "Widget"), "w1")
    assert recorder.last.url.path == "/apis/example.com/v1alpha1/namespaces/ns1/widgets/w1"


def test_no_token_means_no_authorization_header() -> None:
    recorder = Recorder()
    with client_for(recorder, ClientConfig(server="https://skiff.test:6443")) as client:
        client.get(POD, "web")
    assert "Authorization" not in recorder.last.headers
    assert recorder.last.url.path == "/api/v1/namespaces/default/pods/web"


# --- list


def test_list_passes_selectors_and_paging_parameters() -> None:
    recorder = Recorder(lambda r: json_response(200, {"kind": "PodList", "items": []}))
    with client_for(recorder) as client:
        client.list(
            POD,
            "team-a",
            label_selector="app=web,tier!=db",
            field_selector="spec.nodeName=n1",
            limit=50,
            continue_token="abc",
        )
    params = recorder.last.url.params
    assert recorder.last.url.path == "/api/v1/namespaces/team-a/pods"
    assert params["labelSelector"] == "app=web,tier!=db"
    assert params["fieldSelector"] == "spec.nodeName=n1"
    assert params["limit"] == "50"
    assert params["continue"] == "abc"


def paged_handler(pages: int) -> Handler:
    def handle(request: httpx.Request) -> httpx.Response:
        index = int(request.url.params.get("continue") or 0)
        metadata = {"resourceVersion": "42"}
        if index + 1 < pages:
            metadata["continue"] = str(index + 1)
        items = [pod(f"p{index}-{i}") for i in range(2)]
        return json_response(200, {"apiVersion": "v1", "kind": "PodList", "metadata": metadata, "items": items})

    return handle


def test_list_all_follows_continue_to_the_last_page() -> None:
    recorder = Recorder(paged_handler(3))
    with client_for(recorder) as client:
        everything = client.list_all(POD, label_selector="app=web", page_size=2)
    assert [item["metadata"]["name"] for item in everything["items"]] == [
        "p0-0",
        "p0-1",
        "p1-0",
        "p1-1",
        "p2-0",
        "p2-1",
    ]
    assert everything["kind"] == "PodList"
    assert everything["metadata"] == {"resourceVersion": "42"}
    assert [r.url.params.get("continue") for r in recorder.requests] == [None, "1", "2"]
    assert all(r.url.params["labelSelector"] == "app=web" for r in recorder.requests)
    assert all(r.url.path == "/api/v1/pods" for r in recorder.requests)


# --- writes


def test_create_posts_to_the_objects_namespace() -> None:
    recorder = Recorder(lambda r: json_response(201, orjson.loads(r.content)))
    with client_for(recorder) as client:
        created = client.create(pod("web", "prod"), field_manager="skiff-test")
        client.create(pod("db"))
    first, second = recorder.requests
    assert created["metadata"]["name"] == "web"
    assert (first.method, first.url.path) == ("POST", "/api/v1/namespaces/prod/pods")
    assert first.url.params["fieldManager"] == "skiff-test"
    assert first.headers["Content-Type"] == "application/json"
    assert second.url.path == "/api/v1/namespaces/team-a/pods", "the context's namespace is the default"


def test_create_on_a_subresource() -> None:
    recorder = Recorder()
    binding = {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": "web"},
        "target": {"kind": "Node", "name": "n1"},
    }
    with client_for(recorder) as client:
        client.create(binding, "prod", resource=POD, name="web", subresource="binding")
    assert recorder.last.url.path == "/api/v1/namespaces/prod/pods/web/binding"
    assert recorder.last_body() == binding


def test_update_puts_the_whole_object_by_name() -> None:
    recorder = Recorder()
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "api", "namespace": "prod", "resourceVersion": "7"},
    }
    with client_for(recorder) as client:
        client.update(deployment, subresource="status")
    assert (recorder.last.method, recorder.last.url.path) == (
        "PUT",
        "/apis/apps/v1/namespaces/prod/deployments/api/status",
    )
    assert recorder.last_body()["metadata"]["resourceVersion"] == "7"


@pytest.mark.parametrize(
    ("patch_type", "content_type"),
    [
        ("merge", "application/merge-patch+json"),
        ("json", "application/json-patch+json"),
        ("strategic", "application/strategic-merge-patch+json"),
    ],
)
def test_patch_types_send_their_media_types(patch_type: Any, content_type: str) -> None:
    recorder = Recorder()
    body = (
        [{"op": "replace", "path": "/spec/replicas", "value": 3}] if patch_type == "json" else {"spec": {"replicas": 3}}
    )
    with client_for(recorder) as client:
        client.patch(DEPLOYMENT, "api", body, patch_type=patch_type)
    assert recorder.last.method == "PATCH"
    assert recorder.last.headers["Content-Type"] == content_type
    assert recorder.last_body() == body
    assert recorder.last.url.path == "/apis/apps/v1/namespaces/team-a/deployments/api"


def test_server_side_apply_carries_field_manager_and_force() -> None:
    recorder = Recorder()
    with client_for(recorder) as client:
        client.patch(
            DEPLOYMENT,
            "api",
            {"spec": {"replicas": 2}},
            "prod",
            patch_type="apply",
            field_manager="ctl",
            force=True,
        )
        with pytest.raises(ValueError, match="field manager"):
            client.patch(DEPLOYMENT, "api", {}, patch_type="apply")
        with pytest.raises(ValueError, match="force"):
            client.patch(DEPLOYMENT, "api", {}, patch_type="merge", force=True)
    assert len(recorder.requests) == 1, "invalid patches are refused before anything is sent"
    assert recorder.last.headers["Content-Type"] == "application/apply-patch+yaml"
    assert dict(recorder.last.url.params) == {"fieldManager": "ctl", "force": "true"}


def test_delete_sends_delete_options() -> None:
    recorder = Recorder(lambda r: json_response(200, {"kind": "Status", "status": "Success"}))
    with client_for(recorder) as client:
        client.delete(
            DEPLOYMENT,
            "api",
            propagation_policy="Foreground",
            grace_period_seconds=0,
            preconditions={"uid": "u-1", "resourceVersion": "9"},
        )
    assert recorder.last.method == "DELETE"
    assert recorder.last_body() == {
        "kind": "DeleteOptions",
        "apiVersion": "v1",
        "propagationPolicy": "Foreground",
        "gracePeriodSeconds": 0,
        "preconditions": {"uid": "u-1", "resourceVersion": "9"},
    }


# --- errors


def test_status_bodies_become_api_errors_with_details() -> None:
    status = not_found("pods", "nope").status()
    with (
        client_for(Recorder(lambda r: json_response(404, status))) as client,
        pytest.raises(ApiError) as caught,
    ):
        client.get(POD, "nope")
    error = caught.value
    assert (error.code, error.reason, error.name, error.kind) == (404, "NotFound", "nope", "pods")
    assert str(error) == 'pods "nope" not found'
    assert error.status() == status, "the error round-trips to the same Status body"


def test_invalid_errors_keep_their_causes() -> None:
    status = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'Deployment.apps "api" is invalid: spec.replicas: Invalid value: -1',
        "reason": "Invalid",
        "details": {
            "name": "api",
            "group": "apps",
            "kind": "Deployment",
            "causes": [{"reason": "FieldValueInvalid", "message": "Invalid value: -1", "field": "spec.replicas"}],
        },
        "code": 422,
    }
    with (
        client_for(Recorder(lambda r: json_response(422, status))) as client,
        pytest.raises(ApiError) as caught,
    ):
        client.update({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api"}})
    assert caught.value.code == 422
    assert [(c.field, c.reason) for c in caught.value.causes] == [("spec.replicas", "FieldValueInvalid")]


def test_replies_without_status_still_raise_meaningful_errors() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/busy"):
            return httpx.Response(429, text="slow down", headers={"Retry-After": "3"})
        return httpx.Response(503, text="")

    with client_for(Recorder(handle)) as client:
        with pytest.raises(ApiError) as busy:
            client.get(POD, "busy")
        with pytest.raises(ApiError) as down:
            client.get(POD, "down")
    assert (busy.value.code, busy.value.reason, busy.value.message) == (429, "TooManyRequests", "slow down")
    assert busy.value.retry_after_seconds == 3
    assert (down.value.code, down.value.reason) == (503, "ServiceUnavailable")
    assert "503" in down.value.message


# --- watch over a mock transport


WATCH_EVENTS = [
    event_line("ADDED", pod("a")),
    event_line("MODIFIED", pod("a")),
    event_line("BOOKMARK", {"kind": "Pod", "apiVersion": "v1", "metadata": {"resourceVersion": "12"}}),
    event_line(
        "ERROR",
        {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "reason": "Expired",
            "message": "too old resource version: 5 (10)",
            "code": 410,
        },
    ),
]


def split_badly(lines: list[bytes]) -> Iterator[bytes]:
    """Chunks that cut lines in the middle and join others, as a network may deliver them."""
    data = b"".join(lines)
    for start in range(0, len(data), 7):
        yield data[start : start + 7]


def test_watch_yields_events_and_bookmarks_then_raises_410() -> None:
    recorder = Recorder(lambda r: httpx.Response(200, content=split_badly(WATCH_EVENTS)))
    seen: list[tuple[str, str]] = []
    with client_for(recorder) as client, pytest.raises(ApiError) as caught:
        stream = client.watch(POD, resource_version="5", label_selector="app=web", timeout_seconds=300)
        for event_type, obj in stream:
            seen.append((event_type, obj["metadata"].get("name") or obj["metadata"]["resourceVersion"]))
    assert seen == [("ADDED", "a"), ("MODIFIED", "a"), ("BOOKMARK", "12")]
    assert (caught.value.code, caught.value.reason) == (410, "Expired")
    params = recorder.last.url.params
    assert recorder.last.url.path == "/api/v1/pods"
    assert (params["watch"], params["resourceVersion"], params["allowWatchBookmarks"]) == (
        "true",
        "5",
        "true",
    )
    assert (params["timeoutSeconds"], params["labelSelector"]) == ("300", "app=web")


def test_watch_refused_up_front_raises_at_once() -> None:
    gone = {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "reason": "Expired",
        "message": "too old",
        "code": 410,
    }
    with (
        client_for(Recorder(lambda r: json_response(410, gone))) as client,
        pytest.raises(ApiError) as caught,
    ):
        client.watch(POD, resource_version="1")
    assert caught.value.code == 410


# --- async client


async def async_chunks(lines: list[bytes]) -> AsyncIterator[bytes]:
    for chunk in split_badly(lines):
        yield chunk


async def test_async_client_covers_verbs_errors_and_watch() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("watch") == "true":
            return httpx.Response(200, content=async_chunks(WATCH_EVENTS))
        if request.url.path.endswith("/missing"):
            return json_response(404, not_found("pods", "missing").status())
        if request.method == "GET" and request.url.path.endswith("/pods"):
            return paged_handler(2)(request)
        return json_response(200, pod("web", "team-a"))

    recorder = Recorder(handle)
    async with AsyncClient(CONFIG, transport=httpx.MockTransport(recorder)) as client:
        assert (await client.get(POD, "web"))["metadata"]["name"] == "web"
        assert len((await client.list_all(POD, "team-a", page_size=2))["items"]) == 4
        await client.patch(POD, "web", {"metadata": {"labels": {"a": None}}})
        assert recorder.last.headers["Content-Type"] == "application/merge-patch+json"
        with pytest.raises(ApiError, match='pods "missing" not found'):
            await client.get(POD, "missing")
        events: list[str] = []
        with pytest.raises(ApiError) as caught:
            async with await client.watch(POD, "team-a", resource_version="5") as stream:
                async for event_type, _ in stream:
                    events.append(event_type)
    assert events == ["ADDED", "MODIFIED", "BOOKMARK"]
    assert caught.value.code == 410
    assert all(r.headers["Authorization"] == "Bearer t0ken" for r in recorder.requests)


# --- a real HTTPS server: client certificates, chunked streaming, keep-alive


async def fake_apiserver(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Serves one pod (echoing the client's port, to show connection reuse) and a slow watch stream."""
    if scope["type"] != "http":
        return
    query = scope["query_string"].decode()
    headers = [(b"content-type", b"application/json")]
    if "watch=true" in query:
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for chunk in split_badly(WATCH_EVENTS[:3]):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await asyncio.sleep(0.001)
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return
    body = orjson.dumps({**pod("web", "default"), "clientPort": scope["client"][1]})
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ClusterPki, str]]:
    listener = socket.create_server(("127.0.0.1", 0))
    url = f"https://127.0.0.1:{listener.getsockname()[1]}"
    pki = ensure_cluster_pki(tmp_path_factory.mktemp("data"), url)
    config = uvicorn.Config(
        fake_apiserver,
        lifespan="off",
        log_level="warning",
        ssl_certfile=str(pki.serving_cert),
        ssl_keyfile=str(pki.serving_key),
        ssl_ca_certs=str(pki.ca_cert),
        ssl_cert_reqs=ssl.CERT_REQUIRED,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    yield pki, url
    server.should_exit = True
    thread.join(10)
    listener.close()


def test_admin_kubeconfig_reaches_a_server_that_demands_client_certificates(
    tls_server: tuple[ClusterPki, str],
) -> None:
    pki, _ = tls_server
    with Client(load_kubeconfig(str(pki.admin_kubeconfig))) as client:
        first = client.get(POD, "web")
        second = client.get(POD, "web")
    assert first["metadata"]["name"] == "web"
    assert first["clientPort"] == second["clientPort"], "requests reuse one kept-alive connection"


def test_chunked_watch_stream_over_tls(tls_server: tuple[ClusterPki, str]) -> None:
    pki, _ = tls_server
    with Client(load_kubeconfig(str(pki.admin_kubeconfig))) as client, client.watch(POD, "default") as stream:
        events = [event_type for event_type, _ in stream]
    assert events == ["ADDED", "MODIFIED", "BOOKMARK"], "the stream ends cleanly when the server ends it"


async def test_async_watch_over_tls(tls_server: tuple[ClusterPki, str]) -> None:
    pki, _ = tls_server
    async with AsyncClient(load_kubeconfig(str(pki.admin_kubeconfig))) as client:
        stream = await client.watch(POD, "default", resource_version="1")
        events = [event_type async for event_type, _ in stream]
    assert events == ["ADDED", "MODIFIED", "BOOKMARK"]


def test_client_refuses_a_server_signed_by_an_unknown_ca(tls_server: tuple[ClusterPki, str], tmp_path: Path) -> None:
    pki, url = tls_server
    stranger = ensure_cluster_pki(tmp_path, url)
    config = load_kubeconfig(str(pki.admin_kubeconfig))
    config.ca_data = stranger.ca_pem()
    with Client(config) as client, pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        client.get(POD, "web")
