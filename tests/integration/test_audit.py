"""The audit log against a real API server: one audit.k8s.io/v1 Event per request, no secrets, rotation."""

from __future__ import annotations

import base64
import datetime
import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support import ApiServer, free_port

MAX_SIZE_MB = 0.004  # about 4 KB: a handful of events per file
MAX_BACKUPS = 2


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    data_dir = tmp_path_factory.mktemp("audited")
    server = ApiServer(
        data_dir,
        free_port(),
        extra_args=[
            "--audit-log-path", str(data_dir / "audit" / "audit.log"),
            "--audit-log-maxsize", str(MAX_SIZE_MB),
            "--audit-log-maxbackup", str(MAX_BACKUPS),
        ],
    ).start()  # fmt: skip
    yield server
    server.stop()


def audit_path(server: ApiServer) -> Path:
    return server.data_dir / "audit" / "audit.log"


def audit_files(server: ApiServer) -> list[Path]:
    path = audit_path(server)
    return sorted(path.parent.glob("audit.log*"))


def events(server: ApiServer) -> list[dict]:
    found = []
    for path in audit_files(server):
        found += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return found


def wait_for(server: ApiServer, predicate: Callable[[dict], bool], timeout: float = 10) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in events(server):
            if predicate(event):
                return event
        time.sleep(0.05)
    raise AssertionError(f"no matching audit event in {[e.get('requestURI') for e in events(server)]}")


def parse_time(text: str) -> datetime.datetime:
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ")


def test_a_write_is_recorded_with_who_what_and_outcome(audited: ApiServer) -> None:
    name = f"db-{uuid.uuid4().hex[:8]}"
    with audited.client(timeout=30, headers={"User-Agent": "audit-test/1.0"}) as client:
        body = {"metadata": {"name": name}, "stringData": {"password": "x"}}
        assert client.post("/api/v1/namespaces/default/secrets", json=body).status_code == 201
    event = wait_for(audited, lambda e: e.get("objectRef", {}).get("name") == name)
    assert event["apiVersion"] == "audit.k8s.io/v1" and event["kind"] == "Event"
    assert event["level"] == "Metadata" and event["stage"] == "ResponseComplete"
    assert event["verb"] == "create"
    assert event["requestURI"] == "/api/v1/namespaces/default/secrets"
    assert event["user"]["username"] == "skiff-admin"
    assert "system:masters" in event["user"]["groups"]
    assert event["objectRef"] == {"resource": "secrets", "namespace": "default", "name": name, "apiVersion": "v1"}
    assert event["responseStatus"]["code"] == 201
    assert event["sourceIPs"] == ["127.0.0.1"]
    assert event["userAgent"] == "audit-test/1.0"
    assert uuid.UUID(event["auditID"])
    assert parse_time(event["requestReceivedTimestamp"]) <= parse_time(event["stageTimestamp"])
    assert event["latency"].endswith("ms")


def test_grouped_subresource_and_failures_are_recorded(audited: ApiServer) -> None:
    with audited.client(timeout=30) as client:
        missing = client.get("/apis/apps/v1/namespaces/default/deployments/nope/scale")
        assert missing.status_code == 404
    event = wait_for(audited, lambda e: e.get("objectRef", {}).get("subresource") == "scale")
    assert event["objectRef"] == {
        "resource": "deployments",
        "namespace": "default",
        "name": "nope",
        "apiGroup": "apps",
        "apiVersion": "v1",
        "subresource": "scale",
    }
    assert event["verb"] == "get" and event["responseStatus"]["code"] == 404


def test_unauthenticated_requests_are_recorded_without_a_user(audited: ApiServer) -> None:
    marker = f"/api/v1/namespaces/audit-{uuid.uuid4().hex[:8]}"
    with audited.anonymous_client() as anonymous:
        assert anonymous.get(marker).status_code == 401
    event = wait_for(audited, lambda e: e["requestURI"] == marker)
    assert event["user"] == {} and event["responseStatus"]["code"] == 401


def test_no_secret_or_credential_reaches_the_log(audited: ApiServer) -> None:
    value = f"s3cret-{uuid.uuid4().hex}"
    token = f"tok-{uuid.uuid4().hex}"
    name = f"creds-{uuid.uuid4().hex[:8]}"
    with audited.client(timeout=30) as client:
        body = {"metadata": {"name": name}, "data": {"password": base64.b64encode(value.encode()).decode()}}
        assert client.post("/api/v1/namespaces/default/secrets", json=body).status_code == 201
        assert client.get(f"/api/v1/namespaces/default/secrets/{name}").status_code == 200
    with audited.anonymous_client(headers={"Authorization": f"Bearer {token}"}) as anonymous:
        anonymous.get(f"/api/v1/namespaces/default/secrets/{name}")
    wait_for(audited, lambda e: e.get("objectRef", {}).get("name") == name and e["responseStatus"]["code"] == 401)
    text = "".join(p.read_text() for p in audit_files(audited))
    assert value not in text
    assert base64.b64encode(value.encode()).decode() not in text
    assert token not in text


def test_a_watch_is_recorded_when_it_starts(audited: ApiServer) -> None:
    with audited.client(timeout=30) as client:
        response = client.get("/api/v1/namespaces/default/configmaps", params={"watch": "true", "timeoutSeconds": "1"})
        assert response.status_code == 200
    event = wait_for(audited, lambda e: e["verb"] == "watch")
    assert event["stage"] == "ResponseStarted"
    assert event["requestURI"].endswith("watch=true&timeoutSeconds=1")


def test_the_log_rotates_by_size_and_keeps_the_configured_backups(audited: ApiServer) -> None:
    with audited.client(timeout=30) as client:
        for index in range(60):
            assert client.get(f"/api/v1/namespaces/default/configmaps/rotate-{index}").status_code == 404
    wait_for(audited, lambda e: e["requestURI"].endswith("/rotate-59"))
    path = audit_path(audited)
    names = sorted(p.name for p in audit_files(audited))
    assert names == ["audit.log", "audit.log.1", "audit.log.2"]
    limit = MAX_SIZE_MB * 1024 * 1024
    for rotated in (Path(f"{path}.1"), Path(f"{path}.2")):
        assert 0 < rotated.stat().st_size <= limit
    # The newest events are in the current file, the older ones in .1, and so on.
    newest = rotate_indexes(path)
    older = rotate_indexes(Path(f"{path}.1"))
    assert newest[-1] == 59
    assert older and max(older) < min(newest)


def rotate_indexes(path: Path) -> list[int]:
    uris = [json.loads(line)["requestURI"] for line in path.read_text().splitlines()]
    return [int(uri.rsplit("-", 1)[1]) for uri in uris if "/rotate-" in uri]


def test_impersonation_records_both_the_real_and_the_impersonated_user(audited: ApiServer) -> None:
    marker = f"/api/v1/namespaces/default/configmaps/as-bob-{uuid.uuid4().hex[:8]}"
    headers = {"Impersonate-User": "bob", "Impersonate-Group": "qa"}
    with audited.client(timeout=30, headers=headers) as client:
        client.get(marker)
    event = wait_for(audited, lambda e: e["requestURI"] == marker)
    assert event["user"]["username"] == "skiff-admin"
    assert event["impersonatedUser"]["username"] == "bob"
    assert "qa" in event["impersonatedUser"]["groups"]
