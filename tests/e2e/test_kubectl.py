"""The real kubectl (1.33 and 1.27) against a Skiff API server over HTTPS with the admin kubeconfig.

Every test runs once per kubectl version; each test works in its own namespace so they stay independent.
kubectl 1.33 sends protobuf bodies for the `create <kind>` generators, 1.27 sends JSON everywhere.
"""

from __future__ import annotations

import copy
import json
import queue
import re
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support import ApiServer, Kubectl, kubectl_binary

pytestmark = pytest.mark.kubectl

MANIFESTS = Path(__file__).parent / "manifests"
VERSIONS = (33, 27)


@pytest.fixture(scope="module", params=VERSIONS, ids=lambda minor: f"kubectl-1.{minor}")
def kube(request: pytest.FixtureRequest, apiserver: ApiServer) -> Kubectl:
    return Kubectl(kubectl_binary(request.param), apiserver.kubeconfig)


@pytest.fixture(scope="module")
def http(apiserver: ApiServer) -> Iterator[httpx.Client]:
    with apiserver.client(timeout=30) as client:
        yield client


@pytest.fixture
def ns(http: httpx.Client) -> str:
    name = f"k-{uuid.uuid4().hex[:8]}"
    response = http.post("/api/v1/namespaces", json={"metadata": {"name": name}})
    assert response.status_code == 201, response.text
    return name


def table(output: str) -> list[dict[str, str]]:
    """kubectl's human-readable table as one dict per row, keyed by the header's column names."""
    lines = [line for line in output.splitlines() if line.strip()]
    columns = [(match.group(), match.start()) for match in re.finditer(r"\S+(?: \S+)*", lines[0])]
    bounds = [start for _, start in columns[1:]] + [None]
    return [
        {name: line[start:end].strip() for (name, start), end in zip(columns, bounds, strict=True)}
        for line in lines[1:]
    ]


def header(output: str) -> list[str]:
    return re.split(r"\s{2,}", output.splitlines()[0].strip())


def get(http: httpx.Client, path: str) -> dict:
    response = http.get(path)
    assert response.status_code == 200, response.text
    return response.json()


def deployment_path(ns: str, name: str) -> str:
    return f"/apis/apps/v1/namespaces/{ns}/deployments/{name}"


def configmap_path(ns: str, name: str) -> str:
    return f"/api/v1/namespaces/{ns}/configmaps/{name}"


def failure(kube: Kubectl, *args: str, input: str | None = None) -> str:
    """Run a kubectl command that must fail; returns what it printed to stderr."""
    result = kube.run(*args, input=input, check=False)
    assert result.returncode != 0, f"kubectl {' '.join(args)} unexpectedly succeeded:\n{result.stdout}"
    return result.stderr


# -- version and discovery ---------------------------------------------------------------------------


def test_version_prints_server_version(kube: Kubectl, http: httpx.Client) -> None:
    server = get(http, "/version")
    assert server["gitVersion"].startswith("v1.33.")
    assert server["gitVersion"] in kube("version")
    reported = json.loads(kube("version", "-o", "json"))
    assert reported["serverVersion"]["gitVersion"] == server["gitVersion"]
    assert reported["serverVersion"]["minor"] == "33"


def test_dispatcher_on_path_picks_the_server_minor(apiserver: ApiServer) -> None:
    dispatched = Kubectl(kubectl_binary(), apiserver.kubeconfig)
    reported = json.loads(dispatched("version", "-o", "json"))
    assert reported["clientVersion"]["minor"] == "33"


def test_api_resources_lists_kinds_with_group_version_and_scope(kube: Kubectl) -> None:
    rows = {row["NAME"]: row for row in table(kube("api-resources"))}
    assert rows["pods"] == {
        "NAME": "pods", "SHORTNAMES": "po", "APIVERSION": "v1", "NAMESPACED": "true", "KIND": "Pod",
    }  # fmt: skip
    assert rows["deployments"]["SHORTNAMES"] == "deploy"
    assert rows["deployments"]["APIVERSION"] == "apps/v1"
    assert rows["deployments"]["NAMESPACED"] == "true"
    assert rows["namespaces"]["NAMESPACED"] == "false"
    cluster_scoped = kube("api-resources", "--namespaced=false", "-o", "name").split()
    assert "namespaces" in cluster_scoped and "nodes" in cluster_scoped and "pods" not in cluster_scoped
    assert kube("api-resources", "--api-group=apps", "-o", "name").split() == sorted(
        ["controllerrevisions.apps", "daemonsets.apps", "deployments.apps", "replicasets.apps", "statefulsets.apps"]
    )


