"""The official `kubernetes` Python client against a real API server: CRUD, selectors, watch, errors, patches.

Every test builds its own `Configuration`/`ApiClient` from the admin kubeconfig, never the client's global
default, so the tests stay independent of each other and of anything else in the process.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from tests.support import ApiServer

WATCH_SECONDS = 15


@pytest.fixture
def api_client(apiserver: ApiServer) -> Iterator[client.ApiClient]:
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(apiserver.kubeconfig), client_configuration=configuration)
    api = client.ApiClient(configuration)
    yield api
    api.close()


@pytest.fixture
def core(api_client: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api_client)


@pytest.fixture
def apps(api_client: client.ApiClient) -> client.AppsV1Api:
    return client.AppsV1Api(api_client)


@pytest.fixture
def ns(core: client.CoreV1Api) -> str:
    name = f"py-{uuid.uuid4().hex[:8]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    return name


def status_json(code: int, reason: str, message: str, details: dict[str, Any], status: str = "Failure") -> str:
    """A Status body serialized the way kube-apiserver writes it: compact, fields in Go struct order."""
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": status,
        "message": message,
        "reason": reason,
        "details": details,
        "code": code,
    }
    return json.dumps(body, separators=(",", ":"))


def raises(call: Callable[[], object]) -> ApiException:
    with pytest.raises(ApiException) as caught:
        call()
    return caught.value


def web_deployment(name: str, replicas: int = 2) -> client.V1Deployment:
    labels = {"app": name}
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name, labels={"tier": "frontend"}),
        spec=client.V1DeploymentSpec(
            replicas=replicas,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(
                    containers=[
                        client.V1Container(
                            name="web", image="nginx:1.27", ports=[client.V1ContainerPort(container_port=80)]
                        )
                    ]
                ),
            ),
        ),
    )


# -- CRUD ------------------------------------------------------------------------------------------------
def test_namespace_lifecycle(core: client.CoreV1Api) -> None:
    name = f"py-ns-{uuid.uuid4().hex[:6]}"
    created = core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    assert isinstance(created, client.V1Namespace)
    assert created.metadata.name == name and created.metadata.uid
    assert created.status.phase == "Active"
    assert name in {n.metadata.name for n in core.list_namespace().items}
    core.delete_namespace(name)
    after = core.read_namespace(name)
    assert after.metadata.deletion_timestamp is not None
    assert after.status.phase == "Terminating"


def test_configmap_crud_and_label_selectors(core: client.CoreV1Api, ns: str) -> None:
    specs = {
        "web-prod": {"tier": "web", "env": "prod"},
        "web-dev": {"tier": "web", "env": "dev"},
        "db-dev": {"tier": "db", "env": "dev"},
        "cache": {"tier": "cache"},
    }
    for name, labels in specs.items():
        made = core.create_namespaced_config_map(
            ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name, labels=labels), data={"k": name})
        )
        assert made.metadata.namespace == ns and int(made.metadata.resource_version) > 0

    def names(selector: str) -> list[str]:
        return [c.metadata.name for c in core.list_namespaced_config_map(ns, label_selector=selector).items]

    assert names("tier=web") == ["web-dev", "web-prod"]
    assert names("tier in (web,db),env!=prod") == ["db-dev", "web-dev"]
    assert names("!env") == ["cache"]
    assert names("env") == ["db-dev", "web-dev", "web-prod"]
    assert names("tier notin (web),env=dev") == ["db-dev"]
    across = core.list_config_map_for_all_namespaces(label_selector="tier=cache").items
    assert [(c.metadata.namespace, c.metadata.name) for c in across] == [(ns, "cache")]

    current = core.read_namespaced_config_map("web-dev", ns)
    assert current.data == {"k": "web-dev"}
    current.data = {"k": "changed", "extra": "1"}
    replaced = core.replace_namespaced_config_map("web-dev", ns, current)
    assert replaced.data == {"k": "changed", "extra": "1"}
    assert int(replaced.metadata.resource_version) > int(current.metadata.resource_version)

    patched = core.patch_namespaced_config_map("web-dev", ns, {"data": {"extra": None, "more": "2"}})
    assert patched.data == {"k": "changed", "more": "2"}

    core.delete_namespaced_config_map("web-dev", ns)
    assert raises(lambda: core.read_namespaced_config_map("web-dev", ns)).status == 404
    assert names("tier=web") == ["web-prod"]


def test_pod_crud_with_typed_models(core: client.CoreV1Api, ns: str) -> None:
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="runner", labels={"app": "runner"}),
        spec=client.V1PodSpec(containers=[client.V1Container(name="main", image="busybox:1.36")]),
    )
    created = core.create_namespaced_pod(ns, pod)
    assert isinstance(created, client.V1Pod)
    assert created.spec.restart_policy == "Always"
    assert created.spec.containers[0].image_pull_policy == "IfNotPresent"
    assert [p.metadata.name for p in core.list_namespaced_pod(ns, label_selector="app=runner").items] == ["runner"]
    assert core.list_namespaced_pod(ns, label_selector="app=other").items == []

    read = core.read_namespaced_pod("runner", ns)
    read.metadata.labels["stage"] = "two"
    updated = core.replace_namespaced_pod("runner", ns, read)
    assert updated.metadata.labels == {"app": "runner", "stage": "two"}

    deleted = core.delete_namespaced_pod("runner", ns)
    # Pods answer a delete with the pod itself, which the client decodes as a V1Pod.
    assert isinstance(deleted, client.V1Pod) and deleted.metadata.name == "runner"
    assert raises(lambda: core.read_namespaced_pod("runner", ns)).status == 404


def test_deployment_crud_and_scale(apps: client.AppsV1Api, ns: str) -> None:
    created = apps.create_namespaced_deployment(ns, web_deployment("web"))
    assert created.metadata.generation == 1
    assert created.spec.strategy.type == "RollingUpdate"  # defaulted by the server

    listed = apps.list_namespaced_deployment(ns, label_selector="tier=frontend").items
    assert [d.metadata.name for d in listed] == ["web"]
    assert apps.list_namespaced_deployment(ns, label_selector="tier=backend").items == []

    scale = apps.read_namespaced_deployment_scale("web", ns)
    assert isinstance(scale, client.V1Scale)
    assert scale.kind == "Scale" and scale.api_version == "autoscaling/v1"
    assert scale.spec.replicas == 2
    assert scale.status.selector == "app=web"

    rescaled = apps.patch_namespaced_deployment_scale("web", ns, {"spec": {"replicas": 5}})
    assert rescaled.spec.replicas == 5
    after = apps.read_namespaced_deployment("web", ns)
    assert after.spec.replicas == 5
    assert after.metadata.generation == 2

    after.spec.template.spec.containers[0].image = "nginx:1.28"
    replaced = apps.replace_namespaced_deployment("web", ns, after)
    assert replaced.spec.template.spec.containers[0].image == "nginx:1.28"
    assert replaced.metadata.generation == 3

    apps.delete_namespaced_deployment("web", ns)
    assert raises(lambda: apps.read_namespaced_deployment("web", ns)).status == 404


# -- patches ---------------------------------------------------------------------------------------------
def record_content_types(api: client.ApiClient) -> list[str]:
    """Record the Content-Type of every request the client puts on the wire."""
    sent: list[str] = []
    pool = api.rest_client.pool_manager
    original = pool.request

    def request(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        if method == "PATCH":
            sent.append((kwargs.get("headers") or {}).get("Content-Type", ""))
        return original(method, url, *args, **kwargs)

    pool.request = request
    return sent


def test_patch_content_types_the_client_sends(api_client: client.ApiClient, apps: client.AppsV1Api, ns: str) -> None:
    sent = record_content_types(api_client)
    apps.create_namespaced_deployment(ns, web_deployment("p"))
    sidecar = {"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "image": "busybox"}]}}}}

    # A dict body goes out as a strategic merge patch: containers merge by name.
    strategic = apps.patch_namespaced_deployment("p", ns, sidecar)
    assert sent[-1] == "application/strategic-merge-patch+json"
    assert sorted(c.name for c in strategic.spec.template.spec.containers) == ["sidecar", "web"]
    assert next(c for c in strategic.spec.template.spec.containers if c.name == "web").image == "nginx:1.27"

    # Asking for a merge patch replaces the whole list.
    merge = apps.patch_namespaced_deployment(
        "p",
        ns,
        {"spec": {"template": {"spec": {"containers": [{"name": "only", "image": "busybox"}]}}}},
        _content_type="application/merge-patch+json",
    )
    assert sent[-1] == "application/merge-patch+json"
    assert [c.name for c in merge.spec.template.spec.containers] == ["only"]

    # A list body goes out as a JSON patch.
    json_patch = apps.patch_namespaced_deployment("p", ns, [{"op": "replace", "path": "/spec/replicas", "value": 3}])
    assert sent[-1] == "application/json-patch+json"
    assert json_patch.spec.replicas == 3

    # Labels through a strategic merge patch: null removes a key, others are added.
    apps.patch_namespaced_deployment("p", ns, {"metadata": {"labels": {"extra": "1"}}})
    labelled = apps.patch_namespaced_deployment("p", ns, {"metadata": {"labels": {"tier": None}}})
    assert labelled.metadata.labels == {"extra": "1"}

    failed = raises(
        lambda: apps.patch_namespaced_deployment("p", ns, [{"op": "test", "path": "/spec/replicas", "value": 99}])
    )
    assert failed.status == 422
    assert apps.read_namespaced_deployment("p", ns).spec.replicas == 3


# -- watch -----------------------------------------------------------------------------------------------
def test_list_then_watch_from_the_list_resource_version(core: client.CoreV1Api, ns: str) -> None:
    core.create_namespaced_config_map(
        ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="before", labels={"watched": "yes"}))
    )
    listed = core.list_namespaced_config_map(ns, label_selector="watched=yes")
    assert [c.metadata.name for c in listed.items] == ["before"]
    rv = listed.metadata.resource_version

    def mutate() -> None:
        core.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="noise")))
        core.create_namespaced_config_map(
            ns,
            client.V1ConfigMap(metadata=client.V1ObjectMeta(name="after", labels={"watched": "yes"}), data={"a": "1"}),
        )
        core.patch_namespaced_config_map("after", ns, {"data": {"a": "2"}})
        core.delete_namespaced_config_map("after", ns)

    writer = threading.Thread(target=mutate)
    writer.start()
    seen: list[tuple[str, str, str | None, int]] = []
    stream = watch.Watch()
    for event in stream.stream(
        core.list_namespaced_config_map,
        ns,
        label_selector="watched=yes",
        resource_version=rv,
        timeout_seconds=WATCH_SECONDS,
    ):
        obj = event["object"]
        assert isinstance(obj, client.V1ConfigMap)
        seen.append((event["type"], obj.metadata.name, (obj.data or {}).get("a"), int(obj.metadata.resource_version)))
        if event["type"] == "DELETED":
            stream.stop()
    writer.join(WATCH_SECONDS)

    assert [(kind, name, a) for kind, name, a, _ in seen] == [
        ("ADDED", "after", "1"),
        ("MODIFIED", "after", "2"),
        ("DELETED", "after", "2"),
    ]
    versions = [v for *_, v in seen]
    assert versions == sorted(set(versions)) and versions[0] > int(rv)


# -- errors ----------------------------------------------------------------------------------------------
def test_stale_replace_is_409_conflict_with_the_exact_status_body(core: client.CoreV1Api, ns: str) -> None:
    first = core.create_namespaced_config_map(
        ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="x"), data={"v": "1"})
    )
    stale_rv = first.metadata.resource_version
    first.data = {"v": "2"}
    core.replace_namespaced_config_map("x", ns, first)

    stale = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="x", resource_version=stale_rv), data={"v": "3"})
    error = raises(lambda: core.replace_namespaced_config_map("x", ns, stale))
    assert error.status == 409
    assert error.headers["Content-Type"] == "application/json"
    assert error.body == (
        '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Operation cannot be '
        'fulfilled on configmaps \\"x\\": the object has been modified; please apply your changes to the '
        'latest version and try again","reason":"Conflict","details":{"name":"x","kind":"configmaps"},'
        '"code":409}'
    )
    assert core.read_namespaced_config_map("x", ns).data == {"v": "2"}


def test_not_found_bodies_are_exact(core: client.CoreV1Api, apps: client.AppsV1Api, ns: str) -> None:
    error = raises(lambda: core.read_namespaced_config_map("nope", ns))
    assert error.status == 404
    assert error.body == status_json(
        404, "NotFound", 'configmaps "nope" not found', {"name": "nope", "kind": "configmaps"}
    )
    error = raises(lambda: apps.read_namespaced_deployment("nope", ns))
    assert error.status == 404
    assert error.body == status_json(
        404,
        "NotFound",
        'deployments.apps "nope" not found',
        {"name": "nope", "group": "apps", "kind": "deployments"},
    )
    error = raises(lambda: core.delete_namespaced_config_map("nope", ns))
    assert error.status == 404 and json.loads(error.body)["reason"] == "NotFound"


def test_duplicate_create_is_409_already_exists_exactly(core: client.CoreV1Api, ns: str) -> None:
    body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="dup"))
    core.create_namespaced_config_map(ns, body)
    error = raises(lambda: core.create_namespaced_config_map(ns, body))
    assert error.status == 409
    assert error.body == status_json(
        409, "AlreadyExists", 'configmaps "dup" already exists', {"name": "dup", "kind": "configmaps"}
    )


RFC1123_SUBDOMAIN = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and "
    "must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)


def test_invalid_objects_are_422_with_causes(core: client.CoreV1Api, apps: client.AppsV1Api, ns: str) -> None:
    error = raises(
        lambda: core.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="Bad_Name")))
    )
    assert error.status == 422
    cause = f'Invalid value: "Bad_Name": {RFC1123_SUBDOMAIN}'
    assert error.body == status_json(
        422,
        "Invalid",
        f'ConfigMap "Bad_Name" is invalid: metadata.name: {cause}',
        {
            "name": "Bad_Name",
            "kind": "ConfigMap",
            "causes": [{"reason": "FieldValueInvalid", "message": cause, "field": "metadata.name"}],
        },
    )

    mismatched = web_deployment("d")
    mismatched.spec.template.metadata.labels = {"app": "other"}
    error = raises(lambda: apps.create_namespaced_deployment(ns, mismatched))
    assert error.status == 422
    cause = 'Invalid value: map[string]string{"app":"other"}: `selector` does not match template `labels`'
    assert error.body == status_json(
        422,
        "Invalid",
        f'Deployment.apps "d" is invalid: spec.template.metadata.labels: {cause}',
        {
            "name": "d",
            "group": "apps",
            "kind": "Deployment",
            "causes": [{"reason": "FieldValueInvalid", "message": cause, "field": "spec.template.metadata.labels"}],
        },
    )
    assert apps.list_namespaced_deployment(ns).items == []


# -- delete options --------------------------------------------------------------------------------------
def test_delete_propagation_policies(apps: client.AppsV1Api, ns: str) -> None:
    for name in ("fg", "orphan", "bg", "opts"):
        apps.create_namespaced_deployment(ns, web_deployment(name))

    # Foreground and Orphan leave the owner in place, marked for deletion, until the garbage collector
    # has dealt with its dependents; this server runs no garbage collector, so it stays.
    apps.delete_namespaced_deployment("fg", ns, propagation_policy="Foreground")
    held = apps.read_namespaced_deployment("fg", ns)
    assert held.metadata.deletion_timestamp is not None
    assert held.metadata.finalizers == ["foregroundDeletion"]

    apps.delete_namespaced_deployment("orphan", ns, body=client.V1DeleteOptions(propagation_policy="Orphan"))
    held = apps.read_namespaced_deployment("orphan", ns)
    assert held.metadata.deletion_timestamp is not None
    assert held.metadata.finalizers == ["orphan"]

    apps.delete_namespaced_deployment("bg", ns, propagation_policy="Background")
    assert raises(lambda: apps.read_namespaced_deployment("bg", ns)).status == 404

    wrong_uid = client.V1DeleteOptions(preconditions=client.V1Preconditions(uid="not-the-uid"))
    error = raises(lambda: apps.delete_namespaced_deployment("opts", ns, body=wrong_uid))
    assert error.status == 409 and json.loads(error.body)["reason"] == "Conflict"
    assert apps.read_namespaced_deployment("opts", ns).metadata.deletion_timestamp is None

    bogus = raises(lambda: apps.delete_namespaced_deployment("opts", ns, propagation_policy="Sometimes"))
    assert bogus.status == 400
    assert apps.read_namespaced_deployment("opts", ns).metadata.deletion_timestamp is None


def test_immediate_delete_of_a_configmap_answers_a_success_status(core: client.CoreV1Api, ns: str) -> None:
    # kube-apiserver answers an immediate delete with a Status (only pods and a few other kinds return the
    # deleted object); clients check `status == "Success"` and the uid in the details.
    made = core.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="gone")))
    answer = core.delete_namespaced_config_map("gone", ns, propagation_policy="Background")
    assert answer == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {"name": "gone", "kind": "configmaps", "uid": made.metadata.uid},
    }
