"""Client configuration: kubeconfig files (merged as kubectl merges them) and in-cluster config.

`load_kubeconfig` reads `$KUBECONFIG` (a colon-separated list) or `~/.kube/config`; `in_cluster_config`
reads a pod's service-account directory. Both produce a `ClientConfig` that knows the server, the TLS
material, the credentials and the default namespace.
"""

from __future__ import annotations

import base64
import os
import ssl
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
# A projected service-account token is rotated on disk; re-read it this often (client-go does the same).
TOKEN_FILE_REFRESH_SECONDS = 60.0


class KubeconfigError(Exception):
    """The configuration is missing, malformed or names something it does not define."""


@dataclass
class ClientConfig:
    """Everything a client needs to reach and authenticate to one API server."""

    server: str
    namespace: str = "default"
    ca_data: bytes | None = None
    ca_file: str | None = None
    cert_data: bytes | None = None
    cert_file: str | None = None
    key_data: bytes | None = field(default=None, repr=False)
    key_file: str | None = None
    token: str | None = field(default=None, repr=False)
    token_file: str | None = None
    insecure_skip_tls_verify: bool = False
    _ssl_context: ssl.SSLContext | None = field(default=None, init=False, repr=False, compare=False)
    _token_cache: tuple[float, str] | None = field(default=None, init=False, repr=False, compare=False)

    def ssl_context(self) -> ssl.SSLContext:
        """The TLS context for this server, built once: CA trust, client certificate, verification mode."""
        if self._ssl_context is None:
            self._ssl_context = self._build_ssl_context()
        return self._ssl_context

    def _build_ssl_context(self) -> ssl.SSLContext:
        if self.insecure_skip_tls_verify:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        else:
            cadata = self.ca_data.decode("ascii") if self.ca_data else None
            # With a CA given, trust only it (as kubectl does); otherwise the system's roots.
            context = ssl.create_default_context(cafile=self.ca_file, cadata=cadata)
        self._load_client_certificate(context)
        return context

    def _load_client_certificate(self, context: ssl.SSLContext) -> None:
        cert = self.cert_data if self.cert_data is not None else _read_optional(self.cert_file)
        key = self.key_data if self.key_data is not None else _read_optional(self.key_file)
        if cert is None and key is None:
            return
        if cert is None or key is None:
            raise KubeconfigError("a client certificate needs both a certificate and a key")
        # ssl loads certificates only from files: stage them in a private directory (0700, files 0600)
        # and remove them at once.
        with tempfile.TemporaryDirectory(prefix="skiff-tls-") as staging:
            cert_path = _write_private(Path(staging) / "client.crt", cert)
            key_path = _write_private(Path(staging) / "client.key", key)
            context.load_cert_chain(cert_path, key_path)

    def bearer_token(self) -> str | None:
        """The bearer token to send, re-reading a token file now and then so rotation is picked up."""
        if self.token:
            return self.token
        if not self.token_file:
            return None
        now = time.monotonic()
        if self._token_cache is None or now - self._token_cache[0] > TOKEN_FILE_REFRESH_SECONDS:
            token = Path(self.token_file).read_text().strip()
            self._token_cache = (now, token)
        return self._token_cache[1]


def _read_optional(path: str | None) -> bytes | None:
    return Path(path).read_bytes() if path else None


def _write_private(path: Path, data: bytes) -> str:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    return str(path)


# ---------------------------------------------------------------------------------------------------
# Kubeconfig files


@dataclass
class _Merged:
    """Named entries from one or more kubeconfig files; each entry remembers its file's directory."""

    clusters: dict[str, tuple[dict[str, Any], Path]] = field(default_factory=dict)
    users: dict[str, tuple[dict[str, Any], Path]] = field(default_factory=dict)
    contexts: dict[str, dict[str, Any]] = field(default_factory=dict)
    current_context: str = ""

    def add_file(self, path: Path) -> None:
        document = _read_document(path)
        base = path.resolve().parent
        # kubectl's rule: the first file to define a name (or the current context) wins.
        for entry in document.get("clusters") or []:
            self.clusters.setdefault(_entry_name(entry, path), (entry.get("cluster") or {}, base))
        for entry in document.get("users") or []:
            self.users.setdefault(_entry_name(entry, path), (entry.get("user") or {}, base))
        for entry in document.get("contexts") or []:
            self.contexts.setdefault(_entry_name(entry, path), entry.get("context") or {})
        if not self.current_context:
            self.current_context = document.get("current-context") or ""


def _read_document(path: Path) -> dict[str, Any]:
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise KubeconfigError(f"{path}: not a valid kubeconfig: {error}") from error
    if not isinstance(document, dict):
        raise KubeconfigError(f"{path}: not a valid kubeconfig: expected a mapping")
    return document


def _entry_name(entry: Any, path: Path) -> str:
    if not isinstance(entry, dict) or not entry.get("name"):
        raise KubeconfigError(f"{path}: every cluster, user and context needs a name")
    return str(entry["name"])


