"""The `skiff` client commands against a real API server, run as a user runs them: `python -m skiff ...`
with KUBECONFIG pointing at the cluster. Each test checks what is printed, the exit code and the state
the command leaves on the server."""

from __future__ import annotations

import base64
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support import REPO_ROOT, ApiServer, free_port

DEPLOYMENTS = "/apis/apps/v1/namespaces/{ns}/deployments"
CONFIGMAPS = "/api/v1/namespaces/{ns}/configmaps"
MERGE_PATCH = {"Content-Type": "application/merge-patch+json"}


# -- helpers -------------------------------------------------------------------------------------------


def _env(kubeconfig: Path) -> dict[str, str]:
    return {**os.environ, "KUBECONFIG": str(kubeconfig), "HOME": str(kubeconfig.parent), "COLUMNS": "200"}


def skiff_run(
    kubeconfig: Path, *args: str, input: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "skiff", *args],
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_env(kubeconfig),
        cwd=REPO_ROOT,
    )


class Background:
    """A `skiff` command left running, with its output lines collected as they come."""

    def __init__(self, kubeconfig: Path, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "skiff", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(kubeconfig),
            cwd=REPO_ROOT,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for_line(self, test: Callable[[str], bool], timeout: float = 20) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                continue
            self.seen.append(line)
            if test(line):
                return line
        raise AssertionError(f"no such line within {timeout}s; saw {self.seen!r}")

    def finish(self, timeout: float = 20) -> tuple[int, str]:
        code = self.process.wait(timeout)
        time.sleep(0.1)
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        stderr = self.process.stderr.read() if self.process.stderr else ""
        return code, stderr

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def eventually(check: Callable[[], Any], timeout: float = 20, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def deployment(name: str, replicas: int = 2, image: str = "nginx:1.25") -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "web", "image": image}]}},
        },
    }


def configmap(name: str, labels: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels or {}, **extra}}


