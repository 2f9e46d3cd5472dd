"""CustomResourceDefinitions and custom resources, driven with the official `kubernetes` client,
lightkube, httpx and the real kubectl.

A CRD is accepted and established by the API server, served at once (routing, discovery, OpenAPI),
validated, pruned and defaulted by its schema, and gone with its objects when deleted — on every API
server replica sharing one PostgreSQL database.
"""

from __future__ import annotations

import copy
import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from tests.support import ApiServer, Kubectl, free_port

GROUP = "stable.example.com"
CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"

SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "CronTab runs an image on a schedule.",
    "properties": {
        "spec": {
            "type": "object",
            "description": "What to run and when.",
            "required": ["cronSpec"],
            "properties": {
                "cronSpec": {
                    "type": "string",
                    "description": "The schedule in cron format.",
                    "pattern": r"^(\d+|\*)(/\d+)?(\s+(\d+|\*)(/\d+)?){4}$",
                },
                "image": {"type": "string", "default": "busybox", "description": "The image to run."},
                "replicas": {"type": "integer", "minimum": 1, "maximum": 10, "default": 1},
                "color": {"type": "string", "enum": ["red", "green"]},
                "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3, "uniqueItems": True},
                "port": {"x-kubernetes-int-or-string": True},
                "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            },
        },
        "status": {
            "type": "object",
            "properties": {"replicas": {"type": "integer"}, "selector": {"type": "string"}},
        },
    },
}


def crd_manifest(
    plural: str = "crontabs",
    kind: str = "CronTab",
    group: str = GROUP,
    scope: str = "Namespaced",
    versions: list[dict[str, Any]] | None = None,
    short_names: tuple[str, ...] = ("ct",),
) -> dict[str, Any]:
    if versions is None:
        versions = [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {"openAPIV3Schema": copy.deepcopy(SCHEMA)},
                "subresources": {
                    "status": {},
                    "scale": {
                        "specReplicasPath": ".spec.replicas",
                        "statusReplicasPath": ".status.replicas",
                        "labelSelectorPath": ".status.selector",
                    },
                },
                "additionalPrinterColumns": [
                    {"name": "Spec", "type": "string", "jsonPath": ".spec.cronSpec"},
                    {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
                    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                ],
            }
        ]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": scope,
            "names": {
                "plural": plural,
                "singular": kind.lower(),
                "kind": kind,
                "shortNames": list(short_names),
                "categories": ["all"],
            },
            "versions": versions,
        },
    }