def test_get_all_uses_categories_and_short_names_resolve(kube: Kubectl, ns: str) -> None:
    kube("apply", "-n", ns, "-f", str(MANIFESTS / "shop.yaml"))
    kube("run", "-n", ns, "solo", "--image=busybox:1.36")
    names = kube("get", "all", "-n", ns, "-o", "name").split()
    assert sorted(names) == ["deployment.apps/shop", "pod/solo", "service/shop"]  # no configmap: not in "all"
    assert [row["NAME"] for row in table(kube("get", "po", "-n", ns))] == ["solo"]
    assert kube("get", "deploy,svc,cm", "-n", ns, "-o", "name").split() == [
        "deployment.apps/shop", "service/shop", "configmap/shop-config",
    ]  # fmt: skip


# -- create ------------------------------------------------------------------------------------------


def test_create_namespace(kube: Kubectl, http: httpx.Client) -> None:
    name = f"k-{uuid.uuid4().hex[:8]}"
    assert kube("create", "namespace", name).strip() == f"namespace/{name} created"
    assert get(http, f"/api/v1/namespaces/{name}")["status"]["phase"] == "Active"
    (row,) = table(kube("get", "namespace", name))
    assert (row["NAME"], row["STATUS"]) == (name, "Active")
    error = failure(kube, "create", "namespace", name)
    assert f'namespaces "{name}" already exists' in error


def test_create_deployment(kube: Kubectl, http: httpx.Client, ns: str) -> None:
    out = kube("create", "deployment", "web", "-n", ns, "--image=nginx:1.27", "--replicas=3", "--port=80")
    assert out.strip() == "deployment.apps/web created"
    created = get(http, deployment_path(ns, "web"))
    assert created["metadata"]["labels"] == {"app": "web"}
    assert created["spec"]["replicas"] == 3
    assert created["spec"]["selector"] == {"matchLabels": {"app": "web"}}
    assert created["spec"]["strategy"]["type"] == "RollingUpdate"  # defaulted by the server
    (container,) = created["spec"]["template"]["spec"]["containers"]
    assert (container["name"], container["image"]) == ("nginx", "nginx:1.27")
    assert container["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    assert [entry["manager"] for entry in created["metadata"]["managedFields"]] == ["kubectl-create"]


def test_create_configmap_from_literal(kube: Kubectl, http: httpx.Client, ns: str) -> None:
    out = kube("create", "configmap", "settings", "-n", ns, "--from-literal=color=blue", "--from-literal=size=L")
    assert out.strip() == "configmap/settings created"
    assert get(http, configmap_path(ns, "settings"))["data"] == {"color": "blue", "size": "L"}
    error = failure(kube, "create", "configmap", "settings", "-n", ns, "--from-literal=color=red")
    assert 'configmaps "settings" already exists' in error
    assert get(http, configmap_path(ns, "settings"))["data"]["color"] == "blue"


def test_create_from_file_reports_already_exists(kube: Kubectl, ns: str) -> None:
    manifest = yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "once"}})
    assert kube("create", "-n", ns, "-f", "-", input=manifest).strip() == "configmap/once created"
    error = failure(kube, "create", "-n", ns, "-f", "-", input=manifest)
    assert 'Error from server (AlreadyExists): error when creating "STDIN": configmaps "once" already exists' in error


def test_create_invalid_object_prints_the_servers_causes(kube: Kubectl, http: httpx.Client, ns: str) -> None:
    error = failure(kube, "create", "-n", ns, "-f", str(MANIFESTS / "invalid-deployment.yaml"))
    assert 'The Deployment "broken" is invalid:' in error
    assert "spec.replicas: Invalid value: -1: must be greater than or equal to 0" in error
    assert "spec.template.metadata.labels: Invalid value:" in error
    assert "`selector` does not match template `labels`" in error
    assert http.get(deployment_path(ns, "broken")).status_code == 404