def created(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code in (200, 201), response.text
    return response.json()


# -- fixtures ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def api(apiserver: ApiServer) -> Iterator[httpx.Client]:
    with apiserver.client(timeout=30) as client:
        yield client


@pytest.fixture
def ns(api: httpx.Client) -> str:
    """A fresh namespace for one test."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    created(api.post("/api/v1/namespaces", json={"metadata": {"name": name}}))
    return name


@pytest.fixture(scope="module")
def kubeconfig(apiserver: ApiServer) -> Path:
    return apiserver.kubeconfig


@pytest.fixture(scope="module")
def alice(apiserver: ApiServer) -> Path:
    """A kubeconfig for a user in group `dev` with no bindings yet."""
    subprocess.run(
        [sys.executable, "-m", "skiff", "pki", "user", "alice", "--group", "dev",
         "--data-dir", str(apiserver.data_dir), "--server", apiserver.url],
        check=True, capture_output=True, cwd=REPO_ROOT,
    )  # fmt: skip
    return apiserver.data_dir / "kubeconfigs" / "alice.kubeconfig"


# -- get -----------------------------------------------------------------------------------------------


def test_get_prints_kubectl_columns_for_deployments_pods_and_namespaces(
    api: httpx.Client, kubeconfig: Path, ns: str
) -> None:
    created(api.post(DEPLOYMENTS.format(ns=ns), json=deployment("web")))
    pod = {"metadata": {"name": "solo"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    created(api.post(f"/api/v1/namespaces/{ns}/pods", json=pod))

    out = skiff_run(kubeconfig, "get", "deployments", "-n", ns)
    assert out.returncode == 0, out.stderr
    header, row = out.stdout.splitlines()
    assert header.split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert row.split()[:4] == ["web", "0/2", "0", "0"]
    # Plain columns line up under their headers, three spaces apart, as kubectl's tabwriter prints them.
    assert header.index("READY") == row.index("0/2")

    wide = skiff_run(kubeconfig, "get", "deploy", "-n", ns, "-o", "wide").stdout.splitlines()
    assert wide[0].split()[-3:] == ["CONTAINERS", "IMAGES", "SELECTOR"]
    assert wide[1].split()[-3:] == ["web", "nginx:1.25", "app=web"]

    pods = skiff_run(kubeconfig, "get", "po", "-n", ns).stdout.splitlines()
    assert pods[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert pods[1].split()[:4] == ["solo", "0/1", "Pending", "0"]

    namespaces = skiff_run(kubeconfig, "get", "namespaces").stdout.splitlines()
    assert namespaces[0].split() == ["NAME", "STATUS", "AGE"]
    assert [ns, "Active"] in [line.split()[:2] for line in namespaces]


def test_get_output_formats(api: httpx.Client, kubeconfig: Path, ns: str) -> None:
    created(api.post(DEPLOYMENTS.format(ns=ns), json=deployment("web", replicas=3)))
    created(api.post(CONFIGMAPS.format(ns=ns), json=configmap("one")))

    as_yaml = yaml.safe_load(skiff_run(kubeconfig, "get", "deployment", "web", "-n", ns, "-o", "yaml").stdout)
    assert (as_yaml["apiVersion"], as_yaml["kind"]) == ("apps/v1", "Deployment")
    assert as_yaml["spec"]["replicas"] == 3

    as_json = json.loads(skiff_run(kubeconfig, "get", "deploy/web", "-n", ns, "-o", "json").stdout)
    assert as_json["metadata"]["name"] == "web"

    listed = json.loads(skiff_run(kubeconfig, "get", "configmaps", "-n", ns, "-o", "json").stdout)
    assert listed["kind"] == "List"
    assert [(i["kind"], i["metadata"]["name"]) for i in listed["items"]] == [("ConfigMap", "one")]

    names = skiff_run(kubeconfig, "get", "deploy,cm", "-n", ns, "-o", "name").stdout.split()
    assert names == ["deployment.apps/web", "configmap/one"]

    path = skiff_run(
        kubeconfig, "get", "deploy", "web", "-n", ns, "-o", "jsonpath={.spec.template.spec.containers[0].image}"
    )
    assert path.stdout == "nginx:1.25"


def test_get_with_label_selector_and_show_labels(api: httpx.Client, kubeconfig: Path, ns: str) -> None:
    created(api.post(CONFIGMAPS.format(ns=ns), json=configmap("front", {"tier": "web"})))
    created(api.post(CONFIGMAPS.format(ns=ns), json=configmap("store", {"tier": "db"})))

    out = skiff_run(kubeconfig, "get", "cm", "-n", ns, "-l", "tier=db", "--show-labels")
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["NAME", "DATA", "AGE", "LABELS"]
    assert len(lines) == 2
    assert lines[1].split()[0] == "store"
    assert lines[1].split()[-1] == "tier=db"

    none = skiff_run(kubeconfig, "get", "cm", "-n", ns, "-l", "tier=cache")
    assert none.returncode == 0
    assert none.stdout == ""
    assert none.stderr.strip() == f"No resources found in {ns} namespace."


def test_get_all_namespaces_adds_a_namespace_column(api: httpx.Client, kubeconfig: Path, ns: str) -> None:
    created(api.post(CONFIGMAPS.format(ns=ns), json=configmap("marker", {"probe": ns})))

    lines = skiff_run(kubeconfig, "get", "configmaps", "-A", "-l", f"probe={ns}").stdout.splitlines()
    assert lines[0].split() == ["NAMESPACE", "NAME", "DATA", "AGE"]
    assert lines[1].split()[:2] == [ns, "marker"]


def test_missing_object_and_unknown_type_are_reported_like_kubectl(kubeconfig: Path, ns: str) -> None:
    missing = skiff_run(kubeconfig, "get", "deployment", "nope", "-n", ns)
    assert missing.returncode == 1
    assert missing.stderr.strip() == 'Error from server (NotFound): deployments.apps "nope" not found'

    pod = skiff_run(kubeconfig, "describe", "pod", "ghost", "-n", ns)
    assert pod.returncode == 1
    assert pod.stderr.strip() == 'Error from server (NotFound): pods "ghost" not found'

    unknown = skiff_run(kubeconfig, "get", "gizmos")
    assert unknown.returncode == 1
    assert unknown.stderr.strip() == 'error: the server doesn\'t have a resource type "gizmos"'


def test_get_watch_prints_a_row_when_an_object_is_created(api: httpx.Client, kubeconfig: Path, ns: str) -> None:
    created(api.post(CONFIGMAPS.format(ns=ns), json=configmap("first")))
    watcher = Background(kubeconfig, "get", "configmaps", "-n", ns, "-w")
    try:
        watcher.wait_for_line(lambda line: line.startswith("first"))
        created(api.post(CONFIGMAPS.format(ns=ns), json={"metadata": {"name": "second"}, "data": {"k": "v"}}))
        row = watcher.wait_for_line(lambda line: line.startswith("second"))
        assert row.split()[:2] == ["second", "1"]
        # Rows printed later keep at least the listed columns' widths.
        assert watcher.seen[0].split() == ["NAME", "DATA", "AGE"]
        assert row == "second   1      0s" or row.startswith("second   1      ")
    finally:
        watcher.stop()


# -- apply, create, delete, scale ----------------------------------------------------------------------


MANIFEST = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  mode: {mode}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
spec:
  replicas: 1
  selector:
    matchLabels: {{app: api}}
  template:
    metadata:
      labels: {{app: api}}
    spec:
      containers:
      - name: api
        image: example/api:1
"""


def test_apply_reports_created_then_unchanged_then_configured(
    api: httpx.Client, kubeconfig: Path, ns: str, tmp_path: Path
) -> None:
    manifest = tmp_path / "app.yaml"
    manifest.write_text(MANIFEST.format(mode="fast"))

    first = skiff_run(kubeconfig, "apply", "-f", str(manifest), "-n", ns)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == ["configmap/settings created", "deployment.apps/api created"]
    stored = api.get(f"{CONFIGMAPS.format(ns=ns)}/settings").json()
    assert stored["data"] == {"mode": "fast"}
    assert [m["manager"] for m in stored["metadata"]["managedFields"]] == ["skiff"]

    again = skiff_run(kubeconfig, "apply", "-f", str(manifest), "-n", ns)
    assert again.stdout.splitlines() == ["configmap/settings unchanged", "deployment.apps/api unchanged"]

    manifest.write_text(MANIFEST.format(mode="safe"))
    edited = skiff_run(kubeconfig, "apply", "-f", str(tmp_path), "-n", ns)
    assert edited.stdout.splitlines() == ["configmap/settings configured", "deployment.apps/api unchanged"]
    assert api.get(f"{CONFIGMAPS.format(ns=ns)}/settings").json()["data"] == {"mode": "safe"}


def test_apply_from_stdin_and_namespace_mismatch(api: httpx.Client, kubeconfig: Path, ns: str) -> None:
    document = yaml.safe_dump(configmap("piped", namespace=ns))
    piped = skiff_run(kubeconfig, "apply", "-f", "-", input=document)
    assert piped.stdout.strip() == "configmap/piped created"
    assert api.get(f"{CONFIGMAPS.format(ns=ns)}/piped").status_code == 200

    clash = skiff_run(kubeconfig, "apply", "-f", "-", "-n", "default", input=document)
    assert clash.returncode == 1
    assert f'the namespace from the provided object "{ns}" does not match the namespace "default"' in clash.stderr


def test_create_from_file_refuses_an_existing_object(kubeconfig: Path, ns: str, tmp_path: Path) -> None:
    manifest = tmp_path / "cm.yaml"
    manifest.write_text(yaml.safe_dump(configmap("once")))
    first = skiff_run(kubeconfig, "create", "-f", str(manifest), "-n", ns)
    assert (first.returncode, first.stdout.strip()) == (0, "configmap/once created")
    second = skiff_run(kubeconfig, "create", "-f", str(manifest), "-n", ns)
    assert second.returncode == 1
    assert second.stderr.strip() == 'Error from server (AlreadyExists): configmaps "once" already exists'


def test_delete_waits_until_the_object_is_gone(api: httpx.Client, kubeconfig: Path, ns: str) -> None:
    path = f"{CONFIGMAPS.format(ns=ns)}/held"
    created(api.post(CONFIGMAPS.format(ns=ns), json=configmap("held", finalizers=["example.com/hold"])))

    deleting = Background(kubeconfig, "delete", "configmap", "held", "-n", ns)
    try:
        assert deleting.wait_for_line(lambda line: "deleted" in line) == 'configmap "held" deleted'
        # The finalizer keeps the object, so the command is still waiting.
        time.sleep(1.5)
        assert deleting.process.poll() is None
        assert api.get(path).json()["metadata"]["deletionTimestamp"]
        api.patch(path, json={"metadata": {"finalizers": None}}, headers=MERGE_PATCH)
        code, stderr = deleting.finish()
        assert code == 0, stderr
    finally:
        deleting.stop()
    assert api.get(path).status_code == 404


def test_delete_by_file_and_missing_object(api: httpx.Client, kubeconfig: Path, ns: str, tmp_path: Path) -> None:
    manifest = tmp_path / "cm.yaml"
    manifest.write_text(yaml.safe_dump(configmap("doomed")))
    created(api.post(CONFIGMAPS.format(ns=ns), json=configmap("doomed")))
    out = skiff_run(kubeconfig, "delete", "-f", str(manifest), "-n", ns)
    assert (out.returncode, out.stdout.strip()) == (0, 'configmap "doomed" deleted')
    assert api.get(f"{CONFIGMAPS.format(ns=ns)}/doomed").status_code == 404

    again = skiff_run(kubeconfig, "delete", "cm/doomed", "-n", ns)
    assert again.returncode == 1
    assert again.stderr.strip() == 'Error from server (NotFound): configmaps "doomed" not found'
    ignored = skiff_run(kubeconfig, "delete", "cm/doomed", "-n", ns, "--ignore-not-found")
    assert ignored.returncode == 0


def test_scale_sets_the_replicas(api: httpx.Client, kubeconfig: Path, ns: str) -> None:
    created(api.post(DEPLOYMENTS.format(ns=ns), json=deployment("web", replicas=1)))
    out = skiff_run(kubeconfig, "scale", "deployment/web", "--replicas", "4", "-n", ns)
    assert (out.returncode, out.stdout.strip()) == (0, "deployment.apps/web scaled")
    assert api.get(f"{DEPLOYMENTS.format(ns=ns)}/web").json()["spec"]["replicas"] == 4

    stale = skiff_run(kubeconfig, "scale", "deploy", "web", "--replicas", "1", "--current-replicas", "2", "-n", ns)
    assert stale.returncode == 1
    assert stale.stderr.strip() == "error: Expected replicas to be 2, was 4"
    assert api.get(f"{DEPLOYMENTS.format(ns=ns)}/web").json()["spec"]["replicas"] == 4


# -- describe and events -------------------------------------------------------------------------------


def make_event(api: httpx.Client, ns: str, involved: dict[str, Any], reason: str, message: str) -> None:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    event = {
        "metadata": {"name": f"{involved['name']}.{uuid.uuid4().hex[:10]}"},
        "involvedObject": involved,
        "reason": reason,
        "message": message,
        "type": "Normal",
        "source": {"component": "tester"},
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }
    created(api.post(f"/api/v1/namespaces/{ns}/events", json=event))


def test_describe_deployment_shows_details_and_its_events(api: httpx.Client, kubeconfig: Path, ns: str) -> None:
    obj = created(api.post(DEPLOYMENTS.format(ns=ns), json=deployment("web", replicas=3)))
    involved = {
        "kind": "Deployment",
        "apiVersion": "apps/v1",
        "name": "web",
        "namespace": ns,
        "uid": obj["metadata"]["uid"],
    }
    make_event(api, ns, involved, "ScalingReplicaSet", "Scaled up replica set web-abc to 3")
    # An event about an older object of the same name is not this deployment's.
    make_event(api, ns, {**involved, "uid": str(uuid.uuid4())}, "Stale", "from an earlier life")

    out = skiff_run(kubeconfig, "describe", "deployment", "web", "-n", ns)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert text.startswith("Name:")
    assert f"Namespace:              {ns}" in text
    assert "Replicas:               3 desired | 0 updated | 0 total | 0 available | 0 unavailable" in text
    assert "StrategyType:           RollingUpdate" in text
    assert "Image:  nginx:1.25" in text
    events = text.split("Events:")[1].splitlines()
    assert events[1].split() == ["Type", "Reason", "Age", "From", "Message"]
    assert events[3].split()[:2] == ["Normal", "ScalingReplicaSet"]
    assert events[3].endswith("tester   Scaled up replica set web-abc to 3")
    assert "Stale" not in text


def test_describe_pod_and_generic_kinds(api: httpx.Client, kubeconfig: Path, ns: str) -> None:
    pod = {
        "metadata": {"name": "p", "labels": {"a": "1", "b": "2"}},
        "spec": {"containers": [{"name": "main", "image": "busybox", "ports": [{"containerPort": 8080}]}]},
    }
    created(api.post(f"/api/v1/namespaces/{ns}/pods", json=pod))
    text = skiff_run(kubeconfig, "describe", "pod/p", "-n", ns).stdout
    assert "Status:           Pending" in text
    assert "Labels:           a=1\n                  b=2" in text
    assert "Containers:\n  main:\n" in text
    assert "Port:           8080/TCP" in text
    assert text.rstrip().endswith("Events:           <none>")

    created(api.post(CONFIGMAPS.format(ns=ns), json={"metadata": {"name": "conf"}, "data": {"key": "value"}}))
    generic = skiff_run(kubeconfig, "describe", "cm", "conf", "-n", ns).stdout
    assert "Kind:         ConfigMap" in generic
    assert "Data:\n  Key:" in generic


def test_events_lists_events_for_one_object(api: httpx.Client, kubeconfig: Path, ns: str) -> None:
    make_event(api, ns, {"kind": "Pod", "name": "a", "namespace": ns}, "Pulled", "image pulled")
    make_event(api, ns, {"kind": "Pod", "name": "b", "namespace": ns}, "Killing", "stopping container")

    every = skiff_run(kubeconfig, "events", "-n", ns).stdout.splitlines()
    assert every[0].split() == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert len(every) == 3
    only = skiff_run(kubeconfig, "events", "-n", ns, "--for", "pod/b").stdout.splitlines()
    assert len(only) == 2
    assert only[1].split()[1:4] == ["Normal", "Killing", "Pod/b"]


# -- wait ----------------------------------------------------------------------------------------------


def test_wait_for_delete(api: httpx.Client, kubeconfig: Path, ns: str) -> None:
    created(api.post(CONFIGMAPS.format(ns=ns), json=configmap("brief")))
    waiter = Background(kubeconfig, "wait", "--for=delete", "configmap/brief", "-n", ns, "--timeout", "30s")
    try:
        time.sleep(1)
        assert waiter.process.poll() is None
        assert api.delete(f"{CONFIGMAPS.format(ns=ns)}/brief").status_code == 200
        code, stderr = waiter.finish()
        assert code == 0, stderr
        assert waiter.seen == ["configmap/brief condition met"]
    finally:
        waiter.stop()


def test_wait_for_jsonpath_and_timeout(api: httpx.Client, kubeconfig: Path, ns: str) -> None:
    created(api.post(CONFIGMAPS.format(ns=ns), json={"metadata": {"name": "flag"}, "data": {"state": "starting"}}))
    waiter = Background(kubeconfig, "wait", "--for=jsonpath={.data.state}=ready", "cm/flag", "-n", ns, "--timeout=30s")
    try:
        time.sleep(1)
        assert waiter.process.poll() is None
        patch = {"data": {"state": "ready"}}
        api.patch(f"{CONFIGMAPS.format(ns=ns)}/flag", json=patch, headers=MERGE_PATCH)
        code, stderr = waiter.finish()
        assert code == 0, stderr
        assert waiter.seen == ["configmap/flag condition met"]
    finally:
        waiter.stop()

    late = skiff_run(kubeconfig, "wait", "--for=jsonpath={.data.state}=done", "cm/flag", "-n", ns, "--timeout", "2s")
    assert late.returncode == 1
    assert late.stderr.strip() == "error: timed out waiting for the condition on configmaps/flag"


# -- rollout -------------------------------------------------------------------------------------------


def set_status(api: httpx.Client, ns: str, name: str, status: dict[str, Any]) -> None:
    path = f"{DEPLOYMENTS.format(ns=ns)}/{name}/status"
    response = api.patch(path, json={"status": status}, headers=MERGE_PATCH)
    assert response.status_code == 200, response.text


def test_rollout_status_follows_the_deployment_until_it_is_rolled_out(
    api: httpx.Client, kubeconfig: Path, ns: str
) -> None:
    obj = created(api.post(DEPLOYMENTS.format(ns=ns), json=deployment("web", replicas=2)))
    generation = obj["metadata"]["generation"]
    set_status(api, ns, "web", {"observedGeneration": generation, "replicas": 2, "updatedReplicas": 1})

    watcher = Background(kubeconfig, "rollout", "status", "deployment/web", "-n", ns)
    try:
        first = watcher.wait_for_line(lambda line: bool(line))
        assert first == 'Waiting for deployment "web" rollout to finish: 1 out of 2 new replicas have been updated...'
        set_status(api, ns, "web", {"replicas": 2, "updatedReplicas": 2, "availableReplicas": 1})
        watcher.wait_for_line(lambda line: "1 of 2 updated replicas are available" in line)
        set_status(api, ns, "web", {"availableReplicas": 2})
        code, stderr = watcher.finish()
        assert code == 0, stderr
        assert watcher.seen[-1] == 'deployment "web" successfully rolled out'
    finally:
        watcher.stop()


def test_rollout_status_fails_when_the_progress_deadline_is_exceeded(
    api: httpx.Client, kubeconfig: Path, ns: str
) -> None:
    obj = created(api.post(DEPLOYMENTS.format(ns=ns), json=deployment("stuck")))
    condition = {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "too slow"}
    set_status(api, ns, "stuck", {"observedGeneration": obj["metadata"]["generation"], "conditions": [condition]})
    out = skiff_run(kubeconfig, "rollout", "status", "deploy/stuck", "-n", ns)
    assert out.returncode == 1
    assert out.stderr.strip() == 'error: deployment "stuck" exceeded its progress deadline'


def replica_set(owner: dict[str, Any], revision: int, image: str, cause: str) -> dict[str, Any]:
    name = owner["metadata"]["name"]
    labels = {"app": name, "pod-template-hash": f"h{revision}"}
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": f"{name}-h{revision}",
            "labels": labels,
            "annotations": {"deployment.kubernetes.io/revision": str(revision), "kubernetes.io/change-cause": cause},
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "name": name,
                    "uid": owner["metadata"]["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "web", "image": image}]}},
        },
    }


