"""Kubeconfig documents with embedded credentials, as `skiff up`, `skiff pki` and tests hand them out."""

from __future__ import annotations

import base64
from pathlib import Path

import yaml

from skiff.pki.files import write_file_atomically

ADMIN_USER = "skiff-admin"


def kubeconfig_bytes(
    server_url: str,
    ca_pem: bytes,
    cert_pem: bytes | None = None,
    key_pem: bytes | None = None,
    token: str | None = None,
    user: str = ADMIN_USER,
    cluster: str = "skiff",
    context: str = "skiff",
    namespace: str | None = None,
) -> bytes:
    """A one-cluster, one-user kubeconfig document with every credential embedded."""

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode("ascii")

    credentials: dict[str, str] = {}
    if cert_pem is not None:
        credentials["client-certificate-data"] = b64(cert_pem)
    if key_pem is not None:
        credentials["client-key-data"] = b64(key_pem)
    if token is not None:
        credentials["token"] = token
    context_body: dict[str, str] = {"cluster": cluster, "user": user}
    if namespace:
        context_body["namespace"] = namespace
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster, "cluster": {"server": server_url, "certificate-authority-data": b64(ca_pem)}}],
        "users": [{"name": user, "user": credentials}],
        "contexts": [{"name": context, "context": context_body}],
        "current-context": context,
        "preferences": {},
    }
    return yaml.safe_dump(document, sort_keys=False).encode()


def write_kubeconfig(
    path: Path,
    server_url: str,
    ca_pem: bytes,
    cert_pem: bytes | None = None,
    key_pem: bytes | None = None,
    token: str | None = None,
    user: str = ADMIN_USER,
    cluster: str = "skiff",
    context: str = "skiff",
    namespace: str | None = None,
) -> Path:
    """Write a kubeconfig (mode 0600: it holds credentials) and return its path."""
    content = kubeconfig_bytes(server_url, ca_pem, cert_pem, key_pem, token, user, cluster, context, namespace)
    write_file_atomically(Path(path), content)
    return Path(path)
