"""A kopf operator against Skiff: kopf discovers the CRD through the API, watches its objects, runs its
handlers, patches status through the status subresource, posts events, holds deletion with its
finalizer, and picks up where it left off after a restart.

The operator runs as `kopf run --standalone` in a subprocess with the admin kubeconfig.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.test_crd import CRDS, GROUP, crd_manifest, create_crd, crontab, wait_for
from tests.support import ApiServer

OPERATOR = textwrap.dedent(
    """
    import logging
    from pathlib import Path

    import kopf

    MARKS = Path(__file__).with_name("marks")


    def mark(text):
        MARKS.mkdir(exist_ok=True)
        (MARKS / text).touch()


    @kopf.on.startup()
    def configure(settings, **_):
        settings.watching.server_timeout = 30
        settings.posting.level = logging.INFO
        settings.persistence.finalizer = "stable.example.com/kopf-finalizer"


    @kopf.on.create("stable.example.com", "v1", "crontabs")
    def create_fn(spec, name, body, **_):
        kopf.info(body, reason="Scheduled", message=f"scheduled {spec['cronSpec']}")
        mark(f"created-{name}")
        return {"schedule": spec["cronSpec"]}


    @kopf.on.update("stable.example.com", "v1", "crontabs", field="spec.replicas")
    def update_fn(new, name, patch, **_):
        patch.status["observedReplicas"] = new
        mark(f"updated-{name}-{new}")


    @kopf.on.resume("stable.example.com", "v1", "crontabs")
    def resume_fn(name, **_):
        mark(f"resumed-{name}")


    @kopf.on.delete("stable.example.com", "v1", "crontabs")
    def delete_fn(name, **_):
        mark(f"deleted-{name}")
    """
)
FINALIZER = "stable.example.com/kopf-finalizer"
STATUS_SCHEMA: dict[str, Any] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}


class Operator:
    def __init__(self, server: ApiServer, workdir: Path) -> None:
        self.server = server
        self.workdir = workdir
        self.script = workdir / "operator.py"
        self.script.write_text(OPERATOR)
        self.log_path = workdir / "kopf.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Operator:
        env = {**os.environ, "KUBECONFIG": str(self.server.kubeconfig), "PYTHONUNBUFFERED": "1"}
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child process owns it
        self.process = subprocess.Popen(
            [sys.executable, "-m", "kopf", "run", "--standalone", "--all-namespaces", "--verbose", str(self.script)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
            env=env,
        )
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def marked(self, text: str) -> bool:
        return (self.workdir / "marks" / text).exists()

    def wait_mark(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.marked(text):
                return
            if self.process is not None and self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"the operator never did {text!r}:\n{self.log_path.read_text(errors='replace')[-4000:]}")


@pytest.fixture(scope="module")
def http(apiserver: ApiServer) -> Iterator[httpx.Client]:
    with apiserver.client(timeout=30) as client:
        manifest = crd_manifest()
        manifest["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"] = STATUS_SCHEMA
        create_crd(client, manifest)
        yield client


@pytest.fixture
def operator(apiserver: ApiServer, tmp_path: Path) -> Iterator[Operator]:
    process = Operator(apiserver, tmp_path).start()
    yield process
    process.stop()


@pytest.fixture
def ns(http: httpx.Client) -> str:
    name = f"kopf-{uuid.uuid4().hex[:8]}"
    assert http.post("/api/v1/namespaces", json={"metadata": {"name": name}}).status_code == 201
    return name


def test_kopf_handlers_status_events_and_finalizer(http: httpx.Client, operator: Operator, ns: str) -> None:
    path = f"/apis/{GROUP}/v1/namespaces/{ns}/crontabs"
    assert http.post(path, json=crontab("nightly", replicas=1)).status_code == 201
    operator.wait_mark("created-nightly")

    def handled() -> dict[str, Any] | None:
        obj = http.get(f"{path}/nightly").json()
        return obj if obj.get("status", {}).get("create_fn") == {"schedule": "*/5 * * * *"} else None

    obj = wait_for(handled, timeout=30, what="the create handler's result in status")
    assert FINALIZER in obj["metadata"]["finalizers"]

    def scheduled_event() -> list[dict[str, Any]]:
        events = http.get(f"/api/v1/namespaces/{ns}/events", params={"fieldSelector": "involvedObject.name=nightly"})
        return [e for e in events.json()["items"] if e.get("reason") == "Scheduled"]

    event = wait_for(scheduled_event, timeout=30, what="the Scheduled event")[0]
    assert event["message"] == "scheduled */5 * * * *"
    assert event["involvedObject"]["kind"] == "CronTab"

    patch = http.patch(
        f"{path}/nightly", json={"spec": {"replicas": 3}}, headers={"Content-Type": "application/merge-patch+json"}
    )
    assert patch.status_code == 200
    operator.wait_mark("updated-nightly-3")
    wait_for(lambda: http.get(f"{path}/nightly").json()["status"].get("observedReplicas") == 3, what="status")

    assert http.delete(f"{path}/nightly").status_code == 200
    operator.wait_mark("deleted-nightly")
    wait_for(lambda: http.get(f"{path}/nightly").status_code == 404, timeout=30, what="the finalizer to go")


def test_kopf_resumes_after_a_restart(http: httpx.Client, apiserver: ApiServer, tmp_path: Path, ns: str) -> None:
    path = f"/apis/{GROUP}/v1/namespaces/{ns}/crontabs"
    first = Operator(apiserver, tmp_path).start()
    try:
        assert http.post(path, json=crontab("early")).status_code == 201
        first.wait_mark("created-early")
        wait_for(lambda: "create_fn" in http.get(f"{path}/early").json().get("status", {}), what="status")
    finally:
        first.stop()
    assert http.post(path, json=crontab("while-down")).status_code == 201
    (tmp_path / "marks" / "created-early").unlink()
    second = Operator(apiserver, tmp_path).start()
    try:
        second.wait_mark("created-while-down")
        second.wait_mark("resumed-early")
        assert not second.marked("created-early")  # already handled before the restart
    finally:
        second.stop()
    for name in ("early", "while-down"):
        http.patch(
            f"{path}/{name}",
            json={"metadata": {"finalizers": None}},
            headers={"Content-Type": "application/merge-patch+json"},
        )
        http.delete(f"{path}/{name}")
    assert http.get(CRDS).status_code == 200