def test_values_of_the_wrong_type_are_refused(kube: Kubectl, http: httpx.Client, ns: str) -> None:
    manifest = yaml.safe_dump(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "typed"}, "data": {"a": 1}}
    )
    error = failure(kube, "create", "-n", ns, "-f", "-", input=manifest)
    assert (
        'Error from server (BadRequest): error when creating "STDIN": ConfigMap in version "v1" cannot be handled '
        "as a ConfigMap: json: cannot unmarshal number into field data.a of type string"
    ) in error
    assert http.get(configmap_path(ns, "typed")).status_code == 404

    kube("create", "deployment", "web", "-n", ns, "--image=nginx:1.27", "--replicas=2")
    error = failure(kube, "patch", "deployment/web", "-n", ns, "--type=merge", "-p", '{"spec":{"replicas":"two"}}')
    assert (
        'patch: Invalid value: "two": json: cannot unmarshal string into field spec.replicas of type integer' in error
    )
    assert get(http, deployment_path(ns, "web"))["spec"]["replicas"] == 2
    # Quantities may be written as numbers and int-or-string fields take either.
    limits = {"spec": {"template": {"spec": {"containers": [{"name": "nginx", "resources": {"limits": {"cpu": 1}}}]}}}}
    kube("patch", "deployment/web", "-n", ns, "-p", json.dumps(limits))
    kube(
        "patch",
        "deployment/web",
        "-n",
        ns,
        "--type=merge",
        "-p",
        '{"spec":{"strategy":{"rollingUpdate":{"maxSurge":2}}}}',
    )
    stored = get(http, deployment_path(ns, "web"))
    cpu = kube(
        "get", "deployment/web", "-n", ns, "-o", "jsonpath={.spec.template.spec.containers[0].resources.limits.cpu}"
    )
    assert cpu == "1"
    assert stored["spec"]["strategy"]["rollingUpdate"]["maxSurge"] == 2


def test_apply_with_unknown_field_is_rejected_by_strict_validation(kube: Kubectl, http: httpx.Client, ns: str) -> None:
    error = failure(kube, "apply", "-n", ns, "-f", str(MANIFESTS / "typo-deployment.yaml"))
    assert 'unknown field "spec.replicaz"' in error
    assert http.get(deployment_path(ns, "typo")).status_code == 404


def test_dry_run_server_validates_and_stores_nothing(kube: Kubectl, http: httpx.Client, ns: str) -> None:
    out = kube("create", "deployment", "ghost", "-n", ns, "--image=nginx:1.27", "--dry-run=server", "-o", "json")
    preview = json.loads(out)
    assert preview["spec"]["strategy"]["type"] == "RollingUpdate"  # the server defaulted it
    assert http.get(deployment_path(ns, "ghost")).status_code == 404
    kube("apply", "-n", ns, "-f", str(MANIFESTS / "shop.yaml"))
    before = get(http, deployment_path(ns, "shop"))
    out = kube("scale", "deployment/shop", "-n", ns, "--replicas=7", "--dry-run=server")
    assert out.strip() == "deployment.apps/shop scaled (server dry run)"
    out = kube("apply", "-n", ns, "-f", "-", "--dry-run=server", input=shop_manifest_edited())
    assert "deployment.apps/shop configured (server dry run)" in out
    assert get(http, deployment_path(ns, "shop")) == before
    error = failure(kube, "create", "-n", ns, "-f", str(MANIFESTS / "invalid-deployment.yaml"), "--dry-run=server")
    assert 'The Deployment "broken" is invalid:' in error


# -- apply -------------------------------------------------------------------------------------------


def shop_manifest_edited() -> str:
    """shop.yaml with four edits: 3 replicas, a new image, an added env var, port 8080 removed."""
    documents = list(yaml.safe_load_all((MANIFESTS / "shop.yaml").read_text()))
    container = documents[0]["spec"]["template"]["spec"]["containers"][0]
    documents[0]["spec"]["replicas"] = 3
    container["image"] = "nginx:1.28"
    container["env"].append({"name": "DEBUG", "value": "1"})
    container["ports"] = [{"containerPort": 80}]
    return yaml.safe_dump_all(documents)