def wait_for(predicate: Any, timeout: float = 10.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def condition(crd: dict[str, Any], kind: str) -> dict[str, Any] | None:
    return next((c for c in crd.get("status", {}).get("conditions") or [] if c["type"] == kind), None)


def established(http: httpx.Client, name: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        crd = http.get(f"{CRDS}/{name}").json()
        found = condition(crd, "Established")
        return crd if found and found["status"] == "True" else None

    return wait_for(check, what=f"{name} to be established")


def create_crd(http: httpx.Client, manifest: dict[str, Any]) -> dict[str, Any]:
    response = http.post(CRDS, json=manifest)
    assert response.status_code == 201, response.text
    return established(http, manifest["metadata"]["name"])


def delete_crd(http: httpx.Client, name: str) -> None:
    http.delete(f"{CRDS}/{name}")
    wait_for(lambda: http.get(f"{CRDS}/{name}").status_code == 404, what=f"{name} to be deleted")


@pytest.fixture(scope="module")
def http(apiserver: ApiServer) -> Iterator[httpx.Client]:
    with apiserver.client(timeout=30) as c:
        yield c


@pytest.fixture(scope="module")
def crontabs(http: httpx.Client) -> Iterator[dict[str, Any]]:
    crd = create_crd(http, crd_manifest())
    yield crd


@pytest.fixture(scope="module")
def api_client(apiserver: ApiServer) -> Iterator[client.ApiClient]:
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(apiserver.kubeconfig), client_configuration=configuration)
    api = client.ApiClient(configuration)
    yield api
    api.close()


@pytest.fixture
def custom(api_client: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api_client)


@pytest.fixture
def ns(http: httpx.Client) -> str:
    name = f"crd-{uuid.uuid4().hex[:8]}"
    response = http.post("/api/v1/namespaces", json={"metadata": {"name": name}})
    assert response.status_code == 201, response.text
    return name


def crontab(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": "CronTab",
        "metadata": {"name": name},
        "spec": {"cronSpec": "*/5 * * * *", **spec},
    }


def api_error(error: ApiException) -> dict[str, Any]:
    return json.loads(error.body)


# -- the definition ------------------------------------------------------------------------------------
def test_established_crd_reports_names_and_stored_versions(crontabs: dict[str, Any]) -> None:
    status = crontabs["status"]
    assert status["acceptedNames"]["plural"] == "crontabs"
    assert status["acceptedNames"]["kind"] == "CronTab"
    assert status["acceptedNames"]["shortNames"] == ["ct"]
    assert status["storedVersions"] == ["v1"]
    names = condition(crontabs, "NamesAccepted")
    assert names is not None and names["status"] == "True" and names["reason"] == "NoConflicts"


def test_custom_resource_appears_in_legacy_and_aggregated_discovery(
    crontabs: dict[str, Any], http: httpx.Client
) -> None:
    groups = http.get("/apis").json()["groups"]
    assert any(g["name"] == GROUP for g in groups)
    resources = {r["name"]: r for r in http.get(f"/apis/{GROUP}/v1").json()["resources"]}
    assert resources["crontabs"]["kind"] == "CronTab"
    assert resources["crontabs"]["namespaced"] is True
    assert resources["crontabs"]["shortNames"] == ["ct"]
    assert resources["crontabs"]["categories"] == ["all"]
    assert {"crontabs/status", "crontabs/scale"} <= set(resources)
    accept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    aggregated = http.get("/apis", headers={"Accept": accept}).json()
    entry = next(item for item in aggregated["items"] if item["metadata"].get("name") == GROUP)
    served = entry["versions"][0]["resources"][0]
    assert served["resource"] == "crontabs" and served["scope"] == "Namespaced"
    assert {s["subresource"] for s in served["subresources"]} == {"status", "scale"}


def test_openapi_v3_publishes_the_schema(crontabs: dict[str, Any], http: httpx.Client) -> None:
    index = http.get("/openapi/v3").json()["paths"]
    assert f"apis/{GROUP}/v1" in index
    document = http.get(index[f"apis/{GROUP}/v1"]["serverRelativeURL"]).json()
    schema = document["components"]["schemas"]["com.example.stable.v1.CronTab"]
    assert schema["properties"]["spec"]["properties"]["cronSpec"]["description"] == "The schedule in cron format."
    assert schema["x-kubernetes-group-version-kind"] == [{"group": GROUP, "kind": "CronTab", "version": "v1"}]


def test_invalid_definitions_are_refused_with_kubes_messages(http: httpx.Client) -> None:
    no_storage = crd_manifest(plural="widgets", kind="Widget")
    no_storage["spec"]["versions"][0]["storage"] = False
    response = http.post(CRDS, json=no_storage)
    assert response.status_code == 422
    assert "spec.versions: Invalid value" in response.json()["message"]
    assert "must have exactly one version marked as storage version" in response.json()["message"]

    untyped = crd_manifest(plural="gadgets", kind="Gadget")
    untyped["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["x"] = {}
    message = http.post(CRDS, json=untyped).json()["message"]
    assert "spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[x].type: Required value" in message

    no_schema = crd_manifest(plural="doodads", kind="Doodad")
    del no_schema["spec"]["versions"][0]["schema"]
    message = http.post(CRDS, json=no_schema).json()["message"]
    assert "spec.versions[0].schema.openAPIV3Schema: Required value: schemas are required" in message

    wrong_name = crd_manifest(plural="sprockets", kind="Sprocket")
    wrong_name["metadata"]["name"] = "sprocket.stable.example.com"
    message = http.post(CRDS, json=wrong_name).json()["message"]
    assert 'metadata.name: Invalid value: "sprocket.stable.example.com": must be spec.names.plural+"."+spec.group' in (
        message
    )
    for name in ("widgets", "gadgets", "doodads", "sprockets"):
        assert http.get(f"{CRDS}/{name}.{GROUP}").status_code == 404


def test_conflicting_names_are_not_accepted_and_not_served(crontabs: dict[str, Any], http: httpx.Client) -> None:
    clash = crd_manifest(plural="crontables", kind="CronTab", short_names=())
    clash["spec"]["names"]["singular"] = "crontable"
    assert http.post(CRDS, json=clash).status_code == 201
    name = f"crontables.{GROUP}"

    def names_rejected() -> dict[str, Any] | None:
        found = condition(http.get(f"{CRDS}/{name}").json(), "NamesAccepted")
        return found if found and found["status"] == "False" else None

    rejected = wait_for(names_rejected, what="NamesAccepted=False")
    assert rejected["reason"] == "KindConflict"
    assert rejected["message"] == '"CronTab" is already in use'
    crd = http.get(f"{CRDS}/{name}").json()
    assert condition(crd, "Established")["status"] == "False"
    assert http.get(f"/apis/{GROUP}/v1/namespaces/default/crontables").status_code == 404
    delete_crd(http, name)


# -- custom objects through the kubernetes client --------------------------------------------------------
def test_create_get_list_patch_and_delete_with_the_kubernetes_client(
    crontabs: dict[str, Any], custom: client.CustomObjectsApi, ns: str
) -> None:
    created = custom.create_namespaced_custom_object(GROUP, "v1", ns, "crontabs", crontab("nightly", replicas=2))
    assert created["metadata"]["generation"] == 1
    assert created["spec"]["image"] == "busybox"  # defaulted
    listed = custom.list_namespaced_custom_object(GROUP, "v1", ns, "crontabs")
    assert [item["metadata"]["name"] for item in listed["items"]] == ["nightly"]
    assert listed["kind"] == "CronTabList"

    merged = custom.patch_namespaced_custom_object(GROUP, "v1", ns, "crontabs", "nightly", {"spec": {"replicas": 3}})
    assert merged["spec"]["replicas"] == 3
    assert merged["metadata"]["generation"] == 2
    patched = custom.patch_namespaced_custom_object(
        GROUP,
        "v1",
        ns,
        "crontabs",
        "nightly",
        [{"op": "replace", "path": "/spec/image", "value": "nginx"}],
        _content_type="application/json-patch+json",
    )
    assert patched["spec"]["image"] == "nginx"
    assert patched["metadata"]["generation"] == 3

    status = custom.patch_namespaced_custom_object_status(
        GROUP, "v1", ns, "crontabs", "nightly", {"status": {"replicas": 3, "selector": "app=nightly"}}
    )
    assert status["status"]["replicas"] == 3
    assert status["metadata"]["generation"] == 3  # a status change is not a spec change
    ignored = custom.patch_namespaced_custom_object(GROUP, "v1", ns, "crontabs", "nightly", {"status": {"replicas": 9}})
    assert ignored["status"]["replicas"] == 3  # status only changes through /status

    scale = custom.patch_namespaced_custom_object_scale(
        GROUP, "v1", ns, "crontabs", "nightly", {"spec": {"replicas": 5}}
    )
    assert scale["kind"] == "Scale"
    assert scale["spec"]["replicas"] == 5
    assert scale["status"] == {"replicas": 3, "selector": "app=nightly"}
    assert custom.get_namespaced_custom_object(GROUP, "v1", ns, "crontabs", "nightly")["spec"]["replicas"] == 5

    custom.delete_namespaced_custom_object(GROUP, "v1", ns, "crontabs", "nightly")
    with pytest.raises(ApiException) as missing:
        custom.get_namespaced_custom_object(GROUP, "v1", ns, "crontabs", "nightly")
    assert missing.value.status == 404
    assert api_error(missing.value)["message"] == f'crontabs.{GROUP} "nightly" not found'


def test_schema_violations_get_422_with_the_schemas_message(
    crontabs: dict[str, Any], custom: client.CustomObjectsApi, ns: str
) -> None:
    cases = [
        (
            crontab("a", replicas=11),
            "spec.replicas: Invalid value: 11: spec.replicas in body should be less than or equal to 10",
        ),
        (
            crontab("b", replicas=0),
            "spec.replicas: Invalid value: 0: spec.replicas in body should be greater than or equal to 1",
        ),
        (
            crontab("c", replicas="two"),
            'spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string"',
        ),
        (crontab("d", color="blue"), 'spec.color: Unsupported value: "blue": supported values: "red", "green"'),
        (crontab("e", cronSpec="often"), "spec.cronSpec in body should match"),
        (crontab("f", tags=["a", "a"]), 'spec.tags[1]: Duplicate value: "a"'),
        (crontab("g", tags=["a", "b", "c", "d"]), "spec.tags: Too many: 4: must have at most 3 items"),
        (crontab("h", port=1.5), "spec.port in body must be of type integer or string"),
        ({**crontab("i"), "spec": {"image": "x"}}, "spec.cronSpec: Required value"),
    ]
    for body, expected in cases:
        with pytest.raises(ApiException) as failure:
            custom.create_namespaced_custom_object(GROUP, "v1", ns, "crontabs", body)
        assert failure.value.status == 422
        status = api_error(failure.value)
        assert status["reason"] == "Invalid"
        assert status["message"].startswith(f'CronTab.{GROUP} "{body["metadata"]["name"]}" is invalid: ')
        assert expected in status["message"], status["message"]
    assert custom.list_namespaced_custom_object(GROUP, "v1", ns, "crontabs")["items"] == []


def test_int_or_string_and_preserved_fields_are_kept(
    crontabs: dict[str, Any], custom: client.CustomObjectsApi, ns: str
) -> None:
    created = custom.create_namespaced_custom_object(
        GROUP, "v1", ns, "crontabs", crontab("open", port="http", extra={"anything": {"goes": [1, 2]}})
    )
    assert created["spec"]["port"] == "http"
    assert created["spec"]["extra"] == {"anything": {"goes": [1, 2]}}


def test_unknown_fields_are_pruned_and_reported_under_strict_validation(
    crontabs: dict[str, Any], http: httpx.Client, ns: str
) -> None:
    path = f"/apis/{GROUP}/v1/namespaces/{ns}/crontabs"
    body = crontab("pruned", bogus=True)
    body["topLevel"] = 1
    body["metadata"]["unknownMeta"] = "x"
    response = http.post(path, json=body)
    assert response.status_code == 201, response.text
    stored = http.get(f"{path}/pruned").json()
    assert "bogus" not in stored["spec"] and "topLevel" not in stored and "unknownMeta" not in stored["metadata"]
    assert 'unknown field "spec.bogus"' in response.headers["warning"]

    strict = http.post(f"{path}?fieldValidation=Strict", json=crontab("strict", bogus=True))
    assert strict.status_code == 400
    assert strict.json()["message"] == 'strict decoding error: unknown field "spec.bogus"'


def test_strategic_merge_patch_is_unsupported_for_custom_resources(
    crontabs: dict[str, Any], http: httpx.Client, ns: str
) -> None:
    path = f"/apis/{GROUP}/v1/namespaces/{ns}/crontabs"
    assert http.post(path, json=crontab("smp")).status_code == 201
    response = http.patch(
        f"{path}/smp",
        content=json.dumps({"spec": {"replicas": 2}}),
        headers={"Content-Type": "application/strategic-merge-patch+json"},
    )
    assert response.status_code == 415
    applied = http.patch(
        f"{path}/smp?fieldManager=tester&force=true",
        content=json.dumps(
            {"apiVersion": f"{GROUP}/v1", "kind": "CronTab", "metadata": {"name": "smp"}, "spec": {"replicas": 4}}
        ),
        headers={"Content-Type": "application/apply-patch+yaml"},
    )
    assert applied.status_code == 200, applied.text
    assert applied.json()["spec"]["replicas"] == 4


def test_watch_sees_added_modified_and_deleted(
    crontabs: dict[str, Any], custom: client.CustomObjectsApi, ns: str
) -> None:
    events: list[tuple[str, str, int]] = []
    start = custom.list_namespaced_custom_object(GROUP, "v1", ns, "crontabs")["metadata"]["resourceVersion"]
    done = threading.Event()

    def follow() -> None:
        stream = watch.Watch()
        for event in stream.stream(
            custom.list_namespaced_custom_object,
            GROUP,
            "v1",
            ns,
            "crontabs",
            resource_version=start,
            timeout_seconds=15,
        ):
            obj = event["object"]
            events.append((event["type"], obj["metadata"]["name"], obj["spec"].get("replicas", 0)))
            if event["type"] == "DELETED":
                stream.stop()
        done.set()

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    time.sleep(0.3)
    custom.create_namespaced_custom_object(GROUP, "v1", ns, "crontabs", crontab("watched", replicas=1))
    custom.patch_namespaced_custom_object(GROUP, "v1", ns, "crontabs", "watched", {"spec": {"replicas": 2}})
    custom.delete_namespaced_custom_object(GROUP, "v1", ns, "crontabs", "watched")
    assert done.wait(20)
    assert events == [("ADDED", "watched", 1), ("MODIFIED", "watched", 2), ("DELETED", "watched", 2)]


def test_finalizers_hold_a_custom_object_until_removed(
    crontabs: dict[str, Any], custom: client.CustomObjectsApi, ns: str
) -> None:
    body = crontab("held")
    body["metadata"]["finalizers"] = ["example.com/cleanup"]
    custom.create_namespaced_custom_object(GROUP, "v1", ns, "crontabs", body)
    custom.delete_namespaced_custom_object(GROUP, "v1", ns, "crontabs", "held")
    pending = custom.get_namespaced_custom_object(GROUP, "v1", ns, "crontabs", "held")
    assert pending["metadata"]["deletionTimestamp"]
    custom.patch_namespaced_custom_object(GROUP, "v1", ns, "crontabs", "held", {"metadata": {"finalizers": None}})
    with pytest.raises(ApiException) as gone:
        custom.get_namespaced_custom_object(GROUP, "v1", ns, "crontabs", "held")
    assert gone.value.status == 404


def test_several_versions_share_storage_and_serve_their_own_api_version(http: httpx.Client, ns: str) -> None:
    schema = {
        "openAPIV3Schema": {
            "type": "object",
            "properties": {"spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
        }
    }
    manifest = crd_manifest(
        plural="gizmos",
        kind="Gizmo",
        short_names=(),
        versions=[
            {"name": "v1beta1", "served": True, "storage": False, "schema": schema},
            {"name": "v1", "served": True, "storage": True, "schema": schema},
        ],
    )
    create_crd(http, manifest)
    created = http.post(
        f"/apis/{GROUP}/v1beta1/namespaces/{ns}/gizmos",
        json={"apiVersion": f"{GROUP}/v1beta1", "kind": "Gizmo", "metadata": {"name": "g"}, "spec": {"size": 3}},
    )
    assert created.status_code == 201, created.text
    as_v1 = http.get(f"/apis/{GROUP}/v1/namespaces/{ns}/gizmos/g").json()
    assert as_v1["apiVersion"] == f"{GROUP}/v1"
    assert as_v1["spec"] == {"size": 3}
    listed = http.get(f"/apis/{GROUP}/v1/namespaces/{ns}/gizmos").json()
    assert [item["apiVersion"] for item in listed["items"]] == [f"{GROUP}/v1"]
    assert http.get(f"/apis/{GROUP}/v1beta1/namespaces/{ns}/gizmos/g").json()["apiVersion"] == f"{GROUP}/v1beta1"
    delete_crd(http, f"gizmos.{GROUP}")


def test_cluster_scoped_custom_resources(http: httpx.Client) -> None:
    schema = {
        "openAPIV3Schema": {
            "type": "object",
            "properties": {"spec": {"type": "object", "properties": {"zone": {"type": "string"}}}},
        }
    }
    manifest = crd_manifest(
        plural="regions",
        kind="Region",
        scope="Cluster",
        short_names=(),
        versions=[{"name": "v1", "served": True, "storage": True, "schema": schema}],
    )
    create_crd(http, manifest)
    body = {"apiVersion": f"{GROUP}/v1", "kind": "Region", "metadata": {"name": "eu"}, "spec": {"zone": "a"}}
    assert http.post(f"/apis/{GROUP}/v1/regions", json=body).status_code == 201
    assert http.get(f"/apis/{GROUP}/v1/regions/eu").json()["spec"] == {"zone": "a"}
    assert http.get(f"/apis/{GROUP}/v1/namespaces/default/regions/eu").status_code == 404
    delete_crd(http, f"regions.{GROUP}")


def test_deleting_the_crd_removes_its_objects_after_their_finalizers(http: httpx.Client, ns: str) -> None:
    manifest = crd_manifest(plural="gadgets", kind="Gadget", short_names=())
    create_crd(http, manifest)
    path = f"/apis/{GROUP}/v1/namespaces/{ns}/gadgets"
    for name in ("one", "two"):
        assert http.post(path, json={**crontab(name), "kind": "Gadget"}).status_code == 201
    held = {**crontab("held"), "kind": "Gadget"}
    held["metadata"]["finalizers"] = ["example.com/hold"]
    assert http.post(path, json=held).status_code == 201
    name = f"gadgets.{GROUP}"
    assert http.delete(f"{CRDS}/{name}").status_code == 200

    def terminating() -> dict[str, Any] | None:
        crd = http.get(f"{CRDS}/{name}").json()
        found = condition(crd, "Terminating")
        return crd if found and found["status"] == "True" else None

    crd = wait_for(terminating, what="Terminating")
    assert "customresourcecleanup.apiextensions.k8s.io" in crd["metadata"]["finalizers"]
    wait_for(lambda: [i["metadata"]["name"] for i in http.get(path).json()["items"]] == ["held"], what="cleanup")
    creating = http.post(path, json={**crontab("late"), "kind": "Gadget"})
    assert creating.status_code == 405
    assert http.get(f"{path}/held").json()["metadata"]["deletionTimestamp"]
    patch = http.patch(
        f"{path}/held",
        content=json.dumps({"metadata": {"finalizers": None}}),
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert patch.status_code == 200, patch.text
    wait_for(lambda: http.get(f"{CRDS}/{name}").status_code == 404, what="the CRD to go")
    assert http.get(path).status_code == 404
    assert all(r["name"] != "gadgets" for r in http.get(f"/apis/{GROUP}/v1").json()["resources"])


# -- kubectl ---------------------------------------------------------------------------------------------
def test_kubectl_get_shows_printer_columns_and_short_names(
    crontabs: dict[str, Any], kubectl: Kubectl, custom: client.CustomObjectsApi, ns: str
) -> None:
    custom.create_namespaced_custom_object(GROUP, "v1", ns, "crontabs", crontab("printed", replicas=4))
    output = kubectl("get", "ct", "-n", ns)
    header, row = output.splitlines()[:2]
    assert header.split() == ["NAME", "SPEC", "REPLICAS", "AGE"]
    assert row.split()[:7] == ["printed", "*/5", "*", "*", "*", "*", "4"]
    assert "printed" in kubectl("get", f"crontabs.{GROUP}", "-n", ns, "-o", "name")
    assert "crontab.stable.example.com/printed" in kubectl("get", "all", "-n", ns, "-o", "name")


def test_kubectl_explain_describes_the_schema(crontabs: dict[str, Any], kubectl: Kubectl) -> None:
    output = kubectl("explain", "crontabs.spec")
    assert "What to run and when." in output
    assert "cronSpec" in output and "The schedule in cron format." in output
    field = kubectl("explain", "crontab.spec.image")
    assert "The image to run." in field


def test_kubectl_apply_validates_custom_objects(crontabs: dict[str, Any], kubectl: Kubectl, ns: str) -> None:
    manifest = json.dumps(crontab("applied", replicas=2))
    assert "created" in kubectl("apply", "-n", ns, "-f", "-", input=manifest)
    again = json.dumps(crontab("applied", replicas=3))
    assert "configured" in kubectl("apply", "-n", ns, "-f", "-", input=again)
    assert json.loads(kubectl("get", "ct", "applied", "-n", ns, "-o", "json"))["spec"]["replicas"] == 3
    bad = kubectl.run("apply", "-n", ns, "-f", "-", input=json.dumps(crontab("typo", replicaz=2)), check=False)
    assert bad.returncode != 0
    assert 'unknown field "spec.replicaz"' in bad.stderr
    invalid = kubectl.run("apply", "-n", ns, "-f", "-", input=json.dumps(crontab("big", replicas=50)), check=False)
    assert invalid.returncode != 0
    assert "spec.replicas in body should be less than or equal to 10" in invalid.stderr


# -- lightkube -------------------------------------------------------------------------------------------
def test_lightkube_creates_a_crd_and_works_with_its_objects(apiserver: ApiServer, ns: str) -> None:
    from lightkube import Client, KubeConfig
    from lightkube.generic_resource import create_namespaced_resource
    from lightkube.resources.apiextensions_v1 import CustomResourceDefinition
    from lightkube.types import PatchType

    lk = Client(config=KubeConfig.from_file(str(apiserver.kubeconfig)), field_manager="lightkube-test")
    manifest = crd_manifest(plural="lighthouses", kind="Lighthouse", short_names=())
    lk.create(CustomResourceDefinition.from_dict(manifest))
    name = f"lighthouses.{GROUP}"

    def is_established() -> bool:
        crd = lk.get(CustomResourceDefinition, name)
        return any(c.type == "Established" and c.status == "True" for c in crd.status.conditions or [])

    wait_for(is_established, what="Established")
    Lighthouse = create_namespaced_resource(GROUP, "v1", "Lighthouse", "lighthouses")
    watched: list[tuple[str, str]] = []
    done = threading.Event()

    def follow() -> None:
        for event, obj in lk.watch(Lighthouse, namespace=ns):
            watched.append((event, obj.metadata.name))
            if event == "DELETED":
                break
        done.set()

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    time.sleep(0.5)
    lk.create(Lighthouse.from_dict({**crontab("beacon", replicas=1), "kind": "Lighthouse"}), namespace=ns)
    assert [o.metadata.name for o in lk.list(Lighthouse, namespace=ns)] == ["beacon"]
    merged = lk.patch(Lighthouse, "beacon", {"spec": {"replicas": 2}}, namespace=ns, patch_type=PatchType.MERGE)
    assert merged["spec"]["replicas"] == 2
    replaced = lk.patch(
        Lighthouse,
        "beacon",
        [{"op": "replace", "path": "/spec/replicas", "value": 6}],
        namespace=ns,
        patch_type=PatchType.JSON,
    )
    assert replaced["spec"]["replicas"] == 6
    scale = lk.get(Lighthouse.Scale, "beacon", namespace=ns)
    assert scale.spec.replicas == 6
    lk.delete(Lighthouse, "beacon", namespace=ns)
    assert done.wait(20)
    assert watched[0] == ("ADDED", "beacon") and watched[-1] == ("DELETED", "beacon")
    lk.delete(CustomResourceDefinition, name)
    wait_for(lambda: all(c.metadata.name != name for c in lk.list(CustomResourceDefinition)), what="the CRD to go")


# -- restarts and replicas -------------------------------------------------------------------------------
def test_a_restarted_server_serves_the_stored_crds(tmp_path_factory: pytest.TempPathFactory) -> None:
    server = ApiServer(tmp_path_factory.mktemp("restart"), free_port()).start()
    try:
        with server.client(timeout=30) as http:
            create_crd(http, crd_manifest())
            body = crontab("kept")
            assert http.post(f"/apis/{GROUP}/v1/namespaces/default/crontabs", json=body).status_code == 201
        server.stop()
        server.start()
        with server.client(timeout=30) as http:
            kept = http.get(f"/apis/{GROUP}/v1/namespaces/default/crontabs/kept")
            assert kept.status_code == 200, kept.text
            assert any(r["name"] == "crontabs" for r in http.get(f"/apis/{GROUP}/v1").json()["resources"])
    finally:
        server.stop()


@pytest.mark.postgres
def test_replicas_on_one_database_serve_and_drop_crds_together(
    postgres_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    a = ApiServer(tmp_path_factory.mktemp("replica-a"), free_port(), postgres_url).start()
    b = ApiServer(tmp_path_factory.mktemp("replica-b"), free_port(), postgres_url).start()
    try:
        with a.client(timeout=30) as http_a, b.client(timeout=30) as http_b:
            assert http_a.post(CRDS, json=crd_manifest()).status_code == 201
            established(http_b, f"crontabs.{GROUP}")
            path = f"/apis/{GROUP}/v1/namespaces/default/crontabs"
            created = wait_for(
                lambda: (r := http_b.post(path, json=crontab("via-b"))).status_code == 201 and r,
                what="replica b to serve crontabs",
            )
            assert created.json()["spec"]["image"] == "busybox"
            assert http_a.get(f"{path}/via-b").json()["metadata"]["uid"] == created.json()["metadata"]["uid"]
            assert http_b.delete(f"{CRDS}/crontabs.{GROUP}").status_code == 200
            wait_for(lambda: http_a.get(path).status_code == 404, what="replica a to stop serving")
            wait_for(lambda: http_b.get(path).status_code == 404, what="replica b to stop serving")
    finally:
        b.stop()
        a.stop()