def kubeconfig_paths(path: str | None = None, environ: Mapping[str, str] | None = None) -> list[Path]:
    """The files to merge: `path` alone, else `$KUBECONFIG`'s existing entries, else `~/.kube/config`."""
    if path:
        return [Path(path).expanduser()]
    env = os.environ if environ is None else environ
    listed = env.get("KUBECONFIG", "")
    if listed:
        # As kubectl does: empty entries and files that do not exist are skipped.
        return [Path(p).expanduser() for p in listed.split(os.pathsep) if p and Path(p).expanduser().exists()]
    return [Path("~/.kube/config").expanduser()]


def load_kubeconfig(
    path: str | None = None, context: str | None = None, environ: Mapping[str, str] | None = None
) -> ClientConfig:
    """Load the client configuration for `context` (default: the current context)."""
    paths = kubeconfig_paths(path, environ)
    if not paths or not all(p.exists() for p in paths):
        missing = ", ".join(str(p) for p in paths) or "$KUBECONFIG"
        raise KubeconfigError(f"no kubeconfig found at {missing}")
    merged = _Merged()
    for each in paths:
        merged.add_file(each)
    return _resolve_context(merged, context or merged.current_context)


def _resolve_context(merged: _Merged, context_name: str) -> ClientConfig:
    if not context_name:
        raise KubeconfigError("no context chosen and the kubeconfig has no current-context")
    if context_name not in merged.contexts:
        raise KubeconfigError(f'context "{context_name}" does not exist')
    context = merged.contexts[context_name]
    cluster_name, user_name = context.get("cluster", ""), context.get("user", "")
    if cluster_name not in merged.clusters:
        raise KubeconfigError(f'context "{context_name}" names cluster "{cluster_name}", which does not exist')
    cluster, cluster_base = merged.clusters[cluster_name]
    if not cluster.get("server"):
        raise KubeconfigError(f'cluster "{cluster_name}" has no server')
    config = ClientConfig(
        server=str(cluster["server"]).rstrip("/"),
        namespace=context.get("namespace") or "default",
        ca_data=_decode_data(cluster, "certificate-authority-data"),
        ca_file=_relative_file(cluster, "certificate-authority", cluster_base),
        insecure_skip_tls_verify=bool(cluster.get("insecure-skip-tls-verify", False)),
    )
    if user_name:
        _apply_user(config, merged, user_name)
    return config


def _apply_user(config: ClientConfig, merged: _Merged, user_name: str) -> None:
    if user_name not in merged.users:
        raise KubeconfigError(f'user "{user_name}" does not exist')
    user, base = merged.users[user_name]
    config.cert_data = _decode_data(user, "client-certificate-data")
    config.cert_file = _relative_file(user, "client-certificate", base)
    config.key_data = _decode_data(user, "client-key-data")
    config.key_file = _relative_file(user, "client-key", base)
    config.token = user.get("token") or None
    config.token_file = _relative_file(user, "tokenFile", base)


def _decode_data(section: dict[str, Any], key: str) -> bytes | None:
    value = section.get(key)
    if not value:
        return None
    try:
        return base64.b64decode(value, validate=True)
    except ValueError as error:
        raise KubeconfigError(f"{key} is not valid base64") from error


def _relative_file(section: dict[str, Any], key: str, base: Path) -> str | None:
    value = section.get(key)
    if not value:
        return None
    return str(base / Path(value).expanduser())


# ---------------------------------------------------------------------------------------------------
# In-cluster


def in_cluster_config(root: Path = SERVICE_ACCOUNT_DIR, environ: Mapping[str, str] | None = None) -> ClientConfig:
    """The configuration of a process running in a pod: service host/port from the environment,
    token, CA and namespace from the mounted service-account directory."""
    env = os.environ if environ is None else environ
    host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT")
    if not host or not port:
        raise KubeconfigError("not in a cluster: KUBERNETES_SERVICE_HOST and _PORT are not set")
    token_path = Path(root) / "token"
    if not token_path.exists():
        raise KubeconfigError(f"not in a cluster: {token_path} does not exist")
    namespace_path = Path(root) / "namespace"
    namespace = namespace_path.read_text().strip() if namespace_path.exists() else ""
    ca_path = Path(root) / "ca.crt"
    return ClientConfig(
        server=f"https://{_host_for_url(host)}:{port}",
        namespace=namespace or "default",
        ca_file=str(ca_path) if ca_path.exists() else None,
        token_file=str(token_path),
    )


def _host_for_url(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def default_config(path: str | None = None, context: str | None = None) -> ClientConfig:
    """What a component uses: an explicit kubeconfig or `$KUBECONFIG`, else in-cluster, else
    `~/.kube/config`."""
    if path or os.environ.get("KUBECONFIG"):
        return load_kubeconfig(path, context)
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return in_cluster_config()
    return load_kubeconfig(None, context)