def test_apply_multi_document_created_unchanged_configured(
    kube: Kubectl, http: httpx.Client, ns: str, tmp_path: Path
) -> None:
    manifest = tmp_path / "shop.yaml"
    manifest.write_text((MANIFESTS / "shop.yaml").read_text())
    paths = {
        "deployment": deployment_path(ns, "shop"),
        "service": f"/api/v1/namespaces/{ns}/services/shop",
        "configmap": configmap_path(ns, "shop-config"),
    }

    assert kube("apply", "-n", ns, "-f", str(manifest)).splitlines() == [
        "deployment.apps/shop created", "service/shop created", "configmap/shop-config created",
    ]  # fmt: skip
    first = {kind: get(http, path) for kind, path in paths.items()}
    applied = json.loads(
        first["deployment"]["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
    )
    assert applied["spec"]["replicas"] == 2
    assert first["service"]["spec"]["ports"] == [{"port": 80, "protocol": "TCP", "targetPort": 80}]

    assert kube("apply", "-n", ns, "-f", str(manifest)).splitlines() == [
        "deployment.apps/shop unchanged", "service/shop unchanged", "configmap/shop-config unchanged",
    ]  # fmt: skip
    second = {kind: get(http, path) for kind, path in paths.items()}
    for kind in paths:
        assert second[kind]["metadata"]["resourceVersion"] == first[kind]["metadata"]["resourceVersion"], kind

    manifest.write_text(shop_manifest_edited())
    assert kube("apply", "-n", ns, "-f", str(manifest)).splitlines() == [
        "deployment.apps/shop configured", "service/shop unchanged", "configmap/shop-config unchanged",
    ]  # fmt: skip
    third = {kind: get(http, path) for kind, path in paths.items()}
    expected = copy.deepcopy(first["deployment"]["spec"])
    expected["replicas"] = 3
    container = expected["template"]["spec"]["containers"][0]
    container["image"] = "nginx:1.28"
    container["env"] = [{"name": "MODE", "value": "prod"}, {"name": "DEBUG", "value": "1"}]
    container["ports"] = [{"containerPort": 80, "protocol": "TCP"}]
    assert third["deployment"]["spec"] == expected
    assert third["deployment"]["metadata"]["generation"] == first["deployment"]["metadata"]["generation"] + 1
    assert third["deployment"]["metadata"]["labels"] == {"app": "shop"}
    for kind in ("service", "configmap"):
        assert third[kind]["metadata"]["resourceVersion"] == first[kind]["metadata"]["resourceVersion"], kind


def test_diff_shows_the_servers_dry_run_result(kube: Kubectl, http: httpx.Client, ns: str) -> None:
    kube("apply", "-n", ns, "-f", str(MANIFESTS / "shop.yaml"))
    before = get(http, deployment_path(ns, "shop"))
    result = kube.run("diff", "-n", ns, "-f", "-", input=shop_manifest_edited(), check=False)
    assert result.returncode == 1, result.stderr  # 1: differences found
    changed = {line for line in result.stdout.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")}
    assert {"-  replicas: 2", "+  replicas: 3", "-  generation: 1", "+  generation: 2"} <= changed
    assert {"-        image: nginx:1.27", "+        image: nginx:1.28", "-        - containerPort: 8080"} <= changed
    assert not any("Service" in line or "shop-config" in line for line in changed)
    assert get(http, deployment_path(ns, "shop")) == before


def test_edit_sends_the_editors_changes(
    kube: Kubectl, http: httpx.Client, ns: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kube("create", "deployment", "web", "-n", ns, "--image=nginx:1.27", "--replicas=2")
    editor = tmp_path / "editor.sh"
    editor.write_text(
        "#!/bin/sh\n"
        'sed -i -e \'s/image: nginx:1.27$/image: nginx:1.29/\' -e "s/replicas: 2\\$/replicas: $REPLICAS/" "$1"\n'
    )
    editor.chmod(0o755)
    monkeypatch.setenv("EDITOR", str(editor))

    monkeypatch.setenv("REPLICAS", "4")
    assert kube("edit", "deployment/web", "-n", ns).strip() == "deployment.apps/web edited"
    stored = get(http, deployment_path(ns, "web"))
    assert stored["spec"]["replicas"] == 4
    assert stored["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.29"

    kube("scale", "deployment/web", "-n", ns, "--replicas=2")
    monkeypatch.setenv("REPLICAS", "-1")
    error = failure(kube, "edit", "deployment/web", "-n", ns)
    assert 'deployments.apps "web" is invalid' in error
    saved = re.search(r'A copy of your changes has been stored to "([^"]+)"', error)
    assert saved is not None
    assert "# * spec.replicas: Invalid value: -1: must be greater than or equal to 0" in Path(saved[1]).read_text()
    Path(saved[1]).unlink()
    assert get(http, deployment_path(ns, "web"))["spec"]["replicas"] == 2

    # A value of the wrong type is refused like any other invalid edit, and nothing is stored.
    monkeypatch.setenv("REPLICAS", "two")
    error = failure(kube, "edit", "deployment/web", "-n", ns)
    saved = re.search(r'A copy of your changes has been stored to "([^"]+)"', error)
    assert saved is not None
    assert "cannot unmarshal string into field spec.replicas of type integer" in Path(saved[1]).read_text()
    Path(saved[1]).unlink()
    assert get(http, deployment_path(ns, "web"))["spec"]["replicas"] == 2


def test_server_side_apply_conflicts_and_force(kube: Kubectl, http: httpx.Client, ns: str) -> None:
    def manifest(color: str) -> str:
        return yaml.safe_dump(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "palette"}, "data": {"color": color}}
        )

    out = kube("apply", "--server-side", "-n", ns, "-f", "-", input=manifest("blue"))
    assert out.strip() == "configmap/palette serverside-applied"
    stored = get(http, configmap_path(ns, "palette"))
    assert stored["data"] == {"color": "blue"}
    assert [(entry["manager"], entry["operation"]) for entry in stored["metadata"]["managedFields"]] == [
        ("kubectl", "Apply")
    ]

    error = failure(
        kube, "apply", "--server-side", "--field-manager=painter", "-n", ns, "-f", "-", input=manifest("red")
    )
    assert 'Apply failed with 1 conflict: conflict with "kubectl": .data.color' in error
    assert "--force-conflicts" in error
    assert get(http, configmap_path(ns, "palette"))["data"] == {"color": "blue"}

    out = kube(
        "apply", "--server-side", "--field-manager=painter", "--force-conflicts", "-n", ns, "-f", "-",
        input=manifest("red"),
    )  # fmt: skip
    assert out.strip() == "configmap/palette serverside-applied"
    stored = get(http, configmap_path(ns, "palette"))
    assert stored["data"] == {"color": "red"}
    owners = {
        entry["manager"]: entry.get("fieldsV1", {}).get("f:data", {}) for entry in stored["metadata"]["managedFields"]
    }
    assert "f:color" in owners["painter"]
    assert "f:color" not in owners.get("kubectl", {})


# -- get ---------------------------------------------------------------------------------------------


def test_get_shows_kind_specific_columns(kube: Kubectl, ns: str) -> None:
    kube("create", "deployment", "web", "-n", ns, "--image=nginx:1.27", "--replicas=2")
    kube("label", "deployment/web", "-n", ns, "tier=front")
    out = kube("get", "deployments", "-n", ns)
    assert header(out) == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    (row,) = table(out)
    assert (row["NAME"], row["READY"], row["UP-TO-DATE"], row["AVAILABLE"]) == ("web", "0/2", "0", "0")
    assert re.fullmatch(r"\d+s", row["AGE"])

    out = kube("get", "deployments", "-n", ns, "-o", "wide")
    assert header(out) == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"]
    (row,) = table(out)
    assert (row["CONTAINERS"], row["IMAGES"], row["SELECTOR"]) == ("nginx", "nginx:1.27", "app=web")

    (row,) = table(kube("get", "deployments", "-n", ns, "--show-labels"))
    assert row["LABELS"] == "app=web,tier=front"

    everywhere = table(kube("get", "deployments", "-A"))
    assert {"NAMESPACE": ns, "NAME": "web"}.items() <= next(r for r in everywhere if r["NAMESPACE"] == ns).items()

    kube("create", "configmap", "settings", "-n", ns, "--from-literal=a=1", "--from-literal=b=2")
    rows = table(kube("get", "configmaps", "settings", "-n", ns))
    assert [(r["NAME"], r["DATA"]) for r in rows] == [("settings", "2")]
    kube("run", "solo", "-n", ns, "--image=busybox:1.36")
    out = kube("get", "pods", "-n", ns, "-o", "wide")
    assert header(out)[:5] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert {"IP", "NODE"} <= set(header(out))
    (row,) = table(out)
    assert (row["NAME"], row["READY"], row["STATUS"]) == ("solo", "0/1", "Pending")


def test_get_sort_by_field(kube: Kubectl, ns: str) -> None:
    for name, replicas in (("alpha", 3), ("bravo", 1), ("charlie", 2)):
        kube("create", "deployment", name, "-n", ns, "--image=nginx:1.27", f"--replicas={replicas}")
    assert [r["NAME"] for r in table(kube("get", "deploy", "-n", ns))] == ["alpha", "bravo", "charlie"]
    by_replicas = table(kube("get", "deploy", "-n", ns, "--sort-by=.spec.replicas"))
    assert [r["NAME"] for r in by_replicas] == ["bravo", "charlie", "alpha"]
    assert [r["READY"] for r in by_replicas] == ["0/1", "0/2", "0/3"]


def test_get_output_formats(kube: Kubectl, http: httpx.Client, ns: str) -> None:
    kube("create", "configmap", "one", "-n", ns, "--from-literal=k=v")
    kube("create", "configmap", "two", "-n", ns, "--from-literal=k=w")
    stored = get(http, configmap_path(ns, "one"))

    as_yaml = yaml.safe_load(kube("get", "configmap", "one", "-n", ns, "-o", "yaml"))
    assert (as_yaml["apiVersion"], as_yaml["kind"], as_yaml["data"]) == ("v1", "ConfigMap", {"k": "v"})
    assert as_yaml["metadata"]["uid"] == stored["metadata"]["uid"]
    assert as_yaml["metadata"]["resourceVersion"] == stored["metadata"]["resourceVersion"]
    assert "managedFields" not in as_yaml["metadata"]  # kubectl hides them unless asked
    assert "generation" not in as_yaml["metadata"]  # as in kube, a ConfigMap has no desired state to observe

    as_json = json.loads(kube("get", "configmaps", "-n", ns, "-l", "!nothing", "-o", "json"))
    assert as_json["kind"] == "List"
    items = {item["metadata"]["name"]: item for item in as_json["items"]}
    assert {"one", "two"} <= items.keys()
    assert items["two"]["kind"] == "ConfigMap" and items["two"]["data"] == {"k": "w"}

    assert kube("get", "configmaps", "one", "two", "-n", ns, "-o", "name").split() == [
        "configmap/one", "configmap/two",
    ]  # fmt: skip
    assert kube("get", "configmap", "one", "-n", ns, "-o", "jsonpath={.data.k}") == "v"
    assert kube("get", "configmap", "one", "-n", ns, "--show-managed-fields", "-o", "json").count("kubectl-create")


def test_get_field_and_label_selectors(kube: Kubectl, ns: str) -> None:
    kube("run", "a", "-n", ns, "--image=busybox:1.36", "--labels=role=db")
    kube("run", "b", "-n", ns, "--image=busybox:1.36", "--labels=role=web")
    assert kube("get", "pods", "-n", ns, "-l", "role=web", "-o", "name").split() == ["pod/b"]
    assert kube("get", "pods", "-n", ns, "-l", "role in (db,web)", "-o", "name").split() == ["pod/a", "pod/b"]
    assert kube("get", "pods", "-n", ns, "--field-selector", "metadata.name=a", "-o", "name").split() == ["pod/a"]
    result = kube.run("get", "pods", "-n", ns, "-l", "role=cache")
    assert result.stdout == "" and f"No resources found in {ns} namespace." in result.stderr


class LineReader:
    """Collects a long-running kubectl's stdout lines on a thread so a test can wait for them."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, predicate: Callable[[str], bool], timeout: float = 10) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            self.seen.append(line)
            if predicate(line):
                return line
        raise AssertionError(f"no matching line within {timeout}s; got {self.seen}")


def test_get_watch_receives_events(kube: Kubectl, apiserver: ApiServer, ns: str) -> None:
    kube("run", "before", "-n", ns, "--image=busybox:1.36")
    process = subprocess.Popen(
        [kube.binary, "get", "pods", "-n", ns, "-w", "--output-watch-events"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={"KUBECONFIG": str(apiserver.kubeconfig), "HOME": str(apiserver.kubeconfig.parent)},
    )
    try:
        reader = LineReader(process)
        assert re.split(r"\s{2,}", reader.wait_for(lambda line: line.startswith("EVENT"))) == [
            "EVENT", "NAME", "READY", "STATUS", "RESTARTS", "AGE",
        ]  # fmt: skip
        assert reader.wait_for(lambda line: "before" in line).split()[:4] == ["ADDED", "before", "0/1", "Pending"]

        kube("run", "during", "-n", ns, "--image=busybox:1.36")
        assert reader.wait_for(lambda line: "during" in line).split()[:2] == ["ADDED", "during"]
        kube("label", "pod/during", "-n", ns, "seen=yes")
        assert reader.wait_for(lambda line: "during" in line).split()[:2] == ["MODIFIED", "during"]
        kube("delete", "pod/before", "-n", ns, "--wait=false")
        assert reader.wait_for(lambda line: "before" in line).split()[:2] == ["DELETED", "before"]
        assert process.poll() is None  # still watching
    finally:
        process.terminate()
        process.wait(10)


# -- changes -----------------------------------------------------------------------------------------


def test_label_and_annotate(kube: Kubectl, http: httpx.Client, ns: str) -> None:
    kube("create", "deployment", "web", "-n", ns, "--image=nginx:1.27")
    assert kube("label", "deployment/web", "-n", ns, "tier=front", "team=shop").strip() == "deployment.apps/web labeled"
    assert get(http, deployment_path(ns, "web"))["metadata"]["labels"] == {
        "app": "web",
        "tier": "front",
        "team": "shop",
    }

    error = failure(kube, "label", "deployment/web", "-n", ns, "tier=back")
    assert "'tier' already has a value (front), and --overwrite is false" in error
    kube("label", "deployment/web", "-n", ns, "tier=back", "--overwrite")
    assert get(http, deployment_path(ns, "web"))["metadata"]["labels"]["tier"] == "back"

    assert kube("label", "deployment/web", "-n", ns, "tier-").strip() == "deployment.apps/web unlabeled"
    assert get(http, deployment_path(ns, "web"))["metadata"]["labels"] == {"app": "web", "team": "shop"}

    assert (
        kube("annotate", "deployment/web", "-n", ns, "owner=ops@example.com")
        .strip()
        .startswith("deployment.apps/web annotate")
    )
    assert get(http, deployment_path(ns, "web"))["metadata"]["annotations"] == {"owner": "ops@example.com"}
    kube("annotate", "deployment/web", "-n", ns, "owner-")
    assert not get(http, deployment_path(ns, "web"))["metadata"].get("annotations")


def test_scale_uses_the_scale_subresource(kube: Kubectl, http: httpx.Client, ns: str) -> None:
    kube("create", "deployment", "web", "-n", ns, "--image=nginx:1.27", "--replicas=2")
    assert kube("scale", "deployment/web", "-n", ns, "--replicas=5").strip() == "deployment.apps/web scaled"
    assert get(http, deployment_path(ns, "web"))["spec"]["replicas"] == 5
    scale = get(http, deployment_path(ns, "web") + "/scale")
    assert (scale["apiVersion"], scale["kind"], scale["spec"]) == ("autoscaling/v1", "Scale", {"replicas": 5})
    assert scale["status"]["selector"] == "app=web"
    assert table(kube("get", "deployment", "web", "-n", ns))[0]["READY"] == "0/5"

    error = failure(kube, "scale", "deployment/web", "-n", ns, "--replicas=1", "--current-replicas=2")
    assert "expected" in error.lower() and "5" in error
    assert get(http, deployment_path(ns, "web"))["spec"]["replicas"] == 5


def test_set_image(kube: Kubectl, http: httpx.Client, ns: str) -> None:
    kube("create", "deployment", "web", "-n", ns, "--image=nginx:1.27")
    sidecar = {"spec": {"template": {"spec": {"containers": [{"name": "log", "image": "busybox:1.36"}]}}}}
    kube("patch", "deployment/web", "-n", ns, "-p", json.dumps(sidecar))
    assert kube("set", "image", "deployment/web", "-n", ns, "nginx=nginx:1.28").strip() == (
        "deployment.apps/web image updated"
    )
    containers = get(http, deployment_path(ns, "web"))["spec"]["template"]["spec"]["containers"]
    assert {c["name"]: c["image"] for c in containers} == {"nginx": "nginx:1.28", "log": "busybox:1.36"}
    error = failure(kube, "set", "image", "deployment/web", "-n", ns, "missing=nginx:1.28")
    assert 'unable to find container named "missing"' in error


def test_patch_json_merge_and_strategic(kube: Kubectl, http: httpx.Client, ns: str) -> None:
    kube("create", "deployment", "web", "-n", ns, "--image=nginx:1.27", "--replicas=1")
    path = deployment_path(ns, "web")

    replace = [{"op": "replace", "path": "/spec/replicas", "value": 4}]
    out = kube("patch", "deployment/web", "-n", ns, "--type=json", "-p", json.dumps(replace))
    assert out.strip() == "deployment.apps/web patched"
    assert get(http, path)["spec"]["replicas"] == 4

    kube("patch", "deployment/web", "-n", ns, "--type=merge", "-p", '{"metadata":{"labels":{"tier":"front"}}}')
    assert get(http, path)["metadata"]["labels"] == {"app": "web", "tier": "front"}
    kube("patch", "deployment/web", "-n", ns, "--type=merge", "-p", '{"metadata":{"labels":{"tier":null}}}')
    assert get(http, path)["metadata"]["labels"] == {"app": "web"}

    # A strategic merge patch merges containers by name; a merge patch would have replaced the list.
    sidecar = '{"spec":{"template":{"spec":{"containers":[{"name":"log","image":"busybox:1.36"}]}}}}'
    kube("patch", "deployment/web", "-n", ns, "--type=strategic", "-p", sidecar)
    containers = get(http, path)["spec"]["template"]["spec"]["containers"]
    assert sorted((c["name"], c["image"]) for c in containers) == [("log", "busybox:1.36"), ("nginx", "nginx:1.27")]
    remove = {"spec": {"template": {"spec": {"containers": [{"name": "log", "$patch": "delete"}]}}}}
    kube("patch", "deployment/web", "-n", ns, "-p", json.dumps(remove))
    assert [c["name"] for c in get(http, path)["spec"]["template"]["spec"]["containers"]] == ["nginx"]

    assert kube("patch", "deployment/web", "-n", ns, "--type=merge", "-p", "{}").strip() == (
        "deployment.apps/web patched (no change)"
    )
    test_op = [{"op": "test", "path": "/spec/replicas", "value": 9}]
    error = failure(kube, "patch", "deployment/web", "-n", ns, "--type=json", "-p", json.dumps(test_op))
    assert "testing value /spec/replicas failed" in error
    assert get(http, path)["spec"]["replicas"] == 4


# -- delete and wait ---------------------------------------------------------------------------------


def test_delete_and_not_found_errors(kube: Kubectl, http: httpx.Client, ns: str) -> None:
    kube("create", "deployment", "web", "-n", ns, "--image=nginx:1.27")
    assert kube("delete", "deployment", "web", "-n", ns).strip() == 'deployment.apps "web" deleted'
    assert http.get(deployment_path(ns, "web")).status_code == 404
    error = failure(kube, "get", "pods", "nope", "-n", ns)
    assert error.strip() == 'Error from server (NotFound): pods "nope" not found'
    error = failure(kube, "delete", "deployment", "web", "-n", ns)
    assert error.strip() == 'Error from server (NotFound): deployments.apps "web" not found'


def test_delete_waits_for_finalizers(kube: Kubectl, http: httpx.Client, ns: str) -> None:
    kube("create", "configmap", "held", "-n", ns, "--from-literal=a=b")
    kube("patch", "configmap/held", "-n", ns, "--type=merge", "-p", '{"metadata":{"finalizers":["example.com/hold"]}}')
    released = threading.Event()

    def release() -> None:
        time.sleep(1.0)
        response = http.patch(
            configmap_path(ns, "held"),
            content=json.dumps({"metadata": {"finalizers": None}}),
            headers={"Content-Type": "application/merge-patch+json"},
        )
        assert response.status_code == 200, response.text
        assert response.json()["metadata"]["deletionTimestamp"]  # kubectl had asked for deletion first
        released.set()

    started = time.monotonic()
    thread = threading.Thread(target=release)
    thread.start()
    out = kube("delete", "configmap", "held", "-n", ns, "--timeout=20s")
    elapsed = time.monotonic() - started
    thread.join()
    assert released.is_set()
    assert 'configmap "held" deleted' in out
    assert elapsed >= 1.0, f"kubectl returned after {elapsed:.2f}s, before the finalizer was removed"
    assert http.get(configmap_path(ns, "held")).status_code == 404


def test_wait_for_jsonpath_and_delete(kube: Kubectl, http: httpx.Client, ns: str) -> None:
    kube("create", "configmap", "flag", "-n", ns, "--from-literal=state=pending")

    def later(action: Callable[[], httpx.Response]) -> threading.Thread:
        def run() -> None:
            time.sleep(0.5)
            assert action().status_code == 200

        thread = threading.Thread(target=run)
        thread.start()
        return thread

    thread = later(
        lambda: http.patch(
            configmap_path(ns, "flag"),
            content=json.dumps({"data": {"state": "ready"}}),
            headers={"Content-Type": "application/merge-patch+json"},
        )
    )
    out = kube("wait", "configmap/flag", "-n", ns, "--for=jsonpath={.data.state}=ready", "--timeout=15s")
    thread.join()
    assert out.strip() == "configmap/flag condition met"

    result = kube.run(
        "wait", "configmap/flag", "-n", ns, "--for=jsonpath={.data.state}=gone", "--timeout=1s", check=False
    )
    assert result.returncode != 0 and "timed out waiting for the condition" in result.stderr

    thread = later(lambda: http.delete(configmap_path(ns, "flag")))
    out = kube("wait", "configmap/flag", "-n", ns, "--for=delete", "--timeout=15s")
    thread.join()
    assert out.strip() == "configmap/flag condition met"
    assert http.get(configmap_path(ns, "flag")).status_code == 404


# -- schema and raw ----------------------------------------------------------------------------------


def test_explain_prints_field_descriptions(kube: Kubectl) -> None:
    out = kube("explain", "deployment.spec.strategy")
    assert re.search(r"KIND:\s+Deployment", out) and re.search(r"VERSION:\s+v1", out)
    assert "How existing pods are replaced by new ones when the template changes." in out
    assert re.search(r"rollingUpdate\s+<RollingUpdateDeployment>", out)
    assert re.search(r"type\s+<string>", out)

    out = kube("explain", "pods.spec.containers")
    assert re.search(r"KIND:\s+Pod", out)
    assert re.search(r"FIELD:\s+containers\s+<\[\]Container>", out)
    assert re.search(r"image\s+<string>", out) and re.search(r"name\s+<string> -required-", out)
    error = failure(kube, "explain", "pods.spec.nonsense")
    assert 'field "nonsense" does not exist' in error


def test_get_raw_metrics(kube: Kubectl) -> None:
    kube("get", "namespaces")
    out = kube("get", "--raw", "/metrics")
    assert "# TYPE apiserver_request_total counter" in out
    assert re.search(
        r'apiserver_request_total\{code="200",group="",resource="namespaces",subresource="",verb="list"\} \d', out
    )
    version = json.loads(kube("get", "--raw", "/version"))
    assert version["minor"] == "33"