def test_rollout_history_undo_and_restart(api: httpx.Client, kubeconfig: Path, ns: str) -> None:
    owner = created(api.post(DEPLOYMENTS.format(ns=ns), json=deployment("web", image="nginx:1.26")))
    for revision, image in ((1, "nginx:1.24"), (2, "nginx:1.25"), (3, "nginx:1.26")):
        rs = replica_set(owner, revision, image, f"set image {image}")
        created(api.post(f"/apis/apps/v1/namespaces/{ns}/replicasets", json=rs))

    history = skiff_run(kubeconfig, "rollout", "history", "deployment/web", "-n", ns).stdout.splitlines()
    assert history[:5] == [
        "deployment.apps/web ",
        "REVISION  CHANGE-CAUSE",
        "1         set image nginx:1.24",
        "2         set image nginx:1.25",
        "3         set image nginx:1.26",
    ]

    undo = skiff_run(kubeconfig, "rollout", "undo", "deployment/web", "--to-revision", "1", "-n", ns)
    assert (undo.returncode, undo.stdout.strip()) == (0, "deployment.apps/web rolled back")
    after = api.get(f"{DEPLOYMENTS.format(ns=ns)}/web").json()
    assert after["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.24"
    assert "pod-template-hash" not in after["spec"]["template"]["metadata"]["labels"]

    missing = skiff_run(kubeconfig, "rollout", "undo", "deployment/web", "--to-revision", "9", "-n", ns)
    assert missing.returncode == 1
    assert missing.stderr.strip() == "error: unable to find specified revision 9 in history"

    restart = skiff_run(kubeconfig, "rollout", "restart", "deployment/web", "-n", ns)
    assert restart.stdout.strip() == "deployment.apps/web restarted"
    annotations = api.get(f"{DEPLOYMENTS.format(ns=ns)}/web").json()["spec"]["template"]["metadata"]["annotations"]
    assert "kubectl.kubernetes.io/restartedAt" in annotations


# -- auth and tokens -----------------------------------------------------------------------------------


def test_auth_can_i_answers_yes_and_no_with_exit_codes(
    api: httpx.Client, kubeconfig: Path, alice: Path, ns: str
) -> None:
    admin = skiff_run(kubeconfig, "auth", "can-i", "create", "deployments", "-n", ns)
    assert (admin.returncode, admin.stdout.strip()) == (0, "yes")

    denied = skiff_run(alice, "auth", "can-i", "create", "deployments", "-n", ns)
    assert (denied.returncode, denied.stdout.strip()) == (1, "no")

    binding = {
        "metadata": {"name": "alice-edit"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"}],
    }
    created(api.post(f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings", json=binding))
    allowed = eventually(
        lambda: (r := skiff_run(alice, "auth", "can-i", "create", "deployments", "-n", ns)).returncode == 0 and r,
        what="alice's binding to take effect",
    )
    assert allowed.stdout.strip() == "yes"
    elsewhere = skiff_run(Path("/nonexistent"), "auth", "can-i", "create", "deployments", "--kubeconfig", str(alice))
    assert elsewhere.stdout.strip() == "no"

    forbidden = skiff_run(alice, "get", "secrets", "-n", "default")
    assert forbidden.returncode == 1
    assert forbidden.stderr.startswith("Error from server (Forbidden): ")


def test_auth_whoami(kubeconfig: Path, alice: Path) -> None:
    out = skiff_run(alice, "auth", "whoami").stdout.splitlines()
    assert out[0].split() == ["ATTRIBUTE", "VALUE"]
    assert out[1].split() == ["Username", "alice"]
    assert out[2].split() == ["Groups", "[dev", "system:authenticated]"]
    admin = skiff_run(Path("/nonexistent"), "auth", "whoami", "--kubeconfig", str(kubeconfig)).stdout
    assert "skiff-admin" in admin


def test_create_token_prints_a_jwt_for_the_service_account(
    api: httpx.Client, kubeconfig: Path, ns: str, tmp_path: Path
) -> None:
    created(api.post(f"/api/v1/namespaces/{ns}/serviceaccounts", json={"metadata": {"name": "robot"}}))
    out = skiff_run(kubeconfig, "create", "token", "robot", "-n", ns, "--duration", "1h", "--audience", "vault")
    assert out.returncode == 0, out.stderr
    token = out.stdout.strip()
    _header, payload, _signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["sub"] == f"system:serviceaccount:{ns}:robot"
    assert claims["aud"] == ["vault"]
    assert claims["exp"] - claims["iat"] == 3600

    # A token for the API server's own audience signs the service account in.
    plain = skiff_run(kubeconfig, "create", "token", "robot", "-n", ns).stdout.strip()
    config = yaml.safe_load(kubeconfig.read_text())
    config["users"][0]["user"] = {"token": plain}
    robot = tmp_path / "robot.kubeconfig"
    robot.write_text(yaml.safe_dump(config))
    whoami = skiff_run(robot, "auth", "whoami").stdout.splitlines()
    assert whoami[1].split() == ["Username", f"system:serviceaccount:{ns}:robot"]

    missing = skiff_run(kubeconfig, "create", "token", "nobody", "-n", ns)
    assert missing.returncode == 1
    assert missing.stderr.strip() == 'Error from server (NotFound): serviceaccounts "nobody" not found'


def test_kubeconfig_context_and_missing_config(kubeconfig: Path, tmp_path: Path) -> None:
    unknown = skiff_run(kubeconfig, "get", "ns", "--context", "elsewhere")
    assert unknown.returncode == 1
    assert unknown.stderr.strip() == 'error: context "elsewhere" does not exist'
    nowhere = skiff_run(tmp_path / "absent.kubeconfig", "get", "ns")
    assert nowhere.returncode == 1
    assert nowhere.stderr.startswith("error: no kubeconfig found")


# -- logs (simulated kubelet) --------------------------------------------------------------------------


NODE_INDEX = 233
NODE = f"sc-{NODE_INDEX}"


@pytest.fixture(scope="module")
def kubelet(apiserver: ApiServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    subprocess.run(
        [sys.executable, "-m", "skiff", "pki", "node", NODE, "--data-dir", str(apiserver.data_dir)],
        check=True, capture_output=True, cwd=REPO_ROOT,
    )  # fmt: skip
    data_dir = tmp_path_factory.mktemp("kubelet")
    command = [
        sys.executable, "-m", "skiff", "kubelet", "--node-name", NODE, "--first-node-index", str(NODE_INDEX),
        "--kubeconfig", str(apiserver.data_dir / "kubeconfigs" / f"node-{NODE}.kubeconfig"),
        "--data-dir", str(data_dir), "--kubelet-port", str(free_port()), "--image-pull-duration", "100ms",
        "--node-status-update-frequency", "1s",
    ]  # fmt: skip
    with open(data_dir / "kubelet.log", "ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT)
    yield NODE
    process.terminate()
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def test_logs_prints_and_tails_a_container_log(api: httpx.Client, kubeconfig: Path, kubelet: str, ns: str) -> None:
    pod = {
        "metadata": {"name": "chatty", "annotations": {"sim.skiff.dev/log-lines": "5"}},
        "spec": {
            "nodeName": kubelet,
            # No service-account controller runs here to provide what the token volume needs.
            "automountServiceAccountToken": False,
            "containers": [{"name": "app", "image": "busybox"}, {"name": "side", "image": "busybox"}],
        },
    }
    created(api.post(f"/api/v1/namespaces/{ns}/pods", json=pod))

    def running() -> bool:
        statuses = api.get(f"/api/v1/namespaces/{ns}/pods/chatty").json().get("status", {}).get("containerStatuses")
        return bool(statuses) and all("running" in s.get("state", {}) for s in statuses)

    eventually(running, timeout=40, what="the pod to run")
    out = skiff_run(kubeconfig, "logs", "chatty", "-n", ns)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-5:] == [f"app: line {i}/5" for i in range(1, 6)]
    assert "side:" not in out.stdout
    assert out.stderr.strip() == 'Defaulted container "app" out of: app, side'

    tail = skiff_run(kubeconfig, "logs", "pod/chatty", "-c", "side", "--tail", "2", "-n", ns)
    assert tail.stdout.splitlines() == ["side: line 4/5", "side: line 5/5"]

    wrong = skiff_run(kubeconfig, "logs", "chatty", "-c", "nope", "-n", ns)
    assert wrong.returncode == 1
    assert wrong.stderr.strip() == "error: container nope is not valid for pod chatty"


# -- custom resources ----------------------------------------------------------------------------------


WIDGET_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.skiff-client.example.com"},
    "spec": {
        "group": "skiff-client.example.com",
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wdg"]},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                "additionalPrinterColumns": [{"name": "Size", "type": "integer", "jsonPath": ".spec.size"}],
            }
        ],
    },
}

WIDGET = """\
apiVersion: skiff-client.example.com/v1
kind: Widget
metadata:
  name: gear
spec:
  size: 7
"""


def test_custom_resources_by_discovery(api: httpx.Client, kubeconfig: Path, ns: str) -> None:
    crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    if api.get(f"{crds}/widgets.skiff-client.example.com").status_code == 404:
        created(api.post(crds, json=WIDGET_CRD))

    def served() -> bool:
        return api.get(f"/apis/skiff-client.example.com/v1/namespaces/{ns}/widgets").status_code == 200

    eventually(served, what="the Widget resource to be served")
    applied = skiff_run(kubeconfig, "apply", "-f", "-", "-n", ns, input=WIDGET)
    assert (applied.returncode, applied.stdout.strip()) == (0, "widget.skiff-client.example.com/gear created")

    table = skiff_run(kubeconfig, "get", "wdg", "-n", ns).stdout.splitlines()
    assert table[0].split() == ["NAME", "SIZE"]
    assert table[1].split()[:2] == ["gear", "7"]

    path = f"/apis/skiff-client.example.com/v1/namespaces/{ns}/widgets/gear/status"
    ready = {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    assert api.patch(path, json=ready, headers=MERGE_PATCH).status_code == 200
    waited = skiff_run(kubeconfig, "wait", "--for=condition=Ready", "widgets.skiff-client.example.com/gear", "-n", ns)
    assert (waited.returncode, waited.stdout.strip()) == (0, "widget.skiff-client.example.com/gear condition met")
