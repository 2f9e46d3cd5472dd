"""Encryption at rest for Secrets against a real API server: the database never holds the plaintext,
clients always read it, and keys rotate without losing a secret."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support import REPO_ROOT, ApiServer, free_port

SECRETS = "/api/v1/namespaces/default/secrets"
CONFIGMAPS = "/api/v1/namespaces/default/configmaps"


def write_config(path: Path, *keys: tuple[str, str], identity_first: bool = False) -> None:
    aesgcm = {"aesgcm": {"keys": [{"name": name, "secret": secret} for name, secret in keys]}}
    providers = [{"identity": {}}, aesgcm] if identity_first else [aesgcm, {"identity": {}}]
    document = {
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "EncryptionConfiguration",
        "resources": [{"resources": ["secrets"], "providers": providers}],
    }
    path.write_text(yaml.safe_dump(document))


def new_key(name: str) -> tuple[str, str]:
    return name, base64.b64encode(os.urandom(32)).decode()


def database_bytes(data_dir: Path) -> bytes:
    """Everything SQLite keeps on disk: the main file and the write-ahead log."""
    return b"".join(p.read_bytes() for p in data_dir.glob("skiff.db*") if p.is_file() and p.suffix != ".lock")


def create_secret(client: httpx.Client, name: str, value: str) -> dict:
    body = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": {"password": value}}
    response = client.post(SECRETS, json=body)
    assert response.status_code == 201, response.text
    return response.json()


def password(client: httpx.Client, name: str) -> str:
    response = client.get(f"{SECRETS}/{name}")
    assert response.status_code == 200, response.text
    return base64.b64decode(response.json()["data"]["password"]).decode()


def rewrite(server: ApiServer) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "skiff", "encryption", "rewrite", "--kubeconfig", str(server.kubeconfig)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


def test_secrets_are_encrypted_on_disk_and_plaintext_through_the_api(data_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "encryption.yaml"
    write_config(config, new_key("key1"))
    server = ApiServer(data_dir, free_port(), extra_args=["--encryption-provider-config", str(config)]).start()
    try:
        value = f"hunter2-{uuid.uuid4().hex}"
        visible = f"not-secret-{uuid.uuid4().hex}"
        with server.client(timeout=30) as client:
            create_secret(client, "db", value)
            updated = client.patch(
                f"{SECRETS}/db",
                json={"metadata": {"labels": {"tier": "db"}}},
                headers={"Content-Type": "application/merge-patch+json"},
            )
            assert updated.status_code == 200, updated.text
            configmap = {"metadata": {"name": "settings"}, "data": {"greeting": visible}}
            assert client.post(CONFIGMAPS, json=configmap).status_code == 201
            assert password(client, "db") == value
            listed = client.get(SECRETS).json()["items"]
            assert [
                base64.b64decode(s["data"]["password"]).decode() for s in listed if s["metadata"]["name"] == "db"
            ] == [value]
            on_disk = database_bytes(data_dir)
        assert value.encode() not in on_disk
        assert base64.b64encode(value.encode()) not in on_disk
        assert b"k8s:enc:aesgcm:v1:key1:" in on_disk
        # Only the configured resources are encrypted.
        assert visible.encode() in on_disk
    finally:
        server.stop()


def test_key_rotation_keeps_every_secret_readable(data_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "encryption.yaml"
    key1, key2 = new_key("key1"), new_key("key2")
    write_config(config, key1)
    server = ApiServer(data_dir, free_port(), extra_args=["--encryption-provider-config", str(config)])
    values = {f"s{i}": f"value-{i}-{uuid.uuid4().hex}" for i in range(5)}
    server.start()
    try:
        with server.client(timeout=30) as client:
            for name, value in values.items():
                create_secret(client, name, value)
        # 1. The new key goes first; the old one stays for reading.
        server.stop()
        write_config(config, key2, key1)
        server.start()
        with server.client(timeout=30) as client:
            assert {name: password(client, name) for name in values} == values
            values["fresh"] = f"fresh-{uuid.uuid4().hex}"
            create_secret(client, "fresh", values["fresh"])
            before = {
                s["metadata"]["name"]: s["metadata"]["resourceVersion"] for s in client.get(SECRETS).json()["items"]
            }
        # 2. The rewrite moves every secret sealed with key1 onto key2, and leaves current ones alone.
        assert "6 secrets checked: 5 re-encrypted with the current key, 1 already current" in rewrite(server)
        with server.client(timeout=30) as client:
            after = {
                s["metadata"]["name"]: s["metadata"]["resourceVersion"] for s in client.get(SECRETS).json()["items"]
            }
        assert after["fresh"] == before["fresh"]
        assert all(after[name] != before[name] for name in values if name != "fresh")
        assert "0 re-encrypted" in rewrite(server)
        # 3. Without the old key every secret is still readable.
        server.stop()
        write_config(config, key2)
        server.start()
        with server.client(timeout=30) as client:
            assert {name: password(client, name) for name in values} == values
    finally:
        server.stop()


def test_a_bad_configuration_stops_the_server_with_the_reason(tmp_path: Path) -> None:
    config = tmp_path / "encryption.yaml"
    write_config(config, ("short", base64.b64encode(b"too short").decode()))
    result = subprocess.run(
        [sys.executable, "-m", "apiserver", "--data-dir", str(tmp_path / "d"), "--port", str(free_port()),
         "--encryption-provider-config", str(config)],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0
    assert "16, 24 or 32 bytes" in result.stderr
